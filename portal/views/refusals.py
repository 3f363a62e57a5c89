"""Refusals (file, withdraw, history) and domains (guided verification, signal files) of a rights holder."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from core.errors import NotFound, RegistryError
from optout import services as optout_services
from optout.models import ObservationTrigger, Purpose, RefusalScope, SignalObservation, SignalSource
from optout.observations import Disagreement, domain_disagreements, domain_observe_for_actor, observations_latest
from optout.selectors import refusal_get_for_actor
from optout.signals import domain_rules_in_force, robots_txt, tdmrep_json
from optout.tasks import domain_signals_observe
from portal.access import Portal, holder_view
from portal.form_errors import error_to_form
from portal.forms import DomainForm, RefusalForm, StartChoice, WithdrawForm
from portal.selectors import refusal_row, refusal_rows_for_actor, works_selected
from portal.services import refusals_file_for_works
from registry import selectors, services
from registry.domains import dns_record_name, dns_record_value, file_url
from registry.models import DomainMethod, DomainStatus, VerifiedDomain

WORK_CHOICES_MAX = 500


@holder_view
@require_safe
def refusal_list(request: HttpRequest, portal: Portal) -> HttpResponse:
    return render(request, "portal/refusals/list.html", {"rows": refusal_rows_for_actor(actor=portal.actor)})


def _work_choices(portal: Portal, selected: list[int]) -> list[tuple[int, str]]:
    works = selectors.work_list_for_holder(holder=portal.party)
    recent = list(works.values_list("pk", "title")[:WORK_CHOICES_MAX])
    known = {pk for pk, _title in recent}
    missing = [pk for pk in selected if pk not in known]
    extra = list(works.filter(pk__in=missing).values_list("pk", "title")) if missing else []
    return extra + recent


@holder_view
@require_http_methods(["GET", "POST"])
def refusal_create(request: HttpRequest, portal: Portal) -> HttpResponse:
    preselected = [int(v) for v in request.GET.getlist("works") if v.isdigit()]
    posted = [int(v) for v in request.POST.getlist("works") if v.isdigit()]
    initial: dict[str, Any] = {"works": preselected}
    if request.GET.get("scope") in RefusalScope.values:
        initial["scope"] = request.GET["scope"]
    if request.GET.get("url_prefix"):
        initial["url_prefix"] = request.GET["url_prefix"]
    # A work file that declares a refusal (its C2PA or XMP metadata) links here with the purpose it declares.
    if request.GET.get("purpose") in Purpose.values:
        initial["purpose"] = request.GET["purpose"]
    form = RefusalForm(request.POST or None, initial=initial, work_choices=_work_choices(portal, preselected or posted))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        starts = data["effective_from"] if data["start"] == StartChoice.LATER else None
        try:
            if data["scope"] == RefusalScope.WORK:
                works = works_selected(actor=portal.actor, holder=portal.party, ids=data["works"])
                filed = refusals_file_for_works(
                    actor=portal.actor,
                    holder=portal.party,
                    works=works,
                    purposes=[data["purpose"]],
                    effective_from=starts,
                )
                count = len(filed)
            else:
                optout_services.refusal_file(
                    actor=portal.actor,
                    holder=portal.party,
                    scope=data["scope"],
                    purposes=[data["purpose"]],
                    url_prefix=data["url_prefix"] if data["scope"] == RefusalScope.URL_PREFIX else "",
                    effective_from=starts,
                )
                count = 1
        except RegistryError as exc:
            error_to_form(form, exc, fields={"work": "works", "purposes": "purpose"})
        else:
            messages.success(
                request,
                ngettext("%(count)d refusal is filed.", "%(count)d refusals are filed.", count) % {"count": count},
            )
            return redirect("portal:refusals")
    return render(request, "portal/refusals/create.html", {"form": form})


@holder_view
@require_http_methods(["GET", "POST"])
def refusal_withdraw(request: HttpRequest, portal: Portal, refusal_id: int) -> HttpResponse:
    try:
        refusal = refusal_get_for_actor(actor=portal.actor, refusal_id=refusal_id)
    except NotFound:
        raise Http404() from None
    row = refusal_row(refusal=refusal, at=timezone.now())
    form = WithdrawForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        at = form.cleaned_data["effective_at"] if form.cleaned_data["start"] == StartChoice.LATER else None
        try:
            optout_services.refusal_withdraw(actor=portal.actor, refusal=refusal, effective_at=at)
        except RegistryError as exc:
            error_to_form(form, exc)
        else:
            messages.success(request, _("The refusal is withdrawn."))
            return redirect("portal:refusals")
    return render(request, "portal/refusals/withdraw.html", {"form": form, "row": row})


# --- Domains ----------------------------------------------------------------------------------------------


@holder_view
@require_http_methods(["GET", "POST"])
def domain_list(request: HttpRequest, portal: Portal) -> HttpResponse:
    form = DomainForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            domain = services.domain_add(actor=portal.actor, holder=portal.party, **form.cleaned_data)
        except RegistryError as exc:
            error_to_form(form, exc)
        else:
            return redirect("portal:domain", domain_id=domain.pk)
    domains = selectors.domain_list_for_actor(actor=portal.actor)
    return render(request, "portal/domains/list.html", {"form": form, "domains": domains})


def _domain(portal: Portal, domain_id: int) -> VerifiedDomain:
    try:
        return selectors.domain_get_for_actor(actor=portal.actor, domain_id=domain_id)
    except NotFound:
        raise Http404() from None


@holder_view
@require_safe
def domain_detail(request: HttpRequest, portal: Portal, domain_id: int) -> HttpResponse:
    domain = _domain(portal, domain_id)
    context: dict[str, Any] = {"domain": domain, "is_dns": domain.method == DomainMethod.DNS}
    if domain.method == DomainMethod.DNS:
        context["record_name"] = dns_record_name(domain.host)
        context["record_value"] = dns_record_value(domain.token)
    else:
        context["file_url"] = file_url(domain.origin)
    if domain.status == DomainStatus.VERIFIED:
        rules = domain_rules_in_force(domain=domain, at=timezone.now())
        context["robots_txt"] = robots_txt(rules=rules, origin=domain.origin, license_url=_license_url(request, domain))
        context["rules"] = rules
        context["license_url"] = _license_url(request, domain)
        context["observations"] = [(o, _observation_verdict(o)) for o in observations_latest(domain=domain)]
        context["disagreements"] = [_disagreement_text(d) for d in domain_disagreements(domain=domain)]
    return render(request, "portal/domains/detail.html", context)


def _observation_verdict(observation: SignalObservation) -> str:
    if observation.error:
        return str(_("Not fetched (%(error)s)") % {"error": observation.error})
    if observation.source != SignalSource.HEADERS and observation.http_status != 200:
        return str(_("Not published (HTTP %(status)s)") % {"status": observation.http_status})
    if observation.said.get(Purpose.TRAIN_AI):
        return str(_("Refuses AI training"))
    if observation.said.get(Purpose.TRAIN_GENAI):
        return str(_("Refuses generative AI training"))
    return str(_("Says nothing about AI training"))


def _disagreement_text(disagreement: Disagreement) -> str:
    if disagreement.registry_refuses:
        return str(
            _(
                "You refuse %(path)s in the registry, but your site's files do not say so: crawlers that read only "
                "the site see no refusal. Publish the lines above."
            )
            % {"path": disagreement.path}
        )
    return str(
        _(
            "Your site refuses %(path)s (%(sources)s), but no refusal is filed in the registry: labs that check the "
            "registry see it as permitted. File a refusal for this prefix."
        )
        % {"path": disagreement.path, "sources": ", ".join(disagreement.sources)}
    )


@holder_view
@require_POST
def domain_observe(request: HttpRequest, portal: Portal, domain_id: int) -> HttpResponse:
    domain = domain_observe_for_actor(actor=portal.actor, domain_id=_domain(portal, domain_id).pk)
    transaction.on_commit(lambda: domain_signals_observe.delay(domain.pk, ObservationTrigger.ON_DEMAND))
    messages.success(
        request, _("The registry is reading your site's signals now. Reload this page in a minute to see them.")
    )
    return redirect("portal:domain", domain_id=domain.pk)


@holder_view
@require_POST
def domain_check(request: HttpRequest, portal: Portal, domain_id: int) -> HttpResponse:
    domain = services.domain_check(actor=portal.actor, domain=_domain(portal, domain_id))
    if domain.status == DomainStatus.VERIFIED:
        messages.success(request, _("%(origin)s is verified.") % {"origin": domain.origin})
    else:
        messages.error(request, _("Not verified yet: %(error)s") % {"error": domain.last_error})
    return redirect("portal:domain", domain_id=domain.pk)


@holder_view
@require_safe
def domain_proof_file(request: HttpRequest, portal: Portal, domain_id: int) -> HttpResponse:
    domain = _domain(portal, domain_id)
    response = HttpResponse(domain.token + "\n", content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="optout-registry.txt"'
    return response


def _license_url(request: HttpRequest, domain: VerifiedDomain) -> str:
    return request.build_absolute_uri(reverse("domain-license", kwargs={"domain_id": domain.pk}))


@holder_view
@require_safe
def domain_tdmrep(request: HttpRequest, portal: Portal, domain_id: int) -> HttpResponse:
    domain = _domain(portal, domain_id)
    if domain.status != DomainStatus.VERIFIED:
        raise Http404()
    rules = domain_rules_in_force(domain=domain, at=timezone.now())
    response = HttpResponse(json.dumps(tdmrep_json(rules=rules), indent=2) + "\n", content_type="application/json")
    response["Content-Disposition"] = 'attachment; filename="tdmrep.json"'
    return response


@holder_view
@require_safe
def domain_robots(request: HttpRequest, portal: Portal, domain_id: int) -> HttpResponse:
    domain = _domain(portal, domain_id)
    if domain.status != DomainStatus.VERIFIED:
        raise Http404()
    rules = domain_rules_in_force(domain=domain, at=timezone.now())
    response = HttpResponse(
        robots_txt(rules=rules, origin=domain.origin, license_url=_license_url(request, domain)),
        content_type="text/plain; charset=utf-8",
    )
    response["Content-Disposition"] = 'attachment; filename="robots-ai.txt"'
    return response
