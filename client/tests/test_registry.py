"""Offline answers: the change-application rule, vectorized == scalar, the membership index, signatures."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from optout_client import Membership, Registry, key_hash
from optout_client.ed25519 import ed25519_verify, verify_pure
from optout_client.jcs import canonicalize
from optout_client.membership import MembershipFileError
from optout_client.testing import SnapshotFiles, TestKey, change_json, install_local, membership_bytes

T = datetime(2026, 3, 1, tzinfo=UTC)
NOT_PERMITTED = {"refused", "license_required"}
SUBJECTS = ["isbn:9780306406157", "doi:10.1000/182", "url:https://a.example/x", "isbn:9788937460883"]
STATUSES = ["refused", "license_required", "permitted", "unregistered"]


def _reference(listed: set[str], changes: list[dict[str, Any]], subject: str, at: datetime) -> bool:
    """The spec's rule, written plainly: may `subject` be used at `at`?"""
    effective = [c for c in changes if c["subject"] == subject and datetime.fromisoformat(c["effective_at"]) <= at]
    if not effective:
        return subject not in listed
    latest = max(effective, key=lambda c: (datetime.fromisoformat(c["effective_at"]), c["cursor"]))
    return latest["new_status"] not in NOT_PERMITTED


_change = st.tuples(st.sampled_from(SUBJECTS), st.sampled_from(STATUSES), st.integers(0, 10))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    listed=st.sets(st.sampled_from(SUBJECTS)),
    scheduled=st.lists(_change, max_size=4),
    feed=st.lists(_change, max_size=8),
    probes=st.lists(st.integers(0, 11), min_size=1, max_size=4),
)
def test_changes_apply_by_effective_instant_then_cursor(
    tmp_path_factory: pytest.TempPathFactory,
    test_key: TestKey,
    listed: set[str],
    scheduled: list[tuple[str, str, int]],
    feed: list[tuple[str, str, int]],
    probes: list[int],
) -> None:
    # Scheduled changes (cursor <= C) take effect after T; feed changes (cursor > C) at T or later.
    sched = [change_json(1 + n, s, status, T + timedelta(hours=h + 1)) for n, (s, status, h) in enumerate(scheduled)]
    later = [change_json(100 + n, s, status, T + timedelta(hours=h)) for n, (s, status, h) in enumerate(feed)]
    directory = tmp_path_factory.mktemp("copy")
    install_local(
        directory,
        SnapshotFiles(as_of=T, cursor=50, keys={"train-ai": listed, "train-genai": listed}, scheduled=sched),
        test_key,
        changes=later,
    )
    copy = Registry.open(directory)
    for hours in probes:
        at = T + timedelta(hours=hours)
        for subject in SUBJECTS:
            scheme, value = subject.split(":", 1)
            expected = _reference(listed, sched + later, subject, at)
            assert copy.may_train(scheme, value, at=at) == expected, (subject, hours)
            assert copy.may_train_many(scheme, [value], at=at) == [expected]


def test_an_instant_before_the_snapshot_is_refused(tmp_path: Path, test_key: TestKey) -> None:
    install_local(tmp_path, SnapshotFiles(as_of=T, cursor=1), test_key)
    with pytest.raises(ValueError, match="not before"):
        Registry.open(tmp_path).may_train("isbn", "9780306406157", at=T - timedelta(seconds=1))
    with pytest.raises(ValueError, match="Unknown purpose"):
        Registry.open(tmp_path).may_train("isbn", "9780306406157", "train-everything")


def _isbn13(rng: random.Random) -> str:
    digits = rng.choice(["978", "979"]) + "".join(rng.choice("0123456789") for _ in range(9))
    total = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(digits))
    return digits + str((10 - total % 10) % 10)


@pytest.fixture
def big_copy(tmp_path: Path, test_key: TestKey) -> tuple[Registry, list[str], list[str]]:
    rng = random.Random(7)  # noqa: S311
    refused = [_isbn13(rng) for _ in range(3000)]
    urls = [f"https://site{n % 50}.example/p/{n}" for n in range(2000)]
    keys = [f"isbn:{v}" for v in refused] + [f"url:{u}" for u in urls[:300]]
    install_local(
        tmp_path,
        SnapshotFiles(
            as_of=T,
            cursor=5,
            keys={"train-ai": keys, "train-genai": keys[:10]},
            url_prefixes=[
                {"purpose": "train-ai", "host": "site7.example", "prefix": "https://site7.example/p/", "refusal_id": 1},
                {
                    "purpose": "train-ai",
                    "host": "site8.example",
                    "prefix": "https://site8.example/p/1",
                    "refusal_id": 2,
                },
            ],
        ),
        test_key,
        changes=[
            change_json(6, keys[0], "permitted", T + timedelta(minutes=1), old_status="refused"),
            change_json(7, "isbn:9780306406157", "license_required", T),
            change_json(8, "https://site9.example/", "refused", T, subject_type="url_prefix", host="site9.example"),
            change_json(
                9, "https://site7.example/p/", "permitted", T, subject_type="url_prefix", purpose="train-genai"
            ),
        ],
    )
    return Registry.open(tmp_path), refused, urls


def test_vectorized_equals_scalar(big_copy: tuple[Registry, list[str], list[str]]) -> None:
    copy, refused, urls = big_copy
    rng = random.Random(3)  # noqa: S311
    isbns: list[Any] = refused + [_isbn13(rng) for _ in range(3000)] + ["9780306406157", "0-306-40615-2", "bad", None]
    rng.shuffle(isbns)
    odd_urls: list[Any] = [
        *urls,
        "HTTPS://SITE7.example/p/9",
        "https://site8.example/p/1/1000",
        "https://site8.example/p/2",
        "ftp://x",
        "",
        None,
        "https://site9.example",
    ]
    for purpose in ("train-ai", "train-genai"):
        for scheme, values in (("isbn", isbns), ("url", odd_urls)):
            many = copy.may_train_many(scheme, values, purpose)
            assert many == [copy.may_train(scheme, v, purpose) for v in values]
            arrow = copy.may_train_many(scheme, pa.array(values, type=pa.string()), purpose)
            assert arrow.to_pylist() == many
            chunked = copy.may_train_many(scheme, pa.chunked_array([values[:5], values[5:]], type=pa.string()), purpose)
            assert chunked.to_pylist() == many

    removed = sum(not ok for ok in copy.may_train_many("isbn", refused))
    assert removed == len(refused) - 1  # one withdrawn by the feed
    assert not copy.may_train("url", "https://site7.example/p/anything")
    assert copy.may_train("url", "https://site7.example/p/anything", "train-genai")  # its refusal lifted there
    assert not copy.may_train("url", "https://site8.example/p/1/1000")
    assert copy.may_train("url", "https://site8.example/p/2")
    assert copy.may_train("url", "https://site8.example/p/1000")  # "/p/1" covers "/p/1/...", not "/p/1000"
    assert not copy.may_train("url", "https://site9.example/")
    assert not copy.may_train("isbn", "9780306406157")
    assert copy.check("url", "https://site8.example/p/1/1000").reason == "url_prefix:https://site8.example/p/1"


def test_the_library_works_without_numpy(big_copy: tuple[Registry, list[str], list[str]]) -> None:
    copy, refused, urls = big_copy
    values = [*refused[:50], "9788937460883", "bad", *urls[:5]]
    expected = {scheme: copy.may_train_many(scheme, values) for scheme in ("isbn", "url")}
    code = (
        "import sys, json; sys.modules['numpy'] = None\n"
        "from optout_client import Registry\n"
        "copy = Registry.open(sys.argv[1]); values = json.loads(sys.argv[2])\n"
        "print(json.dumps({s: copy.may_train_many(s, values) for s in ('isbn', 'url')}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(copy.directory), json.dumps(values)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout) == expected


def test_membership_matches_a_set_exactly_on_random_hashes(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    members = np.unique(rng.integers(0, 2**64, size=200_000, dtype=np.uint64))
    path = tmp_path / "keys.bin"
    path.write_bytes(members.astype(">u8").tobytes())
    membership = Membership.from_file(path)
    probes = np.concatenate([members[::7], rng.integers(0, 2**64, size=100_000, dtype=np.uint64)])
    found = membership.contains_many(probes)
    assert found.tolist() == np.isin(probes, members).tolist()
    # The index compares the top bucket_bits + 32 bits: a hash differing from a member only below them is a
    # (documented) false positive, never a false negative.
    assert membership.contains(int(members[0]) ^ 1)
    assert membership.bucket_bits + 32 == 50
    assert [membership.contains(int(v)) for v in probes[:2000]] == found[:2000].tolist()
    assert Membership.empty().contains_many(probes[:3]).tolist() == [False] * 3


def test_an_unsorted_membership_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.bin"
    path.write_bytes((5).to_bytes(8, "big") + (3).to_bytes(8, "big"))
    with pytest.raises(MembershipFileError):
        Membership.from_file(path)
    path.write_bytes(b"1234567")
    with pytest.raises(MembershipFileError):
        Membership.from_file(path)


def test_the_membership_hash_is_the_specified_one() -> None:
    import hashlib

    key = "isbn:9788937460883"
    assert key_hash(key) == int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    assert membership_bytes([key, key]) == key_hash(key).to_bytes(8, "big")


# --- JCS and Ed25519 ----------------------------------------------------------------------------------------


def test_jcs_matches_rfc_8785() -> None:
    # RFC 8785 section 3.2.2 and appendix B number examples.
    assert canonicalize({"numbers": [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001]}) == (
        b'{"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27]}'
    )
    assert canonicalize({"string": "\u20ac$\u000f\u000aA'\u0042\u0022\u005c\\\"/"}) == (
        '{"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'.encode()
    )
    assert canonicalize({"literals": [None, True, False]}) == b'{"literals":[null,true,false]}'
    # Members sorted by UTF-16 code units: U+FB01 sorts after U+1F600 (surrogates D83D DE00), unlike by code point.
    assert canonicalize({"\ufb01": 1, "\U0001f600": 2, "a": 3}) == '{"a":3,"😀":2,"ﬁ":1}'.encode()
    for value, text in [
        (0.0, "0"),
        (-0.0, "0"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (123.0, "123"),
        (-1.5, "-1.5"),
        (2**60, "1152921504606847000"),
    ]:
        assert canonicalize(value) == text.encode(), value
    with pytest.raises(ValueError, match="NaN"):
        canonicalize(float("nan"))
    with pytest.raises(ValueError, match="surrogates"):
        canonicalize("\ud800")


def test_the_pure_python_verifier_agrees_with_cryptography(test_key: TestKey) -> None:
    rng = random.Random(1)  # noqa: S311
    for length in (0, 1, 100, 1000):
        message = bytes(rng.randrange(256) for _ in range(length))
        signature = test_key.private.sign(message)
        assert verify_pure(test_key.public_raw, signature, message)
        assert ed25519_verify(test_key.public_raw, signature, message)
        tampered = bytearray(signature)
        tampered[rng.randrange(64)] ^= 1 << rng.randrange(8)
        assert not verify_pure(test_key.public_raw, bytes(tampered), message)
        assert not ed25519_verify(test_key.public_raw, bytes(tampered), message)
        assert not verify_pure(test_key.public_raw, signature, message + b"x")
    # RFC 8032 section 7.1, test 1.
    public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    signature = bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    assert verify_pure(public, signature, b"")
    assert ed25519_verify(public, signature, b"")
