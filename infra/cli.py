"""The ``taskflow`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from infra.settings import Settings

if TYPE_CHECKING:  # imported when run, by the commands that need them
    from infra.projection_ops import ProjectionOperations
    from projections.operations import DeadLetter


def _serve(settings: Settings, host: str, port: int, *, write: bool, read: bool, projector: bool,
           workers: int = 1) -> int:
    import uvicorn

    from infra.composition import build_http_app, build_system
    from infra.heap import freeze_startup_heap
    from infra.logs import configure_logging

    configure_logging(settings.log_level)
    if workers > 1:
        if settings.embedded:
            print("error: --workers needs the production backends (DATABASE_URL)", file=sys.stderr)
            return 2
        factory = "infra.asgi:write_api" if write else "infra.asgi:read_api"
        print(f"TaskFlow listening on http://{host}:{port} ({workers} worker processes)", file=sys.stderr, flush=True)
        uvicorn.run(factory, factory=True, workers=workers, host=host, port=port, log_config=None, access_log=False)
        return 0
    system = build_system(settings)
    app = build_http_app(system, write=write, read=read, run_projector=projector)
    freeze_startup_heap()  # see infra/heap.py
    where = f"http://{host}:{port}"
    print(f"TaskFlow listening on {where} (API docs: {where}/docs; data: {settings.data_dir.resolve()})",
          file=sys.stderr, flush=True)
    try:
        uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
    finally:
        system.close()
    return 0


def _until_stopped(settings: Settings, names: Sequence[str] | None, what: str) -> int:
    """Run the projector (or the relay) of a system until SIGTERM or Ctrl-C."""
    import signal
    import threading

    from infra.composition import build_system
    from infra.heap import freeze_startup_heap
    from infra.logs import configure_logging

    configure_logging(settings.log_level)
    if what == "relay" and not settings.kafka_bootstrap_servers:
        print("error: the relay publishes to Kafka: set KAFKA_BOOTSTRAP_SERVERS", file=sys.stderr)
        return 2
    try:
        system = build_system(settings, projection_names=names)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    freeze_startup_heap()  # before the worker threads start: see infra/heap.py
    if what == "relay" and system.relay is not None:
        system.relay.start()
        running = f"relay to Kafka topic {settings.kafka_topic}"
    else:
        if settings.kafka_bootstrap_servers:  # its own process: restarted by its supervisor if stuck
            from infra.kafka_consumer import STUCK_POLL_SECONDS

            system.projector.exit_when_stuck(STUCK_POLL_SECONDS)
        system.projector.start()
        source = f"Kafka topic {settings.kafka_topic}" if settings.kafka_bootstrap_servers else "the event log"
        running = f"projector ({', '.join(r.name for r in system.projector.runners)}) from {source}"
    # Kafka consumers wait on the topic: in their process the listener would wake nothing, yet take
    # the interpreter's lock from the consumers' threads at every commit of every writer.
    if system.wakeup is not None and (what == "relay" or not settings.kafka_bootstrap_servers):
        system.wakeup.start()
    print(f"TaskFlow {running} running; Ctrl-C stops it", file=sys.stderr, flush=True)
    stop.wait()
    system.close()
    return 0


def _grant_role(settings: Settings, email: str, role: str) -> int:
    from commands.context import CommandContext
    from domain.errors import TaskFlowError
    from infra.composition import build_system

    system = build_system(settings)
    try:
        result = system.app.execute(system.app.grant_role(email, role, CommandContext.system("cli:users grant-role")))
    except TaskFlowError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 1
    finally:
        system.close()
    print(f"{email} now has roles: {', '.join(result.aggregate.roles)}")
    return 0


def _projections(settings: Settings, args: argparse.Namespace) -> int:
    from domain.errors import TaskFlowError
    from infra.composition import build_system
    from infra.projector import ProjectionFailed

    system = build_system(settings)
    operations = system.operations
    assert operations is not None
    try:
        if args.action == "status":
            _print_status(operations)
        elif args.action == "dead-letters":
            _print_dead_letters(operations.dead_letters(args.name))
        else:
            repair = getattr(operations, args.action)(args.name, args.position)
            applied = ", ".join(map(str, repair.applied)) or "nothing"
            verb = "retried" if args.action == "retry" else "skipped"
            print(f"{args.name}: position {args.position} {verb}; applied: {applied}")
            if repair.failed is not None:
                print(f"error: position {repair.failed} failed again and stays dead-lettered: {repair.error}",
                      file=sys.stderr)
                return 1
    except TaskFlowError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 1
    except ProjectionFailed as error:  # a backend failed: nothing changed, try again later
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        system.close()
    return 0


def _audit_verify(settings: Settings, file: str | None, anchor_text: str | None) -> int:
    from pathlib import Path

    from eventsourcing.persistence import PersistenceError

    from commands.service import TaskFlowApplication
    from infra.audit_log import opened_event_log
    from infra.audit_verify import Anchor, verify_export, verify_log
    from infra.composition import event_store_env

    if file is not None and anchor_text:
        print("error: --anchor checks the stored log; an export carries its own links", file=sys.stderr)
        return 2
    try:
        anchor = Anchor.parse(anchor_text) if anchor_text else None
    except ValueError as error:
        print(f"error: --anchor: {error}", file=sys.stderr)
        return 2

    if file is None and settings.embedded and not (settings.data_dir / "events.db").exists():
        print(f"error: no event store in {settings.data_dir.resolve()} (set TASKFLOW_DATA_DIR or DATABASE_URL)",
              file=sys.stderr)
        return 2
    try:
        if file is not None:
            verdict = verify_export(Path(file))
        else:
            with opened_event_log(TaskFlowApplication.name, event_store_env(settings)) as log:
                verdict = verify_log(log, anchor)
    except (OSError, PersistenceError) as error:
        print(f"error: cannot read the {'export' if file else 'event store'}: {error}", file=sys.stderr)
        return 2
    print(verdict.summary(), file=sys.stdout if verdict.ok else sys.stderr)
    return 0 if verdict.ok else 1


def _print_status(operations: ProjectionOperations) -> None:
    print(f"{'projection':<12} {'store':<20} {'feed':<6} {'applied':>9} {'head':>9} {'lag':>7} {'state':<10} "
          f"{'dead':>5} {'parked':>6}")
    for s in operations.statuses():
        store = f"{s.store}+redis" if s.cached else s.store
        print(f"{s.name:<12} {store:<20} {s.feed:<6} {s.applied_position:>9} {s.head_position:>9} {s.lag:>7} "
              f"{s.state:<10} {s.dead_letters:>5} {s.parked_events:>6}")
    relay = operations.relay()
    if relay is not None:
        print(f"{'relay':<12} {'kafka':<20} {'':<6} {relay.position:>9} {relay.head_position:>9} {relay.lag:>7}")


def _print_dead_letters(letters: list[DeadLetter]) -> None:
    print(f"{'position':>9} {'status':<8} {'attempts':>8} {'aggregate':<36} {'event':<28} error / waits behind")
    for d in letters:
        event = d.event_type.rsplit(":", 1)[-1]
        reason = d.error if d.status != "parked" else f"waits behind {d.blocked_by}"
        print(f"{d.position:>9} {d.status:<8} {d.attempts:>8} {d.aggregate_id:<36} {event:<28} {reason or ''}")


def _rebuild_projection(settings: Settings, name: str) -> int:
    """Rebuild one projection beside the live one and swap it in; progress on stderr."""
    from tqdm import tqdm

    from domain.errors import Conflict, NotFound
    from infra.composition import build_system
    from infra.logs import configure_logging

    configure_logging(settings.log_level)
    # No projection of this process runs: building them would prepare (or, after a version bump,
    # reset) the live tables the rebuild is meant to leave alone until its swap.
    system = build_system(settings, projection_names=[])
    bar = tqdm(desc=f"rebuild {name}", unit=" events", file=sys.stderr, dynamic_ncols=True)

    def show(state: str, position: int, head: int, _rate: float) -> None:
        bar.total = max(head, position)
        bar.set_postfix_str(state, refresh=False)
        bar.update(position - bar.n)

    try:
        assert system.rebuilds is not None
        position = system.rebuilds.run(name, show)
    except NotFound as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    except Conflict as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nrebuild of {name} interrupted; the live read model stays in service", file=sys.stderr)
        return 130
    finally:
        bar.close()
        system.close()
    print(f"{name} rebuilt and swapped in at position {position}")
    return 0


def _rotate_keys(settings: Settings) -> int:
    from infra.keys import rotate

    kid = rotate(settings.data_dir / "keys")
    print(f"new signing key {kid}; older keys keep verifying tokens they signed until removed")
    return 0


def parser() -> argparse.ArgumentParser:
    settings = Settings()
    root = argparse.ArgumentParser(prog="taskflow", description="TaskFlow: event-sourced project and task management.")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_address(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--host", default=settings.host, help="address to listen on (default %(default)s)")
        p.add_argument("--port", type=int, default=settings.port, help="port (default %(default)s; env PORT)")
        return p

    with_address(commands.add_parser(
        "serve", help="write API, read API and projector in one process (with Kafka: relay and consumers)"
    ))
    for name in ("write-api", "read-api"):
        api = with_address(commands.add_parser(name, help=f"the {name.split('-')[0]} API alone"))
        api.add_argument("--workers", type=int, default=1,
                         help="worker processes (production backends only; default %(default)s)")
    project = commands.add_parser(
        "project", help="run the projector alone (keeps read models up to date; with Kafka, one group member)"
    )
    project.add_argument("names", nargs="*", metavar="NAME", help="the projections to run (default: all)")
    commands.add_parser("relay", help="publish every event to Kafka (needs KAFKA_BOOTSTRAP_SERVERS)")

    users = commands.add_parser("users", help="user administration").add_subparsers(dest="action", required=True)
    grant = users.add_parser("grant-role", help="grant a system role (user, admin, auditor)")
    grant.add_argument("email")
    grant.add_argument("role", choices=["user", "admin", "auditor"])

    projections = commands.add_parser("projections", help="read-model operations").add_subparsers(
        dest="action", required=True
    )
    projections.add_parser("status", help="store, applied position, head, lag, state and dead letters of each projection")
    listing = projections.add_parser("dead-letters", help="the events a projection could not apply, and those parked")
    listing.add_argument("name", metavar="NAME")
    for action, text in (("retry", "apply a dead-lettered event with the current code, then the events parked behind it"),
                         ("skip", "give up a dead-lettered event (kept as skipped) and apply the events parked behind it")):
        repair = projections.add_parser(action, help=text)
        repair.add_argument("name", metavar="NAME")
        repair.add_argument("position", metavar="POSITION", type=int)
    rebuild = projections.add_parser(
        "rebuild", help="rebuild a projection from position 0 beside the live one, then swap it in"
    )
    rebuild.add_argument("name", metavar="NAME", help="the projection (names: taskflow projections status)")

    audit = commands.add_parser("audit", help="tamper evidence of the event log").add_subparsers(
        dest="action", required=True
    )
    verify = audit.add_parser("verify", help="recompute the hash chain of the whole log (or of an export)")
    verify.add_argument("--file", metavar="EXPORT.jsonl", help="check an export of GET /api/v1/audit/export instead")
    verify.add_argument("--anchor", metavar="POSITION:LINK",
                        help="a link recorded earlier (a previous head): fail if the chain no longer holds it")

    keys = commands.add_parser("keys", help="JWT signing keys").add_subparsers(dest="action", required=True)
    keys.add_parser("rotate", help="add a new signing key (old ones keep verifying)")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings()
    if args.command == "serve":
        return _serve(settings, args.host, args.port, write=True, read=True, projector=True)
    if args.command == "write-api":
        return _serve(settings, args.host, args.port, write=True, read=False, projector=False, workers=args.workers)
    if args.command == "read-api":
        return _serve(settings, args.host, args.port, write=False, read=True, projector=False, workers=args.workers)
    if args.command == "project":
        return _until_stopped(settings, args.names or None, "projector")
    if args.command == "relay":
        return _until_stopped(settings, [], "relay")
    if args.command == "users":
        return _grant_role(settings, args.email, args.role)
    if args.command == "projections" and args.action == "rebuild":
        return _rebuild_projection(settings, args.name)
    if args.command == "projections":
        return _projections(settings, args)
    if args.command == "audit":
        return _audit_verify(settings, args.file, args.anchor)
    if args.command == "keys":
        return _rotate_keys(settings)
    return 2


if __name__ == "__main__":
    sys.exit(main())
