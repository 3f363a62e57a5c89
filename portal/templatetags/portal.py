"""Formatting for the portal's language (won amounts, identifiers) and the works a holder may claim."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import template
from django.contrib.humanize.templatetags.humanize import intcomma
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _

from core.money import MICRO
from registry.models import Work
from registry.selectors import work_ids_claimable

register = template.Library()


@register.simple_tag(takes_context=True)
def claimable_works(context: template.Context, items: Any, key: str = "id") -> set[int]:
    """The ids of the works among ``items`` that the party the person acts for may claim a share of (empty
    for anyone not signed in for a rights holder), so a page can offer the claim form where a holder meets
    someone else's work. ``items`` is a work, an id, a mapping holding the id under ``key``, or a list of them."""
    party = context.get("portal_party")
    if party is None or not items:
        return set()
    if isinstance(items, (Work, int, Mapping)):
        items = [items]
    ids = set()
    for item in items:
        value = item.pk if isinstance(item, Work) else item.get(key) if isinstance(item, Mapping) else item
        if isinstance(value, int):
            ids.add(value)
    return work_ids_claimable(party=party, work_ids=ids)


@register.filter
def won(amount: int | None) -> str:
    """Whole won: "1,234원" in Korean, "₩1,234" in English."""
    value = int(amount or 0)
    text = intcomma(abs(value))
    sign = "\u2212" if value < 0 else ""  # the minus sign, not a hyphen
    if (get_language() or "ko").startswith("ko"):
        return f"{sign}{text}원"
    return f"{sign}₩{text}"


@register.filter
def micro_won(amount: int | None) -> str:
    """Micro-won as whole won, rounded down towards zero as payouts are."""
    value = int(amount or 0)
    return won(int(value / MICRO))


@register.filter
def percent_bp(share_bp: int | None) -> str:
    value = (share_bp or 0) / 100
    return _("%(value)s%%") % {"value": f"{value:g}"}


_AUDIT_LABELS = {
    "registry.party.created": gettext_lazy("Party created"),
    "registry.membership.added": gettext_lazy("Member added or role changed"),
    "registry.membership.removed": gettext_lazy("Member removed"),
    "registry.apikey.created": gettext_lazy("API key created"),
    "registry.apikey.revoked": gettext_lazy("API key revoked"),
    "registry.work.registered": gettext_lazy("Work registered"),
    "registry.work.identifier_added": gettext_lazy("Identifier added to a work"),
    "registry.work.disputed": gettext_lazy("Work disputed: claimed shares exceed 100%"),
    "registry.work.dispute_resolved": gettext_lazy("Dispute resolved"),
    "registry.claim.filed": gettext_lazy("Ownership claim filed"),
    "registry.claim.accepted_for_review": gettext_lazy("Ownership claim accepted for review"),
    "registry.claim.verified": gettext_lazy("Ownership claim verified"),
    "registry.claim.rejected": gettext_lazy("Ownership claim rejected"),
    "registry.import.created": gettext_lazy("Bulk import uploaded"),
    "registry.import.processed": gettext_lazy("Bulk import finished"),
    "registry.domain.added": gettext_lazy("Domain added"),
    "registry.domain.verified": gettext_lazy("Domain verified"),
    "optout.refusal.filed": gettext_lazy("Refusal filed"),
    "optout.refusal.withdrawn": gettext_lazy("Refusal withdrawn"),
    "compensation.manifest.received": gettext_lazy("Usage manifest received"),
    "compensation.manifest.processed": gettext_lazy("Usage manifest processed"),
    "compensation.escrow.released": gettext_lazy("Escrow released"),
    "compensation.payout_profile.created": gettext_lazy("Payout details set"),
    "compensation.payout_profile.changed": gettext_lazy("Payout details changed"),
    "compensation.payout_profile.verified": gettext_lazy("Payout details verified"),
    "portal.invitation.sent": gettext_lazy("Invitation sent"),
    "registry.mandate.invited": gettext_lazy("Mandate invitation sent"),
    "registry.mandate.accepted": gettext_lazy("Mandate accepted"),
    "registry.mandate.ended": gettext_lazy("Mandate ended"),
    "registry.mandate.conflict_opened": gettext_lazy("Conflict between a member and its agents"),
    "registry.mandate.conflict_resolved": gettext_lazy("Conflict between a member and its agents resolved"),
}


@register.filter
def audit_label(code: str) -> str:
    label = _AUDIT_LABELS.get(code)
    return str(label) if label is not None else code
