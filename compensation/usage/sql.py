"""Deciding a chunk of manifest lines set-based, in PostgreSQL.

The same rules as ``compensation.usage._line_decide`` (which serves SQLite and re-pricing, and which
``tests/compensation/test_usage_engines.py`` holds this module to, line by line), written as a few
statements over a staging table, so a million-line manifest costs a few joins per chunk instead of a
million Python decisions:

1. the worker COPYs the chunk's parsed lines into the session's staging table;
2. one statement matches identifiers to works and decides each line as at its ``used_at``: the refusal
   that decides it (a work's own refusal, a catalogue refusal of a co-owner, or the longest URL prefix
   of a verified domain, each effective and not withdrawn then, by an owner verified by then), the
   regime, the tariff in force, the verified shares now, the price (half-even, micro-won);
3. one statement splits matched lines among their verified owners (largest remainder, ties to the
   lower claim id, the unclaimed share last), exactly as ``allocate_largest_remainder`` does;
4. the per-account sums become one ledger posting (through ``ledger_post_entries``, with its
   idempotency check), and one INSERT ... SELECT writes the outcome rows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django.db import DatabaseError, connection, transaction

from compensation.ledger.services import AccountKey, Posting, accounts_ensure, ledger_post_entries
from compensation.models import AccountKind, EntryKind, UsageManifest
from compensation.usage.manifests import ParsedLine
from core.money import MICRO
from optout.selectors import purposes_refusing
from registry.identifiers import Scheme
from registry.models import WorkKind

_STAGE_COLUMNS = (
    "line_no",
    "scheme",
    "value",
    "key_scheme",
    "key_value",
    "units",
    "unit",
    "used_at",
    "dedupe",
    "pre_outcome",
    "reason_code",
    "reason",
    "url_host",
)

_STAGE_CREATE = """
CREATE TEMP TABLE IF NOT EXISTS compensation_stage (
    line_no integer NOT NULL,
    scheme text NOT NULL,
    value text NOT NULL,
    key_scheme text NOT NULL,
    key_value text NOT NULL,
    units numeric,
    unit text NOT NULL,
    used_at timestamptz,
    dedupe uuid,
    pre_outcome text NOT NULL,
    reason_code text NOT NULL,
    reason text NOT NULL,
    url_host text NOT NULL
)
"""

# The tariff of a line whose identifier matches no work is that of the kind its scheme names; schemes that
# name no kind (a URL, a hash, a content code) are priced as "other".
SCHEME_KIND: Mapping[str, str] = {
    Scheme.ISBN: WorkKind.TEXT,
    Scheme.ISSN: WorkKind.TEXT,
    Scheme.DOI: WorkKind.TEXT,
    Scheme.ISMN: WorkKind.AUDIO,
    Scheme.ISRC: WorkKind.AUDIO,
    Scheme.ISWC: WorkKind.AUDIO,
    Scheme.ISAN: WorkKind.VIDEO,
}
_SCHEME_KIND_SQL = (
    "CASE m.key_scheme "
    + " ".join(f"WHEN '{scheme.value}' THEN '{kind.value}'" for scheme, kind in SCHEME_KIND.items())  # type: ignore[attr-defined]
    + f" ELSE '{WorkKind.OTHER.value}' END"
)

# The lines seen by earlier chunks of the manifest this session is processing, for "the same use reported
# again" (a line's dedupe key). Session-local and without WAL, unlike an index on the outcome rows; rolled back
# with a failed chunk like everything else, and rebuilt from the committed outcome rows when it does not
# describe the manifest up to the cursor (a new session, a resumed or redelivered task, another manifest).
_SEEN_CREATE = (
    "CREATE TEMP TABLE IF NOT EXISTS compensation_seen (dedupe uuid PRIMARY KEY)",
    "CREATE TEMP TABLE IF NOT EXISTS compensation_seen_upto (manifest_id bigint NOT NULL, lines_done bigint NOT NULL)",
)
_SEEN_REBUILD = """
INSERT INTO compensation_seen
SELECT DISTINCT dedupe FROM compensation_manifestline
 WHERE manifest_id = %(manifest)s AND dedupe IS NOT NULL AND outcome <> 'duplicate'
"""
_SEEN_ADD = """
INSERT INTO compensation_seen SELECT dedupe FROM compensation_matched WHERE pre_outcome = '' AND dedupe IS NOT NULL
"""

# The chunk's lines with the duplicates of earlier chunks marked (the producer marks those within the chunk)
# and the work each identifier names; the text only written back (scheme, value, reason) stays in the staging
# table. The producer stages the lines in identifier order, so that the index
# probes walk the identifiers, and then the works, in order: a chunk reads each page once rather than once per
# line (sorting here costs more: text sorts slowly in PostgreSQL).
_MATCH = """
CREATE TEMP TABLE compensation_matched ON COMMIT DROP AS
SELECT s.line_no, s.key_scheme, s.key_value, s.units, s.unit, s.used_at, s.dedupe, s.pre_outcome,
       CASE WHEN s.pre_outcome = '' THEN s.url_host ELSE '' END AS url_host,
       i.work_id, w.kind AS work_kind, w.status AS work_status
  FROM (
      SELECT s.line_no, s.key_scheme, s.key_value, s.units, s.unit, s.used_at, s.dedupe,
             CASE WHEN s.pre_outcome <> '' THEN s.pre_outcome WHEN e.dedupe IS NOT NULL THEN 'duplicate'
                  ELSE '' END AS pre_outcome,
             s.url_host
        FROM compensation_stage s
        LEFT JOIN compensation_seen e ON e.dedupe = s.dedupe
      OFFSET 0  -- decided once per line, not once per use of pre_outcome above
  ) s
  LEFT JOIN registry_identifier i ON s.pre_outcome = '' AND i.scheme = s.key_scheme AND i.value = s.key_value
  LEFT JOIN registry_work w ON w.id = i.work_id
"""

# The verified claims on those works: who is paid, and whose refusals count.
_CLAIMS = """
CREATE TEMP TABLE compensation_claims ON COMMIT DROP AS
SELECT oc.work_id, oc.id, oc.holder_id, oc.share_bp, oc.decided_at
  FROM (SELECT DISTINCT work_id FROM compensation_matched WHERE work_id IS NOT NULL ORDER BY work_id) m
  JOIN registry_ownershipclaim oc ON oc.work_id = m.work_id
 WHERE oc.status = 'verified'
"""

# Constant SQL: the only interpolation is the scheme-to-kind CASE built above from constants.
_DECIDE = f"""
CREATE TEMP TABLE compensation_decided ON COMMIT DROP AS
WITH refusals AS MATERIALIZED (
    -- Every refusal for the purpose that could concern a line of the chunk, with its withdrawal instant.
    SELECT r.id, r.scope, r.holder_id, r.work_id, r.url_prefix, r.url_host, r.domain_id, r.effective_from,
           e.effective_at AS withdrawn_at
      FROM optout_refusal r
      LEFT JOIN optout_refusalevent e ON e.refusal_id = r.id AND e.kind = 'withdrawn'
     WHERE r.purpose = ANY(%(purposes)s)
       AND ((r.scope = 'work' AND r.work_id IN (SELECT work_id FROM compensation_claims))
            OR (r.scope = 'catalogue' AND r.holder_id IN (SELECT holder_id FROM compensation_claims))
            OR (r.scope = 'url_prefix'
                AND r.url_host IN (SELECT url_host FROM compensation_stage WHERE url_host <> '')))
),
hits AS (
    -- A work's own refusal, by an owner verified by the time of use.
    SELECT m.line_no, r.id, r.effective_from
      FROM compensation_matched m
      JOIN refusals r ON r.scope = 'work' AND r.work_id = m.work_id
      JOIN compensation_claims c ON c.work_id = m.work_id AND c.holder_id = r.holder_id AND c.decided_at <= m.used_at
     WHERE r.effective_from <= m.used_at AND (r.withdrawn_at IS NULL OR r.withdrawn_at > m.used_at)
    UNION ALL
    -- A catalogue refusal of a co-owner verified by then.
    SELECT m.line_no, r.id, r.effective_from
      FROM compensation_matched m
      JOIN compensation_claims c ON c.work_id = m.work_id AND c.decided_at <= m.used_at
      JOIN refusals r ON r.scope = 'catalogue' AND r.holder_id = c.holder_id
     WHERE r.effective_from <= m.used_at AND (r.withdrawn_at IS NULL OR r.withdrawn_at > m.used_at)
    UNION ALL
    -- The longest URL prefix in force, if its domain was verified by then.
    SELECT p.line_no, p.id, p.effective_from FROM (
        SELECT DISTINCT ON (m.line_no) m.line_no, r.id, r.effective_from, r.domain_id, m.used_at
          FROM compensation_matched m
          JOIN refusals r
            ON r.scope = 'url_prefix' AND r.url_host = m.url_host AND starts_with(m.key_value, r.url_prefix)
         WHERE m.url_host <> '' AND r.effective_from <= m.used_at
           AND (r.withdrawn_at IS NULL OR r.withdrawn_at > m.used_at)
         ORDER BY m.line_no, length(r.url_prefix) DESC, r.id
    ) p
    JOIN registry_verifieddomain d ON d.id = p.domain_id AND d.status = 'verified' AND d.verified_at <= p.used_at
),
deciding AS (
    SELECT DISTINCT ON (line_no) line_no, id FROM hits ORDER BY line_no, effective_from, id
),
regimes AS (
    SELECT kind, regime, effective_from,
           lead(effective_from) OVER (PARTITION BY kind ORDER BY effective_from) AS until
      FROM optout_kindregime
),
tariffs AS (
    SELECT id, kind, unit, rate_krw, effective_from,
           lead(effective_from) OVER (PARTITION BY kind, unit ORDER BY effective_from, id) AS until
      FROM compensation_tariff
),
covered AS (
    SELECT work_id, sum(share_bp)::integer AS covered FROM compensation_claims GROUP BY work_id
),
r AS (
    SELECT m.*,
           dc.id AS refusal_id,
           CASE WHEN m.pre_outcome <> '' THEN '' WHEN m.work_id IS NULL THEN 'use_first'
                ELSE COALESCE(rg.regime, 'use_first') END AS regime,
           CASE WHEN m.pre_outcome <> '' THEN '' ELSE COALESCE(m.work_kind, {_SCHEME_KIND_SQL}) END AS kind,
           COALESCE(cv.covered, 0) AS covered
      FROM compensation_matched m
      LEFT JOIN deciding dc ON dc.line_no = m.line_no
      LEFT JOIN regimes rg
             ON m.work_id IS NOT NULL AND rg.kind = m.work_kind
            AND rg.effective_from <= m.used_at AND (rg.until IS NULL OR rg.until > m.used_at)
      LEFT JOIN covered cv ON cv.work_id = m.work_id
),
t AS (
    SELECT r.*, tf.id AS tariff_id, tf.rate_krw
      FROM r
      LEFT JOIN tariffs tf
             ON r.pre_outcome = '' AND (r.refusal_id IS NOT NULL OR r.regime <> 'license_required')
            AND tf.kind = r.kind AND tf.unit = r.unit
            AND tf.effective_from <= r.used_at AND (tf.until IS NULL OR tf.until > r.used_at)
),
c AS (
    SELECT t.*,
           CASE WHEN t.tariff_id IS NULL THEN NULL
                WHEN px.exact - floor(px.exact) > 0.5
                  OR (px.exact - floor(px.exact) = 0.5 AND mod(floor(px.exact), 2) = 1)
                THEN floor(px.exact)::bigint + 1
                ELSE floor(px.exact)::bigint END AS amount
      FROM t
      CROSS JOIN LATERAL (SELECT t.units * t.rate_krw * {MICRO} AS exact) px
)
SELECT c.*,
       CASE WHEN c.pre_outcome <> '' THEN c.pre_outcome
            WHEN c.refusal_id IS NOT NULL THEN 'refused_at_use'
            WHEN c.regime = 'license_required' THEN 'license_required'
            WHEN c.tariff_id IS NULL THEN 'unpriced'
            WHEN c.work_id IS NULL THEN 'unmatched_held'
            WHEN c.work_status = 'disputed' THEN 'disputed_held'
            WHEN c.covered = 0 THEN 'share_unclaimed'
            ELSE 'matched' END AS outcome
  FROM c
"""  # noqa: S608

# Largest remainder per matched line, the weights being the verified shares in claim order and then the
# share nobody has verified; the leftover micro-won go to the largest remainders, ties to the lower index.
_SPLIT = """
CREATE TEMP TABLE compensation_parts ON COMMIT DROP AS
WITH w AS (
    SELECT d.line_no, d.amount, oc.id AS claim_id, oc.holder_id, oc.share_bp::bigint AS weight
      FROM compensation_decided d
      JOIN compensation_claims oc ON oc.work_id = d.work_id
     WHERE d.outcome = 'matched'
    UNION ALL
    SELECT d.line_no, d.amount, NULL, NULL, (10000 - d.covered)::bigint
      FROM compensation_decided d
     WHERE d.outcome = 'matched' AND d.covered < 10000
),
v AS (
    -- sum() of bigint is numeric in PostgreSQL; the split is in integers, as in Python.
    SELECT w.*, (sum(w.weight) OVER (PARTITION BY w.line_no))::bigint AS total_weight,
           count(w.claim_id) OVER (PARTITION BY w.line_no) AS owners
      FROM w
),
f AS (
    SELECT v.*, (v.amount * v.weight) / v.total_weight AS floor_part,
           mod(v.amount * v.weight, v.total_weight) AS remainder
      FROM v
),
g AS (
    SELECT f.*,
           f.amount - (sum(f.floor_part) OVER (PARTITION BY f.line_no))::bigint AS leftover,
           row_number() OVER (PARTITION BY f.line_no ORDER BY f.remainder DESC, f.claim_id NULLS LAST) AS place
      FROM f
)
SELECT line_no, claim_id, holder_id, floor_part + CASE WHEN place <= leftover THEN 1 ELSE 0 END AS part, owners
  FROM g
"""

# What each line holds, and in which escrow account (kind, key): its id when the account exists, found by one
# index probe per hold whatever the statistics say of the accounts table (a hash of every escrow account, which
# the planner picks when they are stale, costs more than the chunk's holds).
_HOLDS = """
CREATE TEMP TABLE compensation_holds ON COMMIT DROP AS
SELECT holds.*, (
    SELECT a.id FROM compensation_account a
     WHERE a.kind = holds.account_kind AND a.escrow_key = holds.escrow_key AND a.party_id IS NULL
) AS account_id
FROM (
    SELECT d.line_no,
           CASE WHEN d.outcome = 'matched' THEN COALESCE(u.part, 0) ELSE d.amount END AS held,
           CASE d.outcome WHEN 'unmatched_held' THEN 'escrow_unmatched'
                          WHEN 'disputed_held' THEN 'escrow_disputed'
                          ELSE 'escrow_unclaimed' END AS account_kind,
           CASE WHEN d.outcome = 'unmatched_held' THEN d.key_scheme || ':' || d.key_value
                ELSE 'work:' || d.work_id END AS escrow_key,
           CASE WHEN d.outcome = 'matched' THEN 10000 - d.covered ELSE 10000 END AS open_bp
      FROM compensation_decided d
      LEFT JOIN compensation_parts u ON u.line_no = d.line_no AND u.claim_id IS NULL
     WHERE d.outcome IN ('matched', 'unmatched_held', 'disputed_held', 'share_unclaimed')
) holds
WHERE held > 0
"""

# The escrow accounts still missing (an identifier or work held for the first time), then their ids.
_ESCROW_ACCOUNTS = """
INSERT INTO compensation_account (kind, party_id, escrow_key, created_at)
SELECT DISTINCT account_kind, NULL::bigint, escrow_key, %(now)s FROM compensation_holds WHERE account_id IS NULL
ORDER BY 1, 3
ON CONFLICT (kind, escrow_key) WHERE party_id IS NULL DO NOTHING
"""
_ESCROW_ACCOUNT_IDS = """
UPDATE compensation_holds h
   SET account_id = (
       SELECT a.id FROM compensation_account a
        WHERE a.kind = h.account_kind AND a.escrow_key = h.escrow_key AND a.party_id IS NULL
   )
 WHERE h.account_id IS NULL
"""

_CREDITS = """
SELECT account_id, -sum(held) FROM compensation_holds WHERE account_id IS NOT NULL GROUP BY account_id
"""

_OWNER_CREDITS = """
SELECT holder_id, -sum(part) FROM compensation_parts WHERE claim_id IS NOT NULL AND part > 0 GROUP BY holder_id
"""

_VIOLATIONS = "SELECT COALESCE(sum(amount), 0) FROM compensation_decided WHERE outcome = 'refused_at_use'"

_INSERT_LINES = """
INSERT INTO compensation_manifestline (
    manifest_id, line_no, scheme, value, key, units, unit, used_at, dedupe, outcome, reason_code, reason,
    work_id, kind, refusal_id, tariff_id, amount_micro, paid_micro, held_micro, violation_micro,
    released_micro, held_account_id, open_bp, hold_open, allocation, entry_id, processed_at
)
SELECT %(manifest)s, d.line_no, s.scheme, s.value,
       CASE WHEN d.key_scheme = '' THEN '' ELSE d.key_scheme || ':' || d.key_value END,
       d.units, d.unit, d.used_at, d.dedupe, d.outcome, s.reason_code, s.reason,
       d.work_id, d.kind, d.refusal_id, d.tariff_id, d.amount,
       COALESCE(one.part, many.total, 0),
       COALESCE(h.held, 0),
       CASE WHEN d.outcome = 'refused_at_use' THEN COALESCE(d.amount, 0) ELSE 0 END,
       0,
       h.account_id,
       COALESCE(h.open_bp, 0),
       COALESCE(h.held, 0) > 0,
       CASE WHEN one.line_no IS NOT NULL
            THEN ('[[' || one.holder_id || ',' || one.claim_id || ',' || one.part || ','
                  || COALESCE(%(entry)s::bigint::text, 'null') || ']]')::jsonb
            ELSE COALESCE(many.allocation, '[]'::jsonb) END,
       CASE WHEN d.amount IS NULL THEN NULL ELSE %(entry)s::bigint END,
       %(now)s
  FROM compensation_decided d
  JOIN compensation_stage s ON s.line_no = d.line_no
  LEFT JOIN compensation_holds h ON h.line_no = d.line_no
  -- A line paid to one owner (the common case) is written as it is; the others are aggregated (the same JSON).
  LEFT JOIN compensation_parts one ON one.line_no = d.line_no AND one.claim_id IS NOT NULL AND one.owners = 1
  LEFT JOIN (
      SELECT line_no, sum(part) AS total,
             jsonb_agg(jsonb_build_array(holder_id, claim_id, part, %(entry)s::bigint) ORDER BY claim_id) AS allocation
        FROM compensation_parts
       WHERE claim_id IS NOT NULL AND owners > 1
       GROUP BY line_no
  ) many ON many.line_no = d.line_no
 ORDER BY d.line_no
"""


@dataclass(frozen=True)
class StagedChunk:
    """A chunk of parsed lines as the staging table's ``COPY`` text, made where the parsing ran (see
    ``compensation.usage``): compact to hand from process to process, and ready to send."""

    first: int
    last: int
    count: int
    payload: bytes


_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: str) -> str:
    return value.translate(_COPY_ESCAPES) if _COPY_SPECIAL.search(value) else value


def stage_line(line: ParsedLine, *, duplicate: bool = False) -> str:
    """One line of ``COPY compensation_stage (_STAGE_COLUMNS) FROM STDIN`` (text format) for ``line``.

    ``pre_outcome`` is ``invalid``, ``duplicate`` (of a line earlier in the chunk) or empty: the duplicates of
    earlier chunks are found in SQL.
    """
    key = line.key
    valid = line.valid
    pre_outcome = "duplicate" if duplicate else "" if valid else "invalid"
    host = ""
    if not pre_outcome and key is not None and key.scheme == "url":
        host = urlsplit(key.value).hostname or ""
    return (
        "\t".join(
            (
                str(line.line_no),
                _copy_text(line.scheme),
                _copy_text(line.value),
                _copy_text(key.scheme) if key is not None else "",
                _copy_text(key.value) if key is not None else "",
                str(line.units) if line.units is not None else "\\N",
                _copy_text(line.unit),
                line.used_at.isoformat() if line.used_at is not None else "\\N",
                str(line.dedupe) if valid and line.dedupe is not None else "\\N",
                pre_outcome,
                _copy_text(line.error_code),
                _copy_text(line.error_message),
                _copy_text(host),
            )
        )
        + "\n"
    )


def _temp_buffers_raise(cursor: Any) -> None:
    """Give the session's temporary tables more memory than the default 8 MB (the manifest's dedupe keys take
    about 40 bytes a line), which is only possible before its first temporary table."""
    cursor.execute("SELECT pg_my_temp_schema() = 0")
    if not cursor.fetchone()[0]:
        return
    try:
        with transaction.atomic():
            cursor.execute("SET temp_buffers = '256MB'")
    except DatabaseError:
        pass  # a temporary table was used after all: the default then


def _seen_prepare(cursor: Any, manifest_pk: int, lines_done: int) -> None:
    """Make ``compensation_seen`` hold the dedupe keys of the manifest's first ``lines_done`` lines."""
    for statement in _SEEN_CREATE:
        cursor.execute(statement)
    cursor.execute("SELECT manifest_id, lines_done FROM compensation_seen_upto")
    if cursor.fetchall() == [(manifest_pk, lines_done)]:
        return
    cursor.execute("TRUNCATE compensation_seen, compensation_seen_upto")
    if lines_done:
        cursor.execute(_SEEN_REBUILD, {"manifest": manifest_pk})
    cursor.execute(
        "INSERT INTO compensation_seen_upto (manifest_id, lines_done) VALUES (%s, %s)", [manifest_pk, lines_done]
    )


def chunk_settle_sql(
    *,
    manifest: UsageManifest,
    chunk: StagedChunk,
    lines_done: int,
    idempotency_key: str,
    effective_at: datetime,
    memo: str,
    now: datetime,
) -> None:
    """Decide, post and record one chunk, inside the caller's transaction (which holds the manifest lock and
    has checked that the manifest's first ``lines_done`` lines are the ones before this chunk)."""
    with connection.cursor() as cursor:
        # These statements cost enough to cross jit_above_cost, and compiling them takes longer (seconds on a
        # busy machine) than running them.
        cursor.execute("SET LOCAL jit = off")
        # The registry's tables are cached: probing the identifier index per line of a chunk is cheaper than
        # hashing a million identifiers per chunk, which the default (spinning-disk) costs make the planner choose.
        cursor.execute("SET LOCAL random_page_cost = 1.1")
        # A chunk's sorts and hashes fit in memory (tens of MB), rather than spill to temporary files.
        cursor.execute("SET LOCAL work_mem = '64MB'")
        _temp_buffers_raise(cursor)
        cursor.execute(_STAGE_CREATE)
        _seen_prepare(cursor, manifest.pk, lines_done)
        # Dropped at commit; also here, for a caller that processes several chunks in one outer transaction.
        cursor.execute(
            "DROP TABLE IF EXISTS compensation_matched, compensation_claims, compensation_decided,"
            " compensation_parts, compensation_holds"
        )
        cursor.execute("TRUNCATE compensation_stage")
        raw = cursor.cursor
        with raw.copy(f"COPY compensation_stage ({', '.join(_STAGE_COLUMNS)}) FROM STDIN") as copy:
            copy.write(chunk.payload)
        # Probes, in the order the lines were staged: hashing the registry's identifiers or the manifest's
        # dedupe keys costs more than the chunk's lines (and grows with them), and so does sorting the chunk.
        cursor.execute("SET LOCAL enable_hashjoin = off")
        cursor.execute("SET LOCAL enable_mergejoin = off")
        cursor.execute(_MATCH)
        cursor.execute("RESET enable_hashjoin")
        cursor.execute("RESET enable_mergejoin")
        cursor.execute(_SEEN_ADD)
        cursor.execute(
            "UPDATE compensation_seen_upto SET lines_done = lines_done + %s WHERE manifest_id = %s",
            [chunk.count, manifest.pk],
        )
        cursor.execute(_CLAIMS)
        cursor.execute(_DECIDE, {"purposes": purposes_refusing(manifest.purpose)})
        cursor.execute(_SPLIT)
        cursor.execute(_HOLDS)
        cursor.execute(_ESCROW_ACCOUNTS, {"now": now})
        cursor.execute(_ESCROW_ACCOUNT_IDS)
        cursor.execute(_CREDITS)
        credits: dict[int, int] = {int(account): int(amount) for account, amount in cursor.fetchall()}
        cursor.execute(_OWNER_CREDITS)
        owner_credits = [(int(holder), int(amount)) for holder, amount in cursor.fetchall()]
        cursor.execute(_VIOLATIONS)
        violations = int(cursor.fetchone()[0])
    lab_key = AccountKey(AccountKind.LAB_RECEIVABLE, manifest.lab_id)
    violations_key = AccountKey(AccountKind.VIOLATIONS, manifest.lab_id)
    payable_keys = {holder: AccountKey(AccountKind.HOLDER_PAYABLE, holder) for holder, _amount in owner_credits}
    accounts = accounts_ensure(keys=[lab_key, *([violations_key] if violations else []), *payable_keys.values()])
    for holder, amount in owner_credits:
        account_id = accounts[payable_keys[holder]].pk
        credits[account_id] = credits.get(account_id, 0) + amount
    if violations:
        account_id = accounts[violations_key].pk
        credits[account_id] = credits.get(account_id, 0) - violations
    credits = {account: amount for account, amount in credits.items() if amount}
    entry_id: int | None = None
    total = -sum(credits.values())
    if total:
        posting = Posting(
            idempotency_key=idempotency_key,
            kind=EntryKind.ACCRUAL,
            effective_at=effective_at,
            lines=[(accounts[lab_key].pk, total), *sorted(credits.items())],
            memo=f"{manifest.manifest_id} {memo}",
            source={"manifest": manifest.pk, "manifest_id": manifest.manifest_id, "lines": memo},
        )
        entry_id = ledger_post_entries(postings=[posting])[idempotency_key]
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_LINES, {"manifest": manifest.pk, "entry": entry_id, "now": now})
