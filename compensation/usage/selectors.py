"""Reads of usage: tariffs in force, manifests and their outcomes, violations."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Count, Q, QuerySet, Sum
from django.utils.translation import gettext_lazy as _

from compensation.models import (
    USE_ROW,
    ManifestLine,
    ManifestStatus,
    Outcome,
    RecordingSplit,
    Tariff,
    UsageManifest,
)
from compensation.usage.manifests import line_reason
from core.actors import Actor
from core.errors import NotFound
from registry.models import ClaimStatus, OwnershipClaim, PartyKind

# --- Tariffs -------------------------------------------------------------------------------


def tariff_list(*, kind: str | None = None, unit: str | None = None) -> QuerySet[Tariff]:
    tariffs = Tariff.objects.select_related("created_by")
    if kind:
        tariffs = tariffs.filter(kind=kind)
    if unit:
        tariffs = tariffs.filter(unit=unit)
    return tariffs.order_by("kind", "unit", "-effective_from", "-id")


def recording_split_list(*, kind: str | None = None) -> QuerySet[RecordingSplit]:
    """Every recording split, past and future, latest first per kind."""
    splits = RecordingSplit.objects.select_related("created_by")
    if kind:
        splits = splits.filter(kind=kind)
    return splits.order_by("kind", "-effective_from", "-id")


def _pairs_filter(pairs: Iterable[tuple[str, str]]) -> Q:
    condition = Q(pk__in=[])
    for kind, unit in set(pairs):
        condition |= Q(kind=kind, unit=unit)
    return condition


def tariffs_in_force(*, pairs: Iterable[tuple[str, str]], at: datetime) -> dict[tuple[str, str], Tariff]:
    """For each ``(work kind, unit)``, the tariff in force at ``at`` (the latest started at or before it).

    One query; a pair without a tariff in force is absent (its uses are unpriced, never free).
    """
    in_force: dict[tuple[str, str], Tariff] = {}
    for tariff in Tariff.objects.filter(_pairs_filter(pairs), effective_from__lte=at).order_by(
        "kind", "unit", "-effective_from"
    ):
        in_force.setdefault((tariff.kind, tariff.unit), tariff)
    return in_force


@dataclass(frozen=True)
class TariffSchedule:
    """Every tariff of some pairs, for pricing many uses at different instants without more queries."""

    starts: dict[tuple[str, str], list[datetime]]
    tariffs: dict[tuple[str, str], list[Tariff]]

    def at(self, kind: str, unit: str, at: datetime) -> Tariff | None:
        starts = self.starts.get((kind, unit), [])
        index = bisect.bisect_right(starts, at)
        return self.tariffs[(kind, unit)][index - 1] if index else None


def tariff_schedule(*, pairs: Iterable[tuple[str, str]]) -> TariffSchedule:
    """All tariffs of ``pairs`` in one query, ordered by start, to look up the one in force at any instant."""
    starts: dict[tuple[str, str], list[datetime]] = {}
    tariffs: dict[tuple[str, str], list[Tariff]] = {}
    for tariff in Tariff.objects.filter(_pairs_filter(pairs)).order_by("kind", "unit", "effective_from"):
        starts.setdefault((tariff.kind, tariff.unit), []).append(tariff.effective_from)
        tariffs.setdefault((tariff.kind, tariff.unit), []).append(tariff)
    return TariffSchedule(starts=starts, tariffs=tariffs)


# --- Usage manifests ------------------------------------------------------------------------------


def manifest_list_for_actor(*, actor: Actor) -> QuerySet[UsageManifest]:
    """The manifests the actor may read: its lab's, or all of them for staff."""
    manifests = UsageManifest.objects.select_related("lab").order_by("-created_at", "-id")
    if actor.is_staff:
        return manifests
    if actor.party is None:
        return manifests.none()
    return manifests.filter(lab=actor.party)


def manifest_get_for_actor(*, actor: Actor, manifest_pk: int) -> UsageManifest:
    manifest = manifest_list_for_actor(actor=actor).filter(pk=manifest_pk).first()
    if manifest is None:
        raise NotFound(_("No such manifest."))
    return manifest


def manifest_summary(*, manifest: UsageManifest) -> dict[str, Any] | None:
    """What a manifest's page shows per outcome: stored once processed, none while lines are still coming."""
    # A summary stored before totals carried ``lines`` counted each side of a split line: computed afresh instead.
    if manifest.summary is not None and "lines" in manifest.summary.get("totals", {}):
        stored: dict[str, Any] = manifest.summary
        return stored
    if manifest.status != ManifestStatus.PROCESSED:
        return None
    return manifest_outcome_summary(manifest=manifest)


def manifest_outcome_summary(*, manifest: UsageManifest) -> dict[str, Any]:
    """Lines and amounts per outcome, and where the money went; one grouped query over its lines.

    A line counts once however many rows it has: a recording's use split with its musical work counts under its
    recording side's outcome, and its musical-work side adds its amount to its own outcome's, not a line
    (``USE_ROW``). So the outcomes' lines sum to ``totals.lines``, the lines the lab sent, and their amounts to
    ``totals.amount_micro``.
    """
    rows = (
        ManifestLine.objects.filter(manifest=manifest)
        .order_by()
        .values("outcome")
        .annotate(
            lines=Count("id", filter=USE_ROW),
            amount=Sum("amount_micro"),
            paid=Sum("paid_micro"),
            held=Sum("held_micro"),
            released=Sum("released_micro"),
            violation=Sum("violation_micro"),
        )
    )
    outcomes = {outcome: {"lines": 0, "amount_micro": 0} for outcome in Outcome.values}
    totals = {
        "lines": 0,
        "amount_micro": 0,
        "to_owners_micro": 0,
        "held_micro": 0,
        "released_micro": 0,
        "violations_micro": 0,
    }
    for row in rows:
        outcomes[row["outcome"]] = {"lines": row["lines"], "amount_micro": int(row["amount"] or 0)}
        totals["lines"] += row["lines"]
        totals["amount_micro"] += int(row["amount"] or 0)
        totals["to_owners_micro"] += int(row["paid"] or 0)
        totals["held_micro"] += int(row["held"] or 0)
        totals["released_micro"] += int(row["released"] or 0)
        totals["violations_micro"] += int(row["violation"] or 0)
    return {"outcomes": outcomes, "totals": totals}


# The acknowledgement file's columns, and the field of ``ManifestLine`` each is read from.
_OUTCOME_FIELDS: tuple[tuple[str, str], ...] = (
    ("line", "line_no"),
    ("scheme", "scheme"),
    ("value", "value"),
    ("key", "key"),
    ("units", "units"),
    ("unit", "unit"),
    ("used_at", "used_at"),
    ("outcome", "outcome"),
    ("side", "side"),
    ("other_work_id", "other_work_id"),
    ("reason_code", "reason_code"),
    ("reason", "reason"),
    ("work_id", "work_id"),
    ("kind", "kind"),
    ("refusal_id", "refusal_id"),
    ("tariff_id", "tariff_id"),
    ("amount_micro", "amount_micro"),
    ("to_owners_micro", "paid_micro"),
    ("held_micro", "held_micro"),
    ("released_micro", "released_micro"),
    ("held_for", "held_account__escrow_key"),
    ("violation_micro", "violation_micro"),
    ("owners", "allocation"),
    ("entry_id", "entry_id"),
)
OUTCOME_COLUMNS = tuple(column for column, _field in _OUTCOME_FIELDS)


def manifest_outcome_lines(*, manifest: UsageManifest) -> QuerySet[ManifestLine, tuple[Any, ...]]:
    """The manifest's lines in line order, as the tuples ``outcome_row`` turns into acknowledgement rows."""
    return (
        ManifestLine.objects.filter(manifest=manifest)
        .order_by("line_no", "side")
        .values_list(*(field for _column, field in _OUTCOME_FIELDS))
    )


def outcome_row(values: tuple[Any, ...], *, language: str) -> dict[str, Any]:
    """One acknowledgement row, its reason said in ``language``. ``owners`` lists who was paid from the line,
    at use and on later releases."""
    row = dict(zip(OUTCOME_COLUMNS, values, strict=True))
    if row["reason_code"]:
        row["reason"] = line_reason(
            code=row["reason_code"], reason=row["reason"], scheme=row["scheme"], value=row["value"], language=language
        )
    row["units"] = format(row["units"].normalize(), "f") if row["units"] is not None else None
    row["used_at"] = row["used_at"].isoformat() if row["used_at"] is not None else None
    row["held_for"] = row["held_for"] or None
    row["owners"] = [
        {"holder": holder, "claim": claim, "amount_micro": amount, "entry_id": entry}
        for holder, claim, amount, entry in (row["owners"] or [])
        if amount
    ]
    return row


def manifest_outcome_rows(
    *, manifest: UsageManifest, language: str, chunk_size: int = 5_000
) -> Iterator[dict[str, Any]]:
    """Every acknowledgement row in line order, streamed with a server-side cursor; reasons in ``language``."""
    for values in manifest_outcome_lines(manifest=manifest).iterator(chunk_size=chunk_size):
        yield outcome_row(values, language=language)


def manifest_outcome_language(*, manifest: UsageManifest, asked: str | None) -> str:
    """The language of a manifest's outcome file: the one its reader asks for, else the one it was uploaded in."""
    return asked or manifest.language or settings.LANGUAGE_CODE


def outcome_csv_rows(rows: Iterable[dict[str, Any]]) -> Iterator[list[Any]]:
    """The acknowledgement file as CSV rows: the header, then each row with its owners as
    ``holder:amount_micro`` pairs separated by semicolons."""
    yield list(OUTCOME_COLUMNS)
    for row in rows:
        owners = ";".join(f"{o['holder']}:{o['amount_micro']}" for o in row["owners"])
        yield [owners if column == "owners" else row[column] for column in OUTCOME_COLUMNS]


def violation_list_for_actor(*, actor: Actor) -> QuerySet[ManifestLine]:
    """Uses of refused works: a lab sees its own, a rights holder those of works it claims and those its refusal
    decided (a recording refused by the refusal of its musical work), staff all."""
    lines = (
        ManifestLine.objects.filter(outcome=Outcome.REFUSED_AT_USE)
        .select_related("manifest", "manifest__lab")
        .order_by("-manifest__created_at", "manifest_id", "line_no")
    )
    if actor.is_staff:
        return lines
    party = actor.party
    if party is None:
        return lines.none()
    if party.kind == PartyKind.LAB:
        return lines.filter(manifest__lab=party)
    claimed = OwnershipClaim.objects.filter(holder=party).exclude(status=ClaimStatus.REJECTED).values("work_id")
    return lines.filter(Q(work_id__in=claimed) | Q(refusal__holder=party))
