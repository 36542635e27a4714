"""Search in PostgreSQL (production without ELASTICSEARCH_URL): documents with a weighted
``tsvector`` (GIN-indexed) in the read-model database, written with the projection's position in
one transaction, over the read-model store's connection pool.

Typo tolerance as in the SQLite store, without extensions (``pg_trgm`` similarity misses short
transpositions such as "tset"): a vocabulary table holds every indexed word, each query term
matches itself or a vocabulary word one edit away. Unlike SQLite, diacritics count ("cafe" is one
edit from "café"): folding them needs the ``unaccent`` extension. Ranked by ``ts_rank`` (title and name weigh
most, then key and labels, then description and body); highlights from ``ts_headline``.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from infra.postgres_readmodels import _executor, tracked_position, tracked_transaction, write_connection
from infra.sql_readmodels import POSTGRES, Execute, SqlLayout, ensure_projection_tables
from infra.search_text import BETWEEN, CLOSE, OPEN, empty_facets, fragments, query_terms, typo_variants
from infra.sql_search import (
    MATCH_COLUMNS,
    SqlSearchDialect,
    SqlSearchTransaction,
    row_values,
    run_search,
    scope_clauses,
    searched_text,
)
from infra.sql_rebuild import SqlCopies
from projections.schema import Table
from projections.search import HIGHLIGHTED_FIELDS, SearchQuery, SearchResult

_CONFIG = "'simple'::regconfig"


def _ddl(names: Mapping[str, str]) -> list[str]:
    """The documents table (with its weighted tsvector) and the vocabulary, under the given names."""
    docs, words = names["search_documents"], names["search_words"]
    return [
        f"CREATE TABLE IF NOT EXISTS {docs} ("
        " id TEXT PRIMARY KEY, type TEXT NOT NULL, project_id TEXT, task_id TEXT, status TEXT, priority TEXT,"
        " assignee_ids JSONB NOT NULL, labels JSONB NOT NULL, version BIGINT NOT NULL, deleted BOOLEAN NOT NULL,"
        " hidden BOOLEAN NOT NULL, document JSONB NOT NULL,"
        " title TEXT NOT NULL, name TEXT NOT NULL, key TEXT NOT NULL, labels_text TEXT NOT NULL,"
        " description TEXT NOT NULL, body TEXT NOT NULL,"
        " tsv TSVECTOR GENERATED ALWAYS AS ("
        f"  setweight(to_tsvector({_CONFIG}, title || ' ' || name), 'A')"
        f"  || setweight(to_tsvector({_CONFIG}, key || ' ' || labels_text), 'B')"
        f"  || setweight(to_tsvector({_CONFIG}, description || ' ' || body), 'C')) STORED)",
        f"CREATE INDEX IF NOT EXISTS {docs}_tsv ON {docs} USING GIN (tsv)",
        f"CREATE INDEX IF NOT EXISTS {docs}_project_id ON {docs} (project_id)",
        f"CREATE INDEX IF NOT EXISTS {docs}_task_id ON {docs} (task_id)",
        f"CREATE TABLE IF NOT EXISTS {words} (word TEXT PRIMARY KEY)",
    ]


_LAYOUT = SqlLayout(
    tables=("search_documents", "search_words"),
    create=_ddl,
    drop=("DROP TABLE IF EXISTS search_documents", "DROP TABLE IF EXISTS search_words"),
)


class _PostgresDialect(SqlSearchDialect):
    placeholder = "%s"

    def any_of(self, column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(%s)", [list(values)]

    def list_has_any(self, column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
        return f"{column} ?| %s", [list(values)]

    def list_items(self, column: str) -> tuple[str, str]:
        return f"matches, jsonb_array_elements_text(matches.{column}) AS item", "item"


_DIALECT = _PostgresDialect()


class _Transaction(SqlSearchTransaction):
    placeholder = "%s"

    def _store(self, type: str, id: str, version: int, fields: Mapping[str, Any], *, deleted: bool,
               hidden: bool) -> None:
        values = row_values(type, id, version, fields, deleted=deleted, hidden=hidden)
        text = searched_text({} if deleted else fields)
        values.update(title=text["title"], name=text["name"], key=text["key"], labels_text=text["labels"],
                      description=text["description"], body=text["body"])
        names = list(values)
        updates = ", ".join(f"{n} = excluded.{n}" for n in names if n != "id")
        docs = self._table("search_documents")
        self._execute(
            f"INSERT INTO {docs} ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(names))}) "
            f"ON CONFLICT (id) DO UPDATE SET {updates}",
            list(values.values()),
        )
        if not deleted:
            self._execute(
                f"INSERT INTO {self._table('search_words')} (word) SELECT DISTINCT w.lexeme"
                f" FROM {docs} d, unnest(d.tsv) AS w WHERE d.id = %s ON CONFLICT DO NOTHING",
                [id],
            )


class PostgresSearchStore(SqlCopies):
    """Uses the read-model store's pool (the same database); closing it is that store's job."""

    dialect = POSTGRES

    def __init__(self, pool: ConnectionPool[psycopg.Connection[Any]]):
        self.pool = pool

    def layout(self, tables: Sequence[Table]) -> SqlLayout:
        return _LAYOUT

    def ensure_tables(self, projection: str, version: int, tables: Sequence[Table]) -> None:
        with self.pool.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(projection.encode()),))
            ensure_projection_tables(_executor(conn), POSTGRES, projection, version, drop=_LAYOUT.drop,
                                     create=_LAYOUT.live_ddl())

    def write_connection(self) -> AbstractContextManager[Execute]:
        return write_connection(self.pool)

    def new_transaction(self, execute: Execute, projection: str, position: int,
                        names: Mapping[str, str] | None = None) -> _Transaction:
        return _Transaction(execute, projection, position, names)

    def transaction(self, projection: str, names: Mapping[str, str] | None = None) -> AbstractContextManager[_Transaction]:
        """``names``: write these tables under other names (a rebuild's copy)."""
        return tracked_transaction(
            self.pool, projection, lambda execute, position: self.new_transaction(execute, projection, position, names)
        )

    def position(self, projection: str) -> int:
        return tracked_position(self.pool, projection)

    def search(self, query: SearchQuery) -> SearchResult:
        with self.pool.connection() as conn:
            # The snapshot is taken after the lock, as in PostgresReadModelStore.query (rebuild swaps).
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY;"
                         " LOCK TABLE search_documents, search_words IN ACCESS SHARE MODE")
            execute = _executor(conn)
            expression = self._tsquery(execute, query.text)
            if expression is None:
                return SearchResult(hits=[], total=0, facets=empty_facets())
            clauses, params = scope_clauses(_DIALECT, query)
            matches = (
                f"WITH q AS (SELECT to_tsquery({_CONFIG}, %s) AS query),"
                f" matches AS (SELECT {MATCH_COLUMNS}, ts_rank(d.tsv, q.query) AS score FROM search_documents d, q"
                f" WHERE d.tsv @@ q.query AND {' AND '.join(clauses)})"
            )
            result, ids = run_search(execute, _DIALECT, matches, [expression, *params], query)
            self._highlight(execute, expression, ids, result)
            return result

    @staticmethod
    def _tsquery(execute: Any, text: str) -> str | None:
        """A tsquery: every term, each as itself or a vocabulary word one edit away."""
        groups = []
        for term in query_terms(text, keep_diacritics=True):
            variants = sorted(typo_variants(term) - {term})
            found = execute("SELECT word FROM search_words WHERE word = ANY(%s)", [variants])
            words = [term, *sorted(r["word"] for r in found)]
            groups.append("(" + " | ".join(f"'{w}'" for w in words) + ")")
        return " & ".join(groups) if groups else None

    @staticmethod
    def _highlight(execute: Any, expression: str, ids: list[str], result: SearchResult) -> None:
        if not ids:
            return
        whole = f"HighlightAll=true, StartSel={OPEN}, StopSel={CLOSE}"
        parts = (f"MaxFragments=3, MaxWords=20, MinWords=8, ShortWord=0, StartSel={OPEN}, StopSel={CLOSE},"
                 f" FragmentDelimiter={BETWEEN}")
        marks = [
            f"ts_headline({_CONFIG}, d.{name}, q.query, '{whole if name in ('title', 'name') else parts}') AS {name}"
            for name in HIGHLIGHTED_FIELDS
        ]
        rows = execute(
            f"WITH q AS (SELECT to_tsquery({_CONFIG}, %s) AS query) SELECT d.id, {', '.join(marks)}"
            " FROM search_documents d, q WHERE d.id = ANY(%s)",
            [expression, ids],
        )
        by_id = {r["id"]: r for r in rows}
        for hit in result.hits:
            row = by_id.get(hit.id)
            if row is not None:
                hit.highlights = {n: f for n in HIGHLIGHTED_FIELDS if (f := fragments(row[n]))}

    def ping(self) -> None:
        with self.pool.connection(timeout=2) as conn:
            conn.execute("SELECT 1")

    def close(self) -> None:
        """Nothing to close: the pool belongs to the read-model store."""
