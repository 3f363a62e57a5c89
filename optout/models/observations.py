"""What a verified domain's own signals said, and when: the registry's notarized record of site signals.

Site signals (robots.txt, tdmrep.json, ai.txt, response headers) are not retroactive and change without history;
each fetch is kept as a row, never updated or deleted, with the SHA-256 of the bytes served and the bytes
themselves (up to the fetch's cap), so what a site said at an instant can be shown and checked later.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from registry.models import VerifiedDomain


class SignalSource(models.TextChoices):
    ROBOTS_TXT = "robots.txt", "robots.txt"
    TDMREP = "tdmrep.json", "tdmrep.json"
    AI_TXT = "ai.txt", "ai.txt"
    HEADERS = "headers", _("Response headers")


class ObservationTrigger(models.TextChoices):
    VERIFIED = "verified", _("Domain verified")
    SCHEDULED = "scheduled", _("Scheduled recheck")
    ON_DEMAND = "on_demand", _("On demand")


class SignalObservation(models.Model):
    """One fetch of one URL of a verified domain, and what it said for each of the registry's purposes.

    ``said`` is ``{purpose: refused}``; ``signals`` the signals read (``optout.site_signals.READ_TABLE`` keys and,
    for robots.txt and tdmrep.json, the path rules). ``sha256`` is over ``body`` as served (for ``headers``, over
    the header lines the registry reads, one ``name: value`` per line in the order served).
    """

    domain = models.ForeignKey(
        VerifiedDomain, on_delete=models.PROTECT, related_name="signal_observations", verbose_name=_("domain")
    )
    source = models.CharField(_("source"), max_length=16, choices=SignalSource.choices)
    url = models.CharField(_("URL"), max_length=2048)
    trigger = models.CharField(_("trigger"), max_length=16, choices=ObservationTrigger.choices)
    observed_at = models.DateTimeField(_("observed at"), default=timezone.now)
    http_status = models.PositiveSmallIntegerField(_("HTTP status"), null=True, blank=True)
    error = models.CharField(_("error"), max_length=64, blank=True, help_text=_("Why nothing was fetched"))
    sha256 = models.CharField(_("SHA-256"), max_length=64, blank=True)
    size = models.PositiveIntegerField(_("bytes served"), default=0)
    truncated = models.BooleanField(_("truncated"), default=False)
    body = models.BinaryField(_("bytes"), blank=True, default=b"")
    said = models.JSONField(_("said per purpose"), default=dict)
    signals = models.JSONField(_("signals read"), default=dict)

    class Meta:
        verbose_name = _("signal observation")
        verbose_name_plural = _("signal observations")
        ordering = ["-observed_at", "-id"]
        indexes = [models.Index(fields=["domain", "-observed_at"], name="observation_domain_time")]

    def __str__(self) -> str:
        return f"{self.url} @ {self.observed_at:%Y-%m-%d %H:%M}"
