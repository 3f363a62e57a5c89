"""Refusals of AI training, their history, and the regime per work kind.

Refusals are never updated or deleted: filing is a row, withdrawal is an event. Whether a
refusal decides a work at instant T is derived from those rows and from when the filer's
ownership was verified, so any past instant can be answered exactly.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from registry.models import Party, VerifiedDomain, Work, WorkKind


class Purpose(models.TextChoices):
    # train-ai is the broader purpose: refusing it refuses train-genai too.
    TRAIN_AI = "train-ai", _("Any AI model training")
    TRAIN_GENAI = "train-genai", _("Generative AI model training")


class RefusalScope(models.TextChoices):
    WORK = "work", _("One work")
    CATALOGUE = "catalogue", _("The whole catalogue")
    URL_PREFIX = "url_prefix", _("A URL prefix on a verified domain")


class Refusal(models.Model):
    """A holder's declaration that AI training of what it covers is not permitted."""

    holder = models.ForeignKey(Party, on_delete=models.PROTECT, related_name="refusals", verbose_name=_("holder"))
    scope = models.CharField(_("scope"), max_length=16, choices=RefusalScope.choices)
    purpose = models.CharField(_("purpose"), max_length=16, choices=Purpose.choices)
    work = models.ForeignKey(
        Work, null=True, blank=True, on_delete=models.PROTECT, related_name="refusals", verbose_name=_("work")
    )
    domain = models.ForeignKey(
        VerifiedDomain,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="refusals",
        verbose_name=_("domain"),
    )
    url_prefix = models.CharField(_("URL prefix"), max_length=2000, blank=True)
    # The prefix's host, so a lookup fetches only the prefixes of the hosts it asks about.
    url_host = models.CharField(_("URL host"), max_length=255, blank=True, db_index=True)
    effective_from = models.DateTimeField(_("effective from"))
    filed_at = models.DateTimeField(_("filed at"), default=timezone.now)
    filed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("filed by"),
    )
    # The society or agent that filed it for ``holder`` under a mandate; empty when the holder filed it itself.
    agent = models.ForeignKey(
        Party,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="refusals_filed_as_agent",
        verbose_name=_("filed by agent"),
    )

    class Meta:
        verbose_name = _("refusal")
        verbose_name_plural = _("refusals")
        ordering = ["-filed_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(scope__in=RefusalScope.values), name="refusal_scope_valid"),
            models.CheckConstraint(condition=Q(purpose__in=Purpose.values), name="refusal_purpose_valid"),
            models.CheckConstraint(
                condition=(
                    Q(scope="work", work__isnull=False, domain__isnull=True, url_prefix="")
                    | Q(scope="catalogue", work__isnull=True, domain__isnull=True, url_prefix="")
                    | (Q(scope="url_prefix", work__isnull=True, domain__isnull=False) & ~Q(url_prefix=""))
                ),
                name="refusal_scope_target",
            ),
        ]
        indexes = [models.Index(fields=["scope", "holder"], name="refusal_scope_holder_idx")]

    def __str__(self) -> str:
        target = self.url_prefix or (f"work {self.work_id}" if self.work_id else _("catalogue"))
        return f"{self.purpose}: {target} ({self.holder})"


class RefusalEventKind(models.TextChoices):
    FILED = "filed", _("Filed")
    WITHDRAWN = "withdrawn", _("Withdrawn")


class RefusalEvent(models.Model):
    """Append-only history of refusals. Its ids order the registry's refusal state: a receipt
    names the last one it saw, so the answer can be reproduced."""

    refusal = models.ForeignKey(Refusal, on_delete=models.PROTECT, related_name="events", verbose_name=_("refusal"))
    kind = models.CharField(_("kind"), max_length=16, choices=RefusalEventKind.choices)
    # When the event takes effect (a withdrawal may be scheduled for later); never before it was recorded.
    effective_at = models.DateTimeField(_("effective at"))
    recorded_at = models.DateTimeField(_("recorded at"), default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("by"),
    )

    class Meta:
        verbose_name = _("refusal event")
        verbose_name_plural = _("refusal events")
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=RefusalEventKind.values), name="refusal_event_kind_valid"),
            models.UniqueConstraint(fields=["refusal", "kind"], name="refusal_event_once"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} refusal {self.refusal_id} at {self.effective_at:%Y-%m-%d %H:%M}"


class Regime(models.TextChoices):
    USE_FIRST = "use_first", _("Use first, compensate later")
    LICENSE_REQUIRED = "license_required", _("Licence required")


class KindRegime(models.Model):
    """The regime for a work kind from a date on; the latest row in force applies, else use-first."""

    kind = models.CharField(_("work kind"), max_length=16, choices=WorkKind.choices)
    regime = models.CharField(_("regime"), max_length=20, choices=Regime.choices)
    effective_from = models.DateTimeField(_("effective from"))
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("set by"),
    )

    class Meta:
        verbose_name = _("regime")
        verbose_name_plural = _("regimes")
        ordering = ["kind", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "effective_from"], name="regime_one_per_instant"),
            models.CheckConstraint(condition=Q(regime__in=Regime.values), name="regime_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.regime} from {self.effective_from:%Y-%m-%d}"
