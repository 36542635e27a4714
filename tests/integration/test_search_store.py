"""The search store contract: SQLite FTS5, PostgreSQL full-text search and Elasticsearch pass the
same tests, fed through the search projection with real domain events."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from domain.comment import Comment
from domain.project import Project
from domain.task import Task
from projections.search import SearchFilter, SearchProjection, SearchQuery, SearchResult, SearchStore
from tests.conftest import fresh_elasticsearch_prefix
from tests.services import fresh_postgres_database, service_url


@pytest.fixture(params=["sqlite", "postgres", "elasticsearch"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SearchStore]:
    if request.param == "sqlite":
        from infra.sqlite_search import SQLiteSearchStore

        built: Any = SQLiteSearchStore(tmp_path / "readmodels.db")
        built.ensure_tables("search", 1, ())
        yield built
        built.close()
    elif request.param == "postgres":
        from infra.postgres_readmodels import PostgresReadModelStore
        from infra.postgres_search import PostgresSearchStore

        with fresh_postgres_database() as url:
            readmodels = PostgresReadModelStore(url)
            built = PostgresSearchStore(readmodels.pool)
            built.ensure_tables("search", 1, ())
            yield built
            readmodels.close()
    else:
        from infra.elasticsearch_search import ElasticsearchSearchStore

        with fresh_elasticsearch_prefix() as prefix:
            built = ElasticsearchSearchStore(service_url("ELASTICSEARCH_URL"), alias=prefix)
            built.ensure_tables("search", 1, ())
            yield built
            built.close()


class Feed:
    """Applies aggregates' new events to a store through the search projection, one batch per
    call, at increasing positions, and keeps them to apply again."""

    def __init__(self, store: SearchStore):
        self.store = store
        self.projection = SearchProjection()
        self.events: list[tuple[int, Any]] = []

    def apply(self, *aggregates: Any) -> None:
        batch = []
        for aggregate in aggregates:
            for event in aggregate.collect_events():
                batch.append((len(self.events) + len(batch) + 1, event))
        self.events += batch
        self.run(batch, advance=True)

    def run(self, batch: list[tuple[int, Any]], *, advance: bool) -> None:
        with self.store.transaction("search") as tx:
            for position, event in batch:
                self.projection.process(event, tx, position)
            if advance:
                tx.advance(batch[-1][0])

    @property
    def position(self) -> int:
        return len(self.events)


ALICE, BOB, CAROL, DAVE = (uuid.uuid4() for _ in range(4))


class World:
    """Two projects; "search" matches t1, t2, t3 and comment c1 in Apollo, and t5 in Zephyr."""

    def __init__(self, feed: Feed):
        self.apollo = Project.create(ALICE, "Apollo", description="Mission control", key="APO")
        self.apollo.add_member(ALICE, BOB, "member")
        self.apollo.add_member(ALICE, CAROL, "member")
        self.zephyr = Project.create(DAVE, "Zephyr")
        a = self.apollo
        self.t1 = Task.create(a, ALICE, "Write the search page", description="A <b>bold</b> search box",
                              priority="high", labels=["ui"], assignee_ids=[ALICE])
        self.t2 = Task.create(a, ALICE, "Fix search ranking", priority="urgent", labels=["bug", "ui"],
                              assignee_ids=[ALICE])
        self.t2.assign(a, BOB)
        self.t2.move(a, "in_progress")
        self.t3 = Task.create(a, BOB, "Search indexing is slow", priority="high", labels=["bug"])
        self.t3.move(a, "done")
        self.t4 = Task.create(a, CAROL, "Plan the release", description="Nothing to find here")
        self.c1 = Comment.add(self.t1.id, a.id, BOB, "The search box needs a test")
        self.t5 = Task.create(self.zephyr, DAVE, "Search for the lost rocket", priority="low", labels=["docs"])
        feed.apply(self.apollo, self.zephyr, self.t1, self.t2, self.t3, self.t4, self.c1, self.t5)

    @property
    def apollo_only(self) -> list[str]:
        return [str(self.apollo.id)]


@pytest.fixture
def feed(store: SearchStore) -> Feed:
    return Feed(store)


@pytest.fixture
def world(feed: Feed) -> World:
    return World(feed)


def find(store: SearchStore, text: str, **kw: Any) -> SearchResult:
    return store.search(SearchQuery(text, **kw))


def ids(result: SearchResult) -> set[str]:
    return {hit.id for hit in result.hits}


def test_a_document_is_found_by_a_word_it_contains_with_its_fields_and_highlights(store, world):
    result = find(store, "ranking")
    assert result.total == 1
    [hit] = result.hits
    assert (hit.type, hit.id) == ("task", str(world.t2.id))
    assert hit.score > 0
    assert hit.highlights["title"] == ["Fix search <mark>ranking</mark>"]
    assert hit.document["title"] == "Fix search ranking"
    assert hit.document["projectId"] == str(world.apollo.id)
    assert hit.document["status"] == "in_progress"
    assert sorted(hit.document["assigneeIds"]) == sorted([str(ALICE), str(BOB)])
    assert hit.document["labels"] == ["bug", "ui"]
    assert hit.document["version"] == world.t2.version


def test_projects_and_comments_are_documents_too(store, world):
    [project] = find(store, "apo").hits
    assert (project.type, project.id, project.document["name"]) == ("project", str(world.apollo.id), "Apollo")
    [comment] = find(store, "needs").hits
    assert comment.type == "comment"
    assert comment.document["taskId"] == str(world.t1.id)
    assert comment.highlights == {"body": ["The search box <mark>needs</mark> a test"]}


def test_a_word_with_one_typo_still_matches(store, world):
    assert ids(find(store, "serch", project_ids=world.apollo_only)) == {
        str(world.t1.id), str(world.t2.id), str(world.t3.id), str(world.c1.id)}
    assert ids(find(store, "tset")) == {str(world.c1.id)}  # a transposition of "test"
    [hit] = find(store, "rnaking").hits
    assert hit.highlights["title"] == ["Fix search <mark>ranking</mark>"]


def test_two_typos_in_a_word_or_one_word_missing_do_not_match(store, world):
    assert find(store, "sxarxh").total == 0
    assert find(store, "search banana").total == 0
    assert ids(find(store, "search ranking")) == {str(world.t2.id)}


def test_highlights_escape_the_text_they_quote(store, world):
    [hit] = find(store, "bold").hits
    assert "<b>" not in " ".join(hit.highlights["description"])
    assert "<mark>bold</mark>" in hit.highlights["description"][0]


def test_facets_count_the_matching_tasks_by_status_priority_assignee_and_label(store, world):
    result = find(store, "search", project_ids=world.apollo_only)
    assert result.total == 4  # three tasks and a comment
    assert result.facets == {
        "status": {"done": 1, "in_progress": 1, "todo": 1},
        "priority": {"high": 2, "urgent": 1},
        "assignee": {str(ALICE): 2, str(BOB): 1},
        "label": {"bug": 2, "ui": 2},
    }
    everywhere = find(store, "search")
    assert everywhere.total == 5
    assert everywhere.facets["priority"] == {"high": 2, "low": 1, "urgent": 1}
    assert everywhere.facets["label"] == {"bug": 2, "docs": 1, "ui": 2}


def test_filters_narrow_the_hits_and_the_facets(store, world):
    def by(field: str, *values: str) -> SearchResult:
        return find(store, "search", filters=(SearchFilter(field, values),))

    assert ids(by("status", "done")) == {str(world.t3.id)}
    assert ids(by("priority", "high", "urgent")) == {str(world.t1.id), str(world.t2.id), str(world.t3.id)}
    assert ids(by("labels", "bug")) == {str(world.t2.id), str(world.t3.id)}
    assert ids(by("assigneeIds", str(BOB))) == {str(world.t2.id)}
    assert ids(by("projectId", str(world.zephyr.id))) == {str(world.t5.id)}
    assert by("labels", "bug").facets["status"] == {"done": 1, "in_progress": 1}
    assert ids(find(store, "search", types=("comment",))) == {str(world.c1.id)}
    both = find(store, "search", filters=(SearchFilter("labels", ("ui",)), SearchFilter("assigneeIds", (str(BOB),))))
    assert ids(both) == {str(world.t2.id)}


def test_only_documents_of_the_readable_projects_are_found(store, world):
    assert str(world.t5.id) not in ids(find(store, "search", project_ids=world.apollo_only))
    assert ids(find(store, "search", project_ids=[str(world.zephyr.id)])) == {str(world.t5.id)}
    assert find(store, "search", project_ids=[]).total == 0


def test_results_are_paged_by_relevance(store, world):
    first = find(store, "search", per_page=2, page=1)
    second = find(store, "search", per_page=2, page=2)
    third = find(store, "search", per_page=2, page=3)
    assert first.total == second.total == third.total == 5
    pages = [h.id for r in (first, second, third) for h in r.hits]
    assert len(pages) == len(set(pages)) == 5
    scores = [h.score for r in (first, second, third) for h in r.hits]
    assert scores == sorted(scores, reverse=True)


def test_deleted_documents_and_those_of_deleted_tasks_and_projects_are_gone(store, feed, world):
    late = Comment.add(world.t2.id, world.apollo.id, CAROL, "One more search remark")
    world.t2.delete()  # in the same batch as the comment: hiding must see it
    world.c1.delete(BOB)
    feed.apply(late, world.t2, world.c1)
    assert ids(find(store, "search", project_ids=world.apollo_only)) == {str(world.t1.id), str(world.t3.id)}
    assert find(store, "remark").total == 0
    world.zephyr.delete()
    feed.apply(world.zephyr)
    assert str(world.t5.id) not in ids(find(store, "search"))
    assert find(store, "zephyr").total == 0
    assert find(store, "search").facets["priority"] == {"high": 2}


def test_changes_are_merged_into_the_stored_document(store, feed, world):
    world.t1.update(title="Write the results page", labels=["ui", "web"])
    world.t1.unassign(ALICE)
    world.t1.move(world.apollo, "in_review")
    feed.apply(world.t1)
    [hit] = find(store, "results").hits
    assert hit.document["title"] == "Write the results page"
    assert hit.document["labels"] == ["ui", "web"]
    assert hit.document["assigneeIds"] == []
    assert hit.document["status"] == "in_review"
    assert hit.document["description"] == "A <b>bold</b> search box"
    assert hit.document["version"] == world.t1.version


def test_applying_every_event_again_changes_nothing(store, feed, world):
    world.t1.update(title="Write the results page")
    world.t3.delete()
    feed.apply(world.t1, world.t3)
    queries = ["search", "serch", "results", "write", "indexing", "apollo", "test"]
    before = [find(store, q) for q in queries]
    feed.run(feed.events, advance=False)  # every event, oldest first, in one batch
    for event in reversed(feed.events):  # and each alone, newest first
        feed.run([event], advance=False)
    after = [find(store, q) for q in queries]
    assert [(r.total, r.facets, [(h.id, h.document) for h in r.hits]) for r in after] == \
           [(r.total, r.facets, [(h.id, h.document) for h in r.hits]) for r in before]
    assert find(store, "write").hits[0].document["title"] == "Write the results page"
    assert find(store, "indexing").total == 0


def test_a_crash_after_the_writes_but_before_the_position_reapplies_the_batch_harmlessly(store, feed, world):
    # The batch's documents reached the store but its position did not (a crash in between,
    # as when Elasticsearch took the bulk request and the tracking write never happened).
    start = store.position("search")
    assert start == feed.position
    extra = Task.create(world.apollo, ALICE, "Search the attic", labels=["home"])
    extra.move(world.apollo, "done")
    batch = [(feed.position + i + 1, e) for i, e in enumerate(extra.collect_events())]
    feed.events += batch
    feed.run(batch, advance=False)
    assert store.position("search") == start
    # Restarted, the projection applies the batch again from its position.
    feed.run(batch, advance=True)
    assert store.position("search") == feed.position
    result = find(store, "attic")
    assert [(h.id, h.document["status"], h.document["version"]) for h in result.hits] == [
        (str(extra.id), "done", extra.version)]
    assert find(store, "search", project_ids=world.apollo_only).facets["label"] == {"bug": 2, "home": 1, "ui": 2}


def test_the_position_only_moves_forward(store, feed, world):
    assert store.position("search") == feed.position
    with pytest.raises(ValueError), store.transaction("search") as tx:
        tx.advance(feed.position - 1)
    assert store.position("search") == feed.position


def test_a_new_projection_version_starts_again_from_position_zero(store, feed, world):
    assert find(store, "search").total == 5
    store.ensure_tables("search", 2, ())
    assert store.position("search") == 0
    assert find(store, "search").total == 0
    feed.run(feed.events, advance=True)  # the rebuild, from the first event
    assert store.position("search") == feed.position
    assert find(store, "search").total == 5
