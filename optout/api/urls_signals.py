from django.urls import URLPattern, path

from optout.api import compat

urlpatterns: list[URLPattern] = [
    path("domains/<int:domain_id>/tdmrep.json", compat.DomainTdmrepView.as_view(), name="domain-tdmrep"),
    path("domains/<int:domain_id>/robots.txt", compat.DomainRobotsTxtView.as_view(), name="domain-robots-txt"),
    path("compat/urls", compat.CompatUrlsView.as_view(), name="compat-urls"),
]
