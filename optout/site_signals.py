"""Reading what a site says in the web's vocabularies: strict parsers of the same formats ``optout.signals`` writes.

- aipref usage preferences (``Content-Usage`` header and robots.txt rule): an RFC 9651 Structured Fields Dictionary
  whose members are labels with the tokens ``y`` or ``n`` (draft-ietf-aipref-vocab-08, draft-ietf-aipref-attach).
  A value that is not a valid Dictionary is ignored as a whole; unknown labels and parameters are ignored; a label
  given twice takes its last value.
- robots.txt (RFC 9309 groups): ``Content-Usage: [path] prefs`` and ``Content-Signal: prefs`` inside groups, and the
  global RSL ``License:`` lines.
- Content Signals (``ai-train=no, search=yes``), TDMRep's ``tdm-reservation`` header and ``tdmrep.json``,
  ``X-Robots-Tag`` (``noai``, ``noimageai``) and Spawning's ``ai.txt``.

``purposes_refused`` reads what such signals say about the registry's two purposes (``READ_TABLE``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from optout.models import Purpose
from registry.embedded_rights import EMBEDDED_READ_TABLE

# RFC 9651: key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" ); a token starts with ALPHA or "*".
_KEY = r"[a-z*][a-z0-9_\-.*]*"
_SF_WORD = r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*"
_SF_NUMBER = r"-?\d{1,15}(?:\.\d{1,3})?"
_SF_STRING = r'"(?:[^"\\\x00-\x1f\x7f]|\\["\\])*"'
_BARE_ITEM = rf"(?:{_SF_WORD}|{_SF_NUMBER}|{_SF_STRING}|\?[01]|:[A-Za-z0-9+/=]*:)"
_PARAMS = rf"(?:;[ ]*{_KEY}(?:={_BARE_ITEM})?)*"
_MEMBER = re.compile(rf"({_KEY})(?:=({_BARE_ITEM}))?({_PARAMS})")
_SEPARATOR = re.compile(r"[ \t]*,[ \t]*")

# The labels of aipref's vocabulary (-08), and what their "n" refuses among the registry's purposes: train-ai is
# training a model that generates content, so it speaks for generative training only.
AIPREF_KNOWN_LABELS = ("train-ai", "search")


def sf_dictionary_parse(value: str) -> dict[str, str | bool] | None:
    """An RFC 9651 Dictionary's members as ``{key: bare item text, or True for a bare key}``; ``None`` if invalid.

    Parameters are checked and dropped; inner lists are not accepted (no aipref value uses them).
    """
    text = value.strip(" ")
    if not text:
        return {}
    members: dict[str, str | bool] = {}
    position = 0
    while True:
        match = _MEMBER.match(text, position)
        if match is None:
            return None
        key, item = match.group(1), match.group(2)
        members[key] = item if item is not None else True
        position = match.end()
        if position == len(text):
            return members
        separator = _SEPARATOR.match(text, position)
        if separator is None or separator.end() == len(text):
            return None
        position = separator.end()


def aipref_parse(value: str) -> dict[str, bool] | None:
    """aipref usage preferences: ``{label: allowed}`` for the known labels given ``y`` or ``n``; ``None`` if the
    value is not a valid Dictionary (then the whole field is ignored)."""
    members = sf_dictionary_parse(value)
    if members is None:
        return None
    prefs: dict[str, bool] = {}
    for label, item in members.items():
        if label in AIPREF_KNOWN_LABELS and item in ("y", "n"):
            prefs[label] = item == "y"
    return prefs


def content_signal_parse(value: str) -> dict[str, bool]:
    """Content Signals (``search=yes, ai-train=no``): ``{signal: allowed}``; unknown values are skipped."""
    signals: dict[str, bool] = {}
    for part in value.split(","):
        name, _, setting = part.strip().partition("=")
        if setting.strip().lower() in ("yes", "no") and name.strip():
            signals[name.strip().lower()] = setting.strip().lower() == "yes"
    return signals


@dataclass
class RobotsGroup:
    """One RFC 9309 group: its user agents and the usage rules in it."""

    agents: list[str]
    content_usage: list[tuple[str, dict[str, bool]]] = field(default_factory=list)
    content_signal: dict[str, bool] = field(default_factory=dict)
    disallow: list[str] = field(default_factory=list)


@dataclass
class RobotsSignals:
    groups: list[RobotsGroup]
    licenses: list[str]

    def for_agent(self, agent: str = "*") -> RobotsGroup | None:
        """The rules that apply to ``agent``: its own groups, else those of ``*``, combined into one (RFC 9309
        2.2.1: several groups matching one agent are combined, as when lines are appended to a publisher's file)."""
        agent = agent.lower()
        matching = [group for group in self.groups if agent in group.agents] or [
            group for group in self.groups if "*" in group.agents
        ]
        if not matching:
            return None
        combined = RobotsGroup(agents=sorted({a for group in matching for a in group.agents}))
        for group in matching:
            combined.content_usage.extend(group.content_usage)
            combined.content_signal.update(group.content_signal)
            combined.disallow.extend(group.disallow)
        return combined


_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_-]*)\s*:\s*(.*?)\s*$")


def robots_parse(text: str) -> RobotsSignals:
    """The usage rules of a robots.txt: groups (consecutive ``User-Agent`` lines share one) and ``License:`` lines."""
    groups: list[RobotsGroup] = []
    licenses: list[str] = []
    current: RobotsGroup | None = None
    starting = False
    for raw in text.splitlines():
        line = raw.split("#", 1)[0]
        match = _LINE.match(line)
        if match is None:
            continue
        name, value = match.group(1).lower(), match.group(2)
        if name == "user-agent":
            if current is None or not starting:
                current = RobotsGroup(agents=[])
                groups.append(current)
            current.agents.append(value.lower())
            starting = True
            continue
        starting = False
        if name == "license":
            licenses.append(value)
        elif current is None:
            continue
        elif name == "content-usage":
            path, prefs_text = ("/", value)
            if value.startswith("/"):
                path, _, prefs_text = value.partition(" ")
            prefs = aipref_parse(prefs_text.strip())
            if prefs is not None:
                current.content_usage.append((path, prefs))
        elif name == "content-signal":
            current.content_signal.update(content_signal_parse(value))
        elif name == "disallow" and value:
            current.disallow.append(value)
    return RobotsSignals(groups=groups, licenses=licenses)


def content_usage_for_path(group: RobotsGroup, path: str) -> dict[str, bool]:
    """The aipref preferences for ``path``: the rule with the longest matching path (draft-ietf-aipref-attach)."""
    best: tuple[int, dict[str, bool]] | None = None
    for rule_path, prefs in group.content_usage:
        if path_matches(rule_path, path) and (best is None or len(rule_path) >= best[0]):
            best = (len(rule_path), prefs)
    return best[1] if best else {}


def path_matches(pattern: str, path: str) -> bool:
    """Whether an RFC 9309 path pattern (``*`` any characters, a final ``$`` the end) matches ``path``."""
    regex = "".join(".*" if c == "*" else re.escape(c) for c in pattern.rstrip("$"))
    return re.match(regex + ("$" if pattern.endswith("$") else ""), path) is not None


def tdmrep_parse(body: bytes) -> list[dict[str, Any]] | None:
    """A ``tdmrep.json`` array of rules, or ``None`` when it is not one."""
    try:
        rules = json.loads(body)
    except ValueError:
        return None
    if not isinstance(rules, list):
        return None
    return [rule for rule in rules if isinstance(rule, dict) and isinstance(rule.get("location"), str)]


def tdmrep_for_path(rules: list[dict[str, Any]], path: str) -> int | None:
    """The ``tdm-reservation`` of the first rule whose location matches ``path`` (TDMRep's order)."""
    for rule in rules:
        if path_matches(str(rule["location"]), path):
            value = rule.get("tdm-reservation")
            return int(value) if value in (0, 1, "0", "1") else None
    return None


def x_robots_parse(value: str) -> set[str]:
    """The directives of an ``X-Robots-Tag`` header (those without a user-agent prefix), lower-cased."""
    directives: set[str] = set()
    for part in value.split(","):
        token = part.strip().lower()
        if token and ":" not in token:
            directives.add(token)
    return directives


# What a site's signal says about each of the registry's purposes (True: refused). aipref's train-ai (-08) and
# IPTC's GENAIMLTRAINING speak for generative training only; the others refuse any AI training.
READ_TABLE: Mapping[str, frozenset[str]] = {
    "aipref:train-ai=n": frozenset({Purpose.TRAIN_GENAI}),
    "content-signal:ai-train=no": frozenset({Purpose.TRAIN_AI, Purpose.TRAIN_GENAI}),
    "tdm-reservation:1": frozenset({Purpose.TRAIN_AI, Purpose.TRAIN_GENAI}),
    "x-robots-tag:noai": frozenset({Purpose.TRAIN_AI, Purpose.TRAIN_GENAI}),
    "ai.txt:disallow": frozenset({Purpose.TRAIN_AI, Purpose.TRAIN_GENAI}),
    # What a work file declares (C2PA cawg.training-mining, XMP plus:DataMining) is read by the registry app,
    # with the same keys: one table for every signal read.
    **EMBEDDED_READ_TABLE,
}


def purposes_refused(said: list[str]) -> dict[str, bool]:
    """``{purpose: refused}`` from the ``READ_TABLE`` keys a site's signals said."""
    refused = set().union(*(READ_TABLE.get(key, frozenset()) for key in said)) if said else set()
    return {purpose: purpose in refused for purpose in Purpose.values}
