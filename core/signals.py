"""Signals the kernel sends for the apps above it to act on, so that ``core`` imports none of them."""

from __future__ import annotations

from django.dispatch import Signal

# Sent inside the transaction of a change the audit log must show (a job failed or was retried), with
# ``code``, ``actor``, ``target`` and ``data``; the registry's audit log records it (registry/receivers.py).
audit_requested = Signal()
