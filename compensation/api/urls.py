from django.urls import path

from compensation.api import views

urlpatterns = [
    path("tariffs", views.TariffListCreateView.as_view(), name="tariffs"),
    path("balance", views.BalanceView.as_view(), name="balance"),
]
