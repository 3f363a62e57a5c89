"""Reads of webhooks: a party sees its own endpoints and their delivery log; staff see every one."""

from __future__ import annotations

import json

from django.db.models import QuerySet

from core.actors import Actor
from core.errors import NotFound
from optout.feed.selectors import changes_between
from optout.models import WebhookDelivery, WebhookEndpoint

PAYLOAD_TYPE = "status.changed"


def webhook_endpoint_list_for_actor(*, actor: Actor) -> QuerySet[WebhookEndpoint]:
    endpoints = WebhookEndpoint.objects.select_related("party").order_by("-id")
    if actor.is_staff:
        return endpoints
    if actor.party is None:
        return endpoints.none()
    return endpoints.filter(party=actor.party)


def webhook_endpoint_get_for_actor(*, actor: Actor, endpoint_id: int) -> WebhookEndpoint:
    """The endpoint, if the actor's party owns it (or the actor is staff); ``NotFound`` otherwise, so that another
    party's endpoints are not even confirmed to exist.
    """
    endpoint = webhook_endpoint_list_for_actor(actor=actor).filter(pk=endpoint_id).first()
    if endpoint is None:
        raise NotFound()
    return endpoint


def webhook_delivery_list(*, endpoint: WebhookEndpoint, status: str | None = None) -> QuerySet[WebhookDelivery]:
    """The endpoint's delivery log, newest first, each delivery with its tries."""
    deliveries = endpoint.deliveries.prefetch_related("attempt_log").order_by("-id")
    return deliveries.filter(status=status) if status else deliveries


def webhook_delivery_get(*, endpoint: WebhookEndpoint, delivery_id: int) -> WebhookDelivery:
    delivery = webhook_delivery_list(endpoint=endpoint).filter(pk=delivery_id).first()
    if delivery is None:
        raise NotFound()
    return delivery


def webhook_payload(*, delivery: WebhookDelivery) -> bytes:
    """The body of a delivery, the same bytes at every try: the changes ``(cursor_from, cursor_to]``, which no
    later commit can add to (the feed's ids are visible in commit order, and its rows are never changed).
    """
    payload = {
        "type": PAYLOAD_TYPE,
        "changes": changes_between(after=delivery.cursor_from, to=delivery.cursor_to),
        "cursor_from": delivery.cursor_from,
        "cursor_to": delivery.cursor_to,
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
