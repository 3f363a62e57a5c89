"""The change feed over HTTP: ``GET /api/v1/changes?after=&limit=``."""

from __future__ import annotations

import re
from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from core.actors import Actor
from core.api.fastjson import OrjsonRenderer
from core.api.fields import ID_MAX
from core.api.views import RegistryAPIView
from core.errors import InvalidInput, NotPermitted
from optout.feed.selectors import DEFAULT_LIMIT, MAX_LIMIT, changes_after
from optout.models import Purpose, SubjectStatus, SubjectType
from registry.models import ApiScope

_WHOLE_NUMBER = re.compile(r"^[0-9]{1,19}$")


def require_feed_reader(actor: Actor) -> None:
    """Keys with the ``lookup`` scope, staff and signed-in people read the feed (anonymous callers are refused
    before this, 401); other keys get 403.
    """
    if actor.api_key is not None and not actor.has_scope(ApiScope.LOOKUP) and not actor.is_staff:
        raise NotPermitted(_("This API key lacks the scope “lookup”."), code="missing_scope")


class ChangeCauseOutput(serializers.Serializer[dict[str, Any]]):
    event_id = serializers.IntegerField(allow_null=True, help_text=_("The audit event of the change's cause."))
    code = serializers.CharField(help_text=_("The cause's code, e.g. optout.refusal.filed."))


class ChangeOutput(serializers.Serializer[dict[str, Any]]):
    cursor = serializers.IntegerField(help_text=_("The change's place in the feed; pass it as after to go on."))
    subject_type = serializers.ChoiceField(choices=SubjectType.choices)
    subject = serializers.CharField(
        help_text=_("An identifier key scheme:value, a URL prefix, or a work kind, by subject_type.")
    )
    host = serializers.CharField(help_text=_("A URL prefix's host; empty for the other subjects."))
    purpose = serializers.ChoiceField(choices=Purpose.choices)
    old_status = serializers.ChoiceField(choices=SubjectStatus.choices)
    new_status = serializers.ChoiceField(choices=SubjectStatus.choices)
    effective_at = serializers.DateTimeField(
        help_text=_("When the new status takes effect (RFC 3339, UTC); it may be in the future.")
    )
    recorded_at = serializers.DateTimeField(help_text=_("When the registry recorded the change."))
    cause = ChangeCauseOutput()


class ChangesPageOutput(serializers.Serializer[dict[str, Any]]):
    changes = ChangeOutput(many=True)
    next_cursor = serializers.IntegerField(
        help_text=_("The last change's cursor, or after when there is none: the next request's after.")
    )
    has_more = serializers.BooleanField(help_text=_("Whether more changes follow at once."))


def _whole_number(request: Request, name: str, default: int, code: str, message: str) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not _WHOLE_NUMBER.match(raw) or int(raw) > ID_MAX:
        raise InvalidInput(message, code=code, field=name)
    return int(raw)


class ChangesView(RegistryAPIView):
    pagination_class = None
    renderer_classes = [OrjsonRenderer]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "after",
                {"type": "integer", "minimum": 0, "maximum": ID_MAX},
                description="The cursor to start after: 0 (the default) for the whole feed, a snapshot's cursor, "
                "or the last page's next_cursor.",
            ),
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                description=f"Changes per page, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT}).",
            ),
        ],
        responses=ChangesPageOutput,
        summary="Status changes after a cursor (the change feed)",
    )
    def get(self, request: Request) -> Response:
        require_feed_reader(self.actor())
        after = _whole_number(request, "after", 0, "invalid_cursor", str(_("A cursor is a whole number, 0 or more.")))
        limit = _whole_number(
            request,
            "limit",
            DEFAULT_LIMIT,
            "invalid_limit",
            str(_("limit is a whole number from 1 to %(max)s.") % {"max": f"{MAX_LIMIT:,}"}),
        )
        return Response(changes_after(after=after, limit=limit))
