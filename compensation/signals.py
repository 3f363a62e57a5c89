"""Signals compensation sends, after the change has committed, for other parts (notifications) to react to."""

from __future__ import annotations

from django.dispatch import Signal

# Sent on commit with ``holder_id`` (the rights holder party whose payout profile changed) and ``change``: a JSON
# dict with ``event`` ("created", "changed" or "verified"), ``fields`` (the names of what changed, never the
# numbers), ``bank_name`` and ``account_number_masked`` (as shown), and ``actor`` (the user id, or null for a key).
# The holder is told that its bank details changed: someone with its password or a ``payouts:write`` key did it.
payout_profile_changed = Signal()
