"""The fast paths give exactly the full normalizer's keys: on every conformance vector and on random inputs."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optout_client import InvalidIdentifier, SchemeUnavailable, identifier_normalize, iscc_available
from optout_client.fastkeys import fast_value, key_batch, url_host

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "vectors" / "normalization.json").read_text("utf-8")
)


def _full(scheme: str, value: Any) -> tuple[str | None, str | None]:
    """(key, error code) by the full normalizer."""
    if not isinstance(value, str):
        return None, "empty" if value is None else "invalid_format"
    try:
        return str(identifier_normalize(scheme, value)), None
    except InvalidIdentifier as error:
        return None, error.code
    except SchemeUnavailable:
        return None, "scheme_unavailable"


def _batch_answers(scheme: str, values: list[Any]) -> list[tuple[str | None, str | None]]:
    batch = key_batch(scheme, values)
    answers: list[tuple[str | None, str | None]] = [(None, None)] * len(values)
    for position, key in zip(batch.index, batch.keys, strict=True):
        answers[position] = (key.decode("utf-8"), None)
    for position, code in batch.invalid.items():
        answers[position] = (None, code)
    return answers


def test_every_vector_through_the_batch_path() -> None:
    by_scheme: dict[str, list[dict[str, Any]]] = {}
    for vector in VECTORS:
        if vector["scheme"].strip().lower() == "iscc" and not iscc_available():
            continue
        by_scheme.setdefault(vector["scheme"], []).append(vector)
    for scheme, vectors in by_scheme.items():
        # Repeated past 64 items so that the vectorized ISBN path runs too.
        values = [v["input"] for v in vectors] * (1 + 64 // len(vectors))
        answers = _batch_answers(scheme, values)
        for value, (key, code) in zip(values, answers, strict=True):
            vector = next(v for v in vectors if v["input"] == value)
            assert (key, code) == (vector.get("key"), vector.get("error")), (scheme, value)


def _isbn13(digits: str) -> str:
    total = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(digits))
    return digits + str((10 - total % 10) % 10)


def test_isbn_batches_mixing_every_shape_agree_with_the_normalizer() -> None:
    rng = random.Random(14)  # noqa: S311
    values: list[Any] = []
    for _ in range(3000):
        body = rng.choice(["978", "979", "977"]) + "".join(rng.choice("0123456789") for _ in range(9))
        good = _isbn13(body)
        shape = rng.randrange(9)
        if shape == 0:
            values.append(good[:-1] + str((int(good[-1]) + 1) % 10))  # wrong check digit
        elif shape == 1:
            values.append(f"ISBN {good[:3]}-{good[3:]}")
        elif shape == 2:
            ten = "".join(rng.choice("0123456789") for _ in range(9))
            check = sum((i + 1) * int(d) for i, d in enumerate(ten)) % 11
            values.append(ten + ("X" if check == 10 else str(check)))
        elif shape == 3:
            values.append(rng.choice([None, "", " ", "١٢٣٤٥٦٧٨٩٠١٢٣", good + " ", good.replace("9", "٩"), 42]))
        else:
            values.append(good)
    for chunk in (values, values[:63], [v for v in values if isinstance(v, str) and len(v) == 13]):
        assert _batch_answers("isbn", chunk) == [_full("isbn", value) for value in chunk]


_url_token = (
    st.sampled_from(list("abcXY019-._~/?#&=%:@!$'()*+,;[] é\\^`{|}\"<>"))
    | st.sampled_from(["..", "//", "/./", "/../", "??", "&&"])
    | st.integers(0, 255).map(lambda byte: f"%{byte:02X}")
    | st.integers(0, 255).map(lambda byte: f"%{byte:02x}")
)
_url_text = st.tuples(st.sampled_from(["/", "", "?"]), st.lists(_url_token, max_size=14)).map(
    lambda parts: parts[0] + "".join(parts[1])
)


# Mostly characters a normalized URL keeps, so that most examples reach the fast path's finer rules.
_near_normal = st.lists(
    st.sampled_from(list("abz09-._~/!$&'()*+,;=:@[]?")) | st.integers(0, 127).map(lambda byte: f"%{byte:02X}"),
    max_size=16,
).map(lambda tokens: "/" + "".join(tokens))


@settings(max_examples=3000, deadline=None)
@given(
    st.sampled_from(["http://", "https://", "HTTP://", "https://"]),
    st.sampled_from(
        [
            "example.com",
            "a.b.example",
            "xn--bcher-kva.example",
            "ex--ample.com",
            "EXAMPLE.com",
            "ex.com.",
            "127.0.0.1",
            "a_b.example",
            "example.com:443",
            "example.com:8080",
        ]
    ),
    _url_text | _near_normal,
)
def test_the_url_fast_path_equals_the_normalizer(scheme: str, host: str, rest: str) -> None:
    value = scheme + host + rest
    fast = fast_value("url", value)
    key, code = _full("url", value)
    if fast is not None:
        assert key == f"url:{fast}", value
    assert _batch_answers("url", [value]) == [(key, code)]
    if key is not None:
        assert url_host(key[4:]) == __import__("urllib.parse").parse.urlsplit(key[4:]).hostname


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("10./abcXYZ:;()<>- \t%한")), max_size=25))
def test_the_doi_fast_path_equals_the_normalizer(rest: str) -> None:
    for value in ("10." + rest, rest):
        fast = fast_value("doi", value)
        key, code = _full("doi", value)
        if fast is not None:
            assert key == f"doi:{fast}"
        assert _batch_answers("doi", [value]) == [(key, code)]


def test_unknown_scheme_makes_every_item_invalid() -> None:
    assert key_batch("ark", ["a", "b"]).invalid == {0: "unknown_scheme", 1: "unknown_scheme"}


@pytest.mark.parametrize("scheme", ["issn", "sha256", "kcc", "uci"])
def test_other_schemes_batch_equals_scalar(scheme: str) -> None:
    values = [v["input"] for v in VECTORS if v["scheme"].strip().lower() == scheme]
    assert _batch_answers(scheme, values) == [_full(scheme, value) for value in values]


@settings(max_examples=2000, deadline=None)
@given(
    st.sampled_from(["", "ISBN ", "isbn-13: ", "ISBN10:", "ISBN-13 ", " ", "ISBN:"]),
    st.lists(st.sampled_from(list("0123456789") * 4 + ["-", " ", "X", "x", "--"]), min_size=8, max_size=18),
    st.sampled_from(["", " ", "\t"]),
)
def test_decorated_isbns_fast_path_equals_the_normalizer(prefix: str, body: list[str], suffix: str) -> None:
    value = prefix + "".join(body) + suffix
    fast = fast_value("isbn", value)
    key, code = _full("isbn", value)
    if fast is not None:
        assert key == f"isbn:{fast}", value
    assert _batch_answers("isbn", [value]) == [(key, code)]


def test_decorated_isbns_that_are_valid_take_the_fast_path() -> None:
    assert fast_value("isbn", "ISBN 978-0-306-40615-7") == "9780306406157"
    assert fast_value("isbn", "ISBN-10: 0-306-40615-2") == "9780306406157"
    assert fast_value("url", "HTTPS://WWW.Example.COM/a/B?x=1#top") == "https://example.com/a/B?x=1"
