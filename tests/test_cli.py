"""The CLI: exit codes, one-line errors, no tracebacks, target/ written only when valid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from segsql.cli import cli
from segsql.cli.main import SegsqlGroup
from segsql.errors import UsageError
from tests.conftest import AS_OF, BASE_CONFIG, write_files

CFG = "{{ config(entity='account') }}\n"
GOOD = CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a WHERE a.arr > {{ param('min_arr', 10) }}"


def invoke(runner: CliRunner, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def project_dir(tmp_path: Path, segments: dict[str, str]) -> Path:
    write_files(tmp_path, {"segsql.yml": BASE_CONFIG})
    write_files(tmp_path, {f"segments_sql/{n}.sql": t for n, t in segments.items()})
    return tmp_path


def test_init_then_validate_and_compile(runner: CliRunner, tmp_path: Path) -> None:
    root = tmp_path / "new"
    code, out, _ = invoke(runner, "init", str(root))
    assert code == 0 and "created" in out
    code, out, err = invoke(runner, "validate", "--project", str(root))
    assert code == 0, err
    assert "segment(s) valid" in out
    code, out, err = invoke(runner, "compile", "--project", str(root), "--target", "postgres", "--as-of", AS_OF)
    assert code == 0, err
    manifest = json.loads((root / "target" / "manifest.json").read_text())
    assert manifest["targets"] == ["duckdb", "postgres"]
    segment = manifest["segments"]["enterprise_expansion_targets"]
    assert segment["refs"] == ["accounts_with_power_users", "enterprise_dach", "high_mrr_accounts"]
    assert segment["upstream"][0] == "power_users"
    assert (root / "target/compiled/postgres/value/high_mrr_accounts.sql").exists()


def test_init_refuses_a_non_empty_folder(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("keep me")
    code, _, err = invoke(runner, "init", str(tmp_path))
    assert code == 2 and "not empty" in err
    assert (tmp_path / "x.txt").read_text() == "keep me"


def test_init_force_is_repeatable_and_keeps_other_files(runner: CliRunner, tmp_path: Path) -> None:
    assert invoke(runner, "init", str(tmp_path / "p"))[0] == 0
    (tmp_path / "p" / "segments_sql" / "mine.sql").write_text("-- my own segment")
    assert invoke(runner, "init", str(tmp_path / "p"))[0] == 2
    assert invoke(runner, "init", str(tmp_path / "p"), "--force")[0] == 0
    assert (tmp_path / "p" / "segments_sql" / "mine.sql").read_text() == "-- my own segment"


def test_init_that_fails_leaves_nothing_behind(runner: CliRunner, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from segsql.starter import scaffold

    def no_library() -> Path:
        raise UsageError("the starter segment library is missing from this installation", None, "reinstall segsql")

    monkeypatch.setattr(scaffold, "starter_segments_dir", no_library)
    code, _, err = invoke(runner, "init", str(tmp_path / "new" / "X"))
    assert code == 2 and "starter segment library is missing" in err
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()

    def disk_full(*_: object) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(scaffold, "_create_database", disk_full)  # the last file written
    assert invoke(runner, "init", str(tmp_path / "new" / "X"))[0] == 1
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    assert invoke(runner, "init", str(tmp_path / "new" / "X"))[0] == 0  # a retry is not refused


def test_init_force_that_fails_leaves_the_project_as_it_was(runner: CliRunner, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from segsql.starter import scaffold

    assert invoke(runner, "init", str(tmp_path / "p"))[0] == 0
    config = tmp_path / "p" / "segsql.yml"
    config.write_text(config.read_text() + "# my edit\n")
    monkeypatch.setattr(scaffold.shutil, "copyfile", lambda *_: (_ for _ in ()).throw(OSError("disk full")))
    assert invoke(runner, "init", str(tmp_path / "p"), "--force")[0] == 1
    assert config.read_text().endswith("# my edit\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]


def test_a_fresh_init_project_says_where_its_data_goes(runner: CliRunner, tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    code, _, err = invoke(runner, "init", str(root))
    assert code == 0 and f"segsql demo {root}" in err and "`connection:`" in err
    assert (root / "data" / "demo.duckdb").is_file()
    code, _, err = invoke(runner, "run", "--project", str(root))
    assert code == 1 and "cannot open" not in err
    assert "no table for source(s) accounts, events" in err and "point `connection:`" in err and "segsql demo" in err


def test_a_missing_optional_module_names_its_extra(runner: CliRunner) -> None:
    @click.group(cls=SegsqlGroup)
    def group() -> None:
        """A group with the CLI's error handling."""

    @group.command()
    @click.argument("module")
    def needs(module: str) -> None:
        raise ModuleNotFoundError(f"No module named '{module}'", name=module)

    result = runner.invoke(group, ["needs", "sklearn.cluster"])
    assert result.exit_code == 2
    assert result.stderr == "error: this needs `sklearn`, which is not installed (pip install 'segsql[methods]')\n"
    result = runner.invoke(group, ["needs", "segsql.methods"])
    assert result.exit_code == 2 and "`segsql.methods` is missing from this installation" in result.stderr
    result = runner.invoke(group, ["needs", "nosuchmodule"])
    assert result.exit_code == 1 and "internal error: ModuleNotFoundError" in result.stderr


def test_validate_prints_one_line_per_error_and_exits_1(runner: CliRunner, tmp_path: Path) -> None:
    root = project_dir(tmp_path, {"good": GOOD, "bad1": CFG + "SELECT a.nope FROM {{ source('accounts') }} AS a",
                                  "bad2": CFG + "DROP TABLE accounts"})
    code, _, err = invoke(runner, "validate", "--project", str(root))
    assert code == 1
    lines = [line for line in err.strip().splitlines() if not line.startswith("warning:")]
    assert lines[0].startswith("error: segments_sql/bad1.sql:2:10: unknown column `nope`")
    assert lines[1].startswith("error: segments_sql/bad2.sql:2:1: a segment must be a SELECT")
    assert lines[-1] == "2 error(s)"
    assert "Traceback" not in err


def test_compile_with_errors_writes_nothing(runner: CliRunner, tmp_path: Path) -> None:
    root = project_dir(tmp_path, {"good": GOOD, "bad": CFG + "SELECT 1"})
    code, _, err = invoke(runner, "compile", "--project", str(root))
    assert code == 1 and "lacks the entity key" in err
    assert not (root / "target").exists()


def test_compile_skips_unchanged_segments(runner: CliRunner, tmp_path: Path) -> None:
    root = project_dir(tmp_path, {"a": GOOD, "b": CFG + "SELECT x.account_id FROM {{ ref('a') }} AS x"})
    args = ["compile", "--project", str(root), "--as-of", AS_OF]
    assert invoke(runner, *args)[1].endswith("(0 unchanged) into " + str(root / "target") + "\n")
    assert "(2 unchanged)" in invoke(runner, *args)[1]
    write_files(root, {"segments_sql/a.sql": GOOD.replace("10", "20")})
    out = invoke(runner, *args)[1]
    assert "(0 unchanged)" in out  # a changed, and b refs a
    assert "20" in (root / "target/compiled/duckdb/b.sql").read_text()
    assert "(2 unchanged)" in invoke(runner, *args)[1]
    assert "(0 unchanged)" in invoke(runner, *args, "--var", "min_arr=5")[1]


def test_compile_order_does_not_confuse_the_cache(runner: CliRunner, tmp_path: Path) -> None:
    # "a_down" sorts before "z_up" and refs it: the upstream key is computed first.
    root = project_dir(tmp_path, {"z_up": GOOD, "a_down": CFG + "SELECT x.account_id FROM {{ ref('z_up') }} AS x"})
    code, out, err = invoke(runner, "compile", "--project", str(root), "--as-of", AS_OF)
    assert code == 0, err
    assert "(0 unchanged)" in out
    assert (root / "target/compiled/duckdb/z_up.sql").exists()


@pytest.mark.parametrize(("args", "fragment"), [
    (["validate", "--project", "{root}", "--select", "nosuch"], "matches no segment"),
    (["validate", "--project", "{root}", "--var", "novalue"], "is not key=value"),
    (["validate", "--project", "{root}", "--vars", "{bad json"], "--vars is not valid JSON"),
    (["validate", "--project", "{root}", "--vars", "[1]"], "must be a JSON object"),
    (["validate", "--project", "{root}", "--as-of", "yesterday"], "is not a date"),
])
def test_usage_errors_exit_2(runner: CliRunner, tmp_path: Path, args: list[str], fragment: str) -> None:
    root = project_dir(tmp_path, {"good": GOOD})
    code, _, err = invoke(runner, *[a.replace("{root}", str(root)) for a in args])
    assert code == 2 and fragment in err and "Traceback" not in err


def test_unknown_target_dialect_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    root = project_dir(tmp_path, {"good": GOOD})
    code, _, err = invoke(runner, "compile", "--project", str(root), "--target", "oracle")
    assert code == 2 and "oracle" in err


def test_missing_project_folder(runner: CliRunner, tmp_path: Path) -> None:
    code, _, err = invoke(runner, "validate", "--project", str(tmp_path / "absent"))
    assert code == 1 and "does not exist" in err and "Traceback" not in err


@pytest.mark.parametrize(("selector", "expected"), [
    ("tag:value", ["high_mrr_accounts", "enterprise_expansion_targets", "expansion_candidates", "at_risk_accounts",
                   "rfm_scores", "rfm_champions", "rfm_at_risk_high_value"]),
    ("path:segments_sql/behavioural", ["activated_trials", "dormant_users", "power_users"]),
    ("+accounts_with_power_users", ["power_users", "accounts_with_power_users"]),
    ("power_users+", ["power_users", "accounts_with_power_users", "enterprise_expansion_targets"]),
])
def test_selection(runner: CliRunner, starter_project: Path, selector: str, expected: list[str]) -> None:
    code, out, err = invoke(runner, "list", "--project", str(starter_project), "--select", selector, "--format", "json")
    assert code == 0, err
    assert sorted(row["name"] for row in json.loads(out)) == sorted(expected)


def test_exclude(runner: CliRunner, starter_project: Path) -> None:
    code, out, _ = invoke(runner, "list", "--project", str(starter_project), "-s", "tag:behavioural",
                          "--exclude", "tag:rollup", "--format", "json")
    assert code == 0
    assert sorted(r["name"] for r in json.loads(out)) == ["activated_trials", "dormant_users", "expansion_candidates",
                                                          "power_users"]


def test_console_script_runs_in_a_subprocess(tmp_path: Path) -> None:
    root = project_dir(tmp_path, {"bad": CFG + "SELECT a.nope FROM {{ source('accounts') }} AS a"})
    env = {**os.environ, "NO_COLOR": "1"}
    done = subprocess.run([sys.executable, "-m", "segsql", "validate", "--project", str(root)],
                          capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 1
    assert done.stderr.splitlines()[0] == "error: segments_sql/bad.sql:2:10: unknown column `nope` in `a`"


HEAVY = ("pandas", "pyarrow", "scipy", "statsmodels", "sklearn", "duckdb", "psycopg", "pyspark", "IPython")
# what the pipeline needs but --help does not: together ~0.3 s of CPU at start-up (#20)
PIPELINE = ("pydantic", "yaml", "jinja2", "sqlglot", "rich")


def _imported_after(*arguments: str) -> set[str]:
    import subprocess
    import sys

    probe = ("import runpy, sys\nsys.argv = ['segsql', *sys.argv[1:]]\n"
             "try:\n    runpy.run_module('segsql', run_name='__main__')\nexcept SystemExit:\n    pass\n"
             f"import json\nprint('MODULES', json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY + PIPELINE!r}))))")
    done = subprocess.run([sys.executable, "-c", probe, *arguments], capture_output=True, text=True, timeout=120,
                          check=False)
    line = next(line for line in done.stdout.splitlines() if line.startswith("MODULES"))
    return set(json.loads(line.removeprefix("MODULES ")))


def test_help_imports_no_heavy_module_nor_the_pipeline() -> None:
    assert _imported_after("--help") == set()
    assert _imported_after("run", "--help") == set()


def test_validate_imports_no_dataframe_or_statistics_module(tmp_path: Path) -> None:
    from segsql.starter.scaffold import create_project

    create_project(tmp_path / "p")
    assert _imported_after("validate", "--project", str(tmp_path / "p")) & {"pandas", "scipy", "statsmodels",
                                                                           "sklearn", "IPython"} == set()


def test_show_refuses_vars_it_would_ignore(runner: CliRunner, tmp_path: Path) -> None:
    code, out, err = invoke(runner, "show", "anything", "--project", str(tmp_path), "--var", "min_mrr=5")
    assert code == 2 and "would change nothing" in out + err
