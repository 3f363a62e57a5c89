from django.urls import path

from optout.api import log_views, receipt_views, search_views, snapshot_views, views

urlpatterns = [
    path("lookup", views.LookupView.as_view(), name="lookup"),
    path("search", search_views.WorkSearchView.as_view(), name="search"),
    path("refusals", views.RefusalListCreateView.as_view(), name="refusals"),
    path("refusals/<int:refusal_id>/withdraw", views.RefusalWithdrawView.as_view(), name="refusal-withdraw"),
    path("regimes", views.RegimeCreateView.as_view(), name="regimes"),
    path("receipts/verify", receipt_views.ReceiptVerifyView.as_view(), name="receipt-verify"),
    path("log/proof/inclusion", log_views.InclusionProofView.as_view(), name="log-inclusion"),
    path("log/proof/consistency", log_views.ConsistencyProofView.as_view(), name="log-consistency"),
    path("log/entries/<int:index>", log_views.EntryView.as_view(), name="log-entry"),
    path("log/checkpoints", log_views.CheckpointCreateView.as_view(), name="log-checkpoints"),
    path("snapshots", snapshot_views.SnapshotListCreateView.as_view(), name="snapshots"),
    path("snapshots/latest", snapshot_views.SnapshotLatestView.as_view(), name="snapshot-latest"),
    path("snapshots/<slug:snapshot_id>", snapshot_views.SnapshotDetailView.as_view(), name="snapshot"),
    path(
        "snapshots/<slug:snapshot_id>/files/<str:name>", snapshot_views.SnapshotFileView.as_view(), name="snapshot-file"
    ),
]
