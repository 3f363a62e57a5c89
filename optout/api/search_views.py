"""``GET /api/v1/search?q=``: every registered work a title, a creator's name or an identifier finds, for anyone."""

from __future__ import annotations

from django.db import DatabaseError
from drf_spectacular.utils import extend_schema
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from optout.api.throttles import LookupAnonymousThrottle, LookupPrincipalThrottle
from optout.errors import LookupUnavailable
from optout.status.selectors import work_statuses_now
from registry.api.serializers import SearchInput, SearchResultOutput
from registry.search import search_query_clean
from registry.selectors import work_search


class WorkSearchView(APIView):
    """Public search: ranked as ``registry.search`` says, in pages of 50, each work with its status now.

    Anyone may search, at the lookup rates (per API key or person, else per address), as anyone may look up.
    """

    permission_classes = [AllowAny]
    throttle_classes = [LookupPrincipalThrottle, LookupAnonymousThrottle]
    pagination_class = PageNumberPagination

    @extend_schema(
        parameters=[SearchInput],
        responses=SearchResultOutput(many=True),
        summary="Find registered works by title, creator or identifier (no account needed)",
    )
    def get(self, request: Request) -> Response:
        data = SearchInput(data=request.query_params)
        data.is_valid(raise_exception=True)
        query = search_query_clean(data.validated_data.get("q"))
        paginator = self.pagination_class()
        try:
            page = paginator.paginate_queryset(work_search(query=query), request, view=self) or []
            statuses = work_statuses_now(works=page)
        except DatabaseError:
            # Never fail open: a work whose status could not be read is not shown as permitted.
            raise LookupUnavailable() from None
        body = SearchResultOutput(page, many=True, context={"request": request, "statuses": statuses}).data
        return paginator.get_paginated_response(body)
