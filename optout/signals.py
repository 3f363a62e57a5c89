"""Refusals and terms as the signals crawlers and training pipelines read on the web.

Every value comes from the one table in ``optout.vocabularies`` (``SIGNALS``), per vocabulary and version:

- W3C TDMRep: the ``tdm-reservation`` (and ``tdm-policy``) headers and meta tags, and ``/.well-known/tdmrep.json``.
- IETF aipref (draft-ietf-aipref-attach, vocabulary draft-ietf-aipref-vocab-08): the ``Content-Usage`` header and
  robots.txt rule.
- Cloudflare Content Signals: ``Content-Signal`` in the robots.txt group.
- RSL 1.0: the robots.txt ``License:`` line and the ``Link: <…>; rel="license"`` header (the licence itself is
  rendered by ``compensation.terms``, which knows the tariffs).
- ``X-Robots-Tag: noai, noimageai``, read by Spawning's datadiligence and img2dataset.

The formatting functions are pure; the two reads answer from the registry's own rules
(``optout.selectors.lookup_batch`` and refusals in force), never from anything else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from optout.models import KindRegime, Purpose
from optout.selectors import LookupStatus, _refusals_for, _regime_at, lookup_batch
from optout.vocabularies import (
    AIPREF,
    REFUSAL_STANCES,
    SIGNALS,
    Stance,
    aipref_value,
    content_signal_value,
    headers_for,
    stance_for,
)
from registry.identifiers import url_host_canonical
from registry.models import VerifiedDomain, WorkKind

# The aipref vocabulary and its one training label for each refusal purpose, read from the table: from -05 to -08
# the vocabulary has two labels only, ``train-ai`` (training a model that generates content) and ``search``, so
# either of the registry's refusal purposes is said as ``train-ai=n``.
AIPREF_VOCABULARY = AIPREF.version
AIPREF_LABELS: Mapping[str, str] = {
    purpose: aipref[0] for purpose, stance in REFUSAL_STANCES.items() if (aipref := SIGNALS[stance].aipref)
}

# When several answers are combined (a work reachable by several identifiers), the strictest wins:
# an item that could not be checked is never reported as permitted.
_STRICTNESS = [
    LookupStatus.REFUSED,
    LookupStatus.LICENSE_REQUIRED,
    LookupStatus.INVALID,
    LookupStatus.PERMITTED,
    LookupStatus.UNREGISTERED,
]


def refusal_headers(*, refused_train_ai: bool, refused_train_genai: bool) -> dict[str, str]:
    """The response headers that carry a refusal; none when nothing is refused.

    ``Content-Usage`` says either refusal purpose with aipref's one training label (``AIPREF_LABELS``).
    """
    if not (refused_train_ai or refused_train_genai):
        return {}
    stance = stance_for(
        refused_train_ai=refused_train_ai, refused_train_genai=refused_train_genai, license_required=False
    )
    return headers_for(stance=stance)


@dataclass(frozen=True)
class SignalStatus:
    """What the registry says now about one thing, reduced to what the signals need.

    ``status`` and ``may_train`` answer for ``train-genai``, the strictest purpose: any refusal
    refuses it. ``result`` is the lookup result that decided ``status`` (refusal, regime, work).
    """

    status: str
    may_train: bool
    refused_train_ai: bool
    refused_train_genai: bool
    pending_refusal: bool
    result: dict[str, Any] | None

    @property
    def stance(self) -> Stance | None:
        """The stance the signals say; ``None`` for what could not be checked (nothing is said about it)."""
        if self.status == LookupStatus.INVALID:
            return None
        return stance_for(
            refused_train_ai=self.refused_train_ai,
            refused_train_genai=self.refused_train_genai,
            license_required=self.status == LookupStatus.LICENSE_REQUIRED,
        )

    @property
    def kind(self) -> str | None:
        """The kind of the work that decided the answer, if one did."""
        work = (self.result or {}).get("work")
        return str(work["kind"]) if work else None

    def headers(self, *, tdm_policy_url: str | None = None, license_url: str | None = None) -> dict[str, str]:
        """The response headers of this answer: the refusal's, a licence-required reservation with its policy,
        and the ``Link`` to the RSL licence when ``license_url`` is given."""
        stance = self.stance
        if stance is None:
            return {}
        return headers_for(stance=stance, tdm_policy_url=tdm_policy_url, license_url=license_url)


def signal_status(*, items: Sequence[Mapping[str, Any]], as_of: datetime) -> SignalStatus:
    """The strictest answer over ``items`` (identifiers of one thing) at ``as_of``.

    One lookup for ``train-genai``; a second for ``train-ai`` only when something is refused,
    to tell a refusal of all AI training from one of generative training alone.
    """
    genai = lookup_batch(items=items, purpose=Purpose.TRAIN_GENAI, as_of=as_of).results
    if not genai:
        return SignalStatus(
            status=LookupStatus.INVALID,
            may_train=False,
            refused_train_ai=False,
            refused_train_genai=False,
            pending_refusal=False,
            result=None,
        )
    deciding = min(genai, key=lambda r: _STRICTNESS.index(r["status"]))
    refused_genai = deciding["status"] == LookupStatus.REFUSED
    refused_ai = False
    if refused_genai:
        train_ai = lookup_batch(items=items, purpose=Purpose.TRAIN_AI, as_of=as_of).results
        refused_ai = any(r["status"] == LookupStatus.REFUSED for r in train_ai)
    return SignalStatus(
        status=deciding["status"],
        may_train=all(r["may_train"] for r in genai),
        refused_train_ai=refused_ai,
        refused_train_genai=refused_genai,
        pending_refusal=any(r["pending_refusal"] for r in genai),
        result=deciding,
    )


def regimes_in_force(*, at: datetime) -> dict[str, str]:
    """Each work kind's regime at ``at`` (use-first unless a licence-required row is in force). One query."""
    rows = list(KindRegime.objects.filter(effective_from__lte=at).values_list("kind", "regime", "effective_from"))
    return {kind: str(_regime_at(rows, kind, at)) for kind in WorkKind.values}


# --- Per-domain files ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PathRule:
    """A URL-prefix refusal in force on a host: the prefix's path (and query) and its purpose."""

    path: str
    purpose: str


def domain_rules_in_force(*, domain: VerifiedDomain, at: datetime) -> list[PathRule]:
    """The URL-prefix refusals of ``domain``'s holder on its host that decide lookups at ``at``. One query.

    In force is what the lookup applies (``optout.selectors``): filed and effective, not withdrawn, on a
    domain whose verification took effect. Matched by host rather than by the refusal's domain row,
    because a prefix on this host may hang on a parent domain the holder verified; prefixes on other
    hosts belong in those hosts' own files.
    """
    # Every stored purpose refuses train-genai, so this reads the refusals of both purposes.
    # Refusals name the canonical host (without "www."), which a domain verified as www.ex.kr serves too.
    refusals = _refusals_for([], {domain.host, url_host_canonical(domain.host)}, Purpose.TRAIN_GENAI, at)
    return [
        PathRule(path=_prefix_path(r.url_prefix), purpose=r.purpose)
        for r in refusals
        if r.holder_id == domain.holder_id and r.in_force(at) and r.domain_verified
    ]


def _prefix_path(prefix: str) -> str:
    parts = urlsplit(prefix)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    elif not path.endswith("/"):
        # A canonical prefix has no trailing slash, and covers its subtree at a "/" boundary: written with one,
        # as robots.txt and TDMRep match by plain prefix, so "/blog" does not reserve "/blogger" on the site.
        path += "/"
    # "*" and "$" are pattern syntax in robots.txt and TDMRep; a literal one is written percent-encoded.
    return path.replace("*", "%2A").replace("$", "%24")


def tdmrep_json(*, rules: Sequence[PathRule]) -> list[dict[str, Any]]:
    """The W3C TDMRep ``/.well-known/tdmrep.json`` array: a reservation per refused path (``SIGNALS``).

    A TDM reservation covers every purpose, so a ``train-genai`` refusal reserves its path as well. No
    ``tdm-policy``: a refusal offers no licence (a path with both purposes takes the stricter row).
    """
    by_path: dict[str, set[str]] = {}
    for rule in rules:
        by_path.setdefault(rule.path, set()).add(rule.purpose)
    entries: list[dict[str, Any]] = []
    for path in sorted(by_path):
        stance = _refusal_stance(by_path[path])
        entry: dict[str, Any] = {"location": f"{path}*", "tdm-reservation": SIGNALS[stance].tdm_reservation}
        entries.append(entry)
    return entries


def _refusal_stance(purposes: set[str]) -> Stance:
    return stance_for(
        refused_train_ai=Purpose.TRAIN_AI in purposes,
        refused_train_genai=Purpose.TRAIN_GENAI in purposes,
        license_required=False,
    )


def robots_txt(*, rules: Sequence[PathRule], origin: str, license_url: str | None = None) -> str:
    """Lines for robots.txt: aipref ``Content-Usage: <path> <usage-prefs>`` rules, a Content Signals
    ``Content-Signal`` where the whole site is refused, and RSL's global ``License: <url>`` line.

    Crawlers apply the rule with the longest matching path, while the registry refuses a URL when any
    prefix covers it; so a path also carries the refusals of the shorter paths above it. No ``Allow``
    line is written: merged into an existing ``User-Agent: *`` group it could unblock crawling.
    ``Content-Signal`` has no path (Content Signals Policy, 2025-09): inside the group it speaks for the whole
    site, so it is written only when ``/`` is refused. ``License:`` stands outside any group, like ``Sitemap:``.
    """
    refused: dict[str, set[str]] = {}
    for rule in rules:
        refused.setdefault(rule.path, set()).add(rule.purpose)
    lines = [
        f"# AI-training refusals in force for {origin}, as recorded in the opt-out registry.",
        "# Content-Usage rules (IETF aipref) and Content-Signal state how content may be used; they do not change",
        "# what may be crawled. License: points to the RSL licence with the registry's terms for this site.",
        "# Download this again after you file or withdraw a refusal, or when the tariffs change.",
    ]
    if refused:
        lines.append("User-Agent: *")
        for path in sorted(refused):
            purposes = {p for other, ps in refused.items() if path.startswith(other) for p in ps}
            stances = {REFUSAL_STANCES[purpose] for purpose in purposes}
            lines.append(f"Content-Usage: {path} {aipref_value(stances)}")
        if "/" in refused:
            signal = content_signal_value({REFUSAL_STANCES[purpose] for purpose in refused["/"]})
            lines.append(f"Content-Signal: {signal}")
    else:
        # A lone "User-Agent: *" would join the next group of the file and change its meaning.
        lines.append("# No URL-prefix refusal is in force on this domain.")
    if license_url:
        lines.append("")
        lines.append(f"License: {license_url}")
    return "\n".join(lines) + "\n"
