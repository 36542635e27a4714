"""Operator routes (system role ``admin``): where each projection stands against the event log, and
the events it dead-lettered. Everything is read from shared storage (positions, dead letters, the
event store's head), so any read-API process answers the same, whichever process runs the projector."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic.alias_generators import to_camel

from domain.errors import Forbidden, NotFound
from domain.identity import Principal
from projections.operations import DeadLetter, ProjectionStatus
from read_api.deps import CurrentUser, ProjectionAdmin, Services

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


def _admin(principal: CurrentUser) -> Principal:
    if not principal.is_admin:
        raise Forbidden("the admin role is required")
    return principal


def _operations(services: Services, _: Annotated[Principal, Depends(_admin)]) -> ProjectionAdmin:
    if services.projections is None:
        raise NotFound("projection operations are not available in this process")
    return services.projections


Operations = Annotated[ProjectionAdmin, Depends(_operations)]


def _wire(value: Any) -> dict[str, Any]:
    return {to_camel(k): v for k, v in asdict(value).items()}


def _status(status: ProjectionStatus) -> dict[str, Any]:
    rebuild = {to_camel(k): v for k, v in status.rebuild.items()} if status.rebuild else None
    return {**_wire(status), "lag": status.lag, "rebuild": rebuild}


def _dead_letter(letter: DeadLetter) -> dict[str, Any]:
    return _wire(letter)


@router.get("/projections", summary="Each projection: store, applied and head positions, lag, state, dead letters")
def projections(operations: Operations) -> dict[str, Any]:
    statuses = operations.statuses()
    relay = operations.relay()
    return {
        "data": [_status(s) for s in statuses],
        "meta": {
            "headPosition": max((s.head_position for s in statuses), default=0),
            "relay": {**_wire(relay), "lag": relay.lag} if relay else None,
        },
    }


@router.get("/projections/{name}", summary="One projection's status")
def projection(name: str, operations: Operations) -> dict[str, Any]:
    return {"data": _status(operations.status(name))}


@router.get("/projections/{name}/dead-letters",
            summary="The events the projection could not apply, and those parked behind them, in position order")
def dead_letters(name: str, operations: Operations) -> dict[str, Any]:
    letters = operations.dead_letters(name)
    return {"data": [_dead_letter(d) for d in letters], "meta": {"total": len(letters)}}
