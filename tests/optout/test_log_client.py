"""The lab-side client's ``optout log`` commands against this server over real HTTP: a lab pins the log's key,
keeps watch checkpoint after checkpoint, proves an event, and a registry that shows it another history for a size
it already saw is refused as a split view."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from optout_client.cli import main as optout_cli

from core.signed_note import Checkpoint, note_sign
from optout.models import LogEntry
from optout.receipts import signing_key
from optout.transparency.services import log_checkpoint_issue
from tests.factories import RefusalFactory, StaffUserFactory, WorkFactory, isbn

pytestmark = pytest.mark.django_db(transaction=True)


def cli(capsys: Any, *arguments: str) -> tuple[int, str, str]:
    status = optout_cli(list(arguments))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def forked_registry() -> Iterator[dict[str, Any]]:
    """A server that answers /log/checkpoint with whatever note the test puts in ``state["note"]``."""
    state: dict[str, Any] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = state["note"].encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()


def test_a_lab_keeps_watch_proves_an_event_and_refuses_a_split_view(
    live_server: Any, tmp_path: Path, capsys: Any, forked_registry: dict[str, Any]
) -> None:
    staff = StaffUserFactory()
    work = WorkFactory(identifiers=[("isbn", isbn(1))], verified_by=staff)
    log_checkpoint_issue()
    key = httpx.get(f"{live_server.url}/log/key").text.strip()
    witness = tmp_path / "witness.json"
    base = ["--registry", live_server.url, "--key", key, "--witness", str(witness)]

    status, out, _err = cli(capsys, "log", "check", *base)
    assert status == 0
    first = json.loads(out)
    assert first["verified"] is True
    assert first["tree_size"] == 2

    RefusalFactory(work=work)
    log_checkpoint_issue()
    status, out, _err = cli(capsys, "log", "check", *base)
    assert status == 0
    assert json.loads(out)["tree_size"] == 3

    filed = LogEntry.objects.get(kind="refusal.filed")
    status, out, _err = cli(capsys, "log", "prove", *base, "--index", str(filed.index))
    assert status == 0
    event = json.loads(out)
    assert event["kind"] == "refusal.filed"
    assert event["subject"]["work"] == work.pk

    # Another history for size 3, signed by the registry's own key: a split view.
    origin = key.split("+", 1)[0]
    forged = Checkpoint(origin=origin, size=3, root_hash=b"\x07" * 32).text()
    forked_registry["note"] = note_sign(text=forged, name=origin, private_key=signing_key().private_key)
    status, _out, err = cli(
        capsys, "log", "check", "--registry", forked_registry["url"], "--key", key, "--witness", str(witness)
    )
    assert status == 3
    assert "split view" in err
    # The witness still holds the history it verified.
    kept = json.loads(witness.read_text())
    assert kept["roots"]["3"] != forged.split("\n")[2]
