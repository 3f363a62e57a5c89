"""The public notice of undistributed compensation (분배공고): what escrow holds per work or unregistered identifier and
hold month, from when it was first listed, and the staff's effective-dated hold policy that says how long a hold is
kept after its notice and where it goes then."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from compensation.models.ledger import Account


class HoldEndAction(models.TextChoices):
    # Today's rule: to the holders the same lab paid in the same month, pro rata (compensation/settlement/distribution).
    MARKET_SHARE = "market_share", _("Market-share distribution")
    # To a public-interest account staff name (as Korean collective management organisations may, with approval).
    PUBLIC_INTEREST = "public_interest", _("Transfer to a public-interest account")


class HoldPolicy(models.Model):
    """From ``effective_from`` on: a hold noticed on that day or later is kept ``period_days`` after its notice; a
    hold whose period ends on that day or later goes where ``end_action`` says. Rows are never edited: a new policy
    is a new row (the admin adds, never changes)."""

    effective_from = models.DateField(_("effective from"), unique=True)
    period_days = models.PositiveIntegerField(_("hold period (days from the notice)"))
    end_action = models.CharField(_("at the end"), max_length=16, choices=HoldEndAction.choices)
    public_interest_account = models.CharField(
        _("public-interest account"),
        max_length=200,
        blank=True,
        help_text=_("The name of the account the money is transferred to, e.g. a culture promotion fund."),
    )
    reason = models.TextField(_("reason"), blank=True)
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
        verbose_name = _("hold policy")
        verbose_name_plural = _("hold policies")
        ordering = ["-effective_from"]
        constraints = [
            models.CheckConstraint(condition=Q(end_action__in=HoldEndAction.values), name="hold_policy_action_valid"),
            models.CheckConstraint(
                condition=(Q(end_action="public_interest") & ~Q(public_interest_account=""))
                | (Q(end_action="market_share") & Q(public_interest_account="")),
                name="hold_policy_account_with_transfer",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.effective_from}: {self.period_days} days, {self.end_action}"


class UnclaimedNotice(models.Model):
    """One row of the public list: an escrow account (a work's unclaimed share, or an unregistered identifier) and
    a hold month, with the instant it was first listed (the notice) and the day its hold period ends, both fixed
    then. Recorded by the ledger in the transaction that first holds money there (compensation.ledger.services)."""

    account = models.ForeignKey(
        Account, on_delete=models.PROTECT, related_name="unclaimed_notices", verbose_name=_("escrow account")
    )
    hold_month = models.DateField(_("hold month"), help_text=_("The first day of the month the money was held in."))
    # The hold month's bounds as instants of the registry's time zone, so the list finds its holds by range.
    month_start = models.DateTimeField(_("month start"))
    month_end = models.DateTimeField(_("month end"))
    noticed_at = models.DateTimeField(_("noticed at"), db_index=True)
    hold_ends_on = models.DateField(_("hold ends on"), db_index=True)
    policy = models.ForeignKey(
        HoldPolicy, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("policy")
    )

    class Meta:
        verbose_name = _("unclaimed notice")
        verbose_name_plural = _("unclaimed notices")
        ordering = ["-noticed_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "hold_month"], name="unclaimed_notice_once"),
            models.CheckConstraint(condition=Q(month_end__gt=models.F("month_start")), name="unclaimed_month_bounds"),
        ]

    def __str__(self) -> str:
        return f"{self.account} {self.hold_month:%Y-%m} (until {self.hold_ends_on})"
