"""Bad input files give clean errors located at the file, and nothing runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from segsql import Project, TemplateError
from tests.conftest import ProjectFactory

CFG = "{{ config(entity='account') }}\n"


def single_error(make_project: ProjectFactory, content: str | bytes, **kwargs: object) -> TemplateError:
    if isinstance(content, bytes):
        project = make_project({}, files={"segments_sql/seg.sql": content}, **kwargs)
    else:
        project = make_project({"seg": content}, **kwargs)
    [error] = project.validate()
    assert isinstance(error, TemplateError) and error.path == "segments_sql/seg.sql"
    return error


def test_empty_file(make_project: ProjectFactory) -> None:
    assert "empty" in single_error(make_project, "  \n\n").message


def test_non_utf8_file_points_at_the_byte(make_project: ProjectFactory) -> None:
    error = single_error(make_project, b"{{ config(entity='account') }}\nSELECT '\xe9t\xe9' AS account_id")
    assert "not valid UTF-8" in error.message and (error.line, error.col) == (2, 9)


def test_huge_file(make_project: ProjectFactory) -> None:
    error = single_error(make_project, CFG + "SELECT 1 AS account_id\n" + "-- padding\n" * 1_000_000)
    assert "limited to" in error.message and "limits.segment_bytes" in error.message


def test_unreadable_segment_file(make_project: ProjectFactory, tmp_path: Path) -> None:
    project = make_project({"ok": CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a"})
    (tmp_path / "segments_sql" / "weird.sql").mkdir()  # a folder named like a segment cannot be read
    project = Project.load(tmp_path, as_of=project.as_of)
    errors = project.validate()
    assert len(errors) == 1 and "cannot read" in errors[0].message


def test_unicode_identifiers_and_values(make_project: ProjectFactory) -> None:
    project = make_project({"seg": "{{ config(entity='account', description='Größe ✓') }}\n"
                            "SELECT a.account_id, a.arr AS \"Umsatz_€\" FROM {{ source('accounts') }} AS a "
                            "WHERE a.name = 'Zürich' AND a.region = {{ param('r', 'Österreich') }}"})
    assert project.validate() == []
    sql = project.compile("seg", dialect="postgres")
    assert '"Umsatz_€"' in sql and "'Österreich'" in sql


def test_bad_segment_names_and_duplicates(make_project: ProjectFactory) -> None:
    project = make_project({"ok": CFG + "SELECT 1 AS account_id", "a/dup": CFG + "SELECT 1 AS account_id",
                            "b/dup": CFG + "SELECT 1 AS account_id", "bad-name": CFG + "SELECT 1 AS account_id"})
    messages = sorted(e.message for e in project.validate())
    assert any("defined twice" in m for m in messages)
    assert any("not a plain identifier" in m for m in messages)


def test_reserved_marker_characters_are_refused(make_project: ProjectFactory) -> None:
    assert "reserved" in single_error(make_project, CFG + "SELECT '\ue000' AS account_id").message


def test_a_missing_source_file_names_the_key_to_fix(tmp_path: Path) -> None:
    from segsql import EngineError
    from tests.conftest import write_files

    write_files(tmp_path, {"segsql.yml": "sources:\n  customer: {path: data/missing.parquet, static: true}\n"
                           "entities:\n  customer: {key: c_custkey, source: customer}\n"})
    project = Project.load(tmp_path)
    with pytest.raises(EngineError, match=r"fix sources\.customer\.path in segsql\.yml"), project.engine() as engine:
        engine.prepare_sources()
