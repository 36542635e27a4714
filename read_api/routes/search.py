"""Full-text search over the tasks, projects and comments the caller may read: typo-tolerant,
ranked, with highlights and facets (counts by status, priority, assignee and label)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from domain.errors import InvalidInput
from projections.search import DOCUMENT_TYPES, SEARCH_FILTERS, SearchFilter, SearchQuery
from projections.store import ListResult
from read_api.access import readable_project_ids
from read_api.consistency import consistent
from read_api.deps import CurrentUser, Services
from read_api.query import ListRequest

router = APIRouter(prefix="/api/v1", tags=["search"])
# Who may read which project comes from the projects read model.
SearchPosition = Annotated[int, Depends(consistent("search", "projects"))]
MAX_QUERY_LENGTH = 500
# Elasticsearch pages at most this far into the results (index.max_result_window); so do the others.
MAX_RESULT_WINDOW = 10_000


def _types(raw: str | None) -> tuple[Any, ...]:
    if raw is None:
        return DOCUMENT_TYPES
    types = tuple(dict.fromkeys(t.strip() for t in raw.split(",")))
    if not types or any(t not in DOCUMENT_TYPES for t in types):
        raise InvalidInput.on("type", f"type must be one of {', '.join(DOCUMENT_TYPES)} (comma-separated)")
    return types


@router.get("/search", summary="Search tasks, projects and comments (typo-tolerant, with highlights and facets)")
def search(
    request: Request,
    principal: CurrentUser,
    services: Services,
    _: SearchPosition,
    q: str | None = Query(None, description="What to search for; each word may have one typo."),
    type: str | None = Query(None, description="task, project or comment (comma-separated for several)."),  # noqa: A002
) -> dict[str, Any]:
    text = (q or "").strip()
    if not text:
        raise InvalidInput.on("q", "q is required and must not be blank")
    if len(text) > MAX_QUERY_LENGTH:
        raise InvalidInput.on("q", f"q must be at most {MAX_QUERY_LENGTH} characters")
    types = _types(type)
    listing = ListRequest(request.url, request.query_params, SEARCH_FILTERS, [], extra_allowed={"q", "type"})
    if listing.cursor_mode:
        raise InvalidInput.on("cursor", "search results are paged with page and perPage")
    if listing.page * listing.per_page > MAX_RESULT_WINDOW:
        raise InvalidInput.on("page", f"only the first {MAX_RESULT_WINDOW} results can be paged to")
    filters = []
    for f in listing.filters:
        wire = SEARCH_FILTERS.column(f.column).wire
        if f.op not in ("eq", "in"):
            raise InvalidInput.on(f"filter[{wire}][{f.op}]", "search filters take one value or [in] a list")
        filters.append(SearchFilter(wire, tuple(f.value if isinstance(f.value, list) else [f.value])))
    assert services.search is not None, "the composition root provides a search index"
    result = services.search.search(SearchQuery(
        text=text,
        types=types,
        filters=tuple(filters),
        project_ids=None if principal.is_admin else readable_project_ids(services.store, principal),
        page=listing.page,
        per_page=listing.per_page,
    ))
    data = [
        {"type": h.type, "id": h.id, "score": h.score, "highlights": h.highlights, "document": h.document}
        for h in result.hits
    ]
    body = listing.envelope(data, ListResult(rows=[], total=result.total))
    body["meta"]["facets"] = result.facets
    return body
