"""Settlement benchmark: settle a month of about a million ledger lines, and check the ledger after it.

Run from the project root with PostgreSQL (see bench/README.md)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/registry_settle_bench .venv/bin/python bench/settlement.py

The ledger is generated set-based, as ingestion would have posted it, with the triggers off while it loads
(``session_replication_role = replica``; ``ledger_check`` verifies the result afterwards): ``--holders``
rights holders each with a verified work, ``--labs`` labs, ``--manifests`` manifests of ``--chunks``
chunks of ``--chunk-lines`` manifest lines. Each chunk is one accrual entry: the lab's receivable, one
payable credit per matched line (80% of lines, distinct holders within a chunk) and one escrow credit per
unmatched line (20%, an identifier each), and every manifest line carries its outcome and allocation, so
statements trace to them. One manifest in ten is dated in the month before the settled one (opening
balances). The defaults give 1,000 entries and about 1,001,000 ledger lines in the settled month.

It then settles the month with the service a Celery worker runs (``settlement_run``), in this process,
and prints the time of each step, the statements, invoices and payouts, and ``ledger_check``'s time and
verdict (which covers the settlement's reconciliation). ``--reload`` drops and recreates the database.

Every holder has a verified payout profile (payouts need one). ``--cash`` settles on the cash basis, each lab having
paid ``--cash-paid-bp`` of what it owes, so the run also computes what every holder earned from every lab.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from lookup import bench_environment, database_prepare, django_setup  # noqa: E402

MONTH = date(2026, 10, 1)


def _generate(args: argparse.Namespace) -> None:
    from django.db import connection, transaction

    from compensation.models import LedgerLine

    if LedgerLine.objects.exists():
        print(f"ledger already loaded: {LedgerLine.objects.count():,} lines (use --reload to regenerate)")
        return
    started = time.perf_counter()
    lines_per_chunk = args.chunk_lines
    matched = lines_per_chunk * 8 // 10
    if args.holders < matched:
        sys.exit(f"--holders must be at least {matched} (the matched lines of one chunk go to distinct holders)")
    params = {
        "holders": args.holders,
        "labs": args.labs,
        "manifests": args.manifests,
        "chunks": args.chunks,
        "lines": lines_per_chunk,
        "matched": matched,
        "month": MONTH,
    }
    statements = [
        "SET LOCAL session_replication_role = replica",
        """INSERT INTO registry_party (kind, holder_type, name, isni, business_registration_number, created_at)
           SELECT 'holder', 'organisation', 'bench holder ' || g, '', '', now()
             FROM generate_series(1, %(holders)s) g""",
        """INSERT INTO registry_party (kind, holder_type, name, isni, business_registration_number, created_at)
           SELECT 'lab', 'organisation', 'bench lab ' || g, '', '', now()
             FROM generate_series(1, %(labs)s) g""",
        """CREATE TEMP TABLE bench_holder ON COMMIT DROP AS
           SELECT row_number() OVER (ORDER BY id) - 1 AS idx, id AS party_id
             FROM registry_party WHERE kind = 'holder'""",
        """INSERT INTO registry_work
               (kind, title, creators, language, creation_year, status, registered_by_id, created_at)
           SELECT 'text', 'bench work ' || idx, '[]', 'ko', NULL, 'verified', party_id, now() FROM bench_holder""",
        """ALTER TABLE bench_holder ADD COLUMN work_id bigint, ADD COLUMN account_id bigint""",
        """UPDATE bench_holder h SET work_id = w.id FROM registry_work w WHERE w.registered_by_id = h.party_id""",
        """INSERT INTO compensation_account (kind, party_id, escrow_key, created_at)
           SELECT 'holder_payable', party_id, '', now() FROM bench_holder""",
        """UPDATE bench_holder h SET account_id = a.id FROM compensation_account a
            WHERE a.party_id = h.party_id AND a.kind = 'holder_payable'""",
        """INSERT INTO compensation_account (kind, party_id, escrow_key, created_at)
           SELECT 'lab_receivable', id, '', now() FROM registry_party WHERE kind = 'lab'""",
        """CREATE TEMP TABLE bench_lab ON COMMIT DROP AS
           SELECT row_number() OVER (ORDER BY p.id) - 1 AS idx, p.id AS party_id, a.id AS account_id
             FROM registry_party p JOIN compensation_account a ON a.party_id = p.id AND a.kind = 'lab_receivable'
            WHERE p.kind = 'lab'""",
        # One manifest in ten in the month before: the opening balances.
        """INSERT INTO compensation_usagemanifest (lab_id, manifest_id, model, model_version, purpose, period_start,
               period_end, content_hash, format, compressed, file, original_name, status, lines_total, lines_done,
               failure_reason, created_at, started_at, finished_at, summary, progressed_at)
           SELECT l.party_id, 'bench-' || g, 'bench-model-' || (g %% 3), '1', 'train-genai', NULL, NULL,
                  md5(g::text) || md5(g::text), 'csv', false, 'manifests/bench-' || g || '.csv', '', 'processed',
                  %(chunks)s * %(lines)s, %(chunks)s * %(lines)s, '',
                  CASE WHEN g %% 10 = 0 THEN %(month)s::timestamptz - interval '10 days'
                       ELSE %(month)s::timestamptz + (g %% 28) * interval '1 day' + interval '3 hours' END,
                  NULL, NULL, NULL, NULL
             FROM generate_series(1, %(manifests)s) g JOIN bench_lab l ON l.idx = g %% %(labs)s""",
        """CREATE TEMP TABLE bench_chunk ON COMMIT DROP AS
           SELECT row_number() OVER (ORDER BY m.id, c) - 1 AS seq, m.id AS manifest_id, m.lab_id, c AS chunk_no,
                  m.created_at AS effective_at, l.account_id AS receivable_id
             FROM compensation_usagemanifest m JOIN bench_lab l ON l.party_id = m.lab_id,
                  generate_series(0, %(chunks)s - 1) c""",
        """INSERT INTO compensation_ledgerentry (idempotency_key, kind, effective_at, created_at, memo, source)
           SELECT 'usage:' || manifest_id || ':lines:' || (chunk_no * %(lines)s + 1) || '-'
                  || ((chunk_no + 1) * %(lines)s),
                  'accrual', effective_at, effective_at, 'bench',
                  jsonb_build_object('manifest', manifest_id, 'manifest_id', 'bench', 'lines', chunk_no)
             FROM bench_chunk""",
        """ALTER TABLE bench_chunk ADD COLUMN entry_id bigint""",
        """UPDATE bench_chunk c SET entry_id = e.id FROM compensation_ledgerentry e
            WHERE e.idempotency_key = 'usage:' || c.manifest_id || ':lines:' || (c.chunk_no * %(lines)s + 1) || '-'
                  || ((c.chunk_no + 1) * %(lines)s)""",
        # Unmatched lines: an escrow account per identifier.
        """INSERT INTO compensation_account (kind, party_id, escrow_key, created_at)
           SELECT 'escrow_unmatched', NULL, 'isbn:bench-' || c.seq || '-' || i, now()
             FROM bench_chunk c, generate_series(%(matched)s + 1, %(lines)s) i""",
        """CREATE TEMP TABLE bench_line ON COMMIT DROP AS
           SELECT c.manifest_id, c.entry_id, c.chunk_no * %(lines)s + i AS line_no, i <= %(matched)s AS is_matched,
                  h.party_id AS holder_id, h.work_id, h.account_id AS payable_id,
                  'isbn:bench-' || c.seq || '-' || i AS escrow_key,
                  1000 + (hashtext(c.seq || ':' || i) & 1048575)::bigint * 10000 AS amount
             FROM bench_chunk c
             CROSS JOIN generate_series(1, %(lines)s) i
             LEFT JOIN bench_holder h ON i <= %(matched)s AND h.idx = (c.seq * %(matched)s + i) %% %(holders)s""",
        """INSERT INTO compensation_manifestline (manifest_id, line_no, scheme, value, key, units, unit, used_at,
               dedupe, outcome, reason_code, reason, work_id, kind, refusal_id, tariff_id, amount_micro, paid_micro,
               held_micro, violation_micro, released_micro, held_account_id, open_bp, hold_open, allocation,
               entry_id, processed_at, match)
           SELECT b.manifest_id, b.line_no, 'isbn', b.escrow_key, b.escrow_key, 1000, 'token',
                  now() - interval '60 days',
                  NULL, CASE WHEN b.is_matched THEN 'matched' ELSE 'unmatched_held' END, '', '',
                  b.work_id, 'text', NULL, NULL, b.amount,
                  CASE WHEN b.is_matched THEN b.amount ELSE 0 END, CASE WHEN b.is_matched THEN 0 ELSE b.amount END,
                  0, 0, a.id, CASE WHEN b.is_matched THEN 0 ELSE 10000 END, NOT b.is_matched,
                  CASE WHEN b.is_matched
                       THEN jsonb_build_array(jsonb_build_array(b.holder_id, 0, b.amount, b.entry_id))
                       ELSE '[]'::jsonb END,
                  b.entry_id, now(), CASE WHEN b.is_matched THEN 'exact' ELSE '' END
             FROM bench_line b
             LEFT JOIN compensation_account a ON NOT b.is_matched AND a.kind = 'escrow_unmatched'
                  AND a.party_id IS NULL AND a.escrow_key = b.escrow_key""",
        """INSERT INTO compensation_ledgerline (entry_id, account_id, amount_micro)
           SELECT c.entry_id, c.receivable_id, SUM(b.amount)
             FROM bench_chunk c JOIN bench_line b ON b.entry_id = c.entry_id
            GROUP BY c.entry_id, c.receivable_id
           UNION ALL
           SELECT ml.entry_id, COALESCE(b.payable_id, ml.held_account_id), -ml.amount_micro
             FROM compensation_manifestline ml
             JOIN bench_line b ON b.manifest_id = ml.manifest_id AND b.line_no = ml.line_no""",
    ]
    statements += _payout_statements(args, params)
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement, params)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(
        f"generated {LedgerLine.objects.count():,} ledger lines for {args.holders:,} holders, {args.labs} labs and "
        f"{args.manifests * args.chunks * lines_per_chunk:,} manifest lines in {time.perf_counter() - started:.1f} s"
    )


def _payout_statements(args: argparse.Namespace, params: dict[str, object]) -> list[str]:
    """Every holder gets a verified payout profile (payouts need one; half individuals, withheld 3.3%), sharing
    one encrypted account and tax number: the bench measures settlement, not Fernet. With ``--cash``, the payout
    basis is cash from the month on and each lab has paid ``--cash-paid-bp`` of what it owes by the 20th."""
    from compensation.payouts.crypto import secret_encrypt

    params.update(
        account_token=secret_encrypt("110234567890"),
        tax_token=secret_encrypt("1208147521"),
        paid_bp=args.cash_paid_bp,
        paid_on=MONTH.replace(day=20),
    )
    statements = [
        """INSERT INTO compensation_payoutprofile
               (holder_id, payee_name, bank_name, account_number_encrypted, account_number_masked, tax_id_kind,
                tax_id_encrypted, tax_id_masked, tax_status, status, verified_by_id, verified_at, created_at,
                updated_at)
           SELECT party_id, 'bench payee ' || idx, 'bench bank', %(account_token)s, '********7890', 'brn',
                  %(tax_token)s, '120-81-*****', CASE WHEN idx %% 2 = 0 THEN 'individual' ELSE 'corporation' END,
                  'verified', NULL, now(), now(), now()
             FROM bench_holder""",
    ]
    if not args.cash:
        return statements
    return [
        *statements,
        """INSERT INTO compensation_payoutbasispolicy (basis, effective_from, set_by_id, created_at)
           VALUES ('cash', %(month)s, NULL, now())""",
        """INSERT INTO compensation_account (kind, party_id, escrow_key, created_at)
           VALUES ('bank', NULL, '', now())""",
        """CREATE TEMP TABLE bench_payment ON COMMIT DROP AS
           SELECT a.party_id AS lab_id, a.id AS receivable_id,
                  floor(SUM(l.amount_micro) * %(paid_bp)s / 10000 / 1000000)::bigint AS amount_won,
                  NULL::bigint AS entry_id
             FROM compensation_account a JOIN compensation_ledgerline l ON l.account_id = a.id
            WHERE a.kind = 'lab_receivable'
            GROUP BY a.party_id, a.id
           HAVING floor(SUM(l.amount_micro) * %(paid_bp)s / 10000 / 1000000) > 0""",
        """INSERT INTO compensation_ledgerentry (idempotency_key, kind, effective_at, created_at, memo, source)
           SELECT 'payment:bench-' || lab_id, 'payment', %(paid_on)s::date::timestamptz, now(), '',
                  jsonb_build_object('payment_reference', 'bench-' || lab_id, 'lab', lab_id)
             FROM bench_payment""",
        """UPDATE bench_payment p SET entry_id = e.id FROM compensation_ledgerentry e
            WHERE e.idempotency_key = 'payment:bench-' || p.lab_id""",
        """INSERT INTO compensation_ledgerline (entry_id, account_id, amount_micro)
           SELECT p.entry_id, (SELECT id FROM compensation_account WHERE kind = 'bank'), p.amount_won * 1000000
             FROM bench_payment p
           UNION ALL
           SELECT p.entry_id, p.receivable_id, -p.amount_won * 1000000 FROM bench_payment p""",
        """INSERT INTO compensation_labpayment
               (lab_id, amount_won, received_on, bank_reference, memo, source, entry_id, recorded_by_id, created_at)
           SELECT lab_id, amount_won, %(paid_on)s, 'bench-' || lab_id, '', 'import', entry_id, NULL, now()
             FROM bench_payment""",
    ]


def _settle() -> None:
    from django.core.management import call_command
    from django.db.models import Sum

    from compensation.models import Invoice, LedgerLine, Settlement, Statement
    from compensation.settlement.services import period_bounds, settlement_create, settlement_run
    from core.actors import Actor

    start, end = period_bounds(first_day=MONTH, last_day=date(2026, 10, 31))
    in_period = LedgerLine.objects.filter(entry__effective_at__gte=start, entry__effective_at__lt=end).count()
    print(f"ledger lines in the period {start:%Y-%m-%d} to {end:%Y-%m-%d} (exclusive): {in_period:,}")
    existing = Settlement.objects.filter(period_start=start).first()
    if existing is not None:
        sys.exit(f"the period is already settled (settlement {existing.pk}): use --reload to measure again")
    began = time.perf_counter()
    settlement, _created = settlement_create(actor=Actor.system(), first_day=MONTH, last_day=date(2026, 10, 31))
    settlement_run(settlement_id=settlement.pk)
    elapsed = time.perf_counter() - began
    settlement.refresh_from_db()
    totals = settlement.totals
    print(f"settlement {settlement.pk}: {settlement.status} in {elapsed:.1f} s (goal: under 60 s)")
    print(
        f"  statements {Statement.objects.filter(settlement=settlement).count():,}"
        f" ({totals['paid_holders']:,} paid, the rest carried forward), invoices "
        f"{Invoice.objects.filter(settlement=settlement).count():,}, progress {settlement.progress}"
    )
    print(
        f"  due {totals['due'] / 1e6:,.6f} KRW = payouts {totals['payout'] / 1e6:,.0f} + withheld "
        f"{totals['withheld'] / 1e6:,.0f} + carried forward "
        f"{totals['carried_forward'] / 1e6:,.6f}; invoiced {totals['invoiced'] / 1e6:,.6f} KRW"
    )
    receivable = (
        LedgerLine.objects.filter(
            account__kind="lab_receivable", entry__effective_at__gte=start, entry__effective_at__lt=end
        )
        .exclude(entry__kind="payment")
        .aggregate(t=Sum("amount_micro"))["t"]
    )
    print(
        f"  receivables billed {receivable / 1e6:,.6f} KRW in the period (payments apart); invoices total the same: "
        f"{receivable == totals['invoiced']}"
    )
    basis = Statement.objects.filter(settlement=settlement).values_list("basis", flat=True).first()
    print(f"  payout basis: {basis}")
    print("RESULT", "PASS" if elapsed < 60 and settlement.status == "settled" else "FAIL", f"{elapsed:.1f} s")
    began = time.perf_counter()
    call_command("ledger_check", verbosity=0)
    print(f"ledger_check: OK in {time.perf_counter() - began:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--holders", type=int, default=20_000)
    parser.add_argument("--labs", type=int, default=20)
    parser.add_argument("--manifests", type=int, default=112)
    parser.add_argument("--chunks", type=int, default=10)
    parser.add_argument("--chunk-lines", type=int, default=1_000)
    parser.add_argument("--cash", action="store_true", help="pay holders on the cash basis (labs pay part)")
    parser.add_argument("--cash-paid-bp", type=int, default=7_000, help="what each lab has paid, basis points")
    parser.add_argument("--reload", action="store_true", help="drop and recreate the database first")
    parser.add_argument("--redis-url", default=None)
    args = parser.parse_args()
    bench_environment(args)
    os.environ.setdefault("SETTLEMENT_PAYOUT_THRESHOLD_KRW", "10000")
    database_prepare(os.environ["DATABASE_URL"], reload=args.reload)
    django_setup()
    _generate(args)
    _settle()


if __name__ == "__main__":
    main()
