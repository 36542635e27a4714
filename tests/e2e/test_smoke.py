from tests.e2e.helpers import create_project, create_task, signed_in


def test_a_created_task_is_listed_in_its_project_once_the_read_model_has_its_position(client):
    ada = signed_in(client)
    project = create_project(ada)["data"]
    created = create_task(ada, project["id"], priority="high")
    listed = ada.read(f"/api/v1/projects/{project['id']}/tasks", created["meta"]["position"])
    assert listed.status_code == 200
    assert [t["id"] for t in listed.json()["data"]] == [created["data"]["id"]]
    assert int(listed.headers["X-Projection-Position"]) >= created["meta"]["position"]
