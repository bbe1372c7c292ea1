"""Backfill on DuckDB: N dates in one call write the history N runs `--as-of D` write; real runs'
history is never overwritten unless asked; a failed backfill leaves nothing; `history --at`
answers between backfilled dates."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from segsql import EngineError, Project, SegsqlError
from segsql.cli import cli
from segsql.engines import timeline
from segsql.run.backfill import BackfillConflictError, check_dates, schedule
from segsql.run.runner import RunError
from segsql.starter.scaffold import create_project
from tests import backfills, engines
from tests.conftest import write_files

CONFIG = """\
connection: {type: duckdb, path: data.duckdb}
sources:
  accounts: {table: accounts}
entities:
  account: {key: account_id, source: accounts}
"""
# accounts sign up one a week from 2026-01-01; `recent` = signed up in the 60 days up to as_of
RECENT = ("{{ config(entity='account') }}\nSELECT a.account_id FROM {{ source('accounts') }} AS a\n"
          "WHERE a.signup_date <= {{ days_ago(0) }} AND a.signup_date > {{ days_ago(60) }}")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write_files(tmp_path, {"segsql.yml": CONFIG, "segments_sql/recent.sql": RECENT})
    connection = duckdb.connect(str(tmp_path / "data.duckdb"))
    connection.execute("CREATE TABLE accounts AS SELECT range AS account_id, "
                       "DATE '2026-01-01' + CAST(range * 7 AS INT) AS signup_date FROM range(1, 50)")
    connection.close()
    return tmp_path


def managed(root: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the history and run records, and the names of segsql's tables."""
    connection = duckdb.connect(str(root / "data.duckdb"), read_only=True)
    try:
        tables = sorted(r[0] for r in connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'segsql'").fetchall())
        found = {table: sorted(connection.execute(f"SELECT * FROM segsql.{table}").fetchall(), key=repr)
                 for table in ("history", "runs", "run_segments") if table in tables}
        return {"tables": [(t,) for t in tables], **found}
    finally:
        connection.close()


@pytest.fixture(scope="module")
def starter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("starter") / "p"
    create_project(root)
    engines.build_demo(root)
    return root


def test_backfill_equals_runs_as_of_each_date_for_every_starter_segment(
        starter: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backfilled, ran = (Project.load(shutil.copytree(starter, tmp_path / side), as_of=engines.AS_OF)
                       for side in ("backfilled", "ran"))
    names = backfilled.select()
    backfills.assert_backfill_equals_runs(backfilled, ran, names, monkeypatch)
    with pytest.raises(SegsqlError, match="power_users"):
        backfilled.members("power_users")  # a backfill writes history, not current membership


def test_backfill_before_real_runs_joins_their_timeline(root: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Real runs in September; a backfill of the summer afterwards gives the timeline a single
    run per date from July would have given (stays that continue into the real runs are one stay)."""
    other = shutil.copytree(root, tmp_path / "other")
    summer, autumn = [dt.date(2026, 7, 1), dt.date(2026, 8, 1)], [dt.date(2026, 9, 1), dt.date(2026, 10, 1)]
    backfills.run_on_dates(Project.load(root), autumn, ["recent"], monkeypatch)
    Project.load(root).backfill(summer[0], summer[-1], "month")
    backfills.run_on_dates(Project.load(other), [*summer, *autumn], ["recent"], monkeypatch)
    assert backfills.stays(Project.load(root), ["recent"]) == backfills.stays(Project.load(other), ["recent"])
    changes = Project.load(root).changes("recent")
    assert changes["status"].tolist() == ["success (backfill)"] * 2 + ["success"] * 2
    assert changes[["entered", "exited"]].values.tolist() == \
        Project.load(other).changes("recent")[["entered", "exited"]].values.tolist()


def test_real_history_in_the_window_is_refused_then_replaced_on_request(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = Project.load(root)
    # the run of 04-11 changes nothing (no one signs up on Saturdays): no stay starts or ends then
    days = [dt.date(2026, 3, 10), dt.date(2026, 4, 10), dt.date(2026, 4, 11)]
    backfills.run_on_dates(project, days, ["recent"], monkeypatch)
    assert project.changes("recent")[["entered", "exited"]].values.tolist()[-1] == [0, 0]
    before = managed(root)
    with pytest.raises(BackfillConflictError) as refused:
        project.backfill("2026-03-01", "2026-06-01", "month")
    assert "`recent` on 2026-03-10, 2026-04-10, 2026-04-11" in refused.value.message and "--replace" in (refused.value.hint or "")
    assert managed(root) == before
    project.backfill("2026-03-01", "2026-06-01", "month", replace=True)
    day = dt.date(2026, 4, 20)  # after the replaced real run of 2026-04-10: the backfill's 2026-04-01 answers
    assert project.members_at("recent", day) == _recent_members(dt.date(2026, 4, 1))
    assert project.history_at("recent", day).backfilled  # the real runs' rows no longer answer
    statuses = dict(project.changes("recent")[["as_of", "status"]].astype(str).values.tolist())
    assert "2026-04-10" not in statuses and statuses["2026-04-01"] == "success (backfill)"


def _recent_members(day: dt.date) -> list[str]:
    keys = [k for k in range(1, 50) if day - dt.timedelta(days=60) < dt.date(2026, 1, 1) + dt.timedelta(days=7 * k)
            <= day]
    return sorted(str(k) for k in keys)


def test_a_backfill_twice_is_the_same_as_once(root: Path) -> None:
    project = Project.load(root)
    project.backfill("2026-02-01", "2026-06-01", "month")
    once = managed(root)
    project.backfill("2026-02-01", "2026-06-01", "month")
    twice = managed(root)
    assert [r[1:] for r in _strip_runs(twice["history"])] == [r[1:] for r in _strip_runs(once["history"])]
    assert len(twice["runs"]) == len(once["runs"]) == 5 and len(twice["run_segments"]) == 5


def _strip_runs(rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """History rows without run ids (each backfill has its own)."""
    return sorted(((r[0], r[2], r[3], r[4], r[7], r[8]) for r in rows), key=repr)


def test_a_failed_or_interrupted_backfill_leaves_everything_as_it_was(root: Path) -> None:
    project = Project.load(root)
    project.backfill("2026-02-01", "2026-03-01", "month")
    before = managed(root)

    def stop(day: dt.date, number: int, count: int) -> None:
        if number == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        project.backfill("2026-02-15", "2026-06-15", "month", progress=stop)
    assert managed(root) == before
    # a key problem on one date only (duplicates from June on) fails the whole backfill
    late = " WHERE {{ days_ago(0) }} >= DATE '2026-06-01'"
    write_files(root, {"segments_sql/recent.sql": RECENT + f"\nUNION ALL SELECT 99{late} UNION ALL SELECT 99{late}"})
    with pytest.raises(RunError, match=r"duplicate `account_id`.*as of 2026-06-15; nothing was backfilled"):
        Project.load(root).backfill("2026-04-15", "2026-07-15", "month")
    assert managed(root) == before
    # an engine error on one date (a cast that fails from June on) names the segment and date
    boom = "CAST(CASE WHEN {{ days_ago(0) }} >= DATE '2026-06-01' THEN 'x' ELSE '1' END AS INT)"
    write_files(root, {"segments_sql/recent.sql": RECENT + f" AND {boom} = a.account_id * 0 + 1"})
    with pytest.raises(EngineError, match=r"segment `recent` as of 2026-06-15: .*nothing was backfilled"):
        Project.load(root).backfill("2026-04-15", "2026-07-15", "month")
    assert managed(root) == before


def test_history_at_between_backfilled_dates_from_the_cli(root: Path) -> None:
    runner = CliRunner()
    done = runner.invoke(cli, ["backfill", "--project", str(root), "--from", "2026-03-01", "--to", "2026-05-01",
                               "--every", "month", "--quiet"])
    assert done.exit_code == 0, done.output
    assert "2026-04-01" in done.output
    between = runner.invoke(cli, ["history", "recent", "--project", str(root), "--at", "2026-04-20", "--format",
                                  "jsonl"])
    assert between.exit_code == 0, between.output
    assert [line.split('"')[3] for line in between.output.splitlines()] == _recent_members(dt.date(2026, 4, 1))
    table = runner.invoke(cli, ["history", "recent", "--project", str(root), "--at", "2026-04-20"])
    assert "from the backfilled run backfill-20260401-" in table.output
    early = runner.invoke(cli, ["history", "recent", "--project", str(root), "--at", "2026-02-01"])
    assert "nothing is recorded for recent at the end of 2026-02-01: its first run is as of 2026-03-01" in early.output


def test_the_date_of_a_backfill_is_its_last_microsecond() -> None:
    assert timeline.stamp(dt.date(2026, 3, 31)) == dt.datetime(2026, 3, 31, 23, 59, 59, 999999)
    assert schedule(dt.date(2026, 1, 31), dt.date(2026, 3, 31), "month") == [
        dt.date(2026, 1, 31), dt.date(2026, 2, 28), dt.date(2026, 3, 31)]
    assert schedule(dt.date(2026, 1, 1), dt.date(2026, 1, 20), "week") == [
        dt.date(2026, 1, 1), dt.date(2026, 1, 8), dt.date(2026, 1, 15)]


@pytest.mark.parametrize(("arguments", "message"), [
    (["--from", "2026-03-01", "--to", "2026-02-01"], "--to 2026-02-01 is before --from 2026-03-01"),
    (["--from", "2026-03-01", "--to", "2999-01-01", "--every", "day"], "is not in the past"),
    (["--from", "March", "--to", "2026-02-01"], "--from `March` is not a date"),
    (["--from", "2026-03-01", "--to", "2026-04-01", "--as-of", "2026-01-01"], "--as-of would change nothing"),
])
def test_bad_backfill_arguments_are_usage_errors(root: Path, arguments: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["backfill", "--project", str(root), *arguments])
    assert result.exit_code == 2 and message in result.output, result.output


def test_dates_older_than_the_history_kept_are_refused() -> None:
    with pytest.raises(Exception, match=r"older than the history kept .*nothing before 2026-05-02"):
        check_dates([dt.date(2026, 1, 1)], 6, today=dt.date(2026, 11, 2))


def test_the_worked_example_in_the_docs_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import re
    import shlex

    text = (Path(__file__).resolve().parent.parent / "docs" / "backfill.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block
    monkeypatch.chdir(tmp_path)
    runner, outputs = CliRunner(), []
    for line in block.group(1).splitlines():
        arguments = shlex.split(line)
        assert arguments[0] == "segsql"
        result = runner.invoke(cli, arguments[1:])
        assert result.exit_code == 0, (line, result.output)
        outputs.append(result.output)
    assert "success (backfill)" in outputs[2] and "2026-05-31" in outputs[2]
    assert "(from the backfilled run backfill-20260531-" in outputs[3] and "as of 2026-05-31)" in outputs[3]
