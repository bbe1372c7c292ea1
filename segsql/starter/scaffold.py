"""`segsql init`: a new project from the starter config and the bundled segment library."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from importlib import resources
from pathlib import Path

import yaml

from segsql.errors import UsageError
from segsql.starter.salt import SALT_FILE, write_salt

STARTER_CONFIG = "segsql.yml"
EMPTY_CONFIG = "empty.yml"  # `segsql init --empty`: no starter library, no SaaS sources or targets
EMPTY_METRICS = "# KPIs per segment: see docs/metrics.md for the format and the starter examples.\nmetrics: {}\n"


def starter_segments_dir() -> Path:
    """The bundled segment library: `segments_sql/` of the source tree or the installed copy."""
    checkout = Path(__file__).resolve().parents[2] / "segments_sql"
    if checkout.is_dir():
        return checkout
    installed = Path(str(resources.files("segsql") / "starter" / "segments_sql"))
    if installed.is_dir():
        return installed
    raise UsageError("the starter segment library is missing from this installation",
                     None, "reinstall segsql")


def starter_database(empty: bool = False) -> Path:
    """The DuckDB file the starter config connects to, relative to the project (`segsql demo` fills it)."""
    config = yaml.safe_load(_starter_text(EMPTY_CONFIG if empty else STARTER_CONFIG))
    return Path(config["connection"]["path"])


def create_project(directory: Path, force: bool = False, empty: bool = False) -> list[Path]:
    """Write segsql.yml, metrics.yml, segments_sql/, macros/ and an empty database into `directory`;
    return the files written. With `force`, the folder may hold files already; starter files are
    rewritten, others (and an existing database) kept. With `empty`, no starter library and no
    sources: a project for other data (a shop, TPC-H). Everything is written into a staging
    folder beside `directory` first, so a failure leaves nothing behind."""
    _refuse_existing(directory, force)
    library = None if empty else starter_segments_dir()
    created_parent = next((p for p in reversed(directory.parents) if not p.exists()), None)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = directory.parent / f".{directory.name}.segsql-init-{uuid.uuid4().hex[:8]}"
    staging.mkdir()  # not tempfile.mkdtemp: its 0700 mode would become the project's
    try:
        written = _write_starter(staging, library, directory.name,
                                 keep_database=(directory / starter_database(empty)).exists(),
                                 keep_salt=(directory / SALT_FILE).exists())
        _move_into(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created_parent is not None:
            shutil.rmtree(created_parent, ignore_errors=True)
        raise
    return [directory / path for path in written]


def next_steps(directory: Path, empty: bool = False) -> str:
    """What `segsql init` tells the user to do with the new project."""
    if empty:
        return (f"{directory / starter_database(True)} is an empty DuckDB database: load your tables into it or "
                f"point `connection:` in {directory / STARTER_CONFIG} at your database; declare the tables under "
                f"sources: and what you segment under entities:, then write segments_sql/NAME.sql and run "
                f"segsql validate --project {directory}")
    return (f"{directory / starter_database()} is an empty DuckDB database: load your tables into it or point "
            f"`connection:` in {directory / STARTER_CONFIG} at your database (or fill it with sample data: "
            f"segsql demo {directory}); next: segsql validate --project {directory}, "
            f"then segsql run --project {directory}")


def _refuse_existing(directory: Path, force: bool) -> None:
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} exists and is not a folder", None, "choose another path")
    if directory.exists() and any(directory.iterdir()) and not force:
        raise UsageError(f"{directory} is not empty", None, "choose a new folder or pass --force")


def _starter_text(name: str) -> str:
    return resources.files("segsql").joinpath("starter", name).read_text(encoding="utf-8")


def _write_starter(root: Path, library: Path | None, name: str, keep_database: bool, keep_salt: bool) -> list[Path]:
    """The starter files under `root` (`library` None: an empty project); returns their paths
    relative to it."""
    written = [Path(STARTER_CONFIG), Path("metrics.yml")]
    if library is None:
        quoted = json.dumps(_project_name(name))  # a JSON string is a YAML string: `2026` stays text
        config = _starter_text(EMPTY_CONFIG).replace("name: my_project", f"name: {quoted}", 1)
        (root / STARTER_CONFIG).write_text(config, encoding="utf-8")
        (root / "metrics.yml").write_text(EMPTY_METRICS, encoding="utf-8")
        (root / "segments_sql").mkdir()
        (root / "segments_sql" / "README.md").write_text(SEGMENTS_README, encoding="utf-8")
    else:
        for file_name in written:
            (root / file_name).write_text(_starter_text(str(file_name)), encoding="utf-8")
        written.extend(_copy_library(library, root))
    (root / "macros").mkdir()
    (root / "macros" / "README.md").write_text(
        "Put your own Jinja macros here as .sql files; every macro is callable from segments.\n",
        encoding="utf-8")
    (root / ".gitignore").write_text("target/\ndata/\n.segsql/\n", encoding="utf-8")
    if not keep_salt:
        written.append(write_salt(root).relative_to(root))
    if not keep_database:
        written.append(_create_database(root / starter_database(library is None)).relative_to(root))
    return written


SEGMENTS_README = """One segment per .sql file: a config() call, then one SELECT returning the entity key, e.g.

    {{ config(entity='customer', description='Customers in Germany') }}
    SELECT c.customer_id FROM {{ source('customers') }} AS c WHERE c.country = 'DE'

Helpers (ref, var, param, days_ago, rollup, rfm, split, ...): docs/templating.md.
"""


def _project_name(folder: str) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in folder).strip("_")
    return cleaned or "my_project"


def _copy_library(library: Path, root: Path) -> list[Path]:
    written = []
    for path in sorted(library.rglob("*")):
        if path.is_file() and path.suffix in (".sql", ".yml") and "__pycache__" not in path.parts:
            relative = "segments_sql" / path.relative_to(library)
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, root / relative)
            written.append(relative)
    return written


def _create_database(path: Path) -> Path:
    """An empty DuckDB file, so the starter connection opens (and `segsql demo` can fill it)."""
    import duckdb

    path.parent.mkdir(parents=True, exist_ok=True)
    duckdb.connect(str(path)).close()
    return path


def _move_into(staging: Path, directory: Path) -> None:
    """The staged project becomes `directory`: one rename, or with --force a move per file."""
    if directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
    if not directory.exists():
        staging.rename(directory)
        return
    for path in sorted(staging.rglob("*")):
        if path.is_file():
            destination = directory / path.relative_to(staging)
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, destination)
    shutil.rmtree(staging)
