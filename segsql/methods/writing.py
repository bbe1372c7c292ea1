"""Writing generated segment files (RFM, clusters, propensity): validated first, never over an
analyst's edits unless asked, each file atomically."""

from __future__ import annotations

from typing import TYPE_CHECKING

from segsql.compile.target import atomic_write
from segsql.errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path

    from segsql.compile.compiler import Compiler


def write_segments(compiler: Compiler, files: dict[str, str], folder: str, force: bool = False) -> Path:
    """Validate `files` (name.sql -> text) as segments of the project, then write them to `folder`."""
    target = compiler.root / folder
    existing = [name for name in files if (target / name).exists()]
    if existing and not force:
        raise UsageError(f"{len(existing)} file(s) exist in {folder} ({', '.join(existing[:3])})", None,
                         "pass --force to overwrite them (they may hold your edits), or another --prefix")
    clashing = [name for name in files if name.removesuffix(".sql") in compiler.segments
                and compiler.segments[name.removesuffix(".sql")].path.parent != target]
    if clashing:
        raise UsageError(f"segment `{clashing[0].removesuffix('.sql')}` already exists elsewhere", None,
                         "choose another --prefix")
    candidate = compiler
    for name, text in files.items():
        candidate = candidate.with_segment(name.removesuffix(".sql"), text, f"{folder}/{name}")
    errors = candidate.validate([name.removesuffix(".sql") for name in files])
    if errors:  # a generated file that does not validate is a bug or a bad argument: write nothing
        raise sorted(errors, key=lambda e: "_scores.sql" not in str(e) and "_features" not in str(e))[0]
    target.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        atomic_write(target / name, text)
    return target
