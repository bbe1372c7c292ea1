"""`--format json` is one JSON document (an array of objects; diff: one report object) and
`--format jsonl` one object per line, in every command that prints JSON (the main --help says so)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from segsql.cli import cli
from segsql.demo.project import prepare_demo
from tests.conftest import AS_OF

# Every command with a json --format, with arguments that give it rows on the demo.
COMMANDS: dict[str, list[str]] = {
    "list": [],
    "show": ["high_mrr_accounts", "--all"],
    "compare": ["high_mrr_accounts", "enterprise_dach", "--metrics", "churn_rate,nrr"],
    "overlap": ["power_users", "dach_users"],
    "waterfall": ["enterprise_dach"],
    "prioritize": ["high_mrr_accounts", "enterprise_dach"],
    "validate-segments": ["--select", "tag:value"],
    "metrics": [],
    "readout": ["onboarding_experiment", "--metrics", "feature_adoption"],
    "power": ["onboarding_experiment", "-m", "feature_adoption"],
    "history": ["high_mrr_accounts"],
    "diff": ["--base", "HEAD"],
}


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=root, check=True,
                   capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("json") / "demo"
    project, _ = prepare_demo(root, scale=0.1, seed=3, as_of=AS_OF)
    project.run()
    (root / ".gitignore").write_text("data/\ntarget/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "base")
    edited = root / "segments_sql" / "value" / "high_mrr_accounts.sql"
    edited.write_text(edited.read_text() + "\n  AND 1 = 1\n")
    return root


def json_commands() -> set[str]:
    context = click.Context(cli)
    found = set()
    for name in cli.list_commands(context):
        command = cli.get_command(context, name)
        assert command is not None
        for parameter in command.params:
            if parameter.name == "output_format" and "json" in getattr(parameter.type, "choices", ()):
                found.add(name)
    return found


def test_every_command_with_json_output_is_covered() -> None:
    assert json_commands() == set(COMMANDS)


def invoke(demo: Path, name: str, output_format: str) -> str:
    done = CliRunner().invoke(cli, [name, *COMMANDS[name], "--project", str(demo), "--format", output_format])
    assert done.exit_code in ((0, 1) if name == "validate-segments" else (0,)), (name, done.output)  # 1: a check failed
    return done.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_json_is_one_document_of_the_documented_shape(demo: Path, name: str) -> None:
    document = json.loads(invoke(demo, name, "json"))  # the whole of stdout: one document
    if name == "diff":  # a report: one object
        assert set(document) == {"base", "base_commit", "segments", "dbt_changes", "dbt_note"}
        assert isinstance(document["segments"], list) and isinstance(document["dbt_changes"], dict)
        assert {"name": "high_mrr_accounts", "status": "changed"}.items() <= next(
            s for s in document["segments"] if s["name"] == "high_mrr_accounts").items()
        return
    assert isinstance(document, list) and document and all(isinstance(row, dict) for row in document)
    assert len({frozenset(row) for row in document}) == 1  # the same keys in every object
    lines = invoke(demo, name, "jsonl").splitlines()
    # jsonl: the same objects, one per line; floats to 1e-9 (DuckDB's parallel SUM of doubles varies
    # in the last bits between two runs, which pandas' 10-decimal JSON used to hide)
    assert [json.loads(line) for line in lines] == [{k: pytest.approx(v, rel=1e-9) if isinstance(v, float) else v
                                                      for k, v in row.items()} for row in document]


def test_diff_has_no_jsonl_and_the_shapes_are_documented() -> None:
    assert "jsonl" not in next(p for p in cli.commands["diff"].params if p.name == "output_format").type.choices  # type: ignore[attr-defined]
    docs = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text()
    assert "json   one JSON document: an array of objects" in docs and "jsonl  one JSON object per line" in docs


def test_an_empty_result_is_an_empty_array(demo: Path) -> None:
    done = CliRunner().invoke(cli, ["show", "high_mrr_accounts", "--project", str(demo), "--format", "json", "-n", "0"])
    assert done.exit_code == 0 and json.loads(done.stdout) == []


def test_json_cells_of_every_kind_an_engine_returns() -> None:
    """The one JSON writer (pandas' to_json kept 10 decimals and was replaced): lists from DuckDB
    LIST columns, Decimal from Postgres NUMERIC (NaN and infinity as null), numpy scalars inside
    structs, bytes, nullable integers, non-text column labels; nothing raises, nothing is lost."""
    import contextlib
    import datetime as dt
    import decimal
    import io

    import numpy as np
    import pandas as pd

    from segsql.cli.render import emit

    frame = pd.DataFrame({
        "ts": [pd.Timestamp("2024-01-02 03:04:05.123456"), pd.NaT], "day": [dt.date(2024, 1, 2), None],
        "amount": [decimal.Decimal("1.5"), decimal.Decimal("NaN")], "whole": [decimal.Decimal("3"), decimal.Decimal("Infinity")],
        "tags": [np.array([1, 2]), np.array([3])], 1: [1, 2], "struct": [{"x": np.int64(1)}, None],
        "raw": [b"ab", None], "p": [4e-12, float("nan")], "count": pd.array([1, None], dtype="Int64")})
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        emit(frame, "json")
    assert json.loads(out.getvalue()) == [
        {"ts": "2024-01-02T03:04:05.123456", "day": "2024-01-02", "amount": 1.5, "whole": 3, "tags": [1, 2], "1": 1,
         "struct": {"x": 1}, "raw": "ab", "p": 4e-12, "count": 1},
        {"ts": None, "day": None, "amount": None, "whole": None, "tags": [3], "1": 2, "struct": None, "raw": None,
         "p": None, "count": None}]
