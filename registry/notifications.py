"""Telling a party's people: the kernel's notifications (core.notifications) addressed to every active member of a
party, so that the apps above only name the party."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.notifications import notification_create
from registry.models import Membership


def party_notify(*, party_id: int, kind: str, key: str, context: Mapping[str, Any]) -> int:
    """Tell every active member of the party, once per ``key`` (see ``notification_create``); returns how many
    rows are new."""
    user_ids = list(
        Membership.objects.filter(party_id=party_id, user__is_active=True).values_list("user_id", flat=True)
    )
    return notification_create(
        user_ids=user_ids, kind=kind, key=f"{key}:party:{party_id}", context=context, party_id=party_id
    )


def parties_notify(*, contexts: Mapping[int, Mapping[str, Any]], kind: str, key: str) -> int:
    """``party_notify`` for many parties at once, each with its own context (a settlement's statements)."""
    members: dict[int, list[int]] = {}
    for party_id, user_id in Membership.objects.filter(party_id__in=list(contexts), user__is_active=True).values_list(
        "party_id", "user_id"
    ):
        members.setdefault(party_id, []).append(user_id)
    created = 0
    for party_id in sorted(members):
        created += notification_create(
            user_ids=members[party_id],
            kind=kind,
            key=f"{key}:party:{party_id}",
            context=contexts[party_id],
            party_id=party_id,
        )
    return created
