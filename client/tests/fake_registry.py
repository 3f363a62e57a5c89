"""A registry stand-in over real HTTP (http.server in a thread) that serves snapshots in the spec's format.

It serves what ``optout_client.testing`` writes: keys.json, the latest manifest, the snapshot files (with ETag and
Range), the change feed, and a signed batch lookup. Tests change its attributes to tamper with what it serves or
to cut a download short.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from optout_client import identifier_normalize
from optout_client.normalize import InvalidIdentifier
from optout_client.state import rfc3339
from optout_client.testing import SnapshotFiles, TestKey, sign_document

API_KEY = "ok_test_lookup"


@dataclass
class FakeRegistry:
    key: TestKey
    manifest_raw: bytes = b""
    files: dict[str, dict[str, bytes]] = field(default_factory=dict)  # snapshot id -> name -> bytes
    changes: list[dict[str, Any]] = field(default_factory=list)
    refused_keys: set[str] = field(default_factory=set)  # what the lookup answers refused
    # Faults: stop a file's body after this many bytes (once per name), or serve other bytes for a name.
    cut_after: dict[str, int] = field(default_factory=dict)
    served: list[str] = field(default_factory=list)  # "GET path Range" of every request
    base_url: str = ""

    def publish(self, snapshot: SnapshotFiles) -> dict[str, Any]:
        contents = snapshot.contents()
        manifest = snapshot.manifest(self.key, contents)
        self.files[snapshot.snapshot_id] = contents
        self.manifest_raw = json.dumps(manifest).encode()
        return manifest

    def lookup(self, body: dict[str, Any]) -> dict[str, Any]:
        results = []
        for index, item in enumerate(body["items"]):
            try:
                key = str(identifier_normalize(item["scheme"], item["value"]))
            except InvalidIdentifier as error:
                results.append(
                    {
                        "index": index,
                        "input": item,
                        "key": None,
                        "status": "invalid",
                        "may_train": False,
                        "reason": {"code": error.code},
                    }
                )
                continue
            refused = key in self.refused_keys
            results.append(
                {
                    "index": index,
                    "input": item,
                    "key": key,
                    "status": "refused" if refused else "unregistered",
                    "may_train": not refused,
                }
            )
        payload = {
            "request": {
                "purpose": body.get("purpose"),
                "as_of": rfc3339(datetime.now(UTC)),
                "item_count": len(results),
            },
            "results": results,
            "issued_at": rfc3339(datetime.now(UTC)),
            "caller": "api_key:test",
            "last_refusal_event_id": 1,
        }
        return sign_document(payload, self.key)


def _handler(registry: FakeRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, value: Any) -> None:
            self._send(status, json.dumps(value).encode(), {"Content-Type": "application/json"})

        def _authorized(self) -> bool:
            if self.headers.get("Authorization") != f"Api-Key {API_KEY}":
                self._json(401, {"error": {"code": "not_authenticated", "message": "Send an API key."}})
                return False
            return True

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            registry.served.append(f"GET {parts.path} {self.headers.get('Range') or ''}".strip())
            if parts.path == "/.well-known/optout-registry/keys.json":
                return self._json(200, registry.key.jwks())
            if not self._authorized():
                return None
            if parts.path == "/api/v1/snapshots/latest":
                return self._send(200, registry.manifest_raw, {"Content-Type": "application/json"})
            match = re.fullmatch(r"/api/v1/snapshots/([^/]+)/files/([^/]+)", parts.path)
            if match:
                return self._file(*match.groups())
            if parts.path == "/api/v1/changes":
                query = parse_qs(parts.query)
                after = int(query.get("after", ["0"])[0])
                limit = min(int(query.get("limit", ["1000"])[0]), 10_000)
                later = [change for change in registry.changes if change["cursor"] > after]
                page = later[:limit]
                return self._json(
                    200,
                    {
                        "changes": page,
                        "next_cursor": page[-1]["cursor"] if page else after,
                        "has_more": len(later) > limit,
                    },
                )
            return self._json(404, {"error": {"code": "not_found", "message": "Not found."}})

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            registry.served.append(f"POST {parts.path}")
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            if not self._authorized():
                return None
            if parts.path == "/api/v1/lookup":
                return self._json(200, registry.lookup(body))
            return self._json(404, {"error": {"code": "not_found", "message": "Not found."}})

        def _file(self, snapshot_id: str, name: str) -> None:
            data = registry.files.get(snapshot_id, {}).get(name)
            if data is None:
                return self._json(404, {"error": {"code": "not_found", "message": "No such file."}})
            import hashlib

            etag = f'"{hashlib.sha256(data).hexdigest()}"'
            start = 0
            status = 200
            header = self.headers.get("Range")
            if header and self.headers.get("If-Range", etag) == etag:
                start = int(re.fullmatch(r"bytes=(\d+)-", header).group(1))  # type: ignore[union-attr]
                if start >= len(data):
                    return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                status = 206
            body = data[start:]
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", etag)
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            cut = registry.cut_after.pop(name, None)
            if cut is not None:
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True
                return None
            self.wfile.write(body)
            return None

    return Handler


@contextmanager
def serve(registry: FakeRegistry) -> Iterator[FakeRegistry]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(registry))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    registry.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield registry
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
