"""Rebuild rate on a large history: events/s of a projection caught up from position 0 into fresh
PostgreSQL tables, beside a raw paged read of the same notification log (same server, same run).

    .venv/bin/python -m bench.bench_rebuild --database-url postgresql://... [--events 1000000]

The history (users, projects with members, tasks created, updated, moved, assigned and deleted,
comments added, edited and deleted) is built with the real aggregates and appended through the
application's recorder many events a transaction, so its rows are the ones the app writes. It is
kept in a database named after the generator's version and size, and reused when a completed one
is there (generating 1,000,000 events takes a few minutes). Projections measured: ``tasks`` and
every registered projection whose name starts with ``analytics`` (``--projections`` overrides).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from bench.bench_write_pg import fresh_database
from bench.common import report
from commands.context import CommandContext
from commands.passwords import PasswordHasher
from commands.service import TaskFlowApplication
from domain.base import stamped
from domain.comment import Comment
from domain.email_index import EmailIndex
from domain.project import Project
from domain.task import Task
from domain.user import User
from infra.composition import event_store_env
from infra.postgres_readmodels import PostgresReadModelStore
from infra.projector import ProjectionRunner
from infra.settings import Settings
from projections.base import Projection
from projections.registry import all_projections

# Bump when the generated history changes (its mix, or the events' schema): a cached database
# with another version is dropped and generated again.
HISTORY_VERSION = 1
SAVE_BATCH = 5_000
READ_PAGE = 1_000
PRIORITIES = ["low", "medium", "high", "urgent"]
STATUSES = ["todo", "in_progress", "in_review", "done", "cancelled"]


def history_name(events: int) -> str:
    return f"taskflow_bench_history_v{HISTORY_VERSION}_{events}"


def history_events(events: int, seed: int = 1) -> Iterator[Any]:
    """A plausible history of about ``events`` domain events, stamped like commands stamp them.

    Tasks are touched while they are among the recent ones of their project, the way real work
    moves on; everything goes through the aggregates' own methods, so every event is valid."""
    rnd = random.Random(seed)
    users: list[User] = []
    projects: list[Project] = []
    live_tasks: dict[uuid.UUID, list[Task]] = {}
    comments: list[Comment] = []
    produced = 0

    def emit(actor: uuid.UUID, *changed: Any) -> list[Any]:
        meta = CommandContext(actor, f"req-{produced}", f"corr-{produced}", f"req-{produced}").metadata()
        return stamped([e for aggregate in changed for e in aggregate.collect_events()], meta)

    def register() -> list[Any]:
        user = User.register(f"user{len(users)}@bench.example", f"User {len(users)}", "$argon2id$bench")
        users.append(user)
        return emit(user.id, EmailIndex(email=user.email, user_id=user.id), user)

    def new_project() -> list[Any]:
        owner = rnd.choice(users)
        project = Project.create(owner.id, f"Project {len(projects)}", "Benchmark project")
        for member in rnd.sample(users, 8):
            if not project.is_member(member.id):
                project.add_member(owner.id, member.id, rnd.choice(["member", "member", "viewer", "admin"]))
        projects.append(project)
        live_tasks[project.id] = []
        return emit(owner.id, project)

    batch: list[Any] = []
    for _ in range(200):
        batch += register()
    for _ in range(50):
        batch += new_project()
    produced += len(batch)
    yield from batch

    while produced < events:
        project = rnd.choice(projects)
        members = [m for m, role in project.members.items() if role != "viewer"]
        actor = rnd.choice(members)
        tasks = live_tasks[project.id]
        roll = rnd.random()
        if not tasks or roll < 0.18:
            task = Task.create(
                project, actor, f"Task {produced}", description="Something to do " * rnd.randint(0, 8),
                priority=rnd.choice(PRIORITIES), labels=rnd.sample(["ui", "api", "bug", "ops", "docs"], 2),
                assignee_ids=[rnd.choice(members)] if rnd.random() < 0.5 else [],
                estimate=rnd.choice([None, 1.0, 2.5, 8.0]),
            )
            tasks.append(task)
            if len(tasks) > 400:  # older work is finished with: keep memory bounded
                tasks.pop(0)
            new = emit(actor, task)
        elif roll < 0.43:
            task = rnd.choice(tasks)
            task.update(title=f"Task {produced}", priority=rnd.choice(PRIORITIES),
                        due_date=f"2027-0{rnd.randint(1, 9)}-1{rnd.randint(0, 9)}")
            new = emit(actor, task)
        elif roll < 0.63:
            task = rnd.choice(tasks)
            task.move(project, rnd.choice([s for s in STATUSES if s != task.status]))
            new = emit(actor, task)
        elif roll < 0.73:
            task = rnd.choice(tasks)
            candidate = rnd.choice(members)
            if candidate in task.assignee_ids:
                task.unassign(candidate)
            else:
                task.assign(project, candidate)
            new = emit(actor, task)
        elif roll < 0.90:
            task = rnd.choice(tasks)
            comment = Comment.add(task.id, project.id, actor, f"Comment {produced}: " + "looks good " * rnd.randint(1, 6))
            comments.append(comment)
            if len(comments) > 5_000:
                comments.pop(0)
            new = emit(actor, comment)
        elif roll < 0.96 and comments:
            comment = rnd.choice(comments)
            if comment.deleted:
                continue
            if rnd.random() < 0.8:
                comment.edit(comment.author_id, f"Edited {produced}")
            else:
                comment.delete(comment.author_id)
            new = emit(comment.author_id, comment)
        elif roll < 0.985:
            user = rnd.choice(users)
            user.update_profile(f"User {produced}")
            new = emit(user.id, user)
        else:
            task = tasks.pop(rnd.randrange(len(tasks)))
            task.delete()
            new = emit(actor, task)
        produced += len(new)
        yield from new


def application(url: str) -> TaskFlowApplication:
    settings = Settings(database_url=url, redis_url=None, elasticsearch_url=None, kafka_bootstrap_servers=None)
    return TaskFlowApplication(env=event_store_env(settings), hasher=PasswordHasher(time_cost=1, memory_kib=1024))


def cached_history(admin_url: str, events: int) -> tuple[str, float | None]:
    """The URL of a database holding the history, and how long generating it took (None: reused)."""
    name = history_name(events)
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    if exists:
        with psycopg.connect(url) as conn:
            done = conn.execute(
                "SELECT 1 FROM information_schema.tables WHERE table_name = 'bench_history_complete'"
            ).fetchone()
        if done:
            return url, None
        with psycopg.connect(admin_url, autocommit=True) as conn:  # an interrupted generation
            conn.execute(f'DROP DATABASE "{name}"')
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    app = application(url)
    started = time.perf_counter()
    pending: list[Any] = []
    for e in history_events(events):
        pending.append(e)
        if len(pending) >= SAVE_BATCH:
            app.save(*pending)
            pending = []
    if pending:
        app.save(*pending)
    seconds = time.perf_counter() - started
    app.close()
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE bench_history_complete (events BIGINT, seconds DOUBLE PRECISION)")
        conn.execute("INSERT INTO bench_history_complete VALUES (%s, %s)", (events, seconds))
        conn.execute("ANALYZE")
    return url, seconds


def raw_read(app: TaskFlowApplication, head: int, page: int) -> float:
    """The baseline: every notification read in pages, as a follower reads them; seconds."""
    started = time.perf_counter()
    position = 0
    while position < head:
        notifications = app.recorder.select_notifications(start=position, limit=page, inclusive_of_start=False)
        position = notifications[-1].id
    return time.perf_counter() - started


def rebuild(projection: Projection, app: TaskFlowApplication, admin_url: str, batch_size: int) -> tuple[float, int]:
    """Catch ``projection`` up from 0 into a fresh database; (seconds, events it applied)."""
    store_url = fresh_database(admin_url)
    store = PostgresReadModelStore(store_url)
    try:
        runner = ProjectionRunner(projection, store, app.recorder, app.mapper, batch_size=batch_size)
        started = time.perf_counter()
        runner.catch_up()
        return time.perf_counter() - started, runner.status.applied_events
    finally:
        store.close()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{store_url.rsplit("/", 1)[1]}"')


def chosen_projections(names: Sequence[str] | None) -> list[Projection]:
    registered = all_projections()
    if names:
        return [p for p in registered if p.name in names]
    return [p for p in registered if p.name == "tasks" or p.name.startswith("analytics")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=1_000, help="events per projection transaction")
    parser.add_argument("--projections", nargs="*", help="names (default: tasks and analytics*)")
    args = parser.parse_args()
    if not args.database_url:
        sys.exit("needs --database-url (or DATABASE_URL)")

    url, generation_seconds = cached_history(args.database_url, args.events)
    if generation_seconds is None:
        print(f"history: reusing {history_name(args.events)}")
    else:
        print(f"history: generated {args.events} events in {generation_seconds:.0f} s "
              f"({args.events / generation_seconds:,.0f} events/s)")
    app = application(url)
    head = app.head_position()
    raw_seconds = raw_read(app, head, READ_PAGE)
    raw_rate = head / raw_seconds
    print(f"raw read of {head} events: {raw_seconds:.1f} s")

    figures: list[dict[str, Any]] = []
    for projection in chosen_projections(args.projections):
        seconds, applied = rebuild(projection, app, args.database_url, args.batch_size)
        print(f"{projection.name}: {applied} of {head} events applied in {seconds:.1f} s")
        figures.append({
            "figure": f"{projection.name} rebuild from 0 ({head:,} events in the log, {applied:,} applied)",
            "value": head / seconds, "unit": "events/s",
            "baseline": raw_rate, "baseline_name": f"raw paged read of the log, {READ_PAGE} a page",
            "applied_per_second": applied / seconds,
        })
    report("rebuild", figures)
    app.close()


if __name__ == "__main__":
    main()
