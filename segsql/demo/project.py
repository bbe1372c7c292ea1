"""`segsql demo`: a ready project with synthetic data (what the README's first command runs)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from segsql.config.inputs import parse_as_of
from segsql.config.models import CONFIG_FILE
from segsql.demo.generate import DemoStats, StepProgress, generate
from segsql.project import Project
from segsql.starter.scaffold import create_project

DATABASE = Path("data") / "demo.duckdb"


def prepare_demo(directory: Path, scale: float = 1.0, seed: int = 42, as_of: str | dt.date | None = None,
                 progress: StepProgress | None = None) -> tuple[Project, DemoStats]:
    """Create the project if needed, (re)generate its data (`progress` after each step), and
    load it with `as_of`."""
    today = parse_as_of(as_of)
    if not (directory / CONFIG_FILE).exists():
        create_project(directory)
    stats = generate(directory / DATABASE, scale=scale, seed=seed, today=today, progress=progress)
    _pin_as_of(directory / CONFIG_FILE, today)
    return Project.load(directory, as_of=today), stats


def _pin_as_of(config: Path, today: dt.date) -> None:
    """The demo's data ends on `today`: later commands evaluate as of that day, not the calendar's."""
    line = f"as_of: {today.isoformat()}   # the day `segsql demo` generated the data for; --as-of overrides"
    with config.open(encoding="utf-8", newline="") as handle:
        text = handle.read()
    if re.search(r"^as_of:.*$", text, flags=re.M):
        text = re.sub(r"^as_of:.*$", line, text, count=1, flags=re.M)
    else:
        text = f"{line}\n{text}"  # a top-level key: first is as good a place as any
    with config.open("w", encoding="utf-8", newline="") as handle:  # line endings as they were
        handle.write(text)
