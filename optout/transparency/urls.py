from django.urls import URLPattern, path

from optout.transparency import views

urlpatterns: list[URLPattern] = [
    path("log/checkpoint", views.log_checkpoint, name="log-checkpoint"),
    path("log/key", views.log_key, name="log-key"),
    path("log/tile/<path:path>", views.log_tile, name="log-tile"),
    path("transparency/", views.transparency_page, name="transparency"),
]
