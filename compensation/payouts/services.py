"""Payout profiles: set by the holder (password again in the portal, a ``payouts:write`` key in the API), verified
by staff, audited, and announced with ``payout_profile_changed``; and the staff's bank transfer file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.kr import brn, rrn

from compensation.models import (
    PayoutProfile,
    PayoutProfileStatus,
    TaxIdKind,
    TaxStatus,
)
from compensation.payouts.crypto import secret_encrypt
from compensation.signals import payout_profile_changed
from core.actors import Actor, require_staff
from core.errors import InvalidInput, InvalidState, NotPermitted
from registry.audit import audit_record
from registry.models import ApiScope, Party, PartyKind

# Korean bank account numbers are 10 to 14 digits (written with hyphens by most banks); 16 leaves room.
_ACCOUNT = re.compile(r"^[0-9]{8,16}$")


@dataclass(frozen=True)
class PayoutDetails:
    """What a holder enters: numbers as typed (hyphens and spaces are dropped before checking)."""

    payee_name: str
    bank_name: str
    account_number: str
    tax_id_kind: str
    tax_id: str
    tax_status: str


def account_mask(number: str) -> str:
    """Only the last four digits show: enough to recognise one's account, not enough to use it."""
    return "*" * max(len(number) - 4, 4) + number[-4:]


def tax_id_mask(kind: str, number: str) -> str:
    """RRN: the birth date and the sex digit show (``900101-1******``), the rest never; BRN: the office and type
    codes (``123-45-*****``)."""
    if kind == TaxIdKind.RRN:
        return f"{number[:6]}-{number[6]}******"
    return f"{number[:3]}-{number[3:5]}-*****"


def _digits(value: str) -> str:
    return re.sub(r"[\s\-]", "", value or "")


def _details_check(details: PayoutDetails) -> tuple[str, str]:
    """The account and tax numbers in compact form, or the first reason they are refused."""
    if not details.payee_name.strip():
        raise InvalidInput(_("Enter the payee's legal name."), code="payee_name_required", field="payee_name")
    if not details.bank_name.strip():
        raise InvalidInput(_("Enter the bank."), code="bank_required", field="bank_name")
    account = _digits(details.account_number)
    if not _ACCOUNT.match(account):
        raise InvalidInput(
            _("An account number has 8 to 16 digits (hyphens are fine)."),
            code="invalid_account_number",
            field="account_number",
        )
    if details.tax_status not in TaxStatus.values:
        raise InvalidInput(_("Unknown tax status."), code="invalid_tax_status", field="tax_status")
    tax_id = _digits(details.tax_id)
    try:
        if details.tax_id_kind == TaxIdKind.RRN:
            tax_id = rrn.validate(tax_id)
        elif details.tax_id_kind == TaxIdKind.BRN:
            tax_id = brn.validate(tax_id)
        else:
            raise InvalidInput(_("Unknown tax number kind."), code="invalid_tax_id_kind", field="tax_id_kind")
    except StdnumError:
        raise InvalidInput(
            _("This is not a valid resident or business registration number (format or check digit)."),
            code="invalid_tax_id",
            field="tax_id",
        ) from None
    if details.tax_id_kind == TaxIdKind.RRN and details.tax_status != TaxStatus.INDIVIDUAL:
        # A resident registration number belongs to a person: a corporation has a business number.
        raise InvalidInput(
            _("A resident registration number goes with the individual tax status."),
            code="tax_status_mismatch",
            field="tax_status",
        )
    return account, tax_id


def _may_change(actor: Actor, holder: Party) -> None:
    if holder.kind not in (PartyKind.HOLDER, PartyKind.SOCIETY):
        # A society or agent is paid for its members under mandates with the power to receive payouts.
        raise InvalidInput(_("Only rights holders and their agents are paid out."), code="not_a_holder")
    if actor.party is None or actor.party.pk != holder.pk:
        raise NotPermitted(_("Only the rights holder itself may change where its money goes."))
    if not actor.has_scope(ApiScope.PAYOUTS_WRITE):
        raise NotPermitted(
            _("Changing payout details needs an API key with the payouts:write scope."), code="scope_required"
        )


def payout_profile_set(*, actor: Actor, holder: Party, details: PayoutDetails) -> PayoutProfile:
    """Create or change the holder's payout profile. The portal asks for the password before calling this; an
    API key needs ``payouts:write``. A change of payee, bank, account, tax number or status makes the profile
    unverified again (no payout until staff verify it). Audited without the numbers; the holder is told on commit.
    """
    _may_change(actor, holder)
    account, tax_id = _details_check(details)
    values: dict[str, Any] = {
        "payee_name": details.payee_name.strip(),
        "bank_name": details.bank_name.strip(),
        "account_number_masked": account_mask(account),
        "tax_id_kind": details.tax_id_kind,
        "tax_id_masked": tax_id_mask(details.tax_id_kind, tax_id),
        "tax_status": details.tax_status,
    }
    with transaction.atomic():
        profile = PayoutProfile.objects.select_for_update().filter(holder=holder).first()
        if profile is None:
            profile = PayoutProfile.objects.create(
                holder=holder,
                account_number_encrypted=secret_encrypt(account),
                tax_id_encrypted=secret_encrypt(tax_id),
                **values,
            )
            event = "created"
            fields = sorted({*values, "account_number", "tax_id"} - {"account_number_masked", "tax_id_masked"})
        else:
            from compensation.payouts.selectors import payout_profile_numbers

            old_account, old_tax_id = payout_profile_numbers(profile=profile)
            fields = sorted(name for name, value in values.items() if getattr(profile, name) != value)
            if old_account != account:
                fields.append("account_number")
            if old_tax_id != tax_id:
                fields.append("tax_id")
            fields = sorted(set(fields) - {"account_number_masked", "tax_id_masked"})
            if not fields:
                return profile
            for name, value in values.items():
                setattr(profile, name, value)
            profile.account_number_encrypted = secret_encrypt(account)
            profile.tax_id_encrypted = secret_encrypt(tax_id)
            profile.status = PayoutProfileStatus.UNVERIFIED
            profile.verified_by = None
            profile.verified_at = None
            profile.updated_at = timezone.now()
            profile.save()
            event = "changed"
        change: dict[str, Any] = {
            "event": event,
            "fields": fields,
            "bank_name": profile.bank_name,
            "account_number_masked": profile.account_number_masked,
            "actor": actor.user_id,
        }
        audit_record(code=f"compensation.payout_profile.{event}", actor=actor, target=profile, data=change)
        holder_id = holder.pk
        transaction.on_commit(
            lambda: payout_profile_changed.send(sender=PayoutProfile, holder_id=holder_id, change=change)
        )
    return profile


def payout_profile_verify(*, actor: Actor, profile_id: int) -> PayoutProfile:
    """Staff checked the payee, account and tax number against documents: the holder may be paid from now on."""
    require_staff(actor)
    with transaction.atomic():
        # Conditional: a holder's change committed meanwhile (unverified again, other numbers) is not verified blind.
        changed = PayoutProfile.objects.filter(pk=profile_id, status=PayoutProfileStatus.UNVERIFIED).update(
            status=PayoutProfileStatus.VERIFIED, verified_by=actor.person, verified_at=timezone.now()
        )
        profile = PayoutProfile.objects.get(pk=profile_id)
        if not changed:
            raise InvalidState(_("This payout profile is already verified."), code="already_verified")
        change: dict[str, Any] = {
            "event": "verified",
            "fields": [],
            "bank_name": profile.bank_name,
            "account_number_masked": profile.account_number_masked,
            "actor": actor.user_id,
        }
        audit_record(code="compensation.payout_profile.verified", actor=actor, target=profile, data=change)
        holder_id = profile.holder_id
        transaction.on_commit(
            lambda: payout_profile_changed.send(sender=PayoutProfile, holder_id=holder_id, change=change)
        )
    return profile
