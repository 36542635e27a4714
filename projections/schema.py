"""Declarative table shapes for read models, so one SQL store implementation serves them all.

Values a handler writes are plain Python: str (UUIDs as text, instants as ISO-8601 Z strings,
which sort correctly as text), int, float, bool, and lists/dicts for ``json`` columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic.alias_generators import to_camel

ColumnType = Literal["text", "int", "float", "bool", "json", "instant", "date", "uuid"]


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    filterable: bool = False
    sortable: bool = False
    # Internal bookkeeping (e.g. the soft-delete flag) is not shown to clients.
    public: bool = True
    # For enumerations with a meaning (priority): sort and compare by this order, not by text.
    ranked: tuple[str, ...] = ()
    # For ``json`` list columns: the type of their items, so filter values can be checked.
    items: ColumnType | None = None

    @property
    def wire(self) -> str:
        return to_camel(self.name)


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    indexes: tuple[tuple[str, ...], ...] = ()

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def by_wire_name(self, wire: str) -> Column | None:
        return next((c for c in self.columns if c.wire == wire), None)

    def to_wire(self, row: dict) -> dict:
        return {c.wire: row.get(c.name) for c in self.columns if c.public}


def text(name: str, **kw: Any) -> Column:
    return Column(name, "text", **kw)


def uuid(name: str, **kw: Any) -> Column:
    return Column(name, "uuid", **kw)


def instant(name: str, **kw: Any) -> Column:
    return Column(name, "instant", **kw)
