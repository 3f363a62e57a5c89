from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from django.core.paginator import Page, Paginator
from django.db.models import Model, QuerySet
from django.http import HttpRequest

_M = TypeVar("_M", bound=Model)


def base_url(request: HttpRequest) -> str:
    """The site's address as the person reached it, for links in mail."""
    return request.build_absolute_uri("/").rstrip("/")


def paginate(request: HttpRequest, items: QuerySet[_M] | Sequence[_M], *, per_page: int = 25) -> Page[_M]:
    return Paginator(items, per_page).get_page(request.GET.get("page"))


def query_without_page(request: HttpRequest) -> str:
    params = request.GET.copy()
    params.pop("page", None)
    return params.urlencode()
