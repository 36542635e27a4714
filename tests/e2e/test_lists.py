"""List reads: filters with every operator, sorting, page/perPage, cursor mode, and read consistency."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from infra.composition import build_http_app, build_system
from tests.e2e.helpers import (
    BACKENDS,
    Actor,
    add_member,
    assert_error,
    create_project,
    create_task,
    field_names,
    shared_settings,
    signed_in,
)
from tests.e2e.helpers import settings  # noqa: F401  (fixture: one signing key per session)


@dataclass
class Board:
    owner: Actor
    member: Actor
    project_id: str
    ids: dict[str, str]  # title -> id
    position: int

    def list(self, query: str = "", **kw: Any) -> Any:
        path = f"/api/v1/projects/{self.project_id}/tasks"
        return self.owner.read(f"{path}?{query}" if query else path, self.position, **kw)

    def titles(self, query: str = "") -> list[str]:
        response = self.list(query)
        assert response.status_code == 200, response.text
        return [t["title"] for t in response.json()["data"]]


def _build_board(client: TestClient) -> Board:
    owner = signed_in(client, name="Owner")
    member = signed_in(client, name="Member")
    project = create_project(owner)["data"]
    add_member(owner, project["id"], member, "member")
    specs = [
        dict(title="Alpha launch", priority="low", status="todo", labels=["ui"], assigneeIds=[owner.id],
             dueDate="2030-01-10", estimate=1),
        dict(title="Beta LAUNCH", priority="medium", status="in_progress", labels=["backend", "ui"],
             assigneeIds=[member.id], dueDate="2030-02-10", estimate=3),
        dict(title="Gamma", priority="high", status="done", labels=["backend"], assigneeIds=[owner.id, member.id],
             dueDate="2030-03-10", estimate=5),
        dict(title="Delta", priority="urgent", status="in_review"),
        dict(title="Epsilon 50% done", priority="medium", status="todo", labels=["docs"], dueDate="2030-02-20",
             estimate=2),
    ]
    ids, position = {}, 0
    for spec in specs:
        created = create_task(owner, project["id"], **spec)
        ids[spec["title"]] = created["data"]["id"]
        position = created["meta"]["position"]
    return Board(owner, member, project["id"], ids, position)


@pytest.fixture(scope="module", params=BACKENDS)
def board(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Board]:
    """One board shared by the tests that only read it (building a system per test is slow)."""
    with shared_settings(request.param, tmp_path_factory.mktemp("lists") / "data") as settings_:
        system = build_system(settings_)
        with TestClient(build_http_app(system), raise_server_exceptions=False) as client:
            yield _build_board(client)
        system.close()


@pytest.fixture
def fresh_board(client: TestClient) -> Board:
    """A board of its own, for tests that write."""
    return _build_board(client)


ALL = ["Alpha launch", "Beta LAUNCH", "Gamma", "Delta", "Epsilon 50% done"]  # creation order


# --- filters -------------------------------------------------------------------------------------


def test_without_parameters_tasks_come_in_creation_order(board):
    assert board.titles() == ALL


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("filter[status]=todo", ["Alpha launch", "Epsilon 50% done"]),
        ("filter[status][eq]=todo", ["Alpha launch", "Epsilon 50% done"]),
        ("filter[status][ne]=todo", ["Beta LAUNCH", "Gamma", "Delta"]),
        ("filter[status][in]=done,in_review", ["Gamma", "Delta"]),
        ("filter[status][in]=done, in_review ,", ["Gamma", "Delta"]),
        ("filter[estimate][gt]=2", ["Beta LAUNCH", "Gamma"]),
        ("filter[estimate][gte]=2", ["Beta LAUNCH", "Gamma", "Epsilon 50% done"]),
        ("filter[estimate][lt]=3", ["Alpha launch", "Epsilon 50% done"]),
        ("filter[estimate][lte]=3", ["Alpha launch", "Beta LAUNCH", "Epsilon 50% done"]),
        ("filter[estimate]=5", ["Gamma"]),
        ("filter[title][like]=launch", ["Alpha launch", "Beta LAUNCH"]),
        ("filter[title][like]=LAUNCH", ["Alpha launch", "Beta LAUNCH"]),
        ("filter[title][like]=ta l", ["Beta LAUNCH"]),
        ("filter[title][like]=50%25", ["Epsilon 50% done"]),
        ("filter[title][like]=%25", ["Epsilon 50% done"]),
        ("filter[title][like]=_", []),
        ("filter[title]=Gamma", ["Gamma"]),
        ("filter[title]=gamma", []),
        ("filter[title][ne]=Gamma", ["Alpha launch", "Beta LAUNCH", "Delta", "Epsilon 50% done"]),
        ("filter[labels]=ui", ["Alpha launch", "Beta LAUNCH"]),
        ("filter[labels]=backend", ["Beta LAUNCH", "Gamma"]),
        ("filter[labels][in]=docs,backend", ["Beta LAUNCH", "Gamma", "Epsilon 50% done"]),
        ("filter[labels][ne]=ui", ["Gamma", "Delta", "Epsilon 50% done"]),
        ("filter[dueDate][gte]=2030-02-01&filter[dueDate][lte]=2030-02-28", ["Beta LAUNCH", "Epsilon 50% done"]),
        ("filter[dueDate][gt]=2030-02-10", ["Gamma", "Epsilon 50% done"]),
        ("filter[dueDate][lt]=2030-02-10", ["Alpha launch"]),
        ("filter[dueDate]=2030-03-10", ["Gamma"]),
        ("filter[status]=todo&filter[labels]=docs", ["Epsilon 50% done"]),
    ],
)
def test_task_filters(board, query, expected):
    assert board.titles(query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("filter[priority]=medium", ["Beta LAUNCH", "Epsilon 50% done"]),
        ("filter[priority][ne]=medium", ["Alpha launch", "Gamma", "Delta"]),
        ("filter[priority][gte]=high", ["Gamma", "Delta"]),
        ("filter[priority][gt]=medium", ["Gamma", "Delta"]),
        ("filter[priority][lte]=medium", ["Alpha launch", "Beta LAUNCH", "Epsilon 50% done"]),
        ("filter[priority][lt]=medium", ["Alpha launch"]),
        ("filter[priority][in]=urgent,low", ["Alpha launch", "Delta"]),
    ],
)
def test_priority_filters_compare_by_urgency_not_alphabetically(board, query, expected):
    assert board.titles(query) == expected


def test_assignee_filters_match_tasks_that_contain_the_user(board):
    assert board.titles(f"filter[assigneeIds]={board.member.id}") == ["Beta LAUNCH", "Gamma"]
    assert board.titles(f"filter[assigneeIds]={board.owner.id}") == ["Alpha launch", "Gamma"]
    both = f"filter[assigneeIds][in]={board.owner.id},{board.member.id}"
    assert board.titles(both) == ["Alpha launch", "Beta LAUNCH", "Gamma"]


def test_filters_on_ids_and_instants(board):
    gamma = board.ids["Gamma"]
    assert board.titles(f"filter[id]={gamma}") == ["Gamma"]
    assert board.titles(f"filter[createdBy]={board.owner.id}") == ALL
    assert board.titles("filter[completedAt][gte]=2000-01-01T00:00:00Z") == ["Gamma"]
    assert board.titles("filter[createdAt][gt]=2100-01-01T00:00:00Z") == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("filter[bogus]=1", "filter[bogus]"),
        ("filter[bogus][eq]=1", "filter[bogus][eq]"),
        ("filter[deleted]=true", "filter[deleted]"),  # internal columns are not public
        ("filter[title][regex]=a", "filter[title][regex]"),
        ("filter[labels][gt]=a", "filter[labels][gt]"),
        ("filter[priority][like]=hi", "filter[priority][like]"),
        ("filter[priority]=extreme", "filter[priority]"),
        ("filter[dueDate][gte]=next-week", "filter[dueDate][gte]"),
        ("filter[estimate][gt]=lots", "filter[estimate][gt]"),
        ("filter[createdAt][gt]=yesterday", "filter[createdAt][gt]"),
        ("filter[id]=42", "filter[id]"),
        ("filter[status][in]=,", "filter[status][in]"),
        ("filter=todo", "filter"),
        ("filter[status", "filter[status"),
        ("colour=red", "colour"),
    ],
)
def test_an_invalid_filter_is_a_400_naming_the_parameter(board, query, field):
    error = assert_error(board.list(query), 400, "VALIDATION_FAILED")
    assert field in field_names(error)


def test_every_bad_filter_is_reported_at_once(board):
    error = assert_error(board.list("filter[bogus]=1&filter[priority]=extreme"), 400, "VALIDATION_FAILED")
    assert set(field_names(error)) == {"filter[bogus]", "filter[priority]"}


# --- sorting -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("title", ["Alpha launch", "Beta LAUNCH", "Delta", "Epsilon 50% done", "Gamma"]),
        ("title:asc", ["Alpha launch", "Beta LAUNCH", "Delta", "Epsilon 50% done", "Gamma"]),
        ("title:desc", ["Gamma", "Epsilon 50% done", "Delta", "Beta LAUNCH", "Alpha launch"]),
        ("priority:desc,title:asc", ["Delta", "Gamma", "Beta LAUNCH", "Epsilon 50% done", "Alpha launch"]),
        ("priority,title:desc", ["Alpha launch", "Epsilon 50% done", "Beta LAUNCH", "Gamma", "Delta"]),
        ("status,estimate:desc", ["Gamma", "Beta LAUNCH", "Delta", "Epsilon 50% done", "Alpha launch"]),
        ("createdAt:desc", list(reversed(ALL))),
    ],
)
def test_sorting_on_one_or_more_fields(board, sort, expected):
    assert board.titles(f"sort={sort}") == expected


def test_sorting_on_dates_orders_the_dated_tasks(board):
    dated = board.titles("sort=dueDate:desc&filter[dueDate][gte]=2000-01-01")
    assert dated == ["Gamma", "Epsilon 50% done", "Beta LAUNCH", "Alpha launch"]
    ascending = board.titles("sort=dueDate")
    assert [t for t in ascending if t != "Delta"] == list(reversed(dated))
    assert set(ascending) == set(ALL)


@pytest.mark.parametrize("sort", ["bogus", "title:sideways", "labels", "deleted", "title:asc,,", "description"])
def test_an_invalid_sort_is_a_400_on_the_sort_field(board, sort):
    error = assert_error(board.list(f"sort={sort}"), 400, "VALIDATION_FAILED")
    assert field_names(error) == ["sort"]


# --- pages ---------------------------------------------------------------------------------------


def _query(link: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(link).query)


def test_pages_have_meta_and_links(board):
    response = board.list("perPage=2&page=2&sort=title")
    body = response.json()
    assert [t["title"] for t in body["data"]] == ["Delta", "Epsilon 50% done"]
    assert body["meta"] == {"total": 5, "page": 2, "perPage": 2, "totalPages": 3}
    links = body["links"]
    assert set(links) == {"self", "next", "prev", "first", "last"}
    path = f"/api/v1/projects/{board.project_id}/tasks"
    for name, page in (("self", "2"), ("next", "3"), ("prev", "1"), ("first", "1"), ("last", "3")):
        assert urlsplit(links[name]).path == path
        assert _query(links[name])["page"] == [page]
        assert _query(links[name])["perPage"] == ["2"]
        assert _query(links[name])["sort"] == ["title"]


def test_following_next_links_visits_every_task_once(board):
    seen: list[str] = []
    link: str | None = f"/api/v1/projects/{board.project_id}/tasks?perPage=2"
    pages = 0
    while link:
        body = board.owner.read(link, board.position).json()
        seen += [t["title"] for t in body["data"]]
        link = body["links"]["next"]
        pages += 1
    assert seen == ALL
    assert pages == 3


def test_the_first_and_last_pages_have_no_prev_and_no_next(board):
    first = board.list("perPage=2").json()
    assert first["links"]["prev"] is None and first["links"]["next"] is not None
    last = board.list("perPage=2&page=3").json()
    assert last["links"]["next"] is None and last["links"]["prev"] is not None
    assert [t["title"] for t in last["data"]] == ["Epsilon 50% done"]


def test_a_page_past_the_end_is_empty_not_an_error(board):
    body = board.list("perPage=2&page=9").json()
    assert body["data"] == []
    assert body["meta"] == {"total": 5, "page": 9, "perPage": 2, "totalPages": 3}


def test_the_total_counts_filtered_tasks(board):
    body = board.list("filter[status]=todo&perPage=1").json()
    assert body["meta"] == {"total": 2, "page": 1, "perPage": 1, "totalPages": 2}


def test_an_empty_list_has_one_page(client):
    ada = signed_in(client)
    project = create_project(ada)
    body = ada.read(f"/api/v1/projects/{project['data']['id']}/tasks", project["meta"]["position"]).json()
    assert body["data"] == []
    assert body["meta"] == {"total": 0, "page": 1, "perPage": 20, "totalPages": 1}
    assert body["links"]["next"] is None and body["links"]["prev"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [("perPage=101", "perPage"), ("perPage=0", "perPage"), ("perPage=ten", "perPage"), ("page=0", "page"),
     ("page=-1", "page"), ("page=1.5", "page")],
)
def test_out_of_range_pages_are_a_400(board, query, field):
    error = assert_error(board.list(query), 400, "VALIDATION_FAILED")
    assert field_names(error) == [field]


def test_per_page_of_one_hundred_is_allowed(board):
    body = board.list("perPage=100").json()
    assert body["meta"]["perPage"] == 100 and len(body["data"]) == 5


@pytest.mark.parametrize(
    ("query", "field"),
    [("page=99999999999999999999999", "page"), ("page=²", "page"), ("perPage=²", "perPage"),
     ("limit=¹", "limit"), ("filter[memberCount]=99999999999999999999999", "filter[memberCount]")],
)
def test_enormous_or_exotic_numbers_are_a_400_not_a_crash(board, query, field):
    error = assert_error(board.owner.get(f"/api/v1/projects?{query}"), 400, "VALIDATION_FAILED")
    assert field_names(error) == [field]


# --- cursors -------------------------------------------------------------------------------------


def _walk(board: Board, query: str, between_pages: Any = None) -> list[str]:
    """Follow meta.nextCursor from the first page to the end; call ``between_pages`` after each page."""
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        suffix = f"&cursor={cursor}" if cursor else ""
        response = board.list(f"{query}{suffix}")
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["data"]) <= 2
        seen += [t["title"] for t in body["data"]]
        cursor = body["meta"]["nextCursor"]
        pages += 1
        assert pages < 20
        if cursor is None:
            assert body["links"]["next"] is None
            return seen
        assert _query(body["links"]["next"])["cursor"] == [cursor]
        if between_pages:
            between_pages(pages)


def test_cursor_mode_visits_every_task_once_in_order(board):
    response = board.list("limit=2")
    body = response.json()
    assert body["meta"]["limit"] == 2
    assert body["meta"]["nextCursor"]
    assert "total" not in body["meta"]
    assert _walk(board, "limit=2") == ALL


@pytest.mark.parametrize(
    "sort", ["title", "title:desc", "priority:desc", "priority,title:desc", "dueDate", "estimate:desc", "status"]
)
def test_cursor_mode_follows_any_sort_order(board, sort):
    assert _walk(board, f"limit=2&sort={sort}") == board.titles(f"sort={sort}")


def test_cursor_mode_is_stable_when_tasks_are_inserted_between_pages(fresh_board):
    added: list[str] = []

    def insert(page: int) -> None:
        title = f"Zed {page}"
        created = create_task(fresh_board.owner, fresh_board.project_id, title=title)
        fresh_board.position = created["meta"]["position"]
        added.append(title)

    seen = _walk(fresh_board, "limit=2", insert)
    # Tasks created after the walk began sort after every earlier one: each is seen once, at the end.
    assert seen[: len(ALL)] == ALL
    assert seen == ALL + added
    assert len(seen) == len(set(seen))


def test_cursor_mode_skips_nothing_when_tasks_are_inserted_before_the_cursor(fresh_board):
    def insert(page: int) -> None:
        created = create_task(fresh_board.owner, fresh_board.project_id, title=f"Aardvark {page}")
        fresh_board.position = created["meta"]["position"]

    seen = _walk(fresh_board, "limit=2&sort=title", insert)
    originals = [t for t in seen if not t.startswith("Aardvark")]
    assert originals == sorted(ALL)
    assert len(seen) == len(set(seen))


def test_a_cursor_combines_with_filters(board):
    assert _walk(board, "limit=2&filter[labels]=ui") == ["Alpha launch", "Beta LAUNCH"]


def _forged(values: Any, spec: str = "created_at:asc,id:asc") -> str:
    return base64.urlsafe_b64encode(json.dumps({"v": values, "s": spec}).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor",
        "!!!",
        base64.urlsafe_b64encode(b"[1,2]").decode(),
        base64.urlsafe_b64encode(b'{"v": [1]}').decode(),
        _forged([]),
        _forged([1]),
        _forged([{"a": 1}, [2]]),
        _forged("text"),
        _forged(None),
        _forged(["2030-01-01T00:00:00.000000Z", "x", "extra"]),
    ],
)
def test_a_malformed_cursor_is_a_400(board, cursor):
    error = assert_error(board.list(f"limit=2&cursor={cursor}"), 400, "VALIDATION_FAILED")
    assert field_names(error) == ["cursor"]


def test_a_cursor_from_another_sort_order_is_a_400(board):
    cursor = board.list("limit=2&sort=title").json()["meta"]["nextCursor"]
    error = assert_error(board.list(f"limit=2&sort=priority&cursor={cursor}"), 400, "VALIDATION_FAILED")
    assert field_names(error) == ["cursor"]


@pytest.mark.parametrize("limit", ["0", "101", "-2", "many"])
def test_an_out_of_range_limit_is_a_400(board, limit):
    error = assert_error(board.list(f"limit={limit}"), 400, "VALIDATION_FAILED")
    assert field_names(error) == ["limit"]


# --- other lists share the rules -----------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/api/v1/users", "/api/v1/projects", "/api/v1/users/{owner}/projects", "/api/v1/projects/{project}/members",
     "/api/v1/projects/{project}/tasks", "/api/v1/tasks/{task}/comments", "/api/v1/tasks/{task}/activity"],
)
def test_every_list_rejects_unknown_fields_and_large_pages(board, path):
    path = path.format(owner=board.owner.id, project=board.project_id, task=board.ids["Gamma"])
    error = assert_error(board.owner.get(f"{path}?filter[bogus]=1"), 400, "VALIDATION_FAILED")
    assert field_names(error) == ["filter[bogus]"]
    error = assert_error(board.owner.get(f"{path}?sort=bogus"), 400, "VALIDATION_FAILED")
    assert field_names(error) == ["sort"]
    error = assert_error(board.owner.get(f"{path}?perPage=101"), 400, "VALIDATION_FAILED")
    assert field_names(error) == ["perPage"]
    body = board.owner.read(f"{path}?perPage=1", board.position).json()
    assert set(body["meta"]) == {"total", "page", "perPage", "totalPages"}
    assert set(body["links"]) == {"self", "next", "prev", "first", "last"}


# --- read consistency ----------------------------------------------------------------------------


def test_every_read_carries_the_applied_projection_position(board):
    task_id = board.ids["Gamma"]
    paths = [
        "/api/v1/users", f"/api/v1/users/{board.owner.id}", f"/api/v1/users/{board.owner.id}/projects",
        "/api/v1/projects", f"/api/v1/projects/{board.project_id}", f"/api/v1/projects/{board.project_id}/members",
        f"/api/v1/projects/{board.project_id}/tasks", f"/api/v1/tasks/{task_id}",
        f"/api/v1/tasks/{task_id}/comments", f"/api/v1/tasks/{task_id}/activity",
        # History comes from the event store; its access check reads the projects model.
        f"/api/v1/users/{board.owner.id}/history", f"/api/v1/projects/{board.project_id}/history",
        f"/api/v1/tasks/{task_id}/history",
    ]
    for path in paths:
        response = board.owner.read(path, board.position)
        assert response.status_code == 200, (path, response.text)
        assert int(response.headers["X-Projection-Position"]) >= board.position, path


def test_min_position_in_the_query_waits_for_the_write(fresh_board):
    changed = fresh_board.owner.patch(f"/api/v1/tasks/{fresh_board.ids['Gamma']}", json={"title": "Gamma prime"})
    position = changed.json()["meta"]["position"]
    response = fresh_board.owner.get(f"/api/v1/tasks/{fresh_board.ids['Gamma']}?minPosition={position}")
    assert response.status_code == 200
    assert response.json()["data"]["title"] == "Gamma prime"
    assert int(response.headers["X-Projection-Position"]) >= position


def test_the_consistency_header_gives_read_your_writes(fresh_board):
    changed = fresh_board.owner.patch(f"/api/v1/tasks/{fresh_board.ids['Delta']}", json={"status": "done"})
    response = fresh_board.owner.get(
        f"/api/v1/projects/{fresh_board.project_id}/tasks?filter[status]=done",
        headers={"X-Consistency-Position": str(changed.json()["meta"]["position"])},
    )
    assert [t["title"] for t in response.json()["data"]] == ["Gamma", "Delta"]


def test_a_position_far_in_the_future_gives_stale_read_after_a_bounded_wait(board):
    started = time.monotonic()
    response = board.owner.get(f"/api/v1/tasks/{board.ids['Gamma']}?minPosition=999999999&maxWaitMs=100")
    elapsed = time.monotonic() - started
    assert_error(response, 503, "STALE_READ")
    assert response.headers["Retry-After"].isdigit()
    assert elapsed < 2


def test_the_consistency_header_also_times_out_with_stale_read(board):
    response = board.owner.get(
        f"/api/v1/projects/{board.project_id}/tasks",
        headers={"X-Consistency-Position": "999999999", "X-Consistency-Timeout-Ms": "50"},
    )
    assert_error(response, 503, "STALE_READ")
    assert "Retry-After" in response.headers


@pytest.mark.parametrize(
    "query", ["minPosition=abc", "minPosition=-1", "minPosition=99999&maxWaitMs=soon",
              "minPosition=99999&maxWaitMs=\u00b2"]
)
def test_an_invalid_consistency_parameter_is_a_400(board, query):
    error = assert_error(board.owner.get(f"/api/v1/projects?{query}"), 400, "VALIDATION_FAILED")
    assert field_names(error) in (["minPosition"], ["maxWaitMs"])


@pytest.mark.parametrize("value", ["soon", "-1", "1.5", "\u00b2"])
def test_an_invalid_consistency_header_is_a_400(board, value):
    response = board.owner.get("/api/v1/projects", headers={"X-Consistency-Position": value.encode("latin-1")})
    assert field_names(assert_error(response, 400, "VALIDATION_FAILED")) == ["minPosition"]
