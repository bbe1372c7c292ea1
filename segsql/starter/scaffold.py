"""`segsql init`: a new project from the starter config and the bundled segment library."""

from __future__ import annotations

import os
import shutil
import uuid
from importlib import resources
from pathlib import Path

import yaml

from segsql.errors import UsageError
from segsql.starter.salt import SALT_FILE, write_salt

STARTER_CONFIG = "segsql.yml"


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


def starter_database() -> Path:
    """The DuckDB file the starter config connects to, relative to the project (`segsql demo` fills it)."""
    config = yaml.safe_load(_starter_text(STARTER_CONFIG))
    return Path(config["connection"]["path"])


def create_project(directory: Path, force: bool = False) -> list[Path]:
    """Write segsql.yml, metrics.yml, segments_sql/, macros/ and an empty database into `directory`;
    return the files written. With `force`, the folder may hold files already; starter files are
    rewritten, others (and an existing database) kept. Everything is written into a staging folder
    beside `directory` first, so a failure leaves nothing behind."""
    _refuse_existing(directory, force)
    library = starter_segments_dir()
    created_parent = next((p for p in reversed(directory.parents) if not p.exists()), None)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = directory.parent / f".{directory.name}.segsql-init-{uuid.uuid4().hex[:8]}"
    staging.mkdir()  # not tempfile.mkdtemp: its 0700 mode would become the project's
    try:
        written = _write_starter(staging, library, keep_database=(directory / starter_database()).exists(),
                                 keep_salt=(directory / SALT_FILE).exists())
        _move_into(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created_parent is not None:
            shutil.rmtree(created_parent, ignore_errors=True)
        raise
    return [directory / path for path in written]


def next_steps(directory: Path) -> str:
    """What `segsql init` tells the user to do with the new project."""
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


def _write_starter(root: Path, library: Path, keep_database: bool, keep_salt: bool) -> list[Path]:
    """The starter files under `root`; returns their paths relative to it."""
    written = [Path(STARTER_CONFIG), Path("metrics.yml")]
    for name in written:
        (root / name).write_text(_starter_text(str(name)), encoding="utf-8")
    for path in sorted(library.rglob("*")):
        if path.is_file() and path.suffix in (".sql", ".yml") and "__pycache__" not in path.parts:
            relative = "segments_sql" / path.relative_to(library)
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, root / relative)
            written.append(relative)
    (root / "macros").mkdir()
    (root / "macros" / "README.md").write_text(
        "Put your own Jinja macros here as .sql files; every macro is callable from segments.\n",
        encoding="utf-8")
    (root / ".gitignore").write_text("target/\ndata/\n.segsql/\n", encoding="utf-8")
    if not keep_salt:
        written.append(write_salt(root).relative_to(root))
    if not keep_database:
        written.append(_create_database(root / starter_database()).relative_to(root))
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
