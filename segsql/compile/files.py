"""The load stage for templates: segment files under `segments_sql/`, inline (notebook) segments
and the project's macros. Everything here reads files; nothing renders or parses SQL.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from segsql.compile.templating import SegmentEnvironment, compile_template
from segsql.config.models import NAME_PATTERN
from segsql.errors import ConfigError, Location, SegsqlError, TemplateError, UsageError, did_you_mean

SEGMENTS_DIR = "segments_sql"
MACROS_DIR = "macros"
MAX_SEGMENT_BYTES = 10_000_000  # default of limits.segment_bytes: a 200k-item IN list fits


@dataclass
class Segment:
    """One segment file: its name (the file name without .sql) and where it lives."""
    name: str
    path: Path
    shown_path: str
    _text: str | None = field(default=None, repr=False)
    inline: bool = False  # written in a notebook cell, not (yet) a file
    max_bytes: int = MAX_SEGMENT_BYTES

    def read(self) -> str:
        """The template text; unreadable, non-UTF-8, huge or empty files raise TemplateError."""
        if self._text is None:
            self._text = read_template(self.path, self.shown_path, self.max_bytes)
        return self._text


@dataclass(frozen=True)
class SegmentFiles:
    """The segments of a project folder (by name) and the problems found while listing them."""
    root: Path
    segments: dict[str, Segment]
    problems: tuple[SegsqlError, ...] = ()

    @classmethod
    def discover(cls, root: Path, max_bytes: int = MAX_SEGMENT_BYTES) -> SegmentFiles:
        """Every `segments_sql/**/*.sql` below `root` (hidden folders skipped); files larger than
        `max_bytes` (limits.segment_bytes) are refused when read."""
        folder = root / SEGMENTS_DIR
        found: dict[str, Segment] = {}
        problems: list[SegsqlError] = []
        for path in sorted(folder.rglob("*.sql")) if folder.is_dir() else []:
            if any(part.startswith(".") for part in path.relative_to(folder).parts):
                continue
            shown = str(path.relative_to(root))
            problem = _name_problem(path.stem, shown, found)
            if problem is None:
                found[path.stem] = Segment(path.stem, path, shown, max_bytes=max_bytes)
            else:
                problems.append(problem)
        return cls(root, found, tuple(problems))

    def segment(self, name: str) -> Segment:
        if name not in self.segments:
            raise UsageError(f"unknown segment `{name}`", None,
                             did_you_mean(name, self.segments) or "run `segsql list` to see them")
        return self.segments[name]

    def with_segment(self, name: str, text: str, shown_path: str) -> SegmentFiles:
        """These files plus (or with a replaced) segment written inline, e.g. a notebook cell."""
        if not NAME_PATTERN.match(name):
            raise UsageError(f"segment name `{name}` is not a plain identifier", None,
                             "use letters, digits and _ (not starting with a digit)")
        existing = self.segments.get(name)
        path = existing.path if existing is not None and not existing.inline else \
            self.root / SEGMENTS_DIR / f"{name}.sql"
        inline = Segment(name, path, shown_path, check_template(text, shown_path), inline=True)
        return replace(self, segments={**self.segments, name: inline})


def _name_problem(name: str, shown: str, found: dict[str, Segment]) -> SegsqlError | None:
    if not NAME_PATTERN.match(name):
        return ConfigError(f"segment name `{name}` is not a plain identifier", Location(shown),
                           "rename the file using letters, digits and _ (not starting with a digit)")
    if name in found:
        return ConfigError(f"segment `{name}` is defined twice: {found[name].shown_path} and {shown}",
                           Location(shown), "segment names must be unique across folders")
    return None


def read_template(path: Path, shown: str, max_bytes: int = MAX_SEGMENT_BYTES) -> str:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise TemplateError(f"the file is {size:,} bytes; segments are limited to {max_bytes:,} "
                                "(limits.segment_bytes)", Location(shown, 1, 1),
                                "a segment is one SELECT: move data into a source table")
        raw = path.read_bytes()
    except OSError as error:
        raise TemplateError(f"cannot read the file: {error.strerror}", Location(shown)) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        col = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        raise TemplateError(f"not valid UTF-8 (byte 0x{raw[error.start]:02x})", Location(shown, line, col),
                            "save the file as UTF-8") from None
    return check_template(text, shown)


def check_template(text: str, shown: str) -> str:
    """Refuse empty templates and the characters reserved for position markers."""
    if not text.strip():
        raise TemplateError("the file is empty", Location(shown, 1, 1),
                            "a segment is {{ config(entity=...) }} followed by one SELECT")
    if "\ue000" in text or "\ue001" in text:
        raise TemplateError("the file contains reserved characters U+E000/U+E001", Location(shown, 1, 1))
    return unicodedata.normalize("NFC", text)


def load_macros(root: Path, env: SegmentEnvironment, as_of: dt.date) -> dict[str, Any]:
    """Macros from macros/*.sql, exported to segment templates by name."""
    folder = root / MACROS_DIR
    macros: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for path in sorted(folder.rglob("*.sql")) if folder.is_dir() else []:
        shown = str(path.relative_to(root))
        template = compile_template(env, read_template(path, shown), shown, instrumented=False)
        module = template.make_module({"as_of": as_of})
        for name in dir(module):
            if name.startswith("_"):
                continue
            if name in env.globals or name in macros:
                where = origin.get(name, "a segsql built-in")
                raise TemplateError(f"macro `{name}` is already defined by {where}", Location(shown))
            macros[name] = getattr(module, name)
            origin[name] = shown
    return macros
