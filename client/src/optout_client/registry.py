"""Offline answers from a synced copy of the registry: ``Registry.open(D).may_train(scheme, value, purpose)``."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from optout_client.fastkeys import UNAVAILABLE, key_batch, key_text, url_host
from optout_client.membership import Membership, hashes_of, key_hash
from optout_client.normalize import InvalidIdentifier, SchemeUnavailable, url_prefix_covers
from optout_client.signing import b64decode, verify_signed
from optout_client.state import SNAPSHOT_FORMAT, ClientState, NotSynced, parse_instant, state_load

try:
    import numpy as np
except ImportError:  # pragma: no cover
    np = None  # type: ignore[assignment]

__all__ = [
    "INVALID",
    "NOT_PERMITTED",
    "NOT_PERMITTED_KEY",
    "NOT_PERMITTED_URL_PREFIX",
    "PERMITTED",
    "PURPOSES",
    "Registry",
    "Verdict",
]

PURPOSES = ("train-ai", "train-genai")
NOT_PERMITTED = frozenset({"refused", "license_required"})
_CHUNK = 1 << 14  # items classified at a time: small temporaries, and no slower

# Codes of classify_many, one per item.
PERMITTED = 0
NOT_PERMITTED_KEY = 1  # the key is refused or license_required (snapshot + feed)
NOT_PERMITTED_URL_PREFIX = 2  # a URL under a refused URL prefix
INVALID = 3  # the server would answer "invalid" (or this installation cannot normalize the scheme)


@dataclass(frozen=True)
class Verdict:
    """One item's answer: ``may_train``, and why."""

    scheme: str
    value: str
    purpose: str
    may_train: bool
    status: str  # "permitted" (nothing in the registry stops it), "not_permitted" or "invalid"
    key: str | None = None
    reason: str = ""  # "key", "url_prefix:<prefix>", or the error code of an invalid identifier


@dataclass
class _View:
    """The snapshot with the changes in effect at one instant, for one purpose."""

    refused: set[int] = field(default_factory=set)
    permitted: set[int] = field(default_factory=set)
    prefixes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    prefix_hosts: frozenset[bytes] = frozenset()
    kinds: set[str] = field(default_factory=set)
    refused_array: Any = None
    permitted_array: Any = None


class Registry:
    """A synced copy of the registry: snapshot ``snapshot_id`` at ``as_of`` plus the change feed up to ``cursor``.

    Answers are for the current instant (or ``at=``, not before ``as_of``): changes with a future ``effective_at``
    wait until their instant, then count, without another sync.
    """

    def __init__(self, directory: Path, state: ClientState, manifest: dict[str, Any]) -> None:
        self.directory = directory
        self.state = state
        self.manifest = manifest
        self.snapshot_id = state.snapshot_id
        self.as_of = parse_instant(state.as_of)
        self.cursor = state.cursor
        self.snapshot_cursor = state.snapshot_cursor
        self.registry_url = state.registry
        self.purposes: tuple[str, ...] = tuple(manifest.get("purposes") or PURPOSES)
        self._memberships: dict[str, Membership] = {}
        self._snapshot_prefixes = _read_prefixes(state.snapshot_dir(directory) / "url-prefixes.jsonl.gz")
        kinds_path = state.snapshot_dir(directory) / "kinds.json"
        self._snapshot_kinds: dict[str, list[str]] = (
            json.loads(kinds_path.read_text("utf-8")) if kinds_path.exists() else {}
        )
        # The overlay, in the order the rule reads it: by (effective_at, cursor).
        self._changes = sorted(
            ((parse_instant(change["effective_at"]), int(change["cursor"]), change) for change in state.changes),
            key=lambda entry: (entry[0], entry[1]),
        )
        self._views: dict[str, _View] = {}
        self._views_at: datetime | None = None
        self._views_until: datetime | None = None

    @classmethod
    def open(cls, directory: str | Path, *, verify: bool = False) -> Registry:
        """The copy synced into ``directory``. ``verify`` checks the manifest's signature (with the key recorded at
        sync) and every file's SHA-256 again, for an audit; sync already did both."""
        directory = Path(directory)
        state = state_load(directory)
        manifest_path = state.snapshot_dir(directory) / "manifest.json"
        manifest = json.loads(manifest_path.read_bytes())
        if manifest.get("format") != SNAPSHOT_FORMAT:
            # Another format keys URLs otherwise (version 1: before canonical URLs): answering from it would miss
            # refused URLs, so the copy is unusable until synced again.
            raise NotSynced(
                f"{directory} holds a snapshot in format {manifest.get('format')!r}; this client reads "
                f"{SNAPSHOT_FORMAT}: run optout sync again."
            )
        if verify:
            import hashlib

            verify_signed(manifest, {state.key_id: b64decode(state.public_key)}, what="snapshot manifest")
            for entry in manifest["files"]:
                path = state.snapshot_dir(directory) / entry["name"]
                digest = hashlib.sha256()
                with path.open("rb") as handle:
                    while block := handle.read(1 << 20):
                        digest.update(block)
                if digest.hexdigest() != entry["sha256"] or path.stat().st_size != entry["bytes"]:
                    raise ValueError(f"{path} is not the file the signed manifest names: sync again.")
        return cls(directory, state, manifest)

    # --- metadata ---------------------------------------------------------------------------------------

    @property
    def pending_changes(self) -> int:
        """Changes held that take effect after now."""
        now = datetime.now(UTC)
        return sum(1 for effective_at, _, _ in self._changes if effective_at > now)

    def describe(self) -> dict[str, Any]:
        """What this copy is: for reports and ``optout status``."""
        return {
            "registry": self.registry_url,
            "snapshot_id": self.snapshot_id,
            "as_of": self.state.as_of,
            "snapshot_cursor": self.snapshot_cursor,
            "cursor": self.cursor,
            "synced_at": self.state.synced_at,
            "key_id": self.state.key_id,
            "changes_held": len(self._changes),
            "changes_pending": self.pending_changes,
            "counts": self.manifest.get("counts", {}),
        }

    def membership(self, purpose: str) -> Membership:
        self._check_purpose(purpose)
        loaded = self._memberships.get(purpose)
        if loaded is None:
            path = self.state.snapshot_dir(self.directory) / f"keys-{purpose}.bin"
            loaded = self._memberships[purpose] = Membership.from_file(path) if path.exists() else Membership.empty()
        return loaded

    def kinds_license_required(self, purpose: str = "train-ai", *, at: datetime | None = None) -> set[str]:
        """The work kinds under ``license_required`` at ``at`` (informational: a key's kind is not in the files;
        the keys of registered works of those kinds are in the membership file)."""
        return set(self._view(purpose, at).kinds)

    # --- answers ----------------------------------------------------------------------------------------

    def may_train(self, scheme: str, value: str, purpose: str = "train-ai", *, at: datetime | None = None) -> bool:
        """Whether the registry lets a work with this identifier be used for ``purpose``.

        False when its key is refused or ``license_required``, when it is a URL under a refused URL prefix, and
        when the identifier is invalid (the server answers ``invalid`` with ``may_train: false``): an identifier
        that cannot be checked is not cleared.
        """
        return self.check(scheme, value, purpose, at=at).may_train

    def check(self, scheme: str, value: str, purpose: str = "train-ai", *, at: datetime | None = None) -> Verdict:
        view = self._view(purpose, at)
        scheme_text = scheme.strip().lower()
        try:
            key = key_text(scheme_text, value)
        except InvalidIdentifier as error:
            return Verdict(scheme_text, value, purpose, False, "invalid", None, error.code)
        except SchemeUnavailable:
            return Verdict(scheme_text, value, purpose, False, "invalid", None, UNAVAILABLE)
        hashed = key_hash(key)
        listed = (self.membership(purpose).contains(hashed) and hashed not in view.permitted) or hashed in view.refused
        if listed:
            return Verdict(scheme_text, value, purpose, False, "not_permitted", key, "key")
        if scheme_text == "url" and view.prefixes:
            url = key[4:]
            prefix = _refused_prefix(view.prefixes, url)
            if prefix is not None:
                return Verdict(scheme_text, value, purpose, False, "not_permitted", key, f"url_prefix:{prefix}")
        return Verdict(scheme_text, value, purpose, True, "permitted", key, "")

    def may_train_many(self, scheme: str, values: Any, purpose: str = "train-ai", *, at: datetime | None = None) -> Any:
        """``may_train`` for every value: a ``list[bool]`` for a list (or any iterable) of strings, a
        ``pyarrow.BooleanArray`` for a pyarrow ``Array``/``ChunkedArray``. Nulls are invalid, so False."""
        codes = self.classify_many(scheme, values, purpose, at=at)
        if hasattr(values, "to_pylist"):
            import pyarrow as pa

            return pa.array(codes == PERMITTED if np is not None else [c == PERMITTED for c in codes])
        if np is not None:
            return (codes == PERMITTED).tolist()
        return [code == PERMITTED for code in codes]

    def classify_many(self, scheme: str, values: Any, purpose: str = "train-ai", *, at: datetime | None = None) -> Any:
        """One code per value (``PERMITTED``, ``NOT_PERMITTED_KEY``, ``NOT_PERMITTED_URL_PREFIX``, ``INVALID``):
        a numpy ``uint8`` array, or a list of ints without numpy."""
        view = self._view(purpose, at)
        items: Sequence[Any] = _as_list(values)
        count = len(items)
        if count > _CHUNK:  # bounded temporaries, whatever the caller's batch size
            parts = [
                self._classify(scheme, items[start : start + _CHUNK], purpose, view)
                for start in range(0, count, _CHUNK)
            ]
            return np.concatenate(parts) if np is not None else [code for part in parts for code in part]
        return self._classify(scheme, items, purpose, view)

    def _classify(self, scheme: str, items: Sequence[Any], purpose: str, view: _View) -> Any:
        batch = key_batch(scheme, items)
        count = len(items)
        if np is None:
            codes_list = [PERMITTED] * count
            for position in batch.invalid:
                codes_list[position] = INVALID
            hashes = hashes_of(batch.keys)
            membership = self.membership(purpose)
            for position, key, hashed in zip(batch.index, batch.keys, hashes, strict=True):
                if (membership.contains(hashed) and hashed not in view.permitted) or hashed in view.refused:
                    codes_list[position] = NOT_PERMITTED_KEY
                elif (
                    view.prefixes
                    and key.startswith(b"url:")
                    and _refused_prefix(view.prefixes, key[4:].decode("utf-8")) is not None
                ):
                    codes_list[position] = NOT_PERMITTED_URL_PREFIX
            return codes_list
        codes = np.zeros(count, dtype=np.uint8)
        if batch.invalid:
            codes[np.fromiter(batch.invalid, dtype=np.intp, count=len(batch.invalid))] = INVALID
        if not batch.keys:
            return codes
        hashes = hashes_of(batch.keys)
        listed = self.membership(purpose).contains_many(hashes)
        if view.permitted:
            listed &= ~np.isin(hashes, view.permitted_array)
        if view.refused:
            listed |= np.isin(hashes, view.refused_array)
        index = np.asarray(batch.index, dtype=np.intp)
        codes[index[listed]] = NOT_PERMITTED_KEY
        if view.prefixes and batch.keys[0].startswith(b"url:"):
            prefixes = view.prefixes
            keys = batch.keys
            hosts = view.prefix_hosts
            # A cheap look at the host first ("url:https://HOST[:port]/…"; a bracketed IPv6 host is always looked
            # at fully), then the exact check for the few on a host with refused prefixes.
            hits = [
                j
                for j in np.flatnonzero(~listed).tolist()
                if (keys[j].split(b"/", 3)[2].partition(b":")[0] in hosts or keys[j].split(b"/", 3)[2][:1] == b"[")
                and _refused_prefix(prefixes, keys[j][4:].decode("utf-8")) is not None
            ]
            if hits:
                codes[index[np.asarray(hits, dtype=np.intp)]] = NOT_PERMITTED_URL_PREFIX
        return codes

    # --- the overlay ------------------------------------------------------------------------------------

    def _check_purpose(self, purpose: str) -> None:
        if purpose not in self.purposes:
            raise ValueError(f"Unknown purpose {purpose!r}: one of {', '.join(self.purposes)}.")

    def _view(self, purpose: str, at: datetime | None) -> _View:
        self._check_purpose(purpose)
        if at is not None:
            if at.tzinfo is None:
                raise ValueError("`at` must be an aware datetime.")
            return self._views_build(at.astimezone(UTC))[purpose]
        now = datetime.now(UTC)
        if self._views_at is None or (self._views_until is not None and now >= self._views_until):
            self._views = self._views_build(now)
            self._views_at = now
            self._views_until = next((when for when, _, _ in self._changes if when > now), None)
        return self._views[purpose]

    def _views_build(self, at: datetime) -> dict[str, _View]:
        """Per purpose: the snapshot's answer changed by the latest change in effect at ``at`` for each subject."""
        if at < self.as_of:
            raise ValueError(f"This copy answers from its snapshot's instant {self.state.as_of} on, not before.")
        latest: dict[tuple[str, str, str], dict[str, Any]] = {}
        for effective_at, _, change in self._changes:
            if effective_at > at:
                break
            latest[(change["subject_type"], change["subject"], change["purpose"])] = change
        views = {purpose: _View() for purpose in self.purposes}
        prefixes = {purpose: dict(self._snapshot_prefixes.get(purpose, {})) for purpose in self.purposes}
        kinds = {purpose: set(self._snapshot_kinds.get(purpose, [])) for purpose in self.purposes}
        for (subject_type, subject, purpose), change in latest.items():
            view = views.get(purpose)
            if view is None:
                continue
            not_permitted = change["new_status"] in NOT_PERMITTED
            if subject_type == "key":
                (view.refused if not_permitted else view.permitted).add(key_hash(subject))
            elif subject_type == "url_prefix":
                if not_permitted:
                    prefixes[purpose][subject] = change.get("host") or url_host(subject)
                else:
                    prefixes[purpose].pop(subject, None)
            elif subject_type == "kind":
                (kinds[purpose].add if not_permitted else kinds[purpose].discard)(subject)
        for purpose, view in views.items():
            view.prefixes = _prefix_index(prefixes[purpose])
            view.prefix_hosts = frozenset(host.encode("utf-8") for host in view.prefixes)
            view.kinds = kinds[purpose]
            if np is not None:
                view.refused_array = np.fromiter(view.refused, dtype=np.uint64, count=len(view.refused))
                view.permitted_array = np.fromiter(view.permitted, dtype=np.uint64, count=len(view.permitted))
        return views


def _as_list(values: Any) -> Sequence[Any]:
    if hasattr(values, "to_pylist"):  # pyarrow Array / ChunkedArray
        return values.to_pylist()  # type: ignore[no-any-return]
    if isinstance(values, list | tuple):
        return values
    if np is not None and isinstance(values, np.ndarray):
        return values.tolist()  # type: ignore[no-any-return]
    return list(values)


def _read_prefixes(path: Path) -> dict[str, dict[str, str]]:
    """``url-prefixes.jsonl.gz``: purpose -> {prefix: host}."""
    prefixes: dict[str, dict[str, str]] = {}
    if not path.exists():
        return prefixes
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                entry = json.loads(line)
                prefixes.setdefault(entry["purpose"], {})[entry["prefix"]] = entry.get("host") or ""
    return prefixes


def _prefix_index(prefixes: dict[str, str]) -> dict[str, tuple[str, ...]]:
    """host -> the refused prefixes on it. Each prefix is filed under its listed host and under the host its own
    text names, so that a difference in how a host is written cannot hide a prefix (no false negative)."""
    by_host: dict[str, set[str]] = {}
    for prefix, host in prefixes.items():
        for name in {host.lower(), url_host(prefix)}:
            if name:
                by_host.setdefault(name, set()).add(prefix)
    return {host: tuple(sorted(found)) for host, found in by_host.items()}


def _refused_prefix(index: dict[str, tuple[str, ...]], url: str) -> str | None:
    """A refused prefix of the normalized ``url`` on its host, if any (the server takes the longest; any will do
    to say "not permitted")."""
    candidates = index.get(url_host(url))
    if candidates and url.startswith(candidates):
        # At a boundary of the path only, as the server matches: "https://ex.kr/blog" does not cover "/blogger".
        return next((prefix for prefix in candidates if url_prefix_covers(prefix, url)), None)
    return None
