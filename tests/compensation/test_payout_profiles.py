"""Payout profiles: the payee, bank account and tax number (encrypted at rest, shown masked), the tax status that
decides withholding, staff verification, and no payout without a verified profile.
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from compensation.models import PayoutProfile, Statement, WithholdingRate
from compensation.payouts.crypto import payout_keys_check
from compensation.signals import payout_profile_changed
from registry.models import AuditEvent
from tests.compensation.helpers import BOOK
from tests.factories import VALID_BRN, VALID_RRN, ApiKeyFactory, payout_profile
from tests.helpers import key_client, seoul, streamed

pytestmark = pytest.mark.django_db

MICRO = 1_000_000
PROFILE = "/api/v1/payout-profile"
ACCOUNT = "110-234-567890"
DETAILS = {
    "payee_name": "김하늘",
    "bank_name": "신한은행",
    "account_number": ACCOUNT,
    "tax_id_kind": "rrn",
    "tax_id": "900101-1234568",
    "tax_status": "individual",
}


@pytest.fixture
def payouts_api(holder: Any) -> Any:
    return key_client(ApiKeyFactory(party=holder, scopes=["payouts:write"]).raw)


@pytest.fixture
def signals() -> Any:
    sent: list[dict[str, Any]] = []

    def listener(sender: Any, **kwargs: Any) -> None:
        sent.append({"holder_id": kwargs["holder_id"], "change": kwargs["change"]})

    payout_profile_changed.connect(listener, dispatch_uid="test-payout-profile-changed")
    yield sent
    payout_profile_changed.disconnect(dispatch_uid="test-payout-profile-changed")


def test_a_holder_sets_its_profile_with_a_payouts_write_key_and_sees_it_masked(
    payouts_api, holder, signals, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = payouts_api.put(PROFILE, DETAILS, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["account_number_masked"] == "********7890"
    assert body["tax_id_masked"] == "900101-1******"
    assert body["status"] == "unverified"
    # Neither number leaves in clear, in any form.
    for text in (response.content.decode(), payouts_api.get(PROFILE).content.decode()):
        assert "1102345" not in text
        assert "234567890" not in text
        assert "1234568" not in text
    event = AuditEvent.objects.get(code="compensation.payout_profile.created")
    assert event.data["fields"] == sorted(
        ["account_number", "bank_name", "payee_name", "tax_id", "tax_id_kind", "tax_status"]
    )
    assert "234567890" not in str(event.data)
    assert signals == [{"holder_id": holder.pk, "change": event.data}]


def test_the_raw_columns_never_hold_the_numbers(payouts_api, holder):
    assert payouts_api.put(PROFILE, DETAILS, format="json").status_code == 200
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT account_number_encrypted, tax_id_encrypted, account_number_masked, tax_id_masked "
            "FROM compensation_payoutprofile WHERE holder_id = %s",
            [holder.pk],
        )
        row = " ".join(cursor.fetchone())
    for number in ("110234567890", "234567890", "9001011234568", "1234568"):
        assert number not in row
    profile = PayoutProfile.objects.get(holder=holder)
    # Fernet under the configured key; another key cannot read it.
    from django.conf import settings

    key = settings.PAYOUT_DATA_KEYS[0].encode()
    assert Fernet(key).decrypt(profile.account_number_encrypted.encode()) == b"110234567890"
    assert Fernet(key).decrypt(profile.tax_id_encrypted.encode()) == b"9001011234568"
    with pytest.raises(Exception):  # noqa: B017,PT011  (cryptography's InvalidToken)
        Fernet(Fernet.generate_key()).decrypt(profile.account_number_encrypted.encode())


def test_changing_bank_details_needs_the_payouts_write_scope(holder, holder_api, payouts_api):
    refused = holder_api.put(PROFILE, DETAILS, format="json")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "scope_required"
    assert not PayoutProfile.objects.exists()
    assert payouts_api.put(PROFILE, DETAILS, format="json").status_code == 200


def test_a_change_of_account_is_audited_signalled_and_needs_verification_again(
    payouts_api, holder, staff, signals, django_capture_on_commit_callbacks
):
    payout_profile(holder, verified_by=staff, tax_status="individual")
    signals.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = payouts_api.put(PROFILE, {**DETAILS, "account_number": "3333-01-9999999"}, format="json")
    assert response.json()["status"] == "unverified"
    assert response.json()["account_number_masked"] == "*********9999"
    change = signals[-1]
    assert change["holder_id"] == holder.pk
    assert change["change"]["event"] == "changed"
    assert "account_number" in change["change"]["fields"]
    assert AuditEvent.objects.filter(code="compensation.payout_profile.changed").count() == 1
    # The same details again change nothing and tell nobody.
    with django_capture_on_commit_callbacks(execute=True):
        payouts_api.put(PROFILE, {**DETAILS, "account_number": "3333-01-9999999"}, format="json")
    assert AuditEvent.objects.filter(code="compensation.payout_profile.changed").count() == 1
    assert len(signals) == 1


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("tax_id", "900101-1234567", "invalid_tax_id"),  # bad check digit
        ("account_number", "12-34", "invalid_account_number"),
        ("tax_status", "corporation", "tax_status_mismatch"),  # a resident number is a person's
    ],
)
def test_invalid_details_are_refused_with_the_reason(payouts_api, field, value, code):
    response = payouts_api.put(PROFILE, {**DETAILS, field: value}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert not PayoutProfile.objects.exists()


def test_a_business_registration_number_is_checked_and_masked(payouts_api):
    body = {**DETAILS, "tax_id_kind": "brn", "tax_id": "120-81-47521", "tax_status": "corporation"}
    response = payouts_api.put(PROFILE, body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["tax_id_masked"] == "120-81-*****"
    assert VALID_BRN == "1208147521"
    assert VALID_RRN == "9001011234568"


def test_a_lab_and_another_holder_cannot_read_or_set_the_profile(holder, staff, lab, other_holder):
    payout_profile(holder, verified_by=staff)
    lab_key = key_client(ApiKeyFactory(party=lab, scopes=["payouts:write"]).raw)
    assert lab_key.put(PROFILE, DETAILS, format="json").json()["error"]["code"] == "not_a_holder"
    other = key_client(ApiKeyFactory(party=other_holder, scopes=["payouts:write"]).raw)
    assert other.get(PROFILE).status_code == 404
    assert PayoutProfile.objects.count() == 1


def test_no_payout_without_a_verified_profile_the_amount_is_carried_forward(
    clock, world, report, settle, holder, staff, staff_api, payouts_api
):
    PayoutProfile.objects.filter(holder=holder).delete()
    clock(seoul(2026, 9, 10, 12))
    report((BOOK, "40000000"))  # 20,000 KRW
    clock(seoul(2026, 10, 2, 9))
    september = Statement.objects.get(settlement_id=settle("2026-09-01", "2026-09-30")["id"], holder=holder)
    assert (september.payout_micro, september.payout_entry_id) == (0, None)
    assert september.carried_forward_micro == 20_000 * MICRO
    assert september.carry_reason == "no_verified_profile"
    assert staff_api.get(f"/api/v1/statements/{september.pk}").json()["carry_reason"] == "no_verified_profile"
    # The statement's file says why, and on what basis.
    exported = staff_api.get(f"/api/v1/statements/{september.pk}/export?format=csv", HTTP_ACCEPT_LANGUAGE="en")
    text = exported.content.decode("utf-8-sig")
    assert '"Why carried forward","No verified payout profile"' in text
    assert '"Payout basis","Accrual: what labs owe"' in text
    # A profile that is not verified yet does not pay either.
    assert payouts_api.put(PROFILE, DETAILS, format="json").status_code == 200
    clock(seoul(2026, 11, 2, 9))
    october = Statement.objects.get(settlement_id=settle("2026-10-01", "2026-10-31")["id"], holder=holder)
    assert (october.payout_micro, october.carry_reason) == (0, "no_verified_profile")
    # Verified: the next period pays everything carried, withholding 3.3% for an individual.
    profile = PayoutProfile.objects.get(holder=holder)
    from compensation.payouts.services import payout_profile_verify
    from core.actors import Actor

    payout_profile_verify(actor=Actor(user=staff), profile_id=profile.pk)
    clock(seoul(2026, 12, 2, 9))
    november = Statement.objects.get(settlement_id=settle("2026-11-01", "2026-11-30")["id"], holder=holder)
    assert november.payout_micro + november.withheld_micro == 20_000 * MICRO
    assert november.withheld_micro == 660 * MICRO
    assert (november.tax_status, november.withholding_bp, november.carry_reason) == ("individual", 330, "")


def test_staff_set_withholding_rates_from_a_date(clock, world, report, settle, holder, staff):
    from datetime import date

    payout_profile(holder, verified_by=staff, tax_status="individual")
    WithholdingRate.objects.create(tax_status="individual", rate_bp=880, effective_from=date(2026, 9, 15))
    clock(seoul(2026, 9, 10, 12))
    report((BOOK, "20000000"))  # 10,000 KRW
    clock(seoul(2026, 10, 2, 9))
    statement = Statement.objects.get(settlement_id=settle("2026-09-01", "2026-09-30")["id"], holder=holder)
    assert (statement.withholding_bp, statement.withheld_micro) == (880, 880 * MICRO)


def test_staff_download_the_bank_transfer_file_of_a_settlement(
    clock, world, report, settle, holder, staff_api, holder_api
):
    clock(seoul(2026, 9, 10, 12))
    report((BOOK, "40000000"))
    clock(seoul(2026, 10, 2, 9))
    settlement = settle("2026-09-01", "2026-09-30")
    url = f"/api/v1/settlements/{settlement['id']}/payout-export"
    assert holder_api.get(url).status_code == 403
    response = staff_api.get(url)
    assert response.status_code == 200
    text = streamed(response).decode("utf-8-sig")
    lines = text.strip().splitlines()
    assert lines[0].replace('"', "") == (
        "statement,holder,payee_name,bank_name,account_number,amount_krw,withheld_krw,gross_krw,tax_status,memo,"
        "paid_to,holder_name,mandate"
    )
    assert '"110234567890"' in lines[1]
    assert ",20000,0,20000," in lines[1]
    assert AuditEvent.objects.filter(code="compensation.payout_export.read").count() == 1


def test_the_key_setting_fails_loudly_when_missing_or_malformed():
    with pytest.raises(ImproperlyConfigured, match="PAYOUT_DATA_KEYS must be set"):
        payout_keys_check([])
    with pytest.raises(ImproperlyConfigured, match="key 2 is not a Fernet key"):
        payout_keys_check([Fernet.generate_key().decode(), "not-a-key"])


def test_the_settlement_admin_links_the_bank_transfer_file(clock, world, report, settle, staff, staff_client):
    clock(seoul(2026, 9, 10, 12))
    report((BOOK, "40000000"))
    clock(seoul(2026, 10, 2, 9))
    settlement = settle("2026-09-01", "2026-09-30")
    staff_client.force_login(staff)
    page = staff_client.get(f"/admin/compensation/settlement/{settlement['id']}/change/").content.decode()
    url = f"/api/v1/settlements/{settlement['id']}/payout-export"
    assert url in page
    # The admin's session reads it like a staff key.
    response = staff_client.get(url)
    assert response.status_code == 200
    assert "110234567890" in streamed(response).decode("utf-8-sig")
