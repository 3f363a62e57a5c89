"""A rights holder finds an unclaimed work on /unclaimed/, claims it with evidence, staff verify it in the admin,
and the holder sees the money escrow held for it released to them (in the inbox and on the earnings page)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from compensation.models import EscrowRelease, PayoutProfile, Statement, WithholdingRate
from compensation.payouts.services import payout_profile_verify
from compensation.settlement.services import settlement_create
from core.actors import Actor
from registry.models import ClaimEvidence, ClaimStatus, OwnershipClaim
from registry.services import claim_reject
from tests.browser.helpers import screenshot, sign_in
from tests.compensation.helpers import MANIFESTS, manifest_body
from tests.factories import (
    PASSWORD,
    ApiKeyFactory,
    HolderFactory,
    LabFactory,
    StaffUserFactory,
    TariffFactory,
    WorkFactory,
)
from tests.helpers import key_client

pytestmark = [pytest.mark.django_db(transaction=True)]

AUTUMN = "9788936434021"


def test_find_an_unclaimed_work_claim_it_with_evidence_staff_verify_and_a_settlement_pays_it(
    page, browser, live_server, holder_person, tmp_path, time_machine
):
    staff = StaffUserFactory(username="reviewer@registry.example", is_superuser=True)
    TariffFactory(set_by=staff)
    # The rates migration 0014 seeds, gone with the flush between transactional tests: staff set them again.
    WithholdingRate.objects.create(tax_status="individual", rate_bp=330, effective_from=date(2000, 1, 1), set_by=staff)
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

    # The holder gives its payout details (the password again), staff verify them, and the month is settled.
    page.goto("/dashboard/payout-profile/")
    page.get_by_label("Payee's legal name").fill("김하늘")
    page.get_by_label("Bank", exact=True).fill("국민은행")
    page.get_by_label("Account number").fill("123456-01-234567")
    page.get_by_label("Tax number kind").select_option("rrn")
    page.get_by_label("Resident or business registration number").fill("900101-1234568")
    page.get_by_label("Tax status").select_option("individual")
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_role("button", name="Save").click()
    expect(page.locator("main")).to_contain_text("**********4567")
    profile = PayoutProfile.objects.get(holder__name="Hangang Press")
    payout_profile_verify(actor=Actor(user=staff), profile_id=profile.pk)

    # A month later the month is over; staff settle it and the holder is paid, 3.3% withheld as an individual.
    today = timezone.localdate()
    time_machine.move_to(timezone.now() + timedelta(days=32), tick=True)
    settlement, _created = settlement_create(actor=Actor(user=staff), first_day=today.replace(day=1), last_day=today)
    settlement.refresh_from_db()
    assert settlement.status == "settled"
    statement = Statement.objects.get(settlement=settlement, holder__name="Hangang Press")
    assert (statement.payout_micro, statement.withheld_micro) == (11_604 * 1_000_000, 396 * 1_000_000)
    sign_in(page, live_server, holder_person)  # a month on, the session has expired
    page.goto("/dashboard/notifications/")
    expect(page.locator("#notifications")).to_contain_text("Payout made: ₩11,604")
    page.goto("/dashboard/statements/")
    expect(page.locator("main")).to_contain_text("11,604")
    screenshot(page, "unclaimed-paid")
