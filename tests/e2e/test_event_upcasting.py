"""Schema evolution: a Task.Moved stored in its version-1 form (before ``from_category``) still
loads, shows in history, replays through time travel and projects into the tasks read model."""

from __future__ import annotations

from datetime import datetime, timezone
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from domain.task import Task
from tests.e2e.helpers import create_project, create_task, signed_in
from tests.e2e.helpers import settings  # noqa: F401  (fixture: one signing key per session)


def _store_v1_move(system, task_id: UUID, actor_id: str) -> int:
    """Append, straight into the event store, the row the code before version 2 wrote for a move
    from todo to in_progress: its fields, no ``from_category`` and no ``class_version``."""
    app = system.app
    state = {
        "timestamp": datetime.now(timezone.utc),
        "metadata": {"actorId": actor_id, "requestId": "v1-move", "correlationId": "v1-move",
                     "causationId": "v1-move"},
        "from_status": "todo",
        "to_status": "in_progress",
        "category": "in_progress",
        "completed_at": None,
    }
    row = StoredEvent(originator_id=task_id, originator_version=2, topic=get_topic(Task.Moved),
                      state=app.mapper.transcoder.encode(state))
    positions = app.recorder.insert_events([row])
    assert positions is not None
    return positions[-1]


def test_a_move_stored_before_from_category_existed_still_loads_everywhere(client, system):
    ada = signed_in(client)
    project = create_project(ada)["data"]
    task_id = create_task(ada, project["id"], title="Legacy")["data"]["id"]
    old_position = _store_v1_move(system, UUID(task_id), ada.id)

    # The aggregate loads: the old move is upcast (from_category unknown) and applied.
    task = system.app.repository.get(UUID(task_id))
    assert (task.version, task.status, task.status_category) == (2, "in_progress", "in_progress")

    # The tasks read model applied it.
    live = ada.read(f"/api/v1/tasks/{task_id}", old_position)
    assert live.status_code == 200, live.text
    assert live.json()["data"]["status"] == "in_progress" and live.json()["data"]["version"] == 2

    # A new move after it records both sides, from the state the old event left.
    moved = ada.patch(f"/api/v1/tasks/{task_id}", json={"status": "done"})
    assert moved.status_code == 200, moved.text
    head = moved.json()["meta"]["position"]
    stored = system.app.recorder.select_events(UUID(task_id), gt=2)
    new_state = system.app.mapper.transcoder.decode(stored[0].state)
    assert new_state["class_version"] == 2 and new_state["from_category"] == "in_progress"

    history = ada.read(f"/api/v1/tasks/{task_id}/history", head).json()["data"]
    assert [e["type"] for e in history] == ["Task.Created", "Task.Moved", "Task.Moved"]
    assert history[1]["position"] == old_position and history[1]["requestId"] == "v1-move"
    assert history[1]["data"]["fromStatus"] == "todo" and history[1]["data"]["toStatus"] == "in_progress"
    assert history[1]["data"]["fromCategory"] is None
    assert "classVersion" not in history[1]["data"]
    assert history[2]["data"]["fromStatus"] == "in_progress"
    assert history[2]["data"]["fromCategory"] == "in_progress"

    # Time travel replays it.
    then = ada.get(f"/api/v1/tasks/{task_id}", params={"version": 2})
    assert then.status_code == 200, then.text
    assert then.json()["data"]["status"] == "in_progress"
    assert then.json()["meta"]["position"] == old_position
    at_instant = ada.get(f"/api/v1/tasks/{task_id}", params={"asOf": history[1]["occurredAt"]})
    assert at_instant.json()["data"] == then.json()["data"]
    board = ada.get(f"/api/v1/projects/{project['id']}/tasks", params={"asOf": history[1]["occurredAt"]})
    assert [t["status"] for t in board.json()["data"]] == ["in_progress"]
    assert ada.read(f"/api/v1/tasks/{task_id}", head).json()["data"]["status"] == "done"
