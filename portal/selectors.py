"""Reads the portal's pages need, built on the selectors of ``registry``, ``optout`` and ``compensation``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from compensation.ledger.selectors import party_balances
from compensation.models import AccountKind
from compensation.usage.selectors import violation_list_for_actor
from core.actors import Actor
from core.money import MICRO
from optout.models import Purpose, Refusal, RefusalEventKind, RefusalScope
from optout.observations import domain_disagreements
from optout.selectors import LookupStatus, lookup_batch, refusal_history, refusal_list_for_actor
from registry.errors import InvalidIdentifier
from registry.identifiers import IdentifierKey, Scheme, identifier_normalize, url_prefix_covers
from registry.models import ClaimStatus, DomainStatus, OwnershipClaim, Party, VerifiedDomain, Work
from registry.selectors import apikey_list_for_actor, audit_events_for_party, claim_list_for_actor

# --- Public search ---------------------------------------------------------------------------------------

# Tried in this order on a bare value: the first scheme it validates as is taken.
_GUESS_ORDER = (
    Scheme.ISBN,
    Scheme.ISSN,
    Scheme.ISRC,
    Scheme.ISWC,
    Scheme.ISMN,
    Scheme.ISAN,
    Scheme.KCC,
    Scheme.SHA256,
    Scheme.ISCC,
)
_HOST_LIKE = re.compile(r"^[\w.-]+\.[a-z]{2,}(/\S*)?$", re.IGNORECASE)


def search_key_parse(*, text: str) -> IdentifierKey:
    """The identifier a person typed: ``scheme:value``, a URL, a DOI, a UCI, or a bare value of any scheme.

    Raises ``InvalidIdentifier`` with the reason when nothing fits.
    """
    text = text.strip()
    if not text:
        raise InvalidIdentifier(_("Enter an identifier or a URL."), code="empty", field="q")
    lowered = text.lower()
    if lowered.startswith(("http://", "https://")):
        return identifier_normalize(scheme=Scheme.URL, value=text)
    if lowered.startswith("urn:uci:"):
        return identifier_normalize(scheme=Scheme.UCI, value=text)
    if lowered.startswith(("10.", "doi:", "https://doi.org/", "doi.org/")):
        return identifier_normalize(scheme=Scheme.DOI, value=text)
    scheme, sep, value = text.partition(":")
    if sep and scheme.strip().lower() in Scheme.values:
        return identifier_normalize(scheme=scheme, value=value)
    for candidate in _GUESS_ORDER:
        try:
            return identifier_normalize(scheme=candidate, value=text)
        except InvalidIdentifier:
            continue
    if _HOST_LIKE.match(text):
        return identifier_normalize(scheme=Scheme.URL, value="https://" + text)
    raise InvalidIdentifier(
        _(
            "This is not an identifier the registry knows. Enter an ISBN, ISSN, ISRC, ISWC, DOI, UCI, URL, ...; "
            "or write scheme:value, e.g. isbn:9788936434021."
        ),
        code="unknown_identifier",
        field="q",
    )


@dataclass(frozen=True)
class SearchAnswer:
    key: IdentifierKey
    result: dict[str, Any]
    checked_at: datetime

    @property
    def status(self) -> str:
        return str(self.result["status"])

    @property
    def refusal_effective_from(self) -> datetime | None:
        refusal = self.result.get("refusal")
        return datetime.fromisoformat(refusal["effective_from"]) if refusal else None

    @property
    def refuses_all_training(self) -> bool:
        refusal = self.result.get("refusal") or {}
        return Purpose.TRAIN_AI.value in refusal.get("purposes", [])


def public_search(*, key: IdentifierKey) -> SearchAnswer:
    """What the lookup API answers for one identifier now, for generative training (the strictest purpose)."""
    now = timezone.now()
    answer = lookup_batch(items=[{"scheme": key.scheme, "value": key.value}], purpose=Purpose.TRAIN_GENAI, as_of=now)
    return SearchAnswer(key=key, result=answer.results[0], checked_at=now)


# --- Refusals -----------------------------------------------------------------------------------------


class RefusalState:
    PENDING = "pending"  # filed; the holder's ownership is not verified yet
    SCHEDULED = "scheduled"  # takes effect later
    IN_FORCE = "in_force"
    WITHDRAWN = "withdrawn"


REFUSAL_STATE_LABELS = {
    RefusalState.PENDING: _("Awaiting verification"),
    RefusalState.SCHEDULED: _("Scheduled"),
    RefusalState.IN_FORCE: _("In force"),
    RefusalState.WITHDRAWN: _("Withdrawn"),
}
# Each event as (label when it is past, label when it is still to come).
REFUSAL_EVENT_LABELS = {
    "filed": (_("Filed"), _("Filed")),
    "start": (_("Requested start"), _("Requested start")),
    "effective": (_("Took effect"), _("Takes effect")),
    "withdrawn": (_("Withdrawn"), _("To be withdrawn")),
}


@dataclass
class RefusalRow:
    refusal: Refusal
    history: list[dict[str, Any]]
    state: str
    withdrawal_at: datetime | None = None
    label: str = field(default="")

    @property
    def state_label(self) -> str:
        return str(REFUSAL_STATE_LABELS[self.state])

    @property
    def can_withdraw(self) -> bool:
        return self.withdrawal_at is None


def refusal_row(*, refusal: Refusal, at: datetime) -> RefusalRow:
    """A refusal with its timeline and whether it is in force at ``at``.

    The timeline shows the filing when it was recorded (its event's ``effective_at`` is the chosen start,
    which may lie ahead), the start a holder asked for while it awaits verification, and the rest at the
    times they take effect, in the tense they have at ``at``."""
    history = refusal_history(refusal=refusal)
    withdrawal = next((e["at"] for e in history if e["event"] == RefusalEventKind.WITHDRAWN), None)
    effective = next((e["at"] for e in history if e["event"] == "effective"), None)
    timeline: list[dict[str, Any]] = []
    filed_at = None
    for event in history:
        if event["event"] == RefusalEventKind.FILED:
            filed_at = event["recorded_at"]
            timeline.append({**event, "at": filed_at})
            if effective is None and withdrawal is None and event["at"] > filed_at:
                timeline.append({**event, "event": "start"})
        else:
            timeline.append(dict(event))
    # A refusal filed to start now took effect a few microseconds before its filing was recorded: nothing
    # happens before the filing, so it comes first and the rest follow in the order they take effect.
    order = {"filed": 0, "start": 1, "effective": 2, "withdrawn": 3}
    timeline.sort(key=lambda e: (max(e["at"], filed_at or e["at"]), order.get(e["event"], 4)))
    if withdrawal is not None and withdrawal <= at:
        state = RefusalState.WITHDRAWN
    elif effective is None:
        state = RefusalState.PENDING
    elif effective > at:
        state = RefusalState.SCHEDULED
    else:
        state = RefusalState.IN_FORCE
    for event in timeline:
        event["future"] = event["at"] > at
        past, future = REFUSAL_EVENT_LABELS.get(event["event"], (event["event"], event["event"]))
        event["label"] = future if event["future"] else past
    return RefusalRow(refusal=refusal, history=timeline, state=state, withdrawal_at=withdrawal)


def refusal_rows_for_actor(*, actor: Actor) -> list[RefusalRow]:
    now = timezone.now()
    return [refusal_row(refusal=r, at=now) for r in refusal_list_for_actor(actor=actor)]


def refusal_rows_for_work(*, actor: Actor, work: Work) -> list[RefusalRow]:
    """The actor's refusals that cover ``work``: of the work itself, of the catalogue, or of a prefix of its URLs."""
    urls = [i.value for i in work.identifiers.all() if i.scheme == Scheme.URL]
    now = timezone.now()
    rows = []
    for refusal in refusal_list_for_actor(actor=actor):
        covers = (
            (refusal.scope == RefusalScope.WORK and refusal.work_id == work.pk)
            or refusal.scope == RefusalScope.CATALOGUE
            or (
                refusal.scope == RefusalScope.URL_PREFIX and any(url_prefix_covers(refusal.url_prefix, u) for u in urls)
            )
        )
        if covers:
            rows.append(refusal_row(refusal=refusal, at=now))
    return rows


def work_status_now(*, work: Work) -> dict[str, Any]:
    """The lookup's answer for the work now (through its first identifier; all identify the same work)."""
    identifiers = sorted(work.identifiers.all(), key=lambda i: (i.scheme, i.value))
    if not identifiers:
        return {"status": LookupStatus.INVALID}
    first = identifiers[0]
    now = timezone.now()
    result = lookup_batch(
        items=[{"scheme": first.scheme, "value": first.value}], purpose=Purpose.TRAIN_GENAI, as_of=now
    ).results[0]
    result["checked_at"] = now
    return result


# --- Dashboards ------------------------------------------------------------------------------------


def holder_payable_won(*, party: Party) -> int:
    """What the registry owes the holder now, in whole won (rounded down: payouts are whole won)."""
    balance = party_balances(party=party)["by_kind"].get(AccountKind.HOLDER_PAYABLE.value, 0)
    return int(-balance // MICRO)


def holder_dashboard(*, actor: Actor, party: Party) -> dict[str, Any]:
    refusals = refusal_rows_for_actor(actor=actor)
    return {
        "works_count": OwnershipClaim.objects.filter(holder=party)
        .exclude(status=ClaimStatus.REJECTED)
        .values("work")
        .distinct()
        .count(),
        "refusals_in_force": sum(1 for r in refusals if r.state == RefusalState.IN_FORCE),
        "refusals_pending": sum(1 for r in refusals if r.state in (RefusalState.PENDING, RefusalState.SCHEDULED)),
        "pending_claims": claim_list_for_actor(actor=actor)
        .filter(status__in=[ClaimStatus.PENDING, ClaimStatus.IN_REVIEW])
        .count(),
        "balance_won": holder_payable_won(party=party),
        "disagreeing_domains": domains_disagreeing(party=party),
        "activity": audit_events_for_party(party=party, limit=15),
    }


def domains_disagreeing(*, party: Party) -> list[tuple[VerifiedDomain, int]]:
    """The party's verified, observed domains whose own signals disagree with its refusals now, with how many
    paths disagree (a few queries per observed domain; a holder has a handful of domains)."""
    observed = (
        VerifiedDomain.objects.filter(holder=party, status=DomainStatus.VERIFIED, signal_observations__isnull=False)
        .distinct()
        .order_by("origin")
    )
    found = [(domain, len(domain_disagreements(domain=domain))) for domain in observed]
    return [(domain, count) for domain, count in found if count]


def lab_dashboard(*, actor: Actor, party: Party) -> dict[str, Any]:
    from compensation.usage.selectors import manifest_list_for_actor

    return {
        "keys_active": apikey_list_for_actor(actor=actor).filter(revoked_at__isnull=True).count(),
        "manifests_count": manifest_list_for_actor(actor=actor).count(),
        "violations_count": violation_list_for_actor(actor=actor).count(),
        "receivable_won": int(party_balances(party=party)["by_kind"].get(AccountKind.LAB_RECEIVABLE.value, 0) // MICRO),
        "activity": audit_events_for_party(party=party, limit=15),
    }


# --- Earnings --------------------------------------------------------------------------------------


def works_selected(*, actor: Actor, holder: Party, ids: Sequence[int]) -> list[Work]:
    """The works among ``ids`` the holder has a live claim on (others are silently left out)."""
    from registry.selectors import work_list_for_holder

    return list(work_list_for_holder(holder=holder).filter(pk__in=list(ids)))
