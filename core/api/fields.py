"""Serializer fields shared by every API: dates under one rule (``core.dates``), ids, a job's failure."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from core.dates import DATE_OUT_OF_RANGE, date_in_range, date_out_of_range_message


def _out_of_range() -> serializers.ValidationError:
    return serializers.ValidationError(date_out_of_range_message(), code=DATE_OUT_OF_RANGE)


class RegistryDateTimeField(serializers.DateTimeField):
    """An instant within ``EARLIEST``..``LATEST``; beyond, ``date_out_of_range`` instead of an overflow (500)."""

    def to_internal_value(self, value: Any) -> datetime:
        try:
            parsed = super().to_internal_value(value)
        except OverflowError:
            # Making a naive year-1 or year-9999 time aware in the registry's zone overflows inside DRF.
            raise _out_of_range() from None
        except serializers.ValidationError as exc:
            codes = exc.get_codes()
            if codes == ["overflow"] or codes == "overflow":
                raise _out_of_range() from None
            raise
        if not date_in_range(parsed):
            raise _out_of_range()
        return parsed


class RegistryDateField(serializers.DateField):
    """A date within ``EARLIEST``..``LATEST``, so that periods and months built on it cannot overflow."""

    def to_internal_value(self, value: Any) -> date:
        parsed = super().to_internal_value(value)
        if not date_in_range(parsed):
            raise _out_of_range()
        return parsed


# Ids are 64-bit: a larger one names nothing, and a database cannot even compare a foreign key with it.
ID_MAX = 2**63 - 1


def failure_reason_field() -> serializers.CharField:
    """A background job's failure as its owner reads it: in the request's language where its ``failure_code``
    has a message of its own (``core.jobs``), else as the job's language wrote it."""
    return serializers.CharField(
        source="failure_message",
        read_only=True,
        help_text=_(
            "Why the job failed, for its owner; empty unless status is failed. failure_code says it for programs."
        ),
    )
