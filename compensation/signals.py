"""Django signals compensation sends."""

from __future__ import annotations

from django.dispatch import Signal

# Sent when a holder's payout profile (payee, bank account, tax number or status) changes, with ``party_id`` and
# optionally ``changed_at`` and ``event_id`` (the change's audit event). The holder is told (compensation.receivers).
payout_profile_changed = Signal()
