"""Reads of the change feed (``StatusChange``; its id is the cursor).

Writers append changes under one advisory lock held until they commit (``optout.status``), so ids are visible in
order: a plain read of ``id > after`` never skips a change that commits later with a smaller id, and a page ends
where the reader's view ends. No lock is needed here.
"""

from __future__ import annotations

from typing import Any, Final

from django.db.models import Max
from django.utils.translation import gettext_lazy as _

from core.dates import rfc3339
from core.errors import InvalidInput
from optout.models import StatusChange

DEFAULT_LIMIT: Final = 1000
MAX_LIMIT: Final = 10_000


def change_as_json(change: StatusChange) -> dict[str, Any]:
    """One change as the feed, webhooks and a snapshot's ``scheduled`` file give it (the shared spec's form)."""
    return {
        "cursor": change.pk,
        "subject_type": change.subject_type,
        "subject": change.subject,
        "host": change.host,
        "purpose": change.purpose,
        "old_status": change.old_status,
        "new_status": change.new_status,
        "effective_at": rfc3339(change.effective_at),
        "recorded_at": rfc3339(change.recorded_at),
        "cause": {"event_id": change.cause_id, "code": change.cause_code},
    }


def change_cursor_latest() -> int:
    """The cursor of the newest change committed (0: none yet)."""
    latest: int | None = StatusChange.objects.aggregate(latest=Max("id"))["latest"]
    return latest or 0


def changes_between(*, after: int, to: int) -> list[dict[str, Any]]:
    """The changes ``(after, to]`` in cursor order, as JSON."""
    rows = StatusChange.objects.filter(id__gt=after, id__lte=to).order_by("id")
    return [change_as_json(change) for change in rows]


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
    rows = list(StatusChange.objects.filter(id__gt=after).order_by("id")[: limit + 1])
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
        "changes": [change_as_json(change) for change in page],
        "next_cursor": page[-1].pk if page else after,
        "has_more": len(rows) > limit,
    }
