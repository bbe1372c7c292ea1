"""The records of a run: what the runner fills in and a run store writes (engines/storage.py
names the tables). `RunResult` is also what `Project.run` returns."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from segsql.engines import storage


@dataclass
class HookOutcome:
    """What a run hook (activate/hooks.py) did after the run committed."""
    hook: str
    status: str  # "ok", "skipped (no changes)", "failed"
    attempts: int
    error: str | None = None


@dataclass
class SegmentRun:
    """One segment's outcome in a run."""
    name: str
    entity: str
    rows: int | None = None
    population: int | None = None
    duration_ms: int | None = None
    status: str = "pending"
    error: str | None = None
    definition_hash: str = ""
    point_in_time: bool = False  # as_of earlier than the timeline: history left unchanged

    @property
    def share(self) -> float | None:
        if self.rows is None or not self.population:
            return None
        return self.rows / self.population


@dataclass
class RunResult:
    """A finished (or failed) run."""
    run_id: str
    status: str
    as_of: dt.date
    segments: list[SegmentRun] = field(default_factory=list)
    error: str | None = None
    history_purged: int = 0  # closed history stays older than privacy.history_retention_months
    hooks: list[HookOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == storage.SUCCESS




@dataclass
class Replaced:
    """Run records whose history a backfill replaces, as (run_id, segment): earlier backfills'
    (`dropped`) and, with --replace, real runs' (`superseded`: kept, with their segment's status
    set to storage.SUPERSEDED so no history reader counts them)."""
    dropped: list[tuple[str, str]] = field(default_factory=list)
    superseded: list[tuple[str, str]] = field(default_factory=list)
