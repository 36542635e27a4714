"""Analytics routes against figures computed by hand from tests/analytics_history.py's scenario
(see its docstring for the timeline), on the embedded and the production backends."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta, timezone
from uuid import UUID

import pytest

from tests.analytics_history import write_scenario
from tests.e2e.helpers import assert_error, field_names, settings, signed_in  # noqa: F401 (fixture)

RANGE = {"from": "2026-03-02", "to": "2026-03-10"}
STATUSES = ["todo", "in_progress", "review", "done", "cancelled", "in_review"]


@pytest.fixture
def history(client, system):
    owner = signed_in(client, name="Analyst")
    scenario = write_scenario(system.app, UUID(owner.id))
    return owner, scenario


def read(owner, scenario, metric: str, **params: str):
    response = owner.get(f"/api/v1/projects/{scenario.project_id}/analytics/{metric}", params=params,
                         headers={"X-Consistency-Position": str(scenario.position)})
    assert response.status_code == 200, response.text
    return response


def test_cumulative_flow_counts_tasks_per_status_at_the_end_of_each_day(history):
    owner, scenario = history
    body = read(owner, scenario, "cumulative-flow", **RANGE).json()
    assert body["meta"]["from"] == "2026-03-02" and body["meta"]["to"] == "2026-03-10"
    # The current workflow in order, then in_review: removed from the workflow, yet H was in it.
    assert body["meta"]["statuses"] == [
        {"name": "todo", "category": "todo", "inWorkflow": True},
        {"name": "in_progress", "category": "in_progress", "inWorkflow": True},
        {"name": "review", "category": "in_progress", "inWorkflow": True},
        {"name": "done", "category": "done", "inWorkflow": True},
        {"name": "cancelled", "category": "cancelled", "inWorkflow": True},
        {"name": "in_review", "category": "in_progress", "inWorkflow": False},
    ]
    # todo, in_progress, review, done, cancelled, in_review at the end of each day:
    expected = {
        "2026-03-02": [1, 1, 0, 1, 0, 0],  # A in progress, B todo, C done
        "2026-03-03": [2, 1, 0, 1, 0, 1],  # D, H todo; B in progress; A in review
        "2026-03-04": [1, 1, 0, 2, 1, 0],  # A done, D cancelled
        "2026-03-05": [1, 2, 0, 1, 1, 1],  # A re-opened, E todo, H in review
        "2026-03-06": [0, 0, 0, 3, 1, 1],  # A, B done; E deleted (gone from every status)
        "2026-03-07": [0, 0, 0, 3, 1, 1],
        "2026-03-08": [0, 0, 0, 3, 1, 1],
        "2026-03-09": [0, 0, 0, 4, 1, 1],  # F created, started and done the same day
        "2026-03-10": [0, 0, 1, 4, 1, 0],  # H moved from the removed in_review to review
    }
    assert {row["date"]: [row["counts"][s] for s in STATUSES] for row in body["data"]} == expected


def test_burndown_tracks_scope_remaining_completions_and_points_per_day(history):
    owner, scenario = history
    body = read(owner, scenario, "burndown", **RANGE).json()
    columns = ["scope", "remaining", "done", "scopeAdded", "scopeRemoved", "completed", "reopened",
               "scopePoints", "remainingPoints", "pointsAdded", "pointsRemoved"]
    expected = {
        "2026-03-02": [3, 2, 1, 3, 0, 1, 0, 9.0, 8.0, 9.0, 0.0],  # C created done: added and completed
        "2026-03-03": [5, 4, 1, 2, 0, 0, 0, 11.0, 10.0, 2.0, 0.0],  # D (no estimate) and H added
        "2026-03-04": [4, 2, 2, 0, 1, 1, 0, 11.0, 7.0, 0.0, 0.0],  # A done; D cancelled leaves scope
        "2026-03-05": [5, 4, 1, 1, 0, 0, 1, 16.0, 15.0, 5.0, 0.0],  # A re-opened; B 5 -> 8; E added
        "2026-03-06": [4, 1, 3, 0, 1, 2, 0, 14.0, 2.0, 0.0, 2.0],  # A, B done; E deleted
        "2026-03-07": [4, 1, 3, 0, 0, 0, 0, 14.0, 2.0, 0.0, 0.0],
        "2026-03-08": [4, 1, 3, 0, 0, 0, 0, 14.0, 2.0, 0.0, 0.0],
        "2026-03-09": [5, 1, 4, 1, 0, 1, 0, 16.0, 2.0, 2.0, 0.0],  # F added and done
        "2026-03-10": [5, 1, 4, 0, 0, 0, 0, 16.0, 2.0, 0.0, 0.0],
    }
    assert {row["date"]: [row[c] for c in columns] for row in body["data"]} == expected


def test_throughput_counts_each_task_once_in_the_iso_week_of_its_last_completion(history):
    owner, scenario = history
    body = read(owner, scenario, "throughput", **RANGE).json()
    # W10: A (done again on 03-06; its first completion on 03-04 no longer counts), B, C. W11: F.
    assert body["data"] == [
        {"week": "2026-W10", "weekStart": "2026-03-02", "completed": 3},
        {"week": "2026-W11", "weekStart": "2026-03-09", "completed": 1},
    ]
    assert (body["meta"]["weeksFrom"], body["meta"]["weeksTo"]) == ("2026-03-02", "2026-03-15")
    # A range inside one week is widened to the whole week.
    one_day = read(owner, scenario, "throughput", **{"from": "2026-03-04", "to": "2026-03-04"}).json()
    assert one_day["data"] == [{"week": "2026-W10", "weekStart": "2026-03-02", "completed": 3}]


def test_cycle_time_runs_from_first_start_to_the_completion_that_counts(history):
    owner, scenario = history
    body = read(owner, scenario, "cycle-time", **RANGE).json()
    # A: 03-02 12:00 -> 03-06 09:00 = 93 h; B: 03-03 14:00 -> 03-06 10:00 = 68 h; F: 6 h.
    # C went straight to done: no cycle time. Nearest rank over [6, 68, 93].
    assert body["data"] == {"count": 3, "withoutStart": 1, "p50": 68.0, "p85": 93.0, "p95": 93.0,
                            "mean": 55.667, "min": 6.0, "max": 93.0}
    assert body["meta"]["unit"] == "hours"
    friday = read(owner, scenario, "cycle-time", **{"from": "2026-03-06", "to": "2026-03-06"}).json()
    assert friday["data"] == {"count": 2, "withoutStart": 0, "p50": 68.0, "p85": 93.0, "p95": 93.0,
                              "mean": 80.5, "min": 68.0, "max": 93.0}
    # A's first completion (03-04) was taken back when it was re-opened.
    wednesday = read(owner, scenario, "cycle-time", **{"from": "2026-03-04", "to": "2026-03-04"}).json()
    assert wednesday["data"] == {"count": 0, "withoutStart": 0, "p50": None, "p85": None, "p95": None,
                                 "mean": None, "min": None, "max": None}


@pytest.mark.parametrize("metric", ["cumulative-flow", "burndown", "throughput", "cycle-time"])
def test_csv_export_has_a_header_row_and_the_same_figures_as_json(history, metric):
    owner, scenario = history
    response = read(owner, scenario, metric, format="csv", **RANGE)
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["x-projection-position"]
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    body = read(owner, scenario, metric, **RANGE).json()
    if metric == "cumulative-flow":
        flat = [{"date": r["date"], **r["counts"]} for r in body["data"]]
    elif metric == "cycle-time":
        flat = [body["data"]]
    else:
        flat = body["data"]
    as_text = [{k: "" if v is None else str(v) for k, v in row.items()} for row in flat]
    assert rows == as_text


def test_without_a_range_the_last_30_days_ending_today_are_served(history):
    owner, scenario = history
    before = datetime.now(timezone.utc).date()
    body = read(owner, scenario, "burndown").json()
    today = date.fromisoformat(body["meta"]["to"])
    assert today in (before, datetime.now(timezone.utc).date())  # the request may straddle midnight
    assert body["meta"]["from"] == (today - timedelta(days=29)).isoformat()
    assert len(body["data"]) == 30


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-13-01"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"from": "2026-03-02T00:00:00Z"}, "from"),
        ({"from": "0999-01-01", "to": "0999-01-02"}, "from"),  # instants compare as text: 4-digit years
        ({"from": "2026-03-10", "to": "2026-03-02"}, "from"),
        ({"from": "2025-01-01", "to": "2026-01-02"}, "from"),  # 367 days of a daily series
        ({"format": "xml"}, "format"),
        ({"bucket": "week"}, "bucket"),
    ],
)
def test_bad_ranges_and_parameters_are_validation_errors(history, params, field):
    owner, scenario = history
    response = owner.get(f"/api/v1/projects/{scenario.project_id}/analytics/burndown", params=params,
                         headers={"X-Consistency-Position": str(scenario.position)})
    assert field in field_names(assert_error(response, 400, "VALIDATION_FAILED"))


def test_aggregate_metrics_accept_longer_ranges_than_daily_series(history):
    owner, scenario = history
    long_range = {"from": "2025-01-01", "to": "2026-03-10"}
    assert len(read(owner, scenario, "throughput", **long_range).json()["data"]) == 63
    assert read(owner, scenario, "cycle-time", **long_range).json()["data"]["count"] == 3


def test_analytics_of_a_project_are_hidden_from_non_members(history, client):
    _, scenario = history
    stranger = signed_in(client, name="Stranger")
    for metric in ("cumulative-flow", "burndown", "throughput", "cycle-time"):
        # Waiting for the scenario's position: the 404 is not merely a read model lagging behind.
        response = stranger.get(f"/api/v1/projects/{scenario.project_id}/analytics/{metric}",
                                headers={"X-Consistency-Position": str(scenario.position)})
        assert_error(response, 404, "NOT_FOUND")


def test_every_bad_parameter_is_reported_in_one_error(history):
    owner, scenario = history
    response = owner.get(f"/api/v1/projects/{scenario.project_id}/analytics/cumulative-flow",
                         params={"from": "2026-02-30", "to": "soon", "format": "pdf"},
                         headers={"X-Consistency-Position": str(scenario.position)})
    assert sorted(field_names(assert_error(response, 400, "VALIDATION_FAILED"))) == ["format", "from", "to"]
