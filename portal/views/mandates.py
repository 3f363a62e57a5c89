"""Mandates in the portal: a society or agent invites members and acts for them; a member accepts or ends."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods, require_POST

from core.errors import NotFound, RegistryError
from optout import services as optout_services
from optout.models import RefusalScope
from portal.access import Portal, portal_view
from portal.form_errors import error_to_form
from portal.forms import MandateInviteForm, MemberRefusalForm
from registry.mandates import (
    actor_on_behalf_of,
    mandate_accept,
    mandate_end,
    mandate_get_for_actor,
    mandate_invite,
    mandate_list_for_actor,
)
from registry.models import Mandate, MandateScope, PartyKind


def _mandate(portal: Portal, mandate_id: int) -> Mandate:
    try:
        return mandate_get_for_actor(actor=portal.actor, mandate_id=mandate_id)
    except NotFound:
        raise Http404() from None


@portal_view()
@require_http_methods(["GET", "POST"])
def mandate_list(request: HttpRequest, portal: Portal) -> HttpResponse:
    """A society sees the mandates it holds and invites members; a member sees the mandates it gave and the
    invitations waiting for it (sent to its party or to the e-mail its owner signs in with)."""
    is_society = portal.party.kind == PartyKind.SOCIETY
    form = MandateInviteForm(request.POST or None) if is_society else None
    if form is not None and request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            mandate_invite(
                actor=portal.actor,
                agent=portal.party,
                member_email=data["member_email"],
                scope=data["scope"],
                kinds=data["kinds"] if data["scope"] == MandateScope.KINDS else [],
                powers=data["powers"],
                statements_to=data["statements_to"],
            )
        except RegistryError as exc:
            error_to_form(form, exc, fields={"member": "member_email"})
        else:
            messages.success(request, _("The invitation is sent; the mandate starts when the member accepts it."))
            return redirect("portal:mandates")
    mandates = list(mandate_list_for_actor(actor=portal.actor))
    context = {
        "is_society": is_society,
        "form": form,
        "held": [m for m in mandates if m.agent_id == portal.party.pk],
        "given": [m for m in mandates if m.agent_id != portal.party.pk],
        "refusal_form": MemberRefusalForm(),
    }
    return render(request, "portal/mandates/list.html", context)


@portal_view()
@require_POST
def mandate_accept_view(request: HttpRequest, portal: Portal, mandate_id: int) -> HttpResponse:
    try:
        mandate_accept(actor=portal.actor, mandate=_mandate(portal, mandate_id))
    except RegistryError as exc:
        messages.error(request, str(exc.message))
    else:
        messages.success(request, _("The mandate is accepted: the society may now act for you within its terms."))
    return redirect("portal:mandates")


@portal_view()
@require_POST
def mandate_end_view(request: HttpRequest, portal: Portal, mandate_id: int) -> HttpResponse:
    try:
        mandate_end(actor=portal.actor, mandate=_mandate(portal, mandate_id), reason=request.POST.get("reason", ""))
    except RegistryError as exc:
        messages.error(request, str(exc.message))
    else:
        messages.success(request, _("The mandate has ended."))
    return redirect("portal:mandates")


@portal_view(kind=PartyKind.SOCIETY)
@require_POST
def member_catalogue_refuse(request: HttpRequest, portal: Portal, mandate_id: int) -> HttpResponse:
    """The society refuses AI training of a member's whole catalogue, under the mandate's power to refuse."""
    mandate = _mandate(portal, mandate_id)
    form = MemberRefusalForm(request.POST)
    if mandate.agent_id != portal.party.pk or mandate.member is None or not form.is_valid():
        raise Http404()
    try:
        actor, member = actor_on_behalf_of(actor=portal.actor, member_id=mandate.member.pk)
        optout_services.refusal_file(
            actor=actor, holder=member, scope=RefusalScope.CATALOGUE, purposes=[form.cleaned_data["purpose"]]
        )
    except RegistryError as exc:
        messages.error(request, str(exc.message))
    else:
        messages.success(
            request,
            _("AI training of the whole catalogue of %(member)s is refused, filed by you for them.")
            % {"member": member.name},
        )
    return redirect("portal:mandates")
