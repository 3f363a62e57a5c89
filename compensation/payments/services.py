"""Lab payments: recorded by staff (admin, API, or a bank statement CSV), each a ledger entry against the lab's
receivable, matched to the lab's invoices, once per bank reference."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from compensation.ledger.services import AccountKey, accounts_ensure, ledger_post
from compensation.models import (
    AccountKind,
    EntryKind,
    Invoice,
    LabPayment,
    PaymentAllocation,
    PaymentSource,
)
from core.actors import Actor, require_staff
from core.errors import InvalidInput, RegistryError
from core.money import MICRO
from registry.audit import audit_record
from registry.models import Party, PartyKind

# The invoice numbers settlement writes (``INV-YYYYMM-settlement-lab``): a bank reference naming one pays it first.
INVOICE_NUMBER = re.compile(r"INV-\d{6}-\d{4,}-\d{6,}")
_MAX_AMOUNT_WON = 10**12


class PaymentConflict(RegistryError):
    """The bank reference was recorded before for another lab, amount or day."""

    code = "payment_reference_conflict"
    status = 409
    default_message = _("This bank reference was already recorded with other details.")


def _received_at(day: date) -> datetime:
    # The first instant of the day in the registry's zone: the payment belongs to the period holding that day.
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_default_timezone())


def lab_payment_record(
    *,
    actor: Actor,
    lab: Party,
    amount_won: int,
    received_on: date,
    bank_reference: str,
    memo: str = "",
    source: str = PaymentSource.API,
) -> tuple[LabPayment, bool]:
    """Record what ``lab`` paid (staff only) and match it to its invoices; returns the payment and whether this
    call recorded it. The same bank reference with the same lab, amount and day answers the first payment and
    changes nothing (the database's unique reference decides a race); with other details it is a 409.
    """
    require_staff(actor)
    reference = " ".join((bank_reference or "").split())
    if not reference or len(reference) > 100:
        raise InvalidInput(
            _("A bank reference has 1 to 100 characters."), code="invalid_reference", field="bank_reference"
        )
    if lab.kind != PartyKind.LAB:
        raise InvalidInput(_("Payments are recorded for AI labs."), code="not_a_lab", field="lab")
    if isinstance(amount_won, bool) or not isinstance(amount_won, int) or not 0 < amount_won <= _MAX_AMOUNT_WON:
        raise InvalidInput(_("The amount is a whole number of won above zero."), code="invalid_amount", field="amount")
    if received_on > timezone.localdate():
        raise InvalidInput(_("A payment cannot be received in the future."), code="future_date", field="received_on")
    existing = LabPayment.objects.filter(bank_reference=reference).first()
    if existing is not None:
        return _same_or_conflict(existing, lab, amount_won, received_on), False
    accounts = accounts_ensure(keys=[AccountKey(AccountKind.BANK), AccountKey(AccountKind.LAB_RECEIVABLE, lab.pk)])
    try:
        with transaction.atomic():
            entry, _created = ledger_post(
                idempotency_key=f"payment:{reference}",
                kind=EntryKind.PAYMENT,
                effective_at=_received_at(received_on),
                lines=[
                    (accounts[AccountKey(AccountKind.BANK)], amount_won * MICRO),
                    (accounts[AccountKey(AccountKind.LAB_RECEIVABLE, lab.pk)], -amount_won * MICRO),
                ],
                memo=memo[:500],
                source={"payment_reference": reference, "lab": lab.pk},
            )
            payment = LabPayment.objects.create(
                lab=lab,
                amount_won=amount_won,
                received_on=received_on,
                bank_reference=reference,
                memo=memo[:500],
                source=source,
                entry=entry,
                recorded_by=actor.person,
            )
            audit_record(
                code="compensation.payment.recorded",
                actor=actor,
                target=payment,
                data={"lab": lab.pk, "amount_won": amount_won, "received_on": received_on.isoformat()},
            )
            lab_payments_apply(lab_id=lab.pk)
    except IntegrityError:
        # A concurrent request recorded the same reference first (unique bank_reference): answer with its row.
        winner = LabPayment.objects.filter(bank_reference=reference).first()
        if winner is None:
            raise
        return _same_or_conflict(winner, lab, amount_won, received_on), False
    except RegistryError as exc:
        if exc.code != "idempotency_conflict":
            raise
        raise PaymentConflict(extra={"bank_reference": reference}) from None
    return payment, True


def _same_or_conflict(payment: LabPayment, lab: Party, amount_won: int, received_on: date) -> LabPayment:
    if (payment.lab_id, payment.amount_won, payment.received_on) != (lab.pk, amount_won, received_on):
        raise PaymentConflict(extra={"bank_reference": payment.bank_reference, "payment": payment.pk})
    return payment


def lab_payments_apply(*, lab_id: int) -> int:
    """Match what the lab's payments have not yet paid to its invoices that are still open; returns how many
    allocations it wrote. A payment whose reference names an invoice of the lab pays that one first, then the
    oldest open invoices; what no invoice needs waits as a credit for the next invoice. Serialised per lab by a
    lock on its party row, so two payments never pay the same won of an invoice.
    """
    with transaction.atomic():
        Party.objects.select_for_update().filter(pk=lab_id).first()
        payments = list(
            LabPayment.objects.filter(lab_id=lab_id)
            .annotate(used=Sum("allocations__amount_won"))
            .order_by("received_on", "pk")
        )
        open_payments = [(p, p.amount_won - int(p.used or 0)) for p in payments if p.amount_won > int(p.used or 0)]
        if not open_payments:
            return 0
        invoices = list(
            Invoice.objects.filter(lab_id=lab_id, amount_due_won__gt=0)
            .annotate(paid=Sum("allocations__amount_won"))
            .order_by("settlement__period_start", "pk")
        )
        outstanding = {i.pk: i.amount_due_won - int(i.paid or 0) for i in invoices}
        by_number = {i.number: i.pk for i in invoices}
        rows: list[PaymentAllocation] = []
        for payment, left in open_payments:
            # Numbers of other labs' invoices are ignored: a reference never moves money between labs.
            found = INVOICE_NUMBER.findall(f"{payment.bank_reference} {payment.memo}")
            named = [by_number[n] for n in found if n in by_number]
            order = list(dict.fromkeys([*named, *(i.pk for i in invoices)]))
            for invoice_id in order:
                if left == 0:
                    break
                take = min(left, outstanding[invoice_id])
                if take <= 0:
                    continue
                rows.append(PaymentAllocation(payment=payment, invoice_id=invoice_id, amount_won=take))
                outstanding[invoice_id] -= take
                left -= take
        PaymentAllocation.objects.bulk_create(rows)
    return len(rows)


# --- Bank statement import ---------------------------------------------------------------------

IMPORT_COLUMNS = ["received_on", "amount_krw", "bank_reference", "lab", "memo"]


@dataclass
class ImportResult:
    """What an import did: lines read, payments recorded, lines already recorded, and each refused line."""

    lines: int = 0
    recorded: int = 0
    duplicates: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    payments: list[int] = field(default_factory=list)


def _import_lab(value: str, reference: str, memo: str) -> Party:
    value = value.strip()
    if value:
        known = value.isdigit() and len(value) <= 18  # a database id; longer would overflow the query
        lab = Party.objects.filter(pk=int(value), kind=PartyKind.LAB).first() if known else None
        if lab is None:
            raise InvalidInput(_("No AI lab has this id."), code="unknown_lab", field="lab")
        return lab
    numbers = INVOICE_NUMBER.findall(f"{reference} {memo}")
    invoice = Invoice.objects.filter(number__in=numbers).select_related("lab").first() if numbers else None
    if invoice is None:
        raise InvalidInput(
            _("Name the lab: its id in the lab column, or an invoice number in the reference."),
            code="lab_required",
            field="lab",
        )
    return invoice.lab


def lab_payment_import(*, actor: Actor, data: bytes) -> ImportResult:
    """Record the payments of a bank statement CSV (``IMPORT_COLUMNS``, UTF-8, a header line). Each line is
    recorded in its own transaction, so a refused line costs only itself and everything accepted stays recorded;
    a line whose reference was recorded before counts as a duplicate and changes nothing, so importing the same
    statement again (or an overlapping one) is safe. Refused lines are listed with their line number and reason.
    """
    require_staff(actor)
    if len(data) > settings.LAB_PAYMENT_IMPORT_MAX_BYTES:
        raise InvalidInput(
            _("The file is larger than %(max)s bytes.") % {"max": f"{settings.LAB_PAYMENT_IMPORT_MAX_BYTES:,}"},
            code="file_too_large",
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(_("The file is not UTF-8 text."), code="not_utf8") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [column.strip().lower() for column in next(reader, [])]
    if header[: len(IMPORT_COLUMNS)] != IMPORT_COLUMNS and header[:4] != IMPORT_COLUMNS[:4]:
        raise InvalidInput(
            _("The first line must be the header %(header)s.") % {"header": ",".join(IMPORT_COLUMNS)},
            code="invalid_header",
        )
    rows = list(reader)
    if len(rows) > settings.LAB_PAYMENT_IMPORT_MAX_LINES:
        raise InvalidInput(
            _("The file has more than %(max)s lines.") % {"max": f"{settings.LAB_PAYMENT_IMPORT_MAX_LINES:,}"},
            code="too_many_lines",
        )
    result = ImportResult()
    for number, row in enumerate(rows, start=1):
        if not any(cell.strip() for cell in row):
            continue
        result.lines += 1
        cells = dict(zip(IMPORT_COLUMNS, [cell.strip() for cell in row], strict=False))
        try:
            try:
                received_on = date.fromisoformat(cells.get("received_on", ""))
            except ValueError:
                raise InvalidInput(_("The date is not YYYY-MM-DD."), code="invalid_date", field="received_on") from None
            amount = cells.get("amount_krw", "").replace(",", "")
            if not amount.isdigit():
                raise InvalidInput(
                    _("The amount is a whole number of won above zero."), code="invalid_amount", field="amount_krw"
                )
            reference, memo = cells.get("bank_reference", ""), cells.get("memo", "")
            lab = _import_lab(cells.get("lab", ""), reference, memo)
            payment, created = lab_payment_record(
                actor=actor,
                lab=lab,
                amount_won=int(amount),
                received_on=received_on,
                bank_reference=reference,
                memo=memo,
                source=PaymentSource.IMPORT,
            )
        except RegistryError as exc:
            result.errors.append({"line": number, **exc.as_dict()})
            continue
        result.payments.append(payment.pk)
        if created:
            result.recorded += 1
        else:
            result.duplicates += 1
    audit_record(
        code="compensation.payment.imported",
        actor=actor,
        data={
            "lines": result.lines,
            "recorded": result.recorded,
            "duplicates": result.duplicates,
            "errors": len(result.errors),
        },
    )
    return result
