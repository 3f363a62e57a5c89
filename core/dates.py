"""The dates the registry accepts, and how it writes instants in what it signs.

Every date or instant a client sends (periods, effective dates, ``as_of``, ``used_at``, months) must fall
within ``EARLIEST``..``LATEST``. Outside it, arithmetic and time-zone conversion overflow (year 1 minus an
offset is year 0) and nothing the registry records is meant to be there: its events are recent, and the
statutory terms it tracks end well before 2200.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from core.errors import InvalidInput

# How far in the past an instant sent as "from now" may lie: the sender's clock may run behind ours.
CLOCK_SKEW = timedelta(seconds=60)

EARLIEST = date(1900, 1, 1)
LATEST = date(2199, 12, 31)

DATE_OUT_OF_RANGE = "date_out_of_range"


def date_out_of_range_message() -> str:
    return str(
        _("Send a date between %(earliest)s and %(latest)s.")
        % {"earliest": EARLIEST.isoformat(), "latest": LATEST.isoformat()}
    )


def date_in_range(value: date | datetime) -> bool:
    """Whether ``value`` (a date, or an instant in whatever offset it carries) is within the accepted range."""
    # By the year as written: an offset moves an instant by less than a day, so this never overflows.
    return EARLIEST.year <= value.year <= LATEST.year


def date_check(value: date | datetime, *, field: str) -> None:
    """Refuse a date outside ``EARLIEST``..``LATEST`` with ``date_out_of_range`` naming ``field``."""
    if not date_in_range(value):
        raise InvalidInput(date_out_of_range_message(), code=DATE_OUT_OF_RANGE, field=field)


def validate_date_in_range(value: date | datetime | None) -> None:
    """The same rule as a Django validator, for the portal's and the admin's forms."""
    if value is not None and not date_in_range(value):
        raise ValidationError(date_out_of_range_message(), code=DATE_OUT_OF_RANGE)


def rfc3339(moment: datetime) -> str:
    """``moment`` in UTC, ``2026-03-02T00:00:00Z``: valid RFC 3339 for every instant.

    Written in a local zone, instants before 1908 would carry Seoul's local mean time offset (+08:27:52),
    which RFC 3339 cannot express.
    """
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
