"""Recording splits: how a use of a recording is shared between the recording's owners and its musical work's.

Staff set, per kind of work used (recordings: ``audio``), the musical work's share in basis points from an instant
on; rows are only ever added (``RecordingSplit``). A split starts now or later, never in the past: uses already
accrued stay split as they were, and a use is split by the split in force at its ``used_at``. How the amount of one
use is divided, to the micro-won, is ``musical_work_part`` (``compensation.usage.decisions``).
"""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from compensation.models import RECORDING_KINDS, RecordingSplit
from compensation.usage.decisions import FULL_SHARE_BP
from core.actors import Actor, require_staff
from core.dates import CLOCK_SKEW
from core.errors import InvalidInput, InvalidState
from core.locks import advisory_lock
from registry.audit import audit_record
from registry.models import WorkKind


def _starts_at(value: datetime | None) -> datetime:
    now = timezone.now()
    if value is None:
        return now
    if timezone.is_naive(value):
        raise InvalidInput(_("Give the time with its offset, e.g. 2026-12-01T00:00:00+09:00."), field="effective_from")
    if value < now - CLOCK_SKEW:
        # Uses already accrued were paid by the split in force then; a split cannot reach back and change them.
        raise InvalidInput(
            _("A split starts now or later; uses already accrued stay split as they were."),
            code="in_the_past",
            field="effective_from",
        )
    return max(value, now)


def recording_split_set(
    *, actor: Actor, musical_work_bp: int, kind: str = WorkKind.AUDIO, effective_from: datetime | None = None
) -> RecordingSplit:
    """Staff set the musical work's share of each use of a recording of ``kind``, from now or a later instant."""
    require_staff(actor)
    if kind not in RECORDING_KINDS:
        raise InvalidInput(_("Only a recording (audio) names a musical work."), code="invalid_choice", field="kind")
    if isinstance(musical_work_bp, bool) or not isinstance(musical_work_bp, int):
        raise InvalidInput(_("The share is a whole number of basis points."), field="musical_work_bp")
    if not 0 <= musical_work_bp <= FULL_SHARE_BP:
        raise InvalidInput(_("The share is from 0 to 10000 basis points."), field="musical_work_bp")
    try:
        with transaction.atomic():
            advisory_lock(f"recording_split:{kind}")
            starts = _starts_at(effective_from)
            split = RecordingSplit.objects.create(
                kind=kind, musical_work_bp=musical_work_bp, effective_from=starts, created_by=actor.person
            )
            audit_record(
                code="compensation.recording_split.set",
                actor=actor,
                target=split,
                data={"kind": kind, "musical_work_bp": musical_work_bp, "effective_from": starts.isoformat()},
            )
    except IntegrityError:
        raise InvalidState(
            _("A split for this kind already starts at this instant."), code="recording_split_exists"
        ) from None
    return split
