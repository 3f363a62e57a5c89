"""Django signals the opt-out app sends for the apps above it (``optout/signals.py`` is the crawlers' signals).

Sent after the change has committed, so a receiver may queue work that reads it.
"""

from __future__ import annotations

from django.dispatch import Signal

# Sent on commit of an observation run (``optout.observations.domain_observe``) whose disagreements between the
# site's own signals and the registry's refusals include one the domain's previous run did not have, with
# ``domain_id`` and ``disagreements``: the new ones only, each ``{"path", "registry_refuses", "site_refuses",
# "sources"}``. A disagreement that persists is not sent again; one that goes and comes back is new again. The
# holder's notification is wired to it.
site_disagreement_found = Signal()
