"""Money in and money out to people: labs' payments matched to invoices, the payout basis, payout profiles with
encrypted bank and tax numbers, and the withholding rates by tax status.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from compensation.models.ledger import LedgerEntry
from compensation.models.settlement import Invoice
from registry.models import Party


class PaymentSource(models.TextChoices):
    ADMIN = "admin", pgettext_lazy("payment source", "Admin")
    API = "api", pgettext_lazy("payment source", "API")
    IMPORT = "import", _("Bank statement import")


class LabPayment(models.Model):
    """Money a lab paid the registry, as the bank shows it. Its ledger entry debits the bank account and credits
    the lab's receivable. The bank reference is unique in the database, so recording a payment twice (the same
    statement imported again, two staff at once) records it once. Never updated or deleted (PostgreSQL refuses it).
    """

    lab = models.ForeignKey(Party, on_delete=models.PROTECT, related_name="payments", verbose_name=_("lab"))
    amount_won = models.BigIntegerField(_("amount (KRW)"))
    received_on = models.DateField(_("received on"))
    bank_reference = models.CharField(_("bank reference"), max_length=100, unique=True)
    memo = models.CharField(_("memo"), max_length=500, blank=True)
    source = models.CharField(_("source"), max_length=16, choices=PaymentSource.choices)
    entry = models.OneToOneField(
        LedgerEntry, on_delete=models.PROTECT, related_name="lab_payment", verbose_name=_("ledger entry")
    )
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("recorded by"),
    )
    created_at = models.DateTimeField(_("recorded at"), default=timezone.now)

    class Meta:
        verbose_name = _("lab payment")
        verbose_name_plural = _("lab payments")
        ordering = ["-received_on", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount_won__gt=0), name="labpayment_amount_positive"),
            models.CheckConstraint(condition=~Q(bank_reference=""), name="labpayment_reference_required"),
        ]

    def __str__(self) -> str:
        return f"{self.bank_reference}: {self.amount_won:,} KRW"


class PaymentAllocation(models.Model):
    """The part of a payment that settles one invoice. A payment's allocations never exceed it, nor an invoice's
    its amount due (checked under a lock of the lab, and by ``ledger_check``)."""

    payment = models.ForeignKey(
        LabPayment, on_delete=models.PROTECT, related_name="allocations", verbose_name=_("payment")
    )
    invoice = models.ForeignKey(
        Invoice, on_delete=models.PROTECT, related_name="allocations", verbose_name=_("invoice")
    )
    amount_won = models.BigIntegerField(_("amount (KRW)"))
    created_at = models.DateTimeField(_("matched at"), default=timezone.now)

    class Meta:
        verbose_name = _("payment allocation")
        verbose_name_plural = _("payment allocations")
        ordering = ["payment_id", "invoice_id"]
        constraints = [
            models.UniqueConstraint(fields=["payment", "invoice"], name="paymentallocation_once"),
            models.CheckConstraint(condition=Q(amount_won__gt=0), name="paymentallocation_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.payment_id} → {self.invoice_id}: {self.amount_won:,} KRW"


class PayoutBasis(models.TextChoices):
    # Holders are paid what their payables hold, whether or not the labs have paid yet.
    ACCRUAL = "accrual", _("Accrual: what labs owe")
    # Holders are paid only the part of their earnings from each lab that lab has paid (pro rata per lab).
    CASH = "cash", _("Cash: what labs have paid")


class PayoutBasisPolicy(models.Model):
    """From ``effective_from`` on, settlements pay holders on this basis (the one in force on a period's last
    day applies). Without any row, accrual."""

    basis = models.CharField(_("payout basis"), max_length=16, choices=PayoutBasis.choices)
    effective_from = models.DateField(_("effective from"), unique=True)
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(_("set at"), default=timezone.now)

    class Meta:
        verbose_name = _("payout basis")
        verbose_name_plural = _("payout basis")
        ordering = ["-effective_from"]
        constraints = [
            models.CheckConstraint(condition=Q(basis__in=PayoutBasis.values), name="payoutbasis_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.get_basis_display()} from {self.effective_from:%Y-%m-%d}"


class TaxStatus(models.TextChoices):
    # Korean practice: an individual's fee is business income, withheld at 3% income tax + 0.3% local tax.
    INDIVIDUAL = "individual", _("Individual (business income)")
    CORPORATION = "corporation", _("Corporation")


class WithholdingRate(models.Model):
    """Tax withheld from payouts to holders of one tax status, from a date (staff-set; the one in force on a
    period's last day applies). Migration 0014 starts them at 3.3% for individuals and 0% for corporations."""

    tax_status = models.CharField(_("tax status"), max_length=16, choices=TaxStatus.choices)
    rate_bp = models.PositiveIntegerField(_("rate (basis points)"), help_text=_("330 = 3.3%"))
    effective_from = models.DateField(_("effective from"))
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(_("set at"), default=timezone.now)

    class Meta:
        verbose_name = _("withholding rate")
        verbose_name_plural = _("withholding rates")
        ordering = ["tax_status", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["tax_status", "effective_from"], name="withholdingrate_once_per_day"),
            models.CheckConstraint(condition=Q(rate_bp__lte=10_000), name="withholdingrate_bounded"),
            models.CheckConstraint(condition=Q(tax_status__in=TaxStatus.values), name="withholdingrate_status"),
        ]

    def __str__(self) -> str:
        return f"{self.get_tax_status_display()}: {self.rate_bp} bp from {self.effective_from:%Y-%m-%d}"


class TaxIdKind(models.TextChoices):
    RRN = "rrn", _("Resident registration number")
    BRN = "brn", _("Business registration number")


class PayoutProfileStatus(models.TextChoices):
    UNVERIFIED = "unverified", _("Awaiting verification")
    VERIFIED = "verified", _("Verified")


class PayoutProfile(models.Model):
    """Where and how a rights holder is paid. The account and tax numbers are stored only as Fernet tokens under
    ``PAYOUT_DATA_KEYS`` (the columns never hold the numbers) plus a masked form to show. A holder is paid only
    while its profile is verified by staff; changing the bank or tax details makes it unverified again.
    """

    holder = models.OneToOneField(
        Party, on_delete=models.PROTECT, related_name="payout_profile", verbose_name=_("holder")
    )
    payee_name = models.CharField(_("payee's legal name"), max_length=200)
    bank_name = models.CharField(_("bank"), max_length=100)
    account_number_encrypted = models.TextField(_("account number (encrypted)"))
    account_number_masked = models.CharField(_("account number"), max_length=40)
    tax_id_kind = models.CharField(_("tax number kind"), max_length=8, choices=TaxIdKind.choices)
    tax_id_encrypted = models.TextField(_("tax number (encrypted)"))
    tax_id_masked = models.CharField(_("tax number"), max_length=20)
    tax_status = models.CharField(_("tax status"), max_length=16, choices=TaxStatus.choices)
    status = models.CharField(
        _("status"), max_length=16, choices=PayoutProfileStatus.choices, default=PayoutProfileStatus.UNVERIFIED
    )
    verified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("verified by"),
    )
    verified_at = models.DateTimeField(_("verified at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    updated_at = models.DateTimeField(_("changed at"), default=timezone.now)

    class Meta:
        verbose_name = _("payout profile")
        verbose_name_plural = _("payout profiles")
        ordering = ["holder_id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=PayoutProfileStatus.values), name="payoutprofile_status"),
            models.CheckConstraint(condition=Q(tax_status__in=TaxStatus.values), name="payoutprofile_tax_status"),
            models.CheckConstraint(
                condition=Q(status=PayoutProfileStatus.UNVERIFIED) | Q(verified_at__isnull=False),
                name="payoutprofile_verified_when",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.payee_name} · {self.bank_name} {self.account_number_masked}"
