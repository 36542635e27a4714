"""A realistic event history written through the application service (users, projects, members,
tasks moving through the workflow, assignments, comments), deterministic for a given seed."""

from __future__ import annotations

import random
from uuid import UUID

from commands.context import CommandContext
from commands.models import (
    AddComment,
    AddMember,
    CreateProject,
    CreateTask,
    EditComment,
    RegisterUser,
    UpdateTask,
)
from commands.service import TaskFlowApplication

STATUSES = ["todo", "in_progress", "in_review", "done", "cancelled"]


def ctx(actor: UUID | None, n: int) -> CommandContext:
    return CommandContext(actor_id=actor, request_id=f"req-{n}", correlation_id=f"corr-{n}", causation_id=f"req-{n}")


def generate_history(app: TaskFlowApplication, *, seed: int = 7, users: int = 4, projects: int = 2,
                     tasks: int = 30, changes: int = 120) -> int:
    """Writes the history; returns the head position."""
    rnd = random.Random(seed)
    n = 0
    user_ids = []
    for i in range(users):
        n += 1
        cmd = RegisterUser(email=f"user{i}-{seed}@example.com", password="password123", name=f"User {i}")
        user_ids.append(app.execute(app.register_user(cmd, ctx(None, n))).aggregate.id)
    project_ids = []
    for p in range(projects):
        n += 1
        owner = user_ids[p % users]
        project_ids.append(app.execute(app.create_project(CreateProject(name=f"Project {p}"), ctx(owner, n))).aggregate.id)
        for other in user_ids:
            if other != owner:
                n += 1
                app.execute(app.add_member(project_ids[-1], AddMember(user_id=other, role="member"), ctx(owner, n)))
    task_ids = []
    for t in range(tasks):
        n += 1
        actor = rnd.choice(user_ids)
        cmd = CreateTask(title=f"Task {t}", priority=rnd.choice(["low", "medium", "high", "urgent"]),
                         labels=rnd.sample(["bug", "ui", "api", "docs"], k=rnd.randint(0, 2)))
        task_ids.append(app.execute(app.create_task(rnd.choice(project_ids), cmd, ctx(actor, n))).aggregate.id)
    comment_ids = []
    for _ in range(changes):
        n += 1
        actor = rnd.choice(user_ids)
        task_id = rnd.choice(task_ids)
        kind = rnd.random()
        if kind < 0.35:
            app.execute(app.update_task(task_id, UpdateTask(status=rnd.choice(STATUSES)), ctx(actor, n)))
        elif kind < 0.55:
            app.execute(app.update_task(task_id, UpdateTask(assignee_ids=rnd.sample(user_ids, k=rnd.randint(0, 2))), ctx(actor, n)))
        elif kind < 0.7:
            app.execute(app.update_task(task_id, UpdateTask(title=f"Renamed {n}", priority="urgent"), ctx(actor, n)))
        elif kind < 0.9:
            comment_ids.append((app.execute(app.add_comment(task_id, AddComment(body=f"Comment {n}"), ctx(actor, n))).aggregate))
        elif comment_ids:
            comment = rnd.choice(comment_ids)
            app.execute(app.edit_comment(comment.id, EditComment(body=f"Edited {n}"), ctx(comment.author_id, n)))
    return app.head_position()
