"""Recompute the transparency log from the events and check every tile and checkpoint; exit 1 on any difference."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from optout.models import LogCheckpoint
from optout.transparency.check import log_differences
from optout.transparency.selectors import log_size

SHOWN = 50


class Command(BaseCommand):
    help = (
        "Recompute every leaf of the transparency log from its audit event, the tiles and the root of every "
        "checkpoint from the leaves, check each checkpoint's signature, and exit 1 listing every difference "
        "(a rewritten, reordered, missing or extra leaf, a wrong tile, a checkpoint not signed or not of its leaves)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(
            _("Log: %(leaves)s leaves, %(checkpoints)s checkpoints.")
            % {"leaves": f"{log_size():,}", "checkpoints": f"{LogCheckpoint.objects.count():,}"}
        )
        problems = 0
        for problem in log_differences():
            problems += 1
            if problems <= SHOWN:
                self.stdout.write("  " + problem)
        if problems:
            raise CommandError(_("log check failed: %(count)s problems.") % {"count": f"{problems:,}"})
        self.stdout.write(_("Log check passed: every leaf, tile and checkpoint agrees with the events."))
