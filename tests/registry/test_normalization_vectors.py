"""The normalization conformance vectors and the lab-side client's normalizer against the server's.

``client/tests/vectors/normalization.json`` is what the client's own tests check; here it must equal what
``registry.identifiers`` answers today, and the client (``client/src``, on pytest's ``pythonpath``) must give the
server's answer on random inputs around valid identifiers too. The client is installed by nothing here: it is
imported from its source, as a lab would after ``pip install ./client``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import optout_client
from django.conf import settings as django_settings
from django.core.management import call_command
from hypothesis import event, given, settings
from hypothesis import strategies as st

from registry.errors import InvalidIdentifier
from registry.identifiers import Scheme, identifier_normalize
from registry.normalization_vectors import (
    REGENERATE_COMMAND,
    VECTORS_PATH,
    normalization_vectors,
    normalization_vectors_json,
)

VECTORS_FILE = Path(django_settings.BASE_DIR) / VECTORS_PATH


def test_committed_vectors_are_what_the_normalizer_gives_today() -> None:
    committed = VECTORS_FILE.read_text(encoding="utf-8")

    assert committed == normalization_vectors_json(), (
        f"{VECTORS_PATH} is not what registry/identifiers.py answers today; if the change is intended, "
        f"regenerate it with `{REGENERATE_COMMAND}` and commit it (the client must then follow)."
    )


def test_vectors_are_deterministic_and_sorted() -> None:
    vectors = normalization_vectors()

    assert normalization_vectors_json() == normalization_vectors_json()
    assert [(v["scheme"], v["input"]) for v in vectors] == sorted({(v["scheme"], v["input"]) for v in vectors})


def test_vectors_cover_every_scheme_and_every_reason() -> None:
    vectors = normalization_vectors()
    answered = {(v["scheme"], "error" in v) for v in vectors}
    reasons = {v["error"] for v in vectors if "error" in v}

    assert {(scheme, refused) for scheme in Scheme.values for refused in (False, True)} <= answered
    assert reasons == {
        "unknown_scheme",
        "empty",
        "too_long",
        "invalid_format",
        "invalid_length",
        "invalid_checksum",
        "invalid_component",
    }


def test_command_writes_the_vectors_file(tmp_path: Path) -> None:
    out = tmp_path / "vectors" / "normalization.json"

    call_command("normalization_vectors", "--out", str(out), stdout=io.StringIO())

    assert out.read_text(encoding="utf-8") == normalization_vectors_json()
    assert json.loads(out.read_text(encoding="utf-8")) == normalization_vectors()


# --- the client against the server on random inputs -----------------------------------------------------------


def _server(scheme: str, value: str) -> tuple[str, str]:
    try:
        return ("key", str(identifier_normalize(scheme=scheme, value=value)))
    except InvalidIdentifier as error:
        return ("error", str(error.code))


def _client(scheme: str, value: str) -> tuple[str, str]:
    try:
        return ("key", str(optout_client.identifier_normalize(scheme, value)))
    except optout_client.InvalidIdentifier as error:
        return ("error", error.code)


_SEEDS = sorted({(v["scheme"], v["input"]) for v in normalization_vectors() if "output" in v})
# Characters the rules care about: separators, prefixes' letters, check characters, URL delimiters and escapes,
# case pairs, non-ASCII letters and spaces (IDNA, Unicode whitespace), and characters no scheme accepts.
_EDIT_CHARS = st.sampled_from(list("0123456789Xx-:. /\\%#?&=@[]+_~TtCcMmIiSsRrNnUuAaFf\t\u00a0\u3000é한€\x00\ufffd"))


@st.composite
def _near_valid(draw: st.DrawFn) -> tuple[str, str]:
    scheme, value = draw(st.sampled_from(_SEEDS))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        position = draw(st.integers(min_value=0, max_value=len(value)))
        edit = draw(st.sampled_from(["insert", "delete", "replace", "swapcase"]))
        if edit == "insert":
            value = value[:position] + draw(_EDIT_CHARS) + value[position:]
        elif edit == "delete":
            value = value[:position] + value[position + 1 :]
        elif edit == "replace":
            value = value[:position] + draw(_EDIT_CHARS) + value[position + 1 :]
        else:
            value = value.swapcase()
    return scheme, value


@settings(max_examples=400, deadline=None)
@given(_near_valid())
def test_client_and_server_agree_near_valid_identifiers(pair: tuple[str, str]) -> None:
    scheme, value = pair
    expected = _server(scheme, value)
    event(f"{scheme} {expected[0] if expected[0] == 'key' else expected[1]}")

    assert _client(scheme, value) == expected


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(Scheme.values), st.text(max_size=60))
def test_client_and_server_agree_on_any_text(scheme: str, value: str) -> None:
    assert _client(scheme, value) == _server(scheme, value)
