"""Reads of lab payments: what each invoice has been paid, what is outstanding and overdue, and overdue by age."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.db.models import QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from compensation.models import Invoice, LabPayment, SettlementStatus
from core.actors import Actor, require_staff
from core.errors import NotFound

# Overdue report bands, in days past the due date: (label, first day, last day or None).
OVERDUE_BANDS: list[tuple[str, int, int | None]] = [
    ("1-30", 1, 30),
    ("31-60", 31, 60),
    ("61-90", 61, 90),
    ("91+", 91, None),
]


def invoices_with_payments(invoices: QuerySet[Invoice]) -> QuerySet[Invoice]:
    """``invoices`` annotated with ``paid_won``: the sum of the payment allocations to each."""
    return invoices.annotate(paid_won=Coalesce(Sum("allocations__amount_won"), 0))


def invoice_due_on(invoice: Invoice) -> date:
    """When the invoice is due: as written, or (invoices written before due dates) the period's last day plus
    ``INVOICE_PAYMENT_DAYS``."""
    if invoice.due_on is not None:
        return invoice.due_on
    return invoice.settlement.last_day + timedelta(days=settings.INVOICE_PAYMENT_DAYS)


def invoice_amounts(invoice: Invoice, *, today: date | None = None) -> dict[str, Any]:
    """Paid, outstanding and overdue won of an invoice (annotated by ``invoices_with_payments`` or not)."""
    paid = getattr(invoice, "paid_won", None)
    if paid is None:
        paid = invoice.allocations.aggregate(total=Sum("amount_won"))["total"] or 0
    due_on = invoice_due_on(invoice)
    outstanding = max(invoice.amount_due_won, 0) - int(paid)
    today = today or timezone.localdate()
    return {
        "paid_won": int(paid),
        "outstanding_won": outstanding,
        "overdue_won": outstanding if today > due_on else 0,
        "due_on": due_on,
        "days_overdue": max((today - due_on).days, 0) if outstanding else 0,
    }


def lab_payment_list(*, actor: Actor, lab_id: int | None = None) -> QuerySet[LabPayment]:
    """Staff read every payment; a lab its own."""
    payments = LabPayment.objects.select_related("lab").annotate(
        allocated_won=Coalesce(Sum("allocations__amount_won"), 0)
    )
    if not actor.is_staff:
        if actor.party is None:
            return payments.none()
        payments = payments.filter(lab=actor.party)
    if lab_id is not None:
        payments = payments.filter(lab_id=lab_id)
    return payments.order_by("-received_on", "-pk")


def lab_payment_get(*, actor: Actor, payment_pk: int) -> LabPayment:
    payment = lab_payment_list(actor=actor).filter(pk=payment_pk).first()
    if payment is None:
        raise NotFound(_("No such payment."))
    return payment


def overdue_invoices(*, actor: Actor, today: date | None = None) -> list[dict[str, Any]]:
    """Every invoice of a settled period with money overdue, oldest due date first, with its age band."""
    require_staff(actor)
    today = today or timezone.localdate()
    rows = []
    invoices = invoices_with_payments(
        Invoice.objects.filter(settlement__status=SettlementStatus.SETTLED, amount_due_won__gt=0).select_related(
            "settlement", "lab"
        )
    )
    for invoice in invoices:
        amounts = invoice_amounts(invoice, today=today)
        if amounts["overdue_won"] <= 0:
            continue
        days = amounts["days_overdue"]
        band = next(label for label, first, last in OVERDUE_BANDS if days >= first and (last is None or days <= last))
        rows.append({"invoice": invoice, "band": band, **amounts})
    rows.sort(key=lambda row: (row["due_on"], row["invoice"].pk))
    return rows


def overdue_by_band(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The overdue rows summed per age band (every band listed, empty ones with zero)."""
    counts = {label: [0, 0] for label, _first, _last in OVERDUE_BANDS}
    for row in rows:
        counts[row["band"]][0] += 1
        counts[row["band"]][1] += int(row["overdue_won"])
    return [{"band": label, "invoices": n, "overdue_won": amount} for label, (n, amount) in counts.items()]
