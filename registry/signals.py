"""Signals other apps listen to, sent after the change has committed."""

from __future__ import annotations

from django.dispatch import Signal

# Sent with ``work_id`` when a work's verified owners may have changed: a claim was verified or
# rejected (which may also end a dispute). Compensation releases escrow on it.
work_owners_changed = Signal()

# Sent with ``keys`` (``scheme:value`` texts) when identifiers were registered to works: uses recorded
# unpriced for them may now be priced as the work's kind. Compensation re-prices them on it.
identifiers_registered = Signal()

# Sent inside the transaction of a change that may change what lookups answer (claims filed, verified, accepted
# for review or rejected; works registered or their kind changed; identifiers added or removed; domains verified),
# with ``cause`` (the change's AuditEvent) and ``work_ids``, ``keys`` (``scheme:value`` texts that no longer name
# a work) or ``domain_id``; a batch of registrations names a cause per work in ``cause_by_work``. The opt-out app
# keeps its status projection and change feed current on it, in the same transaction, so a receiver's failure
# rolls the change back.
status_inputs_changed = Signal()

# Sent inside the transaction of every audit event recorded, with ``events`` (a list of ``AuditEvent``): the
# opt-out app appends the ones that change a status to the transparency log in that transaction, so an event and
# its leaf commit together or not at all.
audit_events_recorded = Signal()
