from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from compensation.models import (
    RECORDING_KINDS,
    ConsolidatedStatement,
    Invoice,
    InvoiceLine,
    LabPayment,
    ManifestLine,
    ManifestStatus,
    MarketShareDistribution,
    PayoutProfile,
    RecordingSplit,
    Settlement,
    Statement,
    StatementLine,
    StatementRecipient,
    Tariff,
    TaxIdKind,
    TaxStatus,
    UsageManifest,
    UsageUnit,
)
from compensation.payments.selectors import invoice_amounts
from compensation.usage.selectors import manifest_summary
from core.api.fields import ID_MAX, RegistryDateField, RegistryDateTimeField, failure_reason_field
from optout.models import Purpose
from registry.models import WorkKind


class TariffListFilter(serializers.Serializer[dict[str, Any]]):
    kind = serializers.ChoiceField(choices=WorkKind.choices, required=False)
    unit = serializers.ChoiceField(choices=UsageUnit.choices, required=False)


class TariffInput(serializers.Serializer[dict[str, Any]]):
    kind = serializers.ChoiceField(choices=WorkKind.choices)
    unit = serializers.ChoiceField(choices=UsageUnit.choices)
    rate_krw = serializers.DecimalField(
        max_digits=24,
        decimal_places=12,
        min_value=Decimal(0),
        help_text=_('KRW per one unit, exact; send it as a string, e.g. "0.0005".'),
    )
    effective_from = RegistryDateTimeField(required=False, allow_null=True, default=None)


class TariffOutput(serializers.ModelSerializer[Tariff]):
    rate_krw = serializers.DecimalField(max_digits=24, decimal_places=12, normalize_output=True)

    class Meta:
        model = Tariff
        fields = ["id", "kind", "unit", "rate_krw", "effective_from", "created_at"]


class RecordingSplitInput(serializers.Serializer[dict[str, Any]]):
    kind = serializers.ChoiceField(choices=list(RECORDING_KINDS), default=WorkKind.AUDIO)
    musical_work_bp = serializers.IntegerField(
        min_value=0,
        max_value=10_000,
        help_text=_("Of each use of a recording, the part that goes to its musical work, in basis points."),
    )
    effective_from = RegistryDateTimeField(required=False, allow_null=True, default=None)


class RecordingSplitOutput(serializers.ModelSerializer[RecordingSplit]):
    class Meta:
        model = RecordingSplit
        fields = ["id", "kind", "musical_work_bp", "effective_from", "created_at"]


class BalanceFilter(serializers.Serializer[dict[str, Any]]):
    party = serializers.IntegerField(required=False, help_text=_("Staff only: another party's balance."))
    period_start = RegistryDateTimeField(required=False, allow_null=True, default=None)
    period_end = RegistryDateTimeField(required=False, allow_null=True, default=None)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start: datetime | None = attrs.get("period_start")
        end: datetime | None = attrs.get("period_end")
        if start is not None and end is not None and end <= start:
            raise serializers.ValidationError({"period_end": _("The period ends after it starts.")})
        return attrs


class BalanceMonthOutput(serializers.Serializer[dict[str, Any]]):
    month = serializers.CharField(help_text=_("YYYY-MM, in Korean time."))
    by_kind = serializers.DictField(child=serializers.IntegerField())


class BalanceOutput(serializers.Serializer[dict[str, Any]]):
    party = serializers.IntegerField()
    party_name = serializers.CharField()
    period_start = serializers.DateTimeField(allow_null=True)
    period_end = serializers.DateTimeField(allow_null=True)
    unit = serializers.CharField(
        help_text=_("Amounts are integers in micro-won (1 won = 1,000,000); debits positive, credits negative.")
    )
    by_kind = serializers.DictField(child=serializers.IntegerField())
    by_month = BalanceMonthOutput(many=True)


class ManifestLineInput(serializers.Serializer[dict[str, Any]]):
    """Documents a line of a JSON manifest; lines are validated one by one by the worker, so that one bad
    line gets the outcome ``invalid`` instead of failing the manifest."""

    scheme = serializers.CharField()
    value = serializers.CharField()
    units = serializers.DecimalField(max_digits=30, decimal_places=6)
    unit = serializers.ChoiceField(choices=UsageUnit.choices)
    used_at = RegistryDateTimeField()
    kind = serializers.ChoiceField(
        choices=WorkKind.choices,
        required=False,
        help_text=_(
            "The work kind used (optional). It prices a line whose identifier no work has; without it a URL is "
            "priced as text and other schemes by the kind they name."
        ),
    )


class ManifestInput(serializers.Serializer[dict[str, Any]]):
    manifest_id = serializers.CharField(max_length=200, help_text=_("Unique per lab, forever."))
    model = serializers.CharField(max_length=200)
    model_version = serializers.CharField(max_length=200, required=False)
    purpose = serializers.ChoiceField(choices=Purpose.choices, required=False, default=Purpose.TRAIN_GENAI)
    period_start = RegistryDateTimeField(required=False)
    period_end = RegistryDateTimeField(required=False)
    lines = ManifestLineInput(many=True)


class ManifestUploadInput(serializers.Serializer[dict[str, Any]]):
    file = serializers.FileField(
        help_text=_("CSV (header scheme,value,units,unit,used_at, optionally kind) or JSON Lines; gzip allowed.")
    )
    manifest_id = serializers.CharField(max_length=200)
    model = serializers.CharField(max_length=200)
    model_version = serializers.CharField(max_length=200, required=False)
    purpose = serializers.ChoiceField(choices=Purpose.choices, required=False)
    period_start = RegistryDateTimeField(required=False)
    period_end = RegistryDateTimeField(required=False)
    format = serializers.ChoiceField(choices=["csv", "jsonl"], required=False)


class ManifestOutput(serializers.ModelSerializer[UsageManifest]):
    lab = serializers.IntegerField(source="lab_id")
    progress = serializers.SerializerMethodField()
    failure_reason = failure_reason_field()
    url = serializers.SerializerMethodField()
    outcomes_url = serializers.SerializerMethodField()
    summary = serializers.SerializerMethodField()

    class Meta:
        model = UsageManifest
        fields = [
            "id",
            "lab",
            "manifest_id",
            "model",
            "model_version",
            "purpose",
            "period_start",
            "period_end",
            "format",
            "compressed",
            "content_hash",
            "status",
            "lines_total",
            "lines_done",
            "progress",
            "failure_code",
            "failure_reason",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
            "url",
            "outcomes_url",
            "summary",
        ]

    def get_progress(self, manifest: UsageManifest) -> float:
        if not manifest.lines_total:
            return 1.0 if manifest.status == ManifestStatus.PROCESSED else 0.0
        return round(min(manifest.lines_done / manifest.lines_total, 1.0), 4)

    def get_url(self, manifest: UsageManifest) -> str:
        return f"/api/v1/usage-manifests/{manifest.pk}"

    def get_outcomes_url(self, manifest: UsageManifest) -> str:
        return f"/api/v1/usage-manifests/{manifest.pk}/outcomes"

    def get_summary(self, manifest: UsageManifest) -> dict[str, Any] | None:
        # Per outcome: lines and amounts, once processed; only where the caller asked for one manifest.
        if not self.context.get("with_summary"):
            return None
        return manifest_summary(manifest=manifest)


class ViolationOutput(serializers.ModelSerializer[ManifestLine]):
    manifest = serializers.IntegerField(source="manifest_id")
    manifest_ref = serializers.CharField(source="manifest.manifest_id")
    lab = serializers.IntegerField(source="manifest.lab_id")
    lab_name = serializers.CharField(source="manifest.lab.name")
    model = serializers.CharField(source="manifest.model")
    line = serializers.IntegerField(source="line_no")
    work = serializers.IntegerField(source="work_id", allow_null=True)
    refusal = serializers.IntegerField(source="refusal_id", allow_null=True)
    units = serializers.DecimalField(max_digits=30, decimal_places=6, normalize_output=True, allow_null=True)

    class Meta:
        model = ManifestLine
        fields = [
            "manifest",
            "manifest_ref",
            "lab",
            "lab_name",
            "model",
            "line",
            "key",
            "work",
            "refusal",
            "used_at",
            "units",
            "unit",
            "amount_micro",
        ]


# --- Settlements ---------------------------------------------------------------------------------


class SettlementInput(serializers.Serializer[dict[str, Any]]):
    period_start = RegistryDateField(help_text=_("The first day of the period (registry time zone)."))
    period_end = RegistryDateField(help_text=_("The last day of the period, inclusive."))


class SettlementOutput(serializers.ModelSerializer[Settlement]):
    first_day = serializers.DateField(read_only=True)
    last_day = serializers.DateField(read_only=True)
    failure_reason = failure_reason_field()

    class Meta:
        model = Settlement
        fields = [
            "id",
            "first_day",
            "last_day",
            "period_start",
            "period_end",
            "status",
            "step",
            "progress",
            "payout_threshold_micro",
            "withholding_bp",
            "totals",
            "failure_code",
            "failure_reason",
            "attempts",
            "created_at",
            "started_at",
            "settled_at",
        ]


_STATEMENT_AMOUNTS = [
    "opening_micro",
    "accrued_micro",
    "released_micro",
    "distributed_micro",
    "adjustments_micro",
    "due_micro",
    "payout_micro",
    "withheld_micro",
    "rounding_micro",
    "carried_forward_micro",
    "closing_micro",
]


class StatementRecipientOutput(serializers.ModelSerializer[StatementRecipient]):
    party = serializers.IntegerField(source="party_id")
    party_name = serializers.CharField(source="party.name")
    mandate = serializers.IntegerField(source="mandate_id", allow_null=True)

    class Meta:
        model = StatementRecipient
        fields = ["party", "party_name", "role", "mandate"]


class StatementOutput(serializers.ModelSerializer[Statement]):
    settlement = serializers.IntegerField(source="settlement_id")
    first_day = serializers.DateField(source="settlement.first_day")
    last_day = serializers.DateField(source="settlement.last_day")
    holder = serializers.IntegerField(source="holder_id")
    holder_name = serializers.CharField(source="holder.name")
    payout_entry = serializers.IntegerField(source="payout_entry_id", allow_null=True)
    paid_to = serializers.IntegerField(source="paid_to.pk", help_text=_("The holder, or its agent under a mandate."))
    paid_to_name = serializers.CharField(source="paid_to.name")
    payout_mandate = serializers.IntegerField(source="payout_mandate_id", allow_null=True)
    sent_to = StatementRecipientOutput(
        source="recipients", many=True, help_text=_("Who the statement was sent to, as the mandates said.")
    )

    class Meta:
        model = Statement
        fields = [
            "id",
            "settlement",
            "first_day",
            "last_day",
            "holder",
            "holder_name",
            *_STATEMENT_AMOUNTS,
            "payout_entry",
            "basis",
            "tax_status",
            "withholding_bp",
            "carry_reason",
            "paid_to",
            "paid_to_name",
            "payout_mandate",
            "sent_to",
        ]


class ConsolidatedStatementOutput(serializers.ModelSerializer[ConsolidatedStatement]):
    settlement = serializers.IntegerField(source="settlement_id")
    first_day = serializers.DateField(source="settlement.first_day")
    last_day = serializers.DateField(source="settlement.last_day")
    agent = serializers.IntegerField(source="agent_id")
    agent_name = serializers.CharField(source="agent.name")

    class Meta:
        model = ConsolidatedStatement
        fields = [
            "id",
            "settlement",
            "first_day",
            "last_day",
            "agent",
            "agent_name",
            "members",
            "opening_micro",
            "earned_micro",
            "due_micro",
            "withheld_micro",
            "payout_micro",
            "paid_to_agent_micro",
            "carried_forward_micro",
        ]


class ConsolidatedMemberOutput(serializers.ModelSerializer[Statement]):
    """One member's section of a consolidated statement: its statement's figures; its lines are the statement's."""

    statement = serializers.IntegerField(source="pk")
    holder = serializers.IntegerField(source="holder_id")
    holder_name = serializers.CharField(source="holder.name")
    subtotal_micro = serializers.SerializerMethodField(help_text=_("The total of the member's lines in the period."))
    net_micro = serializers.IntegerField(source="payout_micro", help_text=_("What was paid out, after withholding."))
    paid_to = serializers.IntegerField(source="paid_to.pk")
    paid_to_name = serializers.CharField(source="paid_to.name")
    lines = serializers.SerializerMethodField()

    class Meta:
        model = Statement
        fields = [
            "statement",
            "holder",
            "holder_name",
            "subtotal_micro",
            "opening_micro",
            "due_micro",
            "withheld_micro",
            "net_micro",
            "carried_forward_micro",
            "carry_reason",
            "paid_to",
            "paid_to_name",
            "lines",
        ]

    def get_subtotal_micro(self, obj: Statement) -> int:
        return obj.due_micro - obj.opening_micro

    def get_lines(self, obj: Statement) -> str:
        return f"/api/v1/statements/{obj.pk}/lines"


class StatementLineOutput(serializers.ModelSerializer[StatementLine]):
    work = serializers.IntegerField(source="work_id", allow_null=True)
    work_title = serializers.CharField(source="work.title", default=None, allow_null=True)
    side = serializers.CharField(
        help_text=_(
            'For a recording\'s use split with its musical work: "recording" or "musical_work", the side this line '
            'was earned on; "" for a whole use.'
        )
    )
    other_work = serializers.IntegerField(
        source="other_work_id",
        allow_null=True,
        help_text=_("The other side's work: the recording's musical work, or the recording it was used through."),
    )
    other_work_title = serializers.CharField(source="other_work.title", default=None, allow_null=True)
    lab = serializers.IntegerField(source="lab_id", allow_null=True)
    lab_name = serializers.CharField(source="lab.name", default=None, allow_null=True)
    manifest = serializers.IntegerField(source="manifest_id", allow_null=True)
    manifest_ref = serializers.CharField(source="manifest.manifest_id", default=None, allow_null=True)
    entry = serializers.IntegerField(source="entry_id", allow_null=True)

    class Meta:
        model = StatementLine
        fields = [
            "kind",
            "work",
            "work_title",
            "side",
            "other_work",
            "other_work_title",
            "lab",
            "lab_name",
            "manifest",
            "manifest_ref",
            "entry",
            "lines",
            "amount_micro",
        ]


class InvoiceOutput(serializers.ModelSerializer[Invoice]):
    settlement = serializers.IntegerField(source="settlement_id")
    paid_won = serializers.IntegerField(read_only=True, default=0)
    outstanding_won = serializers.IntegerField(read_only=True, default=0)
    overdue_won = serializers.IntegerField(read_only=True, default=0)
    first_day = serializers.DateField(source="settlement.first_day")
    last_day = serializers.DateField(source="settlement.last_day")
    lab = serializers.IntegerField(source="lab_id")
    lab_name = serializers.CharField(source="lab.name")

    class Meta:
        model = Invoice
        fields = [
            "id",
            "number",
            "settlement",
            "first_day",
            "last_day",
            "lab",
            "lab_name",
            "opening_micro",
            "compensation_micro",
            "violations_micro",
            "adjustments_micro",
            "total_micro",
            "closing_micro",
            "amount_due_won",
            "payments_micro",
            "due_on",
            "paid_won",
            "outstanding_won",
            "overdue_won",
        ]

    def to_representation(self, instance: Invoice) -> dict[str, Any]:
        data = super().to_representation(instance)
        # Paid, outstanding and overdue as of today: from the payment allocations (invoice_amounts).
        amounts = invoice_amounts(instance)
        data["due_on"] = amounts["due_on"].isoformat()
        data.update({key: amounts[key] for key in ("paid_won", "outstanding_won", "overdue_won")})
        return data


class InvoiceLineOutput(serializers.ModelSerializer[InvoiceLine]):
    manifest = serializers.IntegerField(source="manifest_id", allow_null=True)
    manifest_ref = serializers.CharField(source="manifest.manifest_id", default=None, allow_null=True)
    work = serializers.IntegerField(source="work_id", allow_null=True)
    work_title = serializers.CharField(source="work.title", default=None, allow_null=True)
    refusal = serializers.IntegerField(source="refusal_id", allow_null=True)
    entry = serializers.IntegerField(source="entry_id", allow_null=True)

    class Meta:
        model = InvoiceLine
        fields = [
            "section",
            "manifest",
            "manifest_ref",
            "model",
            "model_version",
            "outcome",
            "work",
            "work_title",
            "refusal",
            "entry",
            "lines",
            "amount_micro",
        ]


class DistributionInput(serializers.Serializer[dict[str, Any]]):
    hold_month = RegistryDateField(
        input_formats=["%Y-%m", "iso-8601"], help_text=_("The month whose holds to distribute: YYYY-MM.")
    )


@extend_schema_field({"type": "string", "pattern": r"^\d{4}-\d{2}$", "example": "2026-01"})
class MonthField(serializers.DateField):
    """A month, written YYYY-MM (a date field whose format names the month only)."""


class DistributionOutput(serializers.ModelSerializer[MarketShareDistribution]):
    hold_month = MonthField(format="%Y-%m")
    failure_reason = failure_reason_field()

    class Meta:
        model = MarketShareDistribution
        fields = [
            "id",
            "hold_month",
            "status",
            "reserve_bp",
            "lines",
            "distributed_micro",
            "reserved_micro",
            "undistributable_micro",
            "failure_code",
            "failure_reason",
            "attempts",
            "created_at",
            "finished_at",
        ]


class OutcomeOwnerOutput(serializers.Serializer[dict[str, Any]]):
    holder = serializers.IntegerField()
    claim = serializers.IntegerField(allow_null=True)
    amount_micro = serializers.IntegerField()
    entry_id = serializers.IntegerField(allow_null=True)


class OutcomeRowOutput(serializers.Serializer[dict[str, Any]]):
    """One row of a manifest's acknowledgement file (``selectors.outcome_row``), as its JSON pages carry it."""

    line = serializers.IntegerField()
    scheme = serializers.CharField(allow_blank=True)
    value = serializers.CharField(allow_blank=True)
    key = serializers.CharField(allow_blank=True)
    units = serializers.CharField(allow_null=True, help_text=_("A decimal number, as a string."))
    unit = serializers.CharField(allow_blank=True)
    used_at = serializers.DateTimeField(allow_null=True)
    outcome = serializers.CharField()
    side = serializers.CharField(
        allow_blank=True,
        help_text=_(
            'A use of a recording split with its musical work is two rows of one line: "recording" and '
            '"musical_work", each with its own work, part of the amount and destination; "" for a whole use.'
        ),
    )
    other_work_id = serializers.IntegerField(allow_null=True, help_text=_("The other side's work of a split line."))
    reason_code = serializers.CharField(allow_blank=True)
    reason = serializers.CharField(allow_blank=True)
    work_id = serializers.IntegerField(allow_null=True)
    kind = serializers.CharField(allow_blank=True)
    refusal_id = serializers.IntegerField(allow_null=True)
    tariff_id = serializers.IntegerField(allow_null=True)
    amount_micro = serializers.IntegerField(allow_null=True)
    to_owners_micro = serializers.IntegerField()
    held_micro = serializers.IntegerField()
    released_micro = serializers.IntegerField()
    held_for = serializers.CharField(allow_null=True)
    violation_micro = serializers.IntegerField()
    owners = OutcomeOwnerOutput(many=True)
    entry_id = serializers.IntegerField(allow_null=True)


# --- Lab payments and payout profiles ------------------------------------------------------------


class LabPaymentInput(serializers.Serializer[dict[str, Any]]):
    lab = serializers.IntegerField(min_value=1, max_value=ID_MAX)
    amount_won = serializers.IntegerField(min_value=1, max_value=10**12)
    received_on = RegistryDateField()
    bank_reference = serializers.CharField(max_length=100)
    memo = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class LabPaymentOutput(serializers.ModelSerializer[LabPayment]):
    lab = serializers.IntegerField(source="lab_id")
    lab_name = serializers.CharField(source="lab.name")
    entry = serializers.IntegerField(source="entry_id")
    allocated_won = serializers.IntegerField(read_only=True, default=0)
    invoices = serializers.SerializerMethodField()

    class Meta:
        model = LabPayment
        fields = [
            "id",
            "lab",
            "lab_name",
            "amount_won",
            "received_on",
            "bank_reference",
            "memo",
            "source",
            "entry",
            "allocated_won",
            "invoices",
            "created_at",
        ]

    def get_invoices(self, payment: LabPayment) -> list[dict[str, Any]]:
        return [
            {"invoice": invoice, "number": number, "amount_won": amount}
            for invoice, number, amount in payment.allocations.order_by("invoice_id").values_list(
                "invoice_id", "invoice__number", "amount_won"
            )
        ]


class PaymentImportInput(serializers.Serializer[dict[str, Any]]):
    file = serializers.FileField()


class PaymentImportOutput(serializers.Serializer[dict[str, Any]]):
    lines = serializers.IntegerField()
    recorded = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    payments = serializers.ListField(child=serializers.IntegerField())
    errors = serializers.ListField(child=serializers.DictField())  # type: ignore[assignment]


class OverdueInvoiceOutput(serializers.Serializer[dict[str, Any]]):
    invoice = serializers.IntegerField(source="invoice.pk")
    number = serializers.CharField(source="invoice.number")
    lab = serializers.IntegerField(source="invoice.lab_id")
    lab_name = serializers.CharField(source="invoice.lab.name")
    amount_due_won = serializers.IntegerField(source="invoice.amount_due_won")
    paid_won = serializers.IntegerField()
    overdue_won = serializers.IntegerField()
    due_on = serializers.DateField()
    days_overdue = serializers.IntegerField()
    band = serializers.CharField()


class OverdueBandOutput(serializers.Serializer[dict[str, Any]]):
    band = serializers.CharField(help_text="Days past the due date: 1-30, 31-60, 61-90 or 91+")
    invoices = serializers.IntegerField()
    overdue_won = serializers.IntegerField()


class OverdueReportOutput(serializers.Serializer[dict[str, Any]]):
    bands = OverdueBandOutput(many=True)
    invoices = OverdueInvoiceOutput(many=True)


class PayoutProfileInput(serializers.Serializer[dict[str, Any]]):
    payee_name = serializers.CharField(max_length=200)
    bank_name = serializers.CharField(max_length=100)
    account_number = serializers.CharField(max_length=40)
    tax_id_kind = serializers.ChoiceField(choices=TaxIdKind.choices)
    tax_id = serializers.CharField(max_length=20)
    tax_status = serializers.ChoiceField(choices=TaxStatus.choices)


class PayoutProfileOutput(serializers.ModelSerializer[PayoutProfile]):
    """Only the masked numbers ever leave: the account's last four digits, the tax number's first part."""

    holder = serializers.IntegerField(source="holder_id")

    class Meta:
        model = PayoutProfile
        fields = [
            "holder",
            "payee_name",
            "bank_name",
            "account_number_masked",
            "tax_id_kind",
            "tax_id_masked",
            "tax_status",
            "status",
            "verified_at",
            "updated_at",
        ]
