from django.urls import URLPattern, path

from optout import views

urlpatterns: list[URLPattern] = [
    path("works/<int:work_id>", views.work_public, name="work-public"),
    path("status", views.StatusView.as_view(), name="status"),
]
