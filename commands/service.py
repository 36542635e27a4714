"""The application service: one method per command.

Each method checks its input and returns a ``Command``: how it decides (load the aggregates it
needs, let them decide) when it runs. ``execute`` (blocking) or ``execute_async`` (awaited on an
event loop) runs it: the new events are stamped with the command's metadata and appended in one
atomic save. A concurrent write to the same aggregate makes the save fail with IntegrityError;
without If-Match the whole command is re-run on fresh state (so nothing is lost and the client
never sees the race), with If-Match it becomes a 412.

A command method does no I/O itself (everything that reads the store is in ``decide``), so an
async route can call it on the event loop; the two that hash a password are CPU-heavy and are
called from a thread.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, Recording
from pydantic.alias_generators import to_camel

from commands.context import CommandContext
from commands.group_commit import Decide, GroupCommitter, UnitOfWork
from commands.models import (
    AddComment,
    AddMember,
    ChangeMemberRole,
    ChangeWorkflow,
    CreateProject,
    CreateTask,
    EditComment,
    RegisterUser,
    UpdateProject,
    UpdateTask,
    UpdateUser,
)
from commands.passwords import PasswordHasher
from domain.base import stamped
from domain.comment import Comment
from domain.email_index import EmailIndex
from domain.errors import Conflict, Forbidden, InvalidInput, NotFound, VersionMismatch
from domain.project import Permission, Project
from domain.task import Task
from domain.user import User, normalise_email

A = TypeVar("A", bound=Aggregate)
MAX_ATTEMPTS = 8
NOT_NULLABLE = ("title", "description", "priority", "status", "assignee_ids", "labels", "name")


@dataclass(frozen=True)
class Command:
    """A checked command, ready to run: its metadata, and how it decides (returns its target and
    the aggregates it changed) against the state current when it runs."""

    ctx: CommandContext
    decide: Decide


@dataclass(frozen=True)
class Written:
    """The outcome of a command: the target aggregate as the write model now sees it."""

    aggregate: Any
    position: int
    version: int


class TaskFlowApplication(Application[UUID]):
    name = "TaskFlow"

    conflict_errors = (IntegrityError,)

    def __init__(
        self, env: dict[str, str] | None = None, *, hasher: PasswordHasher, group_commit_batch: int = 0
    ) -> None:
        super().__init__(env)
        self.hasher = hasher
        self._saved_listeners: list[Callable[[int], None]] = []
        # With a batch size above 1, commands go through one writer thread in groups.
        self.group_committer = GroupCommitter(self, max_batch=group_commit_batch) if group_commit_batch > 1 else None

    def close(self) -> None:
        if self.group_committer is not None:
            self.group_committer.stop()
        super().close()

    # --- plumbing -----------------------------------------------------------------------------
    def on_saved(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(position)`` after each save (wakes the embedded projector)."""
        self._saved_listeners.append(listener)

    def _notify(self, recordings: list[Recording[UUID]]) -> None:
        if recordings:
            for listener in self._saved_listeners:
                listener(recordings[-1].notification.id)

    def head_position(self) -> int:
        return self.recorder.max_notification_id() or 0

    def _unit_of_work(self) -> UnitOfWork | None:
        return self.group_committer.unit_of_work if self.group_committer is not None else None

    def load(self, aggregate_id: UUID, kind: type[A], what: str) -> A:
        uow = self._unit_of_work()
        try:
            if uow is not None:
                aggregate = uow.get(aggregate_id)
            else:
                aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise NotFound(f"{what} not found") from None
        if not isinstance(aggregate, kind):
            raise NotFound(f"{what} not found")
        return aggregate

    def exists(self, aggregate_id: UUID) -> bool:
        uow = self._unit_of_work()
        return (uow is not None and uow.knows(aggregate_id)) or aggregate_id in self.repository

    @staticmethod
    def collect_stamped(changed: Sequence[Any], ctx: CommandContext) -> list[Any]:
        """The new events of the changed aggregates, carrying the command's metadata."""
        return stamped([e for agg in changed for e in agg.collect_events()], ctx.metadata())

    def execute(self, command: Command) -> Written:
        """Run a command and wait for its outcome (blocks the calling thread)."""
        if self.group_committer is not None and self._unit_of_work() is None:
            return self.group_committer.submit(command.ctx, command.decide)
        return self.execute_alone(command.ctx, command.decide)

    async def execute_async(self, command: Command) -> Written:
        """Run a command from an event loop without blocking it."""
        if self.group_committer is not None:
            return await self.group_committer.submit_async(command.ctx, command.decide)
        return await asyncio.to_thread(self.execute_alone, command.ctx, command.decide)

    def execute_alone(self, ctx: CommandContext, decide: Decide) -> Written:
        """Run ``decide`` (load, check, mutate) and save; re-run it on a concurrent write."""
        for attempt in range(MAX_ATTEMPTS):
            target, changed = decide()
            events = self.collect_stamped(changed, ctx)
            if not events:
                return Written(target, self.head_position(), target.version)
            try:
                recordings = self.save(*events)
            except IntegrityError:
                if ctx.expected_version is not None:
                    raise VersionMismatch("the resource was changed by someone else") from None
                # Jittered backoff, so writers racing on one aggregate stop colliding in lockstep.
                time.sleep(random.uniform(0, 0.002 * 2**attempt))
                continue
            return Written(target, recordings[-1].notification.id, target.version)
        raise Conflict("the resource is being changed by others too often; try again")

    @staticmethod
    def _check_version(aggregate: Aggregate, ctx: CommandContext) -> None:
        if ctx.expected_version is not None and ctx.expected_version != aggregate.version:
            raise VersionMismatch(
                f"expected version {ctx.expected_version}, current version is {aggregate.version}"
            )

    def _project_for(self, project_id: UUID, ctx: CommandContext, permission: Permission) -> Project:
        project = self.load(project_id, Project, "project")
        project.authorize(_actor(ctx), permission, is_admin=ctx.is_admin)
        return project

    # --- users --------------------------------------------------------------------------------
    def register_user(self, cmd: RegisterUser, ctx: CommandContext) -> Command:
        email = normalise_email(str(cmd.email))
        password_hash = self.hasher.hash(cmd.password)

        def decide() -> tuple[User, list[Aggregate]]:
            if self.exists(EmailIndex.id_for(email)):
                raise Conflict("a user with this email already exists")
            user = User.register(email=email, name=cmd.name, password_hash=password_hash)
            return user, [EmailIndex(email=email, user_id=user.id), user]

        return Command(ctx, decide)

    def find_user_by_email(self, email: str) -> User | None:
        try:
            index = self.load(EmailIndex.id_for(normalise_email(email)), EmailIndex, "user")
        except (NotFound, InvalidInput):
            return None
        return self.load(index.user_id, User, "user")

    def authenticate(self, email: str, password: str) -> User | None:
        """The active user with these credentials, or None (same cost either way)."""
        user = self.find_user_by_email(email)
        ok = self.hasher.verify(user.password_hash if user else None, password)
        return user if ok and user is not None and user.active else None

    def get_user(self, user_id: UUID) -> User:
        return self.load(user_id, User, "user")

    def update_user(self, user_id: UUID, cmd: UpdateUser, ctx: CommandContext) -> Command:
        _require_not_null(cmd.given())
        password_hash = self.hasher.hash(cmd.password) if cmd.password else None

        def decide() -> tuple[User, list[Aggregate]]:
            user = self._user_for_self_or_admin(user_id, ctx)
            if cmd.name is not None:
                user.update_profile(cmd.name)
            if password_hash is not None:
                user.change_password(password_hash)
            return user, [user]

        return Command(ctx, decide)

    def deactivate_user(self, user_id: UUID, ctx: CommandContext) -> Command:
        def decide() -> tuple[User, list[Aggregate]]:
            user = self._user_for_self_or_admin(user_id, ctx)
            user.deactivate()
            return user, [user]

        return Command(ctx, decide)

    def grant_role(self, email: str, role: str, ctx: CommandContext) -> Command:
        def decide() -> tuple[User, list[Aggregate]]:
            user = self.find_user_by_email(email)
            if user is None:
                raise NotFound(f"no user with email {email}")
            user.grant_role(role)
            return user, [user]

        return Command(ctx, decide)

    def _user_for_self_or_admin(self, user_id: UUID, ctx: CommandContext) -> User:
        user = self.load(user_id, User, "user")
        if ctx.actor_id != user.id and not ctx.is_admin:
            raise Forbidden("only the user or an admin may change a user")
        self._check_version(user, ctx)
        return user

    # --- projects -----------------------------------------------------------------------------
    def create_project(self, cmd: CreateProject, ctx: CommandContext) -> Command:
        def decide() -> tuple[Project, list[Aggregate]]:
            project = Project.create(_actor(ctx), cmd.name, cmd.description, cmd.key)
            return project, [project]

        return Command(ctx, decide)

    def get_project(self, project_id: UUID, ctx: CommandContext) -> Project:
        return self._project_for(project_id, ctx, Permission.READ)

    def _change_project(
        self, project_id: UUID, ctx: CommandContext, permission: Permission, change: Callable[[Project], None]
    ) -> Command:
        def decide() -> tuple[Project, list[Aggregate]]:
            project = self._project_for(project_id, ctx, permission)
            self._check_version(project, ctx)
            change(project)
            return project, [project]

        return Command(ctx, decide)

    def update_project(self, project_id: UUID, cmd: UpdateProject, ctx: CommandContext) -> Command:
        _require_not_null(cmd.given())
        return self._change_project(
            project_id, ctx, Permission.MANAGE_PROJECT,
            lambda p: p.update(name=cmd.name, description=cmd.description),
        )

    def change_workflow(self, project_id: UUID, cmd: ChangeWorkflow, ctx: CommandContext) -> Command:
        statuses = [s.model_dump() for s in cmd.statuses]
        return self._change_project(
            project_id, ctx, Permission.MANAGE_PROJECT, lambda p: p.change_workflow(statuses)
        )

    def archive_project(self, project_id: UUID, ctx: CommandContext) -> Command:
        return self._change_project(project_id, ctx, Permission.MANAGE_PROJECT, Project.archive)

    def restore_project(self, project_id: UUID, ctx: CommandContext) -> Command:
        return self._change_project(project_id, ctx, Permission.MANAGE_PROJECT, Project.restore)

    def delete_project(self, project_id: UUID, ctx: CommandContext) -> Command:
        return self._change_project(project_id, ctx, Permission.DELETE_PROJECT, Project.delete)

    def add_member(self, project_id: UUID, cmd: AddMember, ctx: CommandContext) -> Command:
        def add(project: Project) -> None:
            # The new member must be a real, active user.
            if not self.load(cmd.user_id, User, "user").active:
                raise Conflict("user is deactivated")
            project.add_member(_actor(ctx), cmd.user_id, cmd.role, is_admin=ctx.is_admin)

        return self._change_project(project_id, ctx, Permission.MANAGE_MEMBERS, add)

    def change_member_role(
        self, project_id: UUID, user_id: UUID, cmd: ChangeMemberRole, ctx: CommandContext
    ) -> Command:
        return self._change_project(
            project_id, ctx, Permission.MANAGE_MEMBERS,
            lambda p: p.change_member_role(_actor(ctx), user_id, cmd.role, is_admin=ctx.is_admin),
        )

    def remove_member(self, project_id: UUID, user_id: UUID, ctx: CommandContext) -> Command:
        # Anyone may leave a project; removing someone else needs the right to manage members.
        permission = Permission.READ if user_id == ctx.actor_id else Permission.MANAGE_MEMBERS
        return self._change_project(
            project_id, ctx, permission,
            lambda p: p.remove_member(_actor(ctx), user_id, is_admin=ctx.is_admin),
        )

    # --- tasks --------------------------------------------------------------------------------
    def create_task(self, project_id: UUID, cmd: CreateTask, ctx: CommandContext) -> Command:
        def decide() -> tuple[Task, list[Aggregate]]:
            project = self._project_for(project_id, ctx, Permission.WRITE_TASKS)
            parent = None
            if cmd.parent_id is not None:
                try:
                    parent = self.load(cmd.parent_id, Task, "parent task")
                except NotFound:
                    raise InvalidInput.on("parentId", "parent task not found") from None
            task = Task.create(
                project,
                _actor(ctx),
                cmd.title,
                description=cmd.description,
                priority=cmd.priority,
                status=cmd.status,
                assignee_ids=list(cmd.assignee_ids),
                due_date=_iso(cmd.due_date),
                start_date=_iso(cmd.start_date),
                estimate=cmd.estimate,
                labels=list(cmd.labels),
                parent=parent,
            )
            return task, [task]

        return Command(ctx, decide)

    def get_task(self, task_id: UUID, ctx: CommandContext, permission: Permission = Permission.READ) -> tuple[Task, Project]:
        task = self.load(task_id, Task, "task")
        project = self._project_for(task.project_id, ctx, permission)
        if task.deleted:
            raise NotFound("task not found")
        return task, project

    def update_task(self, task_id: UUID, cmd: UpdateTask, ctx: CommandContext) -> Command:
        given = cmd.given()
        _require_not_null(given)
        fields = {k: _iso(v) for k, v in given.items() if k not in ("status", "assignee_ids")}

        def decide() -> tuple[Task, list[Aggregate]]:
            task, project = self.get_task(task_id, ctx, Permission.WRITE_TASKS)
            project.require_open_for_tasks()
            self._check_version(task, ctx)
            if fields:
                task.update(**fields)
            if cmd.status is not None:
                task.move(project, cmd.status)
            if cmd.assignee_ids is not None:
                wanted = list(dict.fromkeys(cmd.assignee_ids))
                for user_id in [u for u in task.assignee_ids if u not in wanted]:
                    task.unassign(user_id)
                for user_id in wanted:
                    task.assign(project, user_id)
            return task, [task]

        return Command(ctx, decide)

    def delete_task(self, task_id: UUID, ctx: CommandContext) -> Command:
        def decide() -> tuple[Task, list[Aggregate]]:
            task, project = self.get_task(task_id, ctx, Permission.WRITE_TASKS)
            project.require_open_for_tasks()
            self._check_version(task, ctx)
            task.delete()
            return task, [task]

        return Command(ctx, decide)

    # --- comments -----------------------------------------------------------------------------
    def add_comment(self, task_id: UUID, cmd: AddComment, ctx: CommandContext) -> Command:
        def decide() -> tuple[Comment, list[Aggregate]]:
            task, project = self.get_task(task_id, ctx, Permission.WRITE_TASKS)
            project.require_open_for_tasks()
            comment = Comment.add(task.id, project.id, _actor(ctx), cmd.body)
            return comment, [comment]

        return Command(ctx, decide)

    def _change_comment(self, comment_id: UUID, ctx: CommandContext, change: Callable[[Comment], None]) -> Command:
        def decide() -> tuple[Comment, list[Aggregate]]:
            comment = self.load(comment_id, Comment, "comment")
            # Authorising on the project first keeps a non-member from learning the comment exists.
            try:
                self.get_task(comment.task_id, ctx, Permission.WRITE_TASKS)[1].require_open_for_tasks()
            except NotFound:
                raise NotFound("comment not found") from None
            self._check_version(comment, ctx)
            change(comment)
            return comment, [comment]

        return Command(ctx, decide)

    def edit_comment(self, comment_id: UUID, cmd: EditComment, ctx: CommandContext) -> Command:
        return self._change_comment(comment_id, ctx, lambda c: c.edit(_actor(ctx), cmd.body))

    def delete_comment(self, comment_id: UUID, ctx: CommandContext) -> Command:
        return self._change_comment(comment_id, ctx, lambda c: c.delete(_actor(ctx)))


def _actor(ctx: CommandContext) -> UUID:
    if ctx.actor_id is None:
        raise Forbidden("this command needs a signed-in user")
    return ctx.actor_id


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _require_not_null(given: dict[str, Any]) -> None:
    for name in NOT_NULLABLE:
        if name in given and given[name] is None:
            raise InvalidInput.on(to_camel(name), f"{to_camel(name)} cannot be null")
