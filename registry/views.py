"""Public pages of the registry (the portal proper is built on top of these)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from registry import selectors


def home(request: HttpRequest) -> HttpResponse:
    context = {"registry_name": settings.REGISTRY_NAME, **selectors.registry_figures()}
    return render(request, "registry/home.html", context)
