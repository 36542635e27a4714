"""The error contract: one envelope for every error, request ids, 401/404/405/413/415, and no
request — however malformed — gets a 500 or a stack trace."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from infra.composition import build_http_app, build_system
from read_api.app import read_router
from tests.e2e.helpers import (
    BACKENDS,
    Actor,
    add_comment,
    add_member,
    assert_error,
    assert_no_traceback,
    create_project,
    create_task,
    field_names,
    raw,
    shared_settings,
    signed_in,
)
from tests.e2e.helpers import settings  # noqa: F401  (fixture: one signing key per session)
from write_api.app import write_router

MISSING = "00000000-0000-4000-8000-000000000000"
JSON = {"Content-Type": "application/json"}


def _routes() -> list[tuple[str, str]]:
    """Every (method, path) of both APIs, from their OpenAPI description, plus the operations routes."""
    app = FastAPI()
    app.include_router(write_router())
    app.include_router(read_router())
    found = [(m.upper(), path) for path, ops in app.openapi()["paths"].items() for m in ops]
    return sorted(found + [("GET", "/health"), ("GET", "/ready")])


ROUTES = _routes()


def _assert_envelope(response: Any) -> None:
    assert_no_traceback(response)
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"}, body
        error = body["error"]
        assert isinstance(error["code"], str) and error["code"].isupper()
        assert isinstance(error["message"], str) and error["message"]
        assert error["requestId"] == response.headers["X-Request-ID"]
        for detail in error.get("details", []):
            assert set(detail) == {"field", "message"}


# --- the envelope --------------------------------------------------------------------------------


def test_an_unknown_route_is_a_404_envelope(client):
    for path in ("/api/v1/nothing-here", "/nope", "/api/v2/projects", "/api/v1/tasks/x/y/z"):
        response = client.get(path, headers={"X-Request-ID": "lost-1"})
        error = assert_error(response, 404, "NOT_FOUND")
        assert error["requestId"] == "lost-1"


def test_a_wrong_method_is_a_405_envelope(client):
    ada = signed_in(client)
    response = ada.put("/api/v1/projects", json={"name": "X"})
    assert_error(response, 405, "METHOD_NOT_ALLOWED")


def test_malformed_json_is_a_validation_error(client):
    ada = signed_in(client)
    for body in (b'{"name": ', b"{'name': 'single quotes'}", b"not json", b'{"name": "x",}', b"\xff\xfe\x00"):
        response = raw(client, "POST", "/api/v1/projects", body, JSON, ada)
        error = assert_error(response, 400, "VALIDATION_FAILED")
        assert error["details"]


def test_a_json_body_of_the_wrong_shape_is_a_validation_error(client):
    ada = signed_in(client)
    for body in ("[]", '"Apollo"', "42", "null", "true"):
        response = raw(client, "POST", "/api/v1/projects", body, JSON, ada)
        assert_error(response, 400, "VALIDATION_FAILED")


def test_a_missing_body_is_a_validation_error(client):
    ada = signed_in(client)
    response = ada.post("/api/v1/projects")
    assert_error(response, 400, "VALIDATION_FAILED")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                     "application/xml", "", "application/jsonp"]
)
def test_a_body_that_is_not_json_is_unsupported(client, content_type):
    ada = signed_in(client)
    response = raw(client, "POST", "/api/v1/projects", '{"name": "Apollo"}', {"Content-Type": content_type}, ada)
    assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/merge-patch+json"])
def test_json_content_types_with_parameters_or_suffixes_are_accepted(client, content_type):
    ada = signed_in(client)
    response = raw(client, "POST", "/api/v1/projects", '{"name": "Apollo"}', {"Content-Type": content_type}, ada)
    assert response.status_code == 201, response.text


def test_a_body_over_the_limit_is_refused_with_413(client):
    ada = signed_in(client)
    body = json.dumps({"name": "Apollo", "description": "x" * 1_000_001})
    response = raw(client, "POST", "/api/v1/projects", body, JSON, ada)
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


def test_a_streamed_body_over_the_limit_is_refused_with_413(client):
    ada = signed_in(client)

    def chunks():  # no Content-Length: the server must count what it reads
        yield b'{"name": "Apollo", "description": "'
        for _ in range(20):
            yield b"x" * 100_000
        yield b'"}'

    response = client.post("/api/v1/projects", content=chunks(), headers={**JSON, **ada.headers})
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


def test_a_streamed_body_within_the_limit_is_accepted(client):
    ada = signed_in(client)

    def chunks():
        yield b'{"name": "Apo'
        yield b'llo"}'

    response = client.post("/api/v1/projects", content=chunks(), headers={**JSON, **ada.headers})
    assert response.status_code == 201, response.text


def test_a_missing_token_is_a_401_with_a_bearer_challenge(client):
    for method, path in (("GET", "/api/v1/projects"), ("POST", "/api/v1/projects"), ("GET", "/api/v1/users"),
                         ("PATCH", f"/api/v1/tasks/{MISSING}"), ("GET", f"/api/v1/tasks/{MISSING}/history")):
        response = client.request(method, path, json={} if method != "GET" else None)
        assert_error(response, 401, "UNAUTHORIZED")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_authentication_comes_before_validation(client):
    # A stranger learns nothing about a route's input rules, nor whether an id exists.
    response = client.post(f"/api/v1/projects/{MISSING}/tasks", json={"title": ""})
    assert_error(response, 401, "UNAUTHORIZED")


def test_every_kind_of_error_uses_the_same_envelope_and_the_clients_request_id(client):
    ada = signed_in(client)
    bob = signed_in(client)
    project = create_project(ada)["data"]
    add_member(ada, project["id"], bob, "viewer")
    task = create_task(ada, project["id"])["data"]
    rid = {"X-Request-ID": "trace-me-42"}
    cases = [
        (ada.post("/api/v1/projects", json={"name": ""}, headers=rid), 400, "VALIDATION_FAILED"),
        (client.get("/api/v1/projects", headers=rid), 401, "UNAUTHORIZED"),
        (bob.post(f"/api/v1/projects/{project['id']}/tasks", json={"title": "X"}, headers=rid), 403, "FORBIDDEN"),
        (ada.get(f"/api/v1/tasks/{MISSING}", headers=rid), 404, "NOT_FOUND"),
        (ada.post(f"/api/v1/projects/{project['id']}/restore", headers=rid), 409, "CONFLICT"),
        (ada.patch(f"/api/v1/tasks/{task['id']}", json={"title": "Y"}, headers={**rid, "If-Match": '"9"'}), 412,
         "PRECONDITION_FAILED"),
        (raw(client, "POST", "/api/v1/projects", "x" * 1_000_001, {**JSON, **rid}, ada), 413, "PAYLOAD_TOO_LARGE"),
        (raw(client, "POST", "/api/v1/projects", "name=x", {"Content-Type": "text/plain", **rid}, ada), 415,
         "UNSUPPORTED_MEDIA_TYPE"),
        (ada.get("/api/v1/projects?minPosition=999999999&maxWaitMs=1", headers=rid), 503, "STALE_READ"),
    ]
    for response, status, code in cases:
        error = assert_error(response, status, code)
        assert error["requestId"] == "trace-me-42"
        assert response.headers["X-Request-ID"] == "trace-me-42"
        _assert_envelope(response)


def test_validation_errors_list_one_detail_per_field(client):
    ada = signed_in(client)
    project = create_project(ada)["data"]
    response = ada.post(f"/api/v1/projects/{project['id']}/tasks",
                        json={"title": "", "priority": "asap", "estimate": "lots", "labels": "not-a-list"})
    error = assert_error(response, 400, "VALIDATION_FAILED")
    assert sorted(field_names(error)) == ["estimate", "labels", "priority", "title"]
    assert all(d["message"] for d in error["details"])


def test_an_unexpected_server_error_is_a_500_envelope_without_a_traceback(client):
    def explode() -> None:
        raise RuntimeError("secret internals: /etc/passwd")

    client.app.add_api_route("/test-only/explode", explode, methods=["GET"])
    response = client.get("/test-only/explode", headers={"X-Request-ID": "boom-1"})
    error = assert_error(response, 500, "INTERNAL")
    assert error["requestId"] == "boom-1"
    assert "secret internals" not in response.text
    assert_no_traceback(response)


def test_health_needs_no_token_and_ready_reports_each_dependency(client):
    assert client.get("/health").json() == {"data": {"status": "ok"}}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["data"]["status"] == "ready"
    assert set(ready.json()["data"]["checks"].values()) == {"ok"}


# --- nothing crashes -----------------------------------------------------------------------------


BAD_IDS = [
    "not-a-uuid",
    "0" * 300,
    "ünïcødé-✓-💥",
    "-1",
    "99999999999999999999999999999999",
    "00000000-0000-0000-0000-000000000000",
    MISSING,
    "null",
    "%00",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "' OR 1=1 --",
]
FIELDS = [
    "email", "password", "name", "refreshToken", "description", "key", "organizationId", "statuses", "userId",
    "role", "title", "priority", "status", "assigneeIds", "dueDate", "startDate", "estimate", "labels", "parentId",
    "body",
]
BAD_VALUES: list[Any] = [
    None,
    10**30,
    -(10**30),
    1.7976931348623157e308,
    -1,
    0,
    True,
    "",
    " ",
    "💥" * 50,
    "\u0000\u202e\ufeff",
    "x" * 20_001,
    "2030-02-30",
    "9999-99-99T99:99:99Z",
    [],
    [None, 1, "x", {}],
    ["💥"] * 60,
    {},
    {"$gt": ""},
]
BAD_BODIES: list[bytes] = [
    b"",
    b"{",
    b"[]",
    b"null",
    b'"text"',
    b"123",
    b"1e400",
    b'{"title": "x", "name": "x", "body": "x", "estimate": 1e400}',
    b"NaN",
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 2000 + b"1" + b"}" * 2000,
    "{\"title\": \"\ud800\"}".encode("utf-8", "surrogatepass"),
    b"\xff\xfe\xfd",
    json.dumps({"title": "x", "name": "x", "body": "x"}, ensure_ascii=False).encode("utf-16"),
] + [json.dumps({field: value for field in FIELDS}).encode() for value in BAD_VALUES]
BAD_QUERIES = [
    "page=abc", "page=0", "page=99999999999999999999999", "perPage=-1", "perPage=1000", "perPage=\u00b2",
    "limit=0", "limit=\u00b9", "cursor=💥", "cursor=eyJ2Ijp7fX0", "sort=;DROP TABLE tasks", "sort=title:up",
    "sort=,,,", "filter[title][like]=%25_%5C", "filter[estimate][gt]=1e999", "filter[estimate][gt]=nan",
    "filter[dueDate]=2030-02-30", "filter[createdAt][gt]=💥", "filter[memberCount]=99999999999999999999999",
    "filter[id][in]=" + ",".join(["x"] * 200), "filter[a][b][c]=1", "filter[]=1", "filter[title][]=1",
    "minPosition=-5", "minPosition=\u00b2", "minPosition=99999999999999999999999&maxWaitMs=1",
    "minPosition=1&maxWaitMs=\u00b2", "asOf=garbage", "version=-1", "q=%00",
]
BAD_HEADERS: dict[str, list[dict[str, bytes]]] = {  # by the methods they matter for
    "ANY": [
        {"X-Request-ID": b"\xff" * 300},
        {"Authorization": b"Bearer \xff\xfe"},
        {"Authorization": b"Bearer"},
        {"Authorization": b"Bearer a.b"},
    ],
    "GET": [
        {"If-None-Match": b"\xff\xfe"},
        {"X-Consistency-Position": b"\xb2"},
        {"X-Consistency-Position": b"99999999999999999999999", "X-Consistency-Timeout-Ms": b"1"},
    ],
    "POST": [{"Idempotency-Key": b"\xe9\xe8" * 10}, {"Idempotency-Key": b" "}, {"Content-Length": b"abc"}],
    "PUT": [{"If-Match": b"banana"}, {"If-Match": b'"99999999999999999999999"'}, {"If-Match": b'"\xb2"'}],
}
BAD_HEADERS["PATCH"] = BAD_HEADERS["DELETE"] = BAD_HEADERS["PUT"]


def _world(client) -> tuple[Actor, dict[str, str]]:
    """A signed-in owner, a member, a project, a task and a comment: real ids for every path."""
    owner = signed_in(client)
    bob = signed_in(client)
    project = create_project(owner)["data"]
    add_member(owner, project["id"], bob, "member")
    task = create_task(owner, project["id"], assigneeIds=[bob.id])["data"]
    comment = add_comment(owner, task["id"])["data"]
    return owner, {"project_id": project["id"], "task_id": task["id"], "comment_id": comment["id"],
                   "user_id": bob.id, "users": owner.id, "projects": project["id"], "tasks": task["id"],
                   "comments": comment["id"], "name": "tasks"}


def _fill(path: str, ids: dict[str, str], override: str | None = None) -> str:
    def value(match: re.Match[str]) -> str:
        if override is not None:
            return override
        name = match.group(1)
        if name == "aggregate_id":  # /api/v1/<kind>/{aggregate_id}/history
            return ids[path.split("/")[3]]
        return ids[name]

    return re.sub(r"\{(\w+)\}", value, path)


@pytest.fixture(scope="module", params=BACKENDS)
def read_world(request: pytest.FixtureRequest,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Actor, dict[str, str]]]:
    """One world for the GET routes, which change nothing (a system per route is slow)."""
    with shared_settings(request.param, tmp_path_factory.mktemp("sweep") / "data") as settings_:
        system = build_system(settings_)
        with TestClient(build_http_app(system), raise_server_exceptions=False) as shared:
            yield (shared, *_world(shared))
        system.close()


READS = [(m, p) for m, p in ROUTES if m == "GET"]
WRITES = [(m, p) for m, p in ROUTES if m != "GET"]


@pytest.mark.parametrize(("method", "template"), READS, ids=[f"{m} {p}" for m, p in READS])
def test_malformed_reads_never_cause_a_500_or_a_traceback(read_world, method, template):
    client, owner, ids = read_world
    _sweep(client, owner, ids, method, template)


@pytest.mark.parametrize(("method", "template"), WRITES, ids=[f"{m} {p}" for m, p in WRITES])
def test_malformed_writes_never_cause_a_500_or_a_traceback(client, method, template):
    # A write may change the world (delete the project, sign the owner out): each route gets its own.
    owner, ids = _world(client)
    _sweep(client, owner, ids, method, template)


def _sweep(client: TestClient, owner: Actor, ids: dict[str, str], method: str, template: str) -> None:
    """Send a batch of malformed requests to one route: no 500, no traceback, always the envelope."""
    path = _fill(template, ids)
    has_body = method in ("POST", "PUT", "PATCH")
    sent = 0

    def send(method_: str, path_: str, body: bytes | None = None, headers: dict[str, Any] | None = None,
             auth: bool = True) -> None:
        nonlocal sent
        all_headers: dict[str, Any] = {**(owner.headers if auth else {}), **(JSON if body is not None else {})}
        all_headers.update(headers or {})
        response = client.request(method_, path_, content=body, headers=all_headers)
        sent += 1
        assert response.status_code < 500 or response.json()["error"]["code"] in ("STALE_READ", "NOT_READY"), (
            method_, path_, body[:200] if body else body, headers, response.status_code, response.text[:500])
        _assert_envelope(response)

    plain_body = b'{"name": "x", "title": "x", "body": "x"}' if has_body else None
    # Malformed ids in the path (and unknown ones).
    if "{" in template:
        for bad in BAD_IDS:
            send(method, _fill(template, ids, bad), plain_body)
    # Malformed bodies on the real resource.
    if has_body:
        for body in BAD_BODIES:
            send(method, path, body)
    # Malformed query parameters (the write routes take none: a few suffice there).
    for query in BAD_QUERIES if method == "GET" else BAD_QUERIES[:3]:
        send(method, f"{path}?{query}", plain_body)
    # Malformed headers, and no token at all.
    for headers in BAD_HEADERS["ANY"] + BAD_HEADERS[method]:
        send(method, path, plain_body, headers)
    send(method, path, plain_body, auth=False)
    assert sent >= 20


def test_the_malformed_request_sweep_covers_every_route_the_server_has(client):
    served = {(m.upper(), p) for p, ops in client.app.openapi()["paths"].items() for m in ops}
    assert served <= set(ROUTES), served - set(ROUTES)
