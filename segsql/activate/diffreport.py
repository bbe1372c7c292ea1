"""What `segsql diff` found, per segment, and its reports as plain text (terminal, CI logs),
Markdown (a PR comment) and JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class SegmentDiff:
    name: str
    status: str  # changed, unchanged, added (new segment), removed (deleted segment), invalid
    entity: str | None = None
    base_size: int | None = None
    head_size: int | None = None
    added: int = 0
    removed: int = 0
    added_sample: list[Any] = field(default_factory=list)  # keys with their own type, in key order
    removed_sample: list[Any] = field(default_factory=list)
    sql_diff: str = ""
    error: str | None = None
    dbt_columns: list[str] = field(default_factory=list)  # changed dbt columns it reads: "dbt:x.col: removed"

    @property
    def size_change(self) -> int | None:
        if self.base_size is None or self.head_size is None:
            return None
        return self.head_size - self.base_size


@dataclass
class DiffReport:
    base: str  # the revision as given
    base_commit: str
    segments: list[SegmentDiff]
    dbt_changes: dict[str, dict[str, str]] = field(default_factory=dict)  # dbt:x -> column -> change
    dbt_note: str = ""  # why dbt changes could not be compared, when they could not

    @property
    def invalid(self) -> list[SegmentDiff]:
        return [s for s in self.segments if s.status == "invalid"]

    def to_json(self) -> str:
        return json.dumps({"base": self.base, "base_commit": self.base_commit,
                           "segments": [{**asdict(s), "size_change": s.size_change} for s in self.segments],
                           "dbt_changes": self.dbt_changes, "dbt_note": self.dbt_note}, indent=2)

    def ordered(self) -> list[SegmentDiff]:
        """Invalid, changed, added and removed segments first (by name), unchanged ones last."""
        return _sorted(self)

    def to_text(self) -> str:
        return text(self)

    def to_markdown(self) -> str:
        return markdown(self)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


ORDER = {"invalid": 0, "changed": 1, "added": 2, "removed": 3, "unchanged": 4}


def _size(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


def _change(segment: SegmentDiff) -> str:
    delta = segment.size_change
    if delta is None:
        return "new" if segment.status == "added" else ("deleted" if segment.status == "removed" else "")
    if not segment.base_size:
        return f"{delta:+,}"
    return f"{delta:+,} ({delta / segment.base_size:+.1%})"


def _sorted(report: DiffReport) -> list[SegmentDiff]:
    return sorted(report.segments, key=lambda s: (ORDER[s.status], s.name))


def _headline(report: DiffReport) -> str:
    touched = [s for s in report.segments if s.status != "unchanged"]
    return (f"segsql diff against {report.base} ({report.base_commit}): {len(touched)} of "
            f"{len(report.segments)} segment(s) differ")


def _dbt_lines(report: DiffReport) -> list[str]:
    """The dbt columns that changed between the revisions' artifacts (and who reads them)."""
    lines = [f"{node}.{column}: {change}" for node, columns in report.dbt_changes.items()
             for column, change in columns.items()]
    if report.dbt_note:
        lines.append(report.dbt_note)
    return lines


def text(report: DiffReport) -> str:
    lines = [_headline(report)]
    if report.dbt_changes or report.dbt_note:
        lines += ["", "dbt columns changed:" if report.dbt_changes else "dbt:",
                  *("  " + line for line in _dbt_lines(report))]
    for segment in _sorted(report):
        if segment.status == "unchanged" and segment.dbt_columns:
            lines.append(f"\n{segment.name} (same SQL) reads changed dbt columns: {', '.join(segment.dbt_columns)}")
        if segment.status == "unchanged":
            continue
        if segment.status == "invalid":
            lines.append(f"\n{segment.name}: INVALID in the working tree: {segment.error}")
            continue
        lines.append(f"\n{segment.name} ({segment.status}, {segment.entity}): size {_size(segment.base_size)} -> "
                     f"{_size(segment.head_size)} {_change(segment)}; +{segment.added:,} added, "
                     f"-{segment.removed:,} removed")
        if segment.added_sample:
            lines.append(f"  added e.g.:   {', '.join(map(str, segment.added_sample))}")
        if segment.removed_sample:
            lines.append(f"  removed e.g.: {', '.join(map(str, segment.removed_sample))}")
        if segment.dbt_columns:
            lines.append(f"  reads changed dbt columns: {', '.join(segment.dbt_columns)}")
        if segment.sql_diff:
            lines.extend("  " + line for line in segment.sql_diff.rstrip("\n").splitlines())
    unchanged = [s.name for s in _sorted(report) if s.status == "unchanged"]
    if unchanged:
        lines.append(f"\nunchanged: {', '.join(unchanged)}")
    return "\n".join(lines) + "\n"


def _cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def markdown(report: DiffReport) -> str:
    lines = [f"### {_headline(report)}", "",
             "| segment | status | entity | base size | new size | change | added | removed |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for segment in _sorted(report):
        if segment.status == "invalid":
            lines.append(f"| `{segment.name}` | **invalid** | | | | | | |")
            continue
        lines.append(f"| `{segment.name}` | {segment.status} | {segment.entity or ''} | {_size(segment.base_size)} | "
                     f"{_size(segment.head_size)} | {_change(segment)} | {segment.added:,} | {segment.removed:,} |")
    if report.dbt_changes or report.dbt_note:
        lines += ["", "**dbt columns changed:**" if report.dbt_changes else "**dbt:**", "",
                  *(f"- `{_cell(line)}`" for line in _dbt_lines(report))]
        readers = [s for s in _sorted(report) if s.dbt_columns]
        lines += [f"- read by `{s.name}`: {', '.join(f'`{c}`' for c in s.dbt_columns)}" for s in readers]
    for segment in _sorted(report):
        if segment.status == "invalid":
            lines += ["", f"**`{segment.name}` does not validate:** `{_cell(segment.error or '')}`"]
        elif segment.status != "unchanged":
            lines += ["", f"<details><summary><code>{segment.name}</code>: +{segment.added:,} / "
                          f"-{segment.removed:,}</summary>", ""]
            if segment.added_sample:
                lines.append(f"Added, e.g.: {', '.join(f'`{k}`' for k in segment.added_sample)}  ")
            if segment.removed_sample:
                lines.append(f"Removed, e.g.: {', '.join(f'`{k}`' for k in segment.removed_sample)}")
            lines += ["", "```diff", segment.sql_diff.rstrip("\n"), "```", "", "</details>"]
    return "\n".join(lines) + "\n"
