"""What the opt-out app tells holders: a refusal in force or withdrawn, and a site disagreeing with its refusals."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.utils import formats, timezone

from core.models import NotificationKind
from optout.models import Refusal, RefusalEventKind, RefusalScope
from registry.models import ClaimStatus, DomainStatus, OwnershipClaim, VerifiedDomain
from registry.notifications import party_notify


def _when(at: datetime) -> str:
    return formats.date_format(timezone.localtime(at), "Y-m-d H:i")


def _target(refusal: Refusal) -> str:
    # Empty means the whole catalogue: the message says so in the reader's language.
    if refusal.scope == RefusalScope.WORK and refusal.work is not None:
        return f"“{refusal.work.title}”"
    if refusal.scope == RefusalScope.URL_PREFIX:
        return refusal.url_prefix
    return ""


def _in_force_since(refusal: Refusal) -> datetime | None:
    """When the holder's right to refuse what the refusal covers was established, or None while it is not."""
    if refusal.scope == RefusalScope.CATALOGUE:
        return refusal.effective_from
    if refusal.scope == RefusalScope.URL_PREFIX:
        domain = refusal.domain
        return domain.verified_at if domain is not None and domain.status == DomainStatus.VERIFIED else None
    if refusal.work_id is None:
        return None
    claim = (
        OwnershipClaim.objects.filter(work_id=refusal.work_id, holder_id=refusal.holder_id, status=ClaimStatus.VERIFIED)
        .values_list("decided_at", flat=True)
        .first()
    )
    if (
        claim is None
        and not OwnershipClaim.objects.filter(
            work_id=refusal.work_id, holder_id=refusal.holder_id, status=ClaimStatus.VERIFIED
        ).exists()
    ):
        return None
    # A claim verified without a recorded decision time (imported, or verified by a domain long ago).
    return claim or refusal.effective_from


def refusal_notify_in_force(*, refusal: Refusal) -> bool:
    """Tell the holder a refusal is in force, once, if it is (and is not withdrawn); True if it is."""
    since = _in_force_since(refusal)
    if since is None or refusal.events.filter(kind=RefusalEventKind.WITHDRAWN).exists():
        return False
    party_notify(
        party_id=refusal.holder_id,
        kind=NotificationKind.REFUSAL_IN_FORCE,
        key=f"refusal:{refusal.pk}:in_force",
        context={
            "refusal_id": refusal.pk,
            "purpose": refusal.purpose,
            "target": _target(refusal),
            "effective_at": _when(max(refusal.effective_from, since)),
        },
    )
    return True


def refusal_notify_withdrawn(*, refusal: Refusal, effective_at: datetime) -> None:
    party_notify(
        party_id=refusal.holder_id,
        kind=NotificationKind.REFUSAL_WITHDRAWN,
        key=f"refusal:{refusal.pk}:withdrawn",
        context={
            "refusal_id": refusal.pk,
            "purpose": refusal.purpose,
            "target": _target(refusal),
            "effective_at": _when(effective_at),
        },
    )


def refusals_notify_in_force_for_work(*, work_id: int) -> int:
    """A claim on the work was verified: tell the holders whose work refusals it brings into force."""
    told = 0
    for refusal in Refusal.objects.filter(scope=RefusalScope.WORK, work_id=work_id).select_related("work"):
        told += refusal_notify_in_force(refusal=refusal)
    return told


def refusals_notify_in_force_for_domain(*, domain_id: int) -> int:
    told = 0
    for refusal in Refusal.objects.filter(scope=RefusalScope.URL_PREFIX, domain_id=domain_id).select_related("domain"):
        told += refusal_notify_in_force(refusal=refusal)
    return told


def site_disagreement_notify(*, domain_id: int, disagreements: Sequence[Any]) -> int:
    """Tell a verified domain's holder that its site disagrees with its refusals; the same findings again tell
    nothing new (the key is a digest of them)."""
    domain = VerifiedDomain.objects.filter(pk=domain_id).first()
    if domain is None or not disagreements:
        return 0
    plain = json.loads(json.dumps(list(disagreements), default=str))
    digest = hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()[:32]
    details = "\n".join(
        "- " + (", ".join(f"{k}: {v}" for k, v in item.items()) if isinstance(item, dict) else str(item))
        for item in plain
    )
    return party_notify(
        party_id=domain.holder_id,
        kind=NotificationKind.SITE_DISAGREEMENT,
        key=f"domain:{domain.pk}:disagreement:{digest}",
        context={"domain_id": domain.pk, "domain": domain.origin, "count": len(plain), "details": details},
    )
