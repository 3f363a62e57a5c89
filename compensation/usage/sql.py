"""The SQL engine: deciding a chunk of manifest lines set-based, in PostgreSQL.

It decides by the usage decision table (``compensation.usage.decisions``, whose docstring is the table), as the
Python engine (``compensation.usage.services._line_decide``) does line by line: its outcome CASE, whether a line
seeks a tariff, and which outcomes hold money in which escrow account are generated from that table. It is
written as a few statements over a staging table, so a million-line manifest costs a few joins per chunk instead
of a million Python decisions (``tests/compensation/test_usage_decisions.py`` holds both engines to one table of
cases, ``tests/compensation/test_usage_engines.py`` to each other over random lines):

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
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

from django.db import DatabaseError, connection, transaction

from compensation.ledger.services import AccountKey, Posting, accounts_ensure, ledger_post_entries
from compensation.models import AccountKind, EntryKind, LineSide, Outcome, UsageManifest
from compensation.usage.decisions import (
    FULL_SHARE_BP,
    HELD_OUTCOMES_SQL,
    HELD_PER_IDENTIFIER_SQL,
    PER_WORK_OUTCOMES_SQL,
    SCHEME_KIND,
    SPLIT_OUTCOME_SQL,
    VIOLATION_OUTCOMES_SQL,
    held_in_case_sql,
    musical_work_part_sql,
    outcome_case_sql,
    tariff_sought_sql,
)
from compensation.usage.manifests import ParsedLine
from core.money import MICRO
from core.sql import sql_literal
from optout.models import RefusalEventKind, RefusalScope, Regime
from optout.selectors import purposes_refusing
from optout.similar import usage_similar_resolve
from registry.identifiers import IdentifierKey, Scheme
from registry.models import ClaimStatus, DomainStatus, WorkKind

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
    "line_kind",
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
    url_host text NOT NULL,
    line_kind text NOT NULL,
    match text NOT NULL DEFAULT '',
    distance smallint
)
"""

# Status and outcome values as SQL literals, from the TextChoices (``core.sql``); formatted into the constant SQL
# below once, at import.
_UNDECIDED = "''"  # a staged line's pre_outcome when it is neither invalid nor a duplicate: the table decides it
_DUPLICATE = sql_literal(Outcome.DUPLICATE)
_CLAIM_VERIFIED = sql_literal(ClaimStatus.VERIFIED)
_DOMAIN_VERIFIED = sql_literal(DomainStatus.VERIFIED)
_WITHDRAWN = sql_literal(RefusalEventKind.WITHDRAWN)
_SCOPE_WORK = sql_literal(RefusalScope.WORK)
_SCOPE_CATALOGUE = sql_literal(RefusalScope.CATALOGUE)
_SCOPE_URL_PREFIX = sql_literal(RefusalScope.URL_PREFIX)
_USE_FIRST = sql_literal(Regime.USE_FIRST)
# The kind of an unmatched line's identifier (``SCHEME_KIND``), for the line aliased ``line``.
_SCHEME_KIND_SQL = (
    "CASE line.key_scheme "
    + " ".join(f"WHEN {sql_literal(scheme)} THEN {sql_literal(kind)}" for scheme, kind in SCHEME_KIND.items())
    + f" ELSE {sql_literal(WorkKind.OTHER)} END"
)

# The lines seen by earlier chunks of the manifest this session is processing, for "the same use reported
# again" (a line's dedupe key). Session-local and without WAL, unlike an index on the outcome rows; rolled back
# with a failed chunk like everything else, and rebuilt from the committed outcome rows when it does not
# describe the manifest up to the cursor (a new session, a resumed or redelivered task, another manifest).
_SEEN_CREATE = (
    "CREATE TEMP TABLE IF NOT EXISTS compensation_seen (dedupe uuid PRIMARY KEY)",
    "CREATE TEMP TABLE IF NOT EXISTS compensation_seen_upto (manifest_id bigint NOT NULL, lines_done bigint NOT NULL)",
)
_SEEN_REBUILD = f"""
INSERT INTO compensation_seen
SELECT DISTINCT dedupe FROM compensation_manifestline
 WHERE manifest_id = %(manifest)s AND dedupe IS NOT NULL AND outcome <> {_DUPLICATE}
"""  # noqa: S608
_SEEN_ADD = f"""
INSERT INTO compensation_seen
SELECT dedupe FROM compensation_matched WHERE pre_outcome = {_UNDECIDED} AND dedupe IS NOT NULL
"""  # noqa: S608

# The chunk's lines with the duplicates of earlier chunks marked (the producer marks those within the chunk)
# and the work each identifier names; the text only written back (scheme, value, reason) stays in the staging
# table. The producer stages the lines in identifier order, so that the index
# probes walk the identifiers, and then the works, in order: a chunk reads each page once rather than once per
# line (sorting here costs more: text sorts slowly in PostgreSQL).
_MATCH = f"""
CREATE TEMP TABLE compensation_matched ON COMMIT DROP AS
SELECT staged.line_no, staged.key_scheme, staged.key_value, staged.units, staged.unit, staged.used_at, staged.dedupe,
       staged.pre_outcome,
       CASE WHEN staged.pre_outcome = {_UNDECIDED} THEN staged.url_host ELSE '' END AS url_host,
       staged.line_kind, identifier.work_id, work.kind AS work_kind, work.status AS work_status,
       work.musical_work_id, composition.status AS musical_status
  FROM (
      SELECT stage.line_no, stage.key_scheme, stage.key_value, stage.units, stage.unit, stage.used_at, stage.dedupe,
             CASE WHEN stage.pre_outcome <> {_UNDECIDED} THEN stage.pre_outcome
                  WHEN seen.dedupe IS NOT NULL THEN {_DUPLICATE}
                  ELSE {_UNDECIDED} END AS pre_outcome,
             stage.url_host, stage.line_kind
        FROM compensation_stage stage
        LEFT JOIN compensation_seen seen ON seen.dedupe = stage.dedupe
      OFFSET 0  -- decided once per line, not once per use of pre_outcome above
  ) staged
  LEFT JOIN registry_identifier identifier
         ON staged.pre_outcome = {_UNDECIDED}
        AND identifier.scheme = staged.key_scheme AND identifier.value = staged.key_value
  LEFT JOIN registry_work work ON work.id = identifier.work_id
  LEFT JOIN registry_work composition ON composition.id = work.musical_work_id
"""  # noqa: S608

# The verified claims on those works and on the musical works of the recordings among them: who is paid, and whose
# refusals count.
_CLAIMS = f"""
CREATE TEMP TABLE compensation_claims ON COMMIT DROP AS
SELECT claim.work_id, claim.id, claim.holder_id, claim.share_bp, claim.decided_at
  FROM (
      SELECT DISTINCT work_id FROM (
          SELECT work_id FROM compensation_matched WHERE work_id IS NOT NULL
          UNION ALL
          SELECT musical_work_id FROM compensation_matched WHERE musical_work_id IS NOT NULL
      ) used ORDER BY work_id
  ) chunk_works
  JOIN registry_ownershipclaim claim ON claim.work_id = chunk_works.work_id
 WHERE claim.status = {_CLAIM_VERIFIED}
"""  # noqa: S608

# The columns both sides of a split line share.
_SIDE_COMMON = (
    "line_no, key_scheme, key_value, units, unit, used_at, dedupe, pre_outcome, url_host, kind, refusal_id, regime,"
    " tariff_id"
)

# The decision table of ``compensation.usage.decisions``, set-based: which refusal decides each line (rows 1), its
# regime (2), its tariff (3) and price, its work's verified shares (4-7); the outcome and whether a tariff is
# sought are the CASEs generated from the table. Only constants are formatted in.
_DECIDE = f"""
CREATE TEMP TABLE compensation_decided ON COMMIT DROP AS
WITH candidate_refusals AS MATERIALIZED (
    -- Every refusal for the purpose that could concern a line of the chunk, with its withdrawal instant.
    SELECT refusal.id, refusal.scope, refusal.holder_id, refusal.work_id, refusal.url_prefix, refusal.url_host,
           refusal.domain_id, refusal.effective_from, withdrawal.effective_at AS withdrawn_at
      FROM optout_refusal refusal
      LEFT JOIN optout_refusalevent withdrawal
             ON withdrawal.refusal_id = refusal.id AND withdrawal.kind = {_WITHDRAWN}
     WHERE refusal.purpose = ANY(%(purposes)s)
       AND ((refusal.scope = {_SCOPE_WORK} AND refusal.work_id IN (SELECT work_id FROM compensation_claims))
            OR (refusal.scope = {_SCOPE_CATALOGUE}
                AND refusal.holder_id IN (SELECT holder_id FROM compensation_claims))
            OR (refusal.scope = {_SCOPE_URL_PREFIX}
                AND refusal.url_host IN (SELECT url_host FROM compensation_stage WHERE url_host <> '')))
),
refusals_in_force AS (
    -- A work's own refusal, by an owner verified by the time of use.
    SELECT line.line_no, refusal.id, refusal.effective_from
      FROM compensation_matched line
      JOIN candidate_refusals refusal ON refusal.scope = {_SCOPE_WORK} AND refusal.work_id = line.work_id
      JOIN compensation_claims claim
        ON claim.work_id = line.work_id AND claim.holder_id = refusal.holder_id AND claim.decided_at <= line.used_at
     WHERE refusal.effective_from <= line.used_at
       AND (refusal.withdrawn_at IS NULL OR refusal.withdrawn_at > line.used_at)
    UNION ALL
    -- A catalogue refusal of a co-owner verified by then.
    SELECT line.line_no, refusal.id, refusal.effective_from
      FROM compensation_matched line
      JOIN compensation_claims claim ON claim.work_id = line.work_id AND claim.decided_at <= line.used_at
      JOIN candidate_refusals refusal ON refusal.scope = {_SCOPE_CATALOGUE} AND refusal.holder_id = claim.holder_id
     WHERE refusal.effective_from <= line.used_at
       AND (refusal.withdrawn_at IS NULL OR refusal.withdrawn_at > line.used_at)
    UNION ALL
    -- A recording's musical work's own refusal, by its owner verified by then (never the reverse).
    SELECT line.line_no, refusal.id, refusal.effective_from
      FROM compensation_matched line
      JOIN candidate_refusals refusal ON refusal.scope = {_SCOPE_WORK} AND refusal.work_id = line.musical_work_id
      JOIN compensation_claims claim
        ON claim.work_id = line.musical_work_id AND claim.holder_id = refusal.holder_id
       AND claim.decided_at <= line.used_at
     WHERE refusal.effective_from <= line.used_at
       AND (refusal.withdrawn_at IS NULL OR refusal.withdrawn_at > line.used_at)
    UNION ALL
    -- A catalogue refusal of an owner of a recording's musical work verified by then.
    SELECT line.line_no, refusal.id, refusal.effective_from
      FROM compensation_matched line
      JOIN compensation_claims claim ON claim.work_id = line.musical_work_id AND claim.decided_at <= line.used_at
      JOIN candidate_refusals refusal ON refusal.scope = {_SCOPE_CATALOGUE} AND refusal.holder_id = claim.holder_id
     WHERE refusal.effective_from <= line.used_at
       AND (refusal.withdrawn_at IS NULL OR refusal.withdrawn_at > line.used_at)
    UNION ALL
    -- The longest URL prefix in force, if its domain was verified by then.
    SELECT longest_prefix.line_no, longest_prefix.id, longest_prefix.effective_from FROM (
        SELECT DISTINCT ON (line.line_no)
               line.line_no, refusal.id, refusal.effective_from, refusal.domain_id, line.used_at
          FROM compensation_matched line
          JOIN candidate_refusals refusal
            ON refusal.scope = {_SCOPE_URL_PREFIX} AND refusal.url_host = line.url_host
           AND starts_with(line.key_value, refusal.url_prefix)
           -- At a path boundary (registry.identifiers.url_prefix_covers): /blog covers /blog/post, not /blogger.
           AND (length(line.key_value) = length(refusal.url_prefix) OR right(refusal.url_prefix, 1) = '/'
                OR substr(line.key_value, length(refusal.url_prefix) + 1, 1)
                   = ANY(CASE WHEN strpos(refusal.url_prefix, '?') > 0 THEN ARRAY['&'] ELSE ARRAY['/', '?'] END))
         WHERE line.url_host <> '' AND refusal.effective_from <= line.used_at
           AND (refusal.withdrawn_at IS NULL OR refusal.withdrawn_at > line.used_at)
         ORDER BY line.line_no, length(refusal.url_prefix) DESC, refusal.id
    ) longest_prefix
    JOIN registry_verifieddomain domain
      ON domain.id = longest_prefix.domain_id AND domain.status = {_DOMAIN_VERIFIED}
     AND domain.verified_at <= longest_prefix.used_at
),
deciding_refusals AS (
    SELECT DISTINCT ON (line_no) line_no, id FROM refusals_in_force ORDER BY line_no, effective_from, id
),
regime_periods AS (
    SELECT kind, regime, effective_from,
           lead(effective_from) OVER (PARTITION BY kind ORDER BY effective_from) AS until
      FROM optout_kindregime
),
tariff_periods AS (
    SELECT id, kind, unit, rate_krw, effective_from,
           lead(effective_from) OVER (PARTITION BY kind, unit ORDER BY effective_from, id) AS until
      FROM compensation_tariff
),
verified_shares AS (
    SELECT work_id, sum(share_bp)::integer AS covered_bp FROM compensation_claims GROUP BY work_id
),
split_periods AS (
    SELECT kind, musical_work_bp, effective_from,
           lead(effective_from) OVER (PARTITION BY kind ORDER BY effective_from) AS until
      FROM compensation_recordingsplit
),
lines_with_regime AS (
    SELECT line.*,
           deciding.id AS refusal_id,
           CASE WHEN line.pre_outcome <> {_UNDECIDED} THEN '' WHEN line.work_id IS NULL THEN {_USE_FIRST}
                ELSE COALESCE(regime_then.regime, {_USE_FIRST}) END AS regime,
           CASE WHEN line.pre_outcome <> {_UNDECIDED} THEN ''
                ELSE COALESCE(line.work_kind, NULLIF(line.line_kind, ''), {_SCHEME_KIND_SQL}) END AS kind,
           COALESCE(shares.covered_bp, 0) AS covered_bp,
           COALESCE(musical_shares.covered_bp, 0) AS musical_covered_bp
      FROM compensation_matched line
      LEFT JOIN deciding_refusals deciding ON deciding.line_no = line.line_no
      LEFT JOIN regime_periods regime_then
             ON line.work_id IS NOT NULL AND regime_then.kind = line.work_kind
            AND regime_then.effective_from <= line.used_at
            AND (regime_then.until IS NULL OR regime_then.until > line.used_at)
      LEFT JOIN verified_shares shares ON shares.work_id = line.work_id
      LEFT JOIN verified_shares musical_shares ON musical_shares.work_id = line.musical_work_id
),
lines_with_tariff AS (
    SELECT line.*, tariff.id AS tariff_id, tariff.rate_krw
      FROM lines_with_regime line
      LEFT JOIN tariff_periods tariff
             ON line.pre_outcome = {_UNDECIDED} AND {tariff_sought_sql("line")}
            AND tariff.kind = line.kind AND tariff.unit = line.unit
            AND tariff.effective_from <= line.used_at AND (tariff.until IS NULL OR tariff.until > line.used_at)
),
priced_lines AS (
    SELECT line.*,
           CASE WHEN line.tariff_id IS NULL THEN NULL
                WHEN price.exact - floor(price.exact) > 0.5
                  OR (price.exact - floor(price.exact) = 0.5 AND mod(floor(price.exact), 2) = 1)
                THEN floor(price.exact)::bigint + 1
                ELSE floor(price.exact)::bigint END AS amount
      FROM lines_with_tariff line
      CROSS JOIN LATERAL (SELECT line.units * line.rate_krw * {MICRO} AS exact) price
),
split_lines AS (
    -- A recording's line decided per work, while a split gives its musical work a share: its musical work's part.
    SELECT line.*, {musical_work_part_sql("line.amount", "split.musical_work_bp")} AS musical_part
      FROM priced_lines line
      LEFT JOIN split_periods split
             ON line.musical_work_id IS NOT NULL AND line.pre_outcome = {_UNDECIDED}
            AND {outcome_case_sql("line")} IN ({PER_WORK_OUTCOMES_SQL})
            AND split.kind = line.kind AND split.musical_work_bp > 0
            AND split.effective_from <= line.used_at AND (split.until IS NULL OR split.until > line.used_at)
),
sided_lines AS (
    -- One row per line, or per side of a split line: the recording's (the rest of the amount) and the musical
    -- work's (its part), each with its own work's status and verified shares.
    SELECT {_SIDE_COMMON}, work_id, work_status, covered_bp, amount,
           '' AS side, NULL::bigint AS other_work_id
      FROM split_lines WHERE musical_part IS NULL
    UNION ALL
    SELECT {_SIDE_COMMON}, work_id, work_status, covered_bp, amount - musical_part,
           {sql_literal(LineSide.RECORDING)}, musical_work_id
      FROM split_lines WHERE musical_part IS NOT NULL
    UNION ALL
    SELECT {_SIDE_COMMON}, musical_work_id, musical_status, musical_covered_bp, musical_part,
           {sql_literal(LineSide.MUSICAL_WORK)}, work_id
      FROM split_lines WHERE musical_part IS NOT NULL
)
SELECT line.*,
       CASE WHEN line.pre_outcome <> {_UNDECIDED} THEN line.pre_outcome
            ELSE {outcome_case_sql("line")} END AS outcome
  FROM sided_lines line
"""  # noqa: S608

# Largest remainder per matched line, the weights being the verified shares in claim order and then the
# share nobody has verified; the leftover micro-won go to the largest remainders, ties to the lower index.
_SPLIT = f"""
CREATE TEMP TABLE compensation_parts ON COMMIT DROP AS
WITH weights AS (
    SELECT decided.line_no, decided.side, decided.amount, claim.id AS claim_id, claim.holder_id,
           claim.share_bp::bigint AS weight
      FROM compensation_decided decided
      JOIN compensation_claims claim ON claim.work_id = decided.work_id
     WHERE decided.outcome = {SPLIT_OUTCOME_SQL}
    UNION ALL
    SELECT decided.line_no, decided.side, decided.amount, NULL, NULL, ({FULL_SHARE_BP} - decided.covered_bp)::bigint
      FROM compensation_decided decided
     WHERE decided.outcome = {SPLIT_OUTCOME_SQL} AND decided.covered_bp < {FULL_SHARE_BP}
),
weights_with_totals AS (
    -- sum() of bigint is numeric in PostgreSQL; the split is in integers, as in Python.
    SELECT weights.*,
           (sum(weights.weight) OVER (PARTITION BY weights.line_no, weights.side))::bigint AS total_weight,
           count(weights.claim_id) OVER (PARTITION BY weights.line_no, weights.side) AS owners
      FROM weights
),
floor_parts AS (
    SELECT weighted.*, (weighted.amount * weighted.weight) / weighted.total_weight AS floor_part,
           mod(weighted.amount * weighted.weight, weighted.total_weight) AS remainder
      FROM weights_with_totals weighted
),
ranked_parts AS (
    SELECT part.*,
           part.amount - (sum(part.floor_part) OVER (PARTITION BY part.line_no, part.side))::bigint AS leftover,
           row_number() OVER (
               PARTITION BY part.line_no, part.side ORDER BY part.remainder DESC, part.claim_id NULLS LAST
           ) AS place
      FROM floor_parts part
)
SELECT line_no, side, claim_id, holder_id, floor_part + CASE WHEN place <= leftover THEN 1 ELSE 0 END AS part, owners
  FROM ranked_parts
"""  # noqa: S608

# What each line holds, and in which escrow account (kind, key): its id when the account exists, found by one
# index probe per hold whatever the statistics say of the accounts table (a hash of every escrow account, which
# the planner picks when they are stale, costs more than the chunk's holds). Which outcomes hold, in which kind of
# account and keyed by what, is the decision table's.
_HOLDS = f"""
CREATE TEMP TABLE compensation_holds ON COMMIT DROP AS
SELECT holds.*, (
    SELECT account.id FROM compensation_account account
     WHERE account.kind = holds.account_kind AND account.escrow_key = holds.escrow_key AND account.party_id IS NULL
) AS account_id
FROM (
    SELECT decided.line_no, decided.side,
           CASE WHEN decided.outcome = {SPLIT_OUTCOME_SQL} THEN COALESCE(unclaimed_part.part, 0)
                ELSE decided.amount END AS held,
           {held_in_case_sql("decided.outcome")} AS account_kind,
           CASE WHEN decided.outcome IN ({HELD_PER_IDENTIFIER_SQL})
                THEN decided.key_scheme || ':' || decided.key_value
                ELSE 'work:' || decided.work_id END AS escrow_key,
           CASE WHEN decided.outcome = {SPLIT_OUTCOME_SQL} THEN {FULL_SHARE_BP} - decided.covered_bp
                ELSE {FULL_SHARE_BP} END AS open_bp
      FROM compensation_decided decided
      LEFT JOIN compensation_parts unclaimed_part
             ON unclaimed_part.line_no = decided.line_no AND unclaimed_part.side = decided.side
            AND unclaimed_part.claim_id IS NULL
     WHERE decided.outcome IN ({HELD_OUTCOMES_SQL})
) holds
WHERE held > 0
"""  # noqa: S608

# The escrow accounts still missing (an identifier or work held for the first time), then their ids.
_ESCROW_ACCOUNTS = """
INSERT INTO compensation_account (kind, party_id, escrow_key, created_at)
SELECT DISTINCT account_kind, NULL::bigint, escrow_key, %(now)s FROM compensation_holds WHERE account_id IS NULL
ORDER BY 1, 3
ON CONFLICT (kind, escrow_key) WHERE party_id IS NULL DO NOTHING
"""
_ESCROW_ACCOUNT_IDS = """
UPDATE compensation_holds line_hold
   SET account_id = (
       SELECT account.id FROM compensation_account account
        WHERE account.kind = line_hold.account_kind AND account.escrow_key = line_hold.escrow_key
          AND account.party_id IS NULL
   )
 WHERE line_hold.account_id IS NULL
"""

_CREDITS = """
SELECT account_id, -sum(held) FROM compensation_holds WHERE account_id IS NOT NULL GROUP BY account_id
"""

_OWNER_CREDITS = """
SELECT holder_id, -sum(part) FROM compensation_parts WHERE claim_id IS NOT NULL AND part > 0 GROUP BY holder_id
"""

_VIOLATIONS = f"SELECT COALESCE(sum(amount), 0) FROM compensation_decided WHERE outcome IN ({VIOLATION_OUTCOMES_SQL})"  # noqa: S608

_INSERT_LINES = f"""
INSERT INTO compensation_manifestline (
    manifest_id, line_no, scheme, value, key, units, unit, used_at, dedupe, outcome, reason_code, reason,
    work_id, kind, refusal_id, tariff_id, amount_micro, paid_micro, held_micro, violation_micro,
    released_micro, held_account_id, open_bp, hold_open, allocation, entry_id, processed_at, match, distance, side,
    other_work_id
)
SELECT %(manifest)s, decided.line_no, staged.scheme, staged.value,
       CASE WHEN decided.key_scheme = '' THEN '' ELSE decided.key_scheme || ':' || decided.key_value END,
       decided.units, decided.unit, decided.used_at, decided.dedupe, decided.outcome, staged.reason_code,
       staged.reason, decided.work_id, decided.kind, decided.refusal_id, decided.tariff_id, decided.amount,
       COALESCE(sole_owner.part, several_owners.total, 0),
       COALESCE(line_hold.held, 0),
       CASE WHEN decided.outcome IN ({VIOLATION_OUTCOMES_SQL}) THEN COALESCE(decided.amount, 0) ELSE 0 END,
       0,
       line_hold.account_id,
       COALESCE(line_hold.open_bp, 0),
       COALESCE(line_hold.held, 0) > 0,
       CASE WHEN sole_owner.line_no IS NOT NULL
            THEN ('[[' || sole_owner.holder_id || ',' || sole_owner.claim_id || ',' || sole_owner.part || ','
                  || COALESCE(%(entry)s::bigint::text, 'null') || ']]')::jsonb
            ELSE COALESCE(several_owners.allocation, '[]'::jsonb) END,
       CASE WHEN decided.amount IS NULL THEN NULL ELSE %(entry)s::bigint END,
       %(now)s, staged.match, staged.distance, decided.side, decided.other_work_id
  FROM compensation_decided decided
  JOIN compensation_stage staged ON staged.line_no = decided.line_no
  LEFT JOIN compensation_holds line_hold ON line_hold.line_no = decided.line_no AND line_hold.side = decided.side
  -- A line paid to one owner (the common case) is written as it is; the others are aggregated (the same JSON).
  LEFT JOIN compensation_parts sole_owner
         ON sole_owner.line_no = decided.line_no AND sole_owner.side = decided.side
        AND sole_owner.claim_id IS NOT NULL AND sole_owner.owners = 1
  LEFT JOIN (
      SELECT line_no, side, sum(part) AS total,
             jsonb_agg(jsonb_build_array(holder_id, claim_id, part, %(entry)s::bigint) ORDER BY claim_id) AS allocation
        FROM compensation_parts
       WHERE claim_id IS NOT NULL AND owners > 1
       GROUP BY line_no, side
  ) several_owners ON several_owners.line_no = decided.line_no AND several_owners.side = decided.side
 ORDER BY decided.line_no, decided.side
"""  # noqa: S608


@dataclass(frozen=True)
class StagedChunk:
    """A chunk of parsed lines as the staging table's ``COPY`` text, made where the parsing ran (see
    ``compensation.usage``): compact to hand from process to process, and ready to send."""

    engine: ClassVar[str] = "sql"
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
    pre_outcome = Outcome.DUPLICATE.value if duplicate else "" if valid else Outcome.INVALID.value
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
                _copy_text(line.kind),
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


def _similar_restage(cursor: Any, purpose: str) -> None:
    """Point each staged ISCC line at the identifier that decides it (``optout.similar``, the rule the Python
    engine applies too), and note how it matched; the statements below then decide it as that identifier."""
    cursor.execute(
        f"SELECT line_no, key_value, used_at FROM compensation_stage "  # noqa: S608
        f"WHERE key_scheme = {sql_literal(Scheme.ISCC)} AND pre_outcome = {_UNDECIDED} AND used_at IS NOT NULL"
    )
    staged = cursor.fetchall()
    if not staged:
        return
    found = usage_similar_resolve(
        lines=[(IdentifierKey(scheme=Scheme.ISCC, value=value), used_at) for _no, value, used_at in staged],
        purpose=purpose,
    )
    cursor.executemany(
        "UPDATE compensation_stage SET key_scheme = %s, key_value = %s, match = %s, distance = %s WHERE line_no = %s",
        [
            (matched.key.scheme, matched.key.value, matched.match, matched.distance, line_no)
            for (line_no, _value, _used_at), matched in zip(staged, found, strict=True)
        ],
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
        _similar_restage(cursor, manifest.purpose)
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
