"""Reading and notarizing what verified domains' own signals say (issue 17).

The registry fetches a verified domain's ``/robots.txt``, ``/.well-known/tdmrep.json``, ``/ai.txt`` and the response
headers of the registered URLs on it, through the guarded fetcher of domain checks (the address resolved once and
checked to be public unless ``DOMAIN_CHECK_ALLOW_PRIVATE``, no proxies, no redirects, the timeout
``DOMAIN_CHECK_TIMEOUT``, at most ``SIGNAL_MAX_BYTES`` kept), reads them with ``optout.site_signals`` and keeps each
fetch as a ``SignalObservation``: when, which URL, the SHA-256 of the bytes, and what it said per purpose.

``domain_observe`` is the service (run when asked, ``POST /api/v1/domains/{id}/observe``, and by beat every
``SIGNAL_RECHECK_MINUTES`` for verified domains, the newly verified first); ``observation_list_for_actor`` and
``domain_disagreements`` are the reads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import Max, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.actors import Actor
from optout.events import site_disagreement_found
from optout.models import Purpose
from optout.models.observations import SignalObservation, SignalSource
from optout.signals import domain_rules_in_force
from optout.site_signals import (
    RobotsGroup,
    aipref_parse,
    content_usage_for_path,
    path_matches,
    purposes_refused,
    robots_parse,
    tdmrep_for_path,
    tdmrep_parse,
    x_robots_parse,
)
from registry.audit import audit_record
from registry.domains import pinned_target, tls_context
from registry.errors import DomainCheckFailed, InvalidIdentifier
from registry.identifiers import identifier_normalize, url_canonical, url_host_canonical, url_rfc_normalize
from registry.models import DomainStatus, Identifier, VerifiedDomain
from registry.selectors import domain_get_for_actor

# Registered URLs on a domain whose headers one observation reads (the most recently registered first).
MAX_URLS_PER_DOMAIN = 20
FILES: tuple[tuple[str, str], ...] = (
    (SignalSource.ROBOTS_TXT, "/robots.txt"),
    (SignalSource.TDMREP, "/.well-known/tdmrep.json"),
    (SignalSource.AI_TXT, "/ai.txt"),
)
READ_HEADERS = ("tdm-reservation", "tdm-policy", "content-usage", "x-robots-tag", "link")


@dataclass(frozen=True)
class Fetched:
    status: int | None
    headers: list[tuple[str, str]]
    body: bytes
    truncated: bool = False
    error: str = ""


Fetcher = Callable[[str, str], Fetched]


def signal_fetch(url: str, method: str = "GET") -> Fetched:
    """Fetch ``url`` through the guarded fetcher; a refused address or a network failure is an ``error``."""
    cap = settings.SIGNAL_MAX_BYTES
    try:
        target = pinned_target(url)
        with (
            httpx.Client(verify=tls_context(), trust_env=False, timeout=settings.DOMAIN_CHECK_TIMEOUT) as client,
            client.stream(
                method, target.url, headers=target.headers, extensions=target.extensions, follow_redirects=False
            ) as response,
        ):
            body = b""
            truncated = False
            if method == "GET":
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > cap:
                        body, truncated = body[:cap], True
                        break
            return Fetched(
                status=response.status_code,
                headers=list(response.headers.multi_items()),
                body=body,
                truncated=truncated,
            )
    except DomainCheckFailed as exc:
        return Fetched(status=None, headers=[], body=b"", error=exc.code)
    except httpx.HTTPError as exc:
        return Fetched(status=None, headers=[], body=b"", error=f"fetch_failed:{exc.__class__.__name__}"[:64])


# --- Reading one fetch ------------------------------------------------------------------------------------


def _robots_group_signals(group: RobotsGroup | None) -> dict[str, Any]:
    if group is None:
        return {"content_usage": [], "content_signal": {}, "disallow": []}
    return {
        "content_usage": [[path, prefs] for path, prefs in group.content_usage],
        "content_signal": group.content_signal,
        "disallow": group.disallow,
    }


def _read(source: str, fetched: Fetched) -> tuple[list[str], dict[str, Any]]:
    """The ``READ_TABLE`` keys a fetch says for the whole site (or the URL), and the rules it holds."""
    said: list[str] = []
    if fetched.status != 200 and source != SignalSource.HEADERS:
        return said, {}
    text = fetched.body.decode("utf-8", "replace")
    if source == SignalSource.ROBOTS_TXT:
        robots = robots_parse(text)
        group = robots.for_agent("*")
        signals = {**_robots_group_signals(group), "licenses": robots.licenses}
        if group is not None:
            if content_usage_for_path(group, "/").get("train-ai") is False:
                said.append("aipref:train-ai=n")
            if group.content_signal.get("ai-train") is False:
                said.append("content-signal:ai-train=no")
        return said, signals
    if source == SignalSource.TDMREP:
        rules = tdmrep_parse(fetched.body) or []
        if tdmrep_for_path(rules, "/") == 1:
            said.append("tdm-reservation:1")
        return said, {"rules": rules}
    if source == SignalSource.AI_TXT:
        # Spawning's ai.txt: robots.txt syntax, where Disallow refuses AI training of what it matches.
        group = robots_parse(text).for_agent("*")
        disallow = group.disallow if group else []
        if any(rule in ("/", "*", "/*") for rule in disallow):
            said.append("ai.txt:disallow")
        return said, {"disallow": disallow}
    headers = {name.lower(): value for name, value in fetched.headers if name.lower() in READ_HEADERS}
    if headers.get("tdm-reservation", "").strip() == "1":
        said.append("tdm-reservation:1")
    if (aipref_parse(headers.get("content-usage", "")) or {}).get("train-ai") is False:
        said.append("aipref:train-ai=n")
    if "noai" in x_robots_parse(headers.get("x-robots-tag", "")):
        said.append("x-robots-tag:noai")
    return said, {"headers": headers}


def _header_bytes(fetched: Fetched) -> bytes:
    lines = [f"{name.lower()}: {value}" for name, value in fetched.headers if name.lower() in READ_HEADERS]
    return "\n".join(lines).encode()


# --- The service ------------------------------------------------------------------------------------------


def domain_observe(
    *, domain: VerifiedDomain, trigger: str, actor: Actor | None = None, fetch: Fetcher | None = None
) -> list[SignalObservation]:
    """Fetch and record what ``domain``'s own signals say now: one observation per file and registered URL.

    The fetches happen outside any transaction; the rows and the audit event are written together.
    """
    fetch = fetch or signal_fetch
    if domain.status != DomainStatus.VERIFIED:
        return []
    targets: list[tuple[str, str, str]] = [(source, domain.origin + path, "GET") for source, path in FILES]
    # URL keys are canonical (https, no "www."); each page is fetched on the domain's own origin, as the holder
    # spelled it when that spelling is on this origin.
    canonical_origin = url_canonical(domain.origin + "/")
    identifiers = (
        Identifier.objects.filter(scheme="url", value__startswith=canonical_origin)
        .order_by("-pk")
        .values_list("value", "spelling")[:MAX_URLS_PER_DOMAIN]
    )
    urls = {_fetch_url(domain.origin, canonical_origin, value, spelling) for value, spelling in identifiers}
    targets += [(SignalSource.HEADERS, url, "HEAD") for url in sorted(urls)]
    now = timezone.now()
    rows: list[SignalObservation] = []
    for source, url, method in targets:
        fetched = fetch(url, method)
        said, signals = _read(source, fetched) if not fetched.error else ([], {})
        body = _header_bytes(fetched) if source == SignalSource.HEADERS else fetched.body
        rows.append(
            SignalObservation(
                domain=domain,
                source=source,
                url=url,
                trigger=trigger,
                observed_at=now,
                http_status=fetched.status,
                error=fetched.error,
                sha256=hashlib.sha256(body).hexdigest() if not fetched.error else "",
                size=len(body),
                truncated=fetched.truncated,
                body=body,
                said=purposes_refused(said),
                signals={"read": said, **signals},
            )
        )
    with transaction.atomic():
        # What the previous run found, as it stood then (its observations, the refusals in force at its time):
        # a disagreement is new when this run finds it and that one did not.
        previous_at = (
            SignalObservation.objects.filter(domain=domain, observed_at__lt=now)
            .aggregate(last=Max("observed_at"))
            .get("last")
        )
        before = {d.key for d in domain_disagreements(domain=domain, at=previous_at)} if previous_at else set()
        created = SignalObservation.objects.bulk_create(rows)
        new = [d for d in domain_disagreements(domain=domain, at=now) if d.key not in before]
        audit_record(
            code="optout.domain.observed",
            actor=actor or Actor(),
            target=domain,
            data={
                "trigger": trigger,
                "urls": len(rows),
                "errors": sum(1 for r in rows if r.error),
                "new_disagreements": [d.as_json() for d in new],
            },
        )
        if new:
            payload = [d.as_json() for d in new]
            domain_id = domain.pk
            # On commit: the notification it leads to must not announce observations that were rolled back.
            transaction.on_commit(
                lambda: site_disagreement_found.send(
                    sender=SignalObservation, domain_id=domain_id, disagreements=payload
                )
            )
    return created


def domain_observe_for_actor(*, actor: Actor, domain_id: int) -> VerifiedDomain:
    """The domain the holder (or staff) asks to observe now; not found for anyone else."""
    domain = domain_get_for_actor(actor=actor, domain_id=domain_id)
    if domain.status != DomainStatus.VERIFIED:
        from core.errors import InvalidState

        raise InvalidState(_("Only a verified domain's signals are observed."), code="domain_not_verified")
    return domain


def domains_never_observed() -> list[int]:
    """Verified domains with no observation yet (just verified), the earliest verified first."""
    domains = VerifiedDomain.objects.filter(status=DomainStatus.VERIFIED, signal_observations__isnull=True)
    return list(domains.order_by("verified_at", "pk").values_list("pk", flat=True).distinct())


def domains_due_for_observation(*, now: datetime | None = None) -> list[int]:
    """Verified domains never observed, then those last observed ``SIGNAL_RECHECK_MINUTES`` ago or more."""
    due = (now or timezone.now()) - timedelta(minutes=settings.SIGNAL_RECHECK_MINUTES)
    stale = (
        VerifiedDomain.objects.filter(status=DomainStatus.VERIFIED)
        .annotate(last=Max("signal_observations__observed_at"))
        .filter(last__lt=due)
        .order_by("last")
        .values_list("pk", flat=True)
    )
    return domains_never_observed() + list(stale)


# --- Reads ------------------------------------------------------------------------------------------------


def observation_list_for_actor(*, actor: Actor, domain_id: int) -> QuerySet[SignalObservation]:
    """A domain's observations, newest first, for its holder and staff."""
    domain = domain_get_for_actor(actor=actor, domain_id=domain_id)
    return SignalObservation.objects.filter(domain=domain).defer("body").order_by("-observed_at", "-id")


def observations_latest(*, domain: VerifiedDomain) -> list[SignalObservation]:
    """The last observation of each of ``domain``'s files and URLs (one query, the newest batch's rows first)."""
    latest: dict[str, SignalObservation] = {}
    for observation in SignalObservation.objects.filter(domain=domain).defer("body")[:200]:
        latest.setdefault(observation.url, observation)
    return sorted(latest.values(), key=lambda o: (o.source != SignalSource.ROBOTS_TXT, o.source, o.url))


@dataclass(frozen=True)
class Disagreement:
    """A path where the registry's refusals and the site's own signals (as last observed) say different things."""

    path: str
    registry_refuses: bool
    site_refuses: bool
    sources: Sequence[str] = field(default_factory=tuple)

    @property
    def key(self) -> tuple[str, bool, bool]:
        """The same disagreement whichever of the site's files says it."""
        return (self.path, self.registry_refuses, self.site_refuses)

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "registry_refuses": self.registry_refuses,
            "site_refuses": self.site_refuses,
            "sources": list(self.sources),
        }


def domain_disagreements(*, domain: VerifiedDomain, at: datetime | None = None) -> list[Disagreement]:
    """Where the refusals in force at ``at`` (default now) and the last observation of each of the site's files
    at or before ``at`` disagree.

    - a prefix the registry refuses that none of the site's files refuses (crawlers reading only the site see a
      permission);
    - a path the site's robots.txt or tdmrep.json refuses with no refusal in the registry (labs checking only the
      registry see a permission: the holder may file one).
    """
    at = at or timezone.now()
    latest: dict[str, SignalObservation] = {}
    observations = SignalObservation.objects.filter(domain=domain, observed_at__lte=at).defer("body")
    # One row per file, not the domain's whole history: every run reads this twice.
    for source, _path in FILES:
        row = observations.filter(source=source).order_by("-observed_at", "-id").first()
        if row is not None:
            latest[source] = row
    if not latest:
        return []
    robots = latest.get(SignalSource.ROBOTS_TXT)
    tdmrep = latest.get(SignalSource.TDMREP)
    ai_txt = latest.get(SignalSource.AI_TXT)
    usage = [(path, prefs) for path, prefs in (robots.signals.get("content_usage", []) if robots else [])]
    group = RobotsGroup(agents=["*"], content_usage=[(p, dict(q)) for p, q in usage])
    rules: list[dict[str, Any]] = tdmrep.signals.get("rules", []) if tdmrep else []

    def site_refuses(path: str) -> list[str]:
        sources = []
        if robots and (
            content_usage_for_path(group, path).get("train-ai") is False
            or robots.signals.get("content_signal", {}).get("ai-train") is False
        ):
            sources.append(SignalSource.ROBOTS_TXT.value)
        if tdmrep and tdmrep_for_path(rules, path) == 1:
            sources.append(SignalSource.TDMREP.value)
        if ai_txt and ai_txt.said.get(Purpose.TRAIN_AI):
            sources.append(SignalSource.AI_TXT.value)
        return sources

    registry_paths = sorted({rule.path for rule in domain_rules_in_force(domain=domain, at=at)})
    found = [
        Disagreement(path=path, registry_refuses=True, site_refuses=False)
        for path in registry_paths
        if not site_refuses(path)
    ]
    site_paths = {path for path, prefs in usage if prefs.get("train-ai") is False}
    site_paths |= {str(rule["location"]).rstrip("*") for rule in rules if rule.get("tdm-reservation") in (1, "1")}
    for path in sorted(site_paths):
        if not any(path.startswith(prefix) for prefix in registry_paths):
            found.append(Disagreement(path=path, registry_refuses=False, site_refuses=True, sources=site_refuses(path)))
    return found


def _fetch_url(origin: str, canonical_origin: str, key: str, spelling: str) -> str:
    """Where to read a registered page's headers: its spelling when it is on ``origin``, else its key's path
    and query on ``origin``."""
    try:
        spelled = url_rfc_normalize(spelling) if spelling else ""
    except InvalidIdentifier:
        spelled = ""
    if spelled.startswith(origin + "/") and url_canonical(spelled) == key:
        return spelled
    return origin + key[len(canonical_origin) - 1 :]


# --- Site signals in lookups ------------------------------------------------------------------------------


def _url_key(url: str) -> str:
    try:
        return identifier_normalize(scheme="url", value=url).value
    except InvalidIdentifier:
        return url


def site_signals_attach(*, results: list[dict[str, Any]], at: datetime) -> None:
    """Add to each URL result on a verified domain the site's own signals as last observed at or before ``at``:
    ``site_signals`` = ``{"observed_at", "said": {purpose: refused}, "read": [...], "observations": [ids]}``.

    Results on hosts the registry has not observed get no key. Two queries for the whole batch; the lookup's
    receipt then signs them with the rest of the answer.
    """
    wanted: list[tuple[dict[str, Any], str, str]] = []
    for result in results:
        key = result.get("key") or ""
        if not key.startswith("url:"):
            continue
        url = key.removeprefix("url:")
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        wanted.append((result, parts.hostname or "", path))
    if not wanted:
        return
    # The wanted hosts are canonical; a domain may be verified with its "www.".
    hosts = {host for _result, host, _path in wanted}
    hosts |= {f"www.{host}" for host in hosts}
    observed = SignalObservation.objects.filter(domain__host__in=hosts, observed_at__lte=at)
    lasts = observed.values("domain_id", "url").annotate(last=Max("observed_at"))
    if not lasts:
        return
    keep = {(row["url"], row["last"]) for row in lasts}
    rows = observed.filter(url__in={url for url, _last in keep}, observed_at__in={last for _url, last in keep})
    by_host: dict[str, dict[str, SignalObservation]] = {}
    by_url: dict[str, SignalObservation] = {}
    for row in rows.defer("body").select_related("domain").order_by("-id"):
        if (row.url, row.observed_at) not in keep:
            continue
        if row.source == SignalSource.HEADERS:
            by_url.setdefault(_url_key(row.url), row)
        else:
            by_host.setdefault(url_host_canonical(row.domain.host), {}).setdefault(row.source, row)
    for result, host, path in wanted:
        files = by_host.get(host, {})
        used: list[SignalObservation] = []
        read: list[str] = []
        robots = files.get(SignalSource.ROBOTS_TXT)
        if robots is not None:
            used.append(robots)
            group = RobotsGroup(
                agents=["*"], content_usage=[(p, dict(q)) for p, q in robots.signals.get("content_usage", [])]
            )
            if content_usage_for_path(group, path).get("train-ai") is False:
                read.append("aipref:train-ai=n")
            if robots.signals.get("content_signal", {}).get("ai-train") is False:
                read.append("content-signal:ai-train=no")
        tdmrep = files.get(SignalSource.TDMREP)
        if tdmrep is not None:
            used.append(tdmrep)
            if tdmrep_for_path(tdmrep.signals.get("rules", []), path) == 1:
                read.append("tdm-reservation:1")
        ai_txt = files.get(SignalSource.AI_TXT)
        if ai_txt is not None:
            used.append(ai_txt)
            if any(path_matches(rule, path) for rule in ai_txt.signals.get("disallow", [])):
                read.append("ai.txt:disallow")
        headers = by_url.get(str(result["key"]).removeprefix("url:"))
        if headers is not None:
            used.append(headers)
            read.extend(key for key in headers.signals.get("read", []) if key not in read)
        if not used:
            continue
        result["site_signals"] = {
            "observed_at": max(o.observed_at for o in used).isoformat(),
            "said": purposes_refused(read),
            "read": read,
            "observations": sorted(o.pk for o in used),
        }
