"""Signals other apps listen to, sent after the change has committed."""

from __future__ import annotations

from django.dispatch import Signal

# Sent with ``work_id`` when a work's verified owners may have changed: a claim was verified or
# rejected (which may also end a dispute). Compensation releases escrow on it.
work_owners_changed = Signal()

# Sent with ``keys`` (``scheme:value`` texts) when identifiers were registered to works: uses recorded
# unpriced for them may now be priced as the work's kind. Compensation re-prices them on it.
identifiers_registered = Signal()
