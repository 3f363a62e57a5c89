"""The usage decision table: what becomes of a manifest line, and where its money goes.

Written once, here, and read by both engines (``usage_engine_for`` in ``compensation.usage.services``): the Python
engine (``_line_decide``) walks ``DECISION_TABLE`` line by line (``rule_for``), and the SQL engine's CASE
expressions (``compensation.usage.sql``) are generated from it (``outcome_case_sql``, ``tariff_sought_sql``,
``held_in_case_sql`` and the constants below). ``tests/compensation/test_usage_decisions.py``
holds every engine to one table of cases.

Before the table, a line that does not parse is ``invalid`` and a repeat of a use the manifest already reported
(its dedupe key) is ``duplicate``; neither is priced. Every other line is decided as at its ``used_at`` (ledger
invariant 5: eligibility is the status at use, never today's): its identifier names a work or none; the refusal
that decides is the lookup's (``optout.selectors``: a work's own refusal or a co-owner's catalogue refusal, by an
owner verified by then, or the longest URL prefix of a domain verified by then; the earliest effective decides);
the regime is the work's kind's then; the tariff is the one in force then for the kind (the work's, or the one
the identifier's scheme names, ``SCHEME_KIND``) and the line's unit. The first row whose condition holds decides:

=====  =====================================  ==================  =======  =====================================
row    condition (at ``used_at``)             outcome             priced   its amount is credited to
=====  =====================================  ==================  =======  =====================================
1      a refusal decides                      refused_at_use      if a     the lab's ``violations``
                                                                  tariff
2      the work's kind is licence-only        license_required    no       nothing
3      no tariff in force                     unpriced            no       nothing (re-priced by a later tariff)
4      no work has the identifier             unmatched_held      yes      ``escrow_unmatched``, per identifier
5      the work is disputed                   disputed_held       yes      ``escrow_disputed``, per work
6      no owner's claim is verified           share_unclaimed     yes      ``escrow_unclaimed``, per work
7      otherwise                              matched             yes      each verified owner's
                                                                           ``holder_payable`` by share; the share
                                                                           nobody verified to
                                                                           ``escrow_unclaimed``, per work
=====  =====================================  ==================  =======  =====================================

A recording names its musical work (``registry.Work.musical_work``), and the refusals of that musical work (its own,
and its verified owners' catalogue refusals) count for row 1 too, as in lookups; a refusal of the recording never
refuses the musical work. A line of rows 5 to 7 that uses a recording naming a musical work, while a recording split
(``RecordingSplit``) gives the musical work a share, is two rows, one per side: the amount is divided first
(``musical_work_part``: the musical work's share rounded to the nearest micro-won, an exact half to the recording;
the recording gets the rest, so the sides sum to the amount), and each side is then decided by rows 5 to 7 with its
own work's status and verified shares, and held per its own work.

Who the owners are (rows 6 and 7, and the split) is decided when the line is processed: the claims verified
then, whoever was verified at ``used_at``. The lab's ``lab_receivable`` is debited what the lines credit. A price
is ``units * rate`` in micro-won, rounded half-even once per line; a matched line is split by the
largest-remainder method over the verified shares in claim order and then the unverified share (ties to the lower
claim id, the unverified share last), so its parts sum exactly. A part that rounds to nothing is still recorded
for its owner; a hold exists only for money held.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from compensation.models import AccountKind, Outcome
from core.sql import sql_literal, sql_literals
from optout.models import Regime
from registry.identifiers import Scheme
from registry.models import WorkKind, WorkStatus

FULL_SHARE_BP = 10_000

# The tariff of a line whose identifier matches no work is that of the kind the line names (its optional ``kind``),
# else of the kind its scheme names; schemes that name no kind (a hash, a content code) are priced as "other". A URL
# is priced as text: scraped web pages are overwhelmingly text, reported in tokens, and a lab that used images or
# video from the web says so with the line's ``kind`` (README, "Canonical URLs").
SCHEME_KIND: Mapping[str, str] = {
    Scheme.URL: WorkKind.TEXT,
    Scheme.ISBN: WorkKind.TEXT,
    Scheme.ISSN: WorkKind.TEXT,
    Scheme.DOI: WorkKind.TEXT,
    Scheme.ISMN: WorkKind.AUDIO,
    Scheme.ISRC: WorkKind.AUDIO,
    Scheme.ISWC: WorkKind.AUDIO,
    Scheme.ISAN: WorkKind.VIDEO,
}


def kind_for_unmatched(scheme: str, line_kind: str = "") -> str:
    """The kind an identifier no work has is priced as: the line's own ``kind``, else its scheme's."""
    return line_kind or str(SCHEME_KIND.get(scheme, WorkKind.OTHER))


class LineFacts(NamedTuple):
    """What the table's conditions read about a line, as at its ``used_at``."""

    refused: bool
    license_only: bool
    priced: bool
    matched: bool  # a work has the identifier
    disputed: bool
    covered_bp: int  # the verified shares, in basis points


@dataclass(frozen=True)
class Rule:
    """One row of the table."""

    when: str  # the condition's name, in ``CONDITIONS``
    outcome: str
    priced: bool  # whether a line this row decides is priced (looks up a tariff)
    violation: bool = False  # its amount is a violation of the lab's
    held_in: str = ""  # the escrow account kind its held money is credited to
    held_per: str = ""  # what the escrow account is kept per: "identifier" or "work"
    split: bool = False  # its amount is split among the verified owners, the unverified share held


DECISION_TABLE: tuple[Rule, ...] = (
    Rule("refused", Outcome.REFUSED_AT_USE, priced=True, violation=True),
    Rule("license_only", Outcome.LICENSE_REQUIRED, priced=False),
    Rule("no_tariff", Outcome.UNPRICED, priced=False),
    Rule("no_work", Outcome.UNMATCHED_HELD, priced=True, held_in=AccountKind.ESCROW_UNMATCHED, held_per="identifier"),
    Rule("disputed", Outcome.DISPUTED_HELD, priced=True, held_in=AccountKind.ESCROW_DISPUTED, held_per="work"),
    Rule("unclaimed", Outcome.SHARE_UNCLAIMED, priced=True, held_in=AccountKind.ESCROW_UNCLAIMED, held_per="work"),
    Rule("otherwise", Outcome.MATCHED, priced=True, held_in=AccountKind.ESCROW_UNCLAIMED, held_per="work", split=True),
)

# Each condition in both languages, side by side. The SQL reads the columns of one decided line, ``{line}`` being
# its alias: ``refusal_id``, ``regime``, ``tariff_id``, ``work_id``, ``work_status`` and ``covered_bp``.
CONDITIONS: Mapping[str, tuple[Callable[[LineFacts], bool], str]] = {
    "refused": (lambda line: line.refused, "{line}.refusal_id IS NOT NULL"),
    "license_only": (
        lambda line: line.license_only,
        f"{{line}}.regime = {sql_literal(Regime.LICENSE_REQUIRED)}",
    ),
    "no_tariff": (lambda line: not line.priced, "{line}.tariff_id IS NULL"),
    "no_work": (lambda line: not line.matched, "{line}.work_id IS NULL"),
    "disputed": (lambda line: line.disputed, f"{{line}}.work_status = {sql_literal(WorkStatus.DISPUTED)}"),
    "unclaimed": (lambda line: line.covered_bp == 0, "{line}.covered_bp = 0"),
    "otherwise": (lambda line: True, "TRUE"),
}
assert [rule.when for rule in DECISION_TABLE] == list(CONDITIONS), "every row has one condition, in table order"

_CHECKS = [(CONDITIONS[rule.when][0], rule) for rule in DECISION_TABLE]
# The rows decided before the tariff is known: whether a line is priced at all is theirs to say.
_BEFORE_TARIFF = _CHECKS[: [rule.when for rule in DECISION_TABLE].index("no_tariff")]
RULE_BY_OUTCOME: Mapping[str, Rule] = {rule.outcome: rule for rule in DECISION_TABLE}


def rule_for(line: LineFacts) -> Rule:
    """The first row of the table whose condition holds for ``line``."""
    for holds, rule in _CHECKS:
        if holds(line):
            return rule
    raise AssertionError("the last row holds for every line")


def tariff_sought(*, refused: bool, license_only: bool) -> bool:
    """Whether a line is priced at all: the rows decided before the tariff is known say so; after them, it is."""
    line = LineFacts(
        refused=refused, license_only=license_only, priced=True, matched=True, disputed=False, covered_bp=0
    )
    for holds, rule in _BEFORE_TARIFF:
        if holds(line):
            return rule.priced
    return True


# --- The table as SQL, for the set-based engine ---------------------------------------------------------


def outcome_case_sql(line: str) -> str:
    """``CASE`` giving the outcome of the decided line aliased ``line`` (after its pre-outcome)."""
    branches = " ".join(
        f"WHEN {CONDITIONS[rule.when][1].format(line=line)} THEN {sql_literal(rule.outcome)}"
        for rule in DECISION_TABLE[:-1]
    )
    return f"CASE {branches} ELSE {sql_literal(DECISION_TABLE[-1].outcome)} END"


def tariff_sought_sql(line: str) -> str:
    """Whether the line aliased ``line`` looks up a tariff (see ``tariff_sought``)."""
    branches = " ".join(
        f"WHEN {CONDITIONS[rule.when][1].format(line=line)} THEN {'TRUE' if rule.priced else 'FALSE'}"
        for _holds, rule in _BEFORE_TARIFF
    )
    return f"(CASE {branches} ELSE TRUE END)"


# The rows a line is decided by per work: the only ones a recording's line is divided between its two sides for.
PER_WORK_OUTCOMES = tuple(rule.outcome for rule in DECISION_TABLE if rule.held_per == "work")


def musical_work_part(amount: int, musical_work_bp: int) -> int:
    """The musical work's part of a recording's use of ``amount`` micro-won: ``musical_work_bp`` of it, rounded to the
    nearest micro-won, an exact half to the recording (the largest-remainder rule for two parts, ties to the first,
    the recording). The recording's part is ``amount`` minus this."""
    return (amount * musical_work_bp + FULL_SHARE_BP // 2 - 1) // FULL_SHARE_BP


def musical_work_part_sql(amount: str, musical_work_bp: str) -> str:
    """``musical_work_part`` in SQL, over integer expressions."""
    return f"(({amount}) * ({musical_work_bp}) + {FULL_SHARE_BP // 2 - 1}) / {FULL_SHARE_BP}"


(SPLIT_OUTCOME,) = (rule.outcome for rule in DECISION_TABLE if rule.split)
SPLIT_OUTCOME_SQL = sql_literal(SPLIT_OUTCOME)
PER_WORK_OUTCOMES_SQL = sql_literals(PER_WORK_OUTCOMES)
HELD_OUTCOMES_SQL = sql_literals(rule.outcome for rule in DECISION_TABLE if rule.held_in)
HELD_PER_IDENTIFIER_SQL = sql_literals(rule.outcome for rule in DECISION_TABLE if rule.held_per == "identifier")
VIOLATION_OUTCOMES_SQL = sql_literals(rule.outcome for rule in DECISION_TABLE if rule.violation)


def held_in_case_sql(outcome: str) -> str:
    """``CASE`` giving the escrow account kind the held money of a line with outcome ``outcome`` goes to."""
    branches = " ".join(
        f"WHEN {sql_literal(rule.outcome)} THEN {sql_literal(rule.held_in)}" for rule in DECISION_TABLE if rule.held_in
    )
    return f"CASE {outcome} {branches} END"
