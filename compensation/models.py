"""The compensation ledger (double-entry, append-only) and tariffs.

Sign convention: a line's ``amount_micro`` is positive for a debit and negative for a credit, in
micro-won. An accrual debits the lab's receivable (the lab owes) and credits a holder's payable or an
escrow account (the registry owes or holds), so a holder's payable balance is negative while money is
owed to the holder. Every entry's lines sum to zero, hence so do all balances together.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from registry.models import Party, WorkKind


class AccountKind(models.TextChoices):
    LAB_RECEIVABLE = "lab_receivable", _("Lab receivable")
    HOLDER_PAYABLE = "holder_payable", _("Holder payable")
    # Held for an identifier no registered work has yet; escrow_key is the normalized identifier.
    ESCROW_UNMATCHED = "escrow_unmatched", _("Escrow: unmatched")
    # Held for the part of a registered work not covered by verified shares; escrow_key is ``work:<id>``.
    ESCROW_UNCLAIMED = "escrow_unclaimed", _("Escrow: unclaimed share")
    ESCROW_DISPUTED = "escrow_disputed", _("Escrow: disputed")
    VIOLATIONS = "violations", _("Violations")
    ROUNDING = "rounding", _("Rounding")
    PAYOUTS = "payouts", _("Payouts")


# Kinds that belong to a party, and the party kind each needs.
PARTY_ACCOUNT_KINDS: dict[str, str] = {
    AccountKind.LAB_RECEIVABLE.value: "lab",
    AccountKind.HOLDER_PAYABLE.value: "holder",
}
ESCROW_ACCOUNT_KINDS: tuple[str, ...] = (
    AccountKind.ESCROW_UNMATCHED.value,
    AccountKind.ESCROW_UNCLAIMED.value,
    AccountKind.ESCROW_DISPUTED.value,
)


class Account(models.Model):
    """A ledger account; its balance is the sum of its lines. One row per (kind, party, escrow key)."""

    kind = models.CharField(_("kind"), max_length=32, choices=AccountKind.choices)
    party = models.ForeignKey(
        Party,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="ledger_accounts",
        verbose_name=_("party"),
    )
    escrow_key = models.CharField(
        _("escrow key"),
        max_length=2100,
        blank=True,
        help_text=_("What escrow is held for: a normalized identifier (isbn:978…) or work:<id>."),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("account")
        verbose_name_plural = _("accounts")
        ordering = ["kind", "party_id", "escrow_key"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=AccountKind.values), name="account_kind_valid"),
            # NULL parties never collide in a plain unique index, so the party-less accounts get their own
            # (partial) one; this works alike on PostgreSQL and SQLite.
            models.UniqueConstraint(
                fields=["kind", "party", "escrow_key"], condition=Q(party__isnull=False), name="account_unique_party"
            ),
            models.UniqueConstraint(
                fields=["kind", "escrow_key"], condition=Q(party__isnull=True), name="account_unique_no_party"
            ),
            models.CheckConstraint(
                condition=~Q(kind__in=sorted(PARTY_ACCOUNT_KINDS)) | Q(party__isnull=False),
                name="account_party_required",
            ),
            models.CheckConstraint(
                condition=~Q(kind__in=ESCROW_ACCOUNT_KINDS) | (Q(party__isnull=True) & ~Q(escrow_key="")),
                name="account_escrow_keyed",
            ),
        ]

    def __str__(self) -> str:
        label = str(self.get_kind_display())
        if self.party_id is not None:
            label += f" · {self.party}"
        if self.escrow_key:
            label += f" · {self.escrow_key}"
        return label


class EntryKind(models.TextChoices):
    ACCRUAL = "accrual", _("Accrual")
    RELEASE = "release", pgettext_lazy("escrow release", "Release")
    DISTRIBUTION = "distribution", _("Market-share distribution")
    PAYOUT = "payout", _("Payout")
    ADJUSTMENT = "adjustment", _("Adjustment")
    REVERSAL = "reversal", _("Reversal")


class LedgerEntry(models.Model):
    """One balanced posting. Never updated or deleted (PostgreSQL refuses it, migration 0002);
    a correction is a reversal, which negates every line of the entry it ``reverses``.
    """

    idempotency_key = models.CharField(_("idempotency key"), max_length=200, unique=True)
    kind = models.CharField(_("kind"), max_length=16, choices=EntryKind.choices)
    # The instant the money belongs to: settlement periods are closed by this, not by created_at.
    effective_at = models.DateTimeField(_("effective at"), db_index=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    memo = models.TextField(_("memo"), blank=True)
    reverses = models.OneToOneField(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reversed_by",
        verbose_name=_("reverses"),
    )
    source = models.JSONField(_("source"), default=dict, blank=True)

    class Meta:
        verbose_name = _("ledger entry")
        verbose_name_plural = _("ledger entries")
        ordering = ["-effective_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=EntryKind.values), name="ledgerentry_kind_valid"),
            models.CheckConstraint(
                condition=(Q(kind=EntryKind.REVERSAL.value) & Q(reverses__isnull=False))
                | (~Q(kind=EntryKind.REVERSAL.value) & Q(reverses__isnull=True)),
                name="ledgerentry_reversal_has_original",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.idempotency_key}"


class LedgerLine(models.Model):
    """A debit (positive) or credit (negative) of one account, in micro-won."""

    entry = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, related_name="lines", verbose_name=_("entry"))
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="lines", verbose_name=_("account"))
    amount_micro = models.BigIntegerField(_("amount (micro-won)"))

    class Meta:
        verbose_name = _("ledger line")
        verbose_name_plural = _("ledger lines")
        ordering = ["entry_id", "id"]
        constraints = [
            models.CheckConstraint(condition=~Q(amount_micro=0), name="ledgerline_amount_not_zero"),
        ]
        indexes = [
            # Balances: every line of an account, joined to its entry for the effective date.
            models.Index(fields=["account", "entry"], name="ledgerline_account_entry_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.account}: {self.amount_micro:+d} µ₩"


class UsageUnit(models.TextChoices):
    TOKEN = "token", pgettext_lazy("usage unit", "token")
    IMAGE = "image", pgettext_lazy("usage unit", "image")
    SECOND = "second", pgettext_lazy("usage unit", "second")
    ITEM = "item", pgettext_lazy("usage unit", "item")
    BYTE = "byte", pgettext_lazy("usage unit", "byte")


class Tariff(models.Model):
    """The rate in KRW per one unit of a work kind, from an instant on. Rows are only ever added;
    the latest one that started at or before a use applies to it.
    """

    kind = models.CharField(_("work kind"), max_length=16, choices=WorkKind.choices)
    unit = models.CharField(_("unit"), max_length=16, choices=UsageUnit.choices)
    rate_krw = models.DecimalField(
        _("rate (KRW per unit)"), max_digits=24, decimal_places=12, help_text=_("Exact, e.g. 0.0005 per token.")
    )
    effective_from = models.DateTimeField(_("effective from"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("set by"),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("tariff")
        verbose_name_plural = _("tariffs")
        ordering = ["kind", "unit", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "unit", "effective_from"], name="tariff_one_per_instant"),
            models.CheckConstraint(condition=Q(kind__in=WorkKind.values), name="tariff_kind_valid"),
            models.CheckConstraint(condition=Q(unit__in=UsageUnit.values), name="tariff_unit_valid"),
            models.CheckConstraint(condition=Q(rate_krw__gte=0), name="tariff_rate_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}/{self.unit}: {self.rate_krw.normalize():f} KRW from {self.effective_from:%Y-%m-%d}"
