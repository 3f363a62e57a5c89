"""Reads of the change feed (``StatusChange``; its id is the cursor).

Writers append changes under one advisory lock held until they commit (``optout.status``), so ids are visible in
order: a plain read of ``id > after`` never skips a change that commits later with a smaller id, and a page ends
where the reader's view ends. No lock is needed here.
"""

from __future__ import annotations

from typing import Any, Final

from django.db.models import Max, QuerySet
from django.utils.translation import gettext_lazy as _

from core.dates import rfc3339
from core.errors import InvalidInput
from optout.models import StatusChange

DEFAULT_LIMIT: Final = 1000
MAX_LIMIT: Final = 10_000


# The columns of a change, in the order ``_row_as_json`` reads them: pages are read as tuples, not models.
_COLUMNS: Final = (
    "id",
    "subject_type",
    "subject",
    "host",
    "purpose",
    "old_status",
    "new_status",
    "effective_at",
    "recorded_at",
    "cause_id",
    "cause_code",
)


def _row_as_json(row: tuple[Any, ...]) -> dict[str, Any]:
    cursor, subject_type, subject, host, purpose, old, new, effective_at, recorded_at, cause_id, cause_code = row
    return {
        "cursor": cursor,
        "subject_type": subject_type,
        "subject": subject,
        "host": host,
        "purpose": purpose,
        "old_status": old,
        "new_status": new,
        "effective_at": rfc3339(effective_at),
        "recorded_at": rfc3339(recorded_at),
        "cause": {"event_id": cause_id, "code": cause_code},
    }


def change_as_json(change: StatusChange) -> dict[str, Any]:
    """One change as the feed, webhooks and a snapshot's ``scheduled`` file give it (the shared spec's form)."""
    return _row_as_json(tuple(getattr(change, column) for column in _COLUMNS))


def _rows(*, after: int) -> QuerySet[StatusChange, tuple[Any, ...]]:
    return StatusChange.objects.filter(id__gt=after).order_by("id").values_list(*_COLUMNS)


def change_cursor_latest() -> int:
    """The cursor of the newest change committed (0: none yet)."""
    latest: int | None = StatusChange.objects.aggregate(latest=Max("id"))["latest"]
    return latest or 0


def changes_between(*, after: int, to: int) -> list[dict[str, Any]]:
    """The changes ``(after, to]`` in cursor order, as JSON."""
    return [_row_as_json(row) for row in _rows(after=after).filter(id__lte=to)]


def change_ids_after(*, after: int, limit: int) -> list[int]:
    """The cursors of the first ``limit`` changes after ``after``."""
    return list(StatusChange.objects.filter(id__gt=after).order_by("id").values_list("id", flat=True)[:limit])


def changes_after(*, after: int, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """A page of the feed: ``{"changes": [...], "next_cursor": n, "has_more": bool}``.

    ``next_cursor`` is the last change's cursor, or ``after`` when the page is empty: the caller passes it as the
    next ``after``. A cursor past the newest change was never given out by this registry (another registry's, or
    a database restored from a backup): it is refused, so the caller starts again from a snapshot instead of
    waiting silently for changes it already missed.
    """
    if after < 0:
        raise InvalidInput(_("A cursor is a whole number, 0 or more."), code="invalid_cursor", field="after")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(
            _("limit is a whole number from 1 to %(max)s.") % {"max": f"{MAX_LIMIT:,}"},
            code="invalid_limit",
            field="limit",
        )
    rows = list(_rows(after=after)[: limit + 1])
    if not rows and after > change_cursor_latest():
        raise InvalidInput(
            _(
                "Cursor %(cursor)s is past the newest change of this registry: it was not given out here. Start "
                "again from the latest snapshot and its cursor."
            )
            % {"cursor": after},
            code="cursor_ahead",
            field="after",
        )
    page = rows[:limit]
    return {
        "changes": [_row_as_json(row) for row in page],
        "next_cursor": page[-1][0] if page else after,
        "has_more": len(rows) > limit,
    }
