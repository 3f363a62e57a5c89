"""Usage manifests: submission, processing into outcomes and ledger postings, and re-pricing.

Processing reads the stored lines in chunks, parsed one chunk ahead (in a process of its own when the
manifest has more than a chunk left, otherwise in a thread). Per chunk, in one
transaction: the identifiers are matched to works, each line is decided by the refusal status at its
``used_at`` for the manifest's purpose, priced with the tariff in force then, split among the verified
owners by share (largest remainder, so the parts sum exactly; a recording's use shared with its musical work by a
recording split first divided into two sides, each a row of its own), its outcome row is written, and one balanced
ledger entry is posted for the whole chunk, its lines summed per account. Each line is decided by the usage
decision table (``compensation.usage.decisions``), by one of two engines behind one seam (``UsageEngine``, chosen
by ``usage_engine_for``): on PostgreSQL set-based SQL over a staging table (``compensation.usage.sql``),
elsewhere ``_line_decide`` below, line by line in Python, which re-pricing also uses. The entry's idempotency key is
derived from the manifest and the chunk's line numbers, and the manifest's cursor (``lines_done``)
advances in the same transaction, under a lock: a worker killed anywhere, or a task delivered twice, ends
with the ledger of one clean run.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import io
import itertools
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import IO, Any, ClassVar, Protocol, TypeVar

from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from compensation.errors import ManifestConflict
from compensation.ledger.allocation import allocate_largest_remainder
from compensation.ledger.escrow import escrow_lock
from compensation.ledger.services import AccountKey, Posting, accounts_ensure, ledger_post_entries
from compensation.models import (
    MANIFEST_JOB,
    AccountKind,
    EntryKind,
    LineSide,
    ManifestFormat,
    ManifestLine,
    ManifestStatus,
    Outcome,
    RecordingSplit,
    Tariff,
    UsageManifest,
)
from compensation.notifications import manifest_processed_notify
from compensation.usage.decisions import (
    FULL_SHARE_BP,
    PER_WORK_OUTCOMES,
    LineFacts,
    Rule,
    kind_for_unmatched,
    musical_work_part,
    rule_for,
    tariff_sought,
)
from compensation.usage.manifests import (
    ManifestMeta,
    ParsedLine,
    Record,
    content_hash,
    format_detect,
    is_gzip,
    line_parse,
    lines_as_jsonl,
    manifest_limits,
    meta_clean,
    records_read,
    upload_inspect,
)
from compensation.usage.selectors import manifest_outcome_summary
from compensation.usage.sql import StagedChunk, chunk_settle_sql, stage_line
from core.actors import Actor
from core.errors import InvalidInput, NotPermitted
from core.jobs import job_chunks_process, job_fail, job_finish, job_publish, job_run, jobs_sweep
from core.money import price_micro_scaled, rate_in_pico_won, units_in_micro
from core.prefetch import ProducerFailed, prefetched, prefetched_in_process
from core.uploads import upload_size_check
from optout.models import Regime
from optout.selectors import UsageContext, UsageWork, usage_context_load
from optout.similar import UsageMatch, usage_similar_resolve
from registry.audit import audit_record
from registry.identifiers import IdentifierKey, Scheme
from registry.models import ApiScope, PartyKind, WorkStatus

# --- Submission ---------------------------------------------------------------------------------


def _require_lab(actor: Actor) -> None:
    party = actor.party
    if party is None or party.kind != PartyKind.LAB:
        raise NotPermitted(_("Only an AI lab submits usage manifests."), code="not_a_lab")
    if not actor.has_scope(ApiScope.USAGE_WRITE):
        raise NotPermitted(
            _("This API key lacks the scope “%(scope)s”.") % {"scope": ApiScope.USAGE_WRITE}, code="missing_scope"
        )


def _manifest_store(
    *,
    actor: Actor,
    meta: ManifestMeta,
    file: File[bytes],
    format: str,
    compressed: bool,
    lines: int,
    content_sha256: str,
    original_name: str,
) -> tuple[UsageManifest, bool]:
    assert actor.party is not None
    lab = actor.party
    digest = content_hash(meta, content_sha256)
    existing = UsageManifest.objects.filter(lab=lab, manifest_id=meta.manifest_id).first()
    if existing is not None:
        return _resubmitted(existing, digest), False
    manifest = UsageManifest(
        lab=lab,
        manifest_id=meta.manifest_id,
        model=meta.model,
        model_version=meta.model_version,
        purpose=meta.purpose,
        period_start=meta.period_start,
        period_end=meta.period_end,
        content_hash=digest,
        format=format,
        compressed=compressed,
        original_name=os.path.basename(original_name.replace("\\", "/"))[:255],
        language=translation.get_language() or settings.LANGUAGE_CODE,
        lines_total=lines,
        submitted_by=actor.person,
        api_key=actor.api_key,
    )
    # The storage copies (or, for a large upload, moves) the file; it is never read whole into memory.
    manifest.file.save(f"manifest.{format}", file, save=False)
    try:
        with transaction.atomic():
            # Two submissions of one id at once: the second waits here, then finds the first.
            locked = UsageManifest.objects.select_for_update().filter(lab=lab, manifest_id=meta.manifest_id).first()
            if locked is not None:
                manifest.file.delete(save=False)
                return _resubmitted(locked, digest), False
            manifest.save()
            audit_record(
                code="compensation.manifest.received",
                actor=actor,
                target=manifest,
                data={"manifest_id": meta.manifest_id, "model": meta.model, "lines": lines, "format": format},
            )
            manifest_pk = manifest.pk
            # The outbox: published after commit; if the broker is down, the sweep publishes it later.
            transaction.on_commit(lambda: _enqueue(manifest_pk))
    except BaseException:
        # Only a record that was never committed loses its file (publishing cannot raise into here).
        manifest.file.delete(save=False)
        raise
    return manifest, True


def _resubmitted(existing: UsageManifest, digest: str) -> UsageManifest:
    if existing.content_hash != digest:
        raise ManifestConflict(field="manifest_id", extra={"manifest": existing.pk})
    return existing


def usage_manifest_submit_json(*, actor: Actor, data: Mapping[str, Any]) -> tuple[UsageManifest, bool]:
    """Accept a JSON manifest (up to ``USAGE_MANIFEST_MAX_JSON_LINES`` lines); returns it and whether it is new.

    The same ``manifest_id`` with the same content answers with the first manifest; with other content
    it is a ``manifest_id_conflict``.
    """
    _require_lab(actor)
    meta = meta_clean(data)
    content, _count = lines_as_jsonl(
        data.get("lines"),
        max_lines=settings.USAGE_MANIFEST_MAX_JSON_LINES,
        max_line_bytes=settings.USAGE_MANIFEST_MAX_LINE_BYTES,
    )
    summary = upload_inspect(
        io.BytesIO(content),
        format=ManifestFormat.JSONL,
        compressed=False,
        limits=manifest_limits(max_lines=settings.USAGE_MANIFEST_MAX_JSON_LINES, inspecting=True),
    )
    return _manifest_store(
        actor=actor,
        meta=meta,
        file=ContentFile(content),
        format=ManifestFormat.JSONL,
        compressed=False,
        lines=summary.lines,
        content_sha256=summary.content_sha256,
        original_name="",
    )


def usage_manifest_submit_file(
    *, actor: Actor, fields: Mapping[str, Any], file: File[bytes], filename: str
) -> tuple[UsageManifest, bool]:
    """Accept an uploaded CSV or JSON Lines file, optionally gzip-compressed, of up to
    ``USAGE_MANIFEST_MAX_LINES`` lines, within the ``USAGE_MANIFEST_MAX_*`` byte limits. It is read once here,
    streaming and for at most ``USAGE_MANIFEST_INSPECT_SECONDS``, to check and hash it.
    """
    _require_lab(actor)
    limits = manifest_limits(inspecting=True)
    # Its size as sent first: a file too large is refused before a byte of it is read.
    upload_size_check(file, max_bytes=limits.max_bytes)
    meta = meta_clean(fields)
    format = format_detect(filename=filename, explicit=str(fields.get("format") or ""))
    compressed = is_gzip(file)
    summary = upload_inspect(file, format=format, compressed=compressed, limits=limits)
    return _manifest_store(
        actor=actor,
        meta=meta,
        file=file,
        format=format,
        compressed=compressed,
        lines=summary.lines,
        content_sha256=summary.content_sha256,
        original_name=filename,
    )


def _enqueue(manifest_id: int) -> None:
    # Never raises: a broker that is down leaves the manifest unqueued, for the sweep.
    job_publish(kind=MANIFEST_JOB, job_id=manifest_id)


# --- Deciding lines -----------------------------------------------------------------------------


class _Tariffs:
    """Every tariff, indexed for "the one in force at this instant" by bisection."""

    def __init__(self) -> None:
        starts: dict[tuple[str, str], list[datetime]] = defaultdict(list)
        rows: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
        for pk, kind, unit, rate, effective_from in Tariff.objects.order_by("effective_from", "pk").values_list(
            "pk", "kind", "unit", "rate_krw", "effective_from"
        ):
            starts[(kind, unit)].append(effective_from)
            rows[(kind, unit)].append((pk, rate_in_pico_won(rate)))
        self._starts = dict(starts)
        self._rows = dict(rows)

    def at(self, kind: str, unit: str, at: datetime) -> tuple[int, int] | None:
        """The tariff in force: its id and its rate in pico-won per unit."""
        starts = self._starts.get((kind, unit))
        if not starts:
            return None
        index = bisect.bisect_right(starts, at) - 1
        return self._rows[(kind, unit)][index] if index >= 0 else None


class _Splits:
    """Every recording split, indexed for "the musical work's share in force at this instant" by bisection."""

    def __init__(self) -> None:
        starts: dict[str, list[datetime]] = defaultdict(list)
        shares: dict[str, list[int]] = defaultdict(list)
        for kind, share, effective_from in RecordingSplit.objects.order_by("effective_from", "pk").values_list(
            "kind", "musical_work_bp", "effective_from"
        ):
            starts[kind].append(effective_from)
            shares[kind].append(share)
        self._starts = dict(starts)
        self._shares = dict(shares)

    def at(self, kind: str, at: datetime) -> int:
        """The musical work's share in basis points of a use of a recording of ``kind`` at ``at``; 0 before any."""
        starts = self._starts.get(kind)
        if not starts:
            return 0
        index = bisect.bisect_right(starts, at) - 1
        return self._shares[kind][index] if index >= 0 else 0


@dataclass
class _Row:
    """A decided line (or one side of it): the values of its ``ManifestLine`` before the ledger ids are known."""

    line: ParsedLine
    outcome: str
    dedupe: Any = None
    work_id: int | None = None
    kind: str = ""
    refusal_id: int | None = None
    tariff_id: int | None = None
    amount: int | None = None
    paid: list[tuple[int, int, int]] = field(default_factory=list)  # (holder, claim, micro-won)
    held: int = 0
    held_key: AccountKey | None = None
    open_bp: int = 0
    violation: int = 0
    match: str = ""
    distance: int | None = None
    side: str = LineSide.WHOLE
    other_work_id: int | None = None


def _line_decide(
    line: ParsedLine,
    *,
    lab_id: int,
    context: UsageContext,
    tariffs: _Tariffs,
    splits: _Splits,
    priced_lab: dict[AccountKey, int],
) -> list[_Row]:
    """One line, decided by the usage decision table (``compensation.usage.decisions``), in Python: its row, or for a
    recording split with its musical work, one row per side."""
    assert line.key is not None
    assert line.used_at is not None
    assert line.units is not None
    decision = context.decide(line.key, line.used_at)
    work = decision.work
    kind = work.kind if work is not None else kind_for_unmatched(line.key.scheme, line.kind)
    row = _Row(line=line, outcome=Outcome.UNPRICED, work_id=work.id if work else None, kind=kind)
    row.refusal_id = decision.refusal_id
    refused = decision.refusal_id is not None
    license_only = decision.regime == Regime.LICENSE_REQUIRED
    tariff = (
        tariffs.at(kind, line.unit, line.used_at) if tariff_sought(refused=refused, license_only=license_only) else None
    )
    facts = _work_facts(work)
    rule = rule_for(LineFacts(refused, license_only, tariff is not None, work is not None, *facts))
    row.outcome = rule.outcome
    if tariff is None:
        return [row]
    row.tariff_id, rate_pico = tariff
    amount = price_micro_scaled(units_micro=units_in_micro(line.units), rate_pico=rate_pico)
    row.amount = amount
    if rule.violation:
        row.violation = amount
        _add(priced_lab, AccountKey(AccountKind.VIOLATIONS, lab_id), -amount)
        return [row]
    composition = work.musical_work if work is not None else None
    musical_bp = splits.at(kind, line.used_at) if composition is not None and rule.outcome in PER_WORK_OUTCOMES else 0
    if composition is None or not musical_bp:
        _row_allocate(row, rule, work, amount, priced_lab)
        return [row]
    # A recording's use, shared with its musical work: each side is decided by its own work, from its part.
    assert work is not None
    musical_part = musical_work_part(amount, musical_bp)
    recording = dataclasses.replace(row, side=LineSide.RECORDING, other_work_id=composition.id, paid=[])
    musical = dataclasses.replace(
        row, side=LineSide.MUSICAL_WORK, work_id=composition.id, other_work_id=work.id, paid=[]
    )
    sides = []
    for side_row, side_work, part in ((recording, work, amount - musical_part), (musical, composition, musical_part)):
        side_rule = rule_for(LineFacts(False, False, True, True, *_work_facts(side_work)))
        side_row.outcome, side_row.amount = side_rule.outcome, part
        _row_allocate(side_row, side_rule, side_work, part, priced_lab)
        sides.append(side_row)
    return sides


def _work_facts(work: UsageWork | None) -> tuple[bool, int]:
    """Whether ``work`` is disputed, and the shares verified in it now (basis points)."""
    if work is None:
        return False, 0
    return work.status == WorkStatus.DISPUTED, sum(claim.share_bp for claim in work.verified_claims())


def _row_allocate(
    row: _Row, rule: Rule, work: UsageWork | None, amount: int, priced_lab: dict[AccountKey, int]
) -> None:
    """Pay ``amount`` of ``row`` to ``work``'s verified owners by share and hold the rest, as ``rule`` says."""
    held, open_bp = amount, FULL_SHARE_BP
    if rule.split:
        assert work is not None
        owners = work.verified_claims()
        covered = sum(claim.share_bp for claim in owners)
        weights = [claim.share_bp for claim in owners]
        if covered < FULL_SHARE_BP:
            weights.append(FULL_SHARE_BP - covered)
        # One owner of the whole work is the common case: its part is the amount.
        parts = [amount] if len(weights) == 1 else allocate_largest_remainder(total=amount, weights=weights)
        for claim, part in zip(owners, parts, strict=False):
            # A part that rounds to nothing is recorded too: that owner has had its share of this line,
            # and a later release must not pay it again.
            row.paid.append((claim.holder_id, claim.id, part))
            if part:
                _add(priced_lab, AccountKey(AccountKind.HOLDER_PAYABLE, claim.holder_id), -part)
        held = parts[-1] if covered < FULL_SHARE_BP else 0
        open_bp = FULL_SHARE_BP - covered
    # A hold exists only for money actually held: a part that rounds to nothing holds nothing.
    if held > 0:
        held_for = str(row.line.key) if rule.held_per == "identifier" else f"work:{row.work_id}"
        row.held, row.open_bp, row.held_key = held, open_bp, AccountKey(rule.held_in, None, held_for)
        _add(priced_lab, row.held_key, -held)


def _add(sums: dict[AccountKey, int], key: AccountKey, amount: int) -> None:
    sums[key] = sums.get(key, 0) + amount


@dataclass
class _Decided:
    rows: list[_Row]
    credits: dict[AccountKey, int]


def _pre_outcomes(lines: Sequence[ParsedLine], seen: set[Any]) -> list[str]:
    """``invalid``, ``duplicate`` or "" (to be decided) per line; ``seen`` holds the dedupe keys of
    earlier lines and grows with these: the first report of a use counts, its repetitions do not."""
    outcomes: list[str] = []
    for line in lines:
        if not line.valid:
            outcomes.append(Outcome.INVALID.value)
            continue
        dedupe = line.dedupe
        if dedupe is not None:
            if dedupe in seen:
                outcomes.append(Outcome.DUPLICATE.value)
                continue
            seen.add(dedupe)
        outcomes.append("")
    return outcomes


def _lines_decide(manifest: UsageManifest, lines: Sequence[ParsedLine], seen: set[Any]) -> _Decided:
    """Outcomes for ``lines`` decided in Python (the Python engine, and re-pricing); the SQL engine decides alike."""
    pre = _pre_outcomes(lines, seen)
    lines, matches = _similar_resolve(manifest, lines, pre)
    keys = {line.key for line, outcome in zip(lines, pre, strict=True) if not outcome and line.key is not None}
    context = usage_context_load(keys=keys, purpose=manifest.purpose)
    tariffs, splits = _Tariffs(), _Splits()
    credits: dict[AccountKey, int] = {}
    rows: list[_Row] = []
    for line, outcome in zip(lines, pre, strict=True):
        if outcome:
            rows.append(_Row(line=line, outcome=outcome, dedupe=line.dedupe if outcome == Outcome.DUPLICATE else None))
            continue
        decided = _line_decide(
            line, lab_id=manifest.lab_id, context=context, tariffs=tariffs, splits=splits, priced_lab=credits
        )
        matched = matches.get(line.line_no)
        for row in decided:
            row.dedupe = line.dedupe
            if matched is not None:
                row.match, row.distance = matched.match, matched.distance
        rows.extend(decided)
    return _Decided(rows=rows, credits=credits)


def _similar_resolve(
    manifest: UsageManifest, lines: Sequence[ParsedLine], pre: Sequence[str]
) -> tuple[list[ParsedLine], dict[int, UsageMatch]]:
    """The lines with each ISCC line's key replaced by the identifier that decides it (``optout.similar``),
    and how each ISCC line matched, by line number."""
    positions = [
        index
        for index, (line, outcome) in enumerate(zip(lines, pre, strict=True))
        if not outcome and line.key is not None and line.key.scheme == Scheme.ISCC and line.used_at is not None
    ]
    resolved = list(lines)
    if not positions:
        return resolved, {}
    asked = [(lines[i].key, lines[i].used_at) for i in positions]
    found = usage_similar_resolve(
        lines=[(key, used_at) for key, used_at in asked if key is not None and used_at is not None],
        purpose=manifest.purpose,
    )
    matches: dict[int, UsageMatch] = {}
    for index, matched in zip(positions, found, strict=True):
        resolved[index] = dataclasses.replace(lines[index], key=matched.key)
        matches[lines[index].line_no] = matched
    return resolved, matches


def _posting_for(
    manifest: UsageManifest, decided: _Decided, idempotency_key: str, effective_at: datetime, memo: str
) -> tuple[Posting | None, dict[AccountKey, int]]:
    credits = {key: amount for key, amount in decided.credits.items() if amount}
    held_keys = {row.held_key for row in decided.rows if row.held_key is not None}
    lab_key = AccountKey(AccountKind.LAB_RECEIVABLE, manifest.lab_id)
    accounts = accounts_ensure(keys=[lab_key, *credits, *held_keys])
    ids = {key: account.pk for key, account in accounts.items()}
    total = -sum(credits.values())
    if not total:
        return None, ids
    lines = [(ids[lab_key], total), *((ids[key], amount) for key, amount in sorted(credits.items()))]
    source = {"manifest": manifest.pk, "manifest_id": manifest.manifest_id, "lines": memo}
    posting = Posting(
        idempotency_key=idempotency_key,
        kind=EntryKind.ACCRUAL,
        effective_at=effective_at,
        lines=lines,
        memo=f"{manifest.manifest_id} {memo}",
        source=source,
    )
    return posting, ids


# --- Writing outcome rows -------------------------------------------------------------------------

_LINE_COLUMNS = (
    "manifest_id",
    "line_no",
    "scheme",
    "value",
    "key",
    "units",
    "unit",
    "used_at",
    "dedupe",
    "outcome",
    "reason_code",
    "reason",
    "work_id",
    "kind",
    "refusal_id",
    "tariff_id",
    "amount_micro",
    "paid_micro",
    "held_micro",
    "violation_micro",
    "released_micro",
    "held_account_id",
    "open_bp",
    "hold_open",
    "allocation",
    "entry_id",
    "processed_at",
    "match",
    "distance",
    "side",
    "other_work_id",
)


def _line_values(
    manifest_pk: int, row: _Row, account_ids: Mapping[AccountKey, int], entry_id: int | None, now: datetime
) -> tuple[Any, ...]:
    line = row.line
    priced = row.amount is not None
    held_account = account_ids[row.held_key] if row.held_key is not None else None
    return (
        manifest_pk,
        line.line_no,
        line.scheme,
        line.value,
        str(line.key) if line.key is not None else "",
        line.units,
        line.unit,
        line.used_at,
        row.dedupe,
        row.outcome,
        line.error_code,
        line.error_message,
        row.work_id,
        row.kind,
        row.refusal_id,
        row.tariff_id,
        row.amount,
        sum(part for _h, _c, part in row.paid),
        row.held,
        row.violation,
        0,
        held_account,
        row.open_bp,
        bool(row.held),
        [[holder, claim, part, entry_id] for holder, claim, part in row.paid] if priced else [],
        entry_id if priced else None,
        now,
        row.match,
        row.distance,
        row.side,
        row.other_work_id,
    )


def _lines_insert(values: list[tuple[Any, ...]]) -> None:
    if values:
        ManifestLine.objects.bulk_create(
            [ManifestLine(**dict(zip(_LINE_COLUMNS, row, strict=True))) for row in values], batch_size=500
        )


def _seen_earlier(manifest_pk: int, dedupes: Iterable[Any]) -> set[Any]:
    """The dedupe keys among ``dedupes`` that earlier chunks of the manifest already accounted for."""
    wanted = {d for d in dedupes if d is not None}
    if not wanted:
        return set()
    earlier = ManifestLine.objects.filter(manifest_id=manifest_pk).exclude(outcome=Outcome.DUPLICATE)
    found: set[Any] = set()
    ordered = sorted(wanted)
    for start in range(0, len(ordered), 500):
        found.update(earlier.filter(dedupe__in=ordered[start : start + 500]).values_list("dedupe", flat=True))
    return found


# --- Processing -----------------------------------------------------------------------------------


def _stored_records(manifest: UsageManifest, binary: IO[bytes]) -> Iterator[Record]:
    return records_read(binary, format=manifest.format, compressed=manifest.compressed)


def usage_manifest_process(*, manifest_id: int, engine: str | None = None) -> None:
    """Process a manifest's lines after its cursor, chunk by chunk; safe to run again, concurrently, or
    after a crash at any point.

    ``engine`` is ``sql`` (set-based, PostgreSQL's default) or ``python`` (SQLite's, and the reference the
    SQL is tested against).
    """
    # Claimed (or left to the worker whose heartbeat is fresh), heartbeating, and failed with a code on any
    # exception: the shared lifecycle. A claimed manifest resumes after its cursor.
    job_run(kind=MANIFEST_JOB, job_id=manifest_id, work=lambda manifest: _manifest_process(manifest, engine))


def _manifest_process(manifest: UsageManifest, engine: str | None) -> None:
    chosen = usage_engine_for(connection) if engine is None else USAGE_ENGINES[engine]
    sizes = _ChunkSizes(settings.USAGE_CHUNK_LINES, settings.USAGE_FIRST_CHUNK_LINES)
    try:
        with chosen.chunks(manifest, manifest.lines_done, sizes) as chunks:
            settle = partial(_chunk_settle, manifest)
            if not job_chunks_process(kind=MANIFEST_JOB, job=manifest, chunks=chunks, size=_count, apply=settle):
                return  # another worker has taken the manifest over
    except InvalidInput as exc:
        # The file was readable when it was accepted; if it no longer is, say so on the manifest.
        _manifest_end(manifest, status=ManifestStatus.FAILED, code=exc.code, reason=str(exc.message))
        return
    except ProducerFailed as exc:
        # The parsing process's error, by name: a domain error (the file no longer reads) is the owner's to see.
        domain = exc.registry_error()
        if domain is not None:
            _manifest_end(manifest, status=ManifestStatus.FAILED, code=domain.code, reason=str(domain.message))
            return
        if exc.kind == FileNotFoundError.__name__:
            raise FileNotFoundError(exc.message) from exc
        raise
    _manifest_end(manifest, status=ManifestStatus.PROCESSED)


@contextmanager
def _prefetched_call(produce: Callable[[], Iterator[StagedChunk]]) -> Iterator[Iterator[StagedChunk]]:
    with prefetched(produce()) as items:
        yield items


def _parsed_lines(manifest: UsageManifest, start: int) -> Iterator[ParsedLine]:
    """The manifest's lines after the first ``start``, read from its file and parsed, streaming."""
    with manifest.file.storage.open(manifest.file.name or "", "rb") as binary:
        for record in itertools.islice(_stored_records(manifest, binary), start, None):
            yield line_parse(
                record,
                period_start=manifest.period_start,
                period_end=manifest.period_end,
                received_at=manifest.created_at,
            )


@dataclass(frozen=True)
class _ChunkSizes:
    """How many lines each chunk takes: ``size``, except that a manifest's first chunks grow from ``first``,
    doubling, so that the database starts on a small chunk while the next is parsed, rather than waiting for a
    whole large chunk to be parsed first.

    A function of the cursor alone, so a resumed or redelivered task cuts the rest of the manifest where a clean
    run would, and posts the same entries under the same idempotency keys.
    """

    size: int
    first: int

    def at(self, cursor: int) -> int:
        return min(self.size, max(self.first, cursor))


@dataclass(frozen=True)
class _ParsedChunk:
    """A chunk of parsed lines, for the Python engine."""

    engine: ClassVar[str] = "python"
    lines: list[ParsedLine]

    @property
    def first(self) -> int:
        return self.lines[0].line_no

    @property
    def last(self) -> int:
        return self.lines[-1].line_no

    @property
    def count(self) -> int:
        return len(self.lines)


def _parsed_chunks(manifest: UsageManifest, start: int, sizes: _ChunkSizes) -> Iterator[_ParsedChunk]:
    lines = _parsed_lines(manifest, start)
    while chunk := list(itertools.islice(lines, sizes.at(start))):
        yield _ParsedChunk(chunk)
        start += len(chunk)


def _staged_chunks(manifest: UsageManifest, start: int, sizes: _ChunkSizes) -> Iterator[StagedChunk]:
    """The chunks after the first ``start`` lines as staging ``COPY`` text; no parsed line is kept."""
    # Reasons are written in the default language, as by a fresh thread (a forked process inherits the
    # language active in the thread that forked it).
    translation.deactivate()
    lines = _parsed_lines(manifest, start)
    while True:
        # Strings and ints only: a chunk's worth of tuples keeps the garbage collector busy.
        texts: list[str] = []
        keys: list[str] = []
        first = last = 0
        seen: set[int] = set()  # this chunk's dedupe keys; the earlier chunks' are in the database
        for line in itertools.islice(lines, sizes.at(start)):
            if not texts:
                first = line.line_no
            last = line.line_no
            dedupe = line.dedupe.int if line.dedupe is not None else None
            duplicate = dedupe is not None and dedupe in seen
            if dedupe is not None:
                seen.add(dedupe)
            key = line.key
            keys.append(f"{key.scheme}\0{key.value}" if key is not None else "")
            texts.append(stage_line(line, duplicate=duplicate))
        if not texts:
            return
        # In identifier order: the database probes the identifiers in the order it receives the lines.
        order = sorted(range(len(texts)), key=keys.__getitem__)
        payload = "".join([texts[index] for index in order]).encode()
        start += len(texts)
        yield StagedChunk(first=first, last=last, count=len(texts), payload=payload)


# --- The engines: the seam between the databases --------------------------------------------------------------


class UsageChunk(Protocol):
    """A chunk of a manifest's lines: its first and last line numbers, how many lines it has, and the name of the
    engine that made it (and settles it)."""

    engine: ClassVar[str]

    @property
    def first(self) -> int: ...

    @property
    def last(self) -> int: ...

    @property
    def count(self) -> int: ...


ChunkT = TypeVar("ChunkT", bound=UsageChunk)


class UsageEngine(Protocol[ChunkT]):
    """Processes a manifest by the usage decision table (``compensation.usage.decisions``); the one seam between
    PostgreSQL and SQLite for manifests.

    ``chunks`` gives the chunks after the first ``cursor`` lines (produced ahead of the caller); ``chunk_settle``
    decides one chunk, posts its ledger entry under ``idempotency_key`` and writes its outcome rows, inside the
    caller's transaction, which holds the manifest's lock and has checked that its first ``lines_done`` lines are
    those before the chunk. ``usage_engine_for`` chooses the database's own; ``usage_engines`` lists every engine
    that runs on it, which ``tests/compensation/test_usage_decisions.py`` holds to one table of cases.
    """

    name: str

    def chunks(
        self, manifest: UsageManifest, cursor: int, sizes: _ChunkSizes
    ) -> AbstractContextManager[Iterator[ChunkT]]: ...

    def chunk_settle(
        self, manifest: UsageManifest, chunk: ChunkT, *, lines_done: int, idempotency_key: str, memo: str, now: datetime
    ) -> None: ...


class PythonUsageEngine:
    """Line by line in Python (``_line_decide``), reading and writing through the ORM: every database, and
    SQLite's engine. Re-pricing decides by the same function."""

    name = "python"

    def chunks(
        self, manifest: UsageManifest, cursor: int, sizes: _ChunkSizes
    ) -> AbstractContextManager[Iterator[_ParsedChunk]]:
        return prefetched(_parsed_chunks(manifest, cursor, sizes))

    def chunk_settle(
        self,
        manifest: UsageManifest,
        chunk: _ParsedChunk,
        *,
        lines_done: int,
        idempotency_key: str,
        memo: str,
        now: datetime,
    ) -> None:
        seen = _seen_earlier(manifest.pk, (line.dedupe for line in chunk.lines)) if lines_done else set()
        decided = _lines_decide(manifest, chunk.lines, seen)
        posting, account_ids = _posting_for(manifest, decided, idempotency_key, manifest.created_at, memo)
        entry_id = None
        if posting is not None:
            entry_id = ledger_post_entries(postings=[posting])[posting.idempotency_key]
        _lines_insert([_line_values(manifest.pk, row, account_ids, entry_id, now) for row in decided.rows])


class SqlUsageEngine:
    """Set-based SQL over a staging table (``compensation.usage.sql``): PostgreSQL's engine."""

    name = "sql"

    def chunks(
        self, manifest: UsageManifest, cursor: int, sizes: _ChunkSizes
    ) -> AbstractContextManager[Iterator[StagedChunk]]:
        # Parsing (Python) takes about half as long as the database takes for a chunk: for more than a chunk,
        # it runs in a process of its own, on the other core, one chunk ahead; a small manifest is not worth one.
        many = manifest.lines_total - cursor > sizes.at(cursor)
        prefetch = prefetched_in_process if many else _prefetched_call
        return prefetch(lambda: _staged_chunks(manifest, cursor, sizes))

    def chunk_settle(
        self,
        manifest: UsageManifest,
        chunk: StagedChunk,
        *,
        lines_done: int,
        idempotency_key: str,
        memo: str,
        now: datetime,
    ) -> None:
        chunk_settle_sql(
            manifest=manifest,
            chunk=chunk,
            lines_done=lines_done,
            idempotency_key=idempotency_key,
            effective_at=manifest.created_at,
            memo=memo,
            now=now,
        )


USAGE_ENGINES: dict[str, UsageEngine[Any]] = {"python": PythonUsageEngine(), "sql": SqlUsageEngine()}


def usage_engine_for(connection: BaseDatabaseWrapper) -> UsageEngine[Any]:
    """The engine for ``connection``'s database: the one place manifests ask which database they run on."""
    return USAGE_ENGINES["sql" if connection.vendor == "postgresql" else "python"]


def usage_engines(connection: BaseDatabaseWrapper) -> list[UsageEngine[Any]]:
    """Every engine that runs on ``connection``'s database: the Python engine everywhere, the SQL one on its own."""
    own = usage_engine_for(connection)
    return [USAGE_ENGINES["python"]] if own.name == "python" else [USAGE_ENGINES["python"], own]


def _count(chunk: UsageChunk) -> int:
    return chunk.count


def _chunk_settle(manifest: UsageManifest, cursor: int, chunk: UsageChunk) -> dict[str, Any]:
    """Post one chunk and write its outcome rows, under the manifest's lock once its cursor is checked
    (``job_chunk_commit``, which commits the cursor with them); returns the progress to record. The engine that
    made the chunk settles it."""
    first, last = chunk.first, chunk.last
    escrow_lock(exclusive=False)
    key, memo, now = f"usage:{manifest.pk}:lines:{first}-{last}", f"lines {first}-{last}", timezone.now()
    USAGE_ENGINES[chunk.engine].chunk_settle(
        manifest, chunk, lines_done=cursor, idempotency_key=key, memo=memo, now=now
    )
    now = timezone.now()
    return {"progressed_at": now, "heartbeat_at": now}


def _manifest_end(manifest: UsageManifest, *, status: str, code: str = "", reason: str = "") -> None:
    if status == ManifestStatus.FAILED:
        progress = UsageManifest.objects.filter(pk=manifest.pk).values("lines_total", "lines_done").first()
        job_fail(kind=MANIFEST_JOB, job_id=manifest.pk, code=code, message=reason, audit_data=dict(progress or {}))
        return
    with transaction.atomic():
        if not job_finish(kind=MANIFEST_JOB, job_id=manifest.pk):
            return
        UsageManifest.objects.filter(pk=manifest.pk).update(summary=manifest_outcome_summary(manifest=manifest))
        manifest.refresh_from_db()
        audit_record(
            code="compensation.manifest.processed",
            actor=Actor.system(),
            target=manifest,
            data={"lines_total": manifest.lines_total, "lines_done": manifest.lines_done},
        )
        manifest_processed_notify(manifest=manifest)


def usage_manifests_resume_stalled(*, older_than_minutes: float | None = None) -> int:
    """Publish the manifests the broker never took and queue again those whose worker died: their heartbeat
    (refreshed per chunk and while a chunk runs) is older than ``older_than_minutes``, by default
    ``JOB_STALE_SECONDS``. The every-minute ``jobs_sweep`` does this for every kind of job.

    Safe even if one is still running: the chunk lock and cursor check let one worker commit each chunk.
    """
    stale_seconds = None if older_than_minutes is None else older_than_minutes * 60
    return jobs_sweep(kinds=[MANIFEST_JOB], stale_seconds=stale_seconds)


# --- Re-pricing -----------------------------------------------------------------------------------


def _parsed_from_row(row: ManifestLine) -> ParsedLine:
    scheme, _sep, value = row.key.partition(":")
    return ParsedLine(
        row.line_no,
        row.scheme,
        row.value,
        IdentifierKey(scheme, value),
        row.units,
        row.unit,
        row.used_at,
        dedupe=row.dedupe,
    )


def usage_reprice(*, tariff_id: int, batch: int = 5_000) -> int:
    """Price the lines recorded without a tariff that ``tariff`` now covers; returns how many were priced.

    Each line is decided again as at its ``used_at`` (a work may have been registered since) and posted
    once: the rows are locked and only lines still without a tariff are taken.
    """
    tariff = Tariff.objects.filter(pk=tariff_id).first()
    if tariff is None:
        return 0
    lines = Q(kind=tariff.kind, unit=tariff.unit, used_at__gte=tariff.effective_from)
    return _reprice_pages(lines, batch, lambda rows: _reprice_group(rows, tariff))


def _reprice_pages(lines: Q, batch: int, reprice: Callable[[list[ManifestLine]], int]) -> int:
    """Re-price the unpriced ``lines`` a batch and a manifest at a time; returns how many were priced.

    Batches follow (manifest, line): a line decided now as another kind stays without a tariff, and is
    passed over rather than taken again (which once ended re-pricing at a batch of such lines).
    """
    priced = 0
    after = Q()
    while True:
        with transaction.atomic():
            escrow_lock(exclusive=False)
            rows = list(
                ManifestLine.objects.select_for_update(of=("self",))
                .select_related("manifest")
                .filter(lines, after, tariff__isnull=True, outcome__in=[Outcome.UNPRICED, Outcome.REFUSED_AT_USE])
                .order_by("manifest_id", "line_no")[:batch]
            )
            if not rows:
                return priced
            for manifest_pk, group in itertools.groupby(rows, key=lambda r: r.manifest_id):
                priced += reprice(list(group))
                UsageManifest.objects.filter(pk=manifest_pk).update(summary=None)
            last = rows[-1]
            after = Q(manifest_id__gt=last.manifest_id) | Q(manifest_id=last.manifest_id, line_no__gt=last.line_no)


_REPRICED_COLUMNS = (
    "outcome",
    "work_id",
    "kind",
    "refusal_id",
    "tariff_id",
    "amount_micro",
    "paid_micro",
    "held_micro",
    "violation_micro",
    "held_account_id",
    "open_bp",
    "hold_open",
    "allocation",
    "entry_id",
    "processed_at",
    "side",
    "other_work_id",
)


def _reprice_group(
    rows: list[ManifestLine], tariff: Tariff | None = None, *, reason: str = "", keep_unpriced: bool = False
) -> int:
    """Decide ``rows`` of one manifest again now and post what is priced now; returns how many were priced.

    Re-pricing for a tariff leaves a line still without one as it was; re-pricing for a registration
    (``keep_unpriced``) records what the line names now even when it stays unpriced, so that a tariff for
    that kind finds it later.
    """
    manifest = rows[0].manifest
    decided = _lines_decide(manifest, [_parsed_from_row(row) for row in rows], set())
    now = timezone.now()
    first, last = rows[0].line_no, rows[-1].line_no
    cause = f"tariff {tariff.pk}" if tariff is not None else reason
    posting, account_ids = _posting_for(
        manifest,
        decided,
        f"usage:{manifest.pk}:reprice:{tariff.pk if tariff is not None else reason}:{first}-{last}",
        now,
        f"lines {first}-{last} repriced ({cause})",
    )
    entry_id = ledger_post_entries(postings=[posting])[posting.idempotency_key] if posting is not None else None
    changed = 0
    # A recording's line split with its musical work is decided as two rows now: the first takes the row's place.
    sides: dict[int, list[_Row]] = defaultdict(list)
    for new in decided.rows:
        sides[new.line.line_no].append(new)
    added: list[tuple[Any, ...]] = []
    for row in rows:
        new, *more = sides[row.line_no]
        if new.amount is None and not keep_unpriced:
            continue  # still no tariff for it (another kind or unit decided now)
        values = dict(zip(_LINE_COLUMNS, _line_values(manifest.pk, new, account_ids, entry_id, now), strict=True))
        for name in _REPRICED_COLUMNS:
            setattr(row, name, values[name])
        row.save(update_fields=_REPRICED_COLUMNS)
        changed += new.amount is not None
        added.extend(_line_values(manifest.pk, other, account_ids, entry_id, now) for other in more)
    _lines_insert(added)
    return changed


def usage_reprice_keys(*, keys: Iterable[str], batch: int = 5_000) -> int:
    """Decide again the lines recorded without a tariff whose identifiers were just registered as works.

    A use of an identifier nobody had registered is priced by its scheme's kind; once a work of another kind
    names it, the tariffs of that kind apply. Lines priced now are posted once (the rows are locked and only
    lines still without a tariff are taken); the others now carry the work's kind for a later tariff.
    """
    wanted = sorted(set(keys))
    if not wanted:
        return 0
    reason = "registered " + hashlib.sha256("\n".join(wanted).encode()).hexdigest()[:16]
    return _reprice_pages(
        Q(key__in=wanted), batch, lambda rows: _reprice_group(rows, reason=reason, keep_unpriced=True)
    )
