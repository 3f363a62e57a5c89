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


@short_task()
def domain_signals_observe(domain_id: int, trigger: str) -> int:
    # Fetch and record what a verified domain's own signals say (optout.observations); gone or unverified: nothing.
    from optout.observations import domain_observe
    from registry.models import VerifiedDomain

    domain = VerifiedDomain.objects.filter(pk=domain_id).first()
    if domain is None:
        return 0
    return len(domain_observe(domain=domain, trigger=trigger))


@periodic_task(soft_time_limit=120, time_limit=180)
def domain_signals_recheck() -> int:
    # Beat: queue an observation of each verified domain never observed (just verified) or last observed
    # SIGNAL_RECHECK_MINUTES ago. Two beats at once queue a domain twice: two observations, nothing wrong.
    from optout.models.observations import ObservationTrigger
    from optout.observations import domains_due_for_observation, domains_never_observed

    never = set(domains_never_observed())
    due = domains_due_for_observation()
    for domain_id in due:
        trigger = ObservationTrigger.VERIFIED if domain_id in never else ObservationTrigger.SCHEDULED
        domain_signals_observe.delay(domain_id, trigger)
    return len(due)


@periodic_task(soft_time_limit=50, time_limit=55)
def log_checkpoint() -> int:
    # Beat (LOG_CHECKPOINT_MINUTES): leaves for refusals and withdrawals whose instant has come, then a checkpoint
    # when the log grew. Two at once are serialized by the services' lock; the second finds nothing to do.
    from optout.transparency import services as transparency

    transparency.log_effects_append()
    return transparency.log_checkpoint_issue().size
