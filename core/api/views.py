"""The base of every API view: the caller as an ``Actor``, errors as JSON, pages in one shape."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from django.db.models import Model, QuerySet
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, renderers, serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.actors import Actor
from core.api.permissions import IsAuthenticatedPrincipal
from core.errors import NotPermitted

if TYPE_CHECKING:
    from registry.models import Party

_M = TypeVar("_M", bound=Model)


def acting_party(actor: Actor) -> Party:
    if actor.party is None:
        raise NotPermitted(
            _("Act for a party: use a party API key, or send X-Party-Id when you belong to several."),
            code="no_party",
        )
    return actor.party


class CSVRenderer(renderers.BaseRenderer):
    """Lets content negotiation accept ``?format=csv``; the views stream the CSV body themselves."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        return b""


class RegistryAPIView(APIView):
    permission_classes = [IsAuthenticatedPrincipal]
    # The lists page through ``paginate``; drf-spectacular reads the class from here to document the pages
    # ({count, next, previous, results}) and the ``page`` parameter instead of a bare array.
    pagination_class: type[PageNumberPagination] | None = PageNumberPagination

    def actor(self) -> Actor:
        # The authenticators (``registry.api.authentication``) leave the caller's Actor in ``request.auth``.
        auth = self.request.auth
        return auth if isinstance(auth, Actor) else Actor()

    def permission_denied(self, request: Request, message: str | None = None, code: str | None = None) -> NoReturn:
        if request.authenticators and not request.successful_authenticator:
            raise exceptions.NotAuthenticated(
                _("Authentication credentials were not provided: send “Authorization: Api-Key <key>”, or sign in.")
            )
        super().permission_denied(request, message=message, code=code)

    def handle_exception(self, exc: Exception) -> Response:
        # Errors are JSON whatever format the body was asked in: the CSV and JSON Lines renderers only let
        # ``?format=`` through to views that stream the file themselves, and would render an error as nothing.
        renderer = getattr(self.request, "accepted_renderer", None)
        if renderer is not None and renderer.media_type != "application/json":
            self.request.accepted_renderer = renderers.JSONRenderer()
            self.request.accepted_media_type = "application/json"
        return super().handle_exception(exc)

    def paginate(
        self, queryset: QuerySet[_M] | Sequence[_M], serializer_class: type[serializers.ModelSerializer[_M]]
    ) -> Response:
        """One page of ``queryset``, or of a sequence that reads only the slice it is asked for (a search's
        ranked works, ``registry.selectors.WorksInOrder``)."""
        paginator = (self.pagination_class or PageNumberPagination)()
        page: list[_M] | None = paginator.paginate_queryset(queryset, self.request, view=self)
        return paginator.get_paginated_response(serializer_class(page, many=True).data)
