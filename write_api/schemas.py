"""How the write API shows a resource: built from the aggregate, in the same shape as the read
API's view of it (tests compare the two)."""

from __future__ import annotations

from typing import Any

from domain.clock import iso_utc
from domain.comment import Comment
from domain.project import Project
from domain.task import Task
from domain.user import User


def _common(aggregate: Any) -> dict[str, Any]:
    return {
        "createdAt": iso_utc(aggregate.created_on),
        "updatedAt": iso_utc(aggregate.modified_on),
        "version": aggregate.version,
    }


def user_out(user: User) -> dict[str, Any]:
    return {
        "id": str(user.id),
        "email": user.email,
        "name": user.name,
        "roles": list(user.roles),
        "active": user.active,
        **_common(user),
    }


def project_out(project: Project) -> dict[str, Any]:
    return {
        "id": str(project.id),
        "name": project.name,
        "description": project.description,
        "key": project.key,
        "ownerId": str(project.owner_id),
        "archived": project.archived,
        "workflow": [dict(s) for s in project.workflow],
        "memberCount": len(project.members),
        **_common(project),
        "members": [{"userId": str(u), "role": r} for u, r in sorted(project.members.items(), key=lambda m: str(m[0]))],
    }


def task_out(task: Task) -> dict[str, Any]:
    return {
        "id": str(task.id),
        "projectId": str(task.project_id),
        "title": task.title,
        "description": task.description,
        "status": task.status,
        "priority": task.priority,
        "assigneeIds": [str(a) for a in task.assignee_ids],
        "labels": list(task.labels),
        "dueDate": task.due_date,
        "startDate": task.start_date,
        "estimate": task.estimate,
        "parentId": str(task.parent_id) if task.parent_id else None,
        "createdBy": str(task.created_by),
        "completedAt": iso_utc(task.completed_at),
        **_common(task),
    }


def comment_out(comment: Comment) -> dict[str, Any]:
    return {
        "id": str(comment.id),
        "taskId": str(comment.task_id),
        "projectId": str(comment.project_id),
        "authorId": str(comment.author_id),
        "body": comment.body,
        **_common(comment),
    }
