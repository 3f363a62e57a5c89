"""Snapshots over HTTP: the list, the newest manifest, one manifest, its files (ETag, conditional GET, Range), and
staff's request for one now. Readers: API keys with the ``lookup`` scope, signed-in people and staff."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO, Any

from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils.http import parse_etags, quote_etag
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.fields import failure_reason_field
from core.api.schema import ErrorOutput, error_responses
from core.api.views import RegistryAPIView
from optout.models import Snapshot, SnapshotStatus
from optout.snapshots import files, selectors, services
from optout.snapshots.errors import RangeNotSatisfiable, SnapshotFailed, SnapshotFileMissing

# A snapshot's bytes never change under its id: caches may keep them (privately: readers authenticate).
IMMUTABLE = "private, max-age=31536000, immutable"
# The newest manifest changes with each build: revalidate every time (cheap with its ETag).
REVALIDATE = "private, no-cache"
_STREAM_CHUNK = 1 << 16
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def _api_path(snapshot: Snapshot, *parts: str) -> str:
    return "/".join([f"/api/v1/snapshots/{snapshot.snapshot_id}", *parts])


class SnapshotFileOutput(serializers.Serializer[dict[str, Any]]):
    name = serializers.CharField()
    bytes = serializers.IntegerField()
    sha256 = serializers.CharField(help_text=_("SHA-256 of the file's bytes, lower-case hex; also its ETag."))
    media_type = serializers.CharField()


class SnapshotFileLinkOutput(SnapshotFileOutput):
    url = serializers.CharField(help_text=_("Where to download it."))


class SnapshotManifestOutput(serializers.Serializer[dict[str, Any]]):
    """The signed manifest, as stored in ``manifest.json`` (README "Snapshots")."""

    format = serializers.CharField(help_text=_("optout-registry-snapshot/2"))
    snapshot_id = serializers.CharField()
    as_of = serializers.CharField(help_text=_("The instant T the snapshot answers for (RFC 3339, UTC)."))
    cursor = serializers.IntegerField(
        help_text=_("The last change-feed cursor it includes: GET /api/v1/changes?after=<cursor> starts after it.")
    )
    last_refusal_event_id = serializers.IntegerField()
    membership_hash = serializers.CharField(help_text=_("sha256-64-be: see README, Snapshots."))
    purposes = serializers.ListField(child=serializers.CharField())
    counts = serializers.JSONField()
    files = SnapshotFileOutput(many=True)
    receipt = serializers.JSONField(
        help_text=_("Ed25519 over the JCS of the manifest without receipt, as lookup receipts (keys.json).")
    )


class SnapshotOutput(serializers.ModelSerializer[Snapshot]):
    url = serializers.SerializerMethodField()
    counts = serializers.SerializerMethodField()
    files = serializers.SerializerMethodField()
    failure_reason = failure_reason_field()

    class Meta:
        model = Snapshot
        fields = [
            "snapshot_id",
            "url",
            "status",
            "trigger",
            "created_at",
            "as_of",
            "cursor",
            "last_refusal_event_id",
            "counts",
            "total_bytes",
            "files",
            "failure_code",
            "failure_reason",
        ]
        read_only_fields = fields

    def get_url(self, obj: Snapshot) -> str:
        return _api_path(obj)

    # Null until the snapshot is built (queued, building, failed).
    @extend_schema_field(serializers.DictField(allow_null=True))
    def get_counts(self, obj: Snapshot) -> dict[str, Any] | None:
        return (obj.manifest or {}).get("counts")

    @extend_schema_field(SnapshotFileLinkOutput(many=True))
    def get_files(self, obj: Snapshot) -> list[dict[str, Any]]:
        entries = (obj.manifest or {}).get("files", []) if obj.status == SnapshotStatus.READY else []
        return [{**entry, "url": _api_path(obj, "files", entry["name"])} for entry in entries]


def _manifest_response(snapshot: Snapshot, request: Request, *, cache_control: str) -> HttpResponse:
    etag = quote_etag(snapshot.manifest_sha256)
    headers = {"ETag": etag, "Cache-Control": cache_control, "Content-Location": _api_path(snapshot)}
    if _etag_matches(request.headers.get("If-None-Match", ""), snapshot.manifest_sha256):
        return HttpResponse(status=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return HttpResponse(files.json_bytes(snapshot.manifest), content_type="application/json", headers=headers)


def _etag_matches(header: str, sha256: str) -> bool:
    """If-None-Match's weak comparison: ``*`` or any listed tag, ``W/`` or not, equal to the file's."""
    if not header:
        return False
    tags = parse_etags(header)
    return "*" in tags or any(tag.removeprefix("W/") == quote_etag(sha256) for tag in tags)


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """The one range ``bytes=a-b`` / ``a-`` / ``-n`` asks for, as ``(first, last)`` inclusive; ``None`` to send the
    whole file (no header, several ranges or an unreadable one: RFC 9110 lets a server ignore those). A range that
    starts past the end raises ``RangeNotSatisfiable``."""
    match = _RANGE.fullmatch(header.strip().replace(" ", ""))
    if match is None or (not match[1] and not match[2]):
        return None
    if not match[1]:  # the last n bytes
        suffix = int(match[2])
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable()
        return max(0, size - suffix), size - 1
    first = int(match[1])
    if match[2] and int(match[2]) < first:
        return None  # unreadable: ignored
    if first >= size:
        raise RangeNotSatisfiable()
    return first, min(int(match[2]) if match[2] else size - 1, size - 1)


def _slice(handle: IO[bytes], first: int, length: int) -> Iterator[bytes]:
    try:
        handle.seek(first)
        while length > 0:
            chunk = handle.read(min(_STREAM_CHUNK, length))
            if not chunk:
                break
            length -= len(chunk)
            yield chunk
    finally:
        handle.close()


_SNAPSHOT_ID = OpenApiParameter("snapshot_id", str, OpenApiParameter.PATH)
_NOT_MODIFIED = OpenApiResponse(description=_("Not modified: If-None-Match names the current ETag."))


class SnapshotListCreateView(RegistryAPIView):
    @extend_schema(
        responses=SnapshotOutput(many=True),
        summary="Snapshots, newest first (staff also see queued, building and failed ones)",
    )
    def get(self, request: Request) -> Response:
        return self.paginate(selectors.snapshot_list_for_actor(actor=self.actor()), SnapshotOutput)

    @extend_schema(request=None, responses={202: SnapshotOutput}, summary="Build a snapshot now (staff)")
    def post(self, request: Request) -> Response:
        snapshot = services.snapshot_request(actor=self.actor())
        response = Response(SnapshotOutput(snapshot).data, status=status.HTTP_202_ACCEPTED)
        response["Location"] = _api_path(snapshot)
        return response


class SnapshotLatestView(RegistryAPIView):
    @extend_schema(
        # 404 snapshot_not_found until the first snapshot is ready.
        responses={200: SnapshotManifestOutput, 304: _NOT_MODIFIED, **error_responses(404)},
        summary="The newest ready snapshot's signed manifest (ETag; Content-Location names the snapshot)",
    )
    def get(self, request: Request) -> HttpResponse:
        snapshot = selectors.snapshot_latest(actor=self.actor())
        return _manifest_response(snapshot, request, cache_control=REVALIDATE)


class SnapshotDetailView(RegistryAPIView):
    @extend_schema(
        parameters=[_SNAPSHOT_ID],
        responses={200: SnapshotManifestOutput, 202: SnapshotOutput, 304: _NOT_MODIFIED},
        summary="A snapshot's signed manifest; 202 with its progress while it is queued or building",
    )
    def get(self, request: Request, snapshot_id: str) -> HttpResponse | Response:
        snapshot = selectors.snapshot_get_for_actor(actor=self.actor(), snapshot_id=snapshot_id)
        if snapshot.status == SnapshotStatus.FAILED:
            raise SnapshotFailed(
                extra={"failure_code": snapshot.failure_code, "failure_reason": snapshot.failure_message}
            )
        if snapshot.status != SnapshotStatus.READY:
            return Response(
                SnapshotOutput(snapshot).data, status=status.HTTP_202_ACCEPTED, headers={"Retry-After": "5"}
            )
        return _manifest_response(snapshot, request, cache_control=IMMUTABLE)


class SnapshotFileView(RegistryAPIView):
    @extend_schema(
        parameters=[_SNAPSHOT_ID, OpenApiParameter("name", str, OpenApiParameter.PATH, enum=list(files.FILE_NAMES))],
        responses={
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            (206, "application/octet-stream"): OpenApiTypes.BINARY,
            304: _NOT_MODIFIED,
            (416, "application/json"): OpenApiResponse(ErrorOutput, description=_("The range starts past the end.")),
        },
        summary="A snapshot file: ETag (its SHA-256), If-None-Match, Range and If-Range",
    )
    def get(self, request: Request, snapshot_id: str, name: str) -> HttpResponseBase:
        snapshot = selectors.snapshot_get_for_actor(actor=self.actor(), snapshot_id=snapshot_id)
        entry = selectors.snapshot_file_describe(snapshot=snapshot, name=name)
        sha256 = entry["sha256"]
        headers = {"ETag": quote_etag(sha256), "Cache-Control": IMMUTABLE, "Accept-Ranges": "bytes"}
        if _etag_matches(request.headers.get("If-None-Match", ""), sha256):
            return HttpResponse(status=status.HTTP_304_NOT_MODIFIED, headers=headers)
        storage = services.snapshot_storage()
        path = snapshot.storage_prefix + name
        try:
            handle = storage.open(path, "rb")
            size = storage.size(path)
        except FileNotFoundError:
            raise SnapshotFileMissing() from None
        wanted = request.headers.get("Range", "")
        if_range = request.headers.get("If-Range")
        # If-Range: the range only holds for the representation the client has; another one gets the whole file.
        if wanted and (if_range is None or if_range.strip() == quote_etag(sha256)):
            try:
                span = _byte_range(wanted, size)
            except RangeNotSatisfiable as exc:
                handle.close()
                return Response(
                    {"error": exc.as_dict()}, status=exc.status, headers={"Content-Range": f"bytes */{size}"}
                )
            if span is not None:
                first, last = span
                response = StreamingHttpResponse(
                    _slice(handle, first, last - first + 1),
                    status=status.HTTP_206_PARTIAL_CONTENT,
                    content_type=entry["media_type"],
                    headers={**headers, "Content-Range": f"bytes {first}-{last}/{size}"},
                )
                response["Content-Length"] = str(last - first + 1)
                return response
        response = FileResponse(handle, as_attachment=True, filename=name, content_type=entry["media_type"])
        for header, value in headers.items():
            response[header] = value
        return response
