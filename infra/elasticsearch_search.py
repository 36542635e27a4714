"""Search in Elasticsearch (production, ELASTICSEARCH_URL).

Idempotent writes: every document is indexed with ``version=<aggregate version>`` and
``version_type=external``, so Elasticsearch refuses (409, ignored) any write not newer than what
it holds: re-applying events, as at-least-once delivery does, changes nothing. A batch's writes go
in one bulk request (refreshed, so a search sees them once the position says so); then the
projection's position is written as a tracking document in the same index, itself versioned by
the position so it never moves back. A crash between the two re-applies the batch, harmlessly.

Fed by Kafka (``KafkaProjectionConsumer``), the projection also records where it stands in each
partition: one tracking document per partition (``partition.<projection>.<feed>.<n>``, its
``id`` field naming the projection and feed), whose ``position`` is the partition's position and
whose external version is its next offset, so it never moves back either (a
revoked worker's late batch is refused). They are written after the batch's documents and
before the position document, in one request: a crash before re-applies the batch (harmless, as
above), one after leaves the partitions ahead of the position, which the next batch raises.

A change to a document is merged into the stored one (a realtime GET, or what this batch already
wrote) and indexed whole with the new version. Reads go through an alias (``<prefix>``) to the
index of the projection's version (``<prefix>-v<version>``), so a rebuild can swap it atomically.
Typo tolerance: each query term matches with up to one edit (``fuzziness: AUTO:3,100``, the
same rule as the SQL stores).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
import re
from typing import Any

from elasticsearch import BadRequestError, Elasticsearch, NotFoundError, helpers

from infra.search_text import empty_facets, ordered_facets, query_terms
from infra.dead_letters import DeadLetterLog
from projections.base import Projection
from projections.schema import Table
from projections.store import PartitionPosition
from projections.search import (
    FACETS,
    SEARCHED_FIELDS,
    DocumentChange,
    DocumentType,
    SearchDocument,
    SearchHit,
    SearchQuery,
    SearchResult,
)

_KEYWORD = {"type": "keyword"}
_TEXT_WITH_KEYWORD = {"type": "text", "analyzer": "standard",
                      "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}
MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "type": _KEYWORD, "id": _KEYWORD, "projectId": _KEYWORD, "taskId": _KEYWORD,
        "authorId": _KEYWORD, "ownerId": _KEYWORD, "createdBy": _KEYWORD,
        "title": _TEXT_WITH_KEYWORD, "name": _TEXT_WITH_KEYWORD, "key": _TEXT_WITH_KEYWORD,
        "description": {"type": "text", "analyzer": "standard"},
        "body": {"type": "text", "analyzer": "standard"},
        "status": _KEYWORD, "priority": _KEYWORD, "assigneeIds": _KEYWORD,
        "labels": {"type": "keyword", "fields": {"text": {"type": "text", "analyzer": "standard"}}},
        "dueDate": {"type": "date", "format": "strict_date"},
        "archived": {"type": "boolean"},
        "createdAt": {"type": "date"}, "updatedAt": {"type": "date"},
        "version": {"type": "long"},
        # Bookkeeping: tombstones, documents of a deleted task or project, the tracking document.
        "deleted": {"type": "boolean"}, "hidden": {"type": "boolean"}, "position": {"type": "long"},
    },
}
SETTINGS = {"number_of_shards": 1, "auto_expand_replicas": "0-1"}
_INTERNAL = ("type", "deleted", "hidden")
_TRACKING = "tracking"
_PARTITION = "partition"
# labels are searched through their analysed sub-field.
_SEARCHED = [f"{'labels.text' if name == 'labels' else name}^{weight:g}" for name, weight in SEARCHED_FIELDS.items()]
_HIGHLIGHT = {
    "pre_tags": ["<mark>"], "post_tags": ["</mark>"], "encoder": "html",
    "fields": {
        "title": {"number_of_fragments": 0}, "name": {"number_of_fragments": 0},
        "description": {"fragment_size": 150, "number_of_fragments": 3},
        "body": {"fragment_size": 150, "number_of_fragments": 3},
    },
}
MAX_FACET_VALUES = 1000


class SearchWriteFailed(Exception):
    pass


class SearchIndexSwapping(SearchWriteFailed):
    """A write refused because a rebuild blocked the live index while it swaps in its copy: not
    a poison event, the batch goes through once the alias points at the new index."""


def _of_version(index: str, base: str) -> bool:
    """Whether ``index`` holds projection version ``base`` (``<alias>-v<n>``): itself, or a rebuild's."""
    return index == base or re.fullmatch(rf"{re.escape(base)}-r\d+", index) is not None


@dataclass
class _Stored:
    version: int
    source: dict[str, Any]
    # Read from Elasticsearch (or newer than what it holds), not only assumed from this batch.
    checked: bool = False


def _tracking_id(projection: str) -> str:
    return f"{_TRACKING}.{projection}"


def _partition_id(projection: str, feed: str, partition: int) -> str:
    return f"{_PARTITION}.{projection}.{feed}.{partition}"


def _partition_operations(index: str, projection: str, feed: str,
                          positions: Mapping[int, PartitionPosition]) -> list[dict[str, Any]]:
    """Bulk operations writing partition tracking documents (``id`` names the projection and feed,
    so a search finds them; the next offset is the version: ``external_gte`` lets a swap raise
    the position at the same offset)."""
    operations: list[dict[str, Any]] = []
    for partition, at in positions.items():
        operations += [
            {"index": {"_index": index, "_id": _partition_id(projection, feed, partition),
                       "version": at.offset, "version_type": "external_gte"}},
            {"type": _TRACKING, "id": f"{projection}.{feed}", "position": at.position},
        ]
    return operations


def _read_partitions(es: Elasticsearch, index: str, projection: str, feed: str) -> dict[int, PartitionPosition]:
    """The partition tracking documents of ``projection`` in ``index`` (writes refresh, so a
    search sees every one written)."""
    found = es.search(index=index, size=10_000, version=True, query={"bool": {"filter": [
        {"term": {"type": _TRACKING}}, {"term": {"id": f"{projection}.{feed}"}}]}})
    return {int(hit["_id"].rsplit(".", 1)[1]): PartitionPosition(int(hit["_version"]), int(hit["_source"]["position"]))
            for hit in found["hits"]["hits"]}


def _bulk(es: Elasticsearch, operations: list[dict[str, Any]]) -> None:
    """One bulk request (refreshed: a search then sees it); writes refused as not newer (409) are ignored."""
    response = es.bulk(operations=operations, refresh=True)
    if response["errors"]:
        failures = [item for entry in response["items"] for item in entry.values()
                    if item.get("status", 200) >= 300 and item.get("status") != 409]
        if failures and all(f.get("error", {}).get("type") == "cluster_block_exception" for f in failures):
            raise SearchIndexSwapping("the search index is being swapped by a rebuild; the batch is retried")
        if failures:
            raise SearchWriteFailed(f"{len(failures)} search writes failed, first: {failures[0]}")


def _carry_partitions(es: Elasticsearch, live: set[str], copy: str, projection: str, position: int) -> None:
    """Copy the live index's partition tracking documents into a rebuild's index, their positions
    raised to the swap position (every event up to it is in the copy, whichever partition it came
    from; the offsets stay: the live index was never past what the copy holds)."""
    if not live:
        return
    found = es.search(index=",".join(sorted(live)), size=10_000, version=True, query={"bool": {"filter": [
        {"term": {"type": _TRACKING}}, {"prefix": {"id": f"{projection}."}}]}})
    operations: list[dict[str, Any]] = []
    for hit in found["hits"]["hits"]:
        operations += [
            {"index": {"_index": copy, "_id": hit["_id"], "version": hit["_version"], "version_type": "external_gte"}},
            {**hit["_source"], "position": max(int(hit["_source"]["position"]), position)},
        ]
    if operations:
        _bulk(es, operations)


def _source(type: str, fields: Mapping[str, Any], version: int, *, deleted: bool, hidden: bool) -> dict[str, Any]:
    return {**fields, "type": type, "version": version, "deleted": deleted, "hidden": hidden}


def _fields(source: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in source.items() if k not in (*_INTERNAL, "version")}


class _Transaction:
    def __init__(self, store: ElasticsearchSearchStore, index: str, projection: str, position: int,
                 dead_letters: DeadLetterLog | None = None):
        self._es = store.es
        self._index = index
        self.projection = projection
        self.position = position
        # In the read-model SQL database (None: a poison event stops the projection).
        self.dead_letters = dead_letters
        self.new_position: int | None = None
        self._pending: list[dict[str, Any]] = []
        self._batch: dict[str, _Stored] = {}
        # Partition tracking documents, written once the batch's documents are (see ``transaction``).
        self._partitions: list[dict[str, Any]] = []

    def partitions(self, feed: str) -> dict[int, PartitionPosition]:
        return _read_partitions(self._es, self._index, self.projection, feed)

    def track_partitions(self, feed: str, positions: Mapping[int, PartitionPosition]) -> None:
        self._partitions += _partition_operations(self._index, self.projection, feed, positions)

    def put(self, document: SearchDocument) -> None:
        known = self._batch.get(document.id)
        if known is None or known.version < document.version:
            source = _source(document.type, document.fields, document.version, deleted=False, hidden=False)
            self._write(document.id, document.version, source, checked=False)

    def change(self, type: DocumentType, id: str, version: int, change: DocumentChange) -> None:
        current = self._current(id)
        if current is None or current.source.get("deleted") or current.version >= version:
            return
        fields = change.applied_to(_fields(current.source))
        self._write(id, version, _source(type, fields, version, deleted=False, hidden=current.source["hidden"]))

    def remove(self, type: DocumentType, id: str, version: int) -> None:
        current = self._current(id)
        if current is not None and current.version >= version:
            return
        project_id = current.source.get("projectId") if current else None
        hidden = current.source["hidden"] if current else False
        tombstone = _source(type, {"id": id, "projectId": project_id}, version, deleted=True, hidden=hidden)
        self._write(id, version, tombstone)

    def hide_where(self, field: str, value: str) -> None:
        self.flush()
        query = {"query": {"bool": {"filter": [{"term": {field: value}}, {"term": {"hidden": False}}]}},
                 "version": True}
        for hit in helpers.scan(self._es, index=self._index, query=query):
            self._pending += [
                {"index": {"_index": self._index, "_id": hit["_id"], "version": hit["_version"],
                           "version_type": "external_gte"}},
                {**hit["_source"], "hidden": True},
            ]
        self.flush()

    def advance(self, position: int) -> None:
        if position < self.position:
            raise ValueError(f"{self.projection}: position may not go back ({position} < {self.position})")
        self.new_position = position

    def flush(self) -> None:
        """Send the pending writes in one bulk request; writes refused as not newer are ignored."""
        if self._pending:
            _bulk(self._es, self._pending)
            self._pending = []
        # What this batch wrote may have been refused, or changed since (hide_where): read again.
        self._batch.clear()

    def finish(self, position: int) -> None:
        """After the documents: the partition tracking documents, then the position document (if
        it moved), in one request, in that order."""
        operations, self._partitions = self._partitions, []
        if self.new_position is not None and self.new_position > position:
            operations += [
                {"index": {"_index": self._index, "_id": _tracking_id(self.projection),
                           "version": self.new_position, "version_type": "external"}},
                {"type": _TRACKING, "position": self.new_position},
            ]
        if operations:
            _bulk(self._es, operations)

    def _current(self, id: str) -> _Stored | None:
        known = self._batch.get(id)
        if known is not None and known.checked:
            return known
        try:
            found = self._es.get(index=self._index, id=id, realtime=True)
            stored: _Stored | None = _Stored(found["_version"], found["_source"], checked=True)
        except NotFoundError:
            stored = None
        # This batch's own write is only newer if Elasticsearch does not already hold that version.
        if known is not None and (stored is None or known.version > stored.version):
            known.checked = True
            return known
        if stored is not None:
            self._batch[id] = stored
        return stored

    def _write(self, id: str, version: int, source: dict[str, Any], *, checked: bool = True) -> None:
        self._pending += [
            {"index": {"_index": self._index, "_id": id, "version": version, "version_type": "external"}},
            source,
        ]
        self._batch[id] = _Stored(version, source, checked)


class ElasticsearchSearchStore:
    def __init__(self, url: str, *, alias: str = "taskflow-search",
                 dead_letters: Callable[[str], AbstractContextManager[DeadLetterLog]] | None = None):
        self.es = Elasticsearch(url, request_timeout=30, max_retries=3, retry_on_timeout=True)
        self.alias = alias
        # Opens a transaction on the projection's dead letters in the read-model SQL database.
        self._dead_letters = dead_letters

    def _aliased(self) -> set[str]:
        """The index(es) behind the alias."""
        try:
            return set(self.es.indices.get_alias(name=self.alias))
        except NotFoundError:
            return set()

    def _writable(self, indices: set[str]) -> None:
        """Lift the write block a rebuild puts on the live index while it swaps (left behind if
        that rebuild died in between)."""
        if indices:
            self.es.indices.put_settings(index=",".join(sorted(indices)), settings={"index.blocks.write": None})

    def ensure_tables(self, projection: str, version: int, tables: Sequence[Table]) -> None:
        """Point the alias at an index of this projection version (``<alias>-v<version>``, or the
        ``-r<generation>`` a rebuild made), creating one if there is none."""
        index = f"{self.alias}-v{version}"
        current = self._aliased()
        if len(current) == 1 and _of_version(next(iter(current)), index):
            self._writable(current)
            index = next(iter(current))
        else:
            self._create(index)
            # One atomic swap; then the other version's index goes, as the SQL stores drop their tables.
            actions: list[dict[str, Any]] = [{"remove_index": {"index": old}} for old in current if old != index]
            actions.append({"add": {"index": index, "alias": self.alias}})
            self.es.indices.update_aliases(actions=actions)
        self.es.cluster.health(index=index, wait_for_status="yellow", timeout="30s")

    def _create(self, index: str) -> None:
        if not self.es.indices.exists(index=index):
            try:
                self.es.indices.create(index=index, settings=SETTINGS, mappings=MAPPINGS)
            except BadRequestError as error:  # another process created it first
                if error.error != "resource_already_exists_exception":
                    raise

    @contextmanager
    def transaction(self, projection: str, index: str | None = None) -> Iterator[_Transaction]:
        """A batch on ``index`` (default: through the alias, so after a rebuild's swap the next
        batch goes to the new index and carries on from the position recorded there).

        Elasticsearch and the SQL database share no transaction. The dead letters (and parked
        events) a live batch records commit in SQL after its documents are written and BEFORE its
        position is: a crash in between applies the batch again, which external versioning makes
        harmless, and meets its dead letters again: an event already dead-lettered is left as
        recorded, parked ones are parked again (one row per position). A failure before the SQL
        commit records nothing. A rebuild's copy (``index`` given) records none: a poison event
        fails the rebuild instead of being filed against the live projection."""
        live = index is None
        index = index or self.alias
        with self._dead_letters(projection) if live and self._dead_letters else nullcontext() as letters:
            position = self._position(index, projection)
            tx = _Transaction(self, index, projection, position, letters)
            yield tx
            tx.flush()
        tx.finish(position)

    def _position(self, index: str, projection: str) -> int:
        try:
            found = self.es.get(index=index, id=_tracking_id(projection), realtime=True)
        except NotFoundError:
            return 0
        return int(found["_source"]["position"])

    def position(self, projection: str) -> int:
        return self._position(self.alias, projection)

    # --- rebuilds (infra/rebuild.py) -----------------------------------------------------------
    def discard_copies(self, projection: Projection) -> None:
        """Delete the indices of rebuilds that never swapped, and lift a write block left on the
        live index by a rebuild that died while swapping."""
        live = self._aliased()
        for index in self.es.indices.get(index=f"{self.alias}-v*", expand_wildcards="all"):
            if index not in live:
                self.es.indices.delete(index=index, ignore_unavailable=True)
        self._writable(live)

    def copy_for_rebuild(self, projection: Projection, generation: int) -> ElasticsearchProjectionCopy:
        return ElasticsearchProjectionCopy(self, projection, generation)

    def search(self, query: SearchQuery) -> SearchResult:
        terms = query_terms(query.text, keep_diacritics=True)
        if not terms:
            return SearchResult(hits=[], total=0, facets=empty_facets())
        filters: list[dict[str, Any]] = [
            {"terms": {"type": list(query.types)}}, {"term": {"deleted": False}}, {"term": {"hidden": False}},
        ]
        if query.project_ids is not None:
            filters.append({"terms": {"projectId": list(query.project_ids)}})
        filters += [{"terms": {f.field: list(f.values)}} for f in query.filters]
        must = [
            {"multi_match": {"query": term, "fields": _SEARCHED, "fuzziness": "AUTO:3,100", "prefix_length": 0}}
            for term in terms
        ]
        response = self.es.search(
            index=self.alias,
            query={"bool": {"must": must, "filter": filters}},
            sort=["_score", {"id": "asc"}],
            from_=(query.page - 1) * query.per_page,
            size=query.per_page,
            track_total_hits=True,
            highlight=_HIGHLIGHT,
            aggs={name: {"terms": {"field": field, "size": MAX_FACET_VALUES}} for name, field in FACETS.items()},
        )
        hits = [
            SearchHit(
                type=hit["_source"]["type"],
                id=hit["_id"],
                score=float(hit["_score"] or 0.0),
                highlights={k: list(v) for k, v in hit.get("highlight", {}).items()},
                document={**_fields(hit["_source"]), "version": hit["_source"]["version"]},
            )
            for hit in response["hits"]["hits"]
        ]
        facets = {
            name: {b["key"]: b["doc_count"] for b in response["aggregations"][name]["buckets"]} for name in FACETS
        }
        return SearchResult(hits=hits, total=response["hits"]["total"]["value"], facets=ordered_facets(facets))

    def ping(self) -> None:
        self.es.info()

    def close(self) -> None:
        self.es.close()


class _CopyIndex:
    """A rebuild's index seen as a runner's store."""

    def __init__(self, store: ElasticsearchSearchStore, index: str):
        self.store, self.index = store, index

    def ensure_tables(self, projection: str, version: int, tables: Sequence[Table]) -> None:
        """The index is made by ``ElasticsearchProjectionCopy.create``."""

    def transaction(self, projection: str) -> AbstractContextManager[_Transaction]:
        return self.store.transaction(projection, index=self.index)

    def position(self, projection: str) -> int:
        return self.store._position(self.index, projection)


class ElasticsearchProjectionCopy:
    """A new index, ``<alias>-v<version>-r<generation>``, built beside the live one; the swap moves
    the alias in one atomic request and deletes the old index in the same request.

    Elasticsearch has no transaction to hold the live projector with, so the swap first blocks
    writes to the live index: a live batch that began before then either landed whole before the
    block (and so at or below the head the copy then catches up to) or fails and is applied again,
    through the alias, to the new index, from the position recorded there."""

    def __init__(self, store: ElasticsearchSearchStore, projection: Projection, generation: int):
        self.store = store
        self.projection = projection
        self.name = projection.name
        self.index = f"{store.alias}-v{projection.version}-r{generation}"

    def create(self) -> None:
        # ``discard_copies`` deleted every index but the live one: an existing index is the live one.
        if self.store.es.indices.exists(index=self.index):
            raise RuntimeError(f"the rebuild's index {self.index} exists already (behind {self.store.alias}?)")
        self.store._create(self.index)
        self.store.es.cluster.health(index=self.index, wait_for_status="yellow", timeout="30s")

    def catch_up_store(self) -> _CopyIndex:
        return _CopyIndex(self.store, self.index)

    def swap(self, catch_up: Callable[[Any], None], before_commit: Callable[[int], None]) -> int:
        es, live = self.store.es, self.store._aliased()
        if live:
            es.indices.add_block(index=",".join(sorted(live)), block="write")
        try:
            copy = self.catch_up_store()
            catch_up(copy)
            position = copy.position(self.name)
            _carry_partitions(es, live, self.index, self.name, position)
            before_commit(position)
            actions: list[dict[str, Any]] = [{"add": {"index": self.index, "alias": self.store.alias}}]
            actions += [{"remove_index": {"index": old}} for old in live]
            es.indices.update_aliases(actions=actions)
        except BaseException:
            self.store._writable(live)
            raise
        return position
