from django.urls import path

from compensation.api import views

urlpatterns = [
    path("tariffs", views.TariffListCreateView.as_view(), name="tariffs"),
    path("balance", views.BalanceView.as_view(), name="balance"),
    path("usage-manifests", views.ManifestListCreateView.as_view(), name="usage-manifests"),
    path("usage-manifests/<int:manifest_pk>", views.ManifestDetailView.as_view(), name="usage-manifest"),
    path("violations", views.ViolationListView.as_view(), name="violations"),
    path(
        "usage-manifests/<int:manifest_pk>/outcomes",
        views.ManifestOutcomesView.as_view(),
        name="usage-manifest-outcomes",
    ),
]
