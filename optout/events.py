"""Django signals the opt-out app sends for the apps above it (``optout.signals`` is about the web's signals)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent when what a verified domain's site publishes (robots.txt, tdmrep.json, ai.txt, headers) disagrees with the
# refusals its holder filed, with ``domain_id`` and ``disagreements`` (a list of JSON objects, each naming where
# and what). The domain's holder is told (optout.receivers).
site_disagreement_found = Signal()
