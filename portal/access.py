"""Who a portal request acts for: the signed-in person and the party chosen in their session.

Every portal view that reads or writes a party's data builds its ``Actor`` here, and the services and
selectors it calls decide what that actor may see or change, exactly as for the API.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, Concatenate, ParamSpec

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase
from django.shortcuts import redirect
from django.utils.translation import gettext_lazy as _

from core.actors import Actor
from core.errors import NotPermitted
from registry.models import MemberRole, Membership, Party, PartyKind
from registry.selectors import membership_list_for_user

SESSION_PARTY = "portal_party_id"
P = ParamSpec("P")


@dataclass(frozen=True)
class Portal:
    """The person, the party they act for and their role in it."""

    user: User
    membership: Membership

    @property
    def party(self) -> Party:
        return self.membership.party

    @property
    def actor(self) -> Actor:
        return Actor(user=self.user, party=self.party)

    @property
    def is_admin(self) -> bool:
        return self.membership.role in (MemberRole.OWNER, MemberRole.ADMIN)


def portal_parties(request: HttpRequest) -> tuple[list[Membership], Membership | None]:
    """The person's memberships and the active one (the session's choice, else the oldest). Cached per request."""
    cached: tuple[list[Membership], Membership | None] | None = getattr(request, "_portal_parties", None)
    if cached is not None:
        return cached
    memberships = list(membership_list_for_user(user_id=int(str(request.user.pk))))
    chosen = request.session.get(SESSION_PARTY)
    active = next((m for m in memberships if m.party_id == chosen), memberships[0] if memberships else None)
    result = (memberships, active)
    # In the request's __dict__, where party_choose drops it: HttpRequest declares no such attribute.
    request.__dict__["_portal_parties"] = result
    return result


def party_choose(request: HttpRequest, *, party_id: int) -> bool:
    """Make ``party_id`` the active party, if the person belongs to it."""
    memberships, _active = portal_parties(request)
    if not any(m.party_id == party_id for m in memberships):
        return False
    request.session[SESSION_PARTY] = party_id
    request.__dict__.pop("_portal_parties", None)
    return True


def portal_view(
    *, kind: str | tuple[str, ...] | None = None, admin: bool = False
) -> Callable[[Callable[Concatenate[HttpRequest, Portal, P], HttpResponseBase]], Callable[..., HttpResponseBase]]:
    """A view for a signed-in member of a party (of ``kind``, or one of the kinds, if given; an owner or admin if
    ``admin``).

    Without a party the person is sent to create one; a page of the other party kind is not found.
    """

    def decorate(
        view: Callable[Concatenate[HttpRequest, Portal, P], HttpResponseBase],
    ) -> Callable[..., HttpResponseBase]:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            _memberships, active = portal_parties(request)
            if active is None:
                messages.info(request, _("Create a rights holder or AI lab to start."))
                return redirect("portal:party-create")
            if kind is not None and active.party.kind not in ((kind,) if isinstance(kind, str) else kind):
                raise Http404()
            # login_required let only a signed-in person through.
            assert isinstance(request.user, User)
            portal = Portal(user=request.user, membership=active)
            if admin and not portal.is_admin:
                raise Http404()
            return view(request, portal, *args, **kwargs)

        return wrapper

    return decorate


holder_view = portal_view(kind=PartyKind.HOLDER)
lab_view = portal_view(kind=PartyKind.LAB)
# Statements and payouts: rights holders, and societies or agents for their members under mandates.
payee_view = portal_view(kind=(PartyKind.HOLDER, PartyKind.SOCIETY))


def password_confirm(request: HttpRequest, portal: Portal, password: str) -> None:
    """The signed-in person's password again, for what changes where a holder's money goes. Wrong ones count
    against the sign-in limits (``portal.ratelimit``), so such a form is no way to guess a password."""
    from portal import ratelimit

    who = {"username": portal.user.get_username(), "address": ratelimit.client_address(request)}
    wait = ratelimit.login_wait_minutes(**who)
    if wait is not None:
        raise NotPermitted(
            _("Too many wrong passwords: try again in %(minutes)s minutes.") % {"minutes": wait},
            code="too_many_attempts",
            field="password",
        )
    if not password or not portal.user.check_password(password):
        ratelimit.login_failed(**who)
        raise NotPermitted(_("This is not your password."), code="wrong_password", field="password")
