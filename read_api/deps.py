"""What the read routes need, declared as small interfaces; the composition root provides them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Protocol
from uuid import UUID

from fastapi import Depends, Request

from domain.errors import Unauthenticated
from domain.identity import Principal
from projections.operations import DeadLetter, ProjectionStatus, RelayStatus
from projections.search import SearchProjection, SearchQuery, SearchResult
from projections.store import ReadModelReader, ReadModelStore


class AccessVerifier(Protocol):
    async def verify_access(self, token: str) -> Principal: ...


class EventHistory(Protocol):
    def events_of(self, aggregate_id: UUID) -> Sequence[tuple[int, Any]]:
        """(position, domain event) for each event of the aggregate, in version order."""

    def events_of_each(self, aggregate_ids: Iterable[UUID]) -> Sequence[tuple[int, Any]]:
        """(position, domain event) for each event of the aggregates, in position order."""

    def events_after(self, position: int, event_classes: Sequence[type]) -> Sequence[tuple[int, Any]]:
        """(position, domain event) for each event of these classes after ``position``, in order."""


class AuditTrail(Protocol):
    def events_at(self, positions: Sequence[int]) -> Sequence[tuple[int, Any, str | None]]:
        """(position, domain event, hash-chain link in hex) for each stored event at ``positions``."""

    def export(self, first: int, last: int) -> Iterator[bytes]:
        """JSON Lines of the raw stored events and links at positions first..last."""

    def head_position(self) -> int: ...


class SearchIndex(Protocol):
    def search(self, query: SearchQuery) -> SearchResult: ...

    def position(self, projection: str) -> int:
        """The position the search projection has applied (its store keeps it)."""


class ProjectionAdmin(Protocol):
    """Where each projection stands and what it could not apply, read from shared storage."""

    def statuses(self) -> list[ProjectionStatus]: ...

    def status(self, name: str) -> ProjectionStatus:
        """Raises NotFound for an unknown projection."""

    def relay(self) -> RelayStatus | None: ...

    def dead_letters(self, name: str) -> list[DeadLetter]:
        """Raises NotFound for an unknown projection."""


@dataclass
class ReadServices:
    store: ReadModelReader
    verifier: AccessVerifier
    history: EventHistory
    wait_default_ms: int = 2000
    wait_max_ms: int = 10000
    search: SearchIndex | None = None
    # A new, empty, private read-model store per call: time travel replays history into it.
    scratch_store: Callable[[], ReadModelStore] | None = None
    audit: AuditTrail | None = None
    projections: ProjectionAdmin | None = None

    def position(self, projection: str) -> int:
        """What a projection has applied, asked of the store that holds it."""
        if projection == SearchProjection.name and self.search is not None:
            return self.search.position(projection)
        return self.store.position(projection)


async def get_services(request: Request) -> ReadServices:
    return request.app.state.read_services


Services = Annotated[ReadServices, Depends(get_services)]


async def get_principal(request: Request, services: Services) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("a bearer token is required")
    return await services.verifier.verify_access(token.strip())


CurrentUser = Annotated[Principal, Depends(get_principal)]
