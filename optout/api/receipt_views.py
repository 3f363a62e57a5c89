"""Receipts over HTTP: the published public keys, and a verifier anyone may call."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_safe
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.fastjson import JSONParser
from core.errors import InvalidInput
from optout.receipts import ReceiptCheck, public_keys, receipt_verify


@require_safe
def well_known_keys(request: HttpRequest) -> JsonResponse:
    """``{"keys": [JWK, ...], "transparency_log": {...}}``: the current receipt key and the retired ones, each with
    its ``status`` and ``uses``, and the transparency log's origin and C2SP verifier key (the current key's)."""
    from optout.transparency.selectors import log_origin, log_verifier_key

    keys: list[dict[str, Any]] = [
        {**key, "uses": ["receipts", "transparency-log"] if key["status"] == "current" else ["receipts"]}
        for key in public_keys()
    ]
    log = {"origin": log_origin(), "verifier_key": log_verifier_key(), "use": "transparency-log checkpoints"}
    response = JsonResponse({"keys": keys, "transparency_log": log})
    response["Cache-Control"] = "public, max-age=300"
    # Public keys are public: a verifier running in a browser on another origin may fetch them.
    response["Access-Control-Allow-Origin"] = "*"
    return response


class ReceiptJSONParser(JSONParser):
    """Bounded in depth like every body, but a NUL character is left to the signature check: a receipt issued
    over such a value must still verify, and nothing here is stored."""

    refuse_nul = False


class ReceiptVerifyInput(serializers.Serializer[dict[str, Any]]):
    payload = serializers.DictField(
        help_text="The signed payload: the lookup response without its receipt key "
        "(request, results, issued_at, caller, last_refusal_event_id)."
    )
    receipt = serializers.DictField(help_text="The receipt as issued: alg, key_id, signature, canonicalization.")


class ReceiptCheckOutput(serializers.Serializer[ReceiptCheck]):
    valid = serializers.BooleanField()
    key_id = serializers.CharField(allow_null=True)
    reason = serializers.ChoiceField(choices=["ok", "unknown_key", "bad_signature", "malformed"])


class ReceiptVerifyView(APIView):
    """Checks a receipt against the registry's current and retired keys; anyone may call it.

    The body is either ``{"payload": {...}, "receipt": {...}}`` or a lookup response exactly as received
    (recognised by its ``results`` and ``receipt`` keys). Both rest on one contract: the signed payload is
    the lookup response without its ``receipt`` key. A body of neither shape is a 400; a receipt that does
    not check is a 200 with ``valid: false`` and the reason.
    """

    permission_classes = [AllowAny]
    authentication_classes = []
    parser_classes = [ReceiptJSONParser]

    @extend_schema(
        request=ReceiptVerifyInput,
        responses={200: ReceiptCheckOutput},
        summary="Verify a lookup receipt",
        description="Send {payload, receipt}, or a whole lookup response as received: its payload is the response "
        "without its receipt key. Reasons: ok, unknown_key, bad_signature, malformed.",
    )
    def post(self, request: Request) -> Response:
        body = request.data
        if not isinstance(body, dict):
            raise InvalidInput(_('Send a JSON object: a lookup response, or {"payload": ..., "receipt": ...}.'))
        payload: dict[str, Any]
        if "payload" not in body and "results" in body and "receipt" in body:
            payload = {key: value for key, value in body.items() if key != "receipt"}
            receipt = body["receipt"]
            if not isinstance(receipt, dict):
                raise InvalidInput(_("The receipt must be an object."), field="receipt")
        else:
            ReceiptVerifyInput(data=body).is_valid(raise_exception=True)
            # The values as sent, not as the serializer rebuilt them: the signature covers them exactly.
            payload, receipt = body["payload"], body["receipt"]
        check = receipt_verify(payload=payload, receipt=receipt)
        return Response(ReceiptCheckOutput(check).data)
