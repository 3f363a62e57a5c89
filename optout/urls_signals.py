from django.urls import URLPattern, path

from optout import views

urlpatterns: list[URLPattern] = [
    path("works/<int:work_id>", views.work_public, name="work-public"),
    path("works/<int:work_id>/rights.xmp", views.work_rights_xmp, name="work-rights-xmp"),
    path("status", views.StatusView.as_view(), name="status"),
]
