"""Spark (pyspark, local mode): same members as DuckDB, and atomic runs on files."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

from segsql import Project
from segsql.run.runner import RunError
from segsql.starter.scaffold import create_project
from tests import engines
from tests.conftest import REQUIRE_ALL, write_files

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def require_spark() -> None:
    problems = []
    try:
        import pyspark  # noqa: F401
    except ImportError:
        problems.append("pyspark is not installed: pip install 'segsql[spark]'")
    if shutil.which("java") is None or subprocess.run(["java", "-version"], capture_output=True, check=False).returncode:
        problems.append("Java is not installed: apt-get install openjdk-17-jre-headless")
    if problems:
        if REQUIRE_ALL:
            pytest.fail("; ".join(problems) + " (SEGSQL_REQUIRE_ALL=1)")
        pytest.skip("; ".join(problems))


def spark_config(duck_config: str) -> str:
    """The starter config on Spark: sources read from Parquet exports of the same tables."""
    config = duck_config.replace("connection:\n  type: duckdb\n  path: data/demo.duckdb        # `segsql demo` fills it; "
                                 ":memory: also works\n",
                                 "connection:\n  type: spark\n  master: local[2]\n  warehouse: spark-warehouse\n")
    for table in engines.TABLES:
        config = config.replace(f"    table: {table}\n", f"    path: data/parquet/{table}.parquet\n")
    return config


def copy_as_parquet(duck_root: Path, database: Path, root: Path) -> Path:
    """The DuckDB project's files in `root`, its demo tables as Parquet in root/data/parquet."""
    shutil.copytree(duck_root, root, ignore=shutil.ignore_patterns("data"))
    (root / "data" / "parquet").mkdir(parents=True)
    connection = duckdb.connect(str(database), read_only=True)
    for table in engines.TABLES:
        connection.execute(f"COPY {table} TO '{root / 'data' / 'parquet' / table}.parquet' (FORMAT parquet)")
    connection.close()
    return root


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Project]:
    require_spark()
    duck_root = tmp_path_factory.mktemp("duck") / "p"
    create_project(duck_root)
    database = engines.build_demo(duck_root)
    spark_root = copy_as_parquet(duck_root, database, tmp_path_factory.mktemp("spark") / "p")
    (spark_root / "segsql.yml").write_text(spark_config((duck_root / "segsql.yml").read_text()))
    return Project.load(duck_root, as_of=engines.AS_OF), Project.load(spark_root, as_of=engines.AS_OF)


def test_every_starter_segment_has_the_same_members(projects: tuple[Project, Project]) -> None:
    duck, spark = projects
    on_duckdb, on_spark = engines.memberships(duck), engines.memberships(spark)
    differences = {name: (sorted(on_duckdb[name] - on_spark[name])[:5], sorted(on_spark[name] - on_duckdb[name])[:5])
                   for name in on_duckdb if on_duckdb[name] != on_spark[name]}
    assert not differences
    assert sum(len(m) for m in on_duckdb.values()) > 1000


def test_results_and_runs_are_readable_through_spark_sql(projects: tuple[Project, Project]) -> None:
    _, spark = projects
    spark.run(select=["enterprise_dach"])
    assert spark.size("enterprise_dach") == len(spark.members("enterprise_dach"))
    with spark.engine() as engine:
        from sqlglot import exp

        statuses = engine.fetchall(exp.select("status").from_("segsql.runs"))
        members = engine.fetchall(exp.select(exp.func("count", exp.Star())).from_("segsql.membership").where(
            exp.column("segment").eq(exp.Literal.string("enterprise_dach"))))
    assert ("success",) in statuses and members[0][0] == spark.size("enterprise_dach")


def test_a_failing_run_leaves_the_pointer_and_results(projects: tuple[Project, Project]) -> None:
    _, spark = projects
    spark.run(select=["enterprise_dach", "dach_users"])
    pointer_file = spark.root / "spark-warehouse" / "segsql" / "current.json"
    before = pointer_file.read_text()
    sizes = (spark.size("enterprise_dach"), spark.size("dach_users"))
    write_files(spark.root, {"segments_sql/zz_fails.sql": "{{ config(entity='account') }}\n"
                             "SELECT a.account_id, CAST(1 AS INT) / CAST(a.employees - a.employees AS INT) AS boom "
                             "FROM {{ source('accounts') }} AS a"})
    broken = Project.load(spark.root, as_of=engines.AS_OF)
    broken_config = broken.config.model_copy(update={})
    assert broken_config.connection.type == "spark"
    with pytest.raises(RunError):
        broken.run(select=["enterprise_dach", "dach_users", "zz_fails"])
    (spark.root / "segments_sql" / "zz_fails.sql").unlink()
    assert pointer_file.read_text() == before
    assert (spark.size("enterprise_dach"), spark.size("dach_users")) == sizes
    records = [json.loads(p.read_text()) for p in (spark.root / "spark-warehouse" / "segsql" / "runs").glob("*.json")]
    assert any(r["status"] == "failed" for r in records)


def test_history_on_spark_matches_duckdb(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The SCD-2 history rewritten per run on Parquet gives the same stays as DuckDB's UPDATEs."""
    require_spark()
    roots = {}
    for engine in ("duckdb", "spark"):
        root = tmp_path_factory.mktemp(f"history_{engine}")
        connection = ("{type: duckdb, path: data.duckdb}" if engine == "duckdb"
                      else "{type: spark, master: 'local[1]', warehouse: wh}")
        source = "{table: accounts}" if engine == "duckdb" else "{path: accounts.parquet}"
        write_files(root, {"segsql.yml": f"connection: {connection}\nsources:\n  accounts: {source}\n"
                                         "entities:\n  account: {key: account_id, source: accounts}\n"
                                         "privacy: {history_retention_months: 6}\n",
                           "segments_sql/active.sql": "{{ config(entity='account') }}\n"
                           "SELECT a.account_id FROM {{ source('accounts') }} AS a WHERE a.active"})
        roots[engine] = root
    timelines: dict[str, list[list[int]]] = {}
    for engine, root in roots.items():
        runs = []
        for active in ([1, 2, 3], [2, 3, 4], [1, 3, 4], [1, 3, 4]):  # 1 leaves and re-enters; 2 leaves
            database = duckdb.connect(str(root / "data.duckdb") if engine == "duckdb" else ":memory:")
            database.execute("CREATE OR REPLACE TABLE accounts AS SELECT range AS account_id, "
                             f"range IN ({', '.join(map(str, active))}) AS active FROM range(1, 6)")
            if engine == "spark":
                database.execute(f"COPY accounts TO '{root / 'accounts.parquet'}' (FORMAT parquet)")
            database.close()
            project = Project.load(root, as_of=engines.AS_OF)
            project.run()
            runs.append(project.changes("active")[["entered", "exited", "size"]].values.tolist()[-1])
        timelines[engine] = runs
        project = Project.load(root, as_of=engines.AS_OF)
        assert project.members_at("active", "2099-01-01") == ["1", "3", "4"]
    assert timelines["spark"] == timelines["duckdb"] == [[3, 0, 3], [1, 1, 3], [1, 1, 3], [0, 0, 3]]
    older = Project.load(roots["spark"], as_of="2026-01-01").run()  # point-in-time: timeline untouched
    assert older.segments[0].point_in_time
    assert Project.load(roots["spark"], as_of=engines.AS_OF).members_at("active", "2099-01-01") == ["1", "3", "4"]


def test_split_rfm_cohorts_profiles_clusters_propensity_agree(projects: tuple[Project, Project]) -> None:
    """split() assigns every key to the same group, rfm() gives the same scores, and cohorts,
    profiles, clusters and propensity read the same numbers as on DuckDB."""
    duck, spark = projects
    engines.assert_methods_agree(duck, spark)


def test_forget_rewrites_results_and_history_on_spark(projects: tuple[Project, Project]) -> None:
    _, spark = projects
    names = ["dach_users", "power_users", "onboarding_experiment"]
    spark.run(select=names)
    key = str(spark.members("dach_users").user_id.iloc[0])
    removed = spark.forget("user", key, reason="DSR-7").rows_removed
    assert removed >= 2  # the result row and its history stay at least
    for name in names:
        assert key not in {str(k) for k in spark.members(name).iloc[:, 0]}, name
    with spark.engine() as engine:
        from sqlglot import exp

        from segsql.engines import storage

        left = engine.fetchall(exp.select(exp.func("count", exp.Star())).from_(storage.table("history"))
                               .where(exp.column("entity_key").eq(exp.Literal.string(key))))[0][0]
        members = engine.fetchall(exp.select(exp.func("count", exp.Star())).from_(storage.table("membership"))
                                  .where(exp.column("entity_key").eq(exp.Literal.string(key))))[0][0]
    assert (left, members) == (0, 0)
    records = [json.loads(p.read_text()) for p in (spark.root / "spark-warehouse" / "segsql" / "erasures").glob("*.json")]
    assert records and records[-1]["reason"] == "DSR-7" and key not in json.dumps(records)


def test_a_job_over_the_time_limit_is_cancelled_and_results_kept(projects: tuple[Project, Project]) -> None:
    """limits.query_seconds on Spark: the job is cancelled at the deadline; the last results stand."""
    _, spark = projects
    root = spark.root
    config = (root / "segsql.yml").read_text()
    before = Project.load(root, as_of=engines.AS_OF).size("power_users") if (root / "spark-warehouse").exists() else None
    slow = ("{{ config(entity='account') }}\nSELECT a.account_id FROM {{ source('accounts') }} AS a, "
            "{{ source('accounts') }} AS b, {{ source('accounts') }} AS c, {{ source('accounts') }} AS d "
            "WHERE (a.account_id * 7 + b.account_id * 13 + c.account_id * 3 + d.account_id) % 1000003 = 999999")
    write_files(root, {"segments_sql/zz_slow.sql": slow, "segsql.yml": config + "limits: {query_seconds: 3}\n"})
    try:
        with pytest.raises(RunError) as caught:
            Project.load(root, as_of=engines.AS_OF).run(select=["zz_slow"])
        assert "ran longer than 3 s" in caught.value.message
    finally:
        (root / "segments_sql" / "zz_slow.sql").unlink()
        (root / "segsql.yml").write_text(config)
    if before is not None:  # read with the normal limits: on a loaded machine a size query can take 3 s
        assert Project.load(root, as_of=engines.AS_OF).size("power_users") == before


def test_qualify_with_a_qualified_column_runs_on_spark_with_duckdb_members(projects: tuple[Project, Project]) -> None:
    duck, spark = projects
    segment = ("{{ config(entity='user') }}\nSELECT u.user_id FROM {{ source('users') }} AS u\n"
               "QUALIFY ROW_NUMBER() OVER (PARTITION BY u.account_id ORDER BY u.signup_date DESC, u.user_id) = 1 "
               "AND u.role = 'admin'")
    members = []
    for project in (duck, spark):
        path = project.root / "segments_sql" / "zz_newest_admin.sql"
        path.write_text(segment)
        try:
            Project.load(project.root, as_of=engines.AS_OF).run(select=["zz_newest_admin"])
            members.append(set(Project.load(project.root, as_of=engines.AS_OF).members("zz_newest_admin").user_id))
        finally:
            path.unlink()
    assert members[0] == members[1] and len(members[0]) > 10
