"""dbt projects as sources, and segments as dbt models (docs/dbt.md).

One real dbt-duckdb project (tests/fixtures/dbt_project: seeds -> staging -> marts, a source, a
snapshot) is built once per session with dbt-core (`dbt build` + `dbt docs generate`); segsql
projects on top of it validate offline against its catalog.json, run on the warehouse dbt
built, and compile into dbt models that dbt-duckdb builds with the same members."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from segsql import Project
from segsql.errors import ConfigError, SegsqlError, SelectionError, UsageError
from tests.conftest import AS_OF, REPO, REQUIRE_ALL, write_files

FIXTURE = REPO / "tests" / "fixtures" / "dbt_project"
DBT_TIMEOUT = 600  # seconds per dbt command (a loaded CI machine; a build takes ~10 s alone)

HIGH_VALUE = """\
{{ config(entity='customer', description='DACH customers with a lifetime value of 100 or more') }}
select customer_id, lifetime_value, email
from {{ dbt('customer_ltv') }}
where country in ('DE', 'AT', 'CH') and lifetime_value >= 100
"""
PAYING = """\
{{ config(entity='customer', description='DACH high-value customers with paid invoices') }}
select h.customer_id, h.lifetime_value, sum(i.amount) as paid_amount
from {{ ref('dach_high_value') }} as h
join {{ dbt_source('stripe', 'invoices') }} as i on i.customer_id = h.customer_id
where i.status = 'paid'
group by h.customer_id, h.lifetime_value
"""
SEGMENTS = {"segments_sql/dach_high_value.sql": HIGH_VALUE, "segments_sql/dach_paying.sql": PAYING}
HIGH_VALUE_BY_HAND = ("select customer_id from main.customer_ltv "
                      "where country in ('DE', 'AT', 'CH') and lifetime_value >= 100")
PAYING_BY_HAND = ("select distinct c.customer_id from main.customer_ltv c join stripe.invoices i using (customer_id) "
                  "where c.country in ('DE', 'AT', 'CH') and c.lifetime_value >= 100 and i.status = 'paid'")


# dbt commands run in one child process per call (dbt's start-up costs seconds), through its
# documented programmatic entry point; segsql itself never imports dbt.
DBT_SCRIPT = """
import json, sys
from dbt.cli.main import dbtRunner
runner = dbtRunner()
for args in json.loads(sys.argv[1]):
    result = runner.invoke(args)
    if not result.success:
        sys.exit(f"dbt {' '.join(args)} failed: {result.exception}")
"""


# dbt-core pins old versions of shared libraries (pathspec, protobuf): it lives in a venv of its own
# (.ci/run makes one and names its interpreter here), as in a team whose dbt has its own environment.
DBT_PYTHON = os.environ.get("SEGSQL_DBT_PYTHON") or sys.executable


DBT_PACKAGES = {"dbt-core": "'dbt-core>=1.10,<1.11'", "dbt-duckdb": "'dbt-duckdb>=1.10,<1.12'",
                "dbt-postgres": "'dbt-postgres>=1.9,<1.12'", "dbt-snowflake": "'dbt-snowflake>=1.10,<1.11'"}


def require_dbt(*adapters: str) -> None:
    """dbt-core and dbt-duckdb (and `adapters`, e.g. dbt-postgres) in the interpreter dbt runs
    with ($SEGSQL_DBT_PYTHON, else this one)."""
    wanted = ("dbt-core", "dbt-duckdb", *adapters)
    probe = (f"import importlib.metadata as m\nmissing = []\nfor d in {wanted!r}:\n"
             "    try: m.version(d)\n    except m.PackageNotFoundError: missing.append(d)\nprint(','.join(missing))")
    done = subprocess.run([DBT_PYTHON, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    missing = done.stdout.strip() if done.returncode == 0 else f"{DBT_PYTHON} does not run"
    if missing:
        message = (f"dbt is not installed ({missing}): make a venv with {' '.join(DBT_PACKAGES[d] for d in wanted)} "
                   "and set SEGSQL_DBT_PYTHON to its python (.ci/run does)")
        if REQUIRE_ALL:
            pytest.fail(message + " (SEGSQL_REQUIRE_ALL=1)")
        pytest.skip(message)


def run_dbt(project_dir: Path, *commands: list[str], target: str = "prod") -> None:
    """Run dbt `commands` in order in `project_dir` (profiles beside it) for `target`."""
    require_dbt()
    env = {**os.environ, "DO_NOT_TRACK": "1", "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
           "DBT_VERSION_CHECK": "false"}
    arguments = [[*command, "--profiles-dir", str(project_dir.parent), "--target", target, "--quiet"]
                 for command in commands]
    done = subprocess.run([DBT_PYTHON, "-c", DBT_SCRIPT, json.dumps(arguments)], cwd=project_dir, env=env,
                          capture_output=True, text=True, timeout=DBT_TIMEOUT, check=False)
    assert done.returncode == 0, f"dbt failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"


def profiles(folder: Path) -> None:
    """profiles.yml beside the dbt project: target `prod`, the warehouse a DuckDB file in `folder`."""
    (folder / "profiles.yml").write_text(
        "shop:\n  target: prod\n  outputs:\n    prod:\n      type: duckdb\n"
        f"      path: {json.dumps(str(folder / 'warehouse.duckdb'))}\n      threads: 1\n", encoding="utf-8")


@pytest.fixture(scope="session")
def dbt_built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with `analytics/` (the fixture dbt project, built, its artifacts in target/)
    and `warehouse.duckdb` (what dbt built). Tests copy what they change."""
    require_dbt()
    base = tmp_path_factory.mktemp("dbt")
    shutil.copytree(FIXTURE, base / "analytics", ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    profiles(base)
    run_dbt(base / "analytics", ["build"], ["docs", "generate"])
    return base


def segsql_project(base: Path, name: str, connection: str, files: dict[str, str] | None = None) -> Project:
    """A segsql project at base/name on top of base/analytics (the three lines of docs/dbt.md)."""
    root = base / name
    config = ("dbt: {project_dir: ../analytics, target: prod}\n"
              f"connection: {{type: duckdb, path: {connection}}}\n"
              "entities:\n  customer: {key: customer_id}\n")
    write_files(root, {"segsql.yml": config, **SEGMENTS, **(files or {})})
    return Project.load(root, as_of=AS_OF)


def own_copy(dbt_built: Path, tmp_path: Path) -> Path:
    """dbt_built's project and warehouse copied to `tmp_path`, for a test that writes to them."""
    shutil.copytree(dbt_built / "analytics", tmp_path / "analytics")
    shutil.copy(dbt_built / "warehouse.duckdb", tmp_path / "warehouse.duckdb")
    profiles(tmp_path)
    return tmp_path


def members(project: Project, name: str) -> set[int]:
    return {int(key) for key in project.members(name)["customer_id"]}


def by_hand(database: Path, query: str) -> set[int]:
    connection = duckdb.connect(str(database), read_only=True)
    try:
        return {int(row[0]) for row in connection.execute(query).fetchall()}
    finally:
        connection.close()


@pytest.mark.slow
def test_validates_offline_against_dbts_catalog(dbt_built: Path) -> None:
    # the connection's folder does not exist: opening it would fail, so nothing may connect
    project = segsql_project(dbt_built, "offline", "no_such_folder/warehouse.duckdb")
    assert project.validate() == []
    source = project.config.sources["dbt:customer_ltv"]
    assert source.table == "warehouse.main.customer_ltv"
    assert source.columns is not None and source.columns["lifetime_value"] == "DOUBLE"
    assert project.config.sources["dbt:stripe.invoices"].table == "warehouse.stripe.invoices"
    assert project.config.sources["dbt:stg_customers"].pii == {"email": "pii", "first_name": "name"}
    assert project.config.sources["dbt:customer_ltv"].static  # meta: {segsql: {static: true}} in schema.yml
    assert project.config.sources["dbt:raw_orders"].static  # a seed
    snapshot = project.config.sources["dbt:customers_snapshot"].time
    assert snapshot is not None and (snapshot.valid_from, snapshot.valid_to) == ("dbt_valid_from", "dbt_valid_to")
    assert "warehouse.main.customer_ltv" in project.compile("dach_high_value")
    from segsql.privacy.pii import pii_columns

    assert pii_columns(project.compiler, "dach_high_value") == {"email": "pii"}
    # untagged personal data: dbt nodes segments read are scanned (customer_ltv's email is tagged), others not
    assert [str(w) for w in project.privacy_warnings()] == []
    extra = {"segments_sql/raw.sql": "{{ config(entity='customer') }}\nselect customer_id from {{ dbt('raw_customers') }}\n"}
    warnings = segsql_project(dbt_built, "offline_raw", "no_such_folder/warehouse.duckdb", extra).privacy_warnings()
    assert sorted(w.message.split("`")[3] for w in warnings) == ["email", "first_name"]
    assert {w.location.path if w.location else None for w in warnings} == {"../analytics/seeds/raw_customers.csv"}
    assert all("meta: {pii:" in (w.hint or "") for w in warnings)  # tagged in the dbt project, not segsql.yml


@pytest.mark.slow
def test_a_misspelled_dbt_column_is_an_error_at_the_template_line(dbt_built: Path) -> None:
    typo = HIGH_VALUE.replace("lifetime_value >= 100", "\n  lifetime_valeu >= 100")
    project = segsql_project(dbt_built, "typo", "no_such_folder/warehouse.duckdb",
                             {"segments_sql/dach_high_value.sql": typo})
    errors = project.validate(["dach_high_value"])
    assert len(errors) == 1
    error = errors[0]
    assert "lifetime_valeu" in error.message
    assert error.location is not None and error.location.line == 5
    assert error.location.path.endswith("dach_high_value.sql")
    assert "lifetime_value" in (error.hint or "")


@pytest.mark.slow
def test_unknown_dbt_nodes_are_errors_with_the_closest_name(dbt_built: Path) -> None:
    wrong = HIGH_VALUE.replace("dbt('customer_ltv')", "dbt('customer_ltvs')")
    project = segsql_project(dbt_built, "unknown", "no_such_folder/w.duckdb",
                             {"segments_sql/dach_high_value.sql": wrong})
    error = project.validate(["dach_high_value"])[0]
    assert "customer_ltvs" in error.message and error.location is not None and error.location.line == 3
    assert "customer_ltv" in (error.hint or "")
    wrong_source = PAYING.replace("dbt_source('stripe', 'invoices')", "dbt_source('stripe', 'invoice')")
    project = segsql_project(dbt_built, "unknown_source", "no_such_folder/w.duckdb",
                             {"segments_sql/dach_paying.sql": wrong_source})
    error = project.validate(["dach_paying"])[0]
    assert "stripe.invoice" in error.message and "stripe.invoices" in (error.hint or "")


@pytest.mark.slow
def test_run_on_dbts_warehouse_gives_the_hand_written_querys_members(dbt_built: Path, tmp_path: Path) -> None:
    base = own_copy(dbt_built, tmp_path)
    project = segsql_project(base, "segments", "../warehouse.duckdb")
    project.run()
    project.close()
    expected = by_hand(base / "warehouse.duckdb", HIGH_VALUE_BY_HAND)
    assert expected == {1, 3, 6, 7}  # the fixture's data: the test would pass on nothing otherwise
    assert members(project, "dach_high_value") == expected
    assert members(project, "dach_paying") == by_hand(base / "warehouse.duckdb", PAYING_BY_HAND)


@pytest.mark.slow
def test_generated_dbt_models_build_with_the_same_members(dbt_built: Path, tmp_path: Path) -> None:
    base = own_copy(dbt_built, tmp_path)
    project = segsql_project(base, "segments", "../warehouse.duckdb")
    written = project.write_dbt_models(project.select())
    folder = base / "analytics" / "models" / "segments"
    assert sorted(path.name for path in written) == ["_segsql_segments.yml", "dach_high_value.sql", "dach_paying.sql"]
    paying = (folder / "dach_paying.sql").read_text()
    assert "{{ ref('dach_high_value') }} AS h" in paying
    assert "{{ source('stripe', 'invoices') }} AS i" in paying
    assert "{{ config(materialized='table') }}" in paying and "warehouse" not in paying
    assert "{{ ref('customer_ltv') }}" in (folder / "dach_high_value.sql").read_text()
    schema = (folder / "_segsql_segments.yml").read_text()
    assert "pii: pii" in schema and "Sum of all order amounts." in schema  # from the dbt column it comes from
    # then `dbt docs generate`: the manifest holds the generated models, which stay segments, not dbt nodes
    run_dbt(base / "analytics", ["build", "--select", "path:models/segments"], ["docs", "generate"])
    project.run()
    project.close()
    for name in ("dach_high_value", "dach_paying"):
        assert by_hand(base / "warehouse.duckdb", f"select customer_id from main.{name}") == members(project, name)
    again = Project.load(base / "segments", as_of=AS_OF)
    assert "dbt:dach_paying" not in again.config.sources
    assert again.write_dbt_models(again.select()) == written


@pytest.mark.slow
def test_a_file_segsql_did_not_write_is_never_overwritten(dbt_built: Path, tmp_path: Path, runner) -> None:  # type: ignore[no-untyped-def]
    from segsql.cli import cli

    project = segsql_project(dbt_built, "overwrite", "no_such_folder/w.duckdb")
    out = tmp_path / "models"
    write_files(out, {"dach_paying.sql": "select 1 as hand_written\n"})
    with pytest.raises(UsageError, match="not written by segsql"):
        project.write_dbt_models(project.select(), out)
    assert (out / "dach_paying.sql").read_text() == "select 1 as hand_written\n"
    assert not (out / "dach_high_value.sql").exists()  # nothing is written when one file is refused
    command = ["compile", "--project", str(project.root), "--format", "dbt", "--out"]
    refused = runner.invoke(cli, [*command, str(out)])
    assert refused.exit_code == 2 and "not written by segsql" in refused.output
    written = runner.invoke(cli, [*command, str(tmp_path / "fresh"), "--select", "dach_paying"])
    assert written.exit_code == 0, written.output
    assert "wrote 2 dbt model(s)" in written.output  # with the segment it refs: its model's ref needs that model
    assert sorted(p.name for p in (tmp_path / "fresh").iterdir()) == [
        "_segsql_segments.yml", "dach_high_value.sql", "dach_paying.sql"]
    again = runner.invoke(cli, [*command, str(tmp_path / "fresh")])  # its own files are rewritten
    assert again.exit_code == 0, again.output


@pytest.mark.slow
def test_select_dbt_node_picks_the_segments_downstream_of_it(dbt_built: Path) -> None:
    project = segsql_project(dbt_built, "selection", "no_such_folder/w.duckdb")
    assert project.select(["dbt:customer_ltv"]) == ["dach_high_value", "dach_paying"]
    assert project.select(["+dbt:customer_ltv"]) == ["dach_high_value", "dach_paying"]
    assert project.select(["dbt:stripe.invoices"]) == ["dach_paying"]
    with pytest.raises(SelectionError, match="matches no segment"):
        project.select(["dbt:stg_orders"])  # a dbt node no segment reads
    with pytest.raises(SelectionError, match="customer_lt") as raised:
        project.select(["dbt:customer_lt"])
    assert "dbt:customer_ltv" in (raised.value.hint or "")


def test_missing_artifacts_are_an_error_at_the_dbt_key(tmp_path: Path) -> None:
    write_files(tmp_path, {"segsql.yml": "name: x\ndbt: {project_dir: ../analytics}\n"})
    with pytest.raises(ConfigError) as raised:
        Project.load(tmp_path)
    error = raised.value
    assert "manifest.json does not exist" in error.message
    assert error.location is not None and error.location.line == 2
    assert "dbt docs generate" in (error.hint or "")


def test_unknown_dbt_keys_are_refused(tmp_path: Path) -> None:
    write_files(tmp_path, {"segsql.yml": "dbt:\n  project_dir: ../analytics\n  traget: prod\n"})
    with pytest.raises(ConfigError, match=re.escape("unknown key `dbt.traget`")) as raised:
        Project.load(tmp_path)
    assert raised.value.location is not None and raised.value.location.line == 3


def test_artifacts_of_another_target_are_refused(tmp_path: Path) -> None:
    write_files(tmp_path, {"dbt/target/manifest.json": '{"nodes": {}, "sources": {}}',
                           "dbt/target/catalog.json": '{"nodes": {}, "sources": {}}',
                           "dbt/target/run_results.json": '{"args": {"target": "dev"}}',
                           "segsql.yml": "dbt: {project_dir: dbt, target: prod}\n"})
    with pytest.raises(ConfigError, match="generated for target `dev`, not `prod`") as raised:
        Project.load(tmp_path)
    assert "dbt docs generate --target prod" in (raised.value.hint or "")


def test_dbt_without_a_dbt_project_says_how_to_add_one(make_project) -> None:  # type: ignore[no-untyped-def]
    project = make_project({"s": "{{ config(entity='account') }}\nselect account_id from {{ dbt('accounts') }}\n"})
    errors = project.validate(["s"])
    assert len(errors) == 1 and isinstance(errors[0], SegsqlError)
    assert "dbt() needs a dbt project" in errors[0].message and "dbt:" in (errors[0].hint or "")


GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]


def commit_everything(folder: Path, ignored: str) -> list[str]:
    """A git repository in `folder` with one commit of all but `ignored` (.gitignore lines);
    returns the git command to run more."""
    (folder / ".gitignore").write_text(ignored)
    for args in (["init", "-q", "-b", "main"], ["add", "-A", "-f", "."], ["commit", "-q", "-m", "base"]):
        subprocess.run([*GIT, *args], cwd=folder, check=True, capture_output=True, timeout=60)
    return GIT


def change_column_type(artifacts: Path, column: str, kind: str) -> None:
    """customer_ltv's `column` changes type in catalog.json, as `dbt build` + `dbt docs generate`
    after editing the model would record (the column named as that catalog spells it)."""
    catalog = json.loads((artifacts / "catalog.json").read_text())
    catalog["nodes"]["model.shop.customer_ltv"]["columns"][column]["type"] = kind
    (artifacts / "catalog.json").write_text(json.dumps(catalog))


@pytest.mark.slow
def test_diff_reports_segments_reading_a_changed_dbt_column(dbt_built: Path, tmp_path: Path) -> None:
    base = own_copy(dbt_built, tmp_path)
    segsql_project(base, "segments", "../warehouse.duckdb")
    state = tmp_path / "prod_state"
    shutil.copytree(base / "analytics" / "target", state)
    git = commit_everything(base, "*.duckdb\n*.wal\nprod_state/\n")
    change_column_type(base / "analytics" / "target", "lifetime_value", "DECIMAL(18,2)")
    project = Project.load(base / "segments", as_of=AS_OF)
    report = project.diff("HEAD")
    change = "dbt:customer_ltv.lifetime_value: DOUBLE -> DECIMAL(18,2)"
    assert report.dbt_changes == {"dbt:customer_ltv": {"lifetime_value": "DOUBLE -> DECIMAL(18,2)"}}
    assert {s.name: s.dbt_columns for s in report.segments} == {"dach_high_value": [change], "dach_paying": [change]}
    assert change in report.to_text() and "`dach_paying`" in report.to_markdown()
    # artifacts that are not in git at the base: compared with --dbt-state, else a note says why not
    subprocess.run([*git, "rm", "-q", "--cached", "-r", "analytics/target"], cwd=base, check=True,
                   capture_output=True, timeout=60)
    subprocess.run([*git, "commit", "-q", "-m", "untrack artifacts"], cwd=base, check=True, capture_output=True,
                   timeout=60)
    assert "not in git" in project.diff("HEAD").dbt_note
    assert project.diff("HEAD", dbt_state=state).dbt_changes == report.dbt_changes
    project.close()


def doc_blocks(language: str) -> list[str]:
    text = (REPO / "docs" / "dbt.md").read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


@pytest.mark.slow
def test_docs_dbt_md_steps_work_as_written(dbt_built: Path) -> None:
    """The three lines of segsql.yml and the segment of docs/dbt.md, as written there."""
    three_lines = doc_blocks("yaml")[0]  # the others show more (several warehouses: tests/test_dbt_engines.py)
    assert len(three_lines.strip().splitlines()) == 3
    (segment,) = doc_blocks("sql")
    root = dbt_built / "from_the_docs"
    write_files(root, {"segsql.yml": three_lines + "entities:\n  customer: {key: customer_id, source: 'dbt:customer_ltv'}\n",
                       "segments_sql/dach_high_value.sql": segment})
    project = Project.load(root, as_of=AS_OF)
    assert project.validate() == []
    assert project.select(["dbt:customer_ltv"]) == ["dach_high_value"]
    commands = [line for block in doc_blocks("sh") for line in block.splitlines()]
    assert "segsql compile --format dbt --out ../analytics/models/segments/" in commands


@pytest.mark.slow
def test_docs_site_and_list_show_the_dbt_nodes_upstream(dbt_built: Path, tmp_path: Path, runner) -> None:  # type: ignore[no-untyped-def]
    from segsql.cli import cli

    project = segsql_project(dbt_built, "site", "no_such_folder/w.duckdb")
    page = (project.build_docs(tmp_path / "site").parent / "segments" / "dach_paying.html").read_text()
    for node in ("dbt:raw_customers", "dbt:stg_customers", "dbt:customer_ltv", "dbt:stripe.invoices"):
        assert f"data-node='{node}'" in page
    assert "data-edge='dbt:stg_customers-&gt;dbt:customer_ltv'" in page  # dbt's own DAG, not only what segments read
    assert "Sum of all order amounts." in page  # the dbt column description of lifetime_value
    listed = runner.invoke(cli, ["list", "--project", str(project.root), "--format", "json"])
    assert listed.exit_code == 0, listed.output
    rows = {row["name"]: row for row in json.loads(listed.output)}
    assert rows["dach_paying"]["dbt"] == ["dbt:stripe.invoices"] and rows["dach_paying"]["refs"] == ["dach_high_value"]


@pytest.mark.slow
def test_a_dbt_snapshot_is_read_as_of_the_evaluation_date(dbt_built: Path, tmp_path: Path) -> None:
    import datetime as dt

    base = own_copy(dbt_built, tmp_path)
    current = "{{ config(entity='customer') }}\nselect customer_id from {{ dbt('customers_snapshot') }}\n"
    project = segsql_project(base, "segments", "../warehouse.duckdb", {"segments_sql/snapshot_now.sql": current})
    built = dt.datetime.now(dt.UTC).date()  # the snapshot's versions are valid from when dbt built it
    for as_of, expected in ((built + dt.timedelta(days=1), 10), (built - dt.timedelta(days=30), 0)):
        dated = project.with_options(as_of=as_of)
        dated.run(["snapshot_now"])
        assert dated.size("snapshot_now") == expected, as_of
        dated.close()
    project.close()
