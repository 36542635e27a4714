"""The analytics read model is rebuildable from history: a rebuild gives the same rows, a changed
metric definition (with its version bumped) is recomputed for all of history, and the rows do not
depend on how events of different tasks interleave (as with Kafka partitions)."""

from __future__ import annotations

import itertools
from datetime import date
from uuid import UUID

import pytest

from commands.context import CommandContext
from commands.models import RegisterUser
from infra.projector import ProjectionRunner
from infra.sqlite_readmodels import SQLiteReadModelStore
from projections.analytics import reports
from projections.analytics.projection import AnalyticsProjection
from tests.analytics_history import write_scenario

SPAN = reports.Span(date(2026, 3, 2), date(2026, 3, 10))


def analytics_rows(store) -> dict[str, list[dict]]:
    return {t.name: sorted(store.find(t, {}), key=lambda r: tuple(str(r[k]) for k in t.primary_key))
            for t in AnalyticsProjection.tables}


def scenario(system):
    owner = system.app.execute(system.app.register_user(
        RegisterUser(email="analyst@example.com", password="password123", name="Analyst"),
        CommandContext(actor_id=None, request_id="r", correlation_id="r", causation_id="r"),
    )).aggregate.id
    return write_scenario(system.app, owner)


def catch_up(system) -> None:
    while system.projector.run_once():
        pass


def run(projection, system) -> None:
    ProjectionRunner(projection, system.store, system.app.recorder, system.app.mapper).catch_up()


def figures(system, project_id: UUID) -> tuple:
    project = str(project_id)
    return (reports.cycle_time(system.store, project, SPAN), reports.throughput(system.store, project, SPAN),
            reports.burndown(system.store, project, SPAN))


class LeadTimeAnalytics(AnalyticsProjection):
    """A changed definition: the clock starts when the task is created (lead time)."""

    version = AnalyticsProjection.version + 1

    def starts_cycle(self, category: str) -> bool:
        return category in ("todo", "in_progress")


def test_a_rebuild_from_position_zero_gives_identical_analytics_rows(system):
    s = scenario(system)
    catch_up(system)
    before, before_figures = analytics_rows(system.store), figures(system, s.project_id)
    assert len(before["analytics_tasks"]) == 7
    bumped = type("AnalyticsAgain", (AnalyticsProjection,), {"version": AnalyticsProjection.version + 1})()
    rebuilt = ProjectionRunner(bumped, system.store, system.app.recorder, system.app.mapper)
    assert system.store.position("analytics") == 0
    assert analytics_rows(system.store) == {"analytics_tasks": [], "analytics_periods": []}
    rebuilt.catch_up()
    assert system.store.position("analytics") == s.position
    assert analytics_rows(system.store) == before
    assert figures(system, s.project_id) == before_figures


def test_a_changed_metric_definition_is_recomputed_for_all_of_history(system):
    s = scenario(system)
    catch_up(system)
    project = str(s.project_id)
    assert reports.cycle_time(system.store, project, SPAN).hours["p50"] == 68.0
    run(LeadTimeAnalytics(), system)
    # From creation: A 03-02 09:00 -> 03-06 09:00 = 96 h, B 10:00 -> 10:00 = 96 h, F 09:00 -> 16:00
    # = 7 h; C was created done, so it still has no start. Nearest rank over [7, 96, 96].
    lead = reports.cycle_time(system.store, project, SPAN)
    assert (lead.count, lead.without_start) == (3, 1)
    assert lead.hours == {"p50": 96.0, "p85": 96.0, "p95": 96.0, "mean": 66.333, "min": 7.0, "max": 96.0}
    # Back to the shipped definition (another version change): the original figures return.
    run(AnalyticsProjection(), system)
    assert reports.cycle_time(system.store, project, SPAN).hours["p50"] == 68.0


def test_rows_do_not_depend_on_how_events_of_different_tasks_interleave(system, tmp_path):
    scenario(system)
    catch_up(system)
    events = [system.app.mapper.to_domain_event(n)
              for n in system.app.recorder.select_notifications(start=1, limit=10_000)]
    # As two Kafka partitions might deliver them: each task's events in order, tasks reversed.
    by_task = [list(group) for _, group in itertools.groupby(
        sorted(events, key=lambda e: (str(e.originator_id), e.originator_version)), key=lambda e: e.originator_id)]
    store = SQLiteReadModelStore(tmp_path / "reordered.db")
    projection = AnalyticsProjection()
    store.ensure_tables(projection.name, projection.version, projection.tables)
    with store.transaction(projection.name) as tx:
        for position, event in enumerate(itertools.chain(*reversed(by_task)), start=1):
            projection.process(event, tx, position)
        tx.advance(len(events))
    assert analytics_rows(store) == analytics_rows(system.store)
    store.close()


def test_analytics_rows_are_not_written_through_to_the_row_cache(system, settings):
    """They are only read by range queries: copying them to Redis would only slow the projection."""
    if settings.redis_url is None:
        pytest.skip("the row cache exists only with Redis (production backends)")
    scenario(system)
    catch_up(system)
    cache = system.reader.cache
    assert list(cache.redis.scan_iter(f"{cache.prefix}row:tasks:*"))
    assert not list(cache.redis.scan_iter(f"{cache.prefix}row:analytics_*"))


def test_an_old_event_delivered_again_changes_no_analytics_row(system):
    """At-least-once delivery: a task's creation or an earlier move arriving again is skipped."""
    s = scenario(system)
    catch_up(system)
    before = analytics_rows(system.store)
    a = s.tasks["A"]
    notifications = system.app.recorder.select_notifications(start=1, limit=10_000)
    events_of_a = [(n.id, e) for n in notifications
                   if (e := system.app.mapper.to_domain_event(n)).originator_id == a]
    projection = AnalyticsProjection()
    with system.store.transaction(projection.name) as tx:
        for position, event in events_of_a[:2]:  # Created, then the first move
            projection.process(event, tx, position)
    assert analytics_rows(system.store) == before
