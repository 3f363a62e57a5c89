from django.urls import path

from registry.api import similarity_views, views

urlpatterns = [
    path("me", views.MeView.as_view(), name="me"),
    path("works", views.WorkListCreateView.as_view(), name="works"),
    path("works/bulk", views.WorkBulkView.as_view(), name="works-bulk"),
    path("works/<int:work_id>", views.WorkDetailView.as_view(), name="work-detail"),
    path("works/<int:work_id>/files", views.WorkFileCreateView.as_view(), name="work-files"),
    path("works/<int:work_id>/files/<int:file_id>", views.WorkFileDetailView.as_view(), name="work-file-detail"),
    path("works/<int:work_id>/files/<int:file_id>/retry", views.WorkFileRetryView.as_view(), name="work-file-retry"),
    path(
        "works/<int:work_id>/licensing-contact",
        views.WorkLicensingContactView.as_view(),
        name="work-licensing-contact",
    ),
    path("licensing-contact", views.LicensingContactView.as_view(), name="licensing-contact"),
    path("imports/<int:import_id>", views.ImportDetailView.as_view(), name="import-detail"),
    path("imports/<int:import_id>/retry", views.ImportRetryView.as_view(), name="import-retry"),
    path("imports/<int:import_id>/errors", views.ImportErrorsView.as_view(), name="import-errors"),
    path("claims", views.ClaimListCreateView.as_view(), name="claims"),
    path("claims/<int:claim_id>/verify", views.ClaimVerifyView.as_view(), name="claim-verify"),
    path(
        "claims/<int:claim_id>/accept-for-review",
        views.ClaimAcceptForReviewView.as_view(),
        name="claim-accept-for-review",
    ),
    path("claims/<int:claim_id>/reject", views.ClaimRejectView.as_view(), name="claim-reject"),
    path("claims/<int:claim_id>/evidence", views.ClaimEvidenceListCreateView.as_view(), name="claim-evidence"),
    path(
        "claims/<int:claim_id>/evidence/<int:evidence_id>/file",
        views.ClaimEvidenceFileView.as_view(),
        name="claim-evidence-file",
    ),
    path("works/<int:work_id>/claim-share", views.WorkClaimShareView.as_view(), name="work-claim-share"),
    path("domains", views.DomainListCreateView.as_view(), name="domains"),
    path("domains/<int:domain_id>", views.DomainDetailView.as_view(), name="domain-detail"),
    path("domains/<int:domain_id>/check", views.DomainCheckView.as_view(), name="domain-check"),
    path(
        "similarity-thresholds",
        similarity_views.SimilarityThresholdsView.as_view(),
        name="similarity-thresholds",
    ),
    path("mandates", views.MandateListCreateView.as_view(), name="mandates"),
    path("mandates/<int:mandate_id>/accept", views.MandateAcceptView.as_view(), name="mandate-accept"),
    path("mandates/<int:mandate_id>/end", views.MandateEndView.as_view(), name="mandate-end"),
    path("api-keys", views.ApiKeyListCreateView.as_view(), name="api-keys"),
    path("api-keys/<int:key_id>/revoke", views.ApiKeyRevokeView.as_view(), name="api-key-revoke"),
]
