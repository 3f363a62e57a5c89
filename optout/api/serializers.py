from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from core.api.fields import ID_MAX, RegistryDateTimeField
from optout.models import Purpose, Refusal, RefusalScope, Regime
from registry.api.serializers import ON_BEHALF_OF_HELP
from registry.models import WorkKind

MAX_LOOKUP_ITEMS = 10_000


class RefusalCreateInput(serializers.Serializer[dict[str, Any]]):
    scope = serializers.ChoiceField(choices=RefusalScope.choices)
    purposes = serializers.ListField(child=serializers.CharField(max_length=32), min_length=1)
    work = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1, max_value=ID_MAX)
    url_prefix = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    effective_from = RegistryDateTimeField(required=False, allow_null=True, default=None)
    on_behalf_of = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=1, max_value=ID_MAX, help_text=ON_BEHALF_OF_HELP
    )


class RefusalWithdrawInput(serializers.Serializer[dict[str, Any]]):
    effective_at = RegistryDateTimeField(required=False, allow_null=True, default=None)
    on_behalf_of = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=1, max_value=ID_MAX, help_text=ON_BEHALF_OF_HELP
    )


class RefusalOutput(serializers.ModelSerializer[Refusal]):
    purposes = serializers.SerializerMethodField()
    history = serializers.SerializerMethodField()
    work = serializers.SerializerMethodField()
    filed_by = serializers.SerializerMethodField()

    class Meta:
        model = Refusal
        fields = ["id", "scope", "purposes", "work", "url_prefix", "effective_from", "filed_at", "filed_by", "history"]

    def get_filed_by(self, refusal: Refusal) -> dict[str, Any]:
        """The holder, and the society or agent that filed it for the holder under a mandate (or null)."""
        agent = refusal.agent
        return {
            "holder": {"id": refusal.holder.pk, "name": refusal.holder.name},
            "agent": {"id": agent.pk, "name": agent.name} if agent is not None else None,
        }

    def get_purposes(self, refusal: Refusal) -> list[str]:
        if refusal.purpose == Purpose.TRAIN_AI:
            return [Purpose.TRAIN_AI.value, Purpose.TRAIN_GENAI.value]
        return [refusal.purpose]

    def get_work(self, refusal: Refusal) -> dict[str, Any] | None:
        if refusal.work is None:
            return None
        return {"id": refusal.work.pk, "title": refusal.work.title, "kind": refusal.work.kind}

    def get_history(self, refusal: Refusal) -> list[dict[str, Any]]:
        from optout.selectors import refusal_history

        return [
            {"event": e["event"], "at": e["at"].isoformat(), "recorded_at": e["recorded_at"].isoformat()}
            for e in refusal_history(refusal=refusal)
        ]


class RegimeInput(serializers.Serializer[dict[str, Any]]):
    kind = serializers.ChoiceField(choices=WorkKind.choices)
    regime = serializers.ChoiceField(choices=Regime.choices)
    effective_from = RegistryDateTimeField(required=False, allow_null=True, default=None)


class LookupItemsField(serializers.ListField):
    """Items stay lenient: a malformed item is answered as ``invalid``, it never fails the batch."""

    def to_internal_value(self, data: Any) -> list[dict[str, str]]:
        # Checked by hand rather than through a child field per item: batches hold up to 10,000 items.
        if not isinstance(data, list):
            raise serializers.ValidationError(_("Send the items as a list."), code="not_a_list")
        if not data:
            raise serializers.ValidationError(_("Send at least one item."), code="empty")
        items = data
        return [
            {"scheme": str(item.get("scheme", ""))[:64], "value": str(item.get("value", ""))[:4000]}
            if isinstance(item, dict)
            else {"scheme": "", "value": str(item)[:200]}
            for item in items
        ]


class LookupInput(serializers.Serializer[dict[str, Any]]):
    purpose = serializers.ChoiceField(choices=Purpose.choices, default=Purpose.TRAIN_GENAI)
    as_of = RegistryDateTimeField(required=False, allow_null=True, default=None)
    items = LookupItemsField(min_length=1, allow_empty=False)


class LookupSingleInput(serializers.Serializer[dict[str, Any]]):
    scheme = serializers.CharField(max_length=64)
    value = serializers.CharField(max_length=4000)
    purpose = serializers.ChoiceField(choices=Purpose.choices, default=Purpose.TRAIN_GENAI)
    as_of = RegistryDateTimeField(required=False, allow_null=True, default=None)


_SINGLE_PARAMETERS = frozenset({"scheme", "value", "purpose"})
_PURPOSES = frozenset(Purpose.values)


def plain_single_lookup(params: Any) -> tuple[dict[str, str], str] | None:
    """The item and purpose of a single lookup whose parameters ``LookupSingleInput`` would accept unchanged, or
    None. Building the serializer cost a tenth of a keyed single lookup, and nearly every call is this plain
    form; anything else (a missing, blank, long or repeated parameter, ``as_of``, another purpose) goes through
    the serializer, which gives the errors.
    """
    if not params.keys() <= _SINGLE_PARAMETERS or any(len(values) != 1 for _name, values in params.lists()):
        return None
    scheme, value = params.get("scheme", "").strip(), params.get("value", "").strip()
    purpose = params.get("purpose", Purpose.TRAIN_GENAI)
    if not scheme or not value or len(scheme) > 64 or len(value) > 4000 or purpose not in _PURPOSES:
        return None
    # The serializer refuses NUL (which core/middleware.py already keeps from every view) and lone surrogates.
    if "\x00" in scheme or "\x00" in value:
        return None
    try:
        scheme.encode(), value.encode()
    except UnicodeEncodeError:
        return None
    return {"scheme": scheme, "value": value}, purpose


class LookupWorkOutput(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField()
    title = serializers.CharField()
    kind = serializers.CharField()


class LookupCandidateOutput(serializers.Serializer[dict[str, Any]]):
    work = LookupWorkOutput()
    match = serializers.ChoiceField(choices=["exact", "similar"])
    distance = serializers.IntegerField(help_text=_("Bits in which the Content-Codes differ (0 to 64)."))
    status = serializers.CharField(help_text=_("The candidate's own status, as a lookup of its ISCC answers it."))
    refusal = serializers.DictField(allow_null=True)


class LookupResultOutput(serializers.Serializer[dict[str, Any]]):
    index = serializers.IntegerField()
    input = serializers.DictField()
    key = serializers.CharField(allow_null=True, help_text=_("The normalized identifier, scheme:value."))
    status = serializers.ChoiceField(choices=["refused", "permitted", "unregistered", "license_required", "invalid"])
    may_train = serializers.BooleanField()
    compensation = serializers.ChoiceField(choices=["owners", "escrow", "none"])
    match = serializers.ChoiceField(
        choices=["exact", "similar"],
        allow_null=True,
        help_text=_(
            "How the item found its work: by its own identifier, or (an ISCC) by a registered work's Content-Code "
            "within the similarity threshold. Null without a work."
        ),
    )
    distance = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text=_("ISCC items only: the deciding candidate's distance in bits; null without one."),
    )
    candidates = LookupCandidateOutput(
        many=True,
        required=False,
        help_text=_(
            "ISCC items only: the registered works within the threshold, nearest first (at most "
            "SIMILARITY_MAX_CANDIDATES, the deciding one always among them). A refused candidate refuses the item; "
            "otherwise the nearest decides."
        ),
    )
    work = LookupWorkOutput(allow_null=True)
    refusal = serializers.DictField(allow_null=True)
    regime = serializers.CharField(allow_null=True)
    pending_refusal = serializers.BooleanField()
    reason = serializers.DictField(required=False, help_text=_("Invalid items only: the code and message."))


class LogCheckpointRefOutput(serializers.Serializer[dict[str, Any]]):
    origin = serializers.CharField(help_text=_("The transparency log's origin line."))
    tree_size = serializers.IntegerField()
    root_hash = serializers.CharField(help_text=_("Base64 of the RFC 9162 root hash, as in the signed checkpoint."))


class LookupResponse(serializers.Serializer[dict[str, Any]]):
    request = serializers.DictField()
    results = LookupResultOutput(many=True)
    issued_at = serializers.CharField()
    caller = serializers.CharField()
    last_refusal_event_id = serializers.IntegerField()
    checkpoint = LogCheckpointRefOutput(
        help_text=_(
            "The transparency log checkpoint this answer is consistent with: every event behind it is among its "
            "leaves (README: Transparency log)."
        )
    )
    receipt = serializers.DictField(help_text=_("Ed25519 signature over this response without its receipt."))
