"""Validation and normalization of work identifiers.

An identifier is a ``(scheme, value)`` pair. Every spelling of one identifier (hyphens, spaces, case,
prefixes, ISBN-10 versus ISBN-13, ...) normalizes to one :class:`IdentifierKey`, which is what the
registry stores and looks up; the keys are unique across works. An identifier that does not validate
raises :class:`~registry.errors.InvalidIdentifier` whose ``code`` says why, and is never stored.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import iscc_core
from django.db import models
from django.utils import timezone
from django.utils.functional import Promise, lazy
from django.utils.translation import gettext_lazy as _
from stdnum import isan, isbn, ismn, isrc, issn
from stdnum.exceptions import InvalidChecksum, InvalidComponent, InvalidLength, ValidationError
from url_normalize import url_normalize

from registry.errors import InvalidIdentifier

_MAX_VALUE_LENGTH = 2000


class Scheme(models.TextChoices):
    ISBN = "isbn", _("ISBN")
    ISSN = "issn", _("ISSN")
    ISMN = "ismn", _("ISMN")
    ISRC = "isrc", _("ISRC")
    ISWC = "iswc", _("ISWC")
    ISAN = "isan", _("ISAN")
    DOI = "doi", _("DOI")
    URL = "url", _("URL")
    SHA256 = "sha256", _("SHA-256")
    ISCC = "iscc", _("ISCC")
    UCI = "uci", _("UCI")
    KCC = "kcc", _("Korea Copyright Commission registration number")


@dataclass(frozen=True)
class IdentifierKey:
    scheme: str
    value: str
    # The input as written (stripped), kept to show; it takes no part in equality: the key is the value.
    spelling: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"{self.scheme}:{self.value}"


# Looked up once per identifier; the enum's ``values`` property rebuilds a list on every access.
_SCHEMES = {member.value: member for member in Scheme}
_ISBN13_COMPACT = re.compile(r"97[89][0-9]{10}")


def identifier_normalize(*, scheme: str, value: str) -> IdentifierKey:
    """Validate an identifier and return its normalized key.

    Raises ``InvalidIdentifier`` with ``code`` one of ``unknown_scheme`` (``field="scheme"``), ``empty``,
    ``too_long``, ``invalid_format``, ``invalid_length``, ``invalid_checksum``, ``invalid_component``.
    """
    scheme = scheme.strip().lower()
    if scheme not in _SCHEMES:
        raise InvalidIdentifier(
            _format(
                _("“%(scheme)s” is not a known identifier scheme. Known schemes: %(known)s."),
                scheme=scheme[:50],
                known=", ".join(Scheme.values),
            ),
            code="unknown_scheme",
            field="scheme",
        )
    value = value.strip()
    if not value:
        raise _invalid("empty", _("Enter an identifier."))
    if len(value) > _MAX_VALUE_LENGTH:
        raise _too_long()
    normalized = _NORMALIZERS[_SCHEMES[scheme]](value)
    # Percent-encoding can make a URL longer than its input; the stored key must still fit.
    if len(normalized) > _MAX_VALUE_LENGTH:
        raise _too_long()
    return IdentifierKey(scheme=scheme, value=normalized, spelling=value)


# --- errors -------------------------------------------------------------------------------------------------


def _interpolate(template: str | Promise, params: dict[str, object]) -> str:
    return str(template) % params


# Built once: ``lazy()`` creates a proxy class per call, which costs more than validating the identifier.
_interpolate_lazy = lazy(_interpolate, str)


def _format(template: str | Promise, **params: object) -> str:
    """``template % params``, translated when the message is rendered (in the language active then)."""
    return _interpolate_lazy(template, params)


def _invalid(code: str, message: str | Promise) -> InvalidIdentifier:
    return InvalidIdentifier(message, code=code, field="value")


def _too_long() -> InvalidIdentifier:
    return _invalid("too_long", _format(_("An identifier has at most %(max)d characters."), max=_MAX_VALUE_LENGTH))


def _bad_format(scheme: Scheme) -> InvalidIdentifier:
    return _invalid("invalid_format", _format(_("This is not a well-formed %(scheme)s."), scheme=scheme.label))


def _bad_length(scheme: Scheme) -> InvalidIdentifier:
    return _invalid(
        "invalid_length", _format(_("This %(scheme)s has the wrong number of characters."), scheme=scheme.label)
    )


def _bad_checksum(scheme: Scheme) -> InvalidIdentifier:
    return _invalid(
        "invalid_checksum",
        _format(_("The check digit of this %(scheme)s is wrong; look for a mistyped character."), scheme=scheme.label),
    )


def _from_stdnum(scheme: Scheme, error: ValidationError, component_message: str | Promise) -> InvalidIdentifier:
    # InvalidLength subclasses InvalidFormat, so it is tested first.
    if isinstance(error, InvalidChecksum):
        return _bad_checksum(scheme)
    if isinstance(error, InvalidLength):
        return _bad_length(scheme)
    if isinstance(error, InvalidComponent):
        return _invalid("invalid_component", component_message)
    return _bad_format(scheme)


def _strip_prefix(value: str, pattern: re.Pattern[str]) -> str:
    rest = pattern.sub("", value, count=1).strip()
    if not rest:
        raise _invalid("empty", _("Enter an identifier."))
    return rest


# --- the schemes covered by python-stdnum -------------------------------------------------------------------

_ISBN_PREFIX = re.compile(r"^ISBN(?:-?1[03])?(?:\s*:\s*|\s+)", re.IGNORECASE)
_ISSN_PREFIX = re.compile(r"^ISSN(?:\s*:\s*|\s+|(?=[0-9]))", re.IGNORECASE)
_ISMN_PREFIX = re.compile(r"^ISMN(?:\s*:\s*|\s+)", re.IGNORECASE)
_ISRC_PREFIX = re.compile(r"^ISRC\s*:\s*", re.IGNORECASE)
_ISAN_PREFIX = re.compile(r"^(?:URN\s*:\s*)?ISAN(?:\s*:\s*|\s+)", re.IGNORECASE)


def _isbn(value: str) -> str:
    # Fast path for the forms lookups mostly send, compact or hyphenated ISBN-13 (stdnum's compact drops the same
    # hyphens and spaces, and checks nothing more of a 978/979 EAN-13); anything else goes through stdnum.
    if _ISBN13_COMPACT.fullmatch(value) and _ean13_check_ok(value):
        return value
    digits = value.replace("-", "").replace(" ", "")
    if _ISBN13_COMPACT.fullmatch(digits) and _ean13_check_ok(digits):
        return digits
    value = _strip_prefix(value, _ISBN_PREFIX)
    try:
        number = isbn.validate(value)
    except ValidationError as error:
        raise _from_stdnum(Scheme.ISBN, error, _("An ISBN-13 starts with 978 or 979.")) from None
    # Both spellings of a pre-2007 book must land on one key.
    return str(isbn.compact(isbn.to_isbn13(number)))


def _ean13_check_ok(digits: str) -> bool:
    """The EAN-13 check digit of 13 ASCII digits; summed as bytes (each digit's code is 48 more than its value),
    four times faster than ``int()`` per digit, for batches of ISBNs."""
    raw = digits.encode("ascii")
    total = sum(raw[0:12:2]) + 3 * sum(raw[1:12:2]) - 48 * (6 + 3 * 6)
    return (10 - total % 10) % 10 == raw[12] - 48


def _issn(value: str) -> str:
    value = _strip_prefix(value, _ISSN_PREFIX)
    try:
        return str(issn.validate(value))
    except ValidationError as error:
        raise _from_stdnum(Scheme.ISSN, error, _("This is not a valid ISSN.")) from None


def _ismn(value: str) -> str:
    value = _strip_prefix(value, _ISMN_PREFIX)
    try:
        number = ismn.validate(value)
    except ValidationError as error:
        raise _from_stdnum(Scheme.ISMN, error, _("An ISMN-13 starts with 979-0.")) from None
    return str(ismn.compact(ismn.to_ismn13(number)))


def _isrc(value: str) -> str:
    value = _strip_prefix(value, _ISRC_PREFIX)
    number = isrc.compact(value)
    # "IS" is Iceland's country code, so a bare "ISRC" is a prefix only when 12 characters follow it.
    if len(number) == 16 and number.startswith("ISRC"):
        number = number[4:]
    try:
        return str(isrc.validate(number))
    except ValidationError as error:
        raise _from_stdnum(Scheme.ISRC, error, _("The ISRC country code is not one that has been assigned.")) from None


def _isan(value: str) -> str:
    value = _strip_prefix(value, _ISAN_PREFIX)
    try:
        # The canonical form always carries the check characters, computed when they were left out, so the
        # same ISAN written with or without them lands on one key; a given check character is verified.
        return str(isan.validate(value, add_check_digits=True))
    except ValidationError as error:
        raise _from_stdnum(Scheme.ISAN, error, _("This is not a valid ISAN.")) from None


# --- ISWC (ISO 15707) ---------------------------------------------------------------------------------------

_ISWC_PREFIX = re.compile(r"^ISWC(?:\s*:\s*|\s+)", re.IGNORECASE)
_ISWC_SEPARATORS = re.compile(r"[\s.\-]")
_ISWC = re.compile(r"^T([0-9]{9})([0-9])$")


def _iswc_check_digit(digits: str) -> int:
    """The ISWC check digit of the nine work digits: ``(10 - (1 + Σ i·dᵢ) mod 10) mod 10``."""
    total = 1 + sum(position * int(digit) for position, digit in enumerate(digits, start=1))
    return (10 - total % 10) % 10


def _iswc(value: str) -> str:
    value = _strip_prefix(value, _ISWC_PREFIX)
    compact = _ISWC_SEPARATORS.sub("", value).upper()
    match = _ISWC.match(compact)
    if match is None:
        if re.fullmatch(r"T[0-9]*", compact):
            raise _bad_length(Scheme.ISWC)
        raise _bad_format(Scheme.ISWC)
    digits, check = match.groups()
    if _iswc_check_digit(digits) != int(check):
        raise _bad_checksum(Scheme.ISWC)
    return compact


# --- DOI ----------------------------------------------------------------------------------------------------

_DOI_URL_PREFIX = re.compile(r"^https?://(?:dx\.)?doi\.org/", re.IGNORECASE)
_DOI_PREFIX = re.compile(r"^(?:doi:|info:doi/)", re.IGNORECASE)
_DOI = re.compile(r"^10\.[0-9]+(?:\.[0-9]+)*/(.+)$", re.ASCII)


def _doi(value: str) -> str:
    if _DOI_URL_PREFIX.match(value):
        value = unquote(_strip_prefix(value, _DOI_URL_PREFIX))
    else:
        value = _strip_prefix(value, _DOI_PREFIX)
    match = _DOI.match(value)
    if match is None or not match.group(1).isprintable() or any(ch.isspace() for ch in value):
        raise _invalid(
            "invalid_format", _("A DOI looks like 10.1000/xyz123: “10.”, the registrant number, “/”, the suffix.")
        )
    # DOIs are matched case-insensitively by the DOI system, so their case carries no meaning.
    return value.lower()


# --- URL ----------------------------------------------------------------------------------------------------

_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_HOST_LABEL = r"[a-z0-9_](?:[a-z0-9_\-]*[a-z0-9_])?"
_HOSTNAME = re.compile(rf"^{_HOST_LABEL}(?:\.{_HOST_LABEL})*$")
_IPV6 = re.compile(r"^\[[0-9a-f:.]+\]$")


def _url(value: str) -> str:
    # The canonical form of a valid URL is valid too: its host is the validated one or a suffix of it.
    return url_canonical(url_rfc_normalize(value))


def url_rfc_normalize(value: str) -> str:
    """A valid http(s) URL normalized by RFC 3986 (url-normalize), not yet canonical: what a site's origin is
    (a verified domain's origin keeps its scheme and its "www.")."""
    scheme = _URL_SCHEME.match(value)
    # url-normalize would guess "https" for a bare host; a guessed scheme would make two keys for one page.
    if scheme is None:
        raise _invalid("invalid_format", _("Enter a full URL starting with http:// or https://."))
    if scheme.group(1).lower() not in ("http", "https"):
        raise _invalid("invalid_component", _("Only http:// and https:// URLs are accepted."))
    # The fragment never reaches the server, so it names no other resource. It is cut before normalizing
    # because url-normalize rewrites "#!" fragments into the query.
    value = value.partition("#")[0]
    try:
        raw = urlsplit(value)
    except ValueError:
        raise _invalid("invalid_format", _("This is not a well-formed URL.")) from None
    # url-normalize reads "https:///path" as the host "path"; an empty authority is refused here first.
    if not raw.hostname:
        raise _invalid("invalid_component", _("The URL has no host name."))
    if raw.username is not None or raw.password is not None:
        raise _invalid("invalid_component", _("Remove the user name and password from the URL."))
    try:
        normalized = url_normalize(value)
    except (ValueError, UnicodeError):
        raise _invalid("invalid_component", _("The URL's host name is not valid.")) from None
    if not normalized:
        raise _invalid("invalid_format", _("This is not a well-formed URL."))
    try:
        # Normalizing can turn a malformed authority into one urlsplit rejects (e.g. stray brackets).
        parts = urlsplit(normalized)
    except ValueError:
        raise _invalid("invalid_component", _("The URL's host name is not valid.")) from None
    host = parts.hostname or ""
    if not (_HOSTNAME.match(host) or _IPV6.match(f"[{host}]" if ":" in host else host)):
        raise _invalid("invalid_component", _("The URL's host name is not valid."))
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise _invalid("invalid_component", _("The URL's port is not valid."))
    return normalized


# The canonical form URLs are matched by (README, "Canonical URLs"). url-normalize has already lower-cased the scheme
# and host, applied IDNA, dropped the default port and resolved "." and ".." segments; the fragment is cut before.
# What is folded on top, so that spellings of one page scraped in the wild land on one key:
# - the scheme: http and https name one site, the key says https (port 443 is then the default and dropped);
# - a leading "www." of the host (repeatedly, as long as a dot is left), one site with or without it;
# - the trailing slashes of the path, except the root's: "/blog/" and "/blog" are one page;
# - the tracking parameters of the query, below (the others keep their order: a site may read it).
# The lab-side client (client/src/optout_client/normalize.py) has the same rules and the same list; the shared
# vectors (registry/normalization_vectors.py) and tests/registry/test_url_canonical.py hold the two together.

# The query parameters that only say where a visitor came from; names compared case-insensitively.
TRACKING_PARAMETERS: frozenset[str] = frozenset(
    {
        "fbclid",  # Facebook
        "gclid",  # Google Ads
        "gclsrc",
        "dclid",  # Google Display
        "gbraid",  # Google Ads (iOS)
        "wbraid",
        "msclkid",  # Microsoft Ads
        "mc_eid",  # Mailchimp
        "mc_cid",
        "igshid",  # Instagram
        "igsh",
        "yclid",  # Yandex
        "twclid",  # X (Twitter)
        "ttclid",  # TikTok
        "li_fat_id",  # LinkedIn
        "_hsenc",  # HubSpot
        "_hsmi",
        "mkt_tok",  # Marketo
        "_ga",  # Google Analytics cross-domain linker
        "_gl",
    }
)
# Every parameter whose name starts with one of these (Google Analytics' utm_source, utm_medium, ...).
TRACKING_PARAMETER_PREFIXES: tuple[str, ...] = ("utm_",)


def url_host_canonical(host: str) -> str:
    """A lower-case host without its leading ``www.`` labels (while a dot is left): one site with or without."""
    while host.startswith("www.") and "." in host[4:]:
        host = host[4:]
    return host


def domain_covers_host(domain_host: str, host: str) -> bool:
    """Whether a verified domain's host covers the canonical host of a URL: the domain itself with or without
    ``www.``, and its subdomains. A domain verified as ``www.ex.kr`` covers ``ex.kr`` (one site by the canonical
    form) but not ``blog.ex.kr``: controlling ``www`` proves nothing about the other subdomains."""
    return host == url_host_canonical(domain_host) or host.endswith("." + domain_host)


def _tracking(parameter: str) -> bool:
    name = parameter.partition("=")[0].lower()
    return name in TRACKING_PARAMETERS or name.startswith(TRACKING_PARAMETER_PREFIXES)


def url_canonical(normalized: str) -> str:
    """The canonical form of a URL url-normalize has normalized (``scheme://host[:port]/path[?query]``, no
    fragment, no user), by the rules above. Written on the text alone, as the client's copy is."""
    rest = normalized[normalized.index("://") + 3 :]
    slash = rest.find("/")
    netloc, tail = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    if netloc.startswith("["):  # an IPv6 literal: no www to drop
        host, _bracket, port = netloc.partition("]")
        host, port = host + "]", port[1:]
    else:
        host, _colon, port = netloc.partition(":")
        host = url_host_canonical(host)
    if port == "443":
        port = ""
    path, _mark, query = tail.partition("?")
    path = path.rstrip("/") or "/"
    if query:
        query = "&".join(parameter for parameter in query.split("&") if parameter and not _tracking(parameter))
    return f"https://{host}{':' + port if port else ''}{path}{'?' + query if query else ''}"


def url_prefix_covers(prefix: str, url: str) -> bool:
    """Whether the canonical URL-prefix ``prefix`` covers the canonical URL ``url``: at a boundary of the path
    (or of the query), so ``https://ex.kr/blog`` covers itself, ``/blog/post`` and ``/blog?page=2`` but not
    ``/blogger``. The root prefix ``https://ex.kr/`` covers the whole site."""
    if not url.startswith(prefix):
        return False
    if len(url) == len(prefix) or prefix.endswith("/"):
        return True
    return url[len(prefix)] in ("&" if "?" in prefix else "/?")


# --- SHA-256 ------------------------------------------------------------------------------------------------

_SHA256_PREFIX = re.compile(r"^sha-?256:\s*", re.IGNORECASE)
_HEX = re.compile(r"^[0-9a-fA-F]+$")


def _sha256(value: str) -> str:
    value = _strip_prefix(value, _SHA256_PREFIX)
    if not _HEX.match(value):
        raise _invalid("invalid_format", _("A SHA-256 hash is written in hexadecimal digits (0-9, a-f)."))
    if len(value) != 64:
        raise _invalid("invalid_length", _("A SHA-256 hash has exactly 64 hexadecimal digits."))
    return value.lower()


# --- ISCC (ISO 24138) ---------------------------------------------------------------------------------------


def _iscc(value: str) -> str:
    try:
        normalized = str(iscc_core.iscc_normalize(value))
        iscc_core.iscc_validate(normalized, strict=True)
        maintype = iscc_core.Code(normalized).maintype
    # iscc-core reports malformed input with whatever its parsing step raises: ValueError (and binascii.Error),
    # IndexError on an empty body, KeyError for an unknown header value.
    except (ValueError, LookupError, TypeError):
        raise _bad_format(Scheme.ISCC) from None
    # An ISCC-ID names an entry in an ISCC registry, not the content itself.
    if maintype == iscc_core.MT.ID:
        raise _invalid("invalid_component", _("This is an ISCC-ID; enter the ISCC-CODE of the content instead."))
    return normalized


# --- UCI (Korea's Universal Content Identifier, RFC 4179) ---------------------------------------------------

# Assumption, from RFC 4179 (urn:uci:) and UCIs seen in use (G704-000083.2011.27.2.001,
# I410-ECN-0102-2009-000-000000001, I804:11001-200000253802):
#   uci       = prefix "-" instance [":" qualifier]
#   prefix    = RA code [":" registrant code] ["+" sub-registrant code]; the RA code is one letter and three
#               digits in every published assignment, stricter than the RFC's 1*alphaDigit
#   instance  = 1*(alphaDigit / "()+,-.=@;$_!*'" / "%" HEXDIG HEXDIG)
#   qualifier = ("C" / "R" / "F") 1*alphaDigit, up to three of them joined by "-"
# Only the prefix (assigned codes) and percent-escapes are case-folded; instance and qualifier are kept
# as written because the registration agencies' naming rules do not say they are case-insensitive.
_UCI_PREFIX = re.compile(r"^(?:urn:uci:|uci(?:\s*:\s*|\s+))", re.IGNORECASE)
_UCI = re.compile(
    r"^(?P<prefix>[A-Z][0-9]{3}(?::[A-Z0-9]+)?(?:\+[A-Z0-9]+)?)"
    r"-(?P<instance>(?:[A-Z0-9()+,\-.=@;$_!*']|%[0-9A-F]{2})+)"
    r"(?::(?P<qualifier>[CRF][A-Z0-9]+(?:-[CRF][A-Z0-9]+){0,2}))?$",
    re.IGNORECASE | re.ASCII,
)
_PERCENT_ESCAPE = re.compile(r"%[0-9a-fA-F]{2}")


def _uci(value: str) -> str:
    if _UCI_PREFIX.match(value):
        value = _strip_prefix(value, _UCI_PREFIX)
    match = _UCI.match(value)
    if match is None:
        raise _invalid(
            "invalid_format",
            _("A UCI looks like G704-000083.2011.27.2.001: agency code, “-”, the content's own code."),
        )
    instance = _PERCENT_ESCAPE.sub(lambda escape: escape.group(0).upper(), match.group("instance"))
    body = f"{match.group('prefix').upper()}-{instance}"
    if match.group("qualifier"):
        body += ":" + match.group("qualifier")
    return "urn:uci:" + body


# --- Korea Copyright Commission registration number ---------------------------------------------------------

_KCC_SEPARATORS = re.compile(r"[\s\-]")
_KCC = re.compile(r"^C([0-9]{4})([0-9]{6})$")
_KCC_FIRST_YEAR = 1987  # the wholly amended Copyright Act, whose registration these numbers record, took effect in 1987


def _kcc(value: str) -> str:
    compact = _KCC_SEPARATORS.sub("", value).upper()
    match = _KCC.match(compact)
    if match is None:
        if re.fullmatch(r"C[0-9]*", compact):
            raise _bad_length(Scheme.KCC)
        raise _invalid("invalid_format", _("A registration number looks like C-2020-012345."))
    year, serial = match.groups()
    # The current year is Korea's (settings.TIME_ZONE), so numbers issued on 1 January KST are accepted.
    last_year = timezone.localdate().year
    if not _KCC_FIRST_YEAR <= int(year) <= last_year:
        raise _invalid(
            "invalid_component",
            _format(
                _("The registration year must be between %(first)d and %(last)d."),
                first=_KCC_FIRST_YEAR,
                last=last_year,
            ),
        )
    return f"C-{year}-{serial}"


_NORMALIZERS: dict[Scheme, Callable[[str], str]] = {
    Scheme.ISBN: _isbn,
    Scheme.ISSN: _issn,
    Scheme.ISMN: _ismn,
    Scheme.ISRC: _isrc,
    Scheme.ISWC: _iswc,
    Scheme.ISAN: _isan,
    Scheme.DOI: _doi,
    Scheme.URL: _url,
    Scheme.SHA256: _sha256,
    Scheme.ISCC: _iscc,
    Scheme.UCI: _uci,
    Scheme.KCC: _kcc,
}
