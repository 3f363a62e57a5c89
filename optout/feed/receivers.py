"""Connects the change feed's writers to webhooks: once a transaction that wrote status changes has committed
(``optout.status.services.status_refresh`` runs its ``changes_committed_hooks`` then), the endpoints behind the
feed get their next deliveries. Imported by the app's ``ready``.
"""

from __future__ import annotations

from optout.status.services import changes_committed_hooks
from optout.webhooks.services import webhook_changes_committed

# The hooks run on commit already: this one publishes at once.
if webhook_changes_committed not in changes_committed_hooks:
    changes_committed_hooks.append(webhook_changes_committed)
