"""``taskflow audit verify``: recompute the hash chain over the stored log, or over an export file,
and name the first position where it breaks.

What each finding means:
- altered: the event stored at the position does not hash to its link (a field was edited);
- removed: a chained event is gone (its link remains, or the next link names it as predecessor);
- reordered: the event at the position hashes to the link of another position (events swapped or
  moved), or an export's lines are out of order;
- unchained: an event has no link (inserted behind TaskFlow's back, or a line carries none);
- rewritten: the chain no longer holds a link recorded earlier (``--anchor``): events and every
  link after them were recomputed, which the chain alone cannot show.
Both checks stream: memory stays constant whatever the number of events.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from infra.audit_log import EventLog, LogRow
from infra.event_chain import GENESIS, chain_link


@dataclass(frozen=True)
class Verdict:
    checked: int
    head_position: int | None
    head_link: bytes | None
    bad_position: int | None = None
    problem: str | None = None  # altered | removed | reordered | unchained
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.problem is None

    def summary(self) -> str:
        if self.ok:
            head = self.head_link.hex() if self.head_link else GENESIS.hex()
            return f"ok: {self.checked} events checked; head position {self.head_position or 0}, link {head}"
        return (f"FAILED at position {self.bad_position}: {self.problem}: {self.message} "
                f"({self.checked} events checked before it)")


class _Broken(Exception):
    def __init__(self, position: int | None, problem: str, message: str):
        super().__init__(message)
        self.position, self.problem, self.message = position, problem, message


def _link_of(event: StoredEvent, previous: bytes, position: int) -> bytes:
    return chain_link(previous, position, event.originator_id, event.originator_version, event.topic, event.state)


@dataclass(frozen=True)
class Anchor:
    """A link recorded elsewhere (an earlier verify's head, an export's last line): the chain must
    still hold it, else it was rewritten from some event on, links included."""

    position: int
    link: bytes

    @classmethod
    def parse(cls, text: str) -> Anchor:
        position, _, link = text.partition(":")
        try:
            anchor = cls(int(position), bytes.fromhex(link))
        except ValueError:
            raise ValueError("an anchor is POSITION:LINK, the link in hex") from None
        if len(anchor.link) != 32:
            raise ValueError("an anchor's link is 64 hex digits")
        return anchor


def verify_log(log: EventLog, anchor: Anchor | None = None) -> Verdict:
    """Walk the stored log from its first position to its head."""
    checked, position, link = 0, None, GENESIS
    try:
        for row in log.rows():
            _check_row(log, row, position, link)
            if anchor is not None and row.position == anchor.position and row.link != anchor.link:
                raise _Broken(row.position, "rewritten", f"the link at position {row.position} is not the recorded "
                                                         "anchor: the chain was recomputed after events were changed")
            checked, position, link = checked + 1, row.position, row.link
        if anchor is not None and (position is None or position < anchor.position):
            raise _Broken(anchor.position, "removed", f"the log ends before the anchor's position {anchor.position}")
    except _Broken as broken:
        return Verdict(checked, position, link, broken.position, broken.problem, broken.message)
    return Verdict(checked, position, link)


def _check_row(log: EventLog, row: LogRow, previous_position: int | None, previous_link: bytes) -> None:
    p = row.position
    if row.link is None:
        raise _Broken(p, "unchained", f"the event at position {p} has no link: it was not written by TaskFlow")
    if row.event is None:
        raise _Broken(p, "removed", f"the event at position {p} was removed (its link remains)")
    if row.previous_position != previous_position:
        missing = row.previous_position
        if missing is not None and (previous_position is None or missing > previous_position):
            raise _Broken(missing, "removed", f"the event at position {missing} and its link were removed "
                                              f"(position {p} was chained after it)")
        raise _Broken(p, "reordered", f"position {p} was chained after position {row.previous_position}, "
                                      f"not after {previous_position}")
    if _link_of(row.event, previous_link, p) != row.link:
        home = _home_of(log, row)
        if home is not None:
            raise _Broken(p, "reordered", f"the event stored at position {p} was written at position {home}")
        raise _Broken(p, "altered", f"the event at position {p} does not match its link")


def _home_of(log: EventLog, row: LogRow) -> int | None:
    """The later position whose link this event's fields produce, if any (a second pass, on failure only)."""
    assert row.event is not None
    for link in log.links(row.position, log.head()):
        previous = GENESIS if link["previous_position"] is None else link["previous_link"]
        if previous is not None and _link_of(row.event, bytes(previous), link["position"]) == bytes(link["link"]):
            return link["position"]
    return None


# --- export files ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Line:
    position: int
    previous_position: int | None
    event: StoredEvent | None
    previous_link: bytes | None
    link: bytes | None


def _lines(path: Path) -> Iterator[tuple[int, _Line]]:
    with path.open("rb") as file:
        for number, raw in enumerate(file, start=1):
            if raw.strip():
                yield number, _parse(number, raw)


def _parse(number: int, raw: bytes) -> _Line:
    try:
        record: dict[str, Any] = json.loads(raw)
        event = None
        if record.get("state") is not None:
            event = StoredEvent(UUID(record["aggregateId"]), int(record["version"]), str(record["topic"]),
                                base64.b64decode(record["state"], validate=True))
        return _Line(
            position=int(record["position"]),
            previous_position=None if record.get("previousPosition") is None else int(record["previousPosition"]),
            event=event,
            previous_link=bytes.fromhex(record["previousLink"]) if record.get("previousLink") else None,
            link=bytes.fromhex(record["link"]) if record.get("link") else None,
        )
    except (ValueError, KeyError, TypeError, binascii.Error) as error:
        raise _Broken(None, "altered", f"line {number} is not an export record ({error})") from None


def verify_export(path: Path) -> Verdict:
    """Check an export: each line hashes to its link, and each line's previous link is the link of
    the line before it (the first line's previous link is taken as given: the export's anchor)."""
    checked, position, link = 0, None, None
    try:
        for _, line in _lines(path):
            _check_line(path, line, position, link)
            checked, position, link = checked + 1, line.position, line.link
    except _Broken as broken:
        return Verdict(checked, position, link, broken.position, broken.problem, broken.message)
    return Verdict(checked, position, link)


def _check_line(path: Path, line: _Line, previous_position: int | None, previous_link: bytes | None) -> None:
    p = line.position
    if line.link is None:
        raise _Broken(p, "unchained", f"the event at position {p} has no link")
    if line.event is None:
        raise _Broken(p, "removed", f"the event at position {p} was removed (its link remains)")
    if previous_position is not None and p <= previous_position:
        raise _Broken(p, "reordered", f"position {p} comes after position {previous_position}")
    if line.previous_link is None or _link_of(line.event, line.previous_link, p) != line.link:
        raise _Broken(p, "altered", f"the event at position {p} does not match its link")
    if line.previous_position is None and line.previous_link != GENESIS:
        raise _Broken(p, "altered", f"position {p} claims to be the first event but does not chain from the start")
    if previous_link is not None and line.previous_link != previous_link:
        if any(other.link == line.previous_link for _, other in _lines(path)):
            raise _Broken(p, "reordered", f"position {p} appears before position {line.previous_position}, "
                                          "the event it was chained after")
        missing = line.previous_position
        raise _Broken(missing, "removed",
                      f"the event at position {missing} is missing (position {p} was chained after it)")
