"""The transparency log (issue 16): leaves queued in their events' transactions and numbered by the sequencer,
RFC 9162 trees checked against the published vectors and an implementation this project did not write
(pymerkle), C2SP notes checked against Go's golang.org/x/mod/sumdb/note vectors, proofs verified by the lab-side
client, tampering and split views detected."""

from __future__ import annotations

import base64
import json
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone, translation
from optout_client.transparency import (
    LogError,
    LogVerifier,
    LogWitness,
    SplitView,
    checkpoint_open,
    consistency_verify,
    inclusion_verify,
    leaf_hash,
)
from pymerkle import InmemoryTree

from core.actors import Actor
from core.dates import rfc3339
from core.errors import InvalidState
from core.merkle import consistency_proof, inclusion_proof, memory_reader, tile_number_parse, tile_path, tree_root
from core.signed_note import Checkpoint, note_sign, verifier_key
from optout.models import LogCheckpoint, LogEntry, LogQueuedLeaf, LogTile
from optout.services import refusal_withdraw, regime_set
from optout.transparency.check import log_differences
from optout.transparency.services import log_checkpoint_issue, log_effects_append, log_sequence
from registry.audit import audit_record
from registry.models import AuditEvent
from tests.compensation.helpers import sql_run
from tests.factories import RefusalFactory, WorkFactory, isbn
from tests.optout.helpers import refuse

VECTORS = json.loads(
    (Path(__file__).parents[2] / "client" / "tests" / "vectors" / "rfc6962" / "proofs.json").read_text()
)
REFERENCE_LEAVES = [bytes.fromhex(text) for text in VECTORS["leaves_hex"]]


def _b(text: str) -> bytes:
    return base64.b64decode(text)


def _verifier(api: Any) -> LogVerifier:
    return LogVerifier.parse(api.get("/log/key").content.decode())


def _checkpoint(api: Any) -> Any:
    response = api.get("/log/checkpoint")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    return checkpoint_open(response.content.decode(), _verifier(api))


def _leaves(count: int) -> list[bytes]:
    return [bytes(data) for data in LogEntry.objects.order_by("index").values_list("data", flat=True)[:count]]


# --- The tree: RFC 6962 vectors, and an implementation we did not write ------------------------------------------


def test_roots_of_the_reference_tree_match_the_rfc_6962_vectors() -> None:
    hashes = [leaf_hash(leaf) for leaf in REFERENCE_LEAVES]
    for size in range(len(REFERENCE_LEAVES) + 1):
        assert tree_root(size, memory_reader(hashes)).hex() == VECTORS["roots_hex"][size]


@pytest.mark.parametrize(
    "vector", [v for v in VECTORS["inclusion"] if v["desc"] == "happy path"], ids=lambda v: v["file"]
)
def test_inclusion_proofs_are_the_published_ones(vector: dict[str, Any]) -> None:
    hashes = [leaf_hash(leaf) for leaf in REFERENCE_LEAVES[: vector["treeSize"]]]
    proof = inclusion_proof(vector["leafIdx"], vector["treeSize"], memory_reader(hashes))
    assert proof == [_b(node) for node in vector["proof"] or []]


@pytest.mark.parametrize(
    "vector", [v for v in VECTORS["consistency"] if v["desc"] == "happy path"], ids=lambda v: v["file"]
)
def test_consistency_proofs_are_the_published_ones(vector: dict[str, Any]) -> None:
    hashes = [leaf_hash(leaf) for leaf in REFERENCE_LEAVES[: vector["size2"]]]
    proof = consistency_proof(vector["size1"], vector["size2"], memory_reader(hashes))
    assert proof == [_b(node) for node in vector["proof"] or []]


def test_every_root_and_proof_up_to_600_leaves_agrees_with_pymerkle_and_verifies() -> None:
    entries = [f"entry {n}".encode() for n in range(600)]
    reference = InmemoryTree(algorithm="sha256")
    for entry in entries:
        reference.append_entry(entry)
    hashes = [leaf_hash(entry) for entry in entries]
    read = memory_reader(hashes)
    for size in (1, 2, 3, 7, 8, 9, 255, 256, 257, 511, 512, 513, 600):
        root = tree_root(size, read)
        assert root == reference.get_state(size)
        for index in {0, size // 3, size - 1}:
            inclusion_verify(index, size, hashes[index], inclusion_proof(index, size, read), root)
        for older in {1, size // 2 or 1, size - 1 or 1}:
            consistency_verify(older, size, tree_root(older, read), root, consistency_proof(older, size, read))


def test_tile_paths_use_the_c2sp_encoding() -> None:
    # The examples of C2SP tlog-tiles and of Go's golang.org/x/mod/sumdb/tlog.
    assert tile_path(0, 1234067) == "0/x001/x234/067"
    assert tile_path(3, 123456078, width=2) == "3/x123/x456/078.p/2"
    assert tile_path(4, 1) == "4/001"
    assert tile_number_parse(["x123", "x456", "078"]) == 123456078
    for bad in (["1234"], ["x001"], ["001", "234"], ["x01", "234"], ["x000", "001"]):
        with pytest.raises(ValueError, match="tile index"):
            tile_number_parse(bad)


# --- Signed notes: Go's sumdb/note vectors ------------------------------------------------------------------------


def test_notes_are_signed_exactly_as_gos_sumdb_note_signs_them() -> None:
    # golang.org/x/mod/sumdb/note's TestSign: Ed25519 is deterministic, so the same key gives the same bytes.
    seed = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
    key = Ed25519PrivateKey.from_private_bytes(seed)
    text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
    signature = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
    assert note_sign(text=text, name="PeterNeumann", private_key=key) == f"{text}\n— PeterNeumann {signature}\n"
    assert verifier_key("PeterNeumann", key.public_key()) == (
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    )


# --- The log ------------------------------------------------------------------------------------------------------


def test_status_events_become_leaves_in_commit_order_without_personal_data(holder: Any, staff: Any) -> None:
    work = WorkFactory(holder=holder, identifiers=[("isbn", "9788936434021")], verified_by=staff)
    refusal = RefusalFactory(work=work)
    refusal_withdraw(actor=Actor(party=holder), refusal=refusal)
    regime_set(actor=Actor(user=staff), kind="image", regime="license_required")

    # Each event's transaction queued its leaf; the sequencer numbers them in that order.
    expected = ["work.registered", "claim.verified", "refusal.filed", "refusal.withdrawn", "regime.set"]
    assert list(LogQueuedLeaf.objects.order_by("id").values_list("kind", flat=True)) == expected
    assert not LogEntry.objects.exists()
    assert log_sequence() == 5
    assert log_sequence() == 0
    assert not LogQueuedLeaf.objects.exists()
    assert list(LogEntry.objects.order_by("index").values_list("kind", flat=True)) == expected
    assert list(LogEntry.objects.order_by("index").values_list("index", flat=True)) == [0, 1, 2, 3, 4]
    filed = json.loads(_leaves(3)[2])
    event = AuditEvent.objects.get(code="optout.refusal.filed")
    assert filed == {
        "v": 1,
        "id": event.pk,
        "kind": "refusal.filed",
        "time": event.created_at.isoformat().replace("+00:00", "Z"),
        "subject": {
            "refusal": refusal.pk,
            "holder": holder.pk,
            "scope": "work",
            "purpose": "train-ai",
            "work": work.pk,
            "effective_from": filed["subject"]["effective_from"],
        },
    }
    # JCS: sorted keys, no whitespace; and nothing about who acted.
    assert _leaves(3)[2] == json.dumps(filed, sort_keys=True, separators=(",", ":")).encode()
    assert b"actor" not in b"".join(_leaves(5))
    assert b"@" not in b"".join(_leaves(5))


def test_an_event_that_fails_leaves_no_leaf(holder: Any, staff: Any) -> None:
    work = WorkFactory(holder=holder, identifiers=[("isbn", "9788936434021")], verified_by=staff)
    before = LogQueuedLeaf.objects.count()
    refusal = RefusalFactory(work=work)
    refusal_withdraw(actor=Actor(party=holder), refusal=refusal)
    with pytest.raises(InvalidState) as refused:
        refusal_withdraw(actor=Actor(party=holder), refusal=refusal)
    assert refused.value.code == "already_withdrawn"
    assert LogQueuedLeaf.objects.count() == before + 2
    assert log_sequence() == before + 2


def test_a_lab_verifies_checkpoints_and_the_inclusion_of_every_event(
    api: Any, holder_api: Any, holder: Any, staff: Any, tmp_path: Path
) -> None:
    work = WorkFactory(holder=holder, identifiers=[("isbn", "9788936434021")], verified_by=staff)
    refuse(holder_api, scope="work", work=work.pk)
    log_checkpoint_issue()
    verifier = _verifier(api)
    witness = LogWitness.load(tmp_path / "witness.json", verifier)
    first = witness.accept(api.get("/log/checkpoint").content.decode(), None)
    assert first.size == 3

    regime_set(actor=Actor(user=staff), kind="image", regime="license_required")
    for n in range(5):
        WorkFactory(holder=holder, identifiers=[("isbn", isbn(n))])
    issued = log_checkpoint_issue()
    size = issued.size
    assert size == 3 + 1 + 5  # a regime set, five works registered
    proof = api.get("/api/v1/log/proof/consistency", {"from": 3, "to": size}).json()
    assert proof["first"] == 3
    assert proof["second"] == size
    second = witness.accept(issued.note, [_b(h) for h in proof["hashes"]])
    assert second.size == size

    # The state survives a restart, and every event is provably in the tree.
    witness = LogWitness.load(tmp_path / "witness.json", verifier)
    assert witness.latest is not None
    assert witness.latest.size == size
    for index in range(size):
        answer = api.get("/api/v1/log/proof/inclusion", {"index": index, "size": size}).json()
        entry = api.get(f"/api/v1/log/entries/{index}").content
        assert answer["leaf_hash"] == base64.b64encode(leaf_hash(entry)).decode()
        inclusion_verify(index, size, leaf_hash(entry), [_b(h) for h in answer["hashes"]], second.root_hash)
    # The same tree, recomputed by pymerkle from the entries the log serves.
    reference = InmemoryTree(algorithm="sha256")
    for index in range(size):
        reference.append_entry(api.get(f"/api/v1/log/entries/{index}").content)
    assert reference.get_state(size) == second.root_hash


def test_proofs_beyond_the_latest_checkpoint_or_malformed_are_refused(api: Any, book: Any) -> None:
    log_checkpoint_issue()
    size = LogCheckpoint.objects.get().size
    cases = [
        ("/api/v1/log/proof/inclusion", {"index": 0, "size": size + 1}, "size_not_checkpointed"),
        ("/api/v1/log/proof/inclusion", {"index": size, "size": size}, "index_out_of_range"),
        ("/api/v1/log/proof/inclusion", {"index": "-1", "size": size}, "invalid_integer"),
        ("/api/v1/log/proof/inclusion", {"size": size}, "invalid_integer"),
        ("/api/v1/log/proof/consistency", {"from": 0, "to": size}, "invalid_range"),
        ("/api/v1/log/proof/consistency", {"from": 2, "to": 1}, "invalid_range"),
        ("/api/v1/log/proof/consistency", {"from": 1, "to": size + 5}, "size_not_checkpointed"),
    ]
    for path, query, code in cases:
        response = api.get(path, query)
        assert response.status_code == 400, (path, query)
        assert response.json()["error"]["code"] == code
    assert api.get("/api/v1/log/entries/999").status_code == 404


def test_tiles_and_entry_bundles_are_served_as_c2sp_tlog_tiles(api: Any, holder: Any, settings: Any) -> None:
    for n in range(300):
        WorkFactory(holder=holder, identifiers=[("isbn", isbn(n))])
    checkpoint = log_checkpoint_issue()
    assert checkpoint.size == 300
    hashes = [leaf_hash(entry) for entry in _leaves(300)]

    full = api.get("/log/tile/0/000")
    assert full.status_code == 200
    assert full["Content-Type"] == "application/octet-stream"
    assert "immutable" in full["Cache-Control"]
    assert full.content == b"".join(hashes[:256])
    partial = api.get("/log/tile/0/001.p/44")
    assert partial.content == b"".join(hashes[256:300])
    bundle = api.get("/log/tile/entries/001.p/44").content
    entries, offset = [], 0
    while offset < len(bundle):
        length = int.from_bytes(bundle[offset : offset + 2], "big")
        entries.append(bundle[offset + 2 : offset + 2 + length])
        offset += 2 + length
    assert entries == _leaves(300)[256:]
    # Beyond the checkpoint, a level without tiles, or not the canonical name: nothing.
    for path in (
        "/log/tile/0/001",
        "/log/tile/0/001.p/45",
        "/log/tile/1/000",
        "/log/tile/0/1",
        "/log/tile/0/001.p/256",
    ):
        assert api.get(path).status_code == 404, path


def test_a_changed_a_reordered_and_a_dropped_leaf_are_found_by_log_check(
    holder: Any, staff: Any, on_postgres: bool
) -> None:
    work = WorkFactory(holder=holder, identifiers=[("isbn", "9788936434021")], verified_by=staff)
    RefusalFactory(work=work)
    log_checkpoint_issue()
    call_command("log_check")  # passes

    if on_postgres:
        # The database itself refuses to change a leaf.
        with pytest.raises(DatabaseError, match="append-only"):
            sql_run("UPDATE optout_logentry SET data = data WHERE index = 0")
        return
    # SQLite has no triggers: what an operator with write access could do is caught by log_check.
    leaves = _leaves(3)
    changed = leaves[2].replace(b'"train-ai"', b'"train-genai"')
    LogEntry.objects.filter(index=2).update(data=changed)
    with pytest.raises(CommandError):
        call_command("log_check")
    LogEntry.objects.filter(index=2).update(data=leaves[2])
    LogEntry.objects.filter(index=1).update(data=leaves[0])
    LogEntry.objects.filter(index=0).update(data=leaves[1])
    with pytest.raises(CommandError):
        call_command("log_check")
    LogEntry.objects.filter(index=1).update(data=leaves[1])
    LogEntry.objects.filter(index=0).update(data=leaves[0])
    call_command("log_check")
    LogEntry.objects.filter(index=2).delete()
    with pytest.raises(CommandError):
        call_command("log_check")


@translation.override("en")
def test_log_check_reports_what_is_wrong(holder: Any, staff: Any, capsys: Any) -> None:
    WorkFactory(holder=holder, identifiers=[("isbn", "9788936434021")], verified_by=staff)
    checkpoint = log_checkpoint_issue()
    call_command("log_check")
    assert "passed" in capsys.readouterr().out
    # A checkpoint signed by another key, or over another root.
    forged_key = Ed25519PrivateKey.generate()
    origin = checkpoint.note.split("\n", 1)[0]
    forged = note_sign(
        text=Checkpoint(origin=origin, size=1, root_hash=b"\x00" * 32).text(), name=origin, private_key=forged_key
    )
    LogCheckpoint.objects.create(size=1, root_hash=b"\x00" * 32, note=forged)
    with pytest.raises(CommandError):
        call_command("log_check")
    out = capsys.readouterr().out
    assert "checkpoint of size 1 is not signed by the log's key" in out


def test_a_forked_checkpoint_is_a_split_view(api: Any, book: Any, tmp_path: Path, settings: Any) -> None:
    from optout.receipts import signing_key

    checkpoint = log_checkpoint_issue()
    verifier = _verifier(api)
    witness = LogWitness.load(tmp_path / "w.json", verifier)
    witness.accept(checkpoint.note, None)
    # The registry's own key signing another root for the same size: what a split view looks like.
    origin = checkpoint.note.split("\n", 1)[0]
    fork = note_sign(
        text=Checkpoint(origin=origin, size=checkpoint.size, root_hash=b"\x01" * 32).text(),
        name=origin,
        private_key=signing_key().private_key,
    )
    with pytest.raises(SplitView):
        witness.accept(fork, None)
    # Seen by a lab that only kept the fork's size: still refused on reload.
    witness = LogWitness.load(tmp_path / "w.json", verifier)
    with pytest.raises(SplitView):
        witness.accept(fork, None)
    # A checkpoint by another key, or a shrinking log, is refused too.
    with pytest.raises(LogError):
        witness.accept(
            note_sign(
                text=Checkpoint(origin=origin, size=1, root_hash=b"\x02" * 32).text(),
                name=origin,
                private_key=Ed25519PrivateKey.generate(),
            ),
            None,
        )


def test_a_future_dated_refusal_takes_effect_as_a_leaf_of_its_own(holder: Any, staff: Any, clock: Any) -> None:
    work = WorkFactory(holder=holder, identifiers=[("isbn", "9788936434021")], verified_by=staff)
    later = timezone.now() + timedelta(days=2)
    RefusalFactory(work=work, effective_from=later)
    assert log_effects_append() == 0
    clock(later + timedelta(seconds=1))
    assert log_effects_append() == 1
    assert log_effects_append() == 0  # a second beat finds nothing
    took = LogEntry.objects.order_by("-index").first()
    assert took is not None
    assert took.kind == "refusal.took_effect"
    leaf = json.loads(bytes(took.data))
    assert leaf["time"] == rfc3339(later)
    assert leaf["id"] == AuditEvent.objects.get(code="optout.refusal.filed").pk
    call_command("log_check")


def test_every_lookup_names_a_checkpoint_its_receipt_signs(api: Any, holder_api: Any, book: Any) -> None:
    refuse(holder_api, scope="work", work=book.pk)
    response = api.get("/api/v1/lookup", {"scheme": "isbn", "value": "9788936434021"})
    body = response.json()
    assert body["results"][0]["status"] == "refused"
    named = body["checkpoint"]
    latest = _checkpoint(api)
    assert named == latest.reference()
    # The refusal's leaf is in the named tree.
    filed = LogEntry.objects.get(kind="refusal.filed")
    proof = api.get("/api/v1/log/proof/inclusion", {"index": filed.index, "size": named["tree_size"]}).json()
    inclusion_verify(
        filed.index, named["tree_size"], bytes(filed.leaf_hash), [_b(h) for h in proof["hashes"]], latest.root_hash
    )
    # And the receipt covers the checkpoint: changing it breaks the signature.
    check = api.post("/api/v1/receipts/verify", body, format="json").json()
    assert check["valid"] is True
    body["checkpoint"]["tree_size"] -= 1
    assert api.post("/api/v1/receipts/verify", body, format="json").json()["valid"] is False


def test_staff_issue_checkpoints_on_demand(api: Any, staff_api: Any, holder_api: Any, book: Any) -> None:
    assert holder_api.post("/api/v1/log/checkpoints").status_code == 403
    assert api.post("/api/v1/log/checkpoints").status_code == 401
    first = staff_api.post("/api/v1/log/checkpoints")
    assert first.status_code == 201
    assert first.json()["tree_size"] == LogEntry.objects.count()
    again = staff_api.post("/api/v1/log/checkpoints")
    assert again.status_code == 200
    assert again.json()["tree_size"] == first.json()["tree_size"]


def test_the_key_is_published_in_c2sp_form_and_in_keys_json(api: Any) -> None:
    key = api.get("/log/key").content.decode().strip()
    published = api.get("/.well-known/optout-registry/keys.json").json()
    assert published["transparency_log"]["verifier_key"] == key
    assert published["keys"][0]["uses"] == ["receipts", "transparency-log"]
    assert LogVerifier.parse(key).name == published["transparency_log"]["origin"]


def test_the_transparency_page_shows_the_checkpoint_and_how_to_verify(client: Any, book: Any) -> None:
    checkpoint = log_checkpoint_issue()
    page = client.get("/transparency/")
    assert page.status_code == 200
    text = page.content.decode()
    assert f"{checkpoint.size}" in text
    assert "/log/checkpoint" in text
    assert "optout log check" in text
    client.cookies["django_language"] = "ko"
    assert "투명성 로그" in client.get("/transparency/", HTTP_ACCEPT_LANGUAGE="ko").content.decode()


@pytest.mark.postgres
def test_the_log_only_grows_in_postgresql(book: Any) -> None:
    log_checkpoint_issue()
    LogTile.objects.create(level=5, number=0, hashes=b"", root=b"\x00" * 32)  # a row for the tile triggers to see
    for statement in (
        "DELETE FROM optout_logentry",
        "UPDATE optout_logcheckpoint SET size = size",
        "UPDATE optout_logtile SET root = root",
        "UPDATE optout_loghead SET size = 0",
        "DELETE FROM optout_loghead",
    ):
        with pytest.raises(DatabaseError, match=r"append-only|only grows"):
            sql_run(statement)


def test_every_logged_kind_is_an_event_the_registry_records() -> None:
    from optout.transparency.leaves import LOGGED

    sources = "".join(
        path.read_text() for app in ("registry", "optout") for path in (Path(__file__).parents[2] / app).rglob("*.py")
    )
    for code in LOGGED:
        # Recorded one at a time (audit_record(code=...)) or as rows of a bulk write ({"code": ...}).
        assert f'code="{code}"' in sources or f'"code": "{code}"' in sources, code


def test_log_check_holds_full_and_edge_tiles_to_the_leaves(holder: Any, on_postgres: bool) -> None:
    for n in range(260):
        WorkFactory(holder=holder, identifiers=[("isbn", isbn(n))])
    log_checkpoint_issue()
    assert LogTile.objects.filter(level=0, width=256).count() == 1
    assert LogTile.objects.filter(level=0, number=1, width=4).exists()
    call_command("log_check")
    if on_postgres:
        with pytest.raises(DatabaseError, match="append-only"):
            sql_run("UPDATE optout_logtile SET hashes = hashes WHERE level = 0 AND number = 1")
        return
    # SQLite has no triggers: a rewritten edge tile is caught by log_check.
    LogTile.objects.filter(level=0, number=1).update(hashes=b"\x00" * 128)
    with pytest.raises(CommandError):
        call_command("log_check")


# --- The sequencer: leaves queued in their events' transactions, numbered after commit ----------------------------


def _identifier_added(n: int) -> None:
    audit_record(
        code="registry.work.identifier_added",
        actor=Actor.system(),
        data={"holder": 1, "identifier": f"url:https://queue.example/{n}"},
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_status_change_never_waits_for_another_and_no_leaf_is_skipped() -> None:
    queued = threading.Event()
    release = threading.Event()
    failures: list[BaseException] = []

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                _identifier_added(1)  # queued first: the lower id
                queued.set()
                release.wait(timeout=30)
        except BaseException as exc:  # reported by the test
            failures.append(exc)
        finally:
            connection.close()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    assert queued.wait(timeout=30)
    # While the first transaction is open, a second event commits at once: it takes no lock the first holds
    # (before the queue, it waited here on the head row).
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL lock_timeout = '2s'")
        _identifier_added(2)
    # The sequencer numbers what has committed; the first leaf, still uncommitted, is not skipped but waits.
    assert log_sequence() == 1
    release.set()
    writer.join(timeout=30)
    assert not failures
    assert log_sequence() == 1
    subjects = [json.loads(bytes(data))["subject"]["identifier"] for data in _leaves(2)]
    assert subjects == ["url:https://queue.example/2", "url:https://queue.example/1"]
    assert list(LogEntry.objects.order_by("index").values_list("index", flat=True)) == [0, 1]
    call_command("log_check")


@pytest.mark.postgres
def test_a_queued_leaf_leaves_the_queue_only_into_the_log(book: Any) -> None:
    _identifier_added(1)
    for statement, refusal in (
        ("UPDATE optout_logqueuedleaf SET kind = kind", "never changed"),
        ("DELETE FROM optout_logqueuedleaf", "only into the log"),
        ("RESET compensation.allow_truncate; TRUNCATE optout_logqueuedleaf", "TRUNCATE refused"),
    ):
        with pytest.raises(DatabaseError, match=refusal):
            sql_run(*statement.split("; "))
    assert log_sequence() == LogEntry.objects.count()
    assert not LogQueuedLeaf.objects.exists()


def test_log_check_reports_a_queued_leaf_that_differs_or_waits_too_long(holder: Any, clock: Any) -> None:
    _identifier_added(1)
    assert list(log_differences()) == []
    later = timezone.now() + timedelta(minutes=11)
    assert list(log_differences(now=later)) == [
        f"queued leaf {LogQueuedLeaf.objects.get().pk} (identifier.added) has waited since "
        f"{LogQueuedLeaf.objects.get().queued_at.isoformat()} for its index"
    ]
    log_sequence()
    assert list(log_differences(now=later)) == []
