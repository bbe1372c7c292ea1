"""Point-in-time by construction: evaluated as of D, a segment sees only what was known at D.

The property (issue #17): for every starter segment and several past dates, membership as of D
on the full demo data equals membership as of D on a copy of the data truncated to what was
known at D, on DuckDB, Postgres and Spark. The truncation below is written independently of
segsql's filters (day comparisons instead of "< next midnight", rows rewritten instead of
filtered), so a wrong filter shows up as a difference.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from segsql import ConfigError, Project
from segsql.config.models import Source, load_project_config
from segsql.demo.generate import generate
from segsql.starter.scaffold import create_project
from tests import engines
from tests.conftest import AS_OF, ProjectFactory, write_files

DATES = [dt.date(2026, 11, 22), dt.date(2026, 10, 31), dt.date(2026, 10, 1), dt.date(2026, 8, 15),
         dt.date(2026, 3, 1)]
DUCK_CONNECTION = ("connection:\n  type: duckdb\n  path: data/demo.duckdb        # `segsql demo` fills it; "
                   ":memory: also works\n")
PASSWORD_ENV = "SEGSQL_TEST_PGPASSWORD"


# -- the independent truncation ------------------------------------------------------------
def _day(column: str) -> str:
    return f"CAST({column} AS DATE)"


def truncation(table: str, source: Source, day: dt.date) -> str:
    """DuckDB SQL for `table` as it was at the end of `day` (what a warehouse held then)."""
    when = f"DATE '{day.isoformat()}'"
    time = source.time
    if time is None:
        return f"SELECT * FROM {table}"
    later = {**{known: known for known in time.known_at.values()}, **time.known_at}
    replaced = [f"CASE WHEN {_day(known)} <= {when} THEN {column} END AS {column}"
                for column, known in later.items()]
    if time.valid_to is not None:  # a version still open at D had no end yet
        replaced.append(f"CASE WHEN {_day(time.valid_to)} > {when} THEN NULL ELSE {time.valid_to} END "
                        f"AS {time.valid_to}")
    star = f"* REPLACE ({', '.join(replaced)})" if replaced else "*"
    column = time.event or time.snapshot or time.valid_from
    return f"SELECT {star} FROM {table} WHERE {column} IS NULL OR {_day(str(column))} <= {when}"


def write_truncated(full: Path, config_root: Path, day: dt.date, target: Path) -> None:
    """A DuckDB file holding every source table of the project truncated to `day`."""
    config = load_project_config(config_root)
    target.parent.mkdir(parents=True, exist_ok=True)
    connection = duckdb.connect(str(target))
    try:
        connection.execute(f"ATTACH '{full}' AS full_data (READ_ONLY)")
        tables = {source.table: source for source in config.sources.values() if source.table}
        for table in engines.TABLES:
            query = truncation(f"full_data.{table}", tables[table], day) if table in tables else \
                f"SELECT * FROM full_data.{table}"
            connection.execute(f"CREATE TABLE {table} AS {query}")
    finally:
        connection.close()


def membership(project: Project, day: dt.date) -> dict[str, frozenset[str]]:
    """segment -> member keys as of `day`, all segments in one query (one job on Spark)."""
    variant = project.with_options(as_of=day)
    parts = []
    for name in variant.select():
        key = variant.config.entities[variant.compiled(name).entity].key
        parts.append(exp.select(exp.Literal.string(name).as_("segment"),
                                exp.cast(exp.column(key), exp.DataType.Type.VARCHAR).as_("member"))
                     .from_(variant.compiler.tree(name).subquery("m")))
    union: exp.Query = parts[0]
    for part in parts[1:]:
        union = exp.union(union, part, distinct=False)
    with variant.engine() as engine:
        engine.prepare_sources()  # file sources become views (Spark)
        rows = engine.fetchall(union)
    found: dict[str, set[str]] = {name: set() for name in variant.select()}
    for segment, member in rows:
        found[segment].add(str(member))
    return {name: frozenset(members) for name, members in found.items()}


def assert_same(full: dict[str, frozenset[str]], truncated: dict[str, frozenset[str]], day: dt.date) -> None:
    differing = {name: (sorted(full[name] - truncated[name])[:3], sorted(truncated[name] - full[name])[:3])
                 for name in full if full[name] != truncated[name]}
    assert not differing, (day, differing)


# -- fixtures: the demo, full and truncated, on each engine ---------------------------------
@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[dt.date, Path]]:
    """The starter project on the demo data, and a truncated copy of the data per date."""
    root = tmp_path_factory.mktemp("pit") / "p"
    create_project(root)
    database = engines.build_demo(root)
    copies = {day: root / "data" / f"as_of_{day:%Y%m%d}.duckdb" for day in DATES}
    for day, path in copies.items():
        write_truncated(database, root, day, path)
    return root, copies


def project_on(root: Path, copy_to: Path, connection: str) -> Project:
    """The starter project (same segments and sources) with another connection."""
    if copy_to.exists():
        shutil.rmtree(copy_to)
    shutil.copytree(root, copy_to, ignore=shutil.ignore_patterns("data"))
    config = (root / "segsql.yml").read_text()
    (copy_to / "segsql.yml").write_text(config.replace(DUCK_CONNECTION, connection))
    return Project.load(copy_to, as_of=engines.AS_OF)


def writable_copy(root: Path, tmp_path: Path) -> Project:
    """The demo project on its own copy of the data, for tests that write runs."""
    shutil.copy(root / "data" / "demo.duckdb", tmp_path / "own.duckdb")
    return project_on(root, tmp_path / "p", f"connection:\n  type: duckdb\n  path: {tmp_path / 'own.duckdb'}\n")


def test_property_on_duckdb(demo: tuple[Path, dict[dt.date, Path]], tmp_path: Path) -> None:
    root, copies = demo
    full = Project.load(root, as_of=engines.AS_OF)
    seen = {}
    for day, path in copies.items():
        truncated = project_on(root, tmp_path / f"t{day:%Y%m%d}", f"connection:\n  type: duckdb\n  path: {path}\n")
        on_full = membership(full, day)
        assert_same(on_full, membership(truncated, day), day)
        seen[day] = tuple(sorted(on_full.items()))
    # not vacuous: every date has members, and other ones (total sizes may coincide, members do not)
    assert all(any(m for _, m in members) for members in seen.values()) and len(set(seen.values())) == len(DATES)


def test_without_time_semantics_the_past_leaks(demo: tuple[Path, dict[dt.date, Path]], tmp_path: Path) -> None:
    """The same comparison with the declarations removed differs: the property is not vacuous."""
    root, copies = demo
    undeclared = tmp_path / "undeclared"
    shutil.copytree(root, undeclared, ignore=shutil.ignore_patterns("data"))
    (undeclared / "data").symlink_to(root / "data")
    config = (root / "segsql.yml").read_text()
    lines = [line for line in config.splitlines() if not line.strip().startswith("time:")]
    (undeclared / "segsql.yml").write_text("\n".join(lines) + "\npoint_in_time: off\n")
    day = dt.date(2026, 10, 1)
    truncated = project_on(root, tmp_path / "t", f"connection:\n  type: duckdb\n  path: {copies[day]}\n")
    leaky = membership(Project.load(undeclared, as_of=engines.AS_OF), day)
    honest = membership(truncated, day)
    leaking = {name for name in leaky if leaky[name] != honest[name]}
    assert {"enterprise_dach", "dormant_users", "active_customers"} <= leaking, leaking


@pytest.mark.postgres
@pytest.mark.slow
def test_property_on_postgres(demo: tuple[Path, dict[dt.date, Path]], tmp_path: Path) -> None:
    import psycopg

    from tests.pg import DATABASE, PostgresServer, copy_duckdb_tables, require_postgres

    require_postgres()
    root, copies = demo
    os.environ[PASSWORD_ENV] = "s3cret-pw"
    server = PostgresServer().start()
    try:
        copy_duckdb_tables(root / "data" / "demo.duckdb", server, engines.TABLES)
        full = project_on(root, tmp_path / "full", server.config_yaml(PASSWORD_ENV))
        for day, path in copies.items():
            dbname = f"as_of_{day:%Y%m%d}"
            with psycopg.connect(**server.params("postgres"), autocommit=True) as connection:
                connection.execute(f"CREATE DATABASE {dbname}")
            copy_duckdb_tables(path, server, engines.TABLES, dbname=dbname)
            connection_yaml = server.config_yaml(PASSWORD_ENV).replace(f"dbname: {DATABASE}", f"dbname: {dbname}")
            truncated = project_on(root, tmp_path / dbname, connection_yaml)
            assert_same(membership(full, day), membership(truncated, day), day)
    finally:
        server.cleanup()


@pytest.mark.spark
@pytest.mark.slow
def test_property_on_spark(demo: tuple[Path, dict[dt.date, Path]], tmp_path: Path) -> None:
    """Spark evaluates the full data as of each date; the truncated copies are evaluated on
    DuckDB (Spark loads each dataset slowly, and DuckDB = truncated is shown above), so the
    point-in-time filters are what Spark runs."""
    from tests.test_spark import require_spark, spark_config

    require_spark()
    root, copies = demo
    folder = tmp_path / "spark"
    shutil.copytree(root, folder, ignore=shutil.ignore_patterns("data"))
    (folder / "data" / "parquet").mkdir(parents=True)
    connection = duckdb.connect(str(root / "data" / "demo.duckdb"), read_only=True)
    for table in engines.TABLES:
        connection.execute(f"COPY {table} TO '{folder / 'data' / 'parquet' / table}.parquet' (FORMAT parquet)")
    connection.close()
    (folder / "segsql.yml").write_text(spark_config((root / "segsql.yml").read_text()))
    full = Project.load(folder, as_of=engines.AS_OF)
    for day, path in copies.items():
        truncated = project_on(root, tmp_path / f"t{day:%Y%m%d}", f"connection:\n  type: duckdb\n  path: {path}\n")
        assert_same(membership(full, day), membership(truncated, day), day)


# -- the demo's own history is consistent ---------------------------------------------------
def test_account_history_today_is_the_accounts_table(tmp_path: Path) -> None:
    today = dt.date(2026, 11, 30)
    database = tmp_path / "demo.duckdb"
    generate(database, scale=0.3, seed=5, today=today)
    columns = ("account_id, name, industry, employees, employee_band, country, region, plan_tier, signup_date, arr, "
               "status, churned_at")
    connection = duckdb.connect(str(database), read_only=True)
    try:
        current = (f"SELECT {columns} FROM account_history WHERE valid_from <= DATE '{today}' "
                   f"AND (valid_to IS NULL OR valid_to > DATE '{today}')")
        assert connection.execute(f"SELECT count(*) FROM ({current} EXCEPT ALL SELECT {columns} FROM accounts)"
                                  ).fetchone() == (0,)
        assert connection.execute(f"SELECT count(*) FROM (SELECT {columns} FROM accounts EXCEPT ALL {current})"
                                  ).fetchone() == (0,)
        # versions of one account never overlap and leave no gap after signup
        gaps = connection.execute("""SELECT count(*) FROM (SELECT valid_to, lead(valid_from) OVER
            (PARTITION BY account_id ORDER BY valid_from) AS next FROM account_history) WHERE valid_to IS DISTINCT
            FROM next""").fetchone()
        assert gaps == (0,)
        assert connection.execute("SELECT count(DISTINCT status) FROM account_history").fetchone()[0] == 4
    finally:
        connection.close()


def test_every_starter_source_declares_time_semantics(starter_project: Path) -> None:
    config = load_project_config(starter_project)
    assert all(not source.timeless for source in config.sources.values())
    assert Project.load(starter_project, as_of=AS_OF).validate() == []


# -- declarations, warnings and lints -------------------------------------------------------
EVENTS = """\
dialect: duckdb
{extra}
sources:
  accounts:
    table: accounts
    static: true
    columns: {{account_id: BIGINT, region: VARCHAR, signup_date: DATE}}
  events:
    table: events
{time}
    columns: {{event_id: BIGINT, account_id: BIGINT, occurred_at: TIMESTAMP, kind: VARCHAR}}
entities:
  account: {{key: account_id, source: accounts}}
"""
CFG = "{{ config(entity='account') }}\n"
RECENT = CFG + ("SELECT e.account_id FROM {{ source('events') }} AS e\n"
                "WHERE e.occurred_at >= {{ days_ago(30) }}\nGROUP BY e.account_id")


def events_config(time: str = "", extra: str = "") -> str:
    return EVENTS.format(time=f"    time: {time}" if time else "", extra=extra)


def test_undeclared_source_warns_once_and_an_open_window_at_its_line(make_project: ProjectFactory) -> None:
    other = CFG + "SELECT e.account_id FROM {{ source('events') }} AS e GROUP BY e.account_id"
    project = make_project({"recent": RECENT, "other": other}, config=events_config())
    assert project.validate() == []
    messages = [(w.message, w.path, w.line) for w in project.warnings]
    undeclared = [m for m in messages if "`events` declares no time semantics" in m[0]]
    assert len(undeclared) == 1
    [window] = [m for m in messages if "no upper bound" in m[0]]
    assert window[0].startswith("`e.occurred_at` has a lower bound") and window[1:] == ("segments_sql/recent.sql", 3)


def test_point_in_time_error_mode_and_declared_sources(make_project: ProjectFactory) -> None:
    strict = make_project({"recent": RECENT}, config=events_config(extra="point_in_time: error"))
    [error] = strict.validate()
    assert "declares no time semantics" in error.message and error.path == "segments_sql/recent.sql"
    declared = make_project({"recent": RECENT}, config=events_config("{event: occurred_at}",
                                                                     "point_in_time: error"))
    assert declared.validate() == [] and declared.warnings == []
    bounded = CFG + ("SELECT e.account_id FROM {{ source('events') }} AS e\n"
                     "WHERE {{ last_n_days('e.occurred_at', 30) }}\nGROUP BY e.account_id")
    lint_free = make_project({"recent": bounded}, config=events_config())  # same file, rewritten
    assert lint_free.validate() == []
    assert not [w for w in lint_free.warnings if "no upper bound" in w.message]


def test_current_columns_are_flagged_only_in_the_past(make_project: ProjectFactory) -> None:
    segment = CFG + "SELECT e.account_id, MAX(e.kind) AS kind FROM {{ source('events') }} AS e GROUP BY 1"
    config = events_config("{event: occurred_at, current: [kind]}")
    assert make_project({"s": segment}, config=config).warnings == []
    past = make_project({"s": segment}, config=config, as_of=dt.date.fromisoformat(str(AS_OF)) - dt.timedelta(days=10))
    past.validate()
    [warning] = past.warnings
    assert "holds the latest value of events.kind" in warning.message and warning.line == 2


@pytest.mark.parametrize(("time", "message"), [
    ("{event: occurred_at, snapshot: occurred_at}", "exactly one of"),
    ("{valid_from: occurred_at}", "go together"),
    ("{event: occured_at}", "time column `occured_at` is not one of its columns"),
    ("{event: occurred_at, known_at: {kind: nope}}", "time column `nope`"),
])
def test_bad_time_declarations_name_the_key(make_project: ProjectFactory, time: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        make_project({}, config=events_config(time))
    assert raised.value.path == "segsql.yml" and raised.value.line


def test_static_and_time_together_are_refused(make_project: ProjectFactory) -> None:
    config = events_config("{event: occurred_at}").replace("    table: events\n", "    table: events\n    static: true\n")
    with pytest.raises(ConfigError, match="either `static: true` or has `time:`"):
        make_project({}, config=config)


# -- generated data: boundaries, late rows, SCD-2 intervals touching D -------------------------
BASE = dt.datetime(2026, 6, 1)
GENERATED = """\
dialect: duckdb
sources:
  accounts:
    table: accounts
    time: {valid_from: valid_from, valid_to: valid_to}
    columns: {account_id: BIGINT, tier: VARCHAR, valid_from: DATE, valid_to: DATE}
  events:
    table: events
    time: {event: occurred_at, known_at: {confirmed_at: confirmed_at}}
    columns: {event_id: BIGINT, account_id: BIGINT, occurred_at: TIMESTAMP, confirmed_at: TIMESTAMP}
  balances:
    table: balances
    time: {snapshot: taken_on}
    columns: {account_id: BIGINT, taken_on: DATE, balance: DOUBLE}
entities:
  account: {key: account_id, source: accounts}
"""
SEGMENT = CFG + """\
SELECT a.account_id, a.tier, COUNT(e.event_id) AS events, COUNT(e.confirmed_at) AS confirmed,
       MAX(b.balance) AS balance
FROM {{ source('accounts') }} AS a
LEFT JOIN {{ source('events') }} AS e ON e.account_id = a.account_id
LEFT JOIN {{ source('balances') }} AS b ON b.account_id = a.account_id
GROUP BY a.account_id, a.tier
"""
minutes = st.integers(min_value=-3 * 1440, max_value=3 * 1440)
days = st.integers(min_value=-4, max_value=4)


@st.composite
def histories(draw: st.DrawFn) -> dict[str, list[tuple[object, ...]]]:
    accounts, events, balances = [], [], []
    for account in range(1, draw(st.integers(1, 4)) + 1):
        start = draw(days)
        for version, length in enumerate(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))):
            end = start + length
            is_last = version == 2 or draw(st.booleans())
            accounts.append((account, f"t{version}", BASE.date() + dt.timedelta(days=start),
                             None if is_last else BASE.date() + dt.timedelta(days=end)))
            if is_last:
                break
            start = end
        for offset, late in draw(st.lists(st.tuples(minutes, st.one_of(st.none(), minutes)), max_size=4)):
            at = BASE + dt.timedelta(minutes=offset)
            events.append((len(events) + 1, account, at, None if late is None else at + dt.timedelta(minutes=abs(late))))
        for taken in draw(st.lists(days, max_size=3, unique=True)):
            balances.append((account, BASE.date() + dt.timedelta(days=taken), float(taken)))
    return {"accounts": accounts, "events": events, "balances": balances}


def _load(connection: duckdb.DuckDBPyConnection, data: dict[str, list[tuple[object, ...]]]) -> None:
    shapes = {"accounts": "account_id BIGINT, tier VARCHAR, valid_from DATE, valid_to DATE",
              "events": "event_id BIGINT, account_id BIGINT, occurred_at TIMESTAMP, confirmed_at TIMESTAMP",
              "balances": "account_id BIGINT, taken_on DATE, balance DOUBLE"}
    for table, shape in shapes.items():
        connection.execute(f"CREATE OR REPLACE TABLE {table} ({shape})")
        if data[table]:
            marks = ", ".join("?" * len(data[table][0]))
            connection.executemany(f"INSERT INTO {table} VALUES ({marks})", data[table])


def _oracle(data: dict[str, list[tuple[object, ...]]], day: dt.date) -> set[tuple[object, ...]]:
    """The segment's rows as of `day`, computed in Python from the definitions."""
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
    snapshots = [row for row in data["balances"] if row[1] <= day]
    last = max((row[1] for row in snapshots), default=None)
    rows = set()
    for account, tier, start, stop in data["accounts"]:
        if not (start <= day and (stop is None or stop > day)):
            continue
        seen = [e for e in data["events"] if e[1] == account and e[2] < end]
        confirmed = [e for e in seen if e[3] is not None and e[3] < end]
        balance = [b[2] for b in snapshots if b[0] == account and b[1] == last]
        rows.add((account, tier, len(seen), len(confirmed), max(balance) if balance else None))
    return rows


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("generated")
    write_files(root, {"segsql.yml": GENERATED + "connection: {type: duckdb, path: data.duckdb}\n",
                       "segments_sql/seg.sql": SEGMENT})
    yield root


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=histories(), offset=days)
def test_generated_histories_match_the_definitions(generated: Path, data: dict[str, list[tuple[object, ...]]],
                                                   offset: int) -> None:
    day = BASE.date() + dt.timedelta(days=offset)
    connection = duckdb.connect(str(generated / "data.duckdb"))
    try:
        _load(connection, data)
    finally:
        connection.close()
    project = Project.load(generated, as_of=day)
    with project.engine() as engine:
        found = {tuple(row) for row in engine.fetchall(project.compiler.tree("seg"))}
    assert found == _oracle(data, day)


# -- docs/point-in-time.md: the worked example runs and prints what the page says --------------
def naive_query(project: Project, name: str) -> exp.Query:
    """The segment as a template author without time semantics would get it: today's account
    states (the current `accounts` table) and no filters on the other sources."""
    from segsql.compile import pointintime

    tree = pointintime.unwrap(project.compiler.tree(name))
    for table in tree.find_all(exp.Table):
        if table.name == "account_history":
            table.set("this", exp.to_identifier("accounts"))
    return tree


def test_worked_example_in_the_docs(tmp_path: Path) -> None:
    import contextlib
    import io
    import re

    from segsql.demo.project import prepare_demo

    page = (Path(__file__).parent.parent / "docs" / "point-in-time.md").read_text()
    code = re.search(r"```python\n(.*?)```", page, re.S)
    printed = re.search(r"```text\n(.*?)```", page, re.S)
    assert code and printed
    root = tmp_path / "segsql-demo"
    prepare_demo(root, as_of="2026-11-30")[0].close()
    output = io.StringIO()
    with contextlib.chdir(tmp_path), contextlib.redirect_stdout(output):
        exec(code.group(1), {"naive_query": naive_query})  # our own docs page
    assert output.getvalue() == printed.group(1)


# -- where it matters: cohorts split by the members segments had when each cohort formed ---------
def test_cohorts_by_segment_use_membership_when_the_cohort_formed(demo: tuple[Path, dict[dt.date, Path]],
                                                                  tmp_path: Path) -> None:
    root, _ = demo
    project = writable_copy(root, tmp_path)
    project.run(select=["high_mrr_accounts"])
    survivors = project.cohorts("account", "mrr_monthly", "month", segments=["high_mrr_accounts"],
                                membership="current").frame
    assert (survivors.retention == 1.0).all()  # today's members are, by definition, still paying
    honest = project.cohorts("account", "mrr_monthly", "month", segments=["high_mrr_accounts"]).frame
    assert (honest.retention < 1.0).any()
    cohort = dt.date(2026, 3, 1)
    formed = project.with_options(as_of=dt.date(2026, 3, 31))
    with formed.engine() as engine:
        members = {row[0] for row in engine.fetchall(formed.compiler.tree("high_mrr_accounts"))}
        first_month = {row[0] for row in engine.fetchall(exp.select("account_id").from_("mrr_monthly")
                                                         .group_by("account_id")
                                                         .having(exp.func("min", exp.column("month")).eq(
                                                             exp.cast(exp.Literal.string("2026-03-01"), "DATE"))))}
    [size] = honest[(honest.cohort == cohort) & (honest.period_index == 0)].cohort_size
    assert size == len(members & first_month) > 0


def test_compare_as_of_a_past_date_measures_the_members_of_that_date(demo: tuple[Path, dict[dt.date, Path]],
                                                                     tmp_path: Path) -> None:
    root, _ = demo
    project = writable_copy(root, tmp_path)
    project.run(select=["active_customers"])
    day = dt.date(2026, 10, 1)
    then = project.with_options(as_of=day).compare(["active_customers"], ["mrr"])
    now = project.compare(["active_customers"], ["mrr"])
    expected = len(membership(project, day)["active_customers"])
    assert int(then.to_frame().iloc[0]["members"]) == expected != int(now.to_frame().iloc[0]["members"])


def test_known_at_hides_the_time_it_became_known_and_refs_are_not_sources(make_project: ProjectFactory,
                                                                           tmp_path: Path) -> None:
    """Review findings: the `when` column of known_at leaked its future date; a segment named like
    a source table got that source's filter when ref()'d."""
    config = events_config("{event: occurred_at, known_at: {kind: confirmed_at}}").replace(
        "occurred_at: TIMESTAMP, kind: VARCHAR}", "occurred_at: TIMESTAMP, kind: VARCHAR, confirmed_at: DATE}")
    config += "connection: {type: duckdb, path: data.duckdb}\n"
    confirmed = CFG + ("SELECT e.account_id FROM {{ source('events') }} AS e WHERE e.confirmed_at IS NOT NULL "
                       "GROUP BY e.account_id")
    events = CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a"  # a segment called `events`
    downstream = CFG + "SELECT e.account_id FROM {{ ref('events') }} AS e"
    project = make_project({"confirmed": confirmed, "events": events, "downstream": downstream}, config=config)
    connection = duckdb.connect(str(tmp_path / "data.duckdb"))
    connection.execute("CREATE TABLE accounts AS SELECT 1 AS account_id, 'DACH' AS region, DATE '2026-01-01' AS signup_date")
    connection.execute("CREATE TABLE events AS SELECT 1 AS event_id, 1 AS account_id, TIMESTAMP '2026-09-01' AS "
                       "occurred_at, 'x' AS kind, DATE '2026-10-20' AS confirmed_at")
    connection.close()
    before, after = (project.with_options(as_of=day) for day in (dt.date(2026, 10, 2), dt.date(2026, 10, 20)))
    with before.engine() as engine:
        assert engine.fetchall(before.compiler.tree("confirmed")) == []
        assert engine.fetchall(before.compiler.tree("downstream")) == [(1,)]
    with after.engine() as engine:
        assert engine.fetchall(after.compiler.tree("confirmed")) == [(1,)]


def test_schema_qualified_columns_of_a_declared_source(make_project: ProjectFactory, tmp_path: Path) -> None:
    config = events_config("{event: occurred_at}").replace("    table: events\n", "    table: analytics.events\n")
    config += "connection: {type: duckdb, path: data.duckdb}\n"
    segment = CFG + ("SELECT DISTINCT analytics.events.account_id FROM {{ source('events') }}\n"
                     "WHERE analytics.events.kind = 'x'")
    project = make_project({"qualified": segment}, config=config, as_of=dt.date(2026, 10, 2))
    connection = duckdb.connect(str(tmp_path / "data.duckdb"))
    connection.execute("CREATE SCHEMA analytics")
    connection.execute("CREATE TABLE analytics.events AS SELECT * FROM (VALUES (1, 1, TIMESTAMP '2026-10-02 23:59', "
                       "'x'), (2, 2, TIMESTAMP '2026-10-03 00:00', 'x')) AS t(event_id, account_id, occurred_at, kind)")
    connection.close()
    assert project.validate() == []
    with project.engine() as engine:
        assert engine.fetchall(project.compiler.tree("qualified")) == [(1,)]
    assert "CAST('2026-10-03 00:00:00' AS TIMESTAMP)" in project.compile("qualified")  # typed cut
    assert "CAST('2026-10-03 00:00:00' AS DATETIME)" in project.compile("qualified", "bigquery")


def test_lint_sees_through_casts_and_stars(make_project: ProjectFactory) -> None:
    cast = CFG + ("SELECT e.account_id FROM {{ source('events') }} AS e\n"
                  "WHERE CAST(e.occurred_at AS DATE) >= {{ days_ago(30) }}\nGROUP BY e.account_id")
    project = make_project({"recent": cast}, config=events_config())
    project.validate()
    assert [w.line for w in project.warnings if "no upper bound" in w.message] == [3]
    star = CFG + "SELECT * FROM {{ source('events') }} AS e"
    config = events_config("{event: occurred_at, current: [kind]}")
    past = make_project({"recent": star}, config=config, as_of=dt.date.fromisoformat(str(AS_OF)) - dt.timedelta(days=3))
    past.validate()
    [warning] = past.warnings
    assert "outputs kind of events" in warning.message and warning.line == 2


def test_readout_groups_are_the_members_assigned_when_the_experiment_started(
        demo: tuple[Path, dict[dt.date, Path]], tmp_path: Path) -> None:
    root, _ = demo
    project = writable_copy(root, tmp_path)
    project.run(select=["onboarding_experiment"])
    started = dt.date(2026, 10, 1)
    latest = project.readout("onboarding_experiment", ["feature_adoption"])
    at_start = project.readout("onboarding_experiment", ["feature_adoption"], start=started)
    expected = len(membership(project, started)["onboarding_experiment"])
    assert int(at_start.sizes.members.sum()) == expected < int(latest.sizes.members.sum())
    with pytest.raises(Exception, match="after the readout's as_of"):
        project.readout("onboarding_experiment", ["feature_adoption"], start=dt.date(2027, 1, 1))
