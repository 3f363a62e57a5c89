"""Issue a signed checkpoint of the transparency log now (beat does it every LOG_CHECKPOINT_MINUTES)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from optout.transparency.services import log_checkpoint_issue, log_effects_append


class Command(BaseCommand):
    help = "Append the took-effect leaves that came due, then sign a checkpoint if the log grew; print it."

    def handle(self, *args: Any, **options: Any) -> None:
        effects = log_effects_append()
        checkpoint = log_checkpoint_issue()
        self.stderr.write(
            _("%(effects)s effects appended; checkpoint of %(size)s leaves:")
            % {"effects": effects, "size": f"{checkpoint.size:,}"}
        )
        self.stdout.write(checkpoint.note, ending="")
