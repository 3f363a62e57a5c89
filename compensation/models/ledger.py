"""The ledger: accounts, balanced entries and their lines (double-entry, append-only), and escrow releases.

Sign convention: a line's ``amount_micro`` is positive for a debit and negative for a credit, in
micro-won. An accrual debits the lab's receivable (the lab owes) and credits a holder's payable or an
escrow account (the registry owes or holds), so a holder's payable balance is negative while money is
owed to the holder. Every entry's lines sum to zero, hence so do all balances together.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from registry.models import Party


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
    # Tax withheld from payouts, owed to the tax authority.
    WITHHOLDING = "withholding", _("Withholding")
    # What labs paid into the registry's bank account (debit-normal: the cash the registry holds).
    BANK = "bank", _("Bank: lab payments received")
    # Unclaimed money transferred at the end of its hold period; escrow_key is the account's staff-given name.
    PUBLIC_INTEREST = "public_interest", _("Public-interest account")


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
    # Unclaimed escrow moved to a public-interest account at the end of its hold period (HoldPolicy).
    TRANSFER = "transfer", _("Public-interest transfer")
    PAYOUT = "payout", _("Payout")
    ADJUSTMENT = "adjustment", _("Adjustment")
    REVERSAL = "reversal", _("Reversal")
    # A lab's payment received: the bank account against the lab's receivable.
    PAYMENT = "payment", _("Lab payment")


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

    # Indexed with the line id below: the balance trigger asks "is this the entry's last line?" cheaply.
    entry = models.ForeignKey(
        LedgerEntry, on_delete=models.PROTECT, related_name="lines", verbose_name=_("entry"), db_index=False
    )
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
            models.Index(fields=["entry", "id"], name="ledgerline_entry_id_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.account}: {self.amount_micro:+d} µ₩"


class EscrowRelease(models.Model):
    """One release of held money to a work's owners, with the entry that moved it."""

    work = models.ForeignKey("registry.Work", on_delete=models.PROTECT, related_name="+", verbose_name=_("work"))
    entry = models.OneToOneField(
        LedgerEntry, on_delete=models.PROTECT, related_name="escrow_release", verbose_name=_("entry")
    )
    claims = models.JSONField(_("claims paid"), default=list)
    lines = models.PositiveIntegerField(_("lines released"))
    amount_micro = models.BigIntegerField(_("amount (micro-won)"))
    created_at = models.DateTimeField(_("released at"), default=timezone.now)

    class Meta:
        verbose_name = _("escrow release")
        verbose_name_plural = _("escrow releases")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"release #{self.pk} work {self.work_id}: {self.amount_micro} µ₩"
