"""The opt-out app's models, one module per part: refusals and regimes, the maintained status projection and its
change feed, snapshots, webhooks."""

from optout.models.refusals import (
    KindRegime,
    Purpose,
    Refusal,
    RefusalEvent,
    RefusalEventKind,
    RefusalScope,
    Regime,
)
from optout.models.status import NOT_PERMITTED, StatusChange, StatusSegment, SubjectStatus, SubjectType

__all__ = [
    "NOT_PERMITTED",
    "KindRegime",
    "Purpose",
    "Refusal",
    "RefusalEvent",
    "RefusalEventKind",
    "RefusalScope",
    "Regime",
    "StatusChange",
    "StatusSegment",
    "SubjectStatus",
    "SubjectType",
]
