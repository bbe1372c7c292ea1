"""Running segments: membership contract, atomic runs (including SIGKILL), key checks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from segsql import Project
from segsql.run.runner import RunError, ValidationFailed
from tests.conftest import AS_OF, write_files

CONFIG = """\
connection: {type: duckdb, path: data.duckdb}
sources:
  accounts: {table: accounts}
  users: {table: users}
entities:
  account: {key: account_id, source: accounts}
  user: {key: user_id, source: users, parent: account}
"""
CFG = "{{ config(entity='account') }}\n"
BIG = CFG + "SELECT a.account_id, a.arr FROM {{ source('accounts') }} AS a WHERE a.arr >= {{ param('min_arr', 100) }}"
SMALL = CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a WHERE a.arr < 100"


def make(tmp_path: Path, segments: dict[str, str]) -> Project:
    connection = duckdb.connect(str(tmp_path / "data.duckdb"))
    connection.execute("CREATE OR REPLACE TABLE accounts AS SELECT range AS account_id, range * 10.0 AS arr FROM range(1, 21)")
    connection.execute("CREATE OR REPLACE TABLE users AS SELECT range AS user_id, range % 20 + 1 AS account_id FROM range(100, 160)")
    connection.close()
    write_files(tmp_path, {"segsql.yml": CONFIG})
    write_files(tmp_path, {f"segments_sql/{n}.sql": t for n, t in segments.items()})
    return Project.load(tmp_path, as_of=AS_OF)


def membership(root: Path) -> list[tuple[str, str, str]]:
    connection = duckdb.connect(str(root / "data.duckdb"), read_only=True)
    try:
        return connection.execute("SELECT segment, entity, entity_key FROM segsql.membership "
                                  "ORDER BY segment, CAST(entity_key AS INT)").fetchall()
    finally:
        connection.close()


def runs(root: Path) -> list[tuple[str, str, str | None]]:
    connection = duckdb.connect(str(root / "data.duckdb"), read_only=True)
    try:
        return connection.execute("SELECT run_id, status, error FROM segsql.runs ORDER BY started_at").fetchall()
    finally:
        connection.close()


def test_run_writes_the_membership_contract(tmp_path: Path) -> None:
    project = make(tmp_path, {"big": BIG, "small": SMALL})
    result = project.run()
    assert result.ok and [s.name for s in result.segments] == ["big", "small"]
    assert {s.name: s.rows for s in result.segments} == {"big": 11, "small": 9}
    assert result.segments[0].share == pytest.approx(11 / 20)
    rows = membership(tmp_path)
    assert rows[:2] == [("big", "account", "10"), ("big", "account", "11")] and len(rows) == 20
    assert project.size("big") == 11
    assert list(project.members("big").columns) == ["account_id", "arr"]
    assert project.members("big")["account_id"].tolist() == list(range(10, 21))
    assert project.members_arrow("small").num_rows == 9
    [(run_id, status, error)] = runs(tmp_path)
    assert (run_id, status, error) == (result.run_id, "success", None)


def test_rerun_replaces_only_the_selected_segments(tmp_path: Path) -> None:
    project = make(tmp_path, {"big": BIG, "small": SMALL})
    project.run()
    project.with_options(vars={"min_arr": 150}).run(select=["big"])
    rows = membership(tmp_path)
    assert sum(1 for r in rows if r[0] == "big") == 6 and sum(1 for r in rows if r[0] == "small") == 9


def test_a_failing_segment_leaves_membership_exactly_as_it_was(tmp_path: Path) -> None:
    project = make(tmp_path, {"big": BIG, "small": SMALL})
    project.run()
    before = membership(tmp_path)
    write_files(tmp_path, {"segments_sql/zz_broken.sql": CFG + "SELECT a.account_id, CAST('x' || a.arr AS INT) AS bad "
                                                             "FROM {{ source('accounts') }} AS a"})
    project = make(tmp_path, {"big": BIG.replace("100", "190"), "small": SMALL})
    with pytest.raises(RunError) as caught:
        project.run()
    assert "zz_broken" in caught.value.message and caught.value.hint == "membership is unchanged"
    assert membership(tmp_path) == before  # big was recomputed inside the rolled-back transaction
    assert [status for _, status, _ in runs(tmp_path)] == ["success", "failed"]


def test_nothing_runs_when_validation_fails(tmp_path: Path) -> None:
    project = make(tmp_path, {"big": BIG, "bad": CFG + "SELECT a.nope FROM {{ source('accounts') }} AS a"})
    with pytest.raises(ValidationFailed) as caught:
        project.run()
    assert [e.path for e in caught.value.errors] == ["segments_sql/bad.sql"]
    assert not duckdb.connect(str(tmp_path / "data.duckdb"), read_only=True).execute(
        "SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'segsql'").fetchone()[0]


def test_duplicate_keys_fail_the_run(tmp_path: Path) -> None:
    project = make(tmp_path, {"dup": CFG + "SELECT u.account_id FROM {{ source('users') }} AS u"})
    with pytest.raises(RunError, match=r"40 duplicate `account_id` value\(s\)"):
        project.run()


def test_null_keys_fail_the_run(tmp_path: Path) -> None:
    project = make(tmp_path, {"nulls": CFG + "SELECT CASE WHEN a.arr > 50 THEN a.account_id END AS account_id "
                                             "FROM {{ source('accounts') }} AS a"})
    with pytest.raises(RunError, match=r"5 row\(s\) with a NULL `account_id`"):
        project.run()


def test_dedupe_keeps_one_row_per_key_deterministically(tmp_path: Path) -> None:
    template = ("{{ config(entity='account', duplicates='dedupe') }}\n"
                "SELECT u.account_id, u.user_id FROM {{ source('users') }} AS u")
    project = make(tmp_path, {"dedup": template})
    assert project.run().segments[0].rows == 20
    members = project.members("dedup")
    assert members["user_id"].tolist()[:3] == [100, 101, 102]  # the smallest user per account


def test_a_killed_run_leaves_membership_intact_and_is_marked_failed(tmp_path: Path) -> None:
    slow = CFG + ("SELECT a.account_id, COUNT(*) AS n FROM {{ source('accounts') }} AS a, {{ source('users') }} AS u1, "
                  "{{ source('users') }} AS u2, {{ source('users') }} AS u3, {{ source('users') }} AS u4, "
                  "{{ source('users') }} AS u5 WHERE u1.user_id + u2.user_id + u3.user_id + u4.user_id + u5.user_id "
                  "<> a.account_id GROUP BY a.account_id")
    project = make(tmp_path, {"big": BIG, "small": SMALL, "zz_slow": slow})
    project.run(select=["big", "small"])
    before = membership(tmp_path)
    write_files(tmp_path, {"segments_sql/big.sql": BIG.replace("100", "190")})
    process = subprocess.Popen([sys.executable, "-m", "segsql", "run", "--project", str(tmp_path), "--as-of", AS_OF],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(4)  # validation and the fast segments take well under a second; zz_slow runs for minutes
    assert process.poll() is None, process.communicate()
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()  # reap it and close its pipes
    assert process.returncode == -signal.SIGKILL
    assert membership(tmp_path) == before
    assert [status for _, status, _ in runs(tmp_path)] == ["success", "running"]
    Project.load(tmp_path, as_of=AS_OF).run(select=["small"])
    statuses = runs(tmp_path)
    assert statuses[1][1:] == ("failed", "interrupted: the process stopped before the run finished")
    assert statuses[2][1] == "success"


def test_show_streams_and_limits(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from segsql.cli import cli

    project = make(tmp_path, {"big": BIG})
    project.run()
    result = CliRunner().invoke(cli, ["show", "big", "--project", str(tmp_path), "--format", "csv", "-n", "2"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ["account_id,arr", "10,100.0", "11,110.0"]
    assert "big: 11 account(s), 55.0% of 20" in result.stderr
    result = CliRunner().invoke(cli, ["show", "big", "--project", str(tmp_path), "--format", "jsonl", "--all"])
    assert len(result.stdout.splitlines()) == 11
    result = CliRunner().invoke(cli, ["show", "small", "--project", str(tmp_path)])
    assert result.exit_code == 2 and "unknown segment" in result.stderr


def test_show_before_any_run_says_what_to_do(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from segsql.cli import cli

    make(tmp_path, {"big": BIG})
    duckdb.connect(str(tmp_path / "data.duckdb")).close()
    result = CliRunner().invoke(cli, ["show", "big", "--project", str(tmp_path)])
    assert result.exit_code == 2 and "has no results yet" in result.stderr and "segsql run" in result.stderr


def test_show_masks_declared_pii_unless_unmasked(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from segsql.cli import cli

    make(tmp_path, {"emails": "{{ config(entity='account') }}\nSELECT a.account_id, 'ann@acme.example' AS email "
                              "FROM {{ source('accounts') }} AS a"})
    config = (tmp_path / "segsql.yml").read_text().replace("accounts: {table: accounts}",
                                                           "accounts: {table: accounts, pii: {email: email}}")
    (tmp_path / "segsql.yml").write_text(config)
    Project.load(tmp_path, as_of=AS_OF).run()
    for fmt in ("table", "csv", "json"):
        result = CliRunner().invoke(cli, ["show", "emails", "--project", str(tmp_path), "--format", fmt, "-n", "3"])
        assert result.exit_code == 0 and "ann@acme.example" not in result.stdout and "email:" in result.stdout
    clear = CliRunner().invoke(cli, ["show", "emails", "--project", str(tmp_path), "--format", "csv", "--unmask"])
    assert "ann@acme.example" in clear.stdout
