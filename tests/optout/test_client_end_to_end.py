"""The lab-side client (``client/``) against this server, end to end over real HTTP: the README's worked example.

A live server serves the registry; the client's own CLI (``optout sync``, ``optout filter``) downloads the signed
snapshot, verifies it with the pinned receipt key, follows the change feed, and filters a Parquet dataset, sending
what it removes to the lookup API for signed receipts. The client's offline answers must be the server's answers,
before and after changes that arrive through the feed, and for a change dated in the future, at its instant.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.utils import timezone
from optout_client.cli import main as optout_cli
from optout_client.http import HttpClient
from optout_client.registry import Registry

from core.actors import Actor
from optout.receipts import signing_key
from optout.services import refusal_file, refusal_withdraw, regime_set
from optout.snapshots.services import snapshot_create_now
from tests.factories import (
    ApiKeyFactory,
    HolderFactory,
    LabFactory,
    RefusalFactory,
    StaffUserFactory,
    WorkFactory,
    isbn,
)
from tests.optout.test_signals import verified_domain

# The live server answers from another thread: its reads must see what the test committed.
pytestmark = pytest.mark.django_db(transaction=True)

PURPOSES = ("train-ai", "train-genai")


def server_answers(base_url: str, api_key: str, items: list[dict[str, str]], purpose: str) -> dict[str, bool]:
    """``may_train`` per item as ``POST /api/v1/lookup`` answers it now, keyed by ``scheme:value`` as asked."""
    http = HttpClient(base_url, api_key=api_key)
    answers: dict[str, bool] = {}
    for start in range(0, len(items), 1000):
        chunk = items[start : start + 1000]
        with http.open("/api/v1/lookup", body={"purpose": purpose, "items": chunk}, method="POST") as response:
            body = json.loads(response.read())
        for result in body["results"]:
            answers[f"{result['input']['scheme']}:{result['input']['value']}"] = result["may_train"]
    return answers


def client_answers(directory: Path, items: list[dict[str, str]], purpose: str, **at: Any) -> dict[str, bool]:
    registry = Registry.open(directory)
    return {f"{i['scheme']}:{i['value']}": registry.may_train(i["scheme"], i["value"], purpose, **at) for i in items}


def cli(*arguments: str, capsys: Any) -> dict[str, Any]:
    capsys.readouterr()
    assert optout_cli(list(arguments)) == 0
    summary: dict[str, Any] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return summary


def test_a_lab_syncs_follows_the_feed_and_filters_a_parquet_dataset_with_the_servers_answers(
    live_server, tmp_path, capsys
):
    staff = StaffUserFactory()
    holder, publisher = HolderFactory(), HolderFactory()
    lab_key = ApiKeyFactory(party=LabFactory(), scopes=["lookup"]).raw
    works = [WorkFactory(holder=holder, identifiers=[("isbn", isbn(n))], verified_by=staff) for n in range(1, 9)]
    RefusalFactory(work=works[0])
    RefusalFactory(work=works[1], purposes=["train-genai"])
    withdrawn_later = RefusalFactory(work=works[2])
    songs = WorkFactory(holder=holder, kind="audio", identifiers=[("isrc", "KRA012300001")], verified_by=staff)
    regime_set(actor=Actor(user=staff), kind="audio", regime="license_required", effective_from=None)
    verified_domain(publisher)
    refusal_file(
        actor=Actor(party=publisher),
        holder=publisher,
        scope="url_prefix",
        purposes=["train-ai"],
        work=None,
        url_prefix="https://news.example.kr/paid/",
        effective_from=None,
    )
    snapshot = snapshot_create_now(actor=Actor.system())
    assert snapshot.status == "ready", (snapshot.failure_code, snapshot.failure_detail)

    items = [{"scheme": "isbn", "value": isbn(n)} for n in range(1, 13)]  # 8 registered, 4 not
    items += [
        {"scheme": "isrc", "value": songs.identifiers.get().value},
        {"scheme": "url", "value": "https://news.example.kr/paid/2026/story"},
        {"scheme": "url", "value": "https://news.example.kr/free/2026/story"},
        {"scheme": "isbn", "value": "978-0-00-000000-0"},  # invalid check digit
    ]
    copy = tmp_path / "optout-registry"
    base = [f"--dir={copy}"]
    synced = cli("sync", f"--registry={live_server.url}", f"--api-key={lab_key}", "--pin-key",
                 signing_key().key_id, "--quiet", *base, capsys=capsys)  # fmt: skip
    assert synced["snapshot_id"] == snapshot.snapshot_id
    assert synced["new_snapshot"] is True
    for purpose in PURPOSES:
        assert client_answers(copy, items, purpose) == server_answers(live_server.url, lab_key, items, purpose)
    offline = client_answers(copy, items, "train-ai")
    assert [offline[f"isbn:{isbn(n)}"] for n in (1, 2, 3, 4)] == [False, True, False, True]
    assert offline["isrc:KRA012300001"] is False
    assert offline["url:https://news.example.kr/paid/2026/story"] is False
    assert offline["url:https://news.example.kr/free/2026/story"] is True

    # Changes after the snapshot reach the copy through the feed: one withdrawn, one filed, one dated in an hour.
    refusal_withdraw(actor=Actor(party=holder), refusal=withdrawn_later, effective_at=None)
    RefusalFactory(work=works[3])
    in_an_hour = timezone.now() + timedelta(hours=1)
    RefusalFactory(work=works[4], effective_from=in_an_hour)
    followed = cli("sync", f"--registry={live_server.url}", f"--api-key={lab_key}", "--quiet", *base, capsys=capsys)
    assert followed["new_snapshot"] is False
    assert followed["changes_applied"] >= 3
    for purpose in PURPOSES:
        assert client_answers(copy, items, purpose) == server_answers(live_server.url, lab_key, items, purpose)
    assert client_answers(copy, items, "train-ai")[f"isbn:{isbn(5)}"] is True
    later = client_answers(copy, items, "train-ai", at=in_an_hour + timedelta(seconds=1))
    assert later[f"isbn:{isbn(5)}"] is False

    # The dataset: 1,200 rows of ISBNs with a text column; filtered offline, removals confirmed online.
    rows = [items[n % 12]["value"] for n in range(1_200)]
    dataset = tmp_path / "books.parquet"
    pq.write_table(pa.table({"isbn": rows, "text": [f"row {n}" for n in range(1_200)]}), dataset)
    kept, removed, report_path = tmp_path / "kept.parquet", tmp_path / "removed.parquet", tmp_path / "report.json"
    summary = cli("filter", f"--in={dataset}", "--column=isbn", "--scheme=isbn", f"--kept={kept}",
                  f"--removed={removed}", f"--report={report_path}", "--verify-online", f"--api-key={lab_key}",
                  *base, capsys=capsys)  # fmt: skip
    refused_now = {isbn(n) for n in (1, 4)}  # 2 is refused for train-genai only; 3 withdrawn; 5 from in an hour
    assert summary["counts"]["removed"] == 100 * len(refused_now)
    assert summary["counts"]["kept"] == 1_200 - 100 * len(refused_now)
    assert set(pq.read_table(removed).column("isbn").to_pylist()) == refused_now
    assert refused_now.isdisjoint(pq.read_table(kept).column("isbn").to_pylist())
    report = json.loads(report_path.read_text())
    assert report["snapshot_id"] == snapshot.snapshot_id
    assert report["cursor"] == followed["cursor"]
    # The registry confirmed every removal with a signed answer; none of them may be trained on.
    assert report["online"]["items"] == 100 * len(refused_now)
    assert report["online"]["statuses"] == {"refused": 100 * len(refused_now)}
    receipts = [json.loads(line) for line in Path(report["online"]["receipts"]["path"]).read_text().splitlines()]
    assert all(answer["receipt"]["key_id"] == signing_key().key_id for answer in receipts)
