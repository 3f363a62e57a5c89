"""config/urls.py plus ``GET /bench/plain``, a JSON view that reads nothing (no database, no cache).

With ``BENCH_LOOKUP_THROTTLE=timestamps`` the lookup views count with DRF's ``SimpleRateThrottle`` again (a
list of request times per caller, as before core/api/throttles.py), with the same scopes and cache keys, so
that one script measures both.
"""

from __future__ import annotations

import os

from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.http import require_safe
from rest_framework.throttling import SimpleRateThrottle

from optout.api.compat import CompatUrlsView
from optout.api.throttles import LookupAnonymousThrottle, LookupPrincipalThrottle
from optout.api.views import LookupView
from optout.views import StatusView


@require_safe
def plain(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


class TimestampPrincipalThrottle(SimpleRateThrottle):
    scope = "lookup"
    get_cache_key = LookupPrincipalThrottle.get_cache_key


class TimestampAnonymousThrottle(SimpleRateThrottle):
    scope = "lookup_anonymous"
    get_cache_key = LookupAnonymousThrottle.get_cache_key


if os.environ.get("BENCH_LOOKUP_THROTTLE") == "timestamps":
    LookupView.throttle_classes = [TimestampPrincipalThrottle, TimestampAnonymousThrottle]
    StatusView.throttle_classes = [TimestampPrincipalThrottle, TimestampAnonymousThrottle]
    CompatUrlsView.throttle_classes = [TimestampPrincipalThrottle]

urlpatterns = [path("bench/plain", plain), path("", include("config.urls"))]
