"""Search through HTTP: typo-tolerant matches with highlights and facets, only in projects the
caller may read, filters, paging, validation, and read-your-writes; on SQLite FTS5, PostgreSQL
full-text search and Elasticsearch."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from infra.composition import build_http_app, build_system
from tests.conftest import embedded_settings, fresh_elasticsearch_prefix
from tests.e2e.helpers import (
    Actor,
    add_comment,
    add_member,
    assert_error,
    create_project,
    create_task,
    field_names,
    make_admin,
    signed_in,
    signing_key_pem,
)
from tests.e2e.helpers import settings  # noqa: F401  (fixture: one signing key per session)
from tests.services import fresh_postgres_database, service_url


@dataclass
class Site:
    alice: Actor  # owns Apollo
    bob: Actor  # member of Apollo
    eve: Actor  # owns Zephyr, not in Apollo
    admin: Actor
    apollo: str
    zephyr: str
    ids: dict[str, str]  # title or comment body -> id
    position: int

    def search(self, actor: Actor, query: str) -> Any:
        return actor.read(f"/api/v1/search?{query}", self.position)

    def hits(self, actor: Actor, query: str) -> dict[str, Any]:
        response = self.search(actor, query)
        assert response.status_code == 200, response.text
        return response.json()

    def found(self, actor: Actor, query: str) -> set[str]:
        return {hit["id"] for hit in self.hits(actor, query)["data"]}

    def named(self, *names: str) -> set[str]:
        return {self.ids[n] for n in names}


def _build_site(system: Any, client: TestClient) -> Site:
    alice, bob, eve = (signed_in(client, name=n) for n in ("Alice", "Bob", "Eve"))
    admin = make_admin(system, client)
    apollo = create_project(alice, name="Apollo", key="APO")["data"]["id"]
    add_member(alice, apollo, bob, "member")
    zephyr = create_project(eve, name="Zephyr")["data"]["id"]
    ids: dict[str, str] = {}
    for owner, project, spec in [
        (alice, apollo, dict(title="Write the search page", priority="high", labels=["ui"], assigneeIds=[alice.id],
                             description="The <b>search</b> box and its results")),
        (alice, apollo, dict(title="Fix search ranking", priority="urgent", status="in_progress",
                             labels=["bug", "ui"], assigneeIds=[alice.id, bob.id])),
        (bob, apollo, dict(title="Search indexing is slow", priority="high", status="done", labels=["bug"],
                           assigneeIds=[bob.id])),
        (alice, apollo, dict(title="Plan the release")),
        (eve, zephyr, dict(title="Secret search plans", priority="low", labels=["docs"])),
    ]:
        ids[spec["title"]] = create_task(owner, project, **spec)["data"]["id"]
    written = add_comment(bob, ids["Write the search page"], "The search box needs a test")
    ids["comment"] = written["data"]["id"]
    return Site(alice, bob, eve, admin, apollo, zephyr, ids, written["meta"]["position"])


@pytest.fixture(scope="module", params=["embedded", "postgres", "elasticsearch"])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One site shared by the tests that only read it, on each search store."""
    data = tmp_path_factory.mktemp("search") / "data"
    with ExitStack() as stack:
        values: dict[str, Any] = {"jwt_private_key": signing_key_pem()}
        if request.param != "embedded":
            values["database_url"] = stack.enter_context(fresh_postgres_database())
        if request.param == "elasticsearch":
            values["elasticsearch_url"] = service_url("ELASTICSEARCH_URL")
            values["elasticsearch_index_prefix"] = stack.enter_context(fresh_elasticsearch_prefix())
        system = build_system(embedded_settings(data, **values))
        stack.callback(system.close)
        client = stack.enter_context(TestClient(build_http_app(system), raise_server_exceptions=False))
        yield _build_site(system, client)


APOLLO_MATCHES = ("Write the search page", "Fix search ranking", "Search indexing is slow", "comment")


def test_search_finds_tasks_and_comments_with_scores_highlights_and_documents(site):
    body = site.hits(site.alice, "q=search")
    assert {h["id"] for h in body["data"]} == site.named(*APOLLO_MATCHES)
    scores = [h["score"] for h in body["data"]]
    assert scores == sorted(scores, reverse=True)
    ranking = next(h for h in body["data"] if h["id"] == site.ids["Fix search ranking"])
    assert ranking["type"] == "task"
    assert ranking["highlights"]["title"] == ["Fix <mark>search</mark> ranking"]
    assert ranking["document"]["title"] == "Fix search ranking"
    assert ranking["document"]["projectId"] == site.apollo
    assert ranking["document"]["status"] == "in_progress"
    comment = next(h for h in body["data"] if h["type"] == "comment")
    assert comment["highlights"] == {"body": ["The <mark>search</mark> box needs a test"]}
    assert comment["document"]["taskId"] == site.ids["Write the search page"]
    assert body["meta"]["total"] == 4
    assert (body["meta"]["page"], body["meta"]["perPage"], body["meta"]["totalPages"]) == (1, 20, 1)


def test_highlights_never_carry_the_documents_markup(site):
    [hit] = site.hits(site.alice, "q=results")["data"]
    assert "<b>" not in hit["highlights"]["description"][0]
    assert "<mark>results</mark>" in hit["highlights"]["description"][0]


def test_a_project_is_found_by_its_name_or_key(site):
    assert site.found(site.alice, "q=apollo") == {site.apollo}
    assert site.found(site.alice, "q=APO&type=project") == {site.apollo}


def test_one_typo_per_word_still_finds_the_document(site):
    assert site.found(site.alice, "q=serch") == site.named(*APOLLO_MATCHES)
    assert site.found(site.alice, "q=tset") == {site.ids["comment"]}
    assert site.found(site.alice, "q=serch%20rnaking") == site.named("Fix search ranking")


def test_facets_count_the_matching_tasks(site):
    facets = site.hits(site.alice, "q=search")["meta"]["facets"]
    assert facets == {
        "status": {"done": 1, "in_progress": 1, "todo": 1},
        "priority": {"high": 2, "urgent": 1},
        "assignee": {site.alice.id: 2, site.bob.id: 2},
        "label": {"bug": 2, "ui": 2},
    }
    narrowed = site.hits(site.alice, "q=search&filter[labels]=bug")["meta"]["facets"]
    assert narrowed["status"] == {"done": 1, "in_progress": 1}
    assert narrowed["assignee"] == {site.alice.id: 1, site.bob.id: 2}


def test_a_non_member_never_sees_another_projects_hits(site):
    assert site.found(site.eve, "q=search") == site.named("Secret search plans")
    assert site.found(site.alice, "q=secret") == set()
    assert site.found(site.bob, "q=secret") == set()
    eve = site.hits(site.eve, "q=search")
    assert eve["meta"]["total"] == 1
    assert eve["meta"]["facets"]["label"] == {"docs": 1}
    # Filtering on a project one cannot read finds nothing rather than widening the scope.
    assert site.found(site.eve, f"q=search&filter[projectId]={site.apollo}") == set()


def test_a_system_admin_searches_every_project(site):
    assert site.found(site.admin, "q=search") == site.named(*APOLLO_MATCHES, "Secret search plans")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("filter[status]=done", ["Search indexing is slow"]),
        ("filter[priority][in]=high,urgent",
         ["Write the search page", "Fix search ranking", "Search indexing is slow"]),
        ("filter[priority]=urgent", ["Fix search ranking"]),
        ("filter[labels]=bug", ["Fix search ranking", "Search indexing is slow"]),
        ("filter[labels][in]=ui,docs", ["Write the search page", "Fix search ranking"]),
        ("type=comment", ["comment"]),
        ("type=task,comment", list(APOLLO_MATCHES)),
        ("type=project", []),
    ],
)
def test_filters_and_types_narrow_the_hits(site, query, expected):
    assert site.found(site.alice, f"q=search&{query}") == site.named(*expected)


def test_filters_on_assignee_and_project(site):
    assert site.found(site.alice, f"q=search&filter[assigneeIds]={site.bob.id}") == site.named(
        "Fix search ranking", "Search indexing is slow")
    assert site.found(site.admin, f"q=search&filter[projectId]={site.zephyr}") == site.named("Secret search plans")


def test_results_are_paged(site):
    first = site.hits(site.alice, "q=search&perPage=3")
    second = site.hits(site.alice, "q=search&perPage=3&page=2")
    assert (first["meta"]["total"], first["meta"]["totalPages"]) == (4, 2)
    assert len(first["data"]) == 3 and len(second["data"]) == 1
    assert {h["id"] for h in first["data"] + second["data"]} == site.named(*APOLLO_MATCHES)
    assert first["links"]["next"].endswith("page=2")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("", "q"),
        ("q=", "q"),
        ("q=%20%20", "q"),
        (f"q={'a' * 501}", "q"),
        ("q=search&type=user", "type"),
        ("q=search&type=task,", "type"),
        ("q=search&filter[title]=x", "filter[title]"),
        ("q=search&filter[status][ne]=done", "filter[status][ne]"),
        ("q=search&filter[priority]=critical", "filter[priority]"),
        ("q=search&filter[assigneeIds]=not-a-uuid", "filter[assigneeIds]"),
        ("q=search&colour=red", "colour"),
        ("q=search&sort=title", "sort"),
        ("q=search&cursor=abc", "cursor"),
        ("q=search&perPage=101", "perPage"),
        ("q=search&page=1001", "page"),
    ],
)
def test_invalid_searches_are_validation_errors_naming_the_parameter(site, query, field):
    error = assert_error(site.search(site.alice, query), 400, "VALIDATION_FAILED")
    assert field in field_names(error)


def test_search_needs_a_signed_in_user(site):
    assert_error(site.alice.client.get("/api/v1/search?q=search"), 401, "UNAUTHORIZED")


def test_a_query_without_words_finds_nothing(site):
    body = site.hits(site.alice, f"q={quote('?!')}")
    assert body["data"] == [] and body["meta"]["total"] == 0


# --- reads after writes, on the embedded and production backends (conftest's ``client``) -------


@pytest.fixture
def team(client: TestClient) -> tuple[Actor, str]:
    owner = signed_in(client, name="Owner")
    return owner, create_project(owner, name="Hermes")["data"]["id"]


def _search(actor: Actor, query: str, position: int) -> dict[str, Any]:
    response = actor.read(f"/api/v1/search?{query}", position)
    assert response.status_code == 200, response.text
    assert int(response.headers["x-projection-position"]) >= position
    return response.json()


def test_a_write_is_searchable_once_its_position_is_applied(client, team):
    owner, project = team
    created = create_task(owner, project, title="Calibrate the telescope")
    body = _search(owner, "q=telescope", created["meta"]["position"])
    assert [h["id"] for h in body["data"]] == [created["data"]["id"]]


def test_edits_and_deletions_show_in_search(client, team):
    owner, project = team
    task = create_task(owner, project, title="Calibrate the telescope")["data"]
    comment = add_comment(owner, task["id"], "Mirror alignment notes")
    renamed = owner.patch(f"/api/v1/tasks/{task['id']}", json={"title": "Polish the mirror", "priority": "urgent"})
    assert renamed.status_code == 200, renamed.text
    position = renamed.json()["meta"]["position"]
    assert _search(owner, "q=telescope", position)["data"] == []
    [hit] = _search(owner, "q=polish", position)["data"]
    assert hit["document"]["priority"] == "urgent"
    assert {h["id"] for h in _search(owner, "q=mirror", position)["data"]} == {task["id"], comment["data"]["id"]}
    deleted = owner.delete(f"/api/v1/tasks/{task['id']}")
    assert deleted.status_code == 200, deleted.text
    after = _search(owner, "q=mirror", deleted.json()["meta"]["position"])
    assert after["data"] == [] and after["meta"]["total"] == 0  # the task, and the comment on it


def _last_position(owner: Actor, project: str) -> int:
    """A position at or after every write so far: a new write's."""
    written = owner.patch(f"/api/v1/projects/{project}", json={"description": "touched"})
    assert written.status_code == 200, written.text
    return written.json()["meta"]["position"]


def test_a_new_member_finds_the_projects_documents(client, team):
    owner, project = team
    create_task(owner, project, title="Calibrate the telescope")
    newcomer = signed_in(client, name="Newcomer")
    before = _search(newcomer, "q=telescope", _last_position(owner, project))
    assert before["data"] == []
    added = add_member(owner, project, newcomer, "viewer")
    assert len(_search(newcomer, "q=telescope", added["meta"]["position"])["data"]) == 1


def test_readiness_reports_the_search_index_when_elasticsearch_is_configured(client, system):
    checks = client.get("/ready").json()["data"]["checks"]
    assert ("search" in checks) == bool(system.settings.elasticsearch_url)
    assert set(checks.values()) == {"ok"}
