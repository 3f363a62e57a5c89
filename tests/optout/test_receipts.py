"""Receipts: Ed25519 signatures over lookup answers, verifiable by anyone with the published key."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from rest_framework.test import APIClient

from core.jcs import canonical_json
from optout.api.receipt_views import well_known_keys
from optout.receipts import public_keys, receipt_sign, receipt_verify, signing_key
from tests.settings_runs import settings_runs_for

ROOT = Path(__file__).resolve().parents[2]
KEYS_URL = "/.well-known/optout-registry/keys.json"
VERIFY_URL = "/api/v1/receipts/verify"


@pytest.fixture(autouse=True)
def _no_configured_key(settings: Any, tmp_path: Path) -> Iterator[None]:
    """Each test starts from the development key of its own DATA_DIR, unless it configures one."""
    settings.DATA_DIR = tmp_path
    settings.RECEIPT_SIGNING_KEY = None
    settings.RECEIPT_SIGNING_KEY_FILE = None
    settings.RECEIPT_RETIRED_PUBLIC_KEYS = []
    signing_key.cache_clear()
    yield
    signing_key.cache_clear()


def _new_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _seed(key: Ed25519PrivateKey) -> str:
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return base64.b64encode(raw).decode()


def _public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _use_key(settings: Any, key: Ed25519PrivateKey, *, retired: tuple[Ed25519PrivateKey, ...] = ()) -> None:
    settings.RECEIPT_SIGNING_KEY = _seed(key)
    settings.RECEIPT_RETIRED_PUBLIC_KEYS = [base64.b64encode(_public(old)).decode() for old in retired]
    signing_key.cache_clear()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _payload() -> dict[str, Any]:
    """A lookup answer as the lookup view builds it: JSON types only, no floats."""
    return {
        "request": {"purpose": "train-genai", "items": [{"isbn": "9788936434021"}, {"url": "https://블로그.kr/글/1"}]},
        "results": [
            {
                "index": 0,
                "key": "isbn:9788936434021",
                "status": "refused",
                "may_train": False,
                "work": {"id": 17, "title": "별 헤는 밤"},
                "refusal": 42,
                "pending_refusal": None,
            },
            {"index": 1, "key": "url:https://blog.example.kr/글/1", "status": "unregistered", "may_train": True},
        ],
        "issued_at": "2026-03-02T09:00:00+09:00",
        "caller": "lab:3",
        "last_refusal_event_id": 4812,
    }


def _published_keys() -> list[dict[str, str]]:
    # Until the route exists this calls the view directly; test_keys_json_is_served_at_the_well_known_url
    # checks the route itself.
    response = well_known_keys(RequestFactory().get(KEYS_URL))
    assert response.status_code == 200
    keys: list[dict[str, str]] = json.loads(response.content)["keys"]
    return keys


# --- Sign and verify ------------------------------------------------------------------------------


def test_signed_payload_verifies() -> None:
    payload = _payload()
    receipt = receipt_sign(payload=payload)

    check = receipt_verify(payload=payload, receipt=receipt)

    assert check.valid is True
    assert check.reason == "ok"
    assert check.key_id == signing_key().key_id
    assert receipt["alg"] == "Ed25519"
    assert receipt["canonicalization"] == "JCS (RFC 8785)"
    assert "=" not in receipt["signature"]
    assert len(_b64url_decode(receipt["signature"])) == 64


def _flip_may_train(payload: dict[str, Any]) -> None:
    payload["results"][0]["may_train"] = True


def _one_letter_of_status(payload: dict[str, Any]) -> None:
    payload["results"][0]["status"] = "refuses"


def _event_id(payload: dict[str, Any]) -> None:
    payload["last_refusal_event_id"] += 1


def _issued_at(payload: dict[str, Any]) -> None:
    payload["issued_at"] = "2026-03-02T09:00:01+09:00"


def _dropped_result(payload: dict[str, Any]) -> None:
    payload["results"].pop()


def _added_key(payload: dict[str, Any]) -> None:
    payload["note"] = "checked"


@pytest.mark.parametrize(
    "tamper", [_flip_may_train, _one_letter_of_status, _event_id, _issued_at, _dropped_result, _added_key]
)
def test_tampered_payload_fails(tamper: Any) -> None:
    payload = _payload()
    receipt = receipt_sign(payload=payload)
    tampered = copy.deepcopy(payload)
    tamper(tampered)

    check = receipt_verify(payload=tampered, receipt=receipt)

    assert check.valid is False
    assert check.reason == "bad_signature"
    assert check.key_id == signing_key().key_id


def test_tampered_signature_fails() -> None:
    payload = _payload()
    receipt = receipt_sign(payload=payload)
    signature = bytearray(_b64url_decode(receipt["signature"]))
    signature[10] ^= 0x01
    forged = {**receipt, "signature": base64.urlsafe_b64encode(bytes(signature)).decode().rstrip("=")}

    assert receipt_verify(payload=payload, receipt=forged).reason == "bad_signature"


@pytest.mark.parametrize(
    ("change", "key_id_kept"),
    [
        ({"signature": None}, True),
        ({"signature": "not base64 !"}, True),
        ({"signature": "AAAA"}, True),
        ({"alg": "RS256"}, True),
        ({"canonicalization": "sorted keys"}, True),
        ({"key_id": 7}, False),
    ],
)
def test_malformed_receipt_is_reported_as_malformed(change: dict[str, Any], key_id_kept: bool) -> None:
    payload = _payload()
    receipt = {**receipt_sign(payload=payload), **change}

    check = receipt_verify(payload=payload, receipt=receipt)

    assert (check.valid, check.reason) == (False, "malformed")
    assert (check.key_id == receipt["key_id"]) is key_id_kept


def test_payload_with_a_float_is_malformed() -> None:
    payload = _payload()
    receipt = receipt_sign(payload=payload)
    payload["last_refusal_event_id"] = 4812.0

    assert receipt_verify(payload=payload, receipt=receipt).reason == "malformed"


def test_payload_may_not_carry_its_own_receipt() -> None:
    with pytest.raises(ValueError, match="receipt"):
        receipt_sign(payload={**_payload(), "receipt": {}})


# --- An independent verifier, with only the published key ----------------------------------------------


def test_pynacl_verifies_a_receipt_with_the_published_key_alone() -> None:
    payload = _payload()
    receipt = receipt_sign(payload=payload)

    jwk = next(key for key in _published_keys() if key["kid"] == receipt["key_id"])
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"], jwk["status"]) == (
        "OKP",
        "Ed25519",
        "EdDSA",
        "sig",
        "current",
    )
    raw_public = _b64url_decode(jwk["x"])
    assert hashlib.sha256(raw_public).hexdigest()[:16] == receipt["key_id"]
    # The payload's keys are ASCII, so plain sorted-key JSON is its JCS form: built here without our code.
    message = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert message == canonical_json(payload)
    signature = _b64url_decode(receipt["signature"])
    verifier = VerifyKey(raw_public)

    assert verifier.verify(message, signature) == message

    for position in (0, message.index(b'"refused"') + 1, len(message) - 2):
        tampered = bytearray(message)
        tampered[position] ^= 0x01
        with pytest.raises(BadSignatureError):
            verifier.verify(bytes(tampered), signature)


# --- Rotation -------------------------------------------------------------------------------------


def test_receipt_signed_by_a_retired_key_still_verifies(settings: Any) -> None:
    old, new = _new_key(), _new_key()
    _use_key(settings, old)
    payload = _payload()
    old_receipt = receipt_sign(payload=payload)

    _use_key(settings, new, retired=(old,))

    check = receipt_verify(payload=payload, receipt=old_receipt)
    assert (check.valid, check.reason, check.key_id) == (True, "ok", old_receipt["key_id"])
    new_receipt = receipt_sign(payload=payload)
    assert new_receipt["key_id"] != old_receipt["key_id"]
    assert receipt_verify(payload=payload, receipt=new_receipt).valid is True
    published = {key["kid"]: key for key in _published_keys()}
    assert {kid: key["status"] for kid, key in published.items()} == {
        new_receipt["key_id"]: "current",
        old_receipt["key_id"]: "retired",
    }
    assert _b64url_decode(published[old_receipt["key_id"]]["x"]) == _public(old)
    assert _b64url_decode(published[new_receipt["key_id"]]["x"]) == _public(new)


def test_receipt_from_an_unknown_key_is_reported(settings: Any) -> None:
    stranger, registry = _new_key(), _new_key()
    _use_key(settings, stranger)
    payload = _payload()
    receipt = receipt_sign(payload=payload)

    _use_key(settings, registry)

    check = receipt_verify(payload=payload, receipt=receipt)
    assert (check.valid, check.reason, check.key_id) == (False, "unknown_key", receipt["key_id"])


def test_retired_key_that_is_also_current_is_listed_once(settings: Any) -> None:
    key = _new_key()
    _use_key(settings, key, retired=(key,))

    assert [entry["status"] for entry in public_keys()] == ["current"]


def test_signing_key_file_is_read(settings: Any, tmp_path: Path) -> None:
    key = _new_key()
    path = tmp_path / "receipt-key.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    settings.RECEIPT_SIGNING_KEY_FILE = path
    signing_key.cache_clear()

    assert signing_key().key_id == hashlib.sha256(_public(key)).hexdigest()[:16]


def test_url_safe_seed_and_public_key_are_accepted(settings: Any) -> None:
    old, new = _new_key(), _new_key()
    _use_key(settings, old)
    receipt = receipt_sign(payload=_payload())
    settings.RECEIPT_SIGNING_KEY = _seed(new).replace("+", "-").replace("/", "_").rstrip("=")
    # A JWK's "x", copied as is from keys.json.
    settings.RECEIPT_RETIRED_PUBLIC_KEYS = [base64.urlsafe_b64encode(_public(old)).decode().rstrip("=")]
    signing_key.cache_clear()

    assert receipt_verify(payload=_payload(), receipt=receipt).valid is True


# --- The development key ------------------------------------------------------------------------------


def test_development_key_persists_across_loads(settings: Any, tmp_path: Path) -> None:
    first = signing_key().key_id
    path = tmp_path / "receipt-dev-key.pem"
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    signing_key.cache_clear()

    assert signing_key().key_id == first
    assert [p.name for p in tmp_path.iterdir()] == ["receipt-dev-key.pem"], "no temporary file left behind"


def test_development_keys_differ_between_data_dirs(settings: Any, tmp_path: Path) -> None:
    first = signing_key().key_id
    settings.DATA_DIR = tmp_path / "elsewhere"
    signing_key.cache_clear()

    assert signing_key().key_id != first


def test_no_development_key_outside_debug(settings: Any, tmp_path: Path) -> None:
    settings.DEBUG = False
    settings.TESTING = False
    signing_key.cache_clear()

    with pytest.raises(ImproperlyConfigured, match="RECEIPT_SIGNING_KEY"):
        signing_key()
    assert not (tmp_path / "receipt-dev-key.pem").exists()


# --- Settings refuse a missing or malformed key outside DEBUG --------------------------------------------

_GOOD_SEED = base64.b64encode(bytes(range(32))).decode()
# (id, environment, variable the error must name, or None for "starts")
RECEIPT_SETTINGS_CASES: list[tuple[str, dict[str, str], str | None]] = [
    ("malformed-seed", {"RECEIPT_SIGNING_KEY": "notbase64!!"}, "RECEIPT_SIGNING_KEY"),
    ("short-seed", {"RECEIPT_SIGNING_KEY": base64.b64encode(b"x" * 16).decode()}, "RECEIPT_SIGNING_KEY"),
    ("missing", {}, "RECEIPT_SIGNING_KEY"),
    ("missing-file", {"RECEIPT_SIGNING_KEY_FILE": "/nonexistent/receipt-key.pem"}, "RECEIPT_SIGNING_KEY_FILE"),
    ("not-a-pem", {"RECEIPT_SIGNING_KEY_FILE": str(ROOT / "pyproject.toml")}, "RECEIPT_SIGNING_KEY_FILE"),
    ("both", {"RECEIPT_SIGNING_KEY": _GOOD_SEED, "RECEIPT_SIGNING_KEY_FILE": "/x.pem"}, "RECEIPT_SIGNING_KEY_FILE"),
    (
        "retired-malformed",
        {"RECEIPT_SIGNING_KEY": _GOOD_SEED, "RECEIPT_RETIRED_PUBLIC_KEYS": "abc"},
        "RECEIPT_RETIRED_PUBLIC_KEYS",
    ),
    ("seed-starts", {"RECEIPT_SIGNING_KEY": _GOOD_SEED}, None),
    ("debug-without-key-starts", {"DEBUG": "1"}, None),
]


@pytest.fixture(scope="module")
def receipt_settings_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    """Starts Django once per case, all at once, as production would: DEBUG=0 and no REGISTRY_TESTING."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("RECEIPT_") and k not in {"DEBUG", "REGISTRY_TESTING", "SECRET_KEY", "DATA_DIR"}
    }
    base.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "0",
            "SECRET_KEY": "x",
            # Required too outside DEBUG (payout profiles); these cases are about the receipt key.
            "PAYOUT_DATA_KEYS": base64.urlsafe_b64encode(bytes(range(32))).decode(),
        }
    )
    return settings_runs_for(RECEIPT_SETTINGS_CASES, base_env=base, tmp_path_factory=tmp_path_factory)


@pytest.mark.parametrize(("case_id", "variable"), [pytest.param(c, v, id=c) for c, _e, v in RECEIPT_SETTINGS_CASES])
def test_settings_refuse_missing_or_malformed_receipt_key(
    receipt_settings_runs: dict[str, subprocess.CompletedProcess[str]], case_id: str, variable: str | None
) -> None:
    result = receipt_settings_runs[case_id]
    if variable is None:
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode != 0, f"settings accepted case {case_id}"
    last_line = result.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last_line, result.stderr
    assert variable in last_line, result.stderr
    assert "notbase64!!" not in result.stderr, "a secret's value must not reach the logs"


# --- canonical_json -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1.5, 0.0, {"a": [1, {"b": 2.0}]}, float("nan")])
def test_canonical_json_rejects_floats(value: Any) -> None:
    with pytest.raises(TypeError):
        canonical_json(value)


def test_canonical_json_rejects_what_jcs_would_write_differently() -> None:
    with pytest.raises(ValueError, match="2\\*\\*53"):
        canonical_json({"n": 2**53})
    with pytest.raises(TypeError):
        canonical_json({1: "integer key"})


def test_canonical_json_is_compact_sorted_utf8() -> None:
    value = {"b": [True, None, -3], "a": '별\n\u000f"\\', "é": {}}

    assert canonical_json(value) == '{"a":"별\\n\\u000f\\"\\\\","b":[true,null,-3],"é":{}}'.encode()


def test_canonical_json_orders_keys_by_utf16_as_rfc_8785_does() -> None:
    # RFC 8785 section 3.2.3's example: U+1F600 (a surrogate pair) sorts before U+FB33 in UTF-16.
    value = {"\u20ac": 1, "\r": 2, "\ufb33": 3, "1": 4, "\U0001f600": 5, "\u0080": 6, "\u00f6": 7}

    assert canonical_json(value) == '{"\\r":2,"1":4,"\u0080":6,"ö":7,"€":1,"\U0001f600":5,"\ufb33":3}'.encode()


# --- HTTP (these need the routes: /.well-known/optout-registry/keys.json and /api/v1/receipts/verify) --------


def test_keys_json_is_served_at_the_well_known_url(api: APIClient) -> None:
    response = api.get(KEYS_URL)

    assert response.status_code == 200
    assert response["Cache-Control"] == "public, max-age=300"
    assert [key["kid"] for key in response.json()["keys"]] == [signing_key().key_id]


def test_anyone_may_verify_a_lookup_response_as_received(api: APIClient) -> None:
    payload = _payload()
    response_body = {**payload, "receipt": receipt_sign(payload=payload)}

    response = api.post(VERIFY_URL, response_body, format="json")

    assert response.status_code == 200, response.content
    assert response.json() == {"valid": True, "key_id": signing_key().key_id, "reason": "ok"}


def test_verify_accepts_payload_and_receipt(api: APIClient) -> None:
    payload = _payload()
    body = {"payload": payload, "receipt": receipt_sign(payload=payload)}

    response = api.post(VERIFY_URL, body, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["valid"] is True


def test_verify_reports_a_tampered_response(api: APIClient) -> None:
    payload = _payload()
    response_body = {**payload, "receipt": receipt_sign(payload=payload)}
    response_body["results"][0]["may_train"] = True

    response = api.post(VERIFY_URL, response_body, format="json")

    assert response.status_code == 200, response.content
    assert response.json() == {"valid": False, "key_id": signing_key().key_id, "reason": "bad_signature"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([1, 2], None),
        ({"hello": "world"}, "payload"),
        ({"payload": _payload()}, "receipt"),
        ({"payload": "not an object", "receipt": {}}, "payload"),
        ({**_payload(), "receipt": "not an object"}, "receipt"),
    ],
)
def test_verify_rejects_a_body_of_another_shape(api: APIClient, body: Any, field: str | None) -> None:
    response = api.post(VERIFY_URL, body, format="json")

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"]
    assert error["message"]
    assert error.get("field") == field


def test_verify_rejects_a_body_that_is_not_json(api: APIClient) -> None:
    response = api.post(VERIFY_URL, "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
