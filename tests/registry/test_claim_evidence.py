"""Claims with evidence: files through the storage API that only the claimant and staff read, the KCC registration
number's format, pending claims that change nothing, and the staff's default share per kind."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from core.actors import Actor
from registry.models import AuditEvent, ClaimEvidence, ClaimStatus, OwnershipClaim, WorkStatus
from registry.services import claim_default_share_set
from tests.factories import ClaimFactory, WorkFactory
from tests.helpers import streamed

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4 registration certificate of the Korea Copyright Commission\n"


def _claim(client: APIClient, work_id: int, **extra: Any) -> dict[str, Any]:
    response = client.post("/api/v1/claims", {"work": work_id, **extra}, format="json")
    assert response.status_code == 201, response.content
    return dict(response.json())


def _certificate(client: APIClient, claim_id: int, number: str = "C-2024-012345") -> Any:
    upload = SimpleUploadedFile("certificate.pdf", PDF, content_type="application/pdf")
    return client.post(
        f"/api/v1/claims/{claim_id}/evidence",
        {"kind": "registration", "registration_number": number, "file": upload},
        format="multipart",
    )


def test_claimant_adds_a_certificate_and_reads_it_back(holder_api, other_holder_api, book, staff_api):
    claim = _claim(other_holder_api, book.pk, share_bp=5000)

    response = _certificate(other_holder_api, claim["id"])

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["registration_number"] == "C-2024-012345"
    assert body["original_name"] == "certificate.pdf"
    evidence = ClaimEvidence.objects.get(pk=body["id"])
    # Stored through the storage API under a name that says nothing of the upload.
    assert "certificate" not in str(evidence.file.name)
    assert evidence.file.storage.exists(str(evidence.file.name))
    assert AuditEvent.objects.filter(code="registry.claim.evidence_added", object_id=str(claim["id"])).exists()
    download = other_holder_api.get(body["file"])
    assert download.status_code == 200
    assert streamed(download) == PDF
    assert download["Content-Disposition"].startswith("attachment")
    assert staff_api.get(body["file"]).status_code == 200
    listing = staff_api.get(f"/api/v1/claims/{claim['id']}/evidence").json()
    assert [item["id"] for item in listing["results"]] == [body["id"]]


def test_another_holder_gets_404_and_anonymous_gets_401(holder_api, other_holder_api, book):
    claim = _claim(other_holder_api, book.pk, share_bp=5000)
    url = _certificate(other_holder_api, claim["id"]).json()["file"]

    # The verified owner of the work is another holder: the competing claim's evidence is not theirs to read.
    assert holder_api.get(url).status_code == 404
    assert holder_api.get(f"/api/v1/claims/{claim['id']}/evidence").status_code == 404
    assert (
        holder_api.post(
            f"/api/v1/claims/{claim['id']}/evidence", {"kind": "text", "text": "mine"}, format="json"
        ).status_code
        == 404
    )
    anonymous = APIClient()
    assert anonymous.get(url).status_code == 401
    assert anonymous.get(f"/api/v1/claims/{claim['id']}/evidence").status_code == 401


def test_evidence_files_have_no_public_url(other_holder_api, book):
    claim = _claim(other_holder_api, book.pk, share_bp=5000)
    evidence = ClaimEvidence.objects.get(pk=_certificate(other_holder_api, claim["id"]).json()["id"])
    with pytest.raises(NotImplementedError):
        evidence.file.url  # noqa: B018


@pytest.mark.parametrize(
    ("number", "code"),
    [("C-2024-01234", "invalid_length"), ("X-2024-012345", "invalid_format"), ("C-1950-012345", "invalid_component")],
)
def test_registration_number_is_checked_for_format(other_holder_api, book, number, code):
    claim = _claim(other_holder_api, book.pk, share_bp=5000)

    response = _certificate(other_holder_api, claim["id"], number=number)

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "registration_number"
    assert response.json()["error"]["code"] == code
    assert not ClaimEvidence.objects.exists()


def test_isni_ipi_and_free_text_evidence(other_holder_api, book):
    claim = _claim(other_holder_api, book.pk, share_bp=5000)
    url = f"/api/v1/claims/{claim['id']}/evidence"

    isni = other_holder_api.post(url, {"kind": "isni_ipi", "party_identifier": "0000 0001 2103 2683"}, format="json")
    ipi = other_holder_api.post(url, {"kind": "isni_ipi", "party_identifier": "00052210040"}, format="json")
    bad = other_holder_api.post(url, {"kind": "isni_ipi", "party_identifier": "0000000121032684"}, format="json")
    text = other_holder_api.post(url, {"kind": "text", "text": "I wrote it in 2019; drafts attached."}, format="json")
    empty = other_holder_api.post(url, {"kind": "contract"}, format="json")

    assert isni.status_code == 201
    assert isni.json()["party_identifier"] == "0000000121032683"
    assert ipi.status_code == 201
    assert ipi.json()["party_identifier"] == "00052210040"
    assert bad.status_code == 400
    assert bad.json()["error"]["field"] == "party_identifier"
    assert text.status_code == 201
    assert empty.status_code == 400
    assert empty.json()["error"]["field"] == "file"
    assert ClaimEvidence.objects.filter(claim_id=claim["id"]).count() == 3


def test_a_pending_claim_on_an_owned_work_changes_nothing(other_holder_api, book):
    claim = _claim(other_holder_api, book.pk)
    _certificate(other_holder_api, claim["id"])

    book.refresh_from_db()
    assert book.status == WorkStatus.VERIFIED
    assert OwnershipClaim.objects.get(pk=claim["id"]).status == ClaimStatus.PENDING


def test_rejected_claims_take_no_more_evidence(other_holder_api, staff_api, book):
    claim = _claim(other_holder_api, book.pk, share_bp=5000)
    assert (
        staff_api.post(f"/api/v1/claims/{claim['id']}/reject", {"reason": "no proof"}, format="json").status_code == 200
    )

    response = _certificate(other_holder_api, claim["id"])

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "claim_rejected"


def test_staff_default_share_applies_when_others_claim_and_is_shown_first(holder, other_holder_api, staff, staff_api):
    work = WorkFactory(holder=holder, kind="text", share_bp=5000)
    claim_default_share_set(actor=Actor(user=staff), kind="text", share_bp=5000)

    shown = other_holder_api.get(f"/api/v1/works/{work.pk}/claim-share").json()
    claim = _claim(other_holder_api, work.pk)

    assert shown == {"share_bp": 5000, "from_default": True, "co_claimants": 1}
    assert claim["share_bp"] == 5000
    # A work nobody else claims is claimed whole when no share is given.
    alone = WorkFactory(holder=holder, kind="image")
    OwnershipClaim.objects.filter(work=alone).update(status=ClaimStatus.REJECTED)
    assert other_holder_api.get(f"/api/v1/works/{alone.pk}/claim-share").json()["share_bp"] == 10000


def test_only_staff_set_default_shares(holder):
    from core.errors import NotPermitted

    with pytest.raises(NotPermitted):
        claim_default_share_set(actor=Actor(party=holder), kind="text", share_bp=5000)


def test_during_a_dispute_each_side_adds_evidence_and_staff_see_both(holder, holder_api, other_holder, staff):
    work = WorkFactory(holder=holder, verified_by=staff)
    rival = ClaimFactory(work=work, holder=other_holder, share_bp=6000)
    mine = work.claims.get(holder=holder)
    from registry.services import claim_accept_for_review

    claim_accept_for_review(actor=Actor(user=staff), claim=rival)
    work.refresh_from_db()
    assert work.status == WorkStatus.DISPUTED

    assert (
        holder_api.post(
            f"/api/v1/claims/{mine.pk}/evidence", {"kind": "text", "text": "Contract of 2020"}, format="json"
        ).status_code
        == 201
    )
    assert (
        holder_api.post(
            f"/api/v1/claims/{rival.pk}/evidence", {"kind": "text", "text": "not mine to add"}, format="json"
        ).status_code
        == 404
    )
    from registry.selectors import claim_co_claims

    side_by_side = claim_co_claims(claims=[rival])[rival.pk]
    assert [c.pk for c in side_by_side] == [mine.pk]
    assert [e.text for e in side_by_side[0].evidence.all()] == ["Contract of 2020"]
