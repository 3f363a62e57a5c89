"""Celery adapters of the opt-out app: take primary keys, call a service. No business rules here."""

from __future__ import annotations

from core.tasks import long_task, periodic_task, short_task


@long_task(soft_time_limit=30 * 60, time_limit=35 * 60, max_retries=3)
def snapshot_build(snapshot_id: int) -> str | None:
    # A job of core.jobs: a ready or failed snapshot is left as it is, so redelivery is harmless.
    from optout.snapshots import services as snapshots

    snapshot = snapshots.snapshot_build(snapshot_pk=snapshot_id)
    return snapshot.status if snapshot is not None else None


@periodic_task(soft_time_limit=120, time_limit=180)
def snapshot_scheduled() -> int:
    # Beat (SNAPSHOT_SCHEDULE_MINUTES): queue a snapshot, unless one is queued or building already.
    from optout.snapshots import services as snapshots

    return snapshots.snapshot_schedule().pk


@short_task()
def webhook_delivery_send(delivery_id: int) -> int | None:
    # One try of a delivery, if it is pending and due: a duplicate or redelivered message finds it claimed.
    from optout.webhooks import services as webhooks

    attempt = webhooks.webhook_delivery_send(delivery_id=delivery_id)
    return attempt.response_status if attempt is not None else None


@short_task()
def webhook_endpoints_advance() -> int:
    # Published after a commit that wrote status changes: each idle endpoint behind the feed gets its next batch.
    from optout.webhooks import services as webhooks

    return webhooks.webhook_endpoints_advance()


@periodic_task(soft_time_limit=50, time_limit=55)
def webhooks_sweep() -> int:
    # Beat, every minute: deliveries due for a try, and endpoints behind the feed (a missed trigger).
    from optout.webhooks import services as webhooks

    return webhooks.webhook_deliveries_sweep()
