"""Reads of payout profiles, the staff's payout policies in force, and the bank transfer rows of a settlement."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

from django.utils.translation import gettext_lazy as _

from compensation.models import (
    PayoutBasis,
    PayoutBasisPolicy,
    PayoutProfile,
    PayoutProfileStatus,
    Settlement,
    SettlementStatus,
    Statement,
    TaxStatus,
    WithholdingRate,
)
from compensation.payouts.crypto import secret_decrypt
from core.actors import Actor, require_staff
from core.errors import InvalidState, NotFound
from core.money import MICRO
from registry.audit import audit_record
from registry.models import Party


def payout_profile_numbers(*, profile: PayoutProfile) -> tuple[str, str]:
    """The account and tax numbers in clear: only for the bank transfer file and for telling a change apart."""
    return secret_decrypt(profile.account_number_encrypted), secret_decrypt(profile.tax_id_encrypted)


def payout_profile_get_for_actor(*, actor: Actor, holder: Party | None = None) -> PayoutProfile:
    """The acting holder's own profile (staff: ``holder``'s); 404 while it has none."""
    party = holder if holder is not None and actor.is_staff else actor.party
    profile = PayoutProfile.objects.filter(holder=party).first() if party is not None else None
    if profile is None:
        raise NotFound(_("No payout profile yet."), code="no_payout_profile")
    return profile


def payout_basis_on(*, day: date) -> str:
    """The payout basis in force on ``day``: the latest policy from that day or before; accrual without any."""
    policy = PayoutBasisPolicy.objects.filter(effective_from__lte=day).order_by("-effective_from").first()
    return policy.basis if policy is not None else PayoutBasis.ACCRUAL.value


def withholding_rates_on(*, day: date) -> dict[str, int]:
    """Per tax status, the withholding rate (basis points) in force on ``day``; none in force withholds nothing."""
    rates: dict[str, int] = {}
    for status in TaxStatus.values:
        rate = (
            WithholdingRate.objects.filter(tax_status=status, effective_from__lte=day)
            .order_by("-effective_from")
            .first()
        )
        rates[status] = rate.rate_bp if rate is not None else 0
    return rates


def verified_profiles(*, holder_ids: list[int]) -> dict[int, str]:
    """``{holder id: tax status}`` of the holders among ``holder_ids`` whose payout profile is verified."""
    return dict(
        PayoutProfile.objects.filter(holder_id__in=holder_ids, status=PayoutProfileStatus.VERIFIED).values_list(
            "holder_id", "tax_status"
        )
    )


def profile_tax_statuses(*, holder_ids: list[int]) -> dict[int, str]:
    """``{holder id: tax status}`` of the holders among ``holder_ids`` with a payout profile, verified or not: a
    member paid through its agent bears the withholding of its own tax status."""
    return dict(PayoutProfile.objects.filter(holder_id__in=holder_ids).values_list("holder_id", "tax_status"))


PAYOUT_EXPORT_COLUMNS = [
    "statement",
    "holder",
    "payee_name",
    "bank_name",
    "account_number",
    "amount_krw",
    "withheld_krw",
    "gross_krw",
    "tax_status",
    "memo",
    # Under a mandate with the power to receive payouts the agent is paid for its member: the row names both.
    "paid_to",
    "holder_name",
    "mandate",
]


def payout_export_rows(*, actor: Actor, settlement_pk: int) -> Iterator[list[Any]]:
    """The bank transfer file of a settled period (staff): one row per paid holder, the account number in clear.
    Reading it is audited, since it is the one place the numbers leave the database.

    A holder paid through its agent (``Statement.payee``) is one row of its own: the agent's payee name and account,
    the holder it is for (``holder``, ``holder_name``, and in the memo) and the mandate it is paid under."""
    require_staff(actor)
    settlement = Settlement.objects.filter(pk=settlement_pk).first()
    if settlement is None:
        raise NotFound(_("No such settlement."))
    if settlement.status != SettlementStatus.SETTLED:
        raise InvalidState(_("Only a settled period has payouts to transfer."), code="settlement_not_settled")
    statements = list(
        Statement.objects.filter(settlement=settlement, payout_micro__gt=0)
        .select_related("holder__payout_profile", "payee__payout_profile")
        .order_by("holder_id")
    )
    audit_record(
        code="compensation.payout_export.read",
        actor=actor,
        target=settlement,
        data={"rows": len(statements)},
    )
    memo = f"{settlement.first_day:%Y%m%d}-{settlement.last_day:%Y%m%d}"
    for statement in statements:
        payee = statement.paid_to
        profile = payee.payout_profile
        account, _tax_id = payout_profile_numbers(profile=profile)
        if profile.status != PayoutProfileStatus.VERIFIED:
            # Changed since the settlement paid it: never transfer to details staff have not checked.
            account = ""
        yield [
            statement.pk,
            statement.holder_id,
            profile.payee_name,
            profile.bank_name,
            account,
            statement.payout_micro // MICRO,
            statement.withheld_micro // MICRO,
            (statement.payout_micro + statement.withheld_micro) // MICRO,
            statement.tax_status,
            memo if payee.pk == statement.holder_id else f"{memo} {statement.holder.name}",
            payee.pk,
            statement.holder.name,
            statement.payout_mandate_id or "",
        ]
