"""The staff's claim review queue in the admin: oldest first with the waiting time, the other claimants side by
side with their evidence, and decisions with a reason the claimant reads (in its inbox and by e-mail)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from core.models import Notification, NotificationKind
from registry.models import ClaimStatus, OwnershipClaim, WorkStatus
from tests.factories import ClaimFactory, WorkFactory

pytestmark = pytest.mark.django_db


def test_queue_is_oldest_first_with_waiting_time_and_co_claimants(staff_client, holder, other_holder, staff, clock):
    clock(timezone.now() - timedelta(days=3))
    older = WorkFactory(holder=holder, title="Older poem")
    clock(timezone.now() + timedelta(days=2))
    newer = WorkFactory(holder=holder, title="Newer poem")
    ClaimFactory(work=newer, holder=other_holder, share_bp=5000)
    clock(timezone.now() + timedelta(days=1))

    page = staff_client.get("/admin/registry/ownershipclaim/?status__exact=pending", headers={"Accept-Language": "en"})

    assert page.status_code == 200
    text = page.content.decode()
    assert text.index("Older poem") < text.index("Newer poem")
    assert "3\xa0days" in text
    older_claim = older.claims.get()
    detail = staff_client.get(f"/admin/registry/ownershipclaim/{newer.claims.get(holder=holder).pk}/change/")
    assert "Other Records" in detail.content.decode()
    assert staff_client.get(f"/admin/registry/ownershipclaim/{older_claim.pk}/change/").status_code == 200


def test_staff_reject_with_a_reason_the_claimant_reads(
    staff_client, holder, other_holder, staff, django_capture_on_commit_callbacks
):
    work = WorkFactory(holder=holder, verified_by=staff, title="Moon river")
    rival = ClaimFactory(work=work, holder=other_holder, share_bp=5000)

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            f"/admin/registry/ownershipclaim/{rival.pk}/change/",
            {
                "decision_reason": "The certificate names another author.",
                "_reject": "Reject",
                "evidence-TOTAL_FORMS": "0",
                "evidence-INITIAL_FORMS": "0",
            },
        )

    assert response.status_code == 302, response.content.decode()[:2000]
    rival.refresh_from_db()
    assert rival.status == ClaimStatus.REJECTED
    assert rival.decision_reason == "The certificate names another author."
    told = Notification.objects.get(kind=NotificationKind.CLAIM_REJECTED)
    assert told.user.username == "co@other.example"
    assert [m.to for m in mail.outbox] == [["co@other.example"]]
    assert "The certificate names another author." in mail.outbox[0].body


def test_staff_open_a_dispute_and_both_sides_are_told(
    staff_client, holder, other_holder, staff, django_capture_on_commit_callbacks
):
    work = WorkFactory(holder=holder, verified_by=staff, title="Moon river")
    rival = ClaimFactory(work=work, holder=other_holder, share_bp=5000)

    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(
            f"/admin/registry/ownershipclaim/{rival.pk}/change/",
            {
                "decision_reason": "Both show contracts.",
                "_dispute": "Open",
                "evidence-TOTAL_FORMS": "0",
                "evidence-INITIAL_FORMS": "0",
            },
        )

    work.refresh_from_db()
    assert work.status == WorkStatus.DISPUTED
    disputed = Notification.objects.filter(kind=NotificationKind.CLAIM_DISPUTED)
    assert sorted(int(n.party_id or 0) for n in disputed) == sorted([holder.pk, other_holder.pk])
    assert len(mail.outbox) == 2

    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(
            f"/admin/registry/ownershipclaim/{rival.pk}/change/",
            {
                "decision_reason": "Contract of 2019 prevails.",
                "_verify": "Verify",
                "evidence-TOTAL_FORMS": "0",
                "evidence-INITIAL_FORMS": "0",
            },
        )
    # Verifying 50% on top of the owner's 100% is an overclaim: refused, and said so.
    assert OwnershipClaim.objects.get(pk=rival.pk).status == ClaimStatus.IN_REVIEW
    assert not Notification.objects.filter(kind=NotificationKind.CLAIM_VERIFIED, party_id=other_holder.pk).exists()


def test_claimant_is_told_of_verification_in_its_language(
    holder, other_holder, staff, co_owner, django_capture_on_commit_callbacks
):
    from core.actors import Actor
    from core.notifications import notification_preference_set
    from registry.services import claim_verify

    notification_preference_set(user_id=co_owner.pk, language="ko", email_muted=[])
    work = WorkFactory(holder=other_holder, title="달빛")

    with django_capture_on_commit_callbacks(execute=True):
        claim_verify(actor=Actor(user=staff), claim=work.claims.get())

    assert len(mail.outbox) == 1
    assert "달빛" in mail.outbox[0].subject
    assert mail.outbox[0].extra_headers["Content-Language"] == "ko"
    assert Notification.objects.get(kind=NotificationKind.CLAIM_VERIFIED).context["share"] == "100%"
