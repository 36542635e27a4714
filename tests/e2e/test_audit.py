"""Audit routes: the whole event log for auditors, filtered and cursor-paginated, and its export
as JSON Lines that `taskflow audit verify --file` checks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.audit_verify import verify_export
from tests.e2e.helpers import (
    Actor,
    add_comment,
    assert_error,
    create_project,
    create_task,
    field_names,
    make_admin,
    signed_in,
    with_role,
)
from tests.e2e.helpers import settings  # noqa: F401  (fixture: one signing key per session)

EVENTS = "/api/v1/audit/events"


@pytest.fixture
def story(client, system) -> dict[str, Any]:
    """Two users working; an auditor signed in after the last write, and the head position."""
    ada = signed_in(client, name="Ada")
    bob = signed_in(client, name="Bob")
    project = create_project(ada)["data"]
    task = create_task(ada, project["id"])["data"]
    ada.patch(f"/api/v1/tasks/{task['id']}", json={"status": "in_progress"})
    other = create_project(bob, name="Bob's")["data"]
    create_task(bob, other["id"], title="Bob's task")
    add_comment(ada, task["id"], body="first")
    auditor = with_role(system, client, "auditor", signed_in(client, name="Auditor"))
    return {"ada": ada, "bob": bob, "project": project, "task": task, "auditor": auditor,
            "head": system.app.head_position()}


def _all_pages(auditor: Actor, query: str, head: int, limit: int = 4) -> list[dict[str, Any]]:
    items, url = [], f"{EVENTS}?limit={limit}{'&' + query if query else ''}"
    while url:
        response = auditor.read(url, head)
        assert response.status_code == 200, response.text
        assert int(response.headers["X-Projection-Position"]) >= head
        body = response.json()
        assert len(body["data"]) <= limit
        items += body["data"]
        url = body["links"]["next"]
        assert (url is None) == (body["meta"]["nextCursor"] is None)
    return items


def test_pages_of_the_audit_log_cover_every_event_once_in_position_order(story):
    items = _all_pages(story["auditor"], "", story["head"], limit=3)

    assert [e["position"] for e in items] == list(range(1, story["head"] + 1))
    registered = next(e for e in items if e["type"] == "User.Registered")
    assert registered["data"]["passwordHash"] == "[redacted]"
    assert registered["aggregateType"] == "User"
    assert {"position", "version", "type", "occurredAt", "actorId", "requestId", "correlationId", "causationId",
            "data", "aggregateId", "aggregateType", "link"} <= set(registered)
    assert all(len(e["link"]) == 64 for e in items)


def test_each_filter_returns_exactly_the_matching_events(story):
    auditor, head = story["auditor"], story["head"]
    everything = _all_pages(auditor, "", head, limit=100)
    task_id, ada_id = story["task"]["id"], story["ada"].id

    def check(query: str, keep) -> None:
        expected = [e["position"] for e in everything if keep(e)]
        assert expected, query
        assert [e["position"] for e in _all_pages(auditor, query, head)] == expected

    check(f"filter[actorId]={ada_id}", lambda e: e["actorId"] == ada_id)
    check("filter[type]=Task.Created", lambda e: e["type"] == "Task.Created")
    check(f"filter[aggregateId]={task_id}", lambda e: e["aggregateId"] == task_id)
    check(f"filter[actorId]={ada_id}&filter[aggregateType]=Task",
          lambda e: e["actorId"] == ada_id and e["aggregateType"] == "Task")
    start, end = everything[3]["occurredAt"], everything[-2]["occurredAt"]
    check(f"from={start}&to={end}", lambda e: start <= e["occurredAt"] < end)


def test_the_audit_log_is_for_auditors_only(client, story):
    assert_error(story["ada"].get(EVENTS), 403, "FORBIDDEN")
    assert_error(client.get(EVENTS), 401, "UNAUTHORIZED")
    assert_error(story["ada"].get("/api/v1/audit/export"), 403, "FORBIDDEN")
    assert_error(client.get("/api/v1/audit/export"), 401, "UNAUTHORIZED")


def test_an_admin_is_not_an_auditor(client, system):
    admin = make_admin(system, client)
    assert_error(admin.get(EVENTS), 403, "FORBIDDEN")


@pytest.mark.parametrize(("query", "field"), [
    ("filter[bogus]=1", "filter[bogus]"),
    ("filter[actorId]=not-a-uuid", "filter[actorId]"),
    ("filter[aggregateId]=42", "filter[aggregateId]"),
    ("from=yesterday", "from"),
    ("to=2026-13-01T00:00:00Z", "to"),
    ("from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "from"),
    ("limit=0", "limit"),
    ("limit=101", "limit"),
    ("page=2", "page"),
    ("sort=position:desc", "sort"),
    ("cursor=garbage", "cursor"),
    ("color=blue", "color"),
])
def test_bad_audit_parameters_are_a_validation_error(story, query, field):
    error = assert_error(story["auditor"].get(f"{EVENTS}?{query}"), 400, "VALIDATION_FAILED")
    assert field in field_names(error)


def test_the_export_streams_the_positions_covering_a_time_range_and_verifies(tmp_path, story):
    auditor, head = story["auditor"], story["head"]
    everything = _all_pages(auditor, "", head, limit=100)
    start, end = everything[2]["occurredAt"], everything[-3]["occurredAt"]
    in_range = [e["position"] for e in everything if start <= e["occurredAt"] < end]

    response = auditor.get(f"/api/v1/audit/export?from={start}&to={end}",
                           headers={"X-Consistency-Position": str(head)})

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["position"] for line in lines] == list(range(min(in_range), max(in_range) + 1))
    links = {e["position"]: e["link"] for e in everything}
    assert all(line["link"] == links[line["position"]] for line in lines)
    path = tmp_path / "range.jsonl"
    path.write_bytes(response.content)
    verdict = verify_export(path)
    assert verdict.ok, verdict.summary()
    assert verdict.checked == len(lines)


def test_an_export_without_a_range_is_the_whole_log(tmp_path, story):
    response = story["auditor"].get("/api/v1/audit/export")

    assert response.status_code == 200
    lines = response.text.splitlines()
    assert [json.loads(line)["position"] for line in lines] == list(range(1, story["head"] + 1))
    assert json.loads(lines[0])["previousLink"] == "0" * 64


def test_an_export_with_a_bad_range_is_a_validation_error(story):
    error = assert_error(story["auditor"].get("/api/v1/audit/export?from=soon"), 400, "VALIDATION_FAILED")
    assert field_names(error) == ["from"]
    assert_error(story["auditor"].get("/api/v1/audit/export?format=csv"), 400, "VALIDATION_FAILED")


def test_an_indexed_event_removed_from_the_store_is_listed_as_removed(system, story):
    from tests.integration.test_audit_chain import StoredRows

    StoredRows(system.settings).delete(3)

    items = _all_pages(story["auditor"], "", story["head"], limit=100)

    assert [e["position"] for e in items] == list(range(1, story["head"] + 1))
    assert items[2]["removed"] is True and items[2]["link"] is None
    assert "removed" not in items[1] and "removed" not in items[3]
