"""The client's RFC 9162 verifiers against the published RFC 6962 vectors (transparency-dev/merkle testdata):
every happy path verifies and every tampered variant (wrong leaf, index, size, root, a flipped bit, a hash added,
removed or moved, garbage before or after) is refused."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from optout_client.transparency import LogError, consistency_verify, inclusion_verify

VECTORS = json.loads((Path(__file__).parent / "vectors" / "rfc6962" / "proofs.json").read_text())


def _b(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def _proof(vector: dict[str, Any]) -> list[bytes]:
    return [_b(node) for node in vector.get("proof") or []]


@pytest.mark.parametrize("vector", VECTORS["inclusion"], ids=lambda v: v["file"])
def test_inclusion_vectors(vector: dict[str, Any]) -> None:
    def check() -> None:
        inclusion_verify(
            vector["leafIdx"], vector["treeSize"], _b(vector["leafHash"]), _proof(vector), _b(vector["root"])
        )

    if vector["wantErr"]:
        with pytest.raises(LogError):
            check()
    else:
        check()


@pytest.mark.parametrize("vector", VECTORS["consistency"], ids=lambda v: v["file"])
def test_consistency_vectors(vector: dict[str, Any]) -> None:
    def check() -> None:
        consistency_verify(vector["size1"], vector["size2"], _b(vector["root1"]), _b(vector["root2"]), _proof(vector))

    if vector["wantErr"]:
        with pytest.raises(LogError):
            check()
    else:
        check()


def test_the_vectors_hold_both_verdicts() -> None:
    for kind in ("inclusion", "consistency"):
        verdicts = {vector["wantErr"] for vector in VECTORS[kind]}
        assert verdicts == {True, False}, kind
