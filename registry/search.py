"""Finding works by title, creator name and identifier: the public search and a holder's own ``works?q=``.

What a query matches, in rank order (the tier), each tier ordered by the shorter title first (the closest in
length to what was typed), then by registration (id):

0. an identifier: the query is one in any spelling ``identifier_normalize`` accepts, for any scheme;
1. the title, exactly; 2. a creator's name, exactly; 3. the start of the title;
4. a part of the title; 5. a part of a creator's name.

Titles, names and the query are compared in their *search form*: lower case, white space removed. So
"봄의정원" finds "봄의 정원" and the other way round, "정원" finds "봄의 정원 이야기", "HAN kang" finds "Han Kang".

A query finds at most ``SEARCH_MAX_RESULTS`` (300) works: the best of each source's first ``SEARCH_MAX_RESULTS``
candidates. Exact and start-of-title matches are read from their own index, so a common word never pushes an
exact title out; a query matching more works than that asks for a longer query.

The engines (the one seam between the databases here, chosen once per connection like the lookup's):

- PostgreSQL (migration 0006): the search form of title and creators is an immutable SQL function
  (``registry_work_search_text``) indexed three ways. A GIN trigram index (``pg_trgm``) serves ``LIKE '%q%'``
  for queries of three characters or more; trigrams cannot serve one or two characters, and Korean words are
  often two syllables, so a GIN index on the text's *bigrams* (``registry_search_bigrams``: every two adjacent
  characters, one PL/pgSQL expression since migration 0015) serves two-character queries exactly (a
  two-character string occurs in a text if and only if it is one of its bigrams). A btree (``text_pattern_ops``)
  on the title's search form serves exact and start-of-title matches, and one-character queries, which only
  look there.
- SQLite (development and the quick test run): the same tiers with plain ``LIKE`` over every work. SQLite's
  ``lower`` folds ASCII letters only.
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils.translation import gettext_lazy as _

from core.errors import InvalidInput
from core.sql import sql_literal
from registry.errors import InvalidIdentifier
from registry.identifiers import IdentifierKey, Scheme, identifier_normalize
from registry.models import ClaimStatus

SEARCH_QUERY_MAX_LENGTH = 200
SEARCH_MAX_RESULTS = 300

_WHITESPACE = re.compile(r"\s+")
_HOST_LIKE = re.compile(r"^[\w.-]+\.[a-z]{2,}(/\S*)?$", re.IGNORECASE)


class InvalidSearch(InvalidInput):
    code = "invalid_query"
    default_message = _("The search query is not valid.")


def search_form(text: str) -> str:
    """What titles, names and queries are compared as: NFC, lower case, no white space."""
    return _WHITESPACE.sub("", unicodedata.normalize("NFC", text)).lower()


def search_query_clean(text: str | None) -> str:
    """The query as typed, trimmed; an empty or too long one raises ``InvalidSearch`` on field ``q``."""
    query = (text or "").strip()
    if not search_form(query):
        raise InvalidSearch(
            _("Enter a title, a creator's name or an identifier to search for."), code="query_empty", field="q"
        )
    if len(query) > SEARCH_QUERY_MAX_LENGTH:
        raise InvalidSearch(
            _("Search for at most %(max)s characters.") % {"max": SEARCH_QUERY_MAX_LENGTH},
            code="query_too_long",
            field="q",
        )
    return query


def identifier_keys_guess(text: str) -> list[IdentifierKey]:
    """Every identifier ``text`` is in some spelling: ``scheme:value`` as written, else each scheme it validates as.

    A bare value may be valid in more than one scheme (13 digits can be an ISBN and an ISMN): all are looked up.
    """
    text = text.strip()
    lowered = text.lower()
    scheme, sep, value = text.partition(":")
    if sep and scheme.strip().lower() in Scheme.values and not lowered.startswith(("http://", "https://")):
        try:
            return [identifier_normalize(scheme=scheme, value=value)]
        except InvalidIdentifier:
            return []
    keys: list[IdentifierKey] = []
    for candidate in Scheme:
        if candidate == Scheme.URL:
            continue
        try:
            keys.append(identifier_normalize(scheme=candidate, value=text))
        except InvalidIdentifier:
            continue
    if lowered.startswith(("http://", "https://")) or _HOST_LIKE.match(text):
        url = text if lowered.startswith(("http://", "https://")) else "https://" + text
        with contextlib.suppress(InvalidIdentifier):
            keys.append(identifier_normalize(scheme=Scheme.URL, value=url))
    return list(dict.fromkeys(keys))


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class SearchTerms:
    """A cleaned query in the forms the engines use."""

    form: str  # search form of the query
    keys: tuple[IdentifierKey, ...]
    holder_id: int | None
    limit: int

    def params(self) -> dict[str, Any]:
        escaped = _like_escape(self.form)
        return {
            "q": self.form,
            "prefix": escaped + "%",
            "contains": "%" + escaped + "%",
            "holder": self.holder_id,
            "limit": self.limit,
        }


class SearchEngine(Protocol):
    def ranked_ids(self, terms: SearchTerms) -> list[int]: ...


_LIVE_CLAIM = " AND EXISTS (SELECT 1 FROM registry_ownershipclaim oc WHERE oc.work_id = w.id" + (  # noqa: S608
    f" AND oc.holder_id = %(holder)s AND oc.status <> {sql_literal(ClaimStatus.REJECTED)})"
)


def _identifier_condition(keys: Sequence[IdentifierKey], params: dict[str, Any]) -> str:
    if not keys:
        return "1 = 0"
    parts = []
    for index, key in enumerate(keys):
        params[f"scheme{index}"] = key.scheme
        params[f"value{index}"] = key.value
        parts.append(f"(i.scheme = %(scheme{index})s AND i.value = %(value{index})s)")
    return " OR ".join(parts)


def _branch(condition: str, holder: str, tier: int) -> str:
    """One capped source of candidates: the works of one index's condition, with the tier it proves."""
    return f"(SELECT w.id, {tier} AS tier FROM registry_work w WHERE " + condition + holder + " LIMIT %(limit)s)"  # noqa: S608


_PG_TEXT = "registry_work_search_text(w.title, w.creators)"
_PG_NAMES = "jsonb_array_elements_text(CASE WHEN jsonb_typeof(w.creators) = 'array' THEN w.creators END) AS c(name)"
# Each source tags its rows with the tier it proves (identifier 0, exact title 1, title start 3, contains 4); only
# what the source does not prove is computed, per row, so the common case reads no creator list.
_PG_RANKED = """
WITH candidates AS ({branches}),
best AS (SELECT id, min(tier) AS tier FROM candidates GROUP BY id),
ranked AS (
    SELECT w.id, length(w.title) AS title_length, CASE
        WHEN best.tier <= 1 THEN best.tier
        WHEN {contains} AND EXISTS (SELECT 1 FROM {names} WHERE registry_search_norm(c.name) = %(q)s) THEN 2
        WHEN best.tier = 3 OR registry_search_norm(w.title) LIKE %(prefix)s THEN 3
        WHEN registry_search_norm(w.title) LIKE %(contains)s THEN 4
        WHEN EXISTS (SELECT 1 FROM {names} WHERE registry_search_norm(c.name) LIKE %(contains)s) THEN 5
    END AS tier
    FROM best JOIN registry_work w ON w.id = best.id
)
SELECT id FROM ranked WHERE tier IS NOT NULL ORDER BY tier, title_length, id LIMIT %(limit)s
"""


class PostgresSearchEngine:
    """Candidates from the indexes of migration 0006, each source capped, then ranked in one statement."""

    def ranked_ids(self, terms: SearchTerms) -> list[int]:
        params = terms.params()
        holder = _LIVE_CLAIM if terms.holder_id is not None else ""
        identifiers = _identifier_condition(terms.keys, params)
        branches = [
            "(SELECT i.work_id AS id, 0 AS tier FROM registry_identifier i"  # noqa: S608
            + " JOIN registry_work w ON w.id = i.work_id WHERE ("
            + identifiers
            + ")"
            + holder
            + ")",
            _branch("registry_search_norm(w.title) = %(q)s", holder, 1),
            _branch("registry_search_norm(w.title) LIKE %(prefix)s", holder, 3),
        ]
        if len(terms.form) >= 3:
            branches.append(_branch(_PG_TEXT + " LIKE %(contains)s", holder, 4))
        elif len(terms.form) == 2:
            branches.append(_branch("registry_search_bigrams(" + _PG_TEXT + ") @> ARRAY[%(q)s]::text[]", holder, 4))
        sql = _PG_RANKED.format(
            branches=" UNION ALL ".join(branches),
            names=_PG_NAMES,
            contains="TRUE" if len(terms.form) >= 2 else "FALSE",
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return [row[0] for row in cursor.fetchall()]


# SQLite has no function for Unicode white space; these are the spaces titles and names carry in practice.
_SQLITE_NORM = "lower(replace(replace(replace(replace({0}, ' ', ''), char(9), ''), char(10), ''), char(13), ''))"


_SQLITE_CREATORS = "json_each(CASE WHEN json_type(w.creators) = 'array' THEN w.creators ELSE '[]' END) AS c"
_SQLITE_RANKED = """
SELECT id FROM (
    SELECT w.id, length(w.title) AS title_length, CASE
        WHEN EXISTS (SELECT 1 FROM registry_identifier i WHERE i.work_id = w.id AND ({identifiers})) THEN 0
        WHEN {title} = %(q)s THEN 1
        WHEN {contains} AND EXISTS (SELECT 1 FROM {creators} WHERE {name} = %(q)s) THEN 2
        WHEN {title} LIKE %(prefix)s ESCAPE '\\' THEN 3
        WHEN {contains} AND {title} LIKE %(contains)s ESCAPE '\\' THEN 4
        WHEN {contains} AND EXISTS (SELECT 1 FROM {creators} WHERE {name} LIKE %(contains)s ESCAPE '\\') THEN 5
    END AS tier
    FROM registry_work w WHERE 1 = 1{holder}
) WHERE tier IS NOT NULL ORDER BY tier, title_length, id LIMIT %(limit)s
"""


class SqliteSearchEngine:
    """The same tiers as PostgreSQL's, by ``LIKE`` over every work: development data is small. As there, a
    one-character query looks only at identifiers and at the title's start."""

    def ranked_ids(self, terms: SearchTerms) -> list[int]:
        params = terms.params()
        sql = _SQLITE_RANKED.format(
            identifiers=_identifier_condition(terms.keys, params),
            title=_SQLITE_NORM.format("w.title"),
            name=_SQLITE_NORM.format("c.value"),
            creators=_SQLITE_CREATORS,
            contains="1 = 1" if len(terms.form) >= 2 else "1 = 0",
            holder=_LIVE_CLAIM if terms.holder_id is not None else "",
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return [row[0] for row in cursor.fetchall()]


def search_engine_for(db: BaseDatabaseWrapper) -> SearchEngine:
    return PostgresSearchEngine() if db.vendor == "postgresql" else SqliteSearchEngine()


def work_search_ids(*, query: str, holder_id: int | None = None, limit: int = SEARCH_MAX_RESULTS) -> list[int]:
    """The ids of the works ``query`` finds, best first (see the module's docstring for the rule).

    ``holder_id`` keeps the works that party has a live claim on. ``query`` must be cleaned
    (``search_query_clean``).
    """
    terms = SearchTerms(
        form=search_form(query), keys=tuple(identifier_keys_guess(query)), holder_id=holder_id, limit=limit
    )
    return search_engine_for(connection).ranked_ids(terms)
