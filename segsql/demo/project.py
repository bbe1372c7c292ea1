"""`segsql demo`: a ready project with synthetic data (what the README's first command runs)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from segsql.config.inputs import parse_as_of
from segsql.config.models import CONFIG_FILE
from segsql.demo.generate import DemoStats, generate
from segsql.project import Project
from segsql.starter.scaffold import create_project

DATABASE = Path("data") / "demo.duckdb"


def prepare_demo(directory: Path, scale: float = 1.0, seed: int = 42,
                 as_of: str | dt.date | None = None) -> tuple[Project, DemoStats]:
    """Create the project if needed, (re)generate its data, and load it with `as_of`."""
    today = parse_as_of(as_of)
    if not (directory / CONFIG_FILE).exists():
        create_project(directory)
    stats = generate(directory / DATABASE, scale=scale, seed=seed, today=today)
    return Project.load(directory, as_of=today), stats
