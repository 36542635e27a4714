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


def may_read_past_of(store: ReadModelReader, project_id: str, principal: Principal, noun: str) -> None:
    """Who may read the past of a project or of something in it, from the event store: auditors
    any; everyone else as ``readable_project`` decides today. Otherwise 404 '<noun> not found'."""
    if principal.is_auditor:
        return
    try:
        readable_project(store, project_id, principal)
    except NotFound:
        raise NotFound(f"{noun} not found") from None
