"""Search documents in SQL: what the SQLite (FTS5) and PostgreSQL (tsvector) search stores share.

One row per document in ``search_documents``: the document as JSON, the fields filters and facets
use as columns, its version, and two flags: ``deleted`` (a tombstone) and ``hidden`` (its task or
project was deleted). Each store adds its own full-text index over the searched fields.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from infra.dead_letters import DeadLetterLog
from infra.sql_readmodels import NumberedCommits, read_partitions, write_partitions
from infra.search_text import ordered_facets
from projections.search import (
    FACETS,
    LIST_FIELDS,
    SEARCHED_FIELDS,
    DocumentChange,
    DocumentType,
    SearchDocument,
    SearchHit,
    SearchQuery,
    SearchResult,
)
from projections.store import PartitionPosition

Execute = Callable[[str, Sequence[Any]], list[Mapping[str, Any]]]

COLUMNS = {
    "projectId": "project_id", "taskId": "task_id", "status": "status", "priority": "priority",
    "assigneeIds": "assignee_ids", "labels": "labels",
}
_PARENT_COLUMNS = {"projectId": "project_id", "taskId": "task_id"}
# What a store's ``matches`` CTE selects from ``search_documents d``, besides ``score``.
MATCH_COLUMNS = "d.id, d.type, d.version, d.status, d.priority, d.assignee_ids, d.labels, d.document"


@dataclass(frozen=True)
class StoredDocument:
    version: int
    deleted: bool
    hidden: bool
    fields: dict[str, Any]


def row_values(type: str, id: str, version: int, fields: Mapping[str, Any], *, deleted: bool,
               hidden: bool) -> dict[str, Any]:
    """The ``search_documents`` columns for a document."""
    values: dict[str, Any] = {"id": id, "type": type, "version": version, "deleted": deleted, "hidden": hidden}
    for name, column in COLUMNS.items():
        value = fields.get(name)
        values[column] = json.dumps(value or []) if name in LIST_FIELDS else value
    values["document"] = json.dumps(dict(fields), separators=(",", ":"))
    return values


def searched_text(fields: Mapping[str, Any]) -> dict[str, str]:
    """The text of each searched field (a list, such as labels, as words)."""
    text = {}
    for name in SEARCHED_FIELDS:
        value = fields.get(name)
        text[name] = " ".join(value) if isinstance(value, list) else (value or "")
    return text


def _loaded(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


class SqlSearchTransaction(NumberedCommits):
    """SearchTransaction's versioning rules over SQL; a store's subclass writes a row and its text."""

    placeholder = "?"

    def __init__(self, execute: Execute, projection: str, position: int, names: Mapping[str, str] | None = None):
        self._execute = execute
        self.projection = projection
        self.position = position
        self.new_position: int | None = None
        # The physical table of each search table (a rebuild writes its copy's).
        self._names = dict(names or {})

    def _table(self, name: str) -> str:
        return self._names.get(name, name)

    @property
    def dead_letters(self) -> DeadLetterLog | None:
        """The projection's dead letters, committed with its documents and position (none for a
        rebuild's copy: a poison event fails the rebuild, the live copy stays in service)."""
        if self._names:
            return None
        return DeadLetterLog(self._execute, self.placeholder, self.projection)

    def put(self, document: SearchDocument) -> None:
        current = self._current(document.id)
        if current is None or current.version < document.version:
            hidden = current.hidden if current else False
            self._store(document.type, document.id, document.version, document.fields, deleted=False, hidden=hidden)

    def change(self, type: DocumentType, id: str, version: int, change: DocumentChange) -> None:
        current = self._current(id)
        if current is not None and not current.deleted and current.version < version:
            self._store(type, id, version, change.applied_to(current.fields), deleted=False, hidden=current.hidden)

    def remove(self, type: DocumentType, id: str, version: int) -> None:
        current = self._current(id)
        if current is None or current.version < version:
            tombstone = {"id": id, "projectId": current.fields.get("projectId") if current else None}
            self._store(type, id, version, tombstone, deleted=True, hidden=current.hidden if current else False)

    def hide_where(self, field: str, value: str) -> None:
        p = self.placeholder
        self._execute(f"UPDATE {self._table('search_documents')} SET hidden = {p} WHERE {_PARENT_COLUMNS[field]} = {p}",
                      [True, value])

    def advance(self, position: int) -> None:
        if position < self.position:
            raise ValueError(f"{self.projection}: position may not go back ({position} < {self.position})")
        self.new_position = position

    def partitions(self, feed: str) -> dict[int, PartitionPosition]:
        """Where the search projection stands in each partition of a Kafka topic (committed with
        its documents and position, as for the relational projections)."""
        return read_partitions(self._execute, self.placeholder, self.projection, feed)

    def track_partitions(self, feed: str, positions: Mapping[int, PartitionPosition]) -> None:
        write_partitions(self._execute, self.placeholder, self.projection, feed, positions)

    def _current(self, id: str) -> StoredDocument | None:
        p = self.placeholder
        rows = self._execute(
            f"SELECT version, deleted, hidden, document FROM {self._table('search_documents')} WHERE id = {p}", [id]
        )
        if not rows:
            return None
        row = rows[0]
        return StoredDocument(int(row["version"]), bool(row["deleted"]), bool(row["hidden"]),
                              dict(_loaded(row["document"])))

    def _store(self, type: str, id: str, version: int, fields: Mapping[str, Any], *, deleted: bool,
               hidden: bool) -> None:
        raise NotImplementedError


class SqlSearchDialect:
    """How a store says "one of these values" and lists a JSON array's items in SQL."""

    placeholder = "?"

    def any_of(self, column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
        raise NotImplementedError

    def list_has_any(self, column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
        raise NotImplementedError

    def list_items(self, column: str) -> tuple[str, str]:
        """(FROM clause over ``matches`` and its items, the item expression)."""
        raise NotImplementedError


def scope_clauses(dialect: SqlSearchDialect, query: SearchQuery) -> tuple[list[str], list[Any]]:
    """WHERE clauses (over ``search_documents d``) for the query's types, projects and filters."""
    clauses = ["NOT d.deleted", "NOT d.hidden"]
    params: list[Any] = []

    def add(clause: tuple[str, list[Any]]) -> None:
        clauses.append(clause[0])
        params.extend(clause[1])

    add(dialect.any_of("d.type", list(query.types)))
    if query.project_ids is not None:
        add(dialect.any_of("d.project_id", list(query.project_ids)))
    for f in query.filters:
        column = f"d.{COLUMNS[f.field]}"
        add(dialect.list_has_any(column, list(f.values)) if f.field in LIST_FIELDS
            else dialect.any_of(column, list(f.values)))
    return clauses, params


def run_search(execute: Execute, dialect: SqlSearchDialect, matches: str, params: Sequence[Any],
               query: SearchQuery) -> tuple[SearchResult, list[str]]:
    """The page, total and facets of a store's ``matches`` CTE (MATCH_COLUMNS and ``score``);
    also returns the ids on the page, for highlights."""
    p = dialect.placeholder
    page = execute(
        f"{matches} SELECT id, type, version, score, document FROM matches ORDER BY score DESC, id"
        f" LIMIT {p} OFFSET {p}",
        [*params, query.per_page, (query.page - 1) * query.per_page],
    )
    facet_selects = ["SELECT 'total' AS facet, '' AS value, COUNT(*) AS n FROM matches"]
    for name, field in FACETS.items():
        if field in LIST_FIELDS:
            source, item = dialect.list_items(COLUMNS[field])
            facet_selects.append(f"SELECT '{name}', {item}, COUNT(*) FROM {source} GROUP BY {item}")
        else:
            column = COLUMNS[field]
            facet_selects.append(
                f"SELECT '{name}', {column}, COUNT(*) FROM matches WHERE {column} IS NOT NULL GROUP BY {column}"
            )
    counts = execute(f"{matches} {' UNION ALL '.join(facet_selects)}", params)
    total = 0
    facets: dict[str, dict[str, int]] = {name: {} for name in FACETS}
    for row in counts:
        if row["facet"] == "total":
            total = int(row["n"])
        else:
            facets[row["facet"]][row["value"]] = int(row["n"])
    hits = [
        SearchHit(type=row["type"], id=row["id"], score=float(row["score"]), highlights={},
                  document={**_loaded(row["document"]), "version": int(row["version"])})
        for row in page
    ]
    return SearchResult(hits=hits, total=total, facets=ordered_facets(facets)), [h.id for h in hits]
