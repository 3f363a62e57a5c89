"""Writes of webhooks: registering and disabling endpoints, batching the change feed into deliveries, trying them.

Each endpoint follows the feed with its own cursor and has at most one delivery pending: its next batch (up to
``WEBHOOK_BATCH_SIZE`` changes after its cursor) is made only once the last one has succeeded or failed for good,
so a lab receives its batches in cursor order, each ``cursor_from`` the ``cursor_to`` before it. A delivery is a
row, and a try starts by claiming it with a conditional update, so a task published twice, redelivered, or
retried after its worker died sends at most what one clean run sends again (with the same ``webhook-id``, by
which the receiver drops duplicates).

Triggers: ``webhook_deliveries_enqueue`` (after a commit that wrote changes) and the beat's sweep every minute,
which also publishes the retries that wait longer than a countdown should and any message the broker lost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.actors import Actor
from core.errors import InvalidInput, InvalidState, NotPermitted
from optout.feed.selectors import change_cursor_latest, change_ids_after
from optout.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from optout.webhooks.delivery import (
    webhook_headers,
    webhook_message_id,
    webhook_post,
    webhook_secret_generate,
    webhook_url_check,
)
from optout.webhooks.selectors import webhook_payload
from registry.audit import audit_record
from registry.models import ApiScope, Party

logger = logging.getLogger(__name__)

# A retry waiting at most this long is published with a countdown; a longer wait is left to the sweep, since
# Redis hands a message held past its visibility timeout to another worker.
_COUNTDOWN_MAX_SECONDS: Final = 300


def _require_webhook_actor(actor: Actor, party: Party) -> None:
    """The actor acts for ``party`` with the ``lookup`` scope (the feed's own), or is staff."""
    if actor.is_staff:
        return
    if actor.party is None or actor.party.pk != party.pk:
        raise NotPermitted()
    if not actor.has_scope(ApiScope.LOOKUP):
        raise NotPermitted(_("This API key lacks the scope “lookup”."), code="missing_scope")


# --- Endpoints -------------------------------------------------------------------------------------------------


def webhook_endpoint_create(
    *, actor: Actor, party: Party, url: str, description: str = "", after: int | None = None
) -> WebhookEndpoint:
    """Register an endpoint for ``party``; its secret is on the returned row, to be shown this once.

    It receives the changes after ``after`` (a cursor from the feed or a snapshot), or from now on.
    """
    _require_webhook_actor(actor, party)
    url = webhook_url_check(url)
    latest = change_cursor_latest()
    if after is not None and not 0 <= after <= latest:
        raise InvalidInput(
            _("after is a cursor of this registry's change feed, from 0 to %(latest)s.") % {"latest": latest},
            code="invalid_cursor",
            field="after",
        )
    with transaction.atomic():
        # The party's row, locked, counts its endpoints for two registrations at once.
        Party.objects.select_for_update().filter(pk=party.pk).first()
        if party.webhook_endpoints.filter(disabled_at__isnull=True).count() >= settings.WEBHOOK_MAX_ENDPOINTS:
            raise InvalidState(
                _("A party may have %(max)s active webhook endpoints; disable one first.")
                % {"max": settings.WEBHOOK_MAX_ENDPOINTS},
                code="too_many_endpoints",
            )
        endpoint = WebhookEndpoint.objects.create(
            party=party,
            url=url,
            description=description.strip(),
            secret=webhook_secret_generate(),
            cursor=latest if after is None else after,
        )
        audit_record(
            code="optout.webhook.created",
            actor=actor,
            target=endpoint,
            data={"url": url, "cursor": endpoint.cursor},
        )
    if endpoint.cursor < latest:
        _publish_on_commit(_publish_advance)
    return endpoint


def webhook_endpoint_disable(*, actor: Actor, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Stop deliveries to the endpoint; its pending delivery is cancelled. Disabling it again changes nothing."""
    _require_webhook_actor(actor, endpoint.party)
    with transaction.atomic():
        now = timezone.now()
        if WebhookEndpoint.objects.filter(pk=endpoint.pk, disabled_at__isnull=True).update(disabled_at=now):
            endpoint.deliveries.filter(status=DeliveryStatus.PENDING).update(
                status=DeliveryStatus.CANCELLED, next_attempt_at=None
            )
            audit_record(code="optout.webhook.disabled", actor=actor, target=endpoint, data={"url": endpoint.url})
    endpoint.refresh_from_db()
    return endpoint


def webhook_delivery_replay(*, actor: Actor, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send the delivery again, now, with its retry schedule started over: the same body and ``webhook-id``."""
    endpoint = delivery.endpoint
    _require_webhook_actor(actor, endpoint.party)
    if not endpoint.is_active:
        raise InvalidState(_("This webhook endpoint is disabled."), code="endpoint_disabled")
    with transaction.atomic():
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.PENDING, round_attempts=0, next_attempt_at=timezone.now()
        )
        audit_record(
            code="optout.webhook.replayed",
            actor=actor,
            target=delivery,
            data={"endpoint": endpoint.pk, "message_id": delivery.message_id},
        )
        delivery_id = delivery.pk
        _publish_on_commit(lambda: _publish_send(delivery_id))
    delivery.refresh_from_db()
    return delivery


# --- Batching the feed -----------------------------------------------------------------------------------------


def webhook_endpoint_advance(*, endpoint_id: int) -> WebhookDelivery | None:
    """Make the endpoint's next delivery, if it is active, has none pending and is behind the feed."""
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().filter(pk=endpoint_id, disabled_at__isnull=True).first()
        if endpoint is None or endpoint.deliveries.filter(status=DeliveryStatus.PENDING).exists():
            return None
        ids = change_ids_after(after=endpoint.cursor, limit=settings.WEBHOOK_BATCH_SIZE)
        if not ids:
            return None
        try:
            # The unique (endpoint, cursor_from) and the conditional move of the cursor keep two advances of one
            # endpoint from both making its batch where no row lock is (SQLite).
            with transaction.atomic():
                delivery = WebhookDelivery.objects.create(
                    endpoint=endpoint,
                    message_id=webhook_message_id(),
                    cursor_from=endpoint.cursor,
                    cursor_to=ids[-1],
                    change_count=len(ids),
                    next_attempt_at=timezone.now(),
                )
                if not WebhookEndpoint.objects.filter(pk=endpoint.pk, cursor=endpoint.cursor).update(cursor=ids[-1]):
                    raise IntegrityError("the endpoint's cursor moved")
        except IntegrityError:
            return None
        delivery_id = delivery.pk
        _publish_on_commit(lambda: _publish_send(delivery_id))
    return delivery


def webhook_endpoints_advance() -> int:
    """Give every active endpoint behind the feed and without a pending delivery its next batch; how many."""
    latest = change_cursor_latest()
    behind = (
        WebhookEndpoint.objects.filter(disabled_at__isnull=True, cursor__lt=latest)
        .exclude(deliveries__status=DeliveryStatus.PENDING)
        .values_list("pk", flat=True)
    )
    return sum(webhook_endpoint_advance(endpoint_id=pk) is not None for pk in list(behind))


def webhook_deliveries_enqueue() -> None:
    """The hook for writers of the change feed: call it in (or after) the transaction that wrote ``StatusChange``
    rows. Once that transaction commits, a task on the short queue gives the endpoints their next batches.
    Never raises into the caller: a lost message is the sweep's to make up for within a minute.
    """
    _publish_on_commit(_publish_advance)


def webhook_changes_committed() -> None:
    """The same, for a caller that runs once the transaction has committed (``optout.status``'s
    ``changes_committed_hooks``): publishes at once, without waiting for another commit.
    """
    _publish_advance()


# --- Trying a delivery -----------------------------------------------------------------------------------------


def webhook_retry_delay(attempt: int) -> timedelta:
    """The wait after the ``attempt``-th failed try of a round: doubling from the base up to the maximum."""
    seconds = settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** min(attempt - 1, 30)
    return timedelta(seconds=min(seconds, settings.WEBHOOK_RETRY_MAX_SECONDS))


def _lease(now: datetime) -> datetime:
    # Longer than a try can take (connect, write and read timeouts, the body cut at three timeouts).
    return now + timedelta(seconds=max(300.0, 6 * settings.WEBHOOK_TIMEOUT))


def webhook_delivery_send(*, delivery_id: int) -> WebhookAttempt | None:
    """Try the delivery once, if it is pending and due; record the try and what follows from it.

    A 2xx answer settles it; anything else is retried after ``webhook_retry_delay`` until ``WEBHOOK_MAX_ATTEMPTS``
    tries of the round have failed, and then it has failed for good. Either way the endpoint then gets its next
    batch. A delivery that is not due (a duplicate message, or one already being tried) is left alone.
    """
    now = timezone.now()
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id,
        status=DeliveryStatus.PENDING,
        next_attempt_at__lte=now,
        endpoint__disabled_at__isnull=True,
    ).update(next_attempt_at=_lease(now), attempts=F("attempts") + 1, round_attempts=F("round_attempts") + 1)
    if not claimed:
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    body = webhook_payload(delivery=delivery)
    headers = webhook_headers(secret=endpoint.secret, message_id=delivery.message_id, body=body)
    # The guard runs again here, not only at registration: what the name resolves to may have changed.
    outcome = webhook_post(url=endpoint.url, body=body, headers=headers)
    finished = timezone.now()
    fields: dict[str, Any] = {"last_response_status": outcome.status, "last_error": outcome.error}
    if outcome.ok:
        fields.update(status=DeliveryStatus.SUCCEEDED, delivered_at=finished, next_attempt_at=None)
    elif delivery.round_attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
        fields.update(status=DeliveryStatus.FAILED, next_attempt_at=None)
    else:
        fields.update(next_attempt_at=finished + webhook_retry_delay(delivery.round_attempts))
    with transaction.atomic():
        attempt = WebhookAttempt.objects.create(
            delivery=delivery,
            number=delivery.attempts,
            started_at=now,
            duration_ms=outcome.duration_ms,
            response_status=outcome.status,
            response_body=outcome.body,
            error=outcome.error,
        )
        # Only the try that still holds the claim decides: a later claim (a replay, or a lease that ran out)
        # has moved ``attempts`` on.
        recorded = WebhookDelivery.objects.filter(
            pk=delivery_id, status=DeliveryStatus.PENDING, attempts=delivery.attempts
        ).update(**fields)
        if recorded and fields.get("status") is not None:
            webhook_endpoint_advance(endpoint_id=endpoint.pk)
    if recorded and fields.get("status") is None:
        delay = fields["next_attempt_at"] - finished
        if delay.total_seconds() <= _COUNTDOWN_MAX_SECONDS:
            _publish_send(delivery_id, countdown=delay.total_seconds())
    return attempt


def webhook_deliveries_sweep() -> int:
    """Beat, every minute: publish the deliveries due for a try (retries waiting longer than a countdown, lost
    messages, tries whose worker died) and give endpoints behind the feed their next batch. Safe when two run at
    once: a try claims its delivery, and a batch is made once. Returns the deliveries published and made.
    """
    due = WebhookDelivery.objects.filter(
        status=DeliveryStatus.PENDING, next_attempt_at__lte=timezone.now(), endpoint__disabled_at__isnull=True
    ).values_list("pk", flat=True)
    published = 0
    for delivery_id in list(due[:1000]):
        published += _publish_send(delivery_id)
    return published + webhook_endpoints_advance()


# --- Publishing ------------------------------------------------------------------------------------------------


def _publish_on_commit(publish: Callable[[], object]) -> None:
    transaction.on_commit(publish)


# Tasks run eagerly (CELERY_TASK_ALWAYS_EAGER, tests) run inside the call that publishes them, so an endpoint's
# batches would chain one call deeper each; past this depth the rest is left to the sweep.
_EAGER_CHAIN_MAX: Final = 25
_eager = threading.local()


def _publish_send(delivery_id: int, *, countdown: float | None = None) -> bool:
    from optout.tasks import webhook_delivery_send as task

    depth: int = getattr(_eager, "depth", 0)
    if task.app.conf.task_always_eager and depth >= _EAGER_CHAIN_MAX:
        return False
    _eager.depth = depth + 1
    try:
        if countdown is None:
            task.delay(delivery_id)
        else:
            task.apply_async((delivery_id,), countdown=countdown)
    except Exception:
        # The delivery row is committed and due: the sweep publishes it within a minute.
        logger.warning("could not queue webhook delivery %s; the sweep will", delivery_id, exc_info=True)
        return False
    finally:
        _eager.depth = depth
    return True


def _publish_advance() -> None:
    from optout.tasks import webhook_endpoints_advance as task

    try:
        if not WebhookEndpoint.objects.filter(disabled_at__isnull=True).exists():
            return
        task.delay()
    except Exception:
        logger.warning("could not queue the webhook endpoints' advance; the sweep will", exc_info=True)
