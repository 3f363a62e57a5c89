"""A rights holder finds an unclaimed work on /unclaimed/, claims it with evidence, staff verify it in the admin,
and the holder sees the money escrow held for it released to them (in the inbox and on the earnings page)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from compensation.models import EscrowRelease
from core.actors import Actor
from registry.models import ClaimEvidence, ClaimStatus, OwnershipClaim
from registry.services import claim_reject
from tests.browser.helpers import screenshot, sign_in
from tests.compensation.helpers import MANIFESTS, manifest_body
from tests.factories import ApiKeyFactory, HolderFactory, LabFactory, StaffUserFactory, TariffFactory, WorkFactory
from tests.helpers import key_client

pytestmark = [pytest.mark.django_db(transaction=True)]

AUTUMN = "9788936434021"


def test_find_an_unclaimed_work_claim_it_with_evidence_staff_verify_and_the_money_is_released(
    page, browser, live_server, holder_person, tmp_path
):
    staff = StaffUserFactory(username="reviewer@registry.example", is_superuser=True)
    TariffFactory(set_by=staff)
    # An archive registered the work, but its claim was rejected: nobody owns it, and what it earns is held.
    archive = HolderFactory(name="City Archive")
    work = WorkFactory(holder=archive, identifiers=[("isbn", AUTUMN)], title="Autumn Letters", creators=["Kim Minji"])
    claim_reject(actor=Actor(user=staff), claim=work.claims.get(), reason="The archive holds no rights in it.")
    lab = LabFactory(name="Seoul AI Lab")
    lab_api = key_client(ApiKeyFactory(party=lab, scopes=["usage:write"]).raw)
    used_at = (timezone.now() - timedelta(hours=1)).isoformat()
    line = {"scheme": "isbn", "value": AUTUMN, "units": "24000000", "unit": "token", "used_at": used_at}
    assert lab_api.post(MANIFESTS, manifest_body([line], manifest_id="run-1"), format="json").status_code == 202

    # Anyone finds it on the public list; "This is mine" asks to sign in first.
    page.goto("/unclaimed/")
    page.get_by_label("Title, creator or identifier").fill("autumn")
    page.get_by_role("button", name="Search").click()
    row = page.locator("#unclaimed tbody tr", has_text="Autumn Letters")
    expect(row).to_contain_text("10,000–100,000 KRW")  # noqa: RUF001  (12,000 KRW, banded)
    screenshot(page, "unclaimed")
    sign_in(page, live_server, holder_person)
    row.get_by_role("link", name="This is mine").click()

    expect(page.get_by_role("heading", name="Claim a share of a work")).to_be_visible()
    expect(page.locator("#default-share")).to_contain_text("100%")
    page.get_by_label("Evidence").select_option("registration")
    page.get_by_label("Registration number").fill("C-2021-004512")
    certificate = tmp_path / "certificate.pdf"
    certificate.write_bytes(b"%PDF-1.4 certificate")
    page.get_by_label("File").set_input_files(str(certificate))
    page.get_by_role("button", name="File the claim").click()
    expect(page.get_by_role("heading", name="Your claim")).to_be_visible()
    expect(page.locator("#evidence")).to_contain_text("C-2021-004512")
    claim = OwnershipClaim.objects.get(holder__name="Hangang Press")
    assert ClaimEvidence.objects.get(claim=claim).original_name == "certificate.pdf"

    # Staff review it in the admin: the evidence is there; they verify with a reason.
    staff_page = browser.new_context(base_url=live_server.url, locale="en-US").new_page()
    sign_in(staff_page, live_server, staff)
    staff_page.goto(f"/admin/registry/ownershipclaim/{claim.pk}/change/")
    expect(staff_page.get_by_text("certificate.pdf")).to_be_visible()
    staff_page.locator("#id_decision_reason").fill("The KCC registration names this holder.")
    staff_page.get_by_role("button", name="Verify", exact=True).click()
    claim.refresh_from_db()
    assert claim.status == ClaimStatus.VERIFIED
    staff_page.context.close()

    # The held money went to the holder: told in the inbox, shown on the earnings page.
    release = EscrowRelease.objects.get(work=work)
    assert release.amount_micro == 12_000 * 1_000_000
    page.goto("/dashboard/notifications/")
    expect(page.locator("#notifications")).to_contain_text("Money released to you: ₩12,000")
    page.goto("/dashboard/earnings/")
    expect(page.locator(".figures")).to_contain_text("12,000")
    screenshot(page, "unclaimed-released")
    page.goto("/unclaimed/")
    expect(page.locator("#unclaimed")).not_to_contain_text("Autumn Letters")
