"""List parameters of API.md: ``filter[field]=v``, ``filter[field][op]=v``, ``sort=a:asc,b:desc``,
``page``/``perPage``, and cursor mode (``cursor``/``limit``). Unknown fields are a 400."""

from __future__ import annotations

import base64
import json
import re
from datetime import date
from typing import Any
from uuid import UUID

from starlette.datastructures import QueryParams, URL

from domain.clock import iso_utc, parse_iso_utc
from domain.errors import FieldProblem, InvalidInput
from projections.schema import Column, Table
from projections.store import Filter, ListQuery, ListResult, Sort

OPERATORS = ("eq", "ne", "gt", "lt", "gte", "lte", "in", "like")
MAX_PER_PAGE = 100
# Keeps page * perPage (the store's OFFSET) and integer filter values within a 64-bit integer.
MAX_PAGE = 10_000_000
_INT64 = range(-(2**63), 2**63)
_FILTER = re.compile(r"^filter\[([A-Za-z0-9_]+)\](?:\[([A-Za-z]+)\])?$")
_LIST_PARAMS = {"sort", "page", "perPage", "cursor", "limit", "minPosition", "maxWaitMs"}


def _typed(column: Column, raw: str, field: str) -> Any:
    try:
        if column.ranked:
            if raw not in column.ranked:
                raise ValueError(f"must be one of {', '.join(column.ranked)}")
            return raw
        if column.type == "uuid" or (column.type == "json" and column.items == "uuid"):
            return str(UUID(raw))
        if column.type == "int":
            if int(raw) not in _INT64:
                raise ValueError("must be a 64-bit integer")
            return int(raw)
        if column.type == "float":
            return float(raw)
        if column.type == "bool":
            if raw.lower() not in ("true", "false"):
                raise ValueError("must be true or false")
            return raw.lower() == "true"
        if column.type == "date":
            return date.fromisoformat(raw).isoformat()
        if column.type == "instant":
            return iso_utc(parse_iso_utc(raw))
        return raw
    except ValueError as error:
        message = str(error) if str(error).startswith("must") else f"not a valid {column.type} value"
        raise InvalidInput(f"invalid value for {field}", [FieldProblem(field, message)]) from None


def _allowed_ops(column: Column) -> tuple[str, ...]:
    if column.type == "json":
        return ("eq", "ne", "in")
    if column.type == "bool":
        return ("eq", "ne")
    if column.type in ("text",) and not column.ranked:
        return OPERATORS
    if column.type == "uuid":
        return ("eq", "ne", "in")
    return ("eq", "ne", "gt", "lt", "gte", "lte", "in")


def parse_filters(params: QueryParams, table: Table, extra_allowed: set[str] = frozenset()) -> list[Filter]:
    filters: list[Filter] = []
    problems: list[FieldProblem] = []
    for name, raw in params.multi_items():
        match = _FILTER.match(name)
        if not match:
            if name.startswith("filter"):
                problems.append(FieldProblem(name, "use filter[field]=value or filter[field][op]=value"))
            elif name not in _LIST_PARAMS and name not in extra_allowed:
                problems.append(FieldProblem(name, "unknown query parameter"))
            continue
        wire, op = match.group(1), (match.group(2) or "eq")
        column = table.by_wire_name(wire)
        if column is None or not column.filterable or not column.public:
            problems.append(FieldProblem(name, f"cannot filter on '{wire}'"))
            continue
        if op not in _allowed_ops(column):
            problems.append(FieldProblem(name, f"operator '{op}' is not allowed on '{wire}'"))
            continue
        try:
            if op == "in":
                value: Any = [_typed(column, part.strip(), name) for part in raw.split(",") if part.strip()]
                if not value:
                    raise InvalidInput.on(name, "'in' needs a comma-separated list")
            elif op == "like":
                value = raw
            else:
                value = _typed(column, raw, name)
        except InvalidInput as error:
            problems.extend(error.details)
            continue
        filters.append(Filter(column.name, op, value))  # type: ignore[arg-type]
    if problems:
        raise InvalidInput("invalid list parameters", problems)
    return filters


def parse_sort(raw: str | None, table: Table, default: list[Sort]) -> list[Sort]:
    if not raw:
        return default
    keys: list[Sort] = []
    for part in raw.split(","):
        wire, _, direction = part.strip().partition(":")
        direction = direction or "asc"
        column = table.by_wire_name(wire)
        if column is None or not column.sortable or not column.public:
            raise InvalidInput.on("sort", f"cannot sort on '{wire}'")
        if direction not in ("asc", "desc"):
            raise InvalidInput.on("sort", f"sort direction must be asc or desc, not '{direction}'")
        keys.append(Sort(column.name, direction == "desc"))
    return keys


def is_whole_number(raw: str) -> bool:
    """Only ASCII digits: ``str.isdigit`` also accepts characters such as '²' that ``int`` refuses."""
    return raw.isascii() and raw.isdigit()


def _int_param(params: QueryParams, name: str, default: int, low: int, high: int | None) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not is_whole_number(raw) or int(raw) < low or (high is not None and int(raw) > high):
        bound = f" and at most {high}" if high is not None else ""
        raise InvalidInput.on(name, f"{name} must be a whole number of at least {low}{bound}")
    return int(raw)


def _encode_cursor(values: list[Any], sort_spec: str) -> str:
    raw = json.dumps({"v": values, "s": sort_spec}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, sort_spec: str, key_count: int) -> list[Any]:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        values, spec = decoded["v"], decoded["s"]
    except (ValueError, KeyError, TypeError):
        raise InvalidInput.on("cursor", "cursor is not valid") from None
    if spec != sort_spec:
        raise InvalidInput.on("cursor", "cursor was made for a different sort order")
    # A cursor is opaque but not signed: a client may hand back anything.
    if (
        not isinstance(values, list)
        or len(values) != key_count
        or not all(isinstance(v, (str, int, float)) and (not isinstance(v, int) or v in _INT64) for v in values)
    ):
        raise InvalidInput.on("cursor", "cursor is not valid")
    return values


def _keyset_size(sort: list[Sort], table: Table) -> int:
    """How many values a cursor carries: one per sort key, then each primary-key column not
    sorted on (the store breaks ties by the primary key)."""
    sorted_on = {s.column for s in sort}
    return len(sort) + sum(1 for pk in table.primary_key if pk not in sorted_on)


def _sort_spec(sort: list[Sort]) -> str:
    return ",".join(f"{s.column}:{'desc' if s.descending else 'asc'}" for s in sort)


class ListRequest:
    """A parsed list request, and how to shape its response (meta and links)."""

    def __init__(self, url: URL, params: QueryParams, table: Table, default_sort: list[Sort],
                 extra_allowed: set[str] = frozenset(), *, cursor_only: bool = False):
        """``cursor_only``: for collections too large for page numbers (``page``/``perPage`` are a 400)."""
        self.url = url
        self.filters = parse_filters(params, table, extra_allowed)
        self.sort = parse_sort(params.get("sort"), table, default_sort)
        if cursor_only:
            for name in ("page", "perPage"):
                if name in params:
                    raise InvalidInput.on(name, "this collection pages by cursor: use cursor and limit")
        self.cursor_mode = cursor_only or "cursor" in params or "limit" in params
        if self.cursor_mode:
            self.per_page = _int_param(params, "limit", 50, 1, MAX_PER_PAGE)
            self.page = 1
            cursor = params.get("cursor")
            keys = _keyset_size(self.sort, table)
            self.after = _decode_cursor(cursor, _sort_spec(self.sort), keys) if cursor else None
        else:
            self.page = _int_param(params, "page", 1, 1, MAX_PAGE)
            self.per_page = _int_param(params, "perPage", 20, 1, MAX_PER_PAGE)
            self.after = None

    def query(self, scope: list[Filter]) -> ListQuery:
        return ListQuery(
            filters=[*scope, *self.filters],
            sort=self.sort,
            page=self.page,
            per_page=self.per_page,
            after=self.after,
            cursor_mode=self.cursor_mode,
        )

    def _link(self, **changes: Any) -> str:
        url = self.url
        for name, value in changes.items():
            url = url.include_query_params(**{name: value}) if value is not None else url.remove_query_params(name)
        return f"{url.path}?{url.query}" if url.query else url.path

    def envelope(self, data: list[dict[str, Any]], result: ListResult) -> dict[str, Any]:
        if self.cursor_mode:
            next_cursor = (
                _encode_cursor(result.last_sort_values, _sort_spec(self.sort))
                if result.last_sort_values is not None
                else None
            )
            return {
                "data": data,
                "meta": {"limit": self.per_page, "nextCursor": next_cursor},
                "links": {"self": self._link(), "next": self._link(cursor=next_cursor) if next_cursor else None},
            }
        total = result.total or 0
        pages = max(1, -(-total // self.per_page))
        return {
            "data": data,
            "meta": {"total": total, "page": self.page, "perPage": self.per_page, "totalPages": pages},
            "links": {
                "self": self._link(),
                "first": self._link(page=1),
                "last": self._link(page=pages),
                "next": self._link(page=self.page + 1) if self.page < pages else None,
                "prev": self._link(page=self.page - 1) if self.page > 1 else None,
            },
        }
