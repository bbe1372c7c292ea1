"""Rough edges a new user hits in the first hour; each failed on 50a213c."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner

from segsql import ConfigError, Project
from segsql.cli.main import cli
from tests.conftest import AS_OF, REPO, write_files


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def test_init_empty_makes_a_project_for_other_data(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    result = invoke("init", str(root), "--empty")
    assert result.exit_code == 0, result.output
    assert not list((root / "segments_sql").glob("**/*.sql"))
    config = (root / "segsql.yml").read_text()
    assert "name: \"shop\"" in config and "segment_validation" not in config and "accounts" not in config
    assert invoke("validate", "--project", str(root)).exit_code == 0
    connection = duckdb.connect(str(root / "data" / "warehouse.duckdb"))
    connection.execute("CREATE TABLE customers AS SELECT range AS c_custkey, range % 5 AS c_nationkey FROM range(10)")
    connection.close()
    (root / "segsql.yml").write_text(config.replace("sources: {}", "sources:\n  customers: {table: customers}")
                                     .replace("entities: {}", "entities:\n  customer: {key: c_custkey, source: customers}"))
    write_files(root, {"segments_sql/nation_one.sql": "{{ config(entity='customer') }}\n"
                       "SELECT c.c_custkey FROM {{ source('customers') }} AS c WHERE c.c_nationkey = 1"})
    assert invoke("run", "--project", str(root)).exit_code == 0
    assert Project.load(root).size("nation_one") == 2


def test_as_of_can_be_fixed_in_the_config(make_project: Any) -> None:
    from tests.conftest import BASE_CONFIG

    project = make_project({}, config=BASE_CONFIG + "as_of: 2025-06-30\n", as_of=None)
    assert str(project.as_of) == "2025-06-30"
    assert str(Project.load(project.root, as_of="2025-01-31").as_of) == "2025-01-31"  # --as-of still wins


def test_the_demo_pins_its_data_date(tmp_path: Path) -> None:
    from segsql.demo.project import prepare_demo

    prepare_demo(tmp_path / "demo", scale=0.05, as_of="2026-03-31")
    assert str(Project.load(tmp_path / "demo").as_of) == "2026-03-31"  # not the day it is opened
    prepare_demo(tmp_path / "demo", scale=0.05, as_of="2026-04-30")  # regenerated: the pin moves
    assert (tmp_path / "demo" / "segsql.yml").read_text().count("as_of:") == 1
    assert str(Project.load(tmp_path / "demo").as_of) == "2026-04-30"


def test_personal_data_hint_names_the_detected_kind_and_shows_only_in_validate(tmp_path: Path) -> None:
    config = ("connection: {type: duckdb, path: data.duckdb}\nsources:\n  customer:\n    table: customer\n"
              "    columns: {c_custkey: BIGINT, c_phone: VARCHAR, c_contact: VARCHAR}\n"
              "entities:\n  customer: {key: c_custkey, source: customer}\n")
    write_files(tmp_path, {"segsql.yml": config, "segments_sql/all_customers.sql": "{{ config(entity='customer') }}\n"
                           "SELECT c.c_custkey FROM {{ source('customer') }} AS c"})
    connection = duckdb.connect(str(tmp_path / "data.duckdb"))
    connection.execute("CREATE TABLE customer AS SELECT 1 AS c_custkey, '25-989-741-2988' AS c_phone, "
                       "'someone@example.org' AS c_contact")
    connection.close()
    validate = invoke("validate", "--project", str(tmp_path))
    assert "(c_phone: phone)" in validate.output and "(c_contact: email)" in validate.output
    assert validate.output.count("`c_phone` is not tagged") == 1
    run = invoke("run", "--project", str(tmp_path))
    assert run.exit_code == 0 and "not tagged as personal data" not in run.output


def test_a_mistyped_column_type_is_a_located_config_error(make_project: Any) -> None:
    from tests.conftest import BASE_CONFIG

    with pytest.raises(ConfigError) as caught:
        make_project({}, config=BASE_CONFIG.replace("arr: DOUBLE", "arr: INTEGR"))
    error = caught.value
    assert "`INTEGR` is not a duckdb type" in error.message and "did you mean `INTEGER`?" in (error.hint or "")
    assert error.path == "segsql.yml" and error.line == 5


def test_unit_test_misses_keep_the_key_type(tmp_path: Path) -> None:
    from segsql.measure.testing import run_unit_tests

    config = "sources:\n  accounts: {table: accounts, columns: {account_id: BIGINT, arr: DOUBLE}}\n" \
             "entities:\n  account: {key: account_id, source: accounts}\n"
    tests = "unit_tests:\n  - name: sizes\n    given:\n      accounts:\n" + "".join(
        f"        - {{account_id: {k}, arr: {k * 10}}}\n" for k in (2, 3, 10, 100)) + "    expect: [2, 3, 7, 10]\n"
    write_files(tmp_path, {"segsql.yml": config,
                           "segments_sql/big.sql": "{{ config(entity='account') }}\n"
                           "SELECT a.account_id FROM {{ source('accounts') }} AS a WHERE a.arr > 25",
                           "segments_sql/big.test.yml": tests})
    [result] = run_unit_tests(Project.load(tmp_path, as_of=AS_OF).compiler, "big")
    assert result.missing == [2, 7] and result.unexpected == [100]
    assert "missing [2, 7]" in result.details and "unexpected [100]" in result.details


def test_diff_samples_keep_the_key_type_and_order(tmp_path: Path) -> None:
    import subprocess

    root = tmp_path / "repo"
    write_files(root, {"segsql.yml": "connection: {type: duckdb, path: data.duckdb}\nsources:\n  accounts: "
                       "{table: accounts}\nentities:\n  account: {key: account_id, source: accounts}\n",
                       ".gitignore": "data.duckdb\n", "segments_sql/s.sql": "{{ config(entity='account') }}\n"
                       "SELECT a.account_id FROM {{ source('accounts') }} AS a WHERE a.account_id > 2000"})
    connection = duckdb.connect(str(root / "data.duckdb"))
    connection.execute("CREATE TABLE accounts AS SELECT range AS account_id FROM range(1, 3001)")
    connection.close()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "base"]):
        subprocess.run([*git, *args], cwd=root, check=True, capture_output=True, timeout=60)
    (root / "segments_sql" / "s.sql").write_text("{{ config(entity='account') }}\n"
                                                 "SELECT a.account_id FROM {{ source('accounts') }} AS a")
    report = Project.load(root, as_of=AS_OF).diff(base="main")
    [segment] = report.segments
    assert segment.added_sample == [1, 2, 3, 4, 5]  # numbers in numeric order, not 1, 10, 100, ...
    assert json.loads(report.to_json())["segments"][0]["added_sample"] == [1, 2, 3, 4, 5]


def test_rfm_segments_are_tagged_with_their_prefix(tmp_path: Path) -> None:
    from segsql.compile.rfm import segment_files

    files = segment_files("user", "user_id", "orders", "ordered_at", "amount", prefix="rfm2")
    assert all("tags=['value', 'rfm2']" in text for text in files.values())
    assert all("tags=['value', 'rfm']" in text for text in segment_files("user", "k", "o", "a", "m").values())


def test_readout_flags_like_compare_and_history_and_readout_have_formats(tmp_path: Path) -> None:
    from tests.test_history import CONFIG, SEGMENT, set_active
    from tests.test_splits import METRICS, load, project_with, segment

    root = project_with(tmp_path / "exp", segment("{'control': 50, 'treatment': 50}"), metrics=True)
    load(root, 400)
    Project.load(root).run()
    table = invoke("readout", "exp", "--project", str(root), "--metrics", "conversion")
    assert "True" not in table.output and "False" not in table.output
    as_json = invoke("readout", "exp", "--project", str(root), "--metrics", "conversion", "--format", "jsonl")
    rows = [json.loads(line) for line in as_json.stdout.splitlines() if line.startswith("{")]
    assert rows and {"group", "lift", "p_value", "significant"} <= set(rows[0]) and METRICS
    history_root = tmp_path / "hist"
    write_files(history_root, {"segsql.yml": CONFIG, "segments_sql/active.sql": SEGMENT})
    set_active(history_root, [1, 2])
    Project.load(history_root, as_of=AS_OF).run()
    csv = invoke("history", "active", "--project", str(history_root), "--format", "csv")
    assert csv.exit_code == 0 and csv.output.splitlines()[0].startswith("run_id,")
    today = dt.date.today().isoformat()  # history is kept by when runs happened
    at = invoke("history", "active", "--project", str(history_root), "--at", today, "--format", "jsonl")
    assert [json.loads(line)["entity_key"] for line in at.output.splitlines()] == ["1", "2"]


def test_readme_says_what_the_test_command_needs() -> None:
    readme = (REPO / "README.md").read_text()
    head = readme[:readme.index("## Install")]
    assert all(word in head for word in ("PostgreSQL", "Java", "Chromium", ".ci/run"))


def test_rollup_quantifiers_document_parents_without_children() -> None:
    text = (REPO / "docs" / "templating.md").read_text()
    assert "a parent with no children at all is *not*" in text and "a parent with no children at all *is*" in text


def test_a_cache_folder_others_can_write_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from segsql.compile import templating

    shared = tmp_path / "shared"
    (shared / "jinja").mkdir(parents=True)
    os.chmod(shared / "jinja", 0o777)
    monkeypatch.setenv("SEGSQL_CACHE_DIR", str(shared))
    assert templating.template_code_cache() is None
    own = tmp_path / "own"
    monkeypatch.setenv("SEGSQL_CACHE_DIR", str(own))
    assert templating.template_code_cache() == own / "jinja"
    assert (own / "jinja").stat().st_mode & 0o077 == 0


def test_a_tampered_cache_entry_is_not_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           make_project: Any) -> None:
    import marshal

    from segsql.compile import templating

    monkeypatch.setenv("SEGSQL_CACHE_DIR", str(tmp_path / "cache"))
    template = "{{ config(entity='account') }}\nSELECT a.account_id FROM {{ source('accounts') }} AS a"
    project = make_project({"seg": template})
    assert project.validate() == []
    [entry] = list((tmp_path / "cache" / "jinja").glob("*.bin"))
    evil = compile(f"open({str(tmp_path / 'pwned')!r}, 'w').write('x')", "evil", "exec")
    entry.write_bytes(b"0" * 32 + marshal.dumps(evil))  # wrong hash
    assert templating._load_code(entry) is None
    assert Project.load(project.root, as_of=AS_OF).validate() == []
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("kind", ["citext", "mood", "ltree", "TIMESTAMP WITH TIME ZONE", "NUMERIC(12,2)"])
def test_the_databases_own_types_are_accepted(make_project: Any, kind: str) -> None:
    from tests.conftest import BASE_CONFIG

    make_project({}, config=BASE_CONFIG.replace("arr: DOUBLE", f"arr: '{kind}'").replace("dialect: duckdb",
                                                                                        "dialect: postgres"))


def test_init_empty_keeps_a_numeric_folder_name_a_string(tmp_path: Path) -> None:
    assert invoke("init", str(tmp_path / "2026"), "--empty").exit_code == 0
    assert Project.load(tmp_path / "2026").config.name == "2026"


def test_flags_about_personal_data_are_not_personal_data(tmp_path: Path) -> None:
    from segsql.privacy.pii import untagged_pii

    config = ("sources:\n  users:\n    table: users\n    columns: {user_id: BIGINT, email_verified: BOOLEAN, "
              "has_phone: BOOLEAN, birth_country: VARCHAR, birth_date: DATE}\n"
              "entities:\n  user: {key: user_id, source: users}\n")
    write_files(tmp_path, {"segsql.yml": config})
    found = {column: kind for _, column, _, kind in untagged_pii(Project.load(tmp_path).compiler, {})}
    assert found == {"birth_date": "birth_date"}


def test_a_cache_folder_created_under_umask_002_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from segsql.compile import templating

    monkeypatch.setenv("SEGSQL_CACHE_DIR", str(tmp_path / "fresh" / "segsql"))
    previous = os.umask(0o002)  # Debian's default for users with a group of their own
    try:
        assert templating.template_code_cache() == tmp_path / "fresh" / "segsql" / "jinja"
    finally:
        os.umask(previous)
