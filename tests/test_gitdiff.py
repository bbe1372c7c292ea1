"""`segsql diff`: a git repo with two commits; the report must equal running both versions."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import duckdb
import pytest

from segsql import Project
from segsql.cli.main import cli
from segsql.errors import UsageError
from tests.conftest import write_files

CONFIG = """\
connection: {type: duckdb, path: data/data.duckdb}
sources:
  accounts: {table: accounts}
entities:
  account: {key: account_id, source: accounts}
"""


def segment(where: str) -> str:
    return "{{ config(entity='account') }}\nSELECT a.account_id, a.score FROM {{ source('accounts') }} AS a " + where


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=root,
                          check=True, capture_output=True, text=True).stdout


def committed_repo(root: Path, segments: dict[str, str], accounts: int = 500) -> Path:
    """A project of `accounts` accounts and these segments, committed on `main` (data/ ignored)."""
    (root / "data").mkdir(parents=True)
    connection = duckdb.connect(str(root / "data" / "data.duckdb"))
    connection.execute("CREATE TABLE accounts AS SELECT range AS account_id, (range * 37) % 100 AS score, "
                       f"range % 3 = 0 AS flagged FROM range(1, {accounts + 1})")
    connection.close()
    write_files(root, {"segsql.yml": CONFIG, ".gitignore": "data/\ntarget/\n",
                       **{f"segments_sql/{name}.sql": text for name, text in segments.items()}})
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "base")
    return root


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = committed_repo(tmp_path / "repo", {
        "engaged": segment("WHERE a.score >= 50"), "steady": segment("WHERE a.flagged"),
        "legacy": segment("WHERE a.score < 5"),
        "top": "{{ config(entity='account') }}\nSELECT e.account_id FROM {{ ref('engaged') }} AS e WHERE e.score > 90"})
    git(root, "checkout", "-q", "-b", "feature")
    (root / "segments_sql" / "engaged.sql").write_text(segment("WHERE a.score >= 40 AND NOT a.flagged"))
    (root / "segments_sql" / "legacy.sql").unlink()
    (root / "segments_sql" / "fresh.sql").write_text(segment("WHERE a.score = 7"))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "feature")
    return root


def members_by_hand(root: Path) -> dict[str, set[int]]:
    """Run a checkout of the project with segsql's normal run and read the members back."""
    project = Project.load(root, as_of="2026-11-23")
    project.run()
    return {name: {int(k) for k in project.members(name)["account_id"]} for name in project.segments}


def test_diff_reports_exactly_the_membership_difference(repo: Path, tmp_path: Path) -> None:
    report = Project.load(repo, as_of="2026-11-23").diff()  # default base: merge base with main
    by_name = {s.name: s for s in report.segments}
    assert {n: s.status for n, s in by_name.items()} == {
        "engaged": "changed", "steady": "unchanged", "legacy": "removed", "fresh": "added", "top": "changed"}
    base_root = tmp_path / "base"
    git(repo, "worktree", "add", "-q", str(base_root), "main")
    shutil.copytree(repo / "data", base_root / "data")
    before, after = members_by_hand(base_root), members_by_hand(repo)
    for name in ("engaged", "top", "fresh", "legacy"):
        old, new = before.get(name, set()), after.get(name, set())
        diff = by_name[name]
        assert (diff.added, diff.removed) == (len(new - old), len(old - new)), name
        assert diff.added_sample == sorted(new - old)[:5] and diff.removed_sample == sorted(old - new)[:5]
        assert diff.head_size == (len(new) if name in after else None)
        assert diff.base_size == (len(old) if name in before else None)
    assert by_name["engaged"].added and by_name["engaged"].removed  # the test data moves both ways
    assert "-WHERE\n" not in by_name["engaged"].sql_diff and "a.score >= 40" in by_name["engaged"].sql_diff


def test_uncommitted_edits_count_and_markdown_is_a_pr_comment(repo: Path, runner: Any) -> None:
    (repo / "segments_sql" / "steady.sql").write_text(segment("WHERE a.flagged AND a.score > 10"))
    result = runner.invoke(cli, ["diff", "--project", str(repo), "--base", "HEAD", "--format", "markdown",
                                 "--as-of", "2026-11-23"])
    assert result.exit_code == 0, result.output
    assert "| `steady` | changed | account |" in result.output
    assert "```diff" in result.output and "+  a.flagged AND a.score > 10" in result.output
    plain = runner.invoke(cli, ["diff", "--project", str(repo), "--base", "HEAD", "--as-of", "2026-11-23"])
    assert "steady (changed, account)" in plain.output and "unchanged: " in plain.output
    data = json.loads(runner.invoke(cli, ["diff", "--project", str(repo), "--base", "HEAD", "--format", "json",
                                          "--as-of", "2026-11-23"]).output)
    steady = next(s for s in data["segments"] if s["name"] == "steady")
    assert steady["removed"] == steady["base_size"] - steady["head_size"] > 0 and steady["added"] == 0


def test_diff_writes_nothing(repo: Path) -> None:
    Project.load(repo, as_of="2026-11-23").diff(base="main")
    connection = duckdb.connect(str(repo / "data" / "data.duckdb"), read_only=True)
    tables = connection.sql("SELECT table_name FROM information_schema.tables").fetchall()
    connection.close()
    assert tables == [("accounts",)]


def test_an_invalid_segment_in_the_working_tree_fails_the_diff(repo: Path, runner: Any) -> None:
    (repo / "segments_sql" / "fresh.sql").write_text(segment("WHERE a.scor = 7"))
    result = runner.invoke(cli, ["diff", "--project", str(repo), "--base", "main"])
    assert result.exit_code == 1
    assert "fresh: INVALID" in result.output and "segments_sql/fresh.sql:2:" in result.output


def test_bad_revisions_and_no_repository_are_clear(repo: Path, tmp_path: Path) -> None:
    project = Project.load(repo)
    with pytest.raises(UsageError, match="`nope` is not a git revision"):
        project.diff(base="nope")
    outside = tmp_path / "plain"
    write_files(outside, {"segsql.yml": CONFIG})
    with pytest.raises(UsageError, match="not inside a git repository"):
        Project.load(outside).diff()


def test_project_in_a_subfolder_of_the_repository(tmp_path: Path) -> None:
    repo = tmp_path / "mono"
    root = repo / "analytics" / "segments"
    (root / "data").mkdir(parents=True)
    connection = duckdb.connect(str(root / "data" / "data.duckdb"))
    connection.execute("CREATE TABLE accounts AS SELECT range AS account_id, range AS score FROM range(1, 11)")
    connection.close()
    write_files(root, {"segsql.yml": CONFIG, "segments_sql/big.sql": segment("WHERE a.score > 5")})
    write_files(repo, {".gitignore": "data/\n"})
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "one")
    (root / "segments_sql" / "big.sql").write_text(segment("WHERE a.score > 3"))
    report = Project.load(root).diff(base="main")
    assert [(s.name, s.added, s.removed, s.added_sample) for s in report.segments] == [("big", 2, 0, [4, 5])]


def test_segment_diff_magic_in_a_real_ipython_shell(repo: Path) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        shell.run_line_magic("load_ext", "segsql")
        shell.run_line_magic("segsql", f"project {repo}")
        view = shell.run_line_magic("segment_diff", "--base main --as-of 2026-11-23")
        bundle = view._repr_mimebundle_()
        assert "engaged (changed, account)" in bundle["text/plain"]
        assert "<td>engaged</td><td>changed</td>" in bundle["text/html"].replace(" class=''", "")
        failed = shell.run_cell("%segment_diff --base nope", store_history=False)
        assert not failed.success and "`nope` is not a git revision" in str(failed.error_in_exec)
    finally:
        shell.run_line_magic("segsql", "close")
        shell.run_line_magic("unload_ext", "segsql")
        InteractiveShell.clear_instance()
