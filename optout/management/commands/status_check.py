"""Recompute the status projection from the events and report every difference; ``--repair`` rewrites it."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from optout.models import StatusChange, StatusSegment
from optout.status.selectors import status_differences
from optout.status.services import segment_briefs_stale, segment_briefs_sync, status_rebuild

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
        stale_works = segment_briefs_stale()
        if stale_works:
            self.stdout.write(
                "  "
                + _("%(count)s works are shown with an old title or kind, e.g. work %(first)s.")
                % {"count": f"{len(stale_works):,}", "first": stale_works[0]}
            )
        if (differences or stale_works) and options["repair"]:
            result = status_rebuild()
            segment_briefs_sync(work_ids=stale_works)
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
        if stale_works:
            raise CommandError(
                _("status check failed: %(count)s works are shown with an old title or kind.")
                % {"count": f"{len(stale_works):,}"}
            )
        self.stdout.write(self.style.SUCCESS(_("Status projection OK.")))
