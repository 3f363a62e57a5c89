"""Lab-side client of the AI-training opt-out registry.

- :func:`sync` downloads the latest signed snapshot, verifies it, and applies the change feed into a directory;
- :class:`Registry` answers offline from that directory: ``Registry.open(D).may_train(scheme, value, purpose)`` and
  ``may_train_many`` over a list or an Arrow column;
- :func:`identifier_normalize` gives exactly the server's keys (see :mod:`optout_client.normalize`).
"""

from optout_client.membership import Membership, key_hash
from optout_client.normalize import (
    SCHEMES,
    IdentifierKey,
    InvalidIdentifier,
    SchemeUnavailable,
    identifier_normalize,
    iscc_available,
)
from optout_client.registry import PURPOSES, Registry, Verdict
from optout_client.signing import SignatureError
from optout_client.state import NotSynced
from optout_client.sync import SnapshotRefused, SyncError, SyncResult, sync

__all__ = [
    "PURPOSES",
    "SCHEMES",
    "IdentifierKey",
    "InvalidIdentifier",
    "Membership",
    "NotSynced",
    "Registry",
    "SchemeUnavailable",
    "SignatureError",
    "SnapshotRefused",
    "SyncError",
    "SyncResult",
    "Verdict",
    "identifier_normalize",
    "iscc_available",
    "key_hash",
    "sync",
]
