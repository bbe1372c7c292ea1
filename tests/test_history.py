"""SCD-2 membership history: entries, exits, re-entries, point-in-time reruns, kills."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from segsql import Project
from segsql.run.runner import RunError
from tests.conftest import write_files

CONFIG = """\
connection: {type: duckdb, path: data.duckdb}
sources:
  accounts: {table: accounts}
  users: {table: users}
entities:
  account: {key: account_id, source: accounts}
"""
SEGMENT = "{{ config(entity='account') }}\nSELECT a.account_id FROM {{ source('accounts') }} AS a WHERE a.active"


def set_active(root: Path, active: list[int]) -> None:
    connection = duckdb.connect(str(root / "data.duckdb"))
    connection.execute("CREATE OR REPLACE TABLE accounts AS SELECT range AS account_id, false AS active FROM range(1, 7)")
    connection.execute("CREATE OR REPLACE TABLE users AS SELECT 1 AS user_id, 1 AS account_id")
    if active:
        connection.execute(f"UPDATE accounts SET active = true WHERE account_id IN ({', '.join(map(str, active))})")
    connection.close()


def history_rows(root: Path) -> list[tuple]:
    connection = duckdb.connect(str(root / "data.duckdb"), read_only=True)
    try:
        return connection.execute("SELECT entity_key, valid_from, valid_to, run_id, closed_by_run FROM segsql.history "
                                  "WHERE segment = 'active' ORDER BY CAST(entity_key AS INT), valid_from").fetchall()
    finally:
        connection.close()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write_files(tmp_path, {"segsql.yml": CONFIG, "segments_sql/active.sql": SEGMENT})
    return tmp_path


def run(root: Path, active: list[int], as_of: str = "2026-11-23") -> str:
    set_active(root, active)
    return Project.load(root, as_of=as_of).run().run_id


def test_enter_leave_and_reenter(root: Path) -> None:
    first = run(root, [1, 2, 3])
    second = run(root, [2, 3, 4])      # 1 leaves, 4 enters
    third = run(root, [1, 2, 3, 4])    # 1 re-enters: a second stay
    rows = history_rows(root)
    stays = {}
    for key, _start, end, opened, closed in rows:
        stays.setdefault(key, []).append((opened, closed, end is None))
    assert stays["1"] == [(first, second, False), (third, None, True)]
    assert stays["2"] == [(first, None, True)] and stays["4"] == [(second, None, True)]
    current = [r for r in rows if r[2] is None]
    assert len(current) == len({r[0] for r in current}) == 4  # no duplicate current rows
    project = Project.load(root, as_of="2026-11-23")
    changes = project.changes("active")
    assert changes[["entered", "exited", "size"]].values.tolist() == [[3, 0, 3], [1, 1, 3], [1, 0, 4]]
    # at the instant of the second run, its result counts (stays are half-open)
    middle = rows[0][2]  # valid_to of key 1's first stay = the second run's time
    assert project.members_at("active", middle) == ["2", "3", "4"]
    assert project.members_at("active", middle - dt.timedelta(microseconds=1)) == ["1", "2", "3"]
    assert project.members_at("active", dt.date.today() + dt.timedelta(days=1)) == ["1", "2", "3", "4"]
    assert project.members_at("active", dt.date(2000, 1, 1)) == []


def test_no_gaps_between_runs(root: Path) -> None:
    run(root, [1, 2])
    run(root, [2])
    run(root, [2, 5])
    for _key, start, end, *_ in history_rows(root):
        assert end is None or end > start


def test_point_in_time_rerun_leaves_the_timeline(root: Path) -> None:
    run(root, [1, 2], as_of="2026-11-23")
    before = history_rows(root)
    set_active(root, [3])
    result = Project.load(root, as_of="2026-10-01").run()
    assert history_rows(root) == before
    assert result.segments[0].point_in_time
    connection = duckdb.connect(str(root / "data.duckdb"), read_only=True)
    status = connection.execute("SELECT status FROM segsql.run_segments WHERE run_id = ?", [result.run_id]).fetchone()
    connection.close()
    assert status == ("success (point-in-time)",)


def test_failed_run_does_not_touch_history(root: Path) -> None:
    run(root, [1, 2])
    before = history_rows(root)
    write_files(root, {"segments_sql/zz_bad.sql": "{{ config(entity='account') }}\n"
                       "SELECT a.account_id, CAST('x' AS INT) AS boom FROM {{ source('accounts') }} AS a"})
    set_active(root, [3, 4])
    with pytest.raises(RunError):
        Project.load(root, as_of="2026-11-23").run()
    assert history_rows(root) == before


def test_killed_run_leaves_history_consistent(root: Path) -> None:
    run(root, [1, 2])
    before = history_rows(root)
    slow = ("{{ config(entity='account') }}\nSELECT a.account_id, COUNT(*) AS n FROM {{ source('accounts') }} AS a, "
            "range(100000000) AS r(i), range(1000) AS s(j) GROUP BY a.account_id")
    write_files(root, {"segments_sql/zz_slow.sql": slow.replace("range(100000000) AS r(i), range(1000) AS s(j)",
                                                                "{{ source('users') }} AS u1, {{ source('users') }} AS u2")})
    set_active(root, [3])
    connection = duckdb.connect(str(root / "data.duckdb"))
    connection.execute("CREATE OR REPLACE TABLE users AS SELECT range AS user_id, 1 AS account_id FROM range(200000)")
    connection.close()
    process = subprocess.Popen([sys.executable, "-m", "segsql", "run", "--project", str(root), "--as-of", "2026-11-23"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(4)
    assert process.poll() is None
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert history_rows(root) == before


def test_forget_leaves_no_trace_of_the_key(tmp_path: Path) -> None:
    config = CONFIG.replace("entities:\n  account: {key: account_id, source: accounts}\n",
                            "entities:\n  account: {key: account_id, source: accounts}\n"
                            "  user: {key: user_id, source: users, parent: account}\n")
    write_files(tmp_path, {"segsql.yml": config, "segments_sql/active.sql": SEGMENT,
                           "segments_sql/people.sql": "{{ config(entity='user') }}\n"
                           "SELECT u.user_id, u.account_id FROM {{ source('users') }} AS u"})
    set_active(tmp_path, [1, 2])
    connection = duckdb.connect(str(tmp_path / "data.duckdb"))
    connection.execute("CREATE OR REPLACE TABLE users AS SELECT range + 424242 AS user_id, 1 AS account_id FROM range(3)")
    connection.close()
    project = Project.load(tmp_path, as_of="2026-11-23")
    project.run()
    removed = project.forget("user", "424243", reason="DSR-17").rows_removed
    assert removed == 3  # membership, history, segment__people
    connection = duckdb.connect(str(tmp_path / "data.duckdb"), read_only=True)
    tables = [r[0] for r in connection.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'segsql'").fetchall()]
    for table in tables:
        dump = connection.execute(f"SELECT * FROM segsql.{table}").fetchall()  # every managed table
        assert "424243" not in repr(dump), table
    erasure = connection.execute("SELECT entity, key_hash, reason, rows_removed FROM segsql.erasures").fetchall()
    connection.close()
    assert erasure[0][0] == "user" and erasure[0][2:] == ("DSR-17", 3) and "424243" not in erasure[0][1]
    assert project.members("people").user_id.tolist() == [424242, 424244]
    Project.load(tmp_path, as_of="2026-11-23").run()  # the next run works on what the source says


def test_retention_purges_old_closed_stays_on_run(tmp_path: Path) -> None:
    write_files(tmp_path, {"segsql.yml": CONFIG + "privacy: {history_retention_months: 6}\n",
                           "segments_sql/active.sql": SEGMENT})
    run(tmp_path, [1, 2])
    run(tmp_path, [2])  # 1 leaves: a closed stay
    run(tmp_path, [2, 3])  # 1 stays out; 3 enters
    connection = duckdb.connect(str(tmp_path / "data.duckdb"))
    connection.execute("UPDATE segsql.history SET valid_to = TIMESTAMP '2020-01-01', "
                       "valid_from = TIMESTAMP '2019-12-01' WHERE entity_key = '1'")
    connection.close()
    result = Project.load(tmp_path, as_of="2026-11-23").run()
    assert result.history_purged == 1
    keys = [row[0] for row in history_rows(tmp_path)]
    assert keys == ["2", "3"]  # open stays are never purged, whatever their age


def test_months_before_clamps_the_day() -> None:
    from segsql.engines.storage import months_before

    assert months_before(dt.datetime(2026, 3, 31, 12), 1) == dt.datetime(2026, 2, 28, 12)
    assert months_before(dt.datetime(2026, 1, 15), 13) == dt.datetime(2024, 12, 15)
