from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from portal.views import accounts, labs, mandates, notifications, public, refusals, settlements, works

app_name = "portal"

_reset = {"success_url": reverse_lazy("portal:password-reset-done")}

urlpatterns = [
    path("search", public.search, name="search"),
    path("unclaimed/", public.unclaimed, name="unclaimed"),
    path("receipts/check/", public.receipt_check, name="receipt-check"),
    # Accounts
    path("accounts/signup/", accounts.signup, name="signup"),
    path("accounts/signup/done/", accounts.signup_done, name="signup-done"),
    path("accounts/verify/<str:uidb64>/<str:token>/", accounts.verify_email, name="verify-email"),
    path("accounts/login/", accounts.LoginView.as_view(), name="login"),
    path("accounts/logout/", accounts.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password/reset/",
        accounts.PasswordResetView.as_view(
            template_name="portal/accounts/password_reset_form.html",
            email_template_name="portal/email/password_reset.txt",
            subject_template_name="portal/email/password_reset_subject.txt",
            **_reset,
        ),
        name="password-reset",
    ),
    path(
        "accounts/password/reset/done/",
        auth_views.PasswordResetDoneView.as_view(template_name="portal/accounts/password_reset_done.html"),
        name="password-reset-done",
    ),
    path(
        "accounts/password/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(
            template_name="portal/accounts/password_reset_confirm.html",
            success_url=reverse_lazy("portal:password-reset-complete"),
        ),
        name="password-reset-confirm",
    ),
    path(
        "accounts/password/reset/complete/",
        auth_views.PasswordResetCompleteView.as_view(template_name="portal/accounts/password_reset_complete.html"),
        name="password-reset-complete",
    ),
    path("accounts/invitation/<str:token>/", accounts.invitation, name="invitation"),
    # Notifications (a person's, whichever party they act for)
    path("dashboard/notifications/", notifications.inbox, name="notifications"),
    path("dashboard/notifications/settings/", notifications.notification_settings, name="notification-settings"),
    # Parties
    path("dashboard/", works.dashboard, name="dashboard"),
    path("dashboard/parties/new/", accounts.party_create, name="party-create"),
    path("dashboard/parties/switch/", accounts.party_switch, name="party-switch"),
    path("dashboard/members/", accounts.members, name="members"),
    path("dashboard/members/<int:membership_id>/role/", accounts.member_role, name="member-role"),
    path("dashboard/members/<int:membership_id>/remove/", accounts.member_remove, name="member-remove"),
    # Mandates: societies and agents, and the members they act for
    path("dashboard/mandates/", mandates.mandate_list, name="mandates"),
    path("dashboard/mandates/<int:mandate_id>/accept/", mandates.mandate_accept_view, name="mandate-accept"),
    path("dashboard/mandates/<int:mandate_id>/end/", mandates.mandate_end_view, name="mandate-end"),
    path(
        "dashboard/mandates/<int:mandate_id>/refuse-catalogue/",
        mandates.member_catalogue_refuse,
        name="mandate-refuse-catalogue",
    ),
    # Rights holders
    path("dashboard/works/", works.work_list, name="works"),
    path("dashboard/works/new/", works.work_create, name="work-create"),
    path("dashboard/works/check-identifier", works.identifier_check, name="identifier-check"),
    path("dashboard/works/<int:work_id>/", works.work_detail, name="work"),
    path("dashboard/works/<int:work_id>/identifiers/", works.work_identifier_add, name="work-identifier-add"),
    path("dashboard/works/<int:work_id>/files/", works.work_file_upload, name="work-file-upload"),
    path("dashboard/works/<int:work_id>/claim/", works.work_claim, name="work-claim"),
    path("dashboard/claims/<int:claim_id>/", works.claim_detail, name="work-claim-detail"),
    path(
        "dashboard/claims/<int:claim_id>/evidence/<int:evidence_id>/file",
        works.claim_evidence_file,
        name="claim-evidence-file",
    ),
    path(
        "dashboard/works/<int:work_id>/licensing-contact/",
        works.work_licensing_contact,
        name="work-licensing-contact",
    ),
    path("dashboard/licensing-contact/", works.licensing_contact, name="licensing-contact"),
    path("dashboard/imports/new/", works.import_create, name="import-create"),
    path("dashboard/imports/<int:import_id>/", works.import_detail, name="import"),
    path("dashboard/imports/<int:import_id>/status.json", works.import_status, name="import-status"),
    path("dashboard/imports/<int:import_id>/errors.csv", works.import_errors_csv, name="import-errors"),
    path("dashboard/refusals/", refusals.refusal_list, name="refusals"),
    path("dashboard/refusals/new/", refusals.refusal_create, name="refusal-create"),
    path("dashboard/refusals/<int:refusal_id>/withdraw/", refusals.refusal_withdraw, name="refusal-withdraw"),
    path("dashboard/domains/", refusals.domain_list, name="domains"),
    path("dashboard/domains/<int:domain_id>/", refusals.domain_detail, name="domain"),
    path("dashboard/domains/<int:domain_id>/check/", refusals.domain_check, name="domain-check"),
    path("dashboard/domains/<int:domain_id>/observe/", refusals.domain_observe, name="domain-observe"),
    path("dashboard/domains/<int:domain_id>/optout-registry.txt", refusals.domain_proof_file, name="domain-proof"),
    path("dashboard/domains/<int:domain_id>/tdmrep.json", refusals.domain_tdmrep, name="domain-tdmrep"),
    path("dashboard/domains/<int:domain_id>/robots.txt", refusals.domain_robots, name="domain-robots"),
    path("dashboard/earnings/", labs.earnings, name="earnings"),
    path("dashboard/statements/", settlements.statement_list, name="statements"),
    path("dashboard/statements/<int:statement_pk>/", settlements.statement_detail, name="statement"),
    path("dashboard/consolidated-statements/", settlements.consolidated_list, name="consolidated-statements"),
    path(
        "dashboard/consolidated-statements/<int:consolidated_pk>/",
        settlements.consolidated_detail,
        name="consolidated-statement",
    ),
    path("dashboard/invoices/", settlements.invoice_list, name="invoices"),
    path("dashboard/payout-profile/", settlements.payout_profile, name="payout-profile"),
    path("dashboard/invoices/<int:invoice_pk>/", settlements.invoice_detail, name="invoice"),
    path(
        "dashboard/<str:document>/<int:object_id>/download",
        settlements.document_download,
        name="document-download",
    ),
    path("dashboard/exports/<int:export_pk>/", settlements.export_detail, name="export"),
    path("dashboard/exports/<int:export_pk>/status.json", settlements.export_status, name="export-status"),
    path("dashboard/exports/<int:export_pk>/file", settlements.export_file, name="export-file"),
    # Labs (keys and violations also serve rights holders)
    path("dashboard/keys/", labs.apikey_list, name="keys"),
    path("dashboard/keys/<int:key_id>/revoke/", labs.apikey_revoke, name="key-revoke"),
    path("dashboard/lookup/", labs.lookup, name="lookup"),
    path("dashboard/manifests/", labs.manifest_list, name="manifests"),
    path("dashboard/manifests/<int:manifest_pk>/", labs.manifest_detail, name="manifest"),
    path("dashboard/manifests/<int:manifest_pk>/status.json", labs.manifest_status, name="manifest-status"),
    path("dashboard/manifests/<int:manifest_pk>/outcomes", labs.manifest_outcomes, name="manifest-outcomes"),
    path("dashboard/violations/", labs.violation_list, name="violations"),
]
