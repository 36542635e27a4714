"""Tamper evidence: every stored event is hash-chained as it is written, and `taskflow audit verify`
names the first position where a stored event was altered, removed or reordered — on the real
SQLite file and on a real PostgreSQL database, and on export files."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from commands.models import RegisterUser
from commands.service import TaskFlowApplication
from infra.audit_log import StoredAuditLog, opened_event_log
from infra.audit_verify import Verdict, verify_export, verify_log
from infra.composition import build_system, event_store_env
from infra.event_chain import ChainAheadOfLog
from infra.settings import Settings
from tests.integration.history import ctx, generate_history
from tests.integration.test_group_commit import in_one_batch

REPO = Path(__file__).resolve().parents[2]


class StoredRows:
    """Edits the event store's tables directly, as someone with database access could."""

    def __init__(self, settings: Settings):
        self.settings = settings
        if settings.database_url:
            self.events, self.chain, self.position, self.mark = (
                "taskflow_events", "taskflow_events_chain", "notification_id", "%s")
        else:
            self.events, self.chain, self.position, self.mark = "stored_events", "stored_events_chain", "rowid", "?"

    @contextmanager
    def _db(self) -> Iterator[Any]:
        if self.settings.database_url:
            with psycopg.connect(self.settings.database_url, autocommit=True) as conn:
                yield conn
        else:
            conn = sqlite3.connect(self.settings.data_dir / "events.db", isolation_level=None)
            try:
                yield conn
            finally:
                conn.close()

    def run(self, sql: str, *params: Any) -> list[tuple]:
        with self._db() as db:
            cursor = db.execute(sql.replace("?", self.mark), params)
            return cursor.fetchall() if cursor.description else []

    def edit_state(self, position: int) -> None:
        (state,), = self.run(f"SELECT state FROM {self.events} WHERE {self.position} = ?", position)
        self.run(f"UPDATE {self.events} SET state = ? WHERE {self.position} = ?",
                 bytes(state).replace(b"req-", b"REQ-", 1), position)

    def delete(self, position: int) -> None:
        self.run(f"DELETE FROM {self.events} WHERE {self.position} = ?", position)

    def swap(self, a: int, b: int) -> None:
        for old, new in ((a, -1), (b, a), (-1, b)):
            self.run(f"UPDATE {self.events} SET {self.position} = ? WHERE {self.position} = ?", new, old)

    def unlink_all(self) -> None:
        self.run(f"DELETE FROM {self.chain}")

    def count(self, table: str) -> int:
        return self.run(f"SELECT COUNT(*) FROM {table}")[0][0]


def verify(settings: Settings) -> Verdict:
    with opened_event_log(TaskFlowApplication.name, event_store_env(settings)) as log:
        return verify_log(log)


def verify_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TASKFLOW_DATA_DIR": str(settings.data_dir)}
    env.pop("DATABASE_URL", None)
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    return subprocess.run([sys.executable, "-m", "infra.cli", "audit", "verify", *args],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=60)


@pytest.fixture
def written(system) -> int:
    """A realistic history; returns its head position."""
    return generate_history(system.app, tasks=12, changes=40)


def test_an_untouched_log_verifies_as_a_real_command(settings, system, written):
    rows = StoredRows(settings)
    assert rows.count(rows.chain) == rows.count(rows.events) == written

    result = verify_cli(settings)

    assert result.returncode == 0, result.stderr
    (head_link,), = rows.run(f"SELECT link FROM {rows.chain} WHERE position = ?", written)
    assert result.stdout.strip() == (
        f"ok: {written} events checked; head position {written}, link {bytes(head_link).hex()}"
    )


def test_an_edited_event_is_named_by_its_position_as_a_real_command(settings, system, written):
    StoredRows(settings).edit_state(17)

    result = verify_cli(settings)

    assert result.returncode == 1
    assert result.stderr.startswith("FAILED at position 17: altered:"), result.stderr


def test_a_removed_event_is_named_by_its_position(settings, system, written):
    StoredRows(settings).delete(9)

    verdict = verify(settings)

    assert (verdict.bad_position, verdict.problem, verdict.checked) == (9, "removed", 8)


def test_an_event_removed_with_its_link_is_named_by_its_position(settings, system, written):
    rows = StoredRows(settings)
    rows.delete(9)
    rows.run(f"DELETE FROM {rows.chain} WHERE position = ?", 9)

    verdict = verify(settings)

    assert (verdict.bad_position, verdict.problem, verdict.checked) == (9, "removed", 8)


def test_two_swapped_events_are_reported_as_reordered_at_the_first(settings, system, written):
    StoredRows(settings).swap(12, 20)

    verdict = verify(settings)

    assert (verdict.bad_position, verdict.problem) == (12, "reordered")
    assert "written at position 20" in verdict.message


def test_a_chain_recomputed_after_an_edit_passes_alone_but_not_against_a_recorded_anchor(settings, system,
                                                                                          written):
    recorded = verify(settings)
    rows = StoredRows(settings)
    rows.edit_state(5)
    # Someone who knows the scheme recomputes every link from the edited event on.
    rows.run(f"DELETE FROM {rows.chain} WHERE position >= ?", 5)
    system.app.recorder.chain_unlinked_events()
    assert verify(settings).ok

    result = verify_cli(settings, "--anchor", f"{recorded.head_position}:{recorded.head_link.hex()}")

    assert result.returncode == 1
    assert result.stderr.startswith(f"FAILED at position {written}: rewritten:"), result.stderr
    assert verify_cli(settings, "--anchor", "12:zz").returncode == 2


def test_an_event_added_behind_taskflows_back_is_unchained(settings, system, written):
    rows = StoredRows(settings)
    rows.run(f"DELETE FROM {rows.chain} WHERE position = ?", written)

    verdict = verify(settings)

    assert (verdict.bad_position, verdict.problem) == (written, "unchained")


def test_events_of_one_group_commit_are_chained(settings, system):
    app = system.app
    outcomes = in_one_batch(system, [
        lambda i=i: app.execute(app.register_user(RegisterUser(email=f"b{i}@example.com", password="password123", name="B"),
                                      ctx(None, i)))
        for i in range(5)
    ])
    positions = sorted(o.position for o in outcomes)
    # Each registration writes two events (user and e-mail claim), all in one transaction.
    assert positions == [2, 4, 6, 8, 10]

    verdict = verify(settings)
    assert verdict.ok, verdict.summary()
    assert (verdict.checked, verdict.head_position) == (10, 10)


def test_a_store_from_before_the_chain_is_chained_on_start_up(settings, system, written):
    rows = StoredRows(settings)
    rows.unlink_all()
    assert verify(settings).problem == "unchained"
    system.app.close()

    reopened = build_system(settings)
    try:
        assert rows.count(rows.chain) == written
        generate_history(reopened.app, seed=8, tasks=2, changes=3)
        verdict = verify(settings)
        assert verdict.ok, verdict.summary()
        assert verdict.checked == rows.count(rows.events) > written
    finally:
        reopened.close()


def test_the_chain_skips_positions_postgresql_never_committed(tmp_path, settings, system, written):
    if not settings.database_url:
        pytest.skip("SQLite positions have no gaps")
    rows = StoredRows(settings)
    # What a rolled-back insert leaves behind: sequence numbers no event will ever have.
    rows.run("SELECT setval(pg_get_serial_sequence('taskflow_events', 'notification_id'), ?)", written + 5)
    generate_history(system.app, seed=9, tasks=2, changes=3)
    (first_after_gap,), = rows.run(f"SELECT MIN(notification_id) FROM {rows.events} WHERE notification_id > ?",
                                   written)
    assert first_after_gap == written + 6

    assert verify(settings).ok
    (previous,), = rows.run(f"SELECT previous_position FROM {rows.chain} WHERE position = ?", first_after_gap)
    assert previous == written


# --- export files -----------------------------------------------------------------------------------


def _export(system, path: Path) -> list[str]:
    audit = StoredAuditLog(system.app)
    lines = b"".join(audit.export(1, audit.head_position())).decode().splitlines()
    path.write_text("\n".join(lines) + "\n")
    return lines


def test_an_export_verifies_and_carries_what_recomputing_needs(tmp_path, settings, system, written):
    path = tmp_path / "export.jsonl"
    lines = _export(system, path)

    assert len(lines) == written
    first = json.loads(lines[0])
    assert set(first) == {"position", "previousPosition", "aggregateId", "version", "topic", "state",
                          "previousLink", "link"}
    assert (first["position"], first["previousPosition"], first["previousLink"]) == (1, None, "0" * 64)
    result = verify_cli(settings, "--file", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"ok: {written} events checked; head position {written}, link ")
    assert verify(settings).head_link.hex() == json.loads(lines[-1])["link"]


def test_an_export_with_an_edited_removed_or_reordered_line_fails(tmp_path, settings, system, written):
    lines = _export(system, tmp_path / "export.jsonl")

    edited = list(lines)
    record = json.loads(edited[6])
    record["version"] += 1
    edited[6] = json.dumps(record)
    removed = lines[:10] + lines[11:]
    reordered = list(lines)
    reordered[4], reordered[8] = reordered[8], reordered[4]

    def check(changed: list[str]) -> Verdict:
        path = tmp_path / "changed.jsonl"
        path.write_text("\n".join(changed) + "\n")
        return verify_export(path)

    assert (check(edited).bad_position, check(edited).problem) == (7, "altered")
    assert (check(removed).bad_position, check(removed).problem) == (11, "removed")
    assert (check(reordered).bad_position, check(reordered).problem) == (9, "reordered")


def test_an_append_after_the_last_event_was_removed_is_refused_on_sqlite(settings, system, written):
    if settings.database_url:
        pytest.skip("PostgreSQL never reuses a position")
    StoredRows(settings).delete(written)

    with pytest.raises(ChainAheadOfLog):
        system.app.execute(system.app.register_user(RegisterUser(email="late@example.com", password="password123", name="Late"),
                                 ctx(None, 999)))

    assert (verify(settings).bad_position, verify(settings).problem) == (written, "removed")
