"""The transparency log's JSON API: proofs, entries, and checkpoints on demand (README "Transparency log")."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.views import RegistryAPIView
from optout.models import LogCheckpoint
from optout.transparency import selectors, services


class InclusionProofOutput(serializers.Serializer[dict[str, Any]]):
    leaf_index = serializers.IntegerField()
    tree_size = serializers.IntegerField()
    leaf_hash = serializers.CharField(help_text=_("Base64 of SHA-256(0x00 || the leaf's canonical JSON)."))
    hashes = serializers.ListField(child=serializers.CharField(), help_text=_("The RFC 9162 audit path, base64."))


class ConsistencyProofOutput(serializers.Serializer[dict[str, Any]]):
    first = serializers.IntegerField()
    second = serializers.IntegerField()
    hashes = serializers.ListField(
        child=serializers.CharField(), help_text=_("The RFC 9162 consistency proof, base64.")
    )


class CheckpointOutput(serializers.Serializer[LogCheckpoint]):
    origin = serializers.SerializerMethodField()
    tree_size = serializers.IntegerField(source="size")
    root_hash = serializers.SerializerMethodField()
    note = serializers.CharField(help_text=_("The signed checkpoint, as served at /log/checkpoint."))
    issued_at = serializers.DateTimeField()

    def get_origin(self, checkpoint: LogCheckpoint) -> str:
        return str((selectors.log_checkpoint_ref(checkpoint) or {})["origin"])

    def get_root_hash(self, checkpoint: LogCheckpoint) -> str:
        return str((selectors.log_checkpoint_ref(checkpoint) or {})["root_hash"])


class _PublicLogView(RegistryAPIView):
    permission_classes = [AllowAny]
    authentication_classes = []
    pagination_class = None


class InclusionProofView(_PublicLogView):
    @extend_schema(
        parameters=[
            OpenApiParameter("index", int, required=True, description="The leaf's index (0 is the first event)."),
            OpenApiParameter("size", int, required=True, description="A tree size up to the latest checkpoint's."),
        ],
        responses={200: InclusionProofOutput},
        summary="Prove that an event is in the log",
    )
    def get(self, request: Request) -> Response:
        proof = selectors.log_inclusion_proof(
            index=request.query_params.get("index"), size=request.query_params.get("size")
        )
        return Response(proof)


class ConsistencyProofView(_PublicLogView):
    @extend_schema(
        parameters=[
            OpenApiParameter("from", int, required=True, description="The older tree size (at least 1)."),
            OpenApiParameter(
                "to", int, required=True, description="The newer tree size, up to the latest checkpoint's."
            ),
        ],
        responses={200: ConsistencyProofOutput},
        summary="Prove that a newer tree extends an older one",
    )
    def get(self, request: Request) -> Response:
        proof = selectors.log_consistency_proof(
            first=request.query_params.get("from"), second=request.query_params.get("to")
        )
        return Response(proof)


class EntryView(_PublicLogView):
    @extend_schema(
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="The leaf's canonical JSON (RFC 8785).")},
        summary="A log entry as hashed",
    )
    def get(self, request: Request, index: int) -> HttpResponse:
        # The bytes as hashed: re-serializing could change them.
        response = HttpResponse(selectors.log_entry(index=index), content_type="application/json")
        response["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


class CheckpointCreateView(RegistryAPIView):
    pagination_class = None

    @extend_schema(
        request=None,
        responses={201: CheckpointOutput, 200: CheckpointOutput},
        summary="Issue a checkpoint now (staff)",
        description="201 with a new checkpoint when leaves were appended since the latest, else 200 with the latest.",
    )
    def post(self, request: Request) -> Response:
        checkpoint, created = services.log_checkpoint_request(actor=self.actor())
        return Response(
            CheckpointOutput(checkpoint).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )
