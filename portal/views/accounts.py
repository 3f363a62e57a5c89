"""Accounts: sign-up with e-mail verification, sign-in, parties, members and invitations."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils.encoding import force_str
from django.utils.http import url_has_allowed_host_and_scheme, urlsafe_base64_decode
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods, require_POST

from core.actors import Actor
from core.errors import RegistryError
from portal import ratelimit, services
from portal.access import Portal, party_choose, portal_view
from portal.form_errors import error_to_form
from portal.forms import InviteForm, LoginForm, PartyForm, RoleForm, SignupForm
from portal.views.common import base_url
from registry import services as registry_services
from registry.models import Membership
from registry.selectors import membership_list_for_party

logger = logging.getLogger(__name__)


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("portal:dashboard")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.account_signup(
                email=form.cleaned_data["email"], password=form.cleaned_data["password1"], base_url=base_url(request)
            )
        except RegistryError as exc:
            error_to_form(form, exc)
        else:
            request.session["portal_signup_email"] = form.cleaned_data["email"]
            return redirect("portal:signup-done")
    return render(request, "portal/accounts/signup.html", {"form": form})


def signup_done(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/accounts/signup_done.html", {"email": request.session.get("portal_signup_email")})


def verify_email(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    try:
        user = get_user_model().objects.filter(pk=int(force_str(urlsafe_base64_decode(uidb64)))).first()
    except (ValueError, TypeError, OverflowError):
        user = None
    if user is None:
        return render(request, "portal/accounts/verify_failed.html", status=400)
    try:
        user = services.account_verify_email(user=user, token=token)
    except RegistryError:
        return render(request, "portal/accounts/verify_failed.html", status=400)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    messages.success(request, _("Your e-mail address is confirmed. Welcome!"))
    pending = request.session.pop("portal_invitation", None)
    if pending:
        return redirect("portal:invitation", token=pending)
    return redirect("portal:party-create")


class LoginView(auth_views.LoginView):
    form_class = LoginForm
    template_name = "portal/accounts/login.html"
    redirect_authenticated_user = True


class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset, with mail limited per e-mail address and per client (portal/ratelimit.py).

    Over a limit the answer is the same page as when a mail goes out: it must not tell whether the
    address has an account, nor that the limit was reached for it.
    """

    def form_valid(self, form: Any) -> HttpResponse:
        allowed = ratelimit.password_reset_allowed(
            email=form.cleaned_data["email"], address=ratelimit.client_address(self.request)
        )
        if not allowed:
            logger.info("Password-reset mail withheld: limit reached for this address or client.")
            return HttpResponseRedirect(self.get_success_url())
        return super().form_valid(form)


class LogoutView(auth_views.LogoutView):
    template_name = "portal/accounts/logged_out.html"


@login_required
@require_http_methods(["GET", "POST"])
def party_create(request: HttpRequest) -> HttpResponse:
    form = PartyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            person = _person(request)
            party = registry_services.party_create(actor=Actor(user=person), owner=person, **form.cleaned_data)
        except RegistryError as exc:
            error_to_form(form, exc)
        else:
            party_choose(request, party_id=party.pk)
            messages.success(request, _("%(name)s is created; you are its owner.") % {"name": party.name})
            return redirect("portal:dashboard")
    return render(request, "portal/party/create.html", {"form": form})


@login_required
@require_POST
def party_switch(request: HttpRequest) -> HttpResponse:
    party_id = request.POST.get("party", "")
    if not party_id.isdigit() or not party_choose(request, party_id=int(party_id)):
        raise Http404()
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = ""
    return redirect(target or "portal:dashboard")


@portal_view()
@require_http_methods(["GET", "POST"])
def members(request: HttpRequest, portal: Portal) -> HttpResponse:
    if request.method == "POST" and not portal.is_admin:
        raise PermissionDenied()
    form = InviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.invitation_send(
                actor=portal.actor,
                party=portal.party,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                base_url=base_url(request),
            )
        except RegistryError as exc:
            error_to_form(form, exc)
        else:
            messages.success(request, _("The invitation is on its way to %(email)s.") % form.cleaned_data)
            return redirect("portal:members")
    context: dict[str, Any] = {
        "form": form,
        "memberships": membership_list_for_party(party=portal.party),
        "is_admin": portal.is_admin,
        "role_form": RoleForm(),
    }
    return render(request, "portal/party/members.html", context)


def _membership(portal: Portal, membership_id: int) -> Membership:
    membership = membership_list_for_party(party=portal.party).filter(pk=membership_id).first()
    if membership is None:
        raise Http404()
    return membership


@portal_view(admin=True)
@require_POST
def member_role(request: HttpRequest, portal: Portal, membership_id: int) -> HttpResponse:
    membership = _membership(portal, membership_id)
    form = RoleForm(request.POST)
    if form.is_valid():
        try:
            registry_services.membership_add(
                actor=portal.actor, party=portal.party, user=membership.user, role=form.cleaned_data["role"]
            )
        except RegistryError as exc:
            messages.error(request, str(exc.message))
        else:
            messages.success(request, _("The role is changed."))
    return redirect("portal:members")


@portal_view(admin=True)
@require_POST
def member_remove(request: HttpRequest, portal: Portal, membership_id: int) -> HttpResponse:
    membership = _membership(portal, membership_id)
    try:
        registry_services.membership_remove(actor=portal.actor, membership=membership)
    except RegistryError as exc:
        messages.error(request, str(exc.message))
    else:
        messages.success(request, _("%(email)s is no longer a member.") % {"email": membership.user.email})
    return redirect("portal:members")


@require_http_methods(["GET", "POST"])
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """Accept an invitation: sign in (or sign up) with the invited address, then confirm."""
    if not request.user.is_authenticated:
        request.session["portal_invitation"] = token
        messages.info(request, _("Sign in, or sign up with the invited address, to accept the invitation."))
        return redirect(f"{_login_url()}?next={request.path}")
    if request.method == "POST":
        try:
            membership = services.invitation_accept(user=_person(request), token=token)
        except RegistryError as exc:
            return render(request, "portal/party/invitation.html", {"error": exc.message}, status=400)
        request.session.pop("portal_invitation", None)
        party_choose(request, party_id=membership.party_id)
        messages.success(request, _("You are now a member of %(party)s.") % {"party": membership.party.name})
        return redirect("portal:dashboard")
    return render(request, "portal/party/invitation.html", {"token": token})


def _person(request: HttpRequest) -> User:
    """The signed-in person as a ``User`` (views that call this require sign-in)."""
    assert isinstance(request.user, User)
    return request.user


def _login_url() -> str:
    from django.urls import reverse

    return reverse("portal:login")
