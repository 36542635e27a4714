"""How TaskFlow writes an instant (ISO-8601 in UTC with a trailing Z, API.md), and the clock it reads."""

from __future__ import annotations

from datetime import datetime, timezone

import eventsourcing.domain


def iso_utc(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso_utc(text: str) -> datetime:
    """Parse an ISO-8601 instant; one without a zone is taken as UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def now() -> datetime:
    """Now, by the clock eventsourcing stamps event timestamps with, so a time an aggregate writes
    into an event (a task's completed_at) agrees with that event's own timestamp."""
    return eventsourcing.domain.datetime_now_with_tzinfo()
