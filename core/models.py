"""Notifications: what the registry tells a person, in the portal's inbox and by e-mail, and how each person
wants to hear it. They live in the kernel so that every app that has something to tell can reach them."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class NotificationKind(models.TextChoices):
    CLAIM_VERIFIED = "claim_verified", _("Claim verified")
    CLAIM_REJECTED = "claim_rejected", _("Claim rejected")
    CLAIM_DISPUTED = "claim_disputed", _("Claim disputed")
    REFUSAL_IN_FORCE = "refusal_in_force", _("Refusal in force")
    REFUSAL_WITHDRAWN = "refusal_withdrawn", _("Refusal withdrawn")
    VIOLATION_RECORDED = "violation_recorded", _("Use of a refused work recorded")
    ESCROW_RELEASED = "escrow_released", _("Money released from escrow")
    STATEMENT_READY = "statement_ready", _("Statement ready")
    CONSOLIDATED_STATEMENT_READY = "consolidated_statement_ready", _("Consolidated statement ready")
    PAYOUT_MADE = "payout_made", _("Payout made")
    MANIFEST_PROCESSED = "manifest_processed", _("Usage manifest processed")
    MANIFEST_FAILED = "manifest_failed", _("Usage manifest failed")
    INVOICE_READY = "invoice_ready", _("Invoice ready")
    SITE_DISAGREEMENT = "site_disagreement", _("A site's signals disagree with your refusals")
    PAYOUT_PROFILE_CHANGED = "payout_profile_changed", _("Payout details changed")


class EmailState(models.TextChoices):
    # Waiting for the delivery task (or its retry).
    PENDING = "pending", _("Pending")
    SENT = "sent", _("Sent")
    # Not mailed: the person turned this kind off, or has no address. The inbox still shows it.
    SKIPPED = "skipped", _("Not sent")
    # Every retry failed; the inbox still shows it.
    FAILED = "failed", _("Failed")


class Notification(models.Model):
    """One thing told to one person, once: ``key`` names the event, so telling it again (a retried task, a signal
    sent twice) finds the row already there. The text is rendered when read or mailed, in the reader's language.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications", verbose_name=_("user")
    )
    # The party the person hears it as a member of (no foreign key: the kernel knows no parties).
    party_id = models.BigIntegerField(_("party"), null=True, blank=True)
    kind = models.CharField(_("kind"), max_length=32, choices=NotificationKind.choices)
    key = models.CharField(_("event key"), max_length=200)
    # Plain JSON the message is rendered from (names, amounts in won, links).
    context = models.JSONField(_("context"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)
    read_at = models.DateTimeField(_("read at"), null=True, blank=True)
    email_state = models.CharField(_("e-mail"), max_length=16, choices=EmailState.choices, default=EmailState.PENDING)
    emailed_at = models.DateTimeField(_("e-mailed at"), null=True, blank=True)
    email_attempts = models.PositiveSmallIntegerField(_("e-mail attempts"), default=0)
    email_error = models.TextField(_("last e-mail error"), blank=True)

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="notification_once_per_event"),
            models.CheckConstraint(condition=Q(kind__in=NotificationKind.values), name="notification_kind_valid"),
            models.CheckConstraint(condition=Q(email_state__in=EmailState.values), name="notification_email_valid"),
        ]
        indexes = [models.Index(fields=["user", "read_at"], name="notification_unread_idx")]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.kind} ({self.key})"


class NotificationPreference(models.Model):
    """A person's language for what the registry tells them, and the kinds they do not want by e-mail."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="notification_preference",
        verbose_name=_("user"),
    )
    language = models.CharField(_("language"), max_length=8, choices=settings.LANGUAGES)
    email_muted = models.JSONField(_("kinds not sent by e-mail"), default=list, blank=True)
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now)

    class Meta:
        verbose_name = _("notification preference")
        verbose_name_plural = _("notification preferences")

    def __str__(self) -> str:
        return f"{self.user_id}: {self.language}"
