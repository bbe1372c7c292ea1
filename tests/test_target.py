"""target/: compiled files and manifest, atomic and identical whether compiled on one core or several."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from segsql import Project
from tests.conftest import AS_OF, BASE_CONFIG, write_files

CFG = "{{ config(entity='account') }}\n"


def make(root: Path, count: int, broken: bool = False) -> Project:
    segments = {f"segments_sql/s{i:03d}.sql": CFG + f"SELECT a.account_id FROM {{{{ source('accounts') }}}} AS a "
                f"WHERE a.arr > {{{{ param('p', {i}) }}}}" for i in range(count)}
    segments["segments_sql/z_down.sql"] = CFG + "SELECT x.account_id FROM {{ ref('s001') }} AS x"
    if broken:
        segments["segments_sql/s007.sql"] = CFG + "SELECT a.nope FROM {{ source('accounts') }} AS a"
    write_files(root, {"segsql.yml": BASE_CONFIG, **segments})
    return Project.load(root, as_of=AS_OF)


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted((root / "target").rglob("*.sql"))}


def test_parallel_compile_writes_the_same_files(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    serial = make(one, 30).write_target(make(one, 30).select(ordered=False), ["duckdb", "postgres"], workers=1)
    parallel = make(two, 30).write_target(make(two, 30).select(ordered=False), ["duckdb", "postgres"], workers=2)
    assert not serial.errors and not parallel.errors
    assert snapshot(one) == snapshot(two) and len(snapshot(one)) == 62
    assert json.loads((one / "target/manifest.json").read_text()) == json.loads((two / "target/manifest.json").read_text())


def test_parallel_compile_reports_errors_with_locations(tmp_path: Path) -> None:
    project = make(tmp_path, 20, broken=True)
    report = project.write_target(project.select(ordered=False), ["duckdb"], workers=2)
    [error] = report.errors
    assert (error.path, error.line, error.col, error.message) == (
        "segments_sql/s007.sql", 2, 10, "unknown column `nope` in `a`")
    assert not (tmp_path / "target").exists()


def test_outputs_follow_the_umask(tmp_path: Path) -> None:
    project = make(tmp_path, 2)
    project.write_target(project.select(ordered=False), ["duckdb"])
    mode = stat.S_IMODE((tmp_path / "target/manifest.json").stat().st_mode)
    assert mode & stat.S_IRGRP, oct(mode)  # not mkstemp's 0600
