"""Notifications: every trigger tells the right people once, in their language, in the inbox and by e-mail through
Django's mail backends (locmem here, a real SMTP server in one test); retried tasks record and send nothing twice;
preferences turn e-mail off per kind."""

from __future__ import annotations

import smtplib
import socket
from typing import Any, ClassVar

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend

from compensation.models import MANIFEST_JOB, UsageManifest
from compensation.payouts.services import payout_profile_verify
from core.actors import Actor
from core.jobs import job_fail
from core.models import EmailState, Notification, NotificationKind
from core.notifications import notification_create, notification_preference_set
from core.tasks import notifications_deliver
from optout.events import site_disagreement_found
from optout.services import refusal_withdraw
from registry.models import VerifiedDomain
from tests.compensation.helpers import BOOK, MANIFESTS, UNREGISTERED, manifest_body
from tests.factories import RefusalFactory, WorkFactory, isbn, payout_profile, verify_claims
from tests.helpers import seoul, signed_in

pytestmark = pytest.mark.django_db


def _kinds(party: Any) -> list[str]:
    return sorted(Notification.objects.filter(party_id=party.pk).values_list("kind", flat=True))


@pytest.fixture
def priced(world: Any, clock: Any) -> None:
    clock(seoul(2026, 1, 6, 9))


# --- Triggers ------------------------------------------------------------------------------------------


def test_refusal_in_force_and_withdrawn(holder, owner, django_capture_on_commit_callbacks, staff):
    work = WorkFactory(holder=holder, verified_by=staff, title="Rain song")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        refusal = RefusalFactory(work=work)
    with django_capture_on_commit_callbacks(execute=True):
        refusal_withdraw(actor=Actor(party=holder), refusal=refusal)

    assert _kinds(holder) == ["claim_verified", "refusal_in_force", "refusal_withdrawn"]
    assert [m.to for m in mail.outbox] == [[owner.email], [owner.email]]
    assert "“Rain song”" in mail.outbox[0].body


def test_a_refusal_filed_before_the_claim_is_verified_is_told_when_it_comes_into_force(
    holder, staff, django_capture_on_commit_callbacks
):
    work = WorkFactory(holder=holder, title="Pending poem")
    RefusalFactory(work=work)
    assert not Notification.objects.filter(kind=NotificationKind.REFUSAL_IN_FORCE).exists()

    with django_capture_on_commit_callbacks(execute=True):
        verify_claims(work, staff)

    assert Notification.objects.filter(kind=NotificationKind.REFUSAL_IN_FORCE, party_id=holder.pk).count() == 1


def test_escrow_released_to_a_verified_claimant_is_told_with_the_amount(
    priced, report, holder, staff, django_capture_on_commit_callbacks
):
    work = WorkFactory(holder=holder, identifiers=[("isbn", isbn(31))], title="Held poem")
    report((isbn(31), "2000000"))

    with django_capture_on_commit_callbacks(execute=True):
        verify_claims(work, staff)

    told = Notification.objects.get(kind=NotificationKind.ESCROW_RELEASED)
    assert told.context["amount_micro"] == 1_000 * 1_000_000
    assert "₩1,000" in mail.outbox[-1].subject


def test_violation_and_manifest_processed(
    priced, report, holder, lab, world, clock, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        RefusalFactory(work=world["book"])
    clock(seoul(2026, 1, 6, 12))  # the uses (an hour old) come after the refusal took effect

    report((BOOK, "2000000"), (UNREGISTERED, "2000000"))

    violation = Notification.objects.get(kind=NotificationKind.VIOLATION_RECORDED)
    assert violation.party_id == holder.pk
    assert violation.context["lines"] == 1
    assert violation.context["lab"] == "Seoul AI Lab"
    assert Notification.objects.filter(kind=NotificationKind.MANIFEST_PROCESSED, party_id=lab.pk).count() == 1


def test_manifest_failed_is_told_to_the_lab(priced, lab, lab_api, django_capture_on_commit_callbacks):
    line = {"scheme": "isbn", "value": BOOK, "units": "1000", "unit": "token", "used_at": "2026-01-06T08:00:00+09:00"}
    with django_capture_on_commit_callbacks(execute=False):
        response = lab_api.post(MANIFESTS, manifest_body([line], manifest_id="doomed"), format="json")
    manifest = UsageManifest.objects.get(pk=response.json()["id"])

    with django_capture_on_commit_callbacks(execute=True):
        job_fail(kind=MANIFEST_JOB, job_id=manifest.pk, code="input_missing", message="The file is gone.")

    told = Notification.objects.get(kind=NotificationKind.MANIFEST_FAILED)
    assert told.party_id == lab.pk
    assert "The file is gone." in mail.outbox[-1].body


def test_statement_ready_payout_made_and_invoice_ready(
    world, report, settle, clock, holder, other_holder, lab, django_capture_on_commit_callbacks
):
    clock(seoul(2026, 9, 10, 12))
    report((BOOK, "50000000"), (world["co_owned"].identifiers.get().value, "50000000"))
    clock(seoul(2026, 10, 3, 9))
    mail.outbox.clear()

    settle("2026-09-01", "2026-09-30")

    assert Notification.objects.filter(kind=NotificationKind.STATEMENT_READY).count() == 2
    payout = Notification.objects.get(kind=NotificationKind.PAYOUT_MADE, party_id=holder.pk)
    assert payout.context["payout_micro"] == 40_000 * 1_000_000
    assert Notification.objects.filter(kind=NotificationKind.INVOICE_READY, party_id=lab.pk).count() == 1
    # Settling the same period again answers with the settlement and tells nobody again.
    settle("2026-09-01", "2026-09-30", expect=200)
    assert Notification.objects.filter(kind=NotificationKind.STATEMENT_READY).count() == 2


def test_a_site_disagreement_and_changed_payout_details_are_told_to_the_holder(
    holder, owner, staff, django_capture_on_commit_callbacks
):
    domain = VerifiedDomain.objects.create(
        holder=holder, origin="https://news.example.kr", host="news.example.kr", method="dns", token="t" * 32
    )
    # As optout.observations sends it: the new disagreements only, each where and what.
    findings = [{"path": "/news/", "registry_refuses": ["train-ai"], "site_refuses": [], "sources": ["robots.txt"]}]
    with django_capture_on_commit_callbacks(execute=True):
        site_disagreement_found.send(sender=None, domain_id=domain.pk, disagreements=findings)
        site_disagreement_found.send(sender=None, domain_id=domain.pk, disagreements=findings)
        # Changing bank details through the service tells the holder; staff verifying them does not.
        profile = payout_profile(holder)
        payout_profile(holder, account_number="110-999-000000")
        payout_profile_verify(actor=Actor(user=staff), profile_id=profile.pk)

    assert _kinds(holder) == ["payout_profile_changed", "payout_profile_changed", "site_disagreement"]
    assert "/news/" in Notification.objects.get(kind=NotificationKind.SITE_DISAGREEMENT).context["details"]
    assert len(mail.outbox) == 3


# --- Language, preferences, the inbox ------------------------------------------------------------------


def test_mail_is_in_the_recipients_language_and_muted_kinds_stay_in_the_inbox(
    holder, owner, staff, django_capture_on_commit_callbacks
):
    notification_preference_set(user_id=owner.pk, language="en", email_muted=[NotificationKind.REFUSAL_IN_FORCE])
    with django_capture_on_commit_callbacks(execute=True):
        work = WorkFactory(holder=holder, verified_by=staff, title="Quiet")
        RefusalFactory(work=work)

    assert [m.subject for m in mail.outbox] == ["Your claim to “Quiet” is verified"]
    muted = Notification.objects.get(kind=NotificationKind.REFUSAL_IN_FORCE)
    assert muted.email_state == EmailState.SKIPPED
    client = signed_in(owner)
    inbox = client.get("/dashboard/notifications/", headers={"Accept-Language": "en"}).content.decode()
    assert "Your refusal of AI training is in force" in inbox
    client.post("/dashboard/notifications/")
    assert not Notification.objects.filter(user=owner, read_at__isnull=True).exists()


def test_the_settings_page_saves_language_and_email_kinds(owner):
    client = signed_in(owner)

    response = client.post(
        "/dashboard/notifications/settings/", {"language": "ko", "email": [NotificationKind.PAYOUT_MADE]}
    )

    assert response.status_code == 302
    preference = owner.notification_preference
    assert preference.language == "ko"
    assert NotificationKind.PAYOUT_MADE not in preference.email_muted
    assert NotificationKind.CLAIM_VERIFIED in preference.email_muted


def test_korean_is_the_default_language(holder, staff, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        WorkFactory(holder=holder, verified_by=staff, title="가을")

    assert mail.outbox[0].extra_headers["Content-Language"] == "ko"
    assert "가을" in mail.outbox[0].subject
    assert "Your claim" not in mail.outbox[0].subject


# --- Exactly once -----------------------------------------------------------------------------------------


def test_the_same_event_told_twice_is_recorded_and_mailed_once(owner, django_capture_on_commit_callbacks):
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            notification_create(
                user_ids=[owner.pk], kind=NotificationKind.PAYOUT_MADE, key="payout:1", context={"payout_micro": 5}
            )
    notification = Notification.objects.get()

    # The task delivered again (a broker redelivery, a retry) finds it sent.
    assert notifications_deliver.apply(args=([notification.pk],)).get() == 0

    assert len(mail.outbox) == 1
    notification.refresh_from_db()
    assert notification.email_state == EmailState.SENT
    assert notification.email_attempts == 1


def _run_as_a_worker(notification_id: int) -> None:
    # Each retry is a new run of the task with retries + 1, as on a worker; eager tests otherwise propagate the
    # Retry instead of running it.
    from config.celery import app

    app.conf.task_eager_propagates = False
    try:
        notifications_deliver.apply(args=([notification_id],))
    finally:
        app.conf.task_eager_propagates = True


class FlakyBackend(LocmemBackend):
    """A mail server that refuses the first ``failures`` messages, then accepts (into mail.outbox)."""

    failures: ClassVar[int] = 0

    def send_messages(self, messages: Any) -> int:
        if FlakyBackend.failures > 0:
            FlakyBackend.failures -= 1
            raise smtplib.SMTPServerDisconnected("try again later")
        return int(super().send_messages(messages))


def test_a_refused_mail_is_retried_by_the_task_and_sent_once(owner, settings, django_capture_on_commit_callbacks):
    settings.EMAIL_BACKEND = "tests.core.test_notifications.FlakyBackend"
    FlakyBackend.failures = 2
    with django_capture_on_commit_callbacks(execute=False):
        notification_create(user_ids=[owner.pk], kind=NotificationKind.PAYOUT_MADE, key="payout:2", context={})
    notification = Notification.objects.get()

    # Run as a worker runs it (a retry is a new run of the task with retries + 1), not as eager tests propagate.
    _run_as_a_worker(notification.pk)

    notification.refresh_from_db()
    assert notification.email_state == EmailState.SENT
    assert notification.email_attempts == 3
    FlakyBackend.failures = 0
    assert len(mail.outbox) == 1
    assert Notification.objects.count() == 1


def test_a_mail_server_that_never_accepts_leaves_the_notification_in_the_inbox(
    owner, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "tests.core.test_notifications.FlakyBackend"
    FlakyBackend.failures = 100
    with django_capture_on_commit_callbacks(execute=False):
        notification_create(user_ids=[owner.pk], kind=NotificationKind.PAYOUT_MADE, key="payout:3", context={})
    notification = Notification.objects.get()

    _run_as_a_worker(notification.pk)

    notification.refresh_from_db()
    assert notification.email_state == EmailState.FAILED
    assert notification.email_attempts == 8  # the first run and its 7 retries
    assert "SMTPServerDisconnected" in notification.email_error
    assert mail.outbox == []
    FlakyBackend.failures = 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_mail_goes_through_a_real_smtp_server(holder, owner, staff, settings, django_capture_on_commit_callbacks):
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    received: list[Any] = []

    class Keep(Message):
        def handle_message(self, message: Any) -> None:
            received.append(message)

    port = _free_port()
    controller = Controller(Keep(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        settings.EMAIL_USE_TLS, settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = False, "", ""
        with django_capture_on_commit_callbacks(execute=True):
            WorkFactory(holder=holder, verified_by=staff, title="Over the wire")
    finally:
        controller.stop()

    assert len(received) == 1
    assert received[0]["To"] == owner.email
    assert (
        "Over the wire" in str(received[0]["Subject"])
        or "Over the wire" in received[0].get_payload(decode=True).decode()
    )
    assert Notification.objects.get().email_state == EmailState.SENT
