"""Identifier normalization, rule for rule the registry server's (``registry/identifiers.py``).

Every spelling of one identifier normalizes to one :class:`IdentifierKey`; its text ``scheme:value`` is what the
registry stores and what a snapshot's membership file hashes. A value the server refuses raises
:class:`InvalidIdentifier` with the server's error ``code``. ``tests/vectors/normalization.json``, generated from the
server's normalizer, holds both implementations to the same answers.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import ModuleType
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from url_normalize import url_normalize

# python-stdnum is imported where it is used: it costs several MB of memory, and a filter whose identifiers take the
# fast paths (optout_client.fastkeys) never needs it.
if TYPE_CHECKING:
    from stdnum.exceptions import ValidationError

__all__ = [
    "SCHEMES",
    "TRACKING_PARAMETERS",
    "TRACKING_PARAMETER_PREFIXES",
    "IdentifierKey",
    "InvalidIdentifier",
    "SchemeUnavailable",
    "identifier_normalize",
    "iscc_available",
    "url_canonical",
    "url_host_canonical",
    "url_prefix_covers",
]

MAX_VALUE_LENGTH = 2000

# The registry's schemes, in the server's order (its ``Scheme`` choices).
SCHEMES: tuple[str, ...] = (
    "isbn",
    "issn",
    "ismn",
    "isrc",
    "iswc",
    "isan",
    "doi",
    "url",
    "sha256",
    "iscc",
    "uci",
    "kcc",
)

_LABELS = {
    "isbn": "ISBN",
    "issn": "ISSN",
    "ismn": "ISMN",
    "isrc": "ISRC",
    "iswc": "ISWC",
    "isan": "ISAN",
    "doi": "DOI",
    "url": "URL",
    "sha256": "SHA-256",
    "iscc": "ISCC",
    "uci": "UCI",
    "kcc": "Korea Copyright Commission registration number",
}


class InvalidIdentifier(ValueError):
    """The server would refuse this identifier; ``code`` is the server's reason (e.g. ``invalid_checksum``)."""

    def __init__(self, message: str, *, code: str, field: str = "value") -> None:
        super().__init__(message)
        self.code = code
        self.field = field


class SchemeUnavailable(RuntimeError):
    """This installation cannot normalize the scheme (ISCC without the ``iscc`` extra).

    Not an :class:`InvalidIdentifier`: the value may well be valid, so a filter must not treat it as checked.
    """


@dataclass(frozen=True)
class IdentifierKey:
    scheme: str
    value: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.value}"


_ISBN13_COMPACT = re.compile(r"97[89][0-9]{10}")


def identifier_normalize(scheme: str, value: str) -> IdentifierKey:
    """Validate an identifier and return its normalized key, exactly as the registry does.

    Raises ``InvalidIdentifier`` with ``code`` one of ``unknown_scheme`` (``field="scheme"``), ``empty``,
    ``too_long``, ``invalid_format``, ``invalid_length``, ``invalid_checksum``, ``invalid_component``; and
    ``SchemeUnavailable`` for an ISCC when iscc-core is not installed.
    """
    scheme = scheme.strip().lower()
    normalizer = _NORMALIZERS.get(scheme)
    if normalizer is None:
        raise InvalidIdentifier(
            f"“{scheme[:50]}” is not a known identifier scheme. Known schemes: {', '.join(SCHEMES)}.",
            code="unknown_scheme",
            field="scheme",
        )
    value = value.strip()
    if not value:
        raise InvalidIdentifier("Enter an identifier.", code="empty")
    if len(value) > MAX_VALUE_LENGTH:
        raise _too_long()
    normalized = normalizer(value)
    # Percent-encoding can make a URL longer than its input; the stored key must still fit.
    if len(normalized) > MAX_VALUE_LENGTH:
        raise _too_long()
    return IdentifierKey(scheme=scheme, value=normalized)


# --- errors -------------------------------------------------------------------------------------------------


def _invalid(code: str, message: str) -> InvalidIdentifier:
    return InvalidIdentifier(message, code=code)


def _too_long() -> InvalidIdentifier:
    return _invalid("too_long", f"An identifier has at most {MAX_VALUE_LENGTH} characters.")


def _bad_format(scheme: str) -> InvalidIdentifier:
    return _invalid("invalid_format", f"This is not a well-formed {_LABELS[scheme]}.")


def _bad_length(scheme: str) -> InvalidIdentifier:
    return _invalid("invalid_length", f"This {_LABELS[scheme]} has the wrong number of characters.")


def _bad_checksum(scheme: str) -> InvalidIdentifier:
    return _invalid(
        "invalid_checksum", f"The check digit of this {_LABELS[scheme]} is wrong; look for a mistyped character."
    )


def _from_stdnum(scheme: str, error: ValidationError, component_message: str) -> InvalidIdentifier:
    from stdnum.exceptions import InvalidChecksum, InvalidComponent, InvalidLength

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
        raise _invalid("empty", "Enter an identifier.")
    return rest


# --- the schemes covered by python-stdnum -------------------------------------------------------------------

_ISBN_PREFIX = re.compile(r"^ISBN(?:-?1[03])?(?:\s*:\s*|\s+)", re.IGNORECASE)
_ISSN_PREFIX = re.compile(r"^ISSN(?:\s*:\s*|\s+|(?=[0-9]))", re.IGNORECASE)
_ISMN_PREFIX = re.compile(r"^ISMN(?:\s*:\s*|\s+)", re.IGNORECASE)
_ISRC_PREFIX = re.compile(r"^ISRC\s*:\s*", re.IGNORECASE)
_ISAN_PREFIX = re.compile(r"^(?:URN\s*:\s*)?ISAN(?:\s*:\s*|\s+)", re.IGNORECASE)


def _isbn(value: str) -> str:
    from stdnum import isbn
    from stdnum.exceptions import ValidationError

    # Fast path for the already normalized form; anything else goes through stdnum.
    if _ISBN13_COMPACT.fullmatch(value) and _ean13_check_ok(value):
        return value
    value = _strip_prefix(value, _ISBN_PREFIX)
    try:
        number = isbn.validate(value)
    except ValidationError as error:
        raise _from_stdnum("isbn", error, "An ISBN-13 starts with 978 or 979.") from None
    # Both spellings of a pre-2007 book land on one key.
    return str(isbn.compact(isbn.to_isbn13(number)))


def _ean13_check_ok(digits: str) -> bool:
    total = sum(map(int, digits[0:12:2])) + 3 * sum(map(int, digits[1:12:2]))
    return (10 - total % 10) % 10 == int(digits[12])


def _issn(value: str) -> str:
    from stdnum import issn
    from stdnum.exceptions import ValidationError

    value = _strip_prefix(value, _ISSN_PREFIX)
    try:
        return str(issn.validate(value))
    except ValidationError as error:
        raise _from_stdnum("issn", error, "This is not a valid ISSN.") from None


def _ismn(value: str) -> str:
    from stdnum import ismn
    from stdnum.exceptions import ValidationError

    value = _strip_prefix(value, _ISMN_PREFIX)
    try:
        number = ismn.validate(value)
    except ValidationError as error:
        raise _from_stdnum("ismn", error, "An ISMN-13 starts with 979-0.") from None
    return str(ismn.compact(ismn.to_ismn13(number)))


def _isrc(value: str) -> str:
    from stdnum import isrc
    from stdnum.exceptions import ValidationError

    value = _strip_prefix(value, _ISRC_PREFIX)
    number = isrc.compact(value)
    # "IS" is Iceland's country code, so a bare "ISRC" is a prefix only when 12 characters follow it.
    if len(number) == 16 and number.startswith("ISRC"):
        number = number[4:]
    try:
        return str(isrc.validate(number))
    except ValidationError as error:
        raise _from_stdnum("isrc", error, "The ISRC country code is not one that has been assigned.") from None


def _isan(value: str) -> str:
    from stdnum import isan
    from stdnum.exceptions import ValidationError

    value = _strip_prefix(value, _ISAN_PREFIX)
    try:
        # The canonical form always carries the check characters, computed when they were left out.
        return str(isan.validate(value, add_check_digits=True))
    except ValidationError as error:
        raise _from_stdnum("isan", error, "This is not a valid ISAN.") from None


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
            raise _bad_length("iswc")
        raise _bad_format("iswc")
    digits, check = match.groups()
    if _iswc_check_digit(digits) != int(check):
        raise _bad_checksum("iswc")
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
            "invalid_format", "A DOI looks like 10.1000/xyz123: “10.”, the registrant number, “/”, the suffix."
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
        raise _invalid("invalid_format", "Enter a full URL starting with http:// or https://.")
    if scheme.group(1).lower() not in ("http", "https"):
        raise _invalid("invalid_component", "Only http:// and https:// URLs are accepted.")
    # The fragment never reaches the server, so it names no other resource. It is cut before normalizing
    # because url-normalize rewrites "#!" fragments into the query.
    value = value.partition("#")[0]
    try:
        raw = urlsplit(value)
    except ValueError:
        raise _invalid("invalid_format", "This is not a well-formed URL.") from None
    # url-normalize reads "https:///path" as the host "path"; an empty authority is refused here first.
    if not raw.hostname:
        raise _invalid("invalid_component", "The URL has no host name.")
    if raw.username is not None or raw.password is not None:
        raise _invalid("invalid_component", "Remove the user name and password from the URL.")
    try:
        normalized = url_normalize(value)
    except (ValueError, UnicodeError):
        raise _invalid("invalid_component", "The URL's host name is not valid.") from None
    if not normalized:
        raise _invalid("invalid_format", "This is not a well-formed URL.")
    try:
        # Normalizing can turn a malformed authority into one urlsplit rejects (e.g. stray brackets).
        parts = urlsplit(normalized)
    except ValueError:
        raise _invalid("invalid_component", "The URL's host name is not valid.") from None
    host = parts.hostname or ""
    if not (_HOSTNAME.match(host) or _IPV6.match(f"[{host}]" if ":" in host else host)):
        raise _invalid("invalid_component", "The URL's host name is not valid.")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise _invalid("invalid_component", "The URL's port is not valid.")
    return str(normalized)


# The server's canonical form (registry/identifiers.py, README "Canonical URLs"), rule for rule: on top of
# url-normalize, http and https fold to https (port 443 dropped), leading "www." labels are dropped, trailing
# slashes of the path (not the root's) are dropped, and the tracking parameters below are dropped from the query.
# The list must equal the server's: its tests compare the two.

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
        raise _invalid("invalid_format", "A SHA-256 hash is written in hexadecimal digits (0-9, a-f).")
    if len(value) != 64:
        raise _invalid("invalid_length", "A SHA-256 hash has exactly 64 hexadecimal digits.")
    return value.lower()


# --- ISCC (ISO 24138) ---------------------------------------------------------------------------------------


def _iscc_core() -> ModuleType:
    # Imported on first use: iscc-core is an optional extra.
    try:
        return importlib.import_module("iscc_core")
    except ImportError:
        raise SchemeUnavailable(
            "Normalizing ISCC codes needs iscc-core: pip install 'optout-registry-client[iscc]'."
        ) from None


def _iscc(value: str) -> str:
    iscc_core = _iscc_core()
    try:
        normalized = str(iscc_core.iscc_normalize(value))
        iscc_core.iscc_validate(normalized, strict=True)
        maintype = iscc_core.Code(normalized).maintype
    # iscc-core reports malformed input with whatever its parsing step raises: ValueError (and binascii.Error),
    # IndexError on an empty body, KeyError for an unknown header value.
    except (ValueError, LookupError, TypeError):
        raise _bad_format("iscc") from None
    # An ISCC-ID names an entry in an ISCC registry, not the content itself.
    if maintype == iscc_core.MT.ID:
        raise _invalid("invalid_component", "This is an ISCC-ID; enter the ISCC-CODE of the content instead.")
    return normalized


def iscc_available() -> bool:
    """Whether this installation can normalize ISCC codes (the ``iscc`` extra is installed)."""
    try:
        _iscc_core()
    except SchemeUnavailable:
        return False
    return True


# --- UCI (Korea's Universal Content Identifier, RFC 4179) ---------------------------------------------------

# The server's reading of RFC 4179 (see registry/identifiers.py): the prefix (assigned codes) and
# percent-escapes are case-folded; instance and qualifier are kept as written.
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
            "invalid_format", "A UCI looks like G704-000083.2011.27.2.001: agency code, “-”, the content's own code."
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
# The server takes the current year in its TIME_ZONE, Asia/Seoul by default; Korea keeps UTC+9 all year.
_KOREA = timezone(timedelta(hours=9))


def _kcc(value: str) -> str:
    compact = _KCC_SEPARATORS.sub("", value).upper()
    match = _KCC.match(compact)
    if match is None:
        if re.fullmatch(r"C[0-9]*", compact):
            raise _bad_length("kcc")
        raise _invalid("invalid_format", "A registration number looks like C-2020-012345.")
    year, serial = match.groups()
    last_year = datetime.now(_KOREA).year
    if not _KCC_FIRST_YEAR <= int(year) <= last_year:
        raise _invalid("invalid_component", f"The registration year must be between {_KCC_FIRST_YEAR} and {last_year}.")
    return f"C-{year}-{serial}"


_NORMALIZERS: dict[str, Callable[[str], str]] = {
    "isbn": _isbn,
    "issn": _issn,
    "ismn": _ismn,
    "isrc": _isrc,
    "iswc": _iswc,
    "isan": _isan,
    "doi": _doi,
    "url": _url,
    "sha256": _sha256,
    "iscc": _iscc,
    "uci": _uci,
    "kcc": _kcc,
}
