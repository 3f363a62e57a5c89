from django.urls import path

from compensation.api import export_views, payment_views, unclaimed_views, views

urlpatterns = [
    path("tariffs", views.TariffListCreateView.as_view(), name="tariffs"),
    path("recording-splits", views.RecordingSplitListCreateView.as_view(), name="recording-splits"),
    path("balance", views.BalanceView.as_view(), name="balance"),
    path("usage-manifests", views.ManifestListCreateView.as_view(), name="usage-manifests"),
    path("usage-manifests/<int:manifest_pk>", views.ManifestDetailView.as_view(), name="usage-manifest"),
    path("usage-manifests/<int:manifest_pk>/retry", views.ManifestRetryView.as_view(), name="usage-manifest-retry"),
    path("violations", views.ViolationListView.as_view(), name="violations"),
    path(
        "usage-manifests/<int:manifest_pk>/outcomes",
        views.ManifestOutcomesView.as_view(),
        name="usage-manifest-outcomes",
    ),
    path("distributions", views.DistributionListCreateView.as_view(), name="distributions"),
    path("distributions/<int:distribution_pk>/retry", views.DistributionRetryView.as_view(), name="distribution-retry"),
    path("unclaimed", unclaimed_views.UnclaimedListView.as_view(), name="unclaimed"),
    path("hold-policies", unclaimed_views.HoldPolicyListCreateView.as_view(), name="hold-policies"),
    path("settlements", views.SettlementListCreateView.as_view(), name="settlements"),
    path("settlements/<int:settlement_pk>", views.SettlementDetailView.as_view(), name="settlement"),
    path("settlements/<int:settlement_pk>/retry", views.SettlementRetryView.as_view(), name="settlement-retry"),
    path("statements", views.StatementListView.as_view(), name="statements"),
    path("statements/<int:statement_pk>", views.StatementDetailView.as_view(), name="statement"),
    path("statements/<int:statement_pk>/lines", views.StatementLinesView.as_view(), name="statement-lines"),
    path("consolidated-statements", views.ConsolidatedStatementListView.as_view(), name="consolidated-statements"),
    path(
        "consolidated-statements/<int:consolidated_pk>",
        views.ConsolidatedStatementDetailView.as_view(),
        name="consolidated-statement",
    ),
    path(
        "consolidated-statements/<int:consolidated_pk>/members",
        views.ConsolidatedStatementMembersView.as_view(),
        name="consolidated-statement-members",
    ),
    path(
        "consolidated-statements/<int:consolidated_pk>/export",
        export_views.ConsolidatedStatementExportView.as_view(),
        name="consolidated-statement-export",
    ),
    path("invoices", views.InvoiceListView.as_view(), name="invoices"),
    path("invoices/overdue", payment_views.OverdueInvoiceListView.as_view(), name="invoices-overdue"),
    path("invoices/<int:invoice_pk>", views.InvoiceDetailView.as_view(), name="invoice"),
    path("lab-payments", payment_views.LabPaymentListCreateView.as_view(), name="lab-payments"),
    path("lab-payments/import", payment_views.LabPaymentImportView.as_view(), name="lab-payments-import"),
    path("payout-profile", payment_views.PayoutProfileView.as_view(), name="payout-profile"),
    path(
        "settlements/<int:settlement_pk>/payout-export",
        payment_views.PayoutExportView.as_view(),
        name="settlement-payout-export",
    ),
    path("invoices/<int:invoice_pk>/lines", views.InvoiceLinesView.as_view(), name="invoice-lines"),
    # Downloads of statements and invoices, and queued exports of large ones (export_views).
    path("statements/<int:statement_pk>/export", export_views.StatementExportView.as_view(), name="statement-export"),
    path("invoices/<int:invoice_pk>/export", export_views.InvoiceExportView.as_view(), name="invoice-export"),
    path("exports/<int:export_pk>", export_views.ExportDetailView.as_view(), name="export"),
    path("exports/<int:export_pk>/file", export_views.ExportFileView.as_view(), name="export-file"),
    path("exports/<int:export_pk>/retry", export_views.ExportRetryView.as_view(), name="export-retry"),
]
