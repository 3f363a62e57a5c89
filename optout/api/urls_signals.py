from django.urls import URLPattern, path

from optout.api import compat, observation_views

urlpatterns: list[URLPattern] = [
    path("domains/<int:domain_id>/tdmrep.json", compat.DomainTdmrepView.as_view(), name="domain-tdmrep"),
    path("domains/<int:domain_id>/robots.txt", compat.DomainRobotsTxtView.as_view(), name="domain-robots-txt"),
    path("domains/<int:domain_id>/observe", observation_views.DomainObserveView.as_view(), name="domain-observe"),
    path(
        "domains/<int:domain_id>/observations",
        observation_views.DomainObservationListView.as_view(),
        name="domain-observations",
    ),
    path("compat/urls", compat.CompatUrlsView.as_view(), name="compat-urls"),
]
