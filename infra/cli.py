"""The ``taskflow`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from infra.settings import Settings


def _serve(settings: Settings, host: str, port: int, *, write: bool, read: bool, projector: bool,
           workers: int = 1) -> int:
    import uvicorn

    from infra.composition import build_http_app, build_system
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
    if what == "relay" and system.relay is not None:
        system.relay.start()
        running = f"relay to Kafka topic {settings.kafka_topic}"
    else:
        system.projector.start()
        source = f"Kafka topic {settings.kafka_topic}" if settings.kafka_bootstrap_servers else "the event log"
        running = f"projector ({', '.join(r.name for r in system.projector.runners)}) from {source}"
    if system.wakeup is not None:
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
        result = system.app.grant_role(email, role, CommandContext.system("cli:users grant-role"))
    except TaskFlowError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 1
    finally:
        system.close()
    print(f"{email} now has roles: {', '.join(result.aggregate.roles)}")
    return 0


def _projection_status(settings: Settings) -> int:
    from infra.composition import build_system

    system = build_system(settings)
    try:
        head = system.app.head_position()
        print(f"{'projection':<12} {'applied':>10} {'head':>10} {'lag':>8}")
        for runner in system.projector.runners:
            applied = runner.store.position(runner.name)
            print(f"{runner.name:<12} {applied:>10} {head:>10} {head - applied:>8}")
        if system.relay is not None:
            relayed = system.store.position(system.relay.name)
            print(f"{'relay':<12} {relayed:>10} {head:>10} {head - relayed:>8}")
    finally:
        system.close()
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
    projections.add_parser("status", help="applied position, head and lag of each projection")

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
    if args.command == "projections":
        return _projection_status(settings)
    if args.command == "keys":
        return _rotate_keys(settings)
    return 2


if __name__ == "__main__":
    sys.exit(main())
