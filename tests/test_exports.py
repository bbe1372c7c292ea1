"""Activation exports: contract, round trips, changes-only, consent gating, atomicity, erasure."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from segsql import Project
from segsql.cli.main import cli
from segsql.errors import UsageError
from tests.conftest import write_files

CONFIG = """\
name: exports_test
connection: {type: duckdb, path: data.duckdb}
sources:
  users:
    table: users
    pii: {email: email}
entities:
  user: {key: user_id, source: users}
privacy:
  consent:
    marketing_email: {user: consent}
"""
SEGMENT = """{{ config(entity='user', export_columns=['email']) }}
SELECT u.user_id, u.email, u.country, u.score FROM {{ source('users') }} AS u WHERE u.score >= 50"""


def load_users(root: Path, scores: dict[int, int], consent: dict[int, bool | None] | None = None) -> pd.DataFrame:
    frame = pd.DataFrame({"user_id": list(scores), "score": list(scores.values())})
    frame["email"] = [f"person{k}@example.org" for k in frame.user_id]
    frame["country"] = ["DE" if k % 2 else "AT" for k in frame.user_id]
    frame["consent"] = [(consent or {}).get(k, k % 3 != 0) for k in frame.user_id]
    connection = duckdb.connect(str(root / "data.duckdb"))
    connection.register("frame", frame)
    connection.execute("CREATE OR REPLACE TABLE users AS SELECT user_id::BIGINT AS user_id, email, country, "
                       "score::INT AS score, consent::BOOLEAN AS consent FROM frame")
    connection.close()
    return frame


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write_files(tmp_path, {"segsql.yml": CONFIG, "segments_sql/engaged.sql": SEGMENT})
    return tmp_path


def run(root: Path) -> Project:
    project = Project.load(root, as_of="2026-11-23")
    project.run()
    return project


def expected_keys(frame: pd.DataFrame) -> set[str]:
    """The pandas re-computation: members of `engaged` with consent TRUE."""
    members = frame[frame.score >= 50]
    return {str(k) for k in members[members.consent.fillna(False).astype(bool)].user_id}


def test_full_csv_export_round_trips_with_consent_counts(root: Path) -> None:
    scores = {k: (k * 37) % 100 for k in range(1, 301)}
    consent = {k: None for k in range(1, 301, 7)}  # unknown consent counts as no consent
    frame = load_users(root, scores, consent)
    result = run(root).export("engaged", "csv", purpose="marketing_email")
    folder = root / "exports" / "engaged"
    members = pd.read_csv(folder / "members.csv", dtype={"entity_key": str})
    wanted = expected_keys(frame)
    assert set(members.entity_key) == wanted
    assert result.members == len(wanted)
    assert result.dropped_no_consent == int((frame.score >= 50).sum()) - len(wanted)
    assert list(members.columns) == ["segment", "entity", "entity_key", "email"]  # country, score stay home
    emails = dict(zip(frame.user_id.astype(str), frame.email, strict=True))
    assert all(emails[k] == e for k, e in zip(members.entity_key, members.email, strict=True))
    segments = pd.read_csv(folder / "segments.csv")
    assert segments.loc[0, "members"] == len(wanted)
    assert segments.loc[0, "dropped_no_consent"] == result.dropped_no_consent
    memberships = pd.read_csv(folder / "memberships.csv", dtype={"entity_key": str})
    assert set(memberships.change) == {"member"} and set(memberships.entity_key) == wanted
    assert not list(folder.glob(".*tmp"))


def test_parquet_export_keeps_types(root: Path) -> None:
    load_users(root, {1: 60, 2: 70, 3: 10})
    run(root).export("engaged", "parquet", columns=["email", "score"], purpose="marketing_email")
    members = pd.read_parquet(root / "exports" / "engaged" / "members.parquet")
    assert list(members.entity_key) == ["1", "2"]
    assert str(members.score.dtype) == "int32"


def test_changes_only_sends_exactly_the_difference(root: Path) -> None:
    scores = {k: 60 if k <= 20 else 10 for k in range(1, 41)}
    consent = {k: True for k in range(1, 41)}
    load_users(root, scores, consent)
    project = run(root)
    first = project.export("engaged", "csv", changes_only=True, purpose="marketing_email")
    assert (first.added, first.removed) == (20, 0)  # a new destination gets everyone as added
    # 1-5 leave, 21-25 enter, 6 withdraws consent (leaves the destination although still a member)
    scores.update({k: 10 for k in range(1, 6)} | {k: 60 for k in range(21, 26)})
    consent[6] = False
    frame = load_users(root, scores, consent)
    project = run(root)
    second = project.export("engaged", "csv", changes_only=True, purpose="marketing_email")
    memberships = pd.read_csv(root / "exports" / "engaged" / "memberships.csv", dtype={"entity_key": str})
    added = set(memberships[memberships.change == "added"].entity_key)
    removed = set(memberships[memberships.change == "removed"].entity_key)
    assert added == {str(k) for k in range(21, 26)}
    assert removed == {str(k) for k in [1, 2, 3, 4, 5, 6]}
    assert (second.added, second.removed, second.members) == (5, 6, len(expected_keys(frame)))
    members = pd.read_csv(root / "exports" / "engaged" / "members.csv", dtype={"entity_key": str})
    assert set(members.entity_key) == added  # attributes for the new members only
    third = project.export("engaged", "csv", changes_only=True, purpose="marketing_email")
    assert (third.added, third.removed) == (0, 0)


def test_destinations_keep_separate_state(root: Path, tmp_path: Path) -> None:
    load_users(root, {1: 60, 2: 60}, {1: True, 2: True})
    project = run(root)
    project.export("engaged", "csv", changes_only=True, purpose="marketing_email")
    other = project.export("engaged", "csv", path=tmp_path / "crm", changes_only=True, purpose="marketing_email")
    assert other.added == 2


def test_table_export_round_trips(root: Path) -> None:
    frame = load_users(root, {k: 40 + k for k in range(1, 31)})
    result = run(root).export("engaged", "table", purpose="marketing_email")
    connection = duckdb.connect(str(root / "data.duckdb"), read_only=True)
    members = connection.sql("SELECT * FROM segsql.export_members__engaged").df()
    summary = connection.sql("SELECT members, dropped_no_consent FROM segsql.export_segments").fetchall()
    memberships = connection.sql("SELECT count(*) FROM segsql.export_memberships WHERE change = 'member'").fetchall()[0]
    connection.close()
    assert set(members.entity_key) == expected_keys(frame)
    assert list(members.columns) == ["segment", "entity", "entity_key", "email"]
    assert summary == [(result.members, result.dropped_no_consent)]
    assert memberships == (result.members,)


def test_failed_write_leaves_previous_export_and_state(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from segsql.activate import exports

    load_users(root, {1: 60, 2: 60}, {1: True, 2: True})
    project = run(root)
    project.export("engaged", "csv", changes_only=True, purpose="marketing_email")
    folder = root / "exports" / "engaged"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    load_users(root, {1: 60, 2: 60, 3: 60}, {1: True, 2: True, 3: True})
    project = run(root)
    calls = []
    real = exports._write_file

    def failing(table: object, path: Path, to: str) -> None:
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real(table, path, to)  # type: ignore[arg-type]

    monkeypatch.setattr(exports, "_write_file", failing)
    with pytest.raises(exports.ExportError, match="No space left"):
        project.export("engaged", "csv", changes_only=True, purpose="marketing_email")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # no temp files, old files intact
    monkeypatch.setattr(exports, "_write_file", real)
    retry = project.export("engaged", "csv", changes_only=True, purpose="marketing_email")
    assert (retry.added, retry.removed) == (1, 0)  # the state did not move: user 3 is still new


def test_bad_export_arguments_are_named(root: Path) -> None:
    load_users(root, {1: 60})
    project = run(root)
    with pytest.raises(UsageError, match="need a consent purpose"):
        project.export("engaged", "csv")
    with pytest.raises(UsageError, match=r"unknown consent purpose `marketing_emial`.*marketing_email"):
        project.export("engaged", "csv", purpose="marketing_emial")
    with pytest.raises(UsageError, match="no output column `phone`"):
        project.export("engaged", "csv", columns=["phone"], purpose="marketing_email")
    with pytest.raises(UsageError, match=r"--to `xml`"):
        project.export("engaged", "xml", purpose="marketing_email")


def test_export_before_any_run_says_run_first(root: Path) -> None:
    load_users(root, {1: 60})
    with pytest.raises(UsageError, match="no results yet"):
        Project.load(root).export("engaged", "csv", purpose="marketing_email")


def test_cli_export_prints_counts_and_files(root: Path, runner) -> None:  # type: ignore[no-untyped-def]
    load_users(root, {1: 60, 2: 60, 3: 60}, {1: True, 2: False, 3: True})
    run(root)
    result = runner.invoke(cli, ["export", "engaged", "--project", str(root), "--to", "parquet",
                                 "--purpose", "marketing_email"])
    assert result.exit_code == 0, result.output
    assert "2 member(s); 1 dropped without `marketing_email` consent" in result.output
    assert "members.parquet" in result.output and "personal data sent: email (email)" in result.output
    missing = runner.invoke(cli, ["export", "engaged", "--project", str(root)])
    assert missing.exit_code == 2 and "--purpose" in missing.output and "Traceback" not in missing.output


def test_forget_removes_the_key_from_export_state_and_tables(root: Path) -> None:
    load_users(root, {1: 60, 2: 60}, {1: True, 2: True})
    project = run(root)
    project.export("engaged", "table", purpose="marketing_email")
    project.export("engaged", "csv", changes_only=True, purpose="marketing_email")
    project.forget("user", "2")
    connection = duckdb.connect(str(root / "data.duckdb"), read_only=True)
    try:
        for table in ("export_state", "export_memberships", "export_members__engaged", "membership", "history"):
            rows = connection.sql(f"SELECT count(*) FROM segsql.{table} WHERE entity_key = '2'").fetchall()[0]
            assert rows == (0,), table
    finally:
        connection.close()
