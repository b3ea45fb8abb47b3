"""Full-text search of the directory in the reader's language, on SQLite and PostgreSQL alike.

Every service is indexed once per portal language, its text stemmed by that language's rules: an inmate who
reads Dutch searching "woningen" finds an entry that says "woning", whatever language the entry was written in,
because the query is stemmed by the same rules as the row it is matched against. PostgreSQL does the stemming
itself (`to_tsvector` with the english, dutch, french or german dictionary, a GIN index over the vectors);
SQLite has no such dictionaries, so the same Snowball stemmers run here and an FTS5 table holds the stems.
The two differ in ranking details, never in what a word matches.

The index table is not a model (its shape differs per database); migration 0010 makes it and `reindex` keeps it
in step with the services, in the same transaction as the change that calls it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import snowballstemmer
from sqlalchemy import Float, String, and_, column, exists, func, or_, select, text
from sqlalchemy.orm import Session

from gatehouse.resources.models import Facet, Service, ServiceFacet

INDEX_TABLE = "resources_search"
"""The index's table; on SQLite FTS5 adds shadow tables whose names start with it."""
DICTIONARIES = {"en": "english", "nl": "dutch", "fr": "french", "de": "german"}
"""Portal language → Snowball stemmer, which is also PostgreSQL's text search configuration of the same name."""
MAX_QUERY_WORDS = 12

_WORD = re.compile(r"\w+", re.UNICODE)


def plain(value: str) -> str:
    """Lower case without diacritics: "Démarches" and "demarches" are one word to a reader in a hurry."""
    decomposed = unicodedata.normalize("NFKD", value.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(value: str) -> list[str]:
    return _WORD.findall(value.casefold())


@lru_cache(maxsize=8)
def _stemmer(language: str) -> Any:
    return snowballstemmer.stemmer(DICTIONARIES.get(language, "english"))


@lru_cache(maxsize=200_000)
def stem(word: str, language: str) -> str:
    """The stem of the word without its diacritics, by the language's rules: readers type "mediation" for
    "médiation" and "Lenin" for "Lénine", and the English rules stem the two spellings apart."""
    return str(_stemmer(language).stemWord(plain(word)))


def stems(value: str, language: str) -> list[str]:
    return [stem(w, language) for w in words(value)]


def indexed_text(service: Service) -> tuple[str, str]:
    """What a search reads: the names apart (they weigh more), then everything an inmate might type."""
    details = service.details or {}
    documents = [d.get("document") or "" for d in details.get("required_documents", [])]
    places = service.facet(Facet.CITY) + service.facet(Facet.REGION)
    name = " ".join(filter(None, [service.name, service.alternate_name, service.organization.name]))
    body = " ".join(filter(None, [service.description, service.eligibility_description,
                                  service.application_process, service.fees_description, *documents,
                                  *service.facet(Facet.CATEGORY), *places]))
    return name, body


def reindex(session: Session, services: Sequence[Service]) -> None:
    """Replace the index rows of these services (flushed, with their organization and facets loaded)."""
    if not services:
        return
    unindex(session, [s.id for s in services])
    rows = []
    for service in services:
        name, body = indexed_text(service)
        rows += [{"id": service.id, "language": language, "name": name, "body": body}
                 for language in DICTIONARIES]
    if _sqlite(session):
        for row in rows:
            row["name"] = " ".join(stems(row["name"], row["language"]))
            row["body"] = " ".join(stems(row["body"], row["language"]))
        session.execute(text(f"INSERT INTO {INDEX_TABLE} (service_id, language, name, body) "
                             "VALUES (:id, :language, :name, :body)"), rows)
    else:
        for row in rows:  # PostgreSQL stems, but has no unaccent without an extension: the text comes plain
            row["language"] = DICTIONARIES[row["language"]]
            row["name"], row["body"] = plain(row["name"]), plain(row["body"])
        session.execute(text(
            f"INSERT INTO {INDEX_TABLE} (service_id, config, vector) VALUES (:id, CAST(:language AS regconfig), "
            "setweight(to_tsvector(CAST(:language AS regconfig), :name), 'A') || "
            "setweight(to_tsvector(CAST(:language AS regconfig), :body), 'B'))"), rows)


def unindex(session: Session, ids: Iterable[str]) -> None:
    ids = list(ids)
    for start in range(0, len(ids), 500):
        chunk = {f"i{n}": v for n, v in enumerate(ids[start:start + 500])}
        names = ", ".join(f":{k}" for k in chunk)
        session.execute(text(f"DELETE FROM {INDEX_TABLE} WHERE service_id IN ({names})"), chunk)


@dataclass(frozen=True, slots=True)
class Filters:
    category: str = ""
    place: str = ""
    """A city or region of release, matched whole and without case or accents."""
    language: str = ""
    """A language spoken at the service (a code: "fr", "nl", "ar"...)."""
    conviction: bool = False
    """Only services that say they are open to people with a conviction."""


def facet_value(value: str) -> str:
    """How a facet is stored and looked up: trimmed, lower case, without diacritics."""
    return plain(" ".join(value.split()))


def _matched(session: Session, query: str, language: str) -> Any:
    """(service_id, rank) of the services whose text matches every word of `query`, best first (lowest rank)."""
    language = language if language in DICTIONARIES else "en"
    if _sqlite(session):
        terms = [stem(w, language) for w in words(query)][:MAX_QUERY_WORDS]
        match = " AND ".join('"' + t.replace('"', '""') + '"' for t in terms if t)
        sql = text(f"SELECT service_id, bm25({INDEX_TABLE}, 0.0, 0.0, 4.0, 1.0) AS rank FROM {INDEX_TABLE} "
                   f"WHERE {INDEX_TABLE} MATCH :match AND language = :language").bindparams(
            match=match, language=language)
    else:  # plainto_tsquery: every word must match, as on SQLite (websearch_to_tsquery read "or" as OR)
        sql = text(f"SELECT service_id, -ts_rank(vector, q) AS rank FROM {INDEX_TABLE}, "
                   "plainto_tsquery(CAST(:config AS regconfig), :query) AS q "
                   "WHERE config = CAST(:config AS regconfig) AND vector @@ q").bindparams(
            config=DICTIONARIES[language], query=" ".join(plain(w) for w in words(query)[:MAX_QUERY_WORDS]))
    return sql.columns(column("service_id", String), column("rank", Float)).subquery("matched")


def _has(kind: Facet, *values: str) -> Any:
    return exists().where(ServiceFacet.service_id == Service.id, ServiceFacet.kind == kind.value,
                          ServiceFacet.value.in_(values))


def search(session: Session, query: str, language: str, filters: Filters = Filters(), *, limit: int = 50,
           offset: int = 0, include_inactive: bool = False) -> list[Service]:
    """Services matching the words (all of them) and the filters; without words, every service that passes the
    filters, by name."""
    where = []
    if not include_inactive:
        where.append(Service.status == "active")
    if filters.category:
        where.append(_has(Facet.CATEGORY, facet_value(filters.category)))
    if filters.place:
        place = facet_value(filters.place)
        where.append(or_(_has(Facet.CITY, place), _has(Facet.REGION, place)))
    if filters.language:
        where.append(_has(Facet.LANGUAGE, facet_value(filters.language)))
    if filters.conviction:
        where.append(_has(Facet.CONVICTION, "yes"))
    if words(query):
        matched = _matched(session, query, language)
        statement = (select(Service).join(matched, matched.c.service_id == Service.id)
                     .where(and_(True, *where)).order_by(matched.c.rank, Service.name))
    else:
        statement = select(Service).where(and_(True, *where)).order_by(Service.name)
    return list(session.scalars(statement.limit(limit).offset(offset)).unique())


def facet_values(session: Session, kind: Facet) -> list[tuple[str, str]]:
    """Every value of one kind that an active service has, with a label as a feed wrote it, for the filter's
    choices."""
    rows = session.execute(
        select(ServiceFacet.value, func.min(ServiceFacet.label)).join(Service, Service.id == ServiceFacet.service_id)
        .where(ServiceFacet.kind == kind.value, Service.status == "active")
        .group_by(ServiceFacet.value).order_by(ServiceFacet.value))
    return [(value, label or value) for value, label in rows]


def _sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"
