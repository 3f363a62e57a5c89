"""The invariants ``manage.py ledger_check`` verifies over the whole ledger, each one set-based query.

Each check yields the ids of what breaks it: entries, accounts, escrow releases or manifest lines. A check
is a single statement, so it reads one snapshot: a release or a chunk committing meanwhile changes its
ledger lines and its manifest lines together, and the check sees both or neither. The SQL runs on
PostgreSQL and on SQLite (3.38 or later, for ``->>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import connection
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from compensation.models import (
    ESCROW_ACCOUNT_KINDS,
    AccountKind,
    EntryKind,
    InvoiceSection,
    SettlementStatus,
    StatementRole,
)
from core.money import MICRO
from core.sql import json_array_elements, sql_literal, sql_literals

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

ENTRIES = "entries"
ACCOUNTS = "accounts"
RELEASES = "releases"
MANIFEST_LINES = "manifest_lines"
SETTLEMENTS = "settlements"
STATEMENTS = "statements"
INVOICES = "invoices"
CONSOLIDATED = "consolidated_statements"

# Kinds and statuses as SQL literals, from the TextChoices (``core.sql``).
_ESCROW_KINDS = sql_literals(ESCROW_ACCOUNT_KINDS)
_ACCRUAL = sql_literal(EntryKind.ACCRUAL)
_RELEASE = sql_literal(EntryKind.RELEASE)
_REVERSAL = sql_literal(EntryKind.REVERSAL)
_RECEIVABLE = sql_literal(AccountKind.LAB_RECEIVABLE)
_PAYABLE = sql_literal(AccountKind.HOLDER_PAYABLE)
_PAYOUTS_ACCOUNT = sql_literal(AccountKind.PAYOUTS)
_WITHHOLDING_ACCOUNT = sql_literal(AccountKind.WITHHOLDING)
# The manifest an entry was posted for, as text on both databases (SQLite's ->> answers a number).
_MANIFEST_OF = "CAST(e.source ->> 'manifest' AS TEXT)"
_SETTLEMENT_OF = "CAST(e.source ->> 'settlement' AS TEXT)"
_DISTRIBUTION = sql_literal(EntryKind.DISTRIBUTION)
_PAYOUT = sql_literal(EntryKind.PAYOUT)
_SETTLED = sql_literal(SettlementStatus.SETTLED)
_AGENT = sql_literal(StatementRole.AGENT)
_CLOSED = f"({sql_literals([SettlementStatus.RUNNING, SettlementStatus.SETTLED])})"
_USAGE_SECTION = sql_literal(InvoiceSection.USAGE)
_PAYMENT = sql_literal(EntryKind.PAYMENT)
_BANK = sql_literal(AccountKind.BANK)
_TRANSFER = sql_literal(EntryKind.TRANSFER)
_PUBLIC_INTEREST = sql_literal(AccountKind.PUBLIC_INTEREST)
# The escrow the public list of unclaimed money shows (compensation/unclaimed/selectors.py).
_LISTED_KINDS = sql_literals([AccountKind.ESCROW_UNCLAIMED, AccountKind.ESCROW_UNMATCHED])


@dataclass(frozen=True)
class Check:
    name: str
    description: StrOrPromise
    subject: str  # what the ids name: ENTRIES, ACCOUNTS, RELEASES or MANIFEST_LINES
    sql: str


def _checks() -> list[Check]:
    # The one function of JSON arrays that differs by database: each element of a line's allocation.
    elements = json_array_elements(connection)
    return [
        Check(
            "balanced",
            _("every entry has at least two lines summing to zero"),
            ENTRIES,
            """
            SELECT e.id AS id
              FROM compensation_ledgerentry e LEFT JOIN compensation_ledgerline l ON l.entry_id = e.id
             GROUP BY e.id
            HAVING COUNT(l.id) < 2 OR COALESCE(SUM(l.amount_micro), 0) <> 0
            """,
        ),
        Check(
            "no_zero_lines",
            _("no line moves zero"),
            ENTRIES,
            "SELECT DISTINCT entry_id AS id FROM compensation_ledgerline WHERE amount_micro = 0",
        ),
        Check(
            "reversal_kind",
            _("reversals, and only reversals, name the entry they reverse"),
            ENTRIES,
            f"""
            SELECT id FROM compensation_ledgerentry
             WHERE (kind = {_REVERSAL} AND reverses_id IS NULL) OR (kind <> {_REVERSAL} AND reverses_id IS NOT NULL)
            """,  # noqa: S608  (constants only)
        ),
        Check(
            "reversals_net_to_zero",
            _("each reversal and the entry it reverses net to zero on every account"),
            ENTRIES,
            """
            SELECT DISTINCT reversal_id AS id FROM (
                SELECT r.id AS reversal_id, l.account_id, l.amount_micro
                  FROM compensation_ledgerentry r JOIN compensation_ledgerline l ON l.entry_id = r.id
                 WHERE r.reverses_id IS NOT NULL
                UNION ALL
                SELECT r.id, l.account_id, l.amount_micro
                  FROM compensation_ledgerentry r JOIN compensation_ledgerline l ON l.entry_id = r.reverses_id
                 WHERE r.reverses_id IS NOT NULL
            ) pairs
             GROUP BY reversal_id, account_id
            HAVING SUM(amount_micro) <> 0
            """,
        ),
        Check(
            "reversed_at_most_once",
            _("no entry is reversed twice"),
            ENTRIES,
            """
            SELECT reverses_id AS id FROM compensation_ledgerentry
             WHERE reverses_id IS NOT NULL
             GROUP BY reverses_id
            HAVING COUNT(*) > 1
            """,
        ),
        # Repricing posts an entry of its own and points the lines it priced to it, so "the lines pointing
        # to the entry" holds for chunk entries and reprice entries alike.
        Check(
            "manifest_accruals",
            _(
                "each accrual posted for a manifest debits that manifest's lab, and only it, with the sum of "
                "the amounts of the manifest lines pointing to the entry"
            ),
            ENTRIES,
            f"""
            WITH manifest_entry AS (
                SELECT e.id, m.lab_id
                  FROM compensation_ledgerentry e
                  LEFT JOIN compensation_usagemanifest m ON CAST(m.id AS TEXT) = {_MANIFEST_OF}
                 WHERE e.kind = {_ACCRUAL} AND e.source ->> 'manifest' IS NOT NULL
            ), receivable AS (
                SELECT me.id, SUM(l.amount_micro) AS debit,
                       MAX(CASE WHEN a.party_id = me.lab_id THEN 0 ELSE 1 END) AS other_lab
                  FROM manifest_entry me
                  JOIN compensation_ledgerline l ON l.entry_id = me.id
                  JOIN compensation_account a ON a.id = l.account_id
                 WHERE a.kind = {_RECEIVABLE}
                 GROUP BY me.id
            ), priced AS (
                SELECT entry_id AS id, SUM(amount_micro) AS amount
                  FROM compensation_manifestline
                 WHERE entry_id IS NOT NULL
                 GROUP BY entry_id
            )
            SELECT me.id
              FROM manifest_entry me
              LEFT JOIN receivable r ON r.id = me.id
              LEFT JOIN priced p ON p.id = me.id
             WHERE me.lab_id IS NULL
                OR COALESCE(r.other_lab, 0) = 1
                OR COALESCE(r.debit, 0) <> COALESCE(p.amount, 0)
            """,  # noqa: S608  (constants only)
        ),
        Check(
            "manifest_line_entries",
            _("a priced manifest line points to an accrual posted for its own manifest"),
            MANIFEST_LINES,
            f"""
            SELECT ml.id
              FROM compensation_manifestline ml
              LEFT JOIN compensation_ledgerentry e ON e.id = ml.entry_id
             WHERE (ml.entry_id IS NULL AND COALESCE(ml.amount_micro, 0) <> 0)
                OR (ml.entry_id IS NOT NULL AND (
                    e.kind <> {_ACCRUAL} OR {_MANIFEST_OF} IS NULL
                    OR {_MANIFEST_OF} <> CAST(ml.manifest_id AS TEXT)
                ))
            """,  # noqa: S608  (constants only)
        ),
        Check(
            "manifest_lines_conserved",
            _(
                "every manifest line's amount is what went to owners, to escrow and to violations; what was "
                "released is at most what was held; a hold is open exactly while something of it is unreleased"
            ),
            MANIFEST_LINES,
            """
            SELECT id FROM compensation_manifestline
             WHERE (amount_micro IS NULL AND (paid_micro <> 0 OR held_micro <> 0 OR violation_micro <> 0))
                OR amount_micro <> paid_micro + held_micro + violation_micro
                OR paid_micro < 0 OR held_micro < 0 OR violation_micro < 0
                OR released_micro < 0 OR released_micro > held_micro
                OR (held_micro > 0 AND held_account_id IS NULL)
                OR hold_open <> (released_micro < held_micro)
            """,
        ),
        Check(
            "escrow_holds",
            _("each escrow account holds exactly what its manifest lines hold and have not released"),
            ACCOUNTS,
            f"""
            WITH balance AS (
                SELECT a.id, COALESCE(SUM(l.amount_micro), 0) AS amount
                  FROM compensation_account a LEFT JOIN compensation_ledgerline l ON l.account_id = a.id
                 WHERE a.kind IN ({_ESCROW_KINDS})
                 GROUP BY a.id
            ), held AS (
                SELECT held_account_id AS id, SUM(held_micro - released_micro) AS amount
                  FROM compensation_manifestline
                 WHERE held_account_id IS NOT NULL
                 GROUP BY held_account_id
            ), account_ids AS (
                SELECT id FROM balance UNION SELECT id FROM held
            )
            SELECT ids.id
              FROM account_ids ids
              LEFT JOIN balance b ON b.id = ids.id
              LEFT JOIN held h ON h.id = ids.id
             WHERE COALESCE(b.amount, 0) <> -COALESCE(h.amount, 0)
            """,  # noqa: S608  (constants only)
        ),
        Check(
            "escrow_releases",
            _(
                "each escrow release moved its amount: its entry is a release whose debits sum to it, and "
                "the manifest lines' allocations name that entry for the same sum"
            ),
            RELEASES,
            f"""
            WITH debits AS (
                SELECT r.id, SUM(l.amount_micro) AS amount
                  FROM compensation_escrowrelease r
                  JOIN compensation_ledgerline l ON l.entry_id = r.entry_id AND l.amount_micro > 0
                 GROUP BY r.id
            ), allocated AS (
                SELECT CAST(part.value ->> 3 AS BIGINT) AS entry_id, SUM(CAST(part.value ->> 2 AS BIGINT)) AS amount
                  FROM compensation_manifestline ml, {elements}(ml.allocation) AS part
                 WHERE ml.released_micro > 0
                 GROUP BY CAST(part.value ->> 3 AS BIGINT)
            )
            SELECT r.id
              FROM compensation_escrowrelease r
              JOIN compensation_ledgerentry e ON e.id = r.entry_id
              LEFT JOIN debits d ON d.id = r.id
              LEFT JOIN allocated al ON al.entry_id = r.entry_id
             WHERE e.kind <> {_RELEASE}
                OR COALESCE(d.amount, 0) <> r.amount_micro
                OR COALESCE(al.amount, 0) <> r.amount_micro
            """,  # noqa: S608  (constants only)
        ),
        Check(
            "release_entries",
            _("every release entry is recorded as an escrow release and moves money from escrow to payables"),
            ENTRIES,
            f"""
            SELECT e.id
              FROM compensation_ledgerentry e
              JOIN compensation_ledgerline l ON l.entry_id = e.id
              JOIN compensation_account a ON a.id = l.account_id
              LEFT JOIN compensation_escrowrelease r ON r.entry_id = e.id
             WHERE e.kind = {_RELEASE}
             GROUP BY e.id
            HAVING MAX(CASE WHEN r.id IS NULL THEN 1 ELSE 0 END) = 1
                OR MAX(CASE
                       WHEN l.amount_micro > 0 AND a.kind NOT IN ({_ESCROW_KINDS}) THEN 1
                       WHEN l.amount_micro < 0 AND a.kind <> {_PAYABLE} THEN 1
                       ELSE 0 END) = 1
            """,  # noqa: S608  (constants only)
        ),
        Check(
            "distributions",
            _(
                "each market-share distribution entry takes from escrow what the manifest lines' allocations "
                "name it for, and gives the holders exactly their recorded shares"
            ),
            ENTRIES,
            f"""
            WITH moved AS (
                SELECT e.id,
                       SUM(CASE WHEN a.kind IN ({_ESCROW_KINDS}) THEN l.amount_micro ELSE 0 END) AS from_escrow,
                       SUM(CASE WHEN a.kind = {_PAYABLE} THEN -l.amount_micro ELSE 0 END) AS to_holders,
                       SUM(CASE WHEN a.kind NOT IN ({_ESCROW_KINDS}) AND a.kind <> {_PAYABLE} THEN 1 ELSE 0 END)
                           AS elsewhere
                  FROM compensation_ledgerentry e
                  JOIN compensation_ledgerline l ON l.entry_id = e.id
                  JOIN compensation_account a ON a.id = l.account_id
                 WHERE e.kind = {_DISTRIBUTION}
                 GROUP BY e.id
            ), allocated AS (
                SELECT CAST(part.value ->> 3 AS BIGINT) AS id, SUM(CAST(part.value ->> 2 AS BIGINT)) AS amount
                  FROM compensation_manifestline ml, {elements}(ml.allocation) AS part
                 WHERE ml.released_micro > 0 AND part.value ->> 0 IS NULL
                 GROUP BY CAST(part.value ->> 3 AS BIGINT)
            ), shared AS (
                SELECT entry_id AS id, SUM(amount_micro) AS amount
                  FROM compensation_distributionshare GROUP BY entry_id
            )
            SELECT m.id
              FROM moved m
              LEFT JOIN allocated al ON al.id = m.id
              LEFT JOIN shared sh ON sh.id = m.id
             WHERE m.elsewhere > 0
                OR m.from_escrow <> COALESCE(al.amount, 0)
                OR m.to_holders <> COALESCE(sh.amount, 0)
                OR m.from_escrow <> m.to_holders
            """,  # noqa: S608  (constants only)
        ),
        Check(
            "closed_periods",
            _(
                "nothing was dated before the end of a closed settlement period after it closed, except that "
                "settlement's own payouts inside its period"
            ),
            ENTRIES,
            f"""
            SELECT DISTINCT e.id
              FROM compensation_ledgerentry e
              JOIN compensation_settlement s ON e.effective_at < s.period_end
             WHERE s.status IN {_CLOSED} AND s.started_at IS NOT NULL AND e.created_at > s.started_at
               AND NOT (e.kind = {_PAYOUT} AND {_SETTLEMENT_OF} = CAST(s.id AS TEXT)
                        AND e.effective_at >= s.period_start)
            """,  # noqa: S608  (constants only)
        ),
        Check(
            "statements_reconcile",
            _(
                "each statement of a settled period reconciles: its opening balance is the holder's payable "
                "before the period, closing minus opening is the payable's movement in the period, its lines add "
                "up to what it earned, and payouts are whole won"
            ),
            STATEMENTS,
            f"""
            WITH payable AS (
                SELECT st.id,
                       SUM(CASE WHEN e.effective_at < s.period_start THEN l.amount_micro ELSE 0 END) AS before,
                       SUM(CASE WHEN e.effective_at >= s.period_start AND e.effective_at < s.period_end
                                THEN l.amount_micro ELSE 0 END) AS during
                  FROM compensation_statement st
                  JOIN compensation_settlement s ON s.id = st.settlement_id
                  LEFT JOIN compensation_account a ON a.kind = {_PAYABLE} AND a.party_id = st.holder_id
                  LEFT JOIN compensation_ledgerline l ON l.account_id = a.id
                  LEFT JOIN compensation_ledgerentry e ON e.id = l.entry_id
                 WHERE s.status = {_SETTLED}
                 GROUP BY st.id
            ), lines AS (
                SELECT statement_id AS id, SUM(amount_micro) AS amount
                  FROM compensation_statementline GROUP BY statement_id
            )
            SELECT st.id
              FROM compensation_statement st
              JOIN payable p ON p.id = st.id
              LEFT JOIN lines ln ON ln.id = st.id
             WHERE st.opening_micro <> -COALESCE(p.before, 0)
                OR st.closing_micro - st.opening_micro <> -COALESCE(p.during, 0)
                OR COALESCE(ln.amount, 0)
                   <> st.accrued_micro + st.released_micro + st.distributed_micro + st.adjustments_micro
                OR st.payout_micro % {MICRO} <> 0 OR st.withheld_micro % {MICRO} <> 0
                OR ((st.payout_micro > 0 OR st.withheld_micro > 0) AND st.payout_entry_id IS NULL)
            """,  # noqa: S608  (constants only)
        ),
        Check(
            "settlement_payouts",
            _(
                "each settled period paid out and withheld exactly what its statements say, in payout entries "
                "of its own"
            ),
            SETTLEMENTS,
            f"""
            WITH stated AS (
                SELECT settlement_id AS id, SUM(payout_micro) AS payout, SUM(withheld_micro) AS withheld,
                       SUM(due_micro - carried_forward_micro) AS cleared
                  FROM compensation_statement GROUP BY settlement_id
            ), posted AS (
                SELECT {_SETTLEMENT_OF} AS id,
                       SUM(CASE WHEN a.kind = {_PAYOUTS_ACCOUNT} THEN -l.amount_micro ELSE 0 END) AS payout,
                       SUM(CASE WHEN a.kind = {_WITHHOLDING_ACCOUNT} THEN -l.amount_micro ELSE 0 END) AS withheld,
                       SUM(CASE WHEN a.kind = {_PAYABLE} THEN l.amount_micro ELSE 0 END) AS cleared
                  FROM compensation_ledgerentry e
                  JOIN compensation_ledgerline l ON l.entry_id = e.id
                  JOIN compensation_account a ON a.id = l.account_id
                 WHERE e.kind = {_PAYOUT}
                 GROUP BY {_SETTLEMENT_OF}
            )
            SELECT s.id
              FROM compensation_settlement s
              LEFT JOIN stated st ON st.id = s.id
              LEFT JOIN posted p ON p.id = CAST(s.id AS TEXT)
             WHERE s.status = {_SETTLED}
               AND (COALESCE(st.payout, 0) <> COALESCE(p.payout, 0)
                    OR COALESCE(st.withheld, 0) <> COALESCE(p.withheld, 0)
                    OR COALESCE(st.cleared, 0) <> COALESCE(p.cleared, 0))
            """,  # noqa: S608  (constants only)
        ),
        # A holder's payable is credit-normal (negative: owed to the holder). Replayed in effective order, it
        # must not be in debit right after a payout: that would be a holder paid more than it was due.
        Check(
            "payouts_within_payable",
            _(
                "no payout overdraws a holder's payable: right after each payout entry, what the payable holds "
                "for the holder is zero or more"
            ),
            ENTRIES,
            f"""
            WITH paid AS (
                SELECT DISTINCT l.account_id
                  FROM compensation_ledgerline l
                  JOIN compensation_ledgerentry e ON e.id = l.entry_id
                  JOIN compensation_account a ON a.id = l.account_id
                 WHERE e.kind = {_PAYOUT} AND a.kind = {_PAYABLE}
            ), moves AS (
                SELECT l.account_id, e.id AS entry_id, e.kind, e.effective_at, SUM(l.amount_micro) AS amount
                  FROM compensation_ledgerline l
                  JOIN paid p ON p.account_id = l.account_id
                  JOIN compensation_ledgerentry e ON e.id = l.entry_id
                 GROUP BY l.account_id, e.id, e.kind, e.effective_at
            ), running AS (
                SELECT entry_id, kind,
                       SUM(amount) OVER (PARTITION BY account_id ORDER BY effective_at, entry_id) AS balance
                  FROM moves
            )
            SELECT DISTINCT entry_id AS id FROM running WHERE kind = {_PAYOUT} AND balance > 0
            """,  # noqa: S608  (constants only)
        ),
        Check(
            "invoices_reconcile",
            _(
                "each invoice of a settled period opens with the lab's receivable before the period and totals "
                "its movement in the period, and its usage lines add up to the accruals"
            ),
            INVOICES,
            f"""
            WITH receivable AS (
                SELECT i.id,
                       SUM(CASE WHEN e.effective_at < s.period_start THEN l.amount_micro ELSE 0 END) AS before,
                       SUM(CASE WHEN e.effective_at >= s.period_start AND e.effective_at < s.period_end
                                     AND e.kind <> {_PAYMENT} THEN l.amount_micro ELSE 0 END) AS during,
                       SUM(CASE WHEN e.effective_at >= s.period_start AND e.effective_at < s.period_end
                                     AND e.kind = {_PAYMENT} THEN l.amount_micro ELSE 0 END) AS paid
                  FROM compensation_invoice i
                  JOIN compensation_settlement s ON s.id = i.settlement_id
                  LEFT JOIN compensation_account a ON a.kind = {_RECEIVABLE} AND a.party_id = i.lab_id
                  LEFT JOIN compensation_ledgerline l ON l.account_id = a.id
                  LEFT JOIN compensation_ledgerentry e ON e.id = l.entry_id
                 WHERE s.status = {_SETTLED}
                 GROUP BY i.id
            ), usage AS (
                SELECT invoice_id AS id, SUM(amount_micro) AS amount
                  FROM compensation_invoiceline WHERE section = {_USAGE_SECTION} GROUP BY invoice_id
            )
            SELECT i.id
              FROM compensation_invoice i
              JOIN receivable r ON r.id = i.id
              LEFT JOIN usage u ON u.id = i.id
             WHERE i.opening_micro <> COALESCE(r.before, 0)
                OR i.total_micro <> COALESCE(r.during, 0)
                OR i.payments_micro <> COALESCE(r.paid, 0)
                OR COALESCE(u.amount, 0) <> i.compensation_micro + i.violations_micro
            """,  # noqa: S608  (constants only)
        ),
        Check(
            "payments_reconcile",
            _(
                "every lab payment is one payment entry that debits the bank and credits that lab's receivable by "
                "exactly its amount, and every payment entry is a recorded lab payment"
            ),
            ENTRIES,
            f"""
            WITH posted AS (
                SELECT e.id,
                       SUM(CASE WHEN a.kind = {_BANK} THEN l.amount_micro ELSE 0 END) AS bank,
                       SUM(CASE WHEN a.kind = {_RECEIVABLE} THEN l.amount_micro ELSE 0 END) AS receivable,
                       SUM(CASE WHEN a.kind NOT IN ({_BANK}, {_RECEIVABLE}) THEN 1 ELSE 0 END) AS elsewhere,
                       MIN(CASE WHEN a.kind = {_RECEIVABLE} THEN a.party_id END) AS lab
                  FROM compensation_ledgerentry e
                  JOIN compensation_ledgerline l ON l.entry_id = e.id
                  JOIN compensation_account a ON a.id = l.account_id
                 WHERE e.kind = {_PAYMENT}
                 GROUP BY e.id
            )
            SELECT p.id
              FROM posted p
              LEFT JOIN compensation_labpayment lp ON lp.entry_id = p.id
             WHERE lp.id IS NULL OR p.elsewhere > 0 OR p.lab IS NULL OR p.lab <> lp.lab_id
                OR p.bank <> lp.amount_won * {MICRO} OR p.receivable <> -lp.amount_won * {MICRO}
            UNION
            SELECT lp.entry_id FROM compensation_labpayment lp
              JOIN compensation_ledgerentry e ON e.id = lp.entry_id
             WHERE e.kind <> {_PAYMENT}
            """,  # noqa: S608  (constants only)
        ),
        Check(
            "payment_allocations",
            _(
                "no payment is matched to invoices for more than it paid, nor to another lab's invoice, and no "
                "invoice is paid more than its amount due"
            ),
            INVOICES,
            """
            WITH per_invoice AS (
                SELECT invoice_id AS id, SUM(amount_won) AS paid FROM compensation_paymentallocation
                 GROUP BY invoice_id
            ), per_payment AS (
                SELECT payment_id, SUM(amount_won) AS used FROM compensation_paymentallocation GROUP BY payment_id
            )
            SELECT i.id FROM compensation_invoice i JOIN per_invoice pi ON pi.id = i.id
             WHERE pi.paid > i.amount_due_won
            UNION
            SELECT pa.invoice_id FROM compensation_paymentallocation pa
              JOIN compensation_labpayment lp ON lp.id = pa.payment_id
              JOIN compensation_invoice i ON i.id = pa.invoice_id
              JOIN per_payment pp ON pp.payment_id = lp.id
             WHERE lp.lab_id <> i.lab_id OR pp.used > lp.amount_won
            """,
        ),
        Check(
            "public_interest_transfers",
            _(
                "each public-interest transfer takes from escrow what the manifest lines' allocations name it for, "
                "and gives all of it to one public-interest account"
            ),
            ENTRIES,
            f"""
            WITH moved AS (
                SELECT e.id,
                       SUM(CASE WHEN a.kind IN ({_ESCROW_KINDS}) THEN l.amount_micro ELSE 0 END) AS from_escrow,
                       SUM(CASE WHEN a.kind = {_PUBLIC_INTEREST} THEN -l.amount_micro ELSE 0 END) AS to_fund,
                       SUM(CASE WHEN a.kind = {_PUBLIC_INTEREST} THEN 1 ELSE 0 END) AS funds,
                       SUM(CASE WHEN a.kind NOT IN ({_ESCROW_KINDS}) AND a.kind <> {_PUBLIC_INTEREST} THEN 1 ELSE 0 END)
                           AS elsewhere,
                       SUM(CASE WHEN a.kind IN ({_ESCROW_KINDS}) AND l.amount_micro < 0 THEN 1 ELSE 0 END)
                           AS into_escrow
                  FROM compensation_ledgerentry e
                  JOIN compensation_ledgerline l ON l.entry_id = e.id
                  JOIN compensation_account a ON a.id = l.account_id
                 WHERE e.kind = {_TRANSFER}
                 GROUP BY e.id
            ), allocated AS (
                SELECT CAST(part.value ->> 3 AS BIGINT) AS id, SUM(CAST(part.value ->> 2 AS BIGINT)) AS amount
                  FROM compensation_manifestline ml, {elements}(ml.allocation) AS part
                 WHERE ml.released_micro > 0 AND part.value ->> 0 IS NULL
                 GROUP BY CAST(part.value ->> 3 AS BIGINT)
            )
            SELECT m.id
              FROM moved m
              LEFT JOIN allocated al ON al.id = m.id
             WHERE m.elsewhere > 0 OR m.into_escrow > 0 OR m.funds <> 1
                OR m.from_escrow <> COALESCE(al.amount, 0)
                OR m.from_escrow <> m.to_fund
            """,  # noqa: S608  (constants only)
        ),
        Check(
            "holds_noticed",
            _(
                "every open hold for a work's unclaimed share or an unregistered identifier is on the public list: "
                "its escrow account has a notice for the month it was held in"
            ),
            MANIFEST_LINES,
            f"""
            SELECT ml.id
              FROM compensation_manifestline ml
              JOIN compensation_account a ON a.id = ml.held_account_id
              JOIN compensation_ledgerentry e ON e.id = ml.entry_id
             WHERE ml.hold_open AND a.kind IN ({_LISTED_KINDS})
               AND NOT EXISTS (
                   SELECT 1 FROM compensation_unclaimednotice n
                    WHERE n.account_id = a.id AND n.month_start <= e.effective_at AND e.effective_at < n.month_end
               )
            """,  # noqa: S608  (constants only)
        ),
        Check(
            "payouts_to_payees",
            _(
                "a statement is paid to its holder, or to the agent of a mandate from that holder with the power to "
                "receive payouts, and its payout entry names that payee"
            ),
            STATEMENTS,
            """
            SELECT s.id FROM compensation_statement s
              LEFT JOIN registry_mandate m ON m.id = s.payout_mandate_id
             WHERE s.payout_mandate_id IS NOT NULL
               AND (m.agent_id <> s.payee_id OR m.member_id <> s.holder_id OR NOT m.receives_payouts)
            UNION
            SELECT s.id FROM compensation_statement s
              JOIN compensation_ledgerentry e ON e.id = s.payout_entry_id
             WHERE s.payee_id IS NOT NULL AND CAST(e.source ->> 'payee' AS TEXT) <> CAST(s.payee_id AS TEXT)
            """,
        ),
        Check(
            "consolidated_statements_add_up",
            _("each agent's consolidated statement is the sum of the statements of its members sent to it"),
            CONSOLIDATED,
            f"""
            WITH sums AS (
                SELECT s.settlement_id, r.party_id AS agent_id, COUNT(*) AS members,
                       SUM(s.opening_micro) AS opening, SUM(s.due_micro) AS due, SUM(s.payout_micro) AS payout,
                       SUM(s.withheld_micro) AS withheld, SUM(s.carried_forward_micro) AS carried,
                       SUM(CASE WHEN s.payee_id = r.party_id THEN s.payout_micro ELSE 0 END) AS to_agent
                  FROM compensation_statementrecipient r
                  JOIN compensation_statement s ON s.id = r.statement_id
                 WHERE r.role = {_AGENT}
                 GROUP BY s.settlement_id, r.party_id
            )
            SELECT c.id FROM compensation_consolidatedstatement c
              LEFT JOIN sums ON sums.settlement_id = c.settlement_id AND sums.agent_id = c.agent_id
             WHERE sums.agent_id IS NULL OR c.members <> sums.members OR c.opening_micro <> sums.opening
                OR c.due_micro <> sums.due OR c.payout_micro <> sums.payout OR c.withheld_micro <> sums.withheld
                OR c.carried_forward_micro <> sums.carried OR c.paid_to_agent_micro <> sums.to_agent
            """,  # noqa: S608  (constants only)
        ),
    ]


def ledger_checks() -> list[Check]:
    """Every check, in the order they are reported."""
    return _checks()


def check_offenders(check: Check, *, limit: int) -> tuple[int, list[int]]:
    """How many ids a check names, and the first ``limit`` of them, in one pass (``COUNT(*) OVER ()``)."""
    with connection.cursor() as cursor:
        # Only the constant checks above reach this SQL; nothing comes from outside.
        cursor.execute(
            f"SELECT id, COUNT(*) OVER () FROM ({check.sql}) offending ORDER BY id LIMIT {int(limit)}"  # noqa: S608
        )
        rows = cursor.fetchall()
    return (int(rows[0][1]) if rows else 0), [int(row[0]) for row in rows]


def subject_count(subject: str, count: int) -> str:
    """``count`` ids of ``subject`` in words: "2 entries", "1 manifest line"."""
    number = f"{count:,}"
    if subject == ACCOUNTS:
        return ngettext("%(count)s account", "%(count)s accounts", count) % {"count": number}
    if subject == RELEASES:
        return ngettext("%(count)s escrow release", "%(count)s escrow releases", count) % {"count": number}
    if subject == SETTLEMENTS:
        return ngettext("%(count)s settlement", "%(count)s settlements", count) % {"count": number}
    if subject == STATEMENTS:
        return ngettext("%(count)s statement", "%(count)s statements", count) % {"count": number}
    if subject == CONSOLIDATED:
        return ngettext("%(count)s consolidated statement", "%(count)s consolidated statements", count) % {
            "count": number
        }
    if subject == INVOICES:
        return ngettext("%(count)s invoice", "%(count)s invoices", count) % {"count": number}
    if subject == MANIFEST_LINES:
        return ngettext("%(count)s manifest line", "%(count)s manifest lines", count) % {"count": number}
    return ngettext("%(count)s entry", "%(count)s entries", count) % {"count": number}
