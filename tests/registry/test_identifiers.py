"""Identifier validation and normalization (registry.identifiers).

Property tests generate valid identifiers with check digits computed here, independently of the code
under test, then spell them in every accepted way and assert they land on one key.
"""

from __future__ import annotations

import hashlib
import io
from urllib.parse import quote

import iscc_core
import pytest
from django.utils import timezone
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from stdnum.iso7064 import mod_37_36

from registry.errors import InvalidIdentifier
from registry.identifiers import IdentifierKey, Scheme, identifier_normalize, url_canonical

# The project's autouse fixtures (media root, eager Celery) are harmless to share between examples.
given_settings = settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])


def normalize(scheme: str, value: str) -> IdentifierKey:
    return identifier_normalize(scheme=scheme, value=value)


def refusal(scheme: str, value: str) -> InvalidIdentifier:
    with pytest.raises(InvalidIdentifier) as caught:
        identifier_normalize(scheme=scheme, value=value)
    return caught.value


def reason(scheme: str, value: str) -> str:
    return refusal(scheme, value).code


def outcome(scheme: str, value: str) -> IdentifierKey | InvalidIdentifier:
    try:
        return normalize(scheme, value)
    except InvalidIdentifier as error:
        return error


REASONS = {"empty", "invalid_format", "invalid_length", "invalid_checksum", "invalid_component", "too_long"}


# --- check digits, computed independently --------------------------------------------------------------------


def isbn10_check(digits: str) -> str:
    check = (11 - sum((10 - i) * int(d) for i, d in enumerate(digits)) % 11) % 11
    return "X" if check == 10 else str(check)


def ean13_check(digits: str) -> str:
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits))
    return str((10 - total % 10) % 10)


def issn_check(digits: str) -> str:
    check = (11 - sum((8 - i) * int(d) for i, d in enumerate(digits)) % 11) % 11
    return "X" if check == 10 else str(check)


def iswc_check(digits: str) -> str:
    total = 1 + sum(i * int(d) for i, d in enumerate(digits, start=1))
    return str((10 - total % 10) % 10)


# --- strategies ----------------------------------------------------------------------------------------------


def n_digits(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789", min_size=n, max_size=n)


isbn10s = n_digits(9).map(lambda d: d + isbn10_check(d))
isbn13s = st.tuples(st.sampled_from(["978", "9791", "9798"]), n_digits(9)).map(
    lambda parts: (parts[0] + parts[1])[:12] + ean13_check((parts[0] + parts[1])[:12])
)
issns = n_digits(7).map(lambda d: d + issn_check(d))
ismns = n_digits(8).map(lambda d: "9790" + d + ean13_check("9790" + d))
iswcs = n_digits(9).map(lambda d: "T" + d + iswc_check(d))
isrcs = st.tuples(
    st.sampled_from(["US", "GB", "KR", "FR", "DE", "JP", "QZ"]),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=3, max_size=3),
    n_digits(7),
).map("".join)
hex_upper = "0123456789ABCDEF"
isan_roots = st.text(alphabet=hex_upper, min_size=16, max_size=16)
isan_versions = st.text(alphabet=hex_upper, min_size=8, max_size=8)


@st.composite
def spellings(draw: st.DrawFn, compact: str, *, separators: str = "- ") -> str:
    """The compact identifier with random separators between characters and random letter case."""
    out = []
    for index, char in enumerate(compact):
        if index and draw(st.booleans()):
            out.append(draw(st.sampled_from(list(separators))))
        out.append(char.lower() if char.isalpha() and draw(st.booleans()) else char)
    return "".join(out)


def random_case(text: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(text), max_size=len(text)).map(
        lambda flips: "".join(c.swapcase() if flip else c for c, flip in zip(text, flips, strict=True))
    )


doi_suffix_chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._;()/:"
dois = st.tuples(
    n_digits(4), st.text(alphabet=doi_suffix_chars, min_size=1, max_size=30).filter(lambda s: s.strip())
).map(lambda parts: f"10.{parts[0]}/{parts[1]}")

host_labels = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10)
hosts = st.tuples(st.lists(host_labels, min_size=1, max_size=3), st.sampled_from(["com", "kr", "org", "co.kr"])).map(
    lambda parts: ".".join([*parts[0], parts[1]])
)
path_segments = st.lists(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_~", min_size=1, max_size=8),
    max_size=4,
)
queries = st.one_of(
    st.just(""),
    st.lists(st.tuples(host_labels, host_labels), min_size=1, max_size=3).map(
        lambda pairs: "?" + "&".join(f"{k}={v}" for k, v in pairs)
    ),
)
urls = st.tuples(st.sampled_from(["http", "https"]), hosts, path_segments, queries)

sha256s = st.binary(min_size=32, max_size=32).map(lambda b: b.hex())

iscc_texts = st.text(min_size=1, max_size=200)

uci_instances = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_", min_size=1, max_size=30)
ucis = st.tuples(
    st.sampled_from("GIKR"), n_digits(3), st.one_of(st.just(""), n_digits(5).map(lambda d: ":" + d)), uci_instances
).map(lambda p: f"{p[0]}{p[1]}{p[2]}-{p[3]}")

kccs = st.tuples(st.integers(min_value=1987, max_value=timezone.localdate().year), n_digits(6)).map(
    lambda p: f"C-{p[0]}-{p[1]}"
)


def iscc_of(text: str) -> str:
    data = text.encode()
    units = [
        iscc_core.gen_text_code(text)["iscc"],
        iscc_core.gen_data_code(io.BytesIO(data))["iscc"],
        iscc_core.gen_instance_code(io.BytesIO(data))["iscc"],
    ]
    return str(iscc_core.gen_iscc_code(units)["iscc"])


# Valid spellings of every scheme, for the scheme-wide properties.
VALID: dict[str, st.SearchStrategy[str]] = {
    "isbn": st.one_of(isbn10s, isbn13s).flatmap(spellings),
    "issn": issns.flatmap(spellings),
    "ismn": ismns.flatmap(spellings),
    "isrc": isrcs.flatmap(spellings),
    "iswc": iswcs.flatmap(lambda c: spellings(c, separators="-. ")),
    "isan": st.tuples(isan_roots, st.one_of(st.just(""), isan_versions)).map("".join).flatmap(spellings),
    "doi": dois.flatmap(random_case),
    "url": urls.map(lambda u: f"{u[0]}://{u[1]}/{'/'.join(u[2])}{u[3]}"),
    "sha256": sha256s.flatmap(random_case),
    "iscc": iscc_texts.map(iscc_of),
    "uci": ucis,
    "kcc": kccs,
}


def test_every_scheme_has_a_valid_strategy() -> None:
    assert set(VALID) == set(Scheme.values)


# --- properties ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", sorted(VALID))
@given_settings
@given(data=st.data())
def test_normalization_is_idempotent(scheme: str, data: st.DataObject) -> None:
    key = normalize(scheme, data.draw(VALID[scheme]))

    assert normalize(scheme, key.value) == key
    assert key.scheme == scheme


@pytest.mark.parametrize("scheme", sorted(VALID))
@given_settings
@given(value=st.text(max_size=80) | st.text(alphabet="0123456789Xx-: .", max_size=30))
def test_arbitrary_input_is_refused_with_a_reason_or_normalized(scheme: str, value: str) -> None:
    result = outcome(scheme, value)

    if isinstance(result, InvalidIdentifier):
        assert result.code in REASONS
        assert result.field == "value"
        assert str(result.message)
    else:
        assert normalize(scheme, result.value) == result


url_pieces = st.sampled_from([*"aZ09.-_~%:@[]/?#&=+ 한ßİ\u3002", "%2F", "%7e", "%zz", "%E2%82%AC", "..", "xn--"])


@given_settings
@given(start=st.sampled_from(["https://", "http://", "HTTP://"]), rest=st.lists(url_pieces, max_size=25).map("".join))
@example(start="https://", rest="]한[::")  # normalizing once produced an authority urlsplit rejects
def test_url_like_input_is_refused_with_a_reason_or_normalized(start: str, rest: str) -> None:
    result = outcome("url", start + rest)

    if isinstance(result, InvalidIdentifier):
        assert result.code in {"invalid_format", "invalid_component", "too_long"}
    else:
        assert normalize("url", result.value) == result


@given_settings
@given(isbn10=isbn10s, data=st.data())
def test_isbn10_and_isbn13_spellings_land_on_one_key(isbn10: str, data: st.DataObject) -> None:
    isbn13 = "978" + isbn10[:9] + ean13_check("978" + isbn10[:9])

    keys = {
        normalize("isbn", isbn10),
        normalize("isbn", isbn13),
        normalize("isbn", data.draw(spellings(isbn10))),
        normalize("isbn", data.draw(spellings(isbn13))),
        normalize("isbn", "ISBN " + isbn10),
    }

    assert keys == {IdentifierKey("isbn", isbn13)}


@pytest.mark.parametrize(
    ("scheme", "strategy", "prefix"),
    [
        ("issn", issns, "ISSN "),
        ("ismn", ismns, "ISMN "),
        ("isrc", isrcs, "ISRC "),
        ("iswc", iswcs, "ISWC "),
    ],
)
@given_settings
@given(data=st.data())
def test_separators_case_and_prefix_land_on_one_key(
    scheme: str, strategy: st.SearchStrategy[str], prefix: str, data: st.DataObject
) -> None:
    compact = data.draw(strategy)

    spelled = data.draw(spellings(compact, separators="-. " if scheme == "iswc" else "- "))

    assert normalize(scheme, spelled) == IdentifierKey(scheme, compact.upper())
    assert normalize(scheme, prefix + spelled) == IdentifierKey(scheme, compact.upper())


@given_settings
@given(ismn=ismns, data=st.data())
def test_old_m_form_of_an_ismn_lands_on_the_13_digit_key(ismn: str, data: st.DataObject) -> None:
    old = "M" + ismn[4:]

    assert normalize("ismn", data.draw(spellings(old))) == IdentifierKey("ismn", ismn)


@given_settings
@given(root=isan_roots, version=st.one_of(st.just(""), isan_versions), data=st.data())
def test_isan_with_or_without_check_characters_and_formatting_lands_on_one_key(
    root: str, version: str, data: st.DataObject
) -> None:
    check1 = mod_37_36.calc_check_digit(root)
    check2 = mod_37_36.calc_check_digit(root + version) if version else ""
    canonical = root + check1 + version + check2
    groups = [root[0:4], root[4:8], root[8:12], root[12:16], check1, version[:4], version[4:], check2]
    formatted = "-".join(group for group in groups if group)

    keys = {
        normalize("isan", root + version),
        normalize("isan", canonical),
        normalize("isan", formatted),
        normalize("isan", data.draw(spellings(canonical))),
        normalize("isan", "ISAN " + canonical.lower()),
    }

    assert keys == {IdentifierKey("isan", canonical)}


@given_settings
@given(doi=dois, data=st.data())
def test_doi_prefixes_and_case_land_on_one_key(doi: str, data: st.DataObject) -> None:
    spellings_ = [
        doi,
        data.draw(random_case(doi)),
        data.draw(random_case("doi:")) + doi,
        "info:doi/" + doi,
        "https://doi.org/" + quote(doi, safe="/"),
        "http://doi.org/" + doi,
        "https://dx.doi.org/" + doi.upper(),
        "HTTP://DX.DOI.ORG/" + quote(doi, safe=""),
    ]

    assert {normalize("doi", value) for value in spellings_} == {IdentifierKey("doi", doi.lower())}


@given_settings
@given(url=urls, data=st.data())
def test_url_default_port_host_case_and_fragment_land_on_one_key(
    url: tuple[str, str, list[str], str], data: st.DataObject
) -> None:
    scheme, host, segments, query = url
    path = "/" + "/".join(segments)
    default_port = {"http": ":80", "https": ":443"}[scheme]
    # The canonical form of the plain spelling (its rules have their own table: test_url_canonical.py).
    expected = IdentifierKey("url", url_canonical(f"{scheme}://{host}{path}{query}"))

    spellings_ = [
        f"{scheme}://{host}{path}{query}",
        f"{scheme.upper()}://{data.draw(random_case(host))}{path}{query}",
        f"{scheme}://{host}{default_port}{path}{query}",
        f"{scheme}://{host}{path}{query}#{data.draw(host_labels)}",
        f"{scheme}://{host}.{path}{query}",
    ]

    assert {normalize("url", value) for value in spellings_} == {expected}


@given_settings
@given(digest=sha256s, data=st.data())
def test_sha256_hex_case_and_prefix_land_on_one_key(digest: str, data: st.DataObject) -> None:
    spellings_ = [
        digest,
        digest.upper(),
        data.draw(random_case(digest)),
        "sha256:" + digest,
        "SHA256:" + digest.upper(),
    ]

    assert {normalize("sha256", value) for value in spellings_} == {IdentifierKey("sha256", digest)}


@given_settings
@given(ucis)
def test_uci_with_or_without_urn_prefix_lands_on_one_key(uci: str) -> None:
    prefix, _, instance = uci.partition("-")
    expected = IdentifierKey("uci", f"urn:uci:{uci}")

    spellings_ = [uci, f"urn:uci:{uci}", f"URN:UCI:{uci}", f"{prefix.lower()}-{instance}", f"UCI {uci}"]

    assert {normalize("uci", value) for value in spellings_} == {expected}


@given_settings
@given(kcc=kccs)
def test_kcc_case_and_separators_land_on_one_key(kcc: str) -> None:
    compact = kcc.replace("-", "")

    spellings_ = [kcc, kcc.lower(), compact, compact.lower(), kcc.replace("-", " ")]

    assert {normalize("kcc", value) for value in spellings_} == {IdentifierKey("kcc", kcc)}


def other_checks(valid: str, alphabet: str) -> list[str]:
    return [valid[:-1] + char for char in alphabet if char != valid[-1]]


@pytest.mark.parametrize(
    ("scheme", "strategy", "alphabet"),
    [
        ("isbn", isbn10s, "0123456789X"),
        ("isbn", isbn13s, "0123456789"),
        ("issn", issns, "0123456789X"),
        ("ismn", ismns, "0123456789"),
        ("ismn", ismns.map(lambda i: "M" + i[4:]), "0123456789"),
        ("iswc", iswcs, "0123456789"),
        ("isan", isan_roots.map(lambda r: r + mod_37_36.calc_check_digit(r)), "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
        (
            "isan",
            st.tuples(isan_roots, isan_versions).map(
                lambda p: p[0] + mod_37_36.calc_check_digit(p[0]) + p[1] + mod_37_36.calc_check_digit(p[0] + p[1])
            ),
            "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        ),
    ],
)
@given_settings
@given(data=st.data())
def test_every_wrong_check_character_is_refused(
    scheme: str, strategy: st.SearchStrategy[str], alphabet: str, data: st.DataObject
) -> None:
    valid = data.draw(strategy)
    assert normalize(scheme, valid)

    for wrong in other_checks(valid, alphabet):
        assert reason(scheme, wrong) == "invalid_checksum", wrong


# --- examples: valid -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "value", "normalized"),
    [
        ("isbn", "0-306-40615-2", "9780306406157"),
        ("isbn", "978-0-306-40615-7", "9780306406157"),
        ("isbn", "ISBN-13: 978 0 306 40615 7", "9780306406157"),
        ("isbn", "080442957x", "9780804429573"),
        ("issn", "0317-8471", "03178471"),
        ("issn", "issn 2434-561x", "2434561X"),
        ("ismn", "M-2306-7118-7", "9790230671187"),
        ("ismn", "979-0-2306-7118-7", "9790230671187"),
        ("isrc", "US-S1Z-99-00001", "USS1Z9900001"),
        ("isrc", "ISRC: kr-a01-24-00001", "KRA012400001"),
        ("isrc", "IS-RC0-12-34567", "ISRC01234567"),  # Iceland: "ISRC" here is not a prefix
        ("iswc", "T-034.524.680-1", "T0345246801"),
        ("iswc", "t 034524680 1", "T0345246801"),
        ("iswc", "T-330.817.719-3", "T3308177193"),
        ("iswc", "T-102.054.195-9", "T1020541959"),
        ("iswc", "ISWC T-337.058.315-2", "T3370583152"),
        ("isan", "0000-0001-8CFA-0000-I-0000-0000-K", "000000018CFA0000I00000000K"),
        ("isan", "000000018947000000000000", "0000000189470000800000000D"),
        ("isan", "URN:ISAN:0000-0000-D07A-0090-Q-0000-0000-X", "00000000D07A0090Q00000000X"),
        ("isan", "0000-0000-D07A-0090-Q", "00000000D07A0090Q"),
        ("doi", "10.1000/182", "10.1000/182"),
        ("doi", "https://doi.org/10.1038/NPHYS1170", "10.1038/nphys1170"),
        ("doi", "DOI: 10.5555/ABC.DEF", "10.5555/abc.def"),
        ("doi", "https://doi.org/10.1000/a%2Fb", "10.1000/a/b"),
        ("doi", "10.1000.10/xyz", "10.1000.10/xyz"),
        ("url", "https://Example.com", "https://example.com/"),
        ("url", "HTTPS://EXAMPLE.COM:443/a/./b/../c?x=%7e#top", "https://example.com/a/c?x=~"),
        ("url", "http://example.com:80/", "https://example.com/"),
        ("url", "http://example.com:8080/", "https://example.com:8080/"),
        ("url", "https://한국.kr/경로", "https://xn--3e0b707e.kr/%EA%B2%BD%EB%A1%9C"),
        ("url", "https://example.com/%e2%82%ac", "https://example.com/%E2%82%AC"),
        ("url", "https://[2001:DB8::1]:8443/x", "https://[2001:db8::1]:8443/x"),
        ("url", "https://example.com/page#!/route", "https://example.com/page"),
        ("sha256", hashlib.sha256(b"").hexdigest().upper(), hashlib.sha256(b"").hexdigest()),
        ("sha256", "sha256:" + hashlib.sha256(b"x").hexdigest(), hashlib.sha256(b"x").hexdigest()),
        ("iscc", "iscc:kaasmovfh2hgzpw5plpyvftg222vezbxwowdqrsrgm", "ISCC:KAASMOVFH2HGZPW5PLPYVFTG222VEZBXWOWDQRSRGM"),
        ("iscc", "EAASMOVFH2HGZPW5", "ISCC:EAASMOVFH2HGZPW5"),
        ("iscc", "GAAW2PRCRS5LNVZV-IAAUVACQKXE3V44W", "ISCC:KUAG2PRCRS5LNVZVJKAFAVOJXLZZM"),
        ("uci", "G704-000083.2011.27.2.001", "urn:uci:G704-000083.2011.27.2.001"),
        ("uci", "urn:uci:i410-ECN-0102-2009-000-000000001", "urn:uci:I410-ECN-0102-2009-000-000000001"),
        ("uci", "UCI: I804:11001-200000253802", "urn:uci:I804:11001-200000253802"),
        ("uci", "G701-abc%2fdef:C1", "urn:uci:G701-abc%2Fdef:C1"),
        ("kcc", "C-2020-012345", "C-2020-012345"),
        ("kcc", "c2020012345", "C-2020-012345"),
        ("kcc", "C 1987 000001", "C-1987-000001"),
    ],
)
def test_valid_identifier_is_normalized(scheme: str, value: str, normalized: str) -> None:
    assert normalize(scheme, value) == IdentifierKey(scheme, normalized)


def test_scheme_name_is_matched_case_insensitively_and_stripped() -> None:
    assert normalize(" ISBN ", " 0-306-40615-2 ") == IdentifierKey("isbn", "9780306406157")


def test_key_prints_as_scheme_colon_value() -> None:
    assert str(normalize("isbn", "0-306-40615-2")) == "isbn:9780306406157"


def test_current_year_kcc_number_is_accepted() -> None:
    year = timezone.localdate().year

    assert normalize("kcc", f"C-{year}-000001").value == f"C-{year}-000001"


# --- examples: refused ---------------------------------------------------------------------------------------


def test_unknown_scheme_is_refused_on_the_scheme_field() -> None:
    error = refusal("ean", "9780306406157")

    assert error.code == "unknown_scheme"
    assert error.field == "scheme"
    assert error.as_dict()["field"] == "scheme"
    assert "ean" in str(error.message)


@pytest.mark.parametrize("value", ["", "   ", "\t\n"])
def test_empty_value_is_refused(value: str) -> None:
    error = refusal("isbn", value)

    assert error.code == "empty"
    assert error.as_dict() == {"code": "empty", "message": str(error.message), "field": "value"}


@pytest.mark.parametrize(("scheme", "value"), [("sha256", "sha256:"), ("doi", "doi:"), ("uci", "urn:uci:")])
def test_prefix_alone_is_empty(scheme: str, value: str) -> None:
    assert reason(scheme, value) == "empty"


def test_value_over_2000_characters_is_refused() -> None:
    assert reason("doi", "10.1000/" + "x" * 1993) == "too_long"
    assert normalize("doi", "10.1000/" + "x" * 1992).value.startswith("10.1000/")


def test_url_that_grows_past_2000_characters_when_percent_encoded_is_refused() -> None:
    assert reason("url", "https://example.com/" + "가" * 600) == "too_long"


@pytest.mark.parametrize(
    ("scheme", "value", "code"),
    [
        ("isbn", "abc", "invalid_format"),
        ("isbn", "978-0-306-40615", "invalid_length"),
        ("isbn", "0-306-40615-3", "invalid_checksum"),
        ("isbn", "977" + "030640615" + ean13_check("977030640615"), "invalid_component"),
        ("issn", "0317-847", "invalid_length"),
        ("issn", "0317-8472", "invalid_checksum"),
        ("issn", "A317-8471", "invalid_format"),
        ("ismn", "978-0-2306-7118-7", "invalid_component"),
        ("ismn", "M-2306-7118", "invalid_length"),
        ("isrc", "XX-S1Z-99-00001", "invalid_component"),
        ("isrc", "US-S1Z-99-0000", "invalid_length"),
        ("isrc", "US-S1Z-9X-00001", "invalid_format"),
        ("iswc", "T-034.524.680-2", "invalid_checksum"),
        ("iswc", "T-034.524.680", "invalid_length"),
        ("iswc", "X-034.524.680-1", "invalid_format"),
        ("isan", "0000-0001-8CFA-0000-A-0000-0000-K", "invalid_checksum"),
        ("isan", "0000-0001-8CFA", "invalid_length"),
        ("isan", "0000-0001-8CFG-0000", "invalid_format"),
        ("doi", "10.1000", "invalid_format"),
        ("doi", "11.1000/abc", "invalid_format"),
        ("doi", "10.abc/def", "invalid_format"),
        ("doi", "10.1000/has space", "invalid_format"),
        ("doi", "https://doi.org/10.1000/a%0Ab", "invalid_format"),
        ("url", "example.com/page", "invalid_format"),
        ("url", "//example.com/page", "invalid_format"),
        ("url", "mailto:someone@example.com", "invalid_format"),
        ("url", "ftp://example.com/file", "invalid_component"),
        ("url", "javascript://example.com/%0Aalert(1)", "invalid_component"),
        ("url", "https:///path-only", "invalid_component"),
        ("url", "http://", "invalid_component"),
        ("url", "https://user:secret@example.com/", "invalid_component"),
        ("url", "https://example.com:99999/", "invalid_component"),
        ("url", "https://example.com:port/", "invalid_component"),
        ("url", "https://exa mple.com/", "invalid_component"),
        ("sha256", "ab" * 31, "invalid_length"),
        ("sha256", "ab" * 33, "invalid_length"),
        ("sha256", "zz" * 32, "invalid_format"),
        ("iscc", "not an iscc", "invalid_format"),
        ("iscc", "ISCC:AAAA", "invalid_format"),
        ("iscc", "ISCC:MAIAAAAAAAAAAEAB", "invalid_component"),  # an ISCC-ID
        ("uci", "G704", "invalid_format"),
        ("uci", "GG04-000083", "invalid_format"),
        ("uci", "G704-has space", "invalid_format"),
        ("uci", "urn:uci:G704-000083:X1", "invalid_format"),
        ("kcc", "C-1986-012345", "invalid_component"),
        ("kcc", f"C-{timezone.localdate().year + 1}-012345", "invalid_component"),
        ("kcc", "C-2020-12345", "invalid_length"),
        ("kcc", "K-2020-012345", "invalid_format"),
        ("kcc", "C-20X0-012345", "invalid_format"),
    ],
)
def test_invalid_identifier_is_refused_with_its_reason(scheme: str, value: str, code: str) -> None:
    error = refusal(scheme, value)

    assert error.code == code
    assert error.field == "value"
    assert str(error.message)


def test_every_refusal_message_names_what_is_wrong() -> None:
    messages = {
        code: str(refusal(scheme, value).message)
        for scheme, value, code in [
            ("isbn", "0-306-40615-3", "invalid_checksum"),
            ("isbn", "12345", "invalid_length"),
            ("url", "ftp://example.com/", "invalid_component"),
            ("url", "example.com", "invalid_format"),
        ]
    }

    assert "ISBN" in messages["invalid_checksum"]
    assert "ISBN" in messages["invalid_length"]
    assert "http" in messages["invalid_component"]
    assert "http" in messages["invalid_format"]


@given_settings
@given(digits=st.text("0123456789", min_size=13, max_size=13), data=st.data())
def test_an_isbn13_in_any_spelling_gets_python_stdnums_answer(digits: str, data: st.DataObject) -> None:
    """The fast paths for compact and hyphenated ISBN-13 answer as python-stdnum does, valid or not."""
    from stdnum import isbn as stdnum_isbn
    from stdnum.exceptions import ValidationError

    body = data.draw(st.sampled_from(["978", "979", digits[:3]])) + digits[3:12]
    number = body + data.draw(st.sampled_from([ean13_check(body), digits[12]]))
    spelled = data.draw(spellings(number))
    try:
        expected: str | None = stdnum_isbn.compact(stdnum_isbn.to_isbn13(stdnum_isbn.validate(spelled)))
    except ValidationError:
        expected = None

    result = outcome("isbn", spelled)

    assert (result.value if isinstance(result, IdentifierKey) else None) == expected
