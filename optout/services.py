"""Writes for refusals and regimes. Refusals are never edited: filing and withdrawal are events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.actors import Actor, require_staff
from core.dates import CLOCK_SKEW
from core.errors import InvalidInput, InvalidState, NotPermitted
from optout.models import KindRegime, Purpose, Refusal, RefusalEvent, RefusalEventKind, RefusalScope, Regime
from optout.notifications import refusal_notify_in_force, refusal_notify_withdrawn
from optout.status.services import status_refresh_for_kind, status_refresh_for_refusal
from registry.audit import audit_record
from registry.errors import InvalidIdentifier
from registry.identifiers import Scheme, domain_covers_host, identifier_normalize
from registry.models import (
    ClaimStatus,
    MandateConflictKind,
    MandatePower,
    OwnershipClaim,
    Party,
    VerifiedDomain,
    Work,
    WorkKind,
)
from registry.services import mandate_conflict_open, require_holder_actor

# Clients' clocks drift: "now" sent by a client a moment ago is still now, not the past.


def _not_in_the_past(value: datetime | None, *, field: str) -> datetime:
    now = timezone.now()
    if value is None:
        return now
    if timezone.is_naive(value):
        raise InvalidInput(_("Give the time with its offset, e.g. 2026-12-01T00:00:00+09:00."), field=field)
    if value < now - CLOCK_SKEW:
        raise InvalidInput(_("This time is in the past; history cannot be rewritten."), code="in_the_past", field=field)
    return max(value, now)


def purposes_normalize(purposes: Sequence[str]) -> str:
    """The one stored purpose: refusing ``train-ai`` already refuses ``train-genai``."""
    unknown = sorted(set(purposes) - set(Purpose.values))
    if unknown or not purposes:
        raise InvalidInput(
            _("Purposes are train-ai and/or train-genai; got: %(got)s") % {"got": ", ".join(unknown) or "-"},
            code="invalid_purpose",
            field="purposes",
        )
    return Purpose.TRAIN_AI if Purpose.TRAIN_AI in purposes else Purpose.TRAIN_GENAI


def _domain_for_prefix(holder: Party, prefix: str) -> VerifiedDomain:
    host = (urlsplit(prefix).hostname or "").lower()
    domains = [d for d in VerifiedDomain.objects.filter(holder=holder) if domain_covers_host(d.host, host)]
    if not domains:
        raise InvalidInput(
            _("The prefix is not on one of your domains; add and verify the domain first."),
            code="domain_not_yours",
            field="url_prefix",
        )
    # The closest domain decides, and a verified one before a pending one.
    return sorted(domains, key=lambda d: (d.status != "verified", -len(d.host)))[0]


def refusal_file(
    *,
    actor: Actor,
    holder: Party,
    scope: str,
    purposes: Sequence[str],
    work: Work | None = None,
    url_prefix: str = "",
    effective_from: datetime | None = None,
) -> Refusal:
    """File a refusal. It decides lookups once the holder's ownership of what it covers is verified.

    A society or agent files it for its member under a mandate with the power ``refuse`` covering it; the
    refusal records the agent.
    """
    if scope not in RefusalScope.values:
        raise InvalidInput(_("Scope is work, catalogue or url_prefix."), code="invalid_choice", field="scope")
    require_holder_actor(
        actor, holder, power=MandatePower.REFUSE, work=work, whole_catalogue=scope != RefusalScope.WORK
    )
    purpose = purposes_normalize(purposes)
    starts = _not_in_the_past(effective_from, field="effective_from")
    domain = None
    if scope == RefusalScope.WORK:
        if work is None:
            raise InvalidInput(_("Name the work to refuse."), code="required", field="work")
        if not OwnershipClaim.objects.filter(work=work, holder=holder).exclude(status=ClaimStatus.REJECTED).exists():
            raise NotPermitted(_("You can refuse only works you have claimed."), code="no_claim")
    elif work is not None:
        raise InvalidInput(_("Only a work-scoped refusal names a work."), code="unexpected", field="work")
    if scope == RefusalScope.URL_PREFIX:
        try:
            url_prefix = identifier_normalize(scheme=Scheme.URL, value=url_prefix or "").value
        except InvalidIdentifier as exc:
            raise InvalidInput(exc.message, code=exc.code, field="url_prefix") from None
        domain = _domain_for_prefix(holder, url_prefix)
    elif url_prefix:
        raise InvalidInput(_("Only a url_prefix refusal has a URL prefix."), code="unexpected", field="url_prefix")
    with transaction.atomic():
        refusal = Refusal.objects.create(
            holder=holder,
            scope=scope,
            purpose=purpose,
            work=work if scope == RefusalScope.WORK else None,
            domain=domain,
            url_prefix=url_prefix if domain else "",
            url_host=(urlsplit(url_prefix).hostname or "") if domain else "",
            effective_from=starts,
            filed_by=actor.person,
            agent=actor.party if actor.on_behalf_of is not None else None,
        )
        RefusalEvent.objects.create(
            refusal=refusal,
            kind=RefusalEventKind.FILED,
            effective_at=starts,
            actor=actor.person,
        )
        event = audit_record(
            code="optout.refusal.filed",
            actor=actor,
            target=refusal,
            data={
                "holder": holder.pk,
                "scope": scope,
                "purpose": purpose,
                "work": refusal.work_id,
                "url_prefix": refusal.url_prefix,
                "effective_from": starts.isoformat(),
            },
        )
        status_refresh_for_refusal(refusal=refusal, cause=event)
        refusal_notify_in_force(refusal=refusal)
    return refusal


def refusal_withdraw(*, actor: Actor, refusal: Refusal, effective_at: datetime | None = None) -> RefusalEvent:
    """Opt back in from ``effective_at`` (now by default, never earlier).

    A member withdrawing what its agent filed, or an agent what the member filed, is the two saying opposite
    things: the withdrawal stands (the member's word, or its mandate's), and a conflict disputes the work for
    staff to look at.
    """
    require_holder_actor(
        actor,
        refusal.holder,
        power=MandatePower.REFUSE,
        work=refusal.work,
        whole_catalogue=refusal.scope != RefusalScope.WORK,
    )
    at = _not_in_the_past(effective_at, field="effective_at")

    try:
        with transaction.atomic():
            event = RefusalEvent.objects.create(
                refusal=refusal,
                kind=RefusalEventKind.WITHDRAWN,
                effective_at=at,
                actor=actor.person,
            )
            audit = audit_record(
                code="optout.refusal.withdrawn", actor=actor, target=refusal, data={"effective_at": at.isoformat()}
            )
            status_refresh_for_refusal(refusal=refusal, cause=audit)
            refusal_notify_withdrawn(refusal=refusal, effective_at=at)
    except IntegrityError:
        raise InvalidState(_("This refusal is already withdrawn."), code="already_withdrawn") from None
    agent_id = actor.party.pk if actor.on_behalf_of is not None and actor.party is not None else None
    if refusal.agent_id != agent_id and not actor.is_staff:
        mandate_conflict_open(
            actor=actor,
            kind=MandateConflictKind.OPPOSITE_FILINGS,
            member=refusal.holder,
            work=refusal.work,
            parties=[refusal.holder_id, refusal.agent_id, agent_id],
            data={"refusal": refusal.pk, "filed_by_agent": refusal.agent_id, "withdrawn_by_agent": agent_id},
        )
    return event


def regime_set(*, actor: Actor, kind: str, regime: str, effective_from: datetime | None = None) -> KindRegime:
    """Staff set the regime of a work kind from now or a later instant."""
    require_staff(actor)
    if kind not in WorkKind.values:
        raise InvalidInput(_("Unknown work kind."), code="invalid_choice", field="kind")
    if regime not in Regime.values:
        raise InvalidInput(_("Regime is use_first or license_required."), code="invalid_choice", field="regime")
    starts = _not_in_the_past(effective_from, field="effective_from")
    try:
        with transaction.atomic():
            row = KindRegime.objects.create(
                kind=kind,
                regime=regime,
                effective_from=starts,
                created_by=actor.person,
            )
            event = audit_record(
                code="optout.regime.set",
                actor=actor,
                target=row,
                data={"kind": kind, "regime": regime, "effective_from": starts.isoformat()},
            )
            status_refresh_for_kind(kind=kind, cause=event)
    except IntegrityError:
        # regime_one_per_instant: two regimes of one kind from the same instant would leave the lookup to guess.
        raise InvalidState(
            _("This kind already has a regime from that instant; choose another instant."),
            code="regime_instant_taken",
            field="effective_from",
        ) from None
    return row
