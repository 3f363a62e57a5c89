"""Webhooks: a party's endpoints, and the deliveries of the change feed to them.

An endpoint has a cursor of its own in the change feed (``StatusChange.id``): the last change put into one of its
deliveries. A delivery is one POST of the changes ``(cursor_from, cursor_to]``, signed per Standard Webhooks with
the endpoint's secret; it stays ``pending`` through its retries, and the endpoint's next batch is made only when it
has ``succeeded`` or ``failed`` for good, so that an endpoint receives its batches in cursor order, one at a time.
Each try is a ``WebhookAttempt``: the delivery log the lab reads.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from registry.models import Party


class WebhookEndpoint(models.Model):
    party = models.ForeignKey(
        Party, on_delete=models.CASCADE, related_name="webhook_endpoints", verbose_name=_("party")
    )
    url = models.CharField(_("URL"), max_length=2000)
    description = models.CharField(_("description"), max_length=200, blank=True)
    # ``whsec_`` + base64 of random bytes (Standard Webhooks). Kept as is: signing needs the secret itself.
    secret = models.CharField(_("secret"), max_length=100)
    # The last change of the feed put into a delivery to this endpoint (0: none yet).
    cursor = models.BigIntegerField(_("cursor"), default=0)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    disabled_at = models.DateTimeField(_("disabled at"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=Q(cursor__gte=0), name="webhook_cursor_not_negative")]

    def __str__(self) -> str:
        return f"{self.party} → {self.url}"

    @property
    def is_active(self) -> bool:
        return self.disabled_at is None


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SUCCEEDED = "succeeded", _("Succeeded")
    # Every try of its retry schedule failed; the endpoint moved on to its next batch.
    FAILED = "failed", _("Failed")
    # Its endpoint was disabled before it succeeded.
    CANCELLED = "cancelled", _("Cancelled")


class WebhookDelivery(models.Model):
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("endpoint")
    )
    # The ``webhook-id`` header: the same for every try and replay, so that the receiver can drop duplicates.
    message_id = models.CharField(_("message id"), max_length=64, unique=True)
    # The changes ``(cursor_from, cursor_to]`` of the feed: ``cursor_from`` is the previous delivery's
    # ``cursor_to`` (or the endpoint's starting cursor).
    cursor_from = models.BigIntegerField(_("after cursor"))
    cursor_to = models.BigIntegerField(_("to cursor"))
    change_count = models.PositiveIntegerField(_("changes"))
    status = models.CharField(
        _("status"), max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    # Tries in all, and since it was made or last replayed (the retry schedule counts these).
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    round_attempts = models.PositiveIntegerField(_("attempts since the last replay"), default=0)
    # Pending: when the next try may start. While a try runs, the end of its lease: a worker that died
    # mid-try leaves the delivery to the sweep once it has passed.
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    last_response_status = models.PositiveIntegerField(_("last response status"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=50, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=DeliveryStatus.values), name="webhook_delivery_status_valid"),
            models.CheckConstraint(condition=Q(cursor_to__gt=models.F("cursor_from")), name="webhook_delivery_range"),
            # The idempotency key of batching: two workers advancing one endpoint cannot both make its next batch.
            models.UniqueConstraint(fields=["endpoint", "cursor_from"], name="webhook_delivery_one_batch_per_cursor"),
        ]
        indexes = [
            models.Index(fields=["next_attempt_at"], name="webhook_delivery_due_idx", condition=Q(status="pending")),
        ]

    def __str__(self) -> str:
        return f"{self.message_id} ({self.cursor_from}, {self.cursor_to}]: {self.status}"


class WebhookAttempt(models.Model):
    """One try of a delivery: what the endpoint answered, or why nothing was sent or received."""

    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log", verbose_name=_("delivery")
    )
    number = models.PositiveIntegerField(_("number"))
    started_at = models.DateTimeField(_("started at"))
    duration_ms = models.PositiveIntegerField(_("duration (ms)"))
    response_status = models.PositiveIntegerField(_("response status"), null=True, blank=True)
    # The start of the response body, as text (WEBHOOK_RESPONSE_LOG_BYTES).
    response_body = models.TextField(_("response body"), blank=True)
    # Empty when the endpoint answered; else a code: timeout, connection_error, private_address, ...
    error = models.CharField(_("error"), max_length=50, blank=True)

    class Meta:
        verbose_name = _("webhook attempt")
        verbose_name_plural = _("webhook attempts")
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="webhook_attempt_number_unique")]

    def __str__(self) -> str:
        return f"{self.delivery_id} #{self.number}: {self.response_status or self.error}"
