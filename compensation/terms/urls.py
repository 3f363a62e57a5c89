from django.urls import URLPattern, path

from compensation.terms import views

urlpatterns: list[URLPattern] = [
    path("works/<int:work_id>/license.xml", views.work_license, name="work-license"),
    path("domains/<int:domain_id>/license.xml", views.domain_license, name="domain-license"),
    path("terms/<str:kind>.jsonld", views.terms_policy, name="terms-policy"),
]
