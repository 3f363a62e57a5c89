from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from optout.api.receipt_views import well_known_keys
from portal.views.public import home
from registry.api.views import healthz

api_v1: list[URLPattern | URLResolver] = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(url_name="api:schema", template_name="registry/api_swagger.html"),
        name="docs",
    ),
    path(
        "redoc/",
        SpectacularRedocView.as_view(url_name="api:schema", template_name="registry/api_redoc.html"),
        name="redoc",
    ),
    # The lookup first: labs call it thousands of times a second, and each pattern tried before it costs a match.
    path("", include("optout.api.urls")),
    path("", include("registry.api.urls")),
    path("", include("optout.api.urls_feed")),
    path("", include("optout.api.urls_signals")),
    path("", include("compensation.api.urls")),
]

urlpatterns = [
    path("", home, name="home"),
    path("healthz", healthz, name="healthz"),
    # Before the portal's and the admin's many patterns, for the same reason; every API path starts with api/v1/.
    path("api/v1/", include((api_v1, "api"))),
    path(".well-known/optout-registry/keys.json", well_known_keys, name="receipt-keys"),
    path("", include("optout.urls_signals")),
    path("", include("optout.transparency.urls")),
    path("", include("compensation.terms.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("", include("portal.urls")),
]

# Unhandled errors: JSON under /api/, HTML elsewhere; a database outage is a 503 (config/errors.py).
handler400 = "config.errors.bad_request"
handler403 = "config.errors.permission_denied"
handler404 = "config.errors.page_not_found"
handler500 = "config.errors.server_error"
