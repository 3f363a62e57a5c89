"""Conformance vectors for identifier normalization: what ``identifier_normalize`` answers for chosen inputs.

The lab-side client (``client/``) normalizes identifiers offline and must land on exactly the server's keys,
or a refused work would pass its filter. ``manage.py normalization_vectors`` writes these vectors to
``client/tests/vectors/normalization.json``; the server's tests check the committed file is what the normalizer
gives today and the client's tests run every vector through the client.
"""

from __future__ import annotations

import json
from typing import Any

from registry.errors import InvalidIdentifier
from registry.identifiers import (
    TRACKING_PARAMETER_PREFIXES,
    TRACKING_PARAMETERS,
    Scheme,
    identifier_normalize,
    url_prefix_covers,
)

VECTORS_PATH = "client/tests/vectors/normalization.json"
# Written next to VECTORS_PATH by the same command: the URL rules that are not a key of one input.
URL_VECTORS_NAME = "urls.json"
URL_VECTORS_PATH = f"client/tests/vectors/{URL_VECTORS_NAME}"
REGENERATE_COMMAND = f"python manage.py normalization_vectors --out {VECTORS_PATH}"

# The canonical URL form (README, "Canonical URLs"), as a table: each input and the key it must have. Both the
# server's tests (tests/registry/test_url_canonical.py) and, through the vectors file, the client's check it.
URL_CANONICAL: tuple[tuple[str, str], ...] = (
    # tracking parameters, from the one list (registry.identifiers.TRACKING_PARAMETERS and its prefixes)
    ("https://blog.example.kr/spring-garden/1?utm_source=twitter", "https://blog.example.kr/spring-garden/1"),
    (
        "https://blog.example.kr/spring-garden/1?utm_source=a&utm_medium=b&utm_campaign=c",
        "https://blog.example.kr/spring-garden/1",
    ),
    ("https://ex.kr/a?id=7&utm_content=x", "https://ex.kr/a?id=7"),
    ("https://ex.kr/a?UTM_Source=x&id=7", "https://ex.kr/a?id=7"),
    ("https://ex.kr/a?fbclid=IwAR0&gclid=Cj0&mc_eid=1&mc_cid=2&igshid=3&msclkid=4", "https://ex.kr/a"),
    ("https://ex.kr/a?b=2&fbclid=x&a=1", "https://ex.kr/a?b=2&a=1"),
    ("https://ex.kr/a?utm=1&source=2", "https://ex.kr/a?utm=1&source=2"),
    ("https://ex.kr/a?xutm_source=1", "https://ex.kr/a?xutm_source=1"),
    ("https://ex.kr/?utm_source=x", "https://ex.kr/"),
    # the fragment and the default port
    ("https://ex.kr/a#comments", "https://ex.kr/a"),
    ("https://ex.kr:443/a", "https://ex.kr/a"),
    ("http://ex.kr:80/a", "https://ex.kr/a"),
    ("http://ex.kr:443/a", "https://ex.kr/a"),
    ("http://ex.kr:8080/a", "https://ex.kr:8080/a"),
    # the trailing slash of the path; the root keeps its one slash
    ("https://ex.kr/blog/", "https://ex.kr/blog"),
    ("https://ex.kr/blog//", "https://ex.kr/blog"),
    ("https://ex.kr/blog/?page=2", "https://ex.kr/blog?page=2"),
    ("https://ex.kr", "https://ex.kr/"),
    ("https://ex.kr/", "https://ex.kr/"),
    ("https://ex.kr/?q=1", "https://ex.kr/?q=1"),
    # http/https and a leading www.
    ("http://ex.kr/a", "https://ex.kr/a"),
    ("https://www.ex.kr/a", "https://ex.kr/a"),
    ("http://WWW.Ex.KR/a/", "https://ex.kr/a"),
    ("https://www.www.ex.kr/", "https://ex.kr/"),
    ("https://www.kr/", "https://www.kr/"),
    ("https://wwwex.kr/", "https://wwwex.kr/"),
    ("https://blog.www.ex.kr/", "https://blog.www.ex.kr/"),
    ("https://www2.ex.kr/", "https://www2.ex.kr/"),
    # what is kept: the path's case, the other parameters and their order, a non-default port, IPv6
    ("https://ex.kr/Spring-Garden", "https://ex.kr/Spring-Garden"),
    ("https://[2001:DB8::1]:443/x/", "https://[2001:db8::1]/x"),
)

# URL-prefix coverage (registry.identifiers.url_prefix_covers over canonical keys): prefix, URL, covered.
URL_PREFIX_COVERAGE: tuple[tuple[str, str, bool], ...] = (
    ("https://ex.kr/blog/", "https://ex.kr/blog/post", True),
    ("https://ex.kr/blog/", "https://ex.kr/blog/", True),
    ("https://ex.kr/blog/", "https://ex.kr/blog", True),
    ("https://ex.kr/blog/", "https://ex.kr/blog?page=2", True),
    ("https://ex.kr/blog/", "https://ex.kr/blogger", False),
    ("https://ex.kr/blog", "https://ex.kr/blog/post", True),
    ("https://ex.kr/blog", "https://ex.kr/blogger", False),
    ("https://ex.kr/blog/", "http://www.ex.kr/blog/post?utm_source=x", True),
    ("https://www.ex.kr/blog/", "https://ex.kr/blog/post", True),
    ("http://ex.kr/", "https://ex.kr/anything", True),
    ("https://ex.kr/", "https://sub.ex.kr/anything", False),
    ("https://ex.kr/", "https://ex.kr:8443/anything", False),
    ("https://ex.kr/page?id=1", "https://ex.kr/page?id=1", True),
    ("https://ex.kr/page?id=1", "https://ex.kr/page?id=1&part=2", True),
    ("https://ex.kr/page?id=1", "https://ex.kr/page?id=10", False),
    ("https://ex.kr/page?id=1", "https://ex.kr/page", False),
)

# Valid spellings per scheme: each is also written with the variants of _spellings (case, surrounding space,
# a changed last character), so each rule is crossed with each spelling.
_VALID: dict[str, list[str]] = {
    "isbn": [
        "9780306406157",
        "978-0-306-40615-7",
        "978 0 306 40615 7",
        "0-306-40615-2",
        "0306406152",
        "ISBN 0-306-40615-2",
        "ISBN: 978-0-306-40615-7",
        "ISBN-10: 0-306-40615-2",
        "ISBN-13 978-0-306-40615-7",
        "isbn13: 9780306406157",
        "0-8044-2957-X",
        "080442957x",
        "979-10-90636-07-1",
        "9791090636071",
    ],
    "issn": ["0317-8471", "03178471", "ISSN 0317-8471", "ISSN:0317-8471", "issn0317-8471", "2049-3630", "0000-006x"],
    "ismn": ["979-0-2306-7118-7", "9790230671187", "M-2306-7118-7", "M230671187", "ISMN 979-0-2306-7118-7"],
    "isrc": ["US-S1Z-99-00001", "USS1Z9900001", "us-s1z-99-00001", "ISRC: US-S1Z-99-00001", "ISRCUSS1Z9900001"],
    "iswc": ["T-034.524.680-1", "T0345246801", "t 034524680 1", "T-330.817.719-3", "ISWC T-337.058.315-2"],
    "isan": [
        "0000-0001-8CFA-0000-I-0000-0000-K",
        "000000018947000000000000",
        "URN:ISAN:0000-0000-D07A-0090-Q-0000-0000-X",
        "ISAN 0000-0000-D07A-0090-Q",
        "0000-0000-d07a-0090-q",
    ],
    "doi": [
        "10.1000/182",
        "10.1038/NPHYS1170",
        "https://doi.org/10.1038/NPHYS1170",
        "http://dx.doi.org/10.1038/nphys1170",
        "HTTPS://DOI.ORG/10.1000/a%2Fb",
        "doi:10.5555/ABC.DEF",
        "DOI: 10.5555/ABC.DEF",
        "info:doi/10.1000/182",
        "10.1000.10/xyz",
        "10.1002/(SICI)1097-4571(199806)49:8<693::AID-ASI4>3.0.CO;2-O",
        "10.1000/한국어",
    ],
    "url": [
        "https://example.com",
        "https://Example.COM/Path",
        "HTTP://EXAMPLE.COM/",
        "http://example.com:80/",
        "https://example.com:443/a",
        "http://example.com:443/",
        "https://example.com:80/",
        "http://example.com:8080/",
        "https://example.com/a/./b/../c",
        "https://example.com/a//b",
        "https://example.com/page#top",
        "https://example.com/page#!/route",
        "https://example.com/?",
        "https://example.com/?b=2&a=1",
        "https://example.com/?q=a b",
        "https://example.com/%7euser",
        "https://example.com/%e2%82%ac",
        "https://example.com/€",
        "https://example.com/a%2fb",
        "https://example.com/a+b?c=d+e",
        "https://example.com./",
        "https://www.example.com/",
        "https://한국.kr/경로",
        "https://xn--3e0b707e.kr/",
        "https://BÜCHER.de/",
        "https://example.com/path/",
        "https://[2001:DB8::1]:8443/x",
        "https://127.0.0.1/",
        "https://sub_domain.example.com/",
        "https://example.com/?utm_source=x",
        "https://example.com/a?x=%7e",
    ],
    "sha256": [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        "sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881",
        "SHA-256: 2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881",
    ],
    "iscc": [
        "ISCC:KAASMOVFH2HGZPW5PLPYVFTG222VEZBXWOWDQRSRGM",
        "iscc:kaasmovfh2hgzpw5plpyvftg222vezbxwowdqrsrgm",
        "EAASMOVFH2HGZPW5",
        "GAAW2PRCRS5LNVZV-IAAUVACQKXE3V44W",
    ],
    "uci": [
        "G704-000083.2011.27.2.001",
        "urn:uci:G704-000083.2011.27.2.001",
        "URN:UCI:g704-000083.2011.27.2.001",
        "urn:uci:i410-ECN-0102-2009-000-000000001",
        "UCI: I804:11001-200000253802",
        "UCI I804:11001-200000253802",
        "G701-abc%2fdef:C1",
        "G701-Abc:C1-R2-F3",
        "K123+SUB-x.y",
    ],
    "kcc": ["C-2020-012345", "c2020012345", "C 1987 000001", "C-2020 012345", "c-2001-000100"],
}

# Refused inputs, each chosen for one reason the server gives.
_INVALID: dict[str, list[str]] = {
    "isbn": [
        "abc",
        "978-0-306-40615",
        "97803064061570",
        "0-306-40615-3",
        "9780306406158",
        "9770306406158",
        "977-0-306-40615-8",
        "ISBN",
        "ISBN: ",
        "ISBN 978-0-306-4O615-7",
    ],
    "issn": ["0317-847", "0317-8472", "A317-8471", "ISSN", "03178471X"],
    "ismn": ["978-0-2306-7118-7", "M-2306-7118", "979-0-2306-7118-8", "M-2306-7118-8", "X-2306-7118-7"],
    "isrc": ["XX-S1Z-99-00001", "US-S1Z-99-0000", "US-S1Z-9X-00001", "ISRC:", "US-S1Z-99-000011"],
    "iswc": ["T-034.524.680-2", "T-034.524.680", "X-034.524.680-1", "T", "ISWC T-034.524.680-1-1", "T03452468O1"],
    "isan": [
        "0000-0001-8CFA-0000-A-0000-0000-K",
        "0000-0001-8CFA",
        "0000-0001-8CFG-0000",
        "0000-0001-8CFA-0000-I-0000-0000-A",
        "URN:ISAN:",
    ],
    "doi": [
        "10.1000",
        "11.1000/abc",
        "10.abc/def",
        "10.1000/has space",
        "https://doi.org/10.1000/a%0Ab",
        "https://doi.org/",
        "doi:",
        "10/abc",
        "10.1000/",
        "https://example.org/10.1000/182",
    ],
    "url": [
        "example.com/page",
        "//example.com/page",
        "www.example.com",
        "mailto:someone@example.com",
        "ftp://example.com/file",
        "javascript://example.com/%0Aalert(1)",
        "https:///path-only",
        "http://",
        "https://user:secret@example.com/",
        "https://user@example.com/",
        "https://example.com:99999/",
        "https://example.com:0/",
        "https://example.com:port/",
        "https://exa mple.com/",
        "https://exa%20mple.com/",
        "https://[::1/",
        "https://-example.com/",
        "https://example..com/",
        "https://example.com/" + "가" * 600,
    ],
    "sha256": [
        "ab" * 31,
        "ab" * 33,
        "zz" * 32,
        "sha256:",
        "sha256: " + "g" * 64,
        "0x" + "ab" * 31,
    ],
    "iscc": [
        "not an iscc",
        "ISCC:AAAA",
        "ISCC:MAIAAAAAAAAAAEAB",
        "ISCC:",
        "KAASMOVFH2HGZPW5PLPYVFTG222VEZBXWOWDQRSRG!",
    ],
    "uci": [
        "G704",
        "GG04-000083",
        "G704-has space",
        "urn:uci:G704-000083:X1",
        "urn:uci:",
        "G704-",
        "G704-abc%2",
        "G704-a:C1-C2-C3-C4",
    ],
    "kcc": ["C-1986-012345", "C-9999-012345", "C-2020-12345", "K-2020-012345", "C-20X0-012345", "C", "C-2020-0123456"],
}


def _spellings(value: str) -> list[str]:
    """The value and the variants every scheme is checked with."""
    changed_last = value[:-1] + ("0" if value[-1] != "0" else "1")
    return [value, f"  {value}\t", value.lower(), value.upper(), changed_last]


def _inputs() -> list[tuple[str, str]]:
    pairs: set[tuple[str, str]] = set()
    for scheme in Scheme.values:
        for value in _VALID[scheme]:
            pairs.update((scheme, spelling) for spelling in _spellings(value))
        pairs.update((scheme, value) for value in _INVALID[scheme])
        # What every scheme refuses alike: nothing, only space, too much.
        pairs.update([(scheme, ""), (scheme, " \t\n"), (scheme, "1" * 2001)])
    pairs.update(("url", value) for value, _key in URL_CANONICAL)
    pairs.update(("url", value) for prefix, url, _covers in URL_PREFIX_COVERAGE for value in (prefix, url))
    # The scheme name itself: stripped and case-folded, or unknown.
    pairs.update(
        [
            (" ISBN ", "0-306-40615-2"),
            ("Doi", "10.1000/182"),
            ("URL", "https://example.com/"),
            ("isbn10", "0-306-40615-2"),
            ("ark", "ark:/13030/tf5p30086k"),
            ("", "9780306406157"),
        ]
    )
    return sorted(pairs)


def normalization_vectors() -> list[dict[str, Any]]:
    """Every input with the server's answer: ``output`` and ``key`` (``scheme:value``), or ``error`` (its code)."""
    vectors: list[dict[str, Any]] = []
    for scheme, value in _inputs():
        vector: dict[str, Any] = {"scheme": scheme, "input": value}
        try:
            key = identifier_normalize(scheme=scheme, value=value)
        except InvalidIdentifier as error:
            vector["error"] = error.code
        else:
            vector["output"] = key.value
            vector["key"] = str(key)
        vectors.append(vector)
    return vectors


def normalization_vectors_json() -> str:
    """The vectors file's exact text: one vector a line, so a regenerated file diffs line by line."""
    lines = ",\n".join(json.dumps(vector, ensure_ascii=False, sort_keys=True) for vector in normalization_vectors())
    return f"[\n{lines}\n]\n"


def url_vectors() -> dict[str, Any]:
    """The URL rules beyond one key: the tracking-parameter list and prefix coverage, with the server's answers."""
    return {
        "tracking_parameters": sorted(TRACKING_PARAMETERS),
        "tracking_parameter_prefixes": list(TRACKING_PARAMETER_PREFIXES),
        "prefix_coverage": [
            {
                "prefix": prefix,
                "url": url,
                "covers": url_prefix_covers(
                    identifier_normalize(scheme="url", value=prefix).value,
                    identifier_normalize(scheme="url", value=url).value,
                ),
            }
            for prefix, url, _covers in URL_PREFIX_COVERAGE
        ],
    }


def url_vectors_json() -> str:
    return json.dumps(url_vectors(), ensure_ascii=False, indent=1, sort_keys=True) + "\n"
