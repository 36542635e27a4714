"""Search in SQLite (the embedded default): documents and an FTS5 index in the read-model
database, written with the projection's position in one transaction.

Typo tolerance: each query term matches itself or any indexed word one edit away. The words one
edit away are generated (a few hundred per term) and looked up in the FTS5 vocabulary, so the
MATCH expression names only words that exist: ``("serch" OR "search") AND ...``. Ranked by
bm25 with per-field weights; highlights from FTS5's ``highlight()`` and ``snippet()``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from infra.search_text import CLOSE, OPEN, empty_facets, fragments, query_terms, typo_variants
from infra.sql_search import (
    MATCH_COLUMNS,
    SqlSearchDialect,
    SqlSearchTransaction,
    run_search,
    row_values,
    scope_clauses,
    searched_text,
)
from infra.sql_readmodels import SQLITE, Execute, SqlLayout, ensure_projection_tables
from infra.sqlite_readmodels import SQLiteFile, _executor
from infra.sql_rebuild import SqlCopies
from projections.schema import Table
from projections.search import HIGHLIGHTED_FIELDS, SEARCHED_FIELDS, SearchQuery, SearchResult

_TEXT_COLUMNS = list(SEARCHED_FIELDS)
_TABLES = ("search_documents", "search_fts")


def _ddl(names: Mapping[str, str]) -> list[str]:
    """The documents table and its FTS5 index, under the given names."""
    docs, fts = names["search_documents"], names["search_fts"]
    return [
        f"CREATE TABLE IF NOT EXISTS {docs} ("
        " doc_key INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, project_id TEXT, task_id TEXT,"
        " status TEXT, priority TEXT, assignee_ids TEXT NOT NULL, labels TEXT NOT NULL,"
        " version INTEGER NOT NULL, deleted INTEGER NOT NULL, hidden INTEGER NOT NULL, document TEXT NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS {docs}_project_id ON {docs} (project_id)",
        f"CREATE INDEX IF NOT EXISTS {docs}_task_id ON {docs} (task_id)",
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {fts} USING fts5({', '.join(_TEXT_COLUMNS)},"
        " tokenize = 'unicode61 remove_diacritics 2')",
    ]


_LAYOUT = SqlLayout(
    tables=_TABLES,
    create=_ddl,
    drop=("DROP TABLE IF EXISTS search_vocabulary", "DROP TABLE IF EXISTS search_fts",
          "DROP TABLE IF EXISTS search_documents"),
    # Only searches read the vocabulary: a rebuild's copy needs none.
    derived=("CREATE VIRTUAL TABLE IF NOT EXISTS search_vocabulary USING fts5vocab(search_fts, 'row')",),
)
_WEIGHTS = ", ".join(str(w) for w in SEARCHED_FIELDS.values())


class _SQLiteDialect(SqlSearchDialect):
    placeholder = "?"

    def any_of(self, column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
        return f"{column} IN (SELECT value FROM json_each(?))", [json.dumps(list(values))]

    def list_has_any(self, column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
        return (f"EXISTS (SELECT 1 FROM json_each({column}) WHERE value IN (SELECT value FROM json_each(?)))",
                [json.dumps(list(values))])

    def list_items(self, column: str) -> tuple[str, str]:
        return f"matches, json_each(matches.{column}) AS item", "item.value"


_DIALECT = _SQLiteDialect()


class _Transaction(SqlSearchTransaction):
    def _store(self, type: str, id: str, version: int, fields: Mapping[str, Any], *, deleted: bool,
               hidden: bool) -> None:
        values = row_values(type, id, version, fields, deleted=deleted, hidden=hidden)
        names = list(values)
        updates = ", ".join(f"{n} = excluded.{n}" for n in names if n != "id")
        rows = self._execute(
            f"INSERT INTO {self._table('search_documents')} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) "
            f"ON CONFLICT (id) DO UPDATE SET {updates} RETURNING doc_key",
            list(values.values()),
        )
        key = rows[0]["doc_key"]
        fts = self._table("search_fts")
        self._execute(f"DELETE FROM {fts} WHERE rowid = ?", [key])
        if not deleted:
            text = searched_text(fields)
            self._execute(
                f"INSERT INTO {fts} (rowid, {', '.join(_TEXT_COLUMNS)}) VALUES (?{', ?' * len(_TEXT_COLUMNS)})",
                [key, *(text[c] for c in _TEXT_COLUMNS)],
            )


class SQLiteSearchStore(SQLiteFile, SqlCopies):
    def layout(self, tables: Sequence[Table]) -> SqlLayout:
        return _LAYOUT

    def ensure_tables(self, projection: str, version: int, tables: Sequence[Table]) -> None:
        """Create the search tables; if the projection's version changed, drop them and start over."""
        with self.write_connection() as execute:
            ensure_projection_tables(execute, SQLITE, projection, version, drop=_LAYOUT.drop,
                                     create=_LAYOUT.live_ddl())

    def new_transaction(self, execute: Execute, projection: str, position: int,
                        names: Mapping[str, str] | None = None) -> _Transaction:
        return _Transaction(execute, projection, position, names)

    def search(self, query: SearchQuery) -> SearchResult:
        conn = self._reader()
        execute = _executor(conn)
        conn.execute("BEGIN")  # one snapshot for the page, its total, facets and highlights
        try:
            expression = self._match_expression(execute, query.text)
            if expression is None:
                return SearchResult(hits=[], total=0, facets=empty_facets())
            clauses, params = scope_clauses(_DIALECT, query)
            matches = (
                f"WITH matches AS (SELECT {MATCH_COLUMNS}, -bm25(search_fts, {_WEIGHTS}) AS score"
                " FROM search_fts JOIN search_documents d ON d.doc_key = search_fts.rowid"
                f" WHERE search_fts MATCH ? AND {' AND '.join(clauses)})"
            )
            result, ids = run_search(execute, _DIALECT, matches, [expression, *params], query)
            self._highlight(execute, expression, ids, result)
            return result
        finally:
            conn.execute("COMMIT")

    @staticmethod
    def _match_expression(execute: Any, text: str) -> str | None:
        """An FTS5 query: every term, each as itself or an indexed word one edit away."""
        groups = []
        for term in query_terms(text):
            variants = sorted(typo_variants(term) - {term})
            found = execute(
                "SELECT term FROM search_vocabulary WHERE term IN (SELECT value FROM json_each(?))",
                [json.dumps(variants)],
            )
            words = [term, *sorted(r["term"] for r in found)]
            groups.append("(" + " OR ".join(f'"{w}"' for w in words) + ")")
        return " AND ".join(groups) if groups else None

    @staticmethod
    def _highlight(execute: Any, expression: str, ids: list[str], result: SearchResult) -> None:
        if not ids:
            return
        marks = []
        for name in HIGHLIGHTED_FIELDS:
            column = _TEXT_COLUMNS.index(name)
            if name in ("title", "name"):  # short: the whole value
                marks.append(f"highlight(search_fts, {column}, '{OPEN}', '{CLOSE}') AS {name}")
            else:
                marks.append(f"snippet(search_fts, {column}, '{OPEN}', '{CLOSE}', '…', 24) AS {name}")
        rows = execute(
            f"SELECT d.id, {', '.join(marks)} FROM search_fts JOIN search_documents d ON d.doc_key = search_fts.rowid"
            " WHERE search_fts MATCH ? AND d.id IN (SELECT value FROM json_each(?))",
            [expression, json.dumps(ids)],
        )
        by_id = {r["id"]: r for r in rows}
        for hit in result.hits:
            row = by_id.get(hit.id)
            if row is not None:
                hit.highlights = {n: f for n in HIGHLIGHTED_FIELDS if (f := fragments(row[n]))}
