"""Recompute the status projection from the events and report every difference; ``--repair`` rewrites it."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from optout.models import StatusChange, StatusSegment
from optout.status.selectors import status_differences
from optout.status.services import status_rebuild

SHOWN = 50


class Command(BaseCommand):
    help = (
        "Recompute every key's, URL prefix's and work kind's status from the refusals, claims, domains and regimes "
        "(now and at every later instant one of them starts or ends), compare it with the maintained projection "
        "and the change feed, and exit 1 listing every difference. --repair rewrites what differs, recording the "
        "corrections in the change feed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--repair", action="store_true", help=_("Rewrite the subjects that differ."))

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(
            _("Projection: %(segments)s segments; change feed: %(changes)s changes.")
            % {
                "segments": f"{StatusSegment.objects.count():,}",
                "changes": f"{StatusChange.objects.count():,}",
            }
        )
        differences = 0
        for difference in status_differences():
            differences += 1
            if differences <= SHOWN:
                self.stdout.write("  " + difference.describe())
        if differences and options["repair"]:
            result = status_rebuild()
            self.stdout.write(
                _("Repaired: %(rewritten)s subjects rewritten, %(changes)s changes recorded.")
                % {"rewritten": f"{result.rewritten:,}", "changes": f"{result.changes:,}"}
            )
            return
        if differences:
            raise CommandError(
                _("status check failed: %(count)s subjects differ from what the events give.")
                % {"count": f"{differences:,}"}
            )
        self.stdout.write(self.style.SUCCESS(_("Status projection OK.")))
