"""The client normalizes every conformance vector exactly as the server did when it wrote the file.

``vectors/normalization.json`` is generated from the server's normalizer (``python manage.py normalization_vectors``
in the server repository); the server's tests check it is current. A difference here means the client would
compute another key than the registry, so a refused work could pass a filter.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from optout_client import (
    SCHEMES,
    IdentifierKey,
    InvalidIdentifier,
    SchemeUnavailable,
    identifier_normalize,
    iscc_available,
)

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "vectors" / "normalization.json").read_text("utf-8")
)


def _needs_iscc(vector: dict[str, Any]) -> bool:
    return vector["scheme"].strip().lower() == "iscc" and not iscc_available()


@pytest.mark.parametrize("vector", VECTORS, ids=[f"{v['scheme']}:{v['input'][:40]!r}" for v in VECTORS])
def test_client_gives_the_servers_answer(vector: dict[str, Any]) -> None:
    if _needs_iscc(vector):
        pytest.skip("iscc-core is not installed (pip install './client[iscc]')")
    if "error" in vector:
        with pytest.raises(InvalidIdentifier) as caught:
            identifier_normalize(vector["scheme"], vector["input"])
        assert caught.value.code == vector["error"]
    else:
        key = identifier_normalize(vector["scheme"], vector["input"])
        assert key.value == vector["output"]
        assert str(key) == vector["key"]


def test_vectors_cover_every_scheme_valid_and_refused() -> None:
    answered = {(v["scheme"], "error" in v) for v in VECTORS}

    assert {(scheme, refused) for scheme in SCHEMES for refused in (False, True)} <= answered


# Alphabets close to the identifiers' own, so most examples reach the scheme rules rather than the format check.
_scheme_texts = st.sampled_from(SCHEMES).flatmap(
    lambda scheme: st.tuples(
        st.just(scheme),
        st.text(alphabet="0123456789Xx-: .TCMIShtpsw/%abcdefABCDEF", max_size=40),
    )
)


@given(_scheme_texts)
def test_a_key_normalizes_to_itself(pair: tuple[str, str]) -> None:
    scheme, value = pair
    try:
        key = identifier_normalize(scheme, value)
    except (InvalidIdentifier, SchemeUnavailable):
        return
    # A lab may store keys and normalize them again: that must not move them.
    assert identifier_normalize(scheme, key.value) == key
    assert key == IdentifierKey(scheme, key.value)


def test_iscc_without_iscc_core_is_unavailable_not_invalid() -> None:
    if iscc_available():
        pytest.skip("iscc-core is installed")
    with pytest.raises(SchemeUnavailable):
        identifier_normalize("iscc", "ISCC:EAASMOVFH2HGZPW5")


def test_client_imports_nothing_from_the_server() -> None:
    code = "import sys, optout_client; bad = sorted(m for m in sys.modules if m.split('.')[0] in %r); print(bad)"
    server = ("django", "rest_framework", "registry", "optout", "core", "compensation", "portal", "config")
    result = subprocess.run(
        [sys.executable, "-c", code % (server,)], capture_output=True, text=True, check=True, cwd=Path(__file__).parent
    )

    assert result.stdout.strip() == "[]"
