"""The opt-out app's models, one module per part: refusals and regimes, the maintained status projection and its
change feed, snapshots, webhooks, the observations of sites' own signals, and the transparency log."""

from optout.models.observations import ObservationTrigger, SignalObservation, SignalSource
from optout.models.refusals import (
    KindRegime,
    Purpose,
    Refusal,
    RefusalEvent,
    RefusalEventKind,
    RefusalScope,
    Regime,
)
from optout.models.snapshots import SNAPSHOT_JOB, Snapshot, SnapshotStatus, SnapshotTrigger
from optout.models.status import NOT_PERMITTED, StatusChange, StatusSegment, SubjectStatus, SubjectType
from optout.models.transparency import LogCheckpoint, LogEntry, LogHead, LogQueuedLeaf, LogTile
from optout.models.webhooks import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint

__all__ = [
    "NOT_PERMITTED",
    "SNAPSHOT_JOB",
    "DeliveryStatus",
    "KindRegime",
    "LogCheckpoint",
    "LogEntry",
    "LogHead",
    "LogQueuedLeaf",
    "LogTile",
    "ObservationTrigger",
    "Purpose",
    "Refusal",
    "RefusalEvent",
    "RefusalEventKind",
    "RefusalScope",
    "Regime",
    "SignalObservation",
    "SignalSource",
    "Snapshot",
    "SnapshotStatus",
    "SnapshotTrigger",
    "StatusChange",
    "StatusSegment",
    "SubjectStatus",
    "SubjectType",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]
