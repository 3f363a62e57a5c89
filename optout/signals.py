"""Refusals as the signals crawlers and training pipelines read on the web.

- W3C TDMRep: the ``tdm-reservation: 1`` header and the ``/.well-known/tdmrep.json`` file.
- IETF aipref (draft-ietf-aipref-attach, vocabulary draft-ietf-aipref-vocab-08): the ``Content-Usage`` header and
  robots.txt rule.
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

from optout.models import Purpose
from optout.selectors import LookupStatus, _refusals_for, lookup_batch
from registry.models import VerifiedDomain

# The aipref vocabulary this maps to. From -05 to -08 it has two labels only, ``train-ai`` (training a model that
# generates content) and ``search``; ``train-genai`` is no longer a label and parsers ignore unknown labels, so
# either of the registry's refusal purposes is said as ``train-ai=n``.
AIPREF_VOCABULARY = "draft-ietf-aipref-vocab-08"
AIPREF_LABELS: Mapping[str, str] = {Purpose.TRAIN_AI: "train-ai", Purpose.TRAIN_GENAI: "train-ai"}

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
    usage = AIPREF_LABELS[Purpose.TRAIN_AI if refused_train_ai else Purpose.TRAIN_GENAI]
    return {
        "tdm-reservation": "1",
        "X-Robots-Tag": "noai, noimageai",
        "Content-Usage": f"{usage}=n",
    }


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

    def headers(self) -> dict[str, str]:
        return refusal_headers(refused_train_ai=self.refused_train_ai, refused_train_genai=self.refused_train_genai)


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
    refusals = _refusals_for([], {domain.host}, Purpose.TRAIN_GENAI, at)
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
    # "*" and "$" are pattern syntax in robots.txt and TDMRep; a literal one is written percent-encoded.
    return path.replace("*", "%2A").replace("$", "%24")


def tdmrep_json(*, rules: Sequence[PathRule]) -> list[dict[str, Any]]:
    """The W3C TDMRep ``/.well-known/tdmrep.json`` array: a reservation per refused path.

    A TDM reservation covers every purpose, so a ``train-genai`` refusal reserves its path as well.
    No ``tdm-policy``: the registry publishes no licensing policy to point at.
    """
    return [{"location": f"{path}*", "tdm-reservation": 1} for path in sorted({rule.path for rule in rules})]


def robots_txt(*, rules: Sequence[PathRule], origin: str) -> str:
    """Lines for robots.txt with the IETF aipref ``Content-Usage: <path> <usage-prefs>`` rule.

    Crawlers apply the rule with the longest matching path, while the registry refuses a URL when any
    prefix covers it; so a path also carries the refusals of the shorter paths above it. No ``Allow``
    line is written: merged into an existing ``User-Agent: *`` group it could unblock crawling.
    """
    refused: dict[str, set[str]] = {}
    for rule in rules:
        refused.setdefault(rule.path, set()).add(rule.purpose)
    lines = [
        f"# AI-training refusals in force for {origin}, as recorded in the opt-out registry.",
        "# Content-Usage rules (IETF aipref) state how content may be used; they do not change what may be crawled.",
        "# Download this again after you file or withdraw a refusal.",
    ]
    if not refused:
        # A lone "User-Agent: *" would join the next group of the file and change its meaning.
        lines.append("# No URL-prefix refusal is in force on this domain.")
        return "\n".join(lines) + "\n"
    lines.append("User-Agent: *")
    for path in sorted(refused):
        purposes = {p for other, ps in refused.items() if path.startswith(other) for p in ps}
        labels = sorted({AIPREF_LABELS[purpose] for purpose in purposes})
        lines.append(f"Content-Usage: {path} {', '.join(f'{label}=n' for label in labels)}")
    return "\n".join(lines) + "\n"
