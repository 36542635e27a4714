"""Who may read what, decided from the projects read model: members read their projects and
everything in them; a non-member gets 404 (existence is not revealed); system admins read all."""

from __future__ import annotations

from domain.errors import NotFound
from domain.identity import Principal
from projections.projects import PROJECT_MEMBERS, PROJECTS
from projections.store import ReadModelReader, Row


def readable_project_ids(store: ReadModelReader, principal: Principal) -> list[str]:
    memberships = store.find(PROJECT_MEMBERS, {"user_id": str(principal.user_id)})
    return [m["project_id"] for m in memberships]


def readable_project(store: ReadModelReader, project_id: str, principal: Principal) -> Row:
    project = store.get(PROJECTS, {"id": project_id})
    if project is None or project["deleted"]:
        raise NotFound("project not found")
    if not principal.is_admin and store.get(
        PROJECT_MEMBERS, {"project_id": project_id, "user_id": str(principal.user_id)}
    ) is None:
        raise NotFound("project not found")
    return project
