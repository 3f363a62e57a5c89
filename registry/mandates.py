"""Mandates: a society or agent acting for a member party, within a scope and with powers.

Writes (``mandate_invite``, ``mandate_accept``, ``mandate_end``) and the one check every write service makes
when an agent acts "on behalf of" a member (``mandate_require``). Mandates never change in place: accepting and
ending are events recorded once (the database refuses any other change, migration 0014).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime

from django.core.files import File
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from core.actors import Actor, require_staff
from core.dates import CLOCK_SKEW
from core.errors import InvalidInput, InvalidState, NotFound, NotPermitted
from registry.audit import audit_record
from registry.models import (
    MANDATE_POWER_FIELDS,
    ApiScope,
    Mandate,
    MandatePower,
    MandateScope,
    MandateStatus,
    MandateWork,
    MemberRole,
    Membership,
    OwnershipClaim,
    Party,
    PartyKind,
    StatementsTo,
    Work,
    WorkKind,
)

# The powers an agent uses to act on the write endpoints; the other two say where statements and payouts go.
ACTING_POWERS = (MandatePower.REGISTER_WORKS, MandatePower.CLAIM, MandatePower.REFUSE)
MANDATE_DOCUMENT_MAX_BYTES = 20 * 1024 * 1024


def no_mandate(message: str | Promise | None = None) -> NotPermitted:
    return NotPermitted(message or _("No mandate in force lets you do this for this member."), code="no_mandate")


def _in_force(at: datetime) -> Q:
    return Q(status=MandateStatus.ACTIVE, starts_at__lte=at) & (Q(ends_at__isnull=True) | Q(ends_at__gt=at))


def mandates_in_force(*, agent_id: int, member_id: int, at: datetime | None = None) -> QuerySet[Mandate]:
    return Mandate.objects.filter(_in_force(at or timezone.now()), agent_id=agent_id, member_id=member_id)


def _covers(mandate: Mandate, *, work: Work | None, kind: str | None, whole_catalogue: bool) -> bool:
    if mandate.scope == MandateScope.CATALOGUE:
        return True
    if whole_catalogue:
        # A refusal of the whole catalogue (or of a URL prefix) reaches works outside a narrower mandate.
        return False
    if mandate.scope == MandateScope.KINDS:
        work_kind = work.kind if work is not None else kind
        return work_kind is not None and work_kind in mandate.kinds
    if work is None:
        # New works cannot be on a list of works.
        return False
    return MandateWork.objects.filter(mandate=mandate, work=work).exists()


def mandate_require(
    *,
    actor: Actor,
    member: Party,
    power: str,
    work: Work | None = None,
    kind: str | None = None,
    whole_catalogue: bool = False,
) -> Mandate:
    """The mandate in force under which ``actor.party`` may use ``power`` for ``member`` on ``work`` (or a new work
    of ``kind``, or the whole catalogue); ``NotPermitted`` with the code ``no_mandate`` otherwise."""
    if actor.party is None or actor.on_behalf_of is None or actor.on_behalf_of.pk != member.pk:
        raise no_mandate()
    field = MANDATE_POWER_FIELDS[MandatePower(power)]
    for mandate in mandates_in_force(agent_id=actor.party.pk, member_id=member.pk).filter(**{field: True}):
        if _covers(mandate, work=work, kind=kind, whole_catalogue=whole_catalogue):
            return mandate
    raise no_mandate()


def mandate_require_new_works(*, actor: Actor, member: Party) -> Mandate:
    """A mandate in force lets ``actor`` register some new works for ``member`` (its whole catalogue or some kinds)."""
    if actor.party is None or actor.on_behalf_of is None or actor.on_behalf_of.pk != member.pk:
        raise no_mandate()
    if not actor.has_scope(ApiScope.WORKS_WRITE):
        raise NotPermitted(
            _("This API key lacks the scope “%(scope)s”.") % {"scope": ApiScope.WORKS_WRITE}, code="missing_scope"
        )
    mandate = (
        mandates_in_force(agent_id=actor.party.pk, member_id=member.pk)
        .filter(can_register_works=True, scope__in=[MandateScope.CATALOGUE, MandateScope.KINDS])
        .first()
    )
    if mandate is None:
        raise no_mandate()
    return mandate


def actor_on_behalf_of(*, actor: Actor, member_id: object) -> tuple[Actor, Party]:
    """The actor acting for ``member_id`` (the ``on_behalf_of`` of a request) and that member.

    Only a society or agent with a mandate in force from that member may act for it; which acts the mandate
    allows is checked by each service (``mandate_require``).
    """
    if actor.party is None or not actor.party.is_society:
        raise no_mandate(_("Only a society or agent acts on behalf of a member."))
    try:
        pk = int(str(member_id))
    except ValueError:
        raise InvalidInput(_("on_behalf_of is a party id."), code="invalid", field="on_behalf_of") from None
    member = Party.objects.filter(pk=pk).first()
    if member is None or not mandates_in_force(agent_id=actor.party.pk, member_id=member.pk).exists():
        raise no_mandate()
    return replace(actor, on_behalf_of=member), member


def acting_holder(*, actor: Actor, member_id: object = None) -> tuple[Actor, Party]:
    """Who a write acts for: the caller's own party, or with ``on_behalf_of`` the member it holds a mandate from."""
    if member_id in (None, ""):
        if actor.party is None:
            raise NotPermitted(
                _("Act for a party: use a party API key, or send X-Party-Id when you belong to several."),
                code="no_party",
            )
        return actor, actor.party
    return actor_on_behalf_of(actor=actor, member_id=member_id)


# --- Writes ------------------------------------------------------------------------------------------


def _require_acting_for(actor: Actor, party: Party) -> None:
    """The actor acts for ``party`` itself (not for someone else) with the write scope; people need a role."""
    if actor.party is None or actor.party.pk != party.pk or actor.on_behalf_of is not None:
        raise NotPermitted()
    if not actor.has_scope(ApiScope.WORKS_WRITE):
        raise NotPermitted(
            _("This API key lacks the scope “%(scope)s”.") % {"scope": ApiScope.WORKS_WRITE}, code="missing_scope"
        )
    if (
        actor.api_key is None
        and not Membership.objects.filter(
            party=party, user_id=actor.user_id or 0, role__in=[MemberRole.OWNER, MemberRole.ADMIN]
        ).exists()
    ):
        raise NotPermitted(_("Only an owner or administrator of the party may do this."))


def _member_by_email(email: str) -> Party | None:
    """The rights holder whose owner or administrator signs in with ``email``, when there is exactly one."""
    parties = list(
        Party.objects.filter(
            kind=PartyKind.HOLDER,
            memberships__user__email__iexact=email,
            memberships__role__in=[MemberRole.OWNER, MemberRole.ADMIN],
        ).distinct()[:2]
    )
    return parties[0] if len(parties) == 1 else None


def mandate_invite(
    *,
    actor: Actor,
    agent: Party,
    scope: str,
    powers: Sequence[str],
    member: Party | None = None,
    member_email: str = "",
    works: Iterable[Work] = (),
    kinds: Sequence[str] = (),
    statements_to: str = StatementsTo.MEMBER,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    document: File[bytes] | None = None,
) -> Mandate:
    """A society or agent invites a member (by party, or by the e-mail its owner signs in with) to give it a
    mandate with these terms. Nothing is allowed until the member accepts (``mandate_accept``)."""
    _require_acting_for(actor, agent)
    if not agent.is_society:
        raise InvalidInput(_("Only a society or agent holds mandates."), code="not_a_society")
    member_email = (member_email or "").strip().lower()
    if member is None and member_email:
        member = _member_by_email(member_email)
    if member is None and not member_email:
        raise InvalidInput(_("Name the member by party id or e-mail."), code="required", field="member")
    if member is not None and member.kind != PartyKind.HOLDER:
        raise InvalidInput(_("Only a rights holder gives a mandate."), code="not_a_holder", field="member")
    if scope not in MandateScope.values:
        raise InvalidInput(_("Scope is catalogue, works or kinds."), code="invalid_choice", field="scope")
    unknown = sorted(set(powers) - set(MandatePower.values))
    if unknown or not powers:
        raise InvalidInput(
            _("Powers are %(powers)s; got: %(got)s")
            % {"powers": ", ".join(MandatePower.values), "got": ", ".join(unknown) or "-"},
            code="invalid_powers",
            field="powers",
        )
    works = list(works)
    kinds = sorted(set(kinds))
    if scope == MandateScope.WORKS:
        if not works:
            raise InvalidInput(_("List the works the mandate covers."), code="required", field="works")
        if member is None or OwnershipClaim.objects.filter(holder=member, work__in=works).exclude(
            status="rejected"
        ).values("work").distinct().count() != len({w.pk for w in works}):
            raise InvalidInput(_("List only works the member has claimed."), code="not_members_work", field="works")
    elif works:
        raise InvalidInput(_("Only a works-scoped mandate lists works."), code="unexpected", field="works")
    if scope == MandateScope.KINDS:
        if not kinds or set(kinds) - set(WorkKind.values):
            raise InvalidInput(
                _("Give the work kinds: %(kinds)s.") % {"kinds": ", ".join(WorkKind.values)},
                code="invalid_choice",
                field="kinds",
            )
    elif kinds:
        raise InvalidInput(_("Only a kinds-scoped mandate names kinds."), code="unexpected", field="kinds")
    if statements_to not in StatementsTo.values:
        raise InvalidInput(_("Statements go to member, agent or both."), code="invalid_choice", field="statements_to")
    if statements_to != StatementsTo.MEMBER and MandatePower.RECEIVE_STATEMENTS not in powers:
        raise InvalidInput(
            _("Statements go to the agent only with the power receive_statements."),
            code="invalid_choice",
            field="statements_to",
        )
    now = timezone.now()
    for value, field in ((starts_at, "starts_at"), (ends_at, "ends_at")):
        if value is not None and timezone.is_naive(value):
            raise InvalidInput(_("Give the time with its offset, e.g. 2026-12-01T00:00:00+09:00."), field=field)
    if starts_at is not None and starts_at < now - CLOCK_SKEW:
        # What an agent did is judged by the mandate in force then: a mandate cannot reach into the past.
        raise InvalidInput(
            _("This time is in the past; history cannot be rewritten."), code="in_the_past", field="starts_at"
        )
    starts = max(starts_at or now, now)
    if ends_at is not None and ends_at <= starts:
        raise InvalidInput(_("The end comes after the start."), code="out_of_range", field="ends_at")
    if document is not None and document.size > MANDATE_DOCUMENT_MAX_BYTES:
        raise InvalidInput(_("The document is larger than 20 MB."), code="too_large", field="document")
    mandate = Mandate(
        agent=agent,
        member=member,
        invited_email=member_email if member is None else "",
        scope=scope,
        kinds=kinds,
        statements_to=statements_to,
        starts_at=starts,
        ends_at=ends_at,
        created_by=actor.person,
        **{field: power in powers for power, field in MANDATE_POWER_FIELDS.items()},
    )
    if document is not None:
        mandate.document.save("mandate.pdf", document, save=False)
    with transaction.atomic():
        mandate.save()
        MandateWork.objects.bulk_create([MandateWork(mandate=mandate, work=work) for work in works])
        audit_record(
            code="registry.mandate.invited",
            actor=actor,
            target=mandate,
            data={
                "agent": agent.pk,
                "member": member.pk if member is not None else None,
                "email": member_email if member is None else "",
                "scope": scope,
                "works": [w.pk for w in works],
                "kinds": kinds,
                "powers": mandate.powers,
                "statements_to": statements_to,
            },
        )
    return mandate


def mandate_accept(*, actor: Actor, mandate: Mandate, member: Party | None = None, reason: str = "") -> Mandate:
    """The member accepts the invitation (an invitation by e-mail names the member then), or staff verify the
    member's signed mandate document. From ``starts_at`` on, the agent may act within its terms."""
    via = "member"
    if actor.is_staff and actor.party is None:
        require_staff(actor)
        via = "staff"
        member = mandate.member
        if member is None:
            raise InvalidState(_("The invitation names no member party yet."), code="no_member")
    else:
        member = member or actor.party
        if member is None:
            raise NotPermitted()
        if member.pk == mandate.agent_id:
            raise NotPermitted(_("Only the member accepts a mandate."), code="not_the_member")
        _require_acting_for(actor, member)
        if mandate.member_id is not None and mandate.member_id != member.pk:
            raise NotFound()
        if mandate.member_id is None:
            email = getattr(actor.person, "email", "") or ""
            if not email or email.lower() != mandate.invited_email:
                raise NotFound()
            if member.kind != PartyKind.HOLDER:
                raise InvalidInput(_("Only a rights holder gives a mandate."), code="not_a_holder")
    now = timezone.now()
    with transaction.atomic():
        changed = (
            Mandate.objects.filter(pk=mandate.pk, status=MandateStatus.INVITED)
            .filter(Q(member__isnull=True) | Q(member=member))
            .update(
                status=MandateStatus.ACTIVE,
                member=member,
                accepted_at=now,
                accepted_by=actor.person,
                accepted_via=via,
            )
        )
        if changed != 1:
            raise InvalidState(_("Only an open invitation can be accepted."), code="not_invited")
        mandate.refresh_from_db()
        audit_record(
            code="registry.mandate.accepted",
            actor=actor,
            target=mandate,
            data={"agent": mandate.agent_id, "member": member.pk, "via": via, "reason": reason},
        )
    return mandate


def mandate_end(*, actor: Actor, mandate: Mandate, reason: str = "") -> Mandate:
    """Either side (or staff) ends the mandate now; an invitation not yet accepted is withdrawn or declined the
    same way. What the agent did before stays as it was."""
    if not actor.is_staff:
        sides = {mandate.agent_id, mandate.member_id}
        if actor.party is None or actor.party.pk not in sides:
            raise NotFound()
        _require_acting_for(actor, actor.party)
    now = timezone.now()
    with transaction.atomic():
        changed = Mandate.objects.filter(
            pk=mandate.pk, status__in=[MandateStatus.INVITED, MandateStatus.ACTIVE]
        ).update(status=MandateStatus.ENDED, ended_at=now, ended_by_party=actor.party, end_reason=reason)
        if changed != 1:
            raise InvalidState(_("This mandate has already ended."), code="already_ended")
        mandate.refresh_from_db()
        audit_record(
            code="registry.mandate.ended",
            actor=actor,
            target=mandate,
            data={"agent": mandate.agent_id, "member": mandate.member_id, "reason": reason},
        )
    return mandate


# --- Reads ---------------------------------------------------------------------------------------------


def mandate_list_for_actor(*, actor: Actor) -> QuerySet[Mandate]:
    """The mandates the actor's party holds or gave, and invitations sent to the signed-in person's e-mail."""
    mandates = (
        Mandate.objects.select_related("agent", "member").prefetch_related("listed").order_by("-created_at", "-pk")
    )
    if actor.is_staff and actor.party is None:
        return mandates
    condition = Q(pk__in=[])
    if actor.party is not None:
        condition |= Q(agent=actor.party) | Q(member=actor.party)
    email = (getattr(actor.person, "email", "") or "").lower()
    if email:
        condition |= Q(member__isnull=True, invited_email=email, status=MandateStatus.INVITED)
    return mandates.filter(condition)


def mandate_get_for_actor(*, actor: Actor, mandate_id: int) -> Mandate:
    mandate = mandate_list_for_actor(actor=actor).filter(pk=mandate_id).first()
    if mandate is None:
        raise NotFound()
    return mandate


def members_for_agent(*, agent: Party, power: str | None = None) -> list[Party]:
    """The members an agent holds a mandate in force from (with ``power``, when given), by name."""
    mandates = Mandate.objects.filter(_in_force(timezone.now()), agent=agent)
    if power is not None:
        mandates = mandates.filter(**{MANDATE_POWER_FIELDS[MandatePower(power)]: True})
    return list(Party.objects.filter(pk__in=mandates.values("member_id")).order_by("name"))
