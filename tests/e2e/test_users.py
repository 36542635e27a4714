"""Registration, user reads, profile changes, deactivation and a user's projects."""

from __future__ import annotations

from tests.e2e.helpers import (
    PASSWORD,
    add_member,
    assert_error,
    create_project,
    field_names,
    make_admin,
    random_email,
    register,
    signed_in,
)
from tests.e2e.helpers import settings  # noqa: F401  (fixture: one signing key per session)


def _register(client, **overrides):
    body = {"email": random_email(), "password": PASSWORD, "name": "Grace Hopper", **overrides}
    return client.post("/api/v1/users", json=body)


# --- registration --------------------------------------------------------------------------------


def test_registration_creates_an_active_user_and_shows_no_password(client):
    email = random_email()
    response = _register(client, email=email)
    assert response.status_code == 201, response.text
    user = response.json()["data"]
    assert user["email"] == email
    assert user["name"] == "Grace Hopper"
    assert user["active"] is True
    assert user["roles"] == ["user"]
    assert user["version"] == 1
    assert response.headers["Location"] == f"/api/v1/users/{user['id']}"
    assert response.headers["ETag"] == '"1"'
    meta = response.json()["meta"]
    assert meta["version"] == 1 and meta["position"] >= 1
    lowered = response.text.lower()
    assert "password" not in lowered and "argon" not in lowered


def test_registration_stores_the_email_in_lower_case(client):
    response = _register(client, email="Mixed.Case@Example.COM")
    assert response.status_code == 201, response.text
    assert response.json()["data"]["email"] == "mixed.case@example.com"


def test_registration_with_an_invalid_email_names_the_email_field(client):
    error = assert_error(_register(client, email="not-an-email"), 400, "VALIDATION_FAILED")
    assert field_names(error) == ["email"]


def test_registration_with_a_short_password_names_the_password_field(client):
    error = assert_error(_register(client, password="short"), 400, "VALIDATION_FAILED")
    assert field_names(error) == ["password"]
    assert "short" not in str(error)  # the rejected password is not echoed


def test_registration_reports_every_bad_field(client):
    response = client.post("/api/v1/users", json={"email": "nope", "password": "x", "name": ""})
    error = assert_error(response, 400, "VALIDATION_FAILED")
    assert set(field_names(error)) == {"email", "password", "name"}


def test_registration_rejects_unknown_fields(client):
    error = assert_error(_register(client, roles=["admin"]), 400, "VALIDATION_FAILED")
    assert "roles" in field_names(error)


def test_registering_an_email_twice_is_a_conflict(client):
    email = random_email()
    assert _register(client, email=email).status_code == 201
    assert_error(_register(client, email=email), 409, "CONFLICT")


def test_registering_the_same_email_in_another_case_is_a_conflict(client):
    email = random_email()
    assert _register(client, email=email).status_code == 201
    assert_error(_register(client, email=email.upper()), 409, "CONFLICT")


def test_registration_with_an_idempotency_key_replays_the_first_response(client):
    body = {"email": random_email(), "password": PASSWORD, "name": "Once"}
    headers = {"Idempotency-Key": "register-once-1"}
    first = client.post("/api/v1/users", json=body, headers=headers)
    again = client.post("/api/v1/users", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["ETag"] == first.headers["ETag"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    # No second user was written: exactly one row with this e-mail.
    viewer = signed_in(client)
    listed = viewer.read(f"/api/v1/users?filter[email]={body['email']}", again.json()["meta"]["position"])
    assert listed.json()["meta"]["total"] == 1
    assert [u["id"] for u in listed.json()["data"]] == [first.json()["data"]["id"]]


def test_reusing_an_idempotency_key_with_a_different_body_is_a_conflict(client):
    headers = {"Idempotency-Key": "register-once-2"}
    assert client.post("/api/v1/users", json={"email": random_email(), "password": PASSWORD, "name": "A"},
                       headers=headers).status_code == 201
    other = client.post("/api/v1/users", json={"email": random_email(), "password": PASSWORD, "name": "B"},
                        headers=headers)
    assert_error(other, 409, "CONFLICT")


def test_an_idempotency_key_that_is_too_long_is_a_validation_error(client):
    response = client.post("/api/v1/users", json={"email": random_email(), "password": PASSWORD, "name": "A"},
                           headers={"Idempotency-Key": "k" * 256})
    error = assert_error(response, 400, "VALIDATION_FAILED")
    assert field_names(error) == ["Idempotency-Key"]


# --- reading users -------------------------------------------------------------------------------


def test_a_user_is_read_back_with_an_etag_of_its_version(client):
    ada = signed_in(client)
    written = ada.put(f"/api/v1/users/{ada.id}", json={"name": "Ada King"})
    response = ada.read(f"/api/v1/users/{ada.id}", written.json()["meta"]["position"])
    assert response.status_code == 200
    user = response.json()["data"]
    assert user["name"] == "Ada King"
    assert user["version"] == 2
    assert response.headers["ETag"] == f'"{user["version"]}"'
    assert "X-Projection-Position" in response.headers


def test_if_none_match_with_the_current_etag_gives_304(client):
    ada = signed_in(client)
    first = ada.read(f"/api/v1/users/{ada.id}", ada.position)
    etag = first.headers["ETag"]
    not_modified = ada.get(f"/api/v1/users/{ada.id}", headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified.headers["ETag"] == etag
    changed = ada.get(f"/api/v1/users/{ada.id}", headers={"If-None-Match": '"999"'})
    assert changed.status_code == 200


def test_the_written_user_equals_the_user_the_read_api_returns(client):
    ada = signed_in(client)
    written = ada.put(f"/api/v1/users/{ada.id}", json={"name": "Countess"})
    assert written.status_code == 200
    read = ada.read(f"/api/v1/users/{ada.id}", written.json()["meta"]["position"])
    assert read.json()["data"] == written.json()["data"]


def test_registration_response_equals_the_read_model_of_the_user(client):
    response = _register(client)
    viewer = signed_in(client)
    user = response.json()["data"]
    read = viewer.read(f"/api/v1/users/{user['id']}", response.json()["meta"]["position"])
    assert read.json()["data"] == user


def test_an_unknown_user_is_not_found(client):
    ada = signed_in(client)
    assert_error(ada.get("/api/v1/users/00000000-0000-4000-8000-000000000000"), 404, "NOT_FOUND")


def test_a_user_id_that_is_not_a_uuid_is_a_validation_error(client):
    ada = signed_in(client)
    assert_error(ada.get("/api/v1/users/not-a-uuid"), 400, "VALIDATION_FAILED")


def test_reading_users_needs_a_token(client):
    user = register(client)["data"]
    assert_error(client.get("/api/v1/users"), 401, "UNAUTHORIZED")
    assert_error(client.get(f"/api/v1/users/{user['id']}"), 401, "UNAUTHORIZED")


def test_users_can_be_listed_filtered_and_sorted(client):
    ada = signed_in(client, name="Ada")
    register(client, name="Charles")
    last = register(client, name="Bertha")
    position = last["meta"]["position"]

    by_name = ada.read("/api/v1/users?sort=name:desc", position)
    assert by_name.status_code == 200
    assert [u["name"] for u in by_name.json()["data"]] == ["Charles", "Bertha", "Ada"]
    assert by_name.json()["meta"] == {"total": 3, "page": 1, "perPage": 20, "totalPages": 1}

    like = ada.read("/api/v1/users?filter[name][like]=ERT", position)
    assert [u["name"] for u in like.json()["data"]] == ["Bertha"]

    exact = ada.read(f"/api/v1/users?filter[email]={ada.email}", position)
    assert [u["id"] for u in exact.json()["data"]] == [ada.id]

    for user in by_name.json()["data"]:
        assert "password" not in str(user).lower()


def test_users_list_filters_on_active(client):
    ada = signed_in(client)
    bob = signed_in(client)
    gone = bob.delete(f"/api/v1/users/{bob.id}")
    position = gone.json()["meta"]["position"]
    inactive = ada.read("/api/v1/users?filter[active]=false", position)
    assert [u["id"] for u in inactive.json()["data"]] == [bob.id]
    active = ada.read("/api/v1/users?filter[active]=true", position)
    assert [u["id"] for u in active.json()["data"]] == [ada.id]


def test_users_list_rejects_an_unknown_filter_field(client):
    ada = signed_in(client)
    error = assert_error(ada.get("/api/v1/users?filter[passwordHash]=x"), 400, "VALIDATION_FAILED")
    assert field_names(error) == ["filter[passwordHash]"]


# --- changing users ------------------------------------------------------------------------------


def test_a_user_can_rename_themself(client):
    ada = signed_in(client)
    response = ada.put(f"/api/v1/users/{ada.id}", json={"name": "  Ada Byron  "})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["data"]["name"] == "Ada Byron"
    assert body["meta"]["version"] == 2
    assert response.headers["ETag"] == '"2"'


def test_another_user_cannot_change_a_user(client):
    ada = signed_in(client)
    bob = signed_in(client)
    assert_error(bob.put(f"/api/v1/users/{ada.id}", json={"name": "Hacked"}), 403, "FORBIDDEN")
    assert_error(bob.delete(f"/api/v1/users/{ada.id}"), 403, "FORBIDDEN")


def test_an_admin_can_change_and_deactivate_any_user(client, system):
    admin = make_admin(system, client)
    ada = signed_in(client)
    renamed = admin.put(f"/api/v1/users/{ada.id}", json={"name": "Renamed By Admin"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["data"]["name"] == "Renamed By Admin"
    deactivated = admin.delete(f"/api/v1/users/{ada.id}")
    assert deactivated.status_code == 200
    assert deactivated.json()["data"]["active"] is False


def test_changing_a_user_with_an_explicit_null_name_is_a_validation_error(client):
    ada = signed_in(client)
    error = assert_error(ada.put(f"/api/v1/users/{ada.id}", json={"name": None}), 400, "VALIDATION_FAILED")
    assert field_names(error) == ["name"]


def test_changing_a_user_with_if_match_checks_the_version(client):
    ada = signed_in(client)
    stale = ada.put(f"/api/v1/users/{ada.id}", json={"name": "X"}, headers={"If-Match": '"7"'})
    assert_error(stale, 412, "PRECONDITION_FAILED")
    fresh = ada.put(f"/api/v1/users/{ada.id}", json={"name": "X"}, headers={"If-Match": '"1"'})
    assert fresh.status_code == 200


def test_changing_an_unknown_user_is_not_found(client, system):
    admin = make_admin(system, client)
    missing = "00000000-0000-4000-8000-000000000000"
    assert_error(admin.put(f"/api/v1/users/{missing}", json={"name": "X"}), 404, "NOT_FOUND")
    assert_error(admin.delete(f"/api/v1/users/{missing}"), 404, "NOT_FOUND")


def test_deactivation_shows_in_the_read_model_and_keeps_the_history(client, system):
    admin = make_admin(system, client)
    ada = signed_in(client)
    response = ada.delete(f"/api/v1/users/{ada.id}")
    assert response.status_code == 200
    assert response.json()["data"]["active"] is False
    position = response.json()["meta"]["position"]
    read = admin.read(f"/api/v1/users/{ada.id}", position)
    assert read.json()["data"]["active"] is False
    history = admin.get(f"/api/v1/users/{ada.id}/history")
    assert history.status_code == 200
    assert [e["type"] for e in history.json()["data"]] == ["User.Registered", "User.Deactivated"]


def test_deactivating_twice_is_a_conflict(client, system):
    admin = make_admin(system, client)
    ada = signed_in(client)
    assert admin.delete(f"/api/v1/users/{ada.id}").status_code == 200
    assert_error(admin.delete(f"/api/v1/users/{ada.id}"), 409, "CONFLICT")


def test_a_deactivated_user_cannot_be_added_to_a_project(client, system):
    admin = make_admin(system, client)
    owner = signed_in(client)
    ada = signed_in(client)
    project = create_project(owner)["data"]
    admin.delete(f"/api/v1/users/{ada.id}")
    response = owner.post(f"/api/v1/projects/{project['id']}/members", json={"userId": ada.id, "role": "member"})
    assert_error(response, 409, "CONFLICT")


# --- a user's projects ---------------------------------------------------------------------------


def test_a_users_projects_show_only_those_the_caller_may_read(client):
    ada = signed_in(client)
    bob = signed_in(client)
    shared = create_project(ada, name="Shared")["data"]
    add_member(ada, shared["id"], bob, "member")
    private = create_project(bob, name="Bob's own")
    position = private["meta"]["position"]

    seen_by_ada = ada.read(f"/api/v1/users/{bob.id}/projects", position)
    assert seen_by_ada.status_code == 200
    assert [p["id"] for p in seen_by_ada.json()["data"]] == [shared["id"]]

    seen_by_bob = bob.read(f"/api/v1/users/{bob.id}/projects", position)
    assert sorted(p["name"] for p in seen_by_bob.json()["data"]) == ["Bob's own", "Shared"]
    assert seen_by_bob.json()["meta"]["total"] == 2


def test_an_admin_sees_all_of_a_users_projects(client, system):
    admin = make_admin(system, client)
    bob = signed_in(client)
    one = create_project(bob, name="One")
    two = create_project(bob, name="Two")
    seen = admin.read(f"/api/v1/users/{bob.id}/projects", two["meta"]["position"])
    assert [p["id"] for p in seen.json()["data"]] == [one["data"]["id"], two["data"]["id"]]


def test_a_users_projects_leave_out_deleted_projects(client):
    bob = signed_in(client)
    kept = create_project(bob, name="Kept")["data"]
    doomed = create_project(bob, name="Doomed")["data"]
    deleted = bob.delete(f"/api/v1/projects/{doomed['id']}")
    seen = bob.read(f"/api/v1/users/{bob.id}/projects", deleted.json()["meta"]["position"])
    assert [p["id"] for p in seen.json()["data"]] == [kept["id"]]


def test_a_stranger_sees_none_of_a_users_projects(client):
    bob = signed_in(client)
    stranger = signed_in(client)
    created = create_project(bob)
    seen = stranger.read(f"/api/v1/users/{bob.id}/projects", created["meta"]["position"])
    assert seen.status_code == 200
    assert seen.json()["data"] == []
    assert seen.json()["meta"]["total"] == 0
