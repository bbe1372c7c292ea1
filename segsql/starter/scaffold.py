"""`segsql init`: a new project from the starter config and the bundled segment library."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from segsql.errors import UsageError

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


def create_project(directory: Path, force: bool = False) -> list[Path]:
    """Write segsql.yml, segments_sql/ and macros/ into `directory`; return the files written.
    With `force`, the folder may hold files already; starter files are rewritten, others kept."""
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} exists and is not a folder", None, "choose another path")
    if directory.exists() and any(directory.iterdir()) and not force:
        raise UsageError(f"{directory} is not empty", None, "choose a new folder or pass --force")
    if (directory / STARTER_CONFIG).exists() and not force:
        raise UsageError(f"{directory} already holds a segsql project", None,
                         "choose a new folder, or pass --force to rewrite the starter files")
    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / STARTER_CONFIG]
    config_text = resources.files("segsql").joinpath("starter", STARTER_CONFIG).read_text(encoding="utf-8")
    (directory / STARTER_CONFIG).write_text(config_text, encoding="utf-8")
    metrics_text = resources.files("segsql").joinpath("starter", "metrics.yml").read_text(encoding="utf-8")
    (directory / "metrics.yml").write_text(metrics_text, encoding="utf-8")
    written.append(directory / "metrics.yml")
    library = starter_segments_dir()
    for path in sorted(library.rglob("*")):
        if path.is_file() and path.suffix in (".sql", ".yml") and "__pycache__" not in path.parts:
            destination = directory / "segments_sql" / path.relative_to(library)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
            written.append(destination)
    macros = directory / "macros"
    macros.mkdir(exist_ok=True)
    (macros / "README.md").write_text(
        "Put your own Jinja macros here as .sql files; every macro is callable from segments.\n",
        encoding="utf-8")
    (directory / ".gitignore").write_text("target/\ndata/\n", encoding="utf-8")
    return written
