"""One error root for everything segsql raises, carrying where the analyst can fix it.

Every error knows the file, line and column in the analyst's own text (template, config, CLI
argument) when it has them, and a hint saying how to fix it. `str(error)` is the one line the
CLI prints: ``path:line:col: message (hint)``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Location:
    """A place in a file the analyst wrote: 1-based line and column."""

    path: str
    line: int | None = None
    col: int | None = None

    def __str__(self) -> str:
        parts = [self.path]
        if self.line is not None:
            parts.append(str(self.line))
            if self.col is not None:
                parts.append(str(self.col))
        return ":".join(parts)


class SegsqlError(Exception):
    """Root of every error segsql raises on purpose."""

    def __init__(self, message: str, location: Location | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint

    @property
    def path(self) -> str | None:
        return self.location.path if self.location else None

    @property
    def line(self) -> int | None:
        return self.location.line if self.location else None

    @property
    def col(self) -> int | None:
        return self.location.col if self.location else None

    def __str__(self) -> str:
        text = self.message if not self.hint else f"{self.message} ({self.hint})"
        return f"{self.location}: {text}" if self.location else text


class ConfigError(SegsqlError):
    """segsql.yml, a segment's config() call, or a value given for a var/param is wrong."""


class TemplateError(SegsqlError):
    """The Jinja template could not be rendered (syntax, undefined name, bad helper call)."""


class SqlError(SegsqlError):
    """The rendered SQL does not parse, or is not one read-only SELECT."""


class ValidationError(SegsqlError):
    """The SQL parses but refers to unknown tables/columns or breaks a segment rule."""


class SelectionError(SegsqlError):
    """A --select/--exclude expression names nothing or is malformed."""


class EngineError(SegsqlError):
    """The engine could not connect, read its catalog or run a statement. `pointed_at` is the
    part of the statement the engine pointed at, when it gave a position (LINE n with carets):
    (the text before it on that line, the part itself)."""

    pointed_at: tuple[str, str] | None = None


class UsageError(SegsqlError):
    """A command-line or API argument is wrong (maps to exit code 2)."""


# An optional dependency's import name -> the extra of segsql that installs it (pyproject.toml).
EXTRAS = {"sklearn": "methods", "psycopg": "postgres", "pyspark": "spark", "py4j": "spark",
          "IPython": "notebook", "ipywidgets": "notebook", "altair": "notebook", "vl_convert": "notebook",
          "snowflake": "snowflake", "google": "bigquery"}


def missing_dependency(error: ModuleNotFoundError) -> UsageError | None:
    """What to say instead of a traceback when an optional dependency (or a part of segsql
    itself) is not installed; None for any other missing module. For `import sklearn` failing:
    "this needs `sklearn`, which is not installed (pip install 'segsql[methods]')"."""
    name = error.name or ""
    top = name.partition(".")[0]
    if top in EXTRAS:
        return UsageError(f"this needs `{top}`, which is not installed", None, f"pip install 'segsql[{EXTRAS[top]}]'")
    if top == "segsql":
        return UsageError(f"`{name}` is missing from this installation of segsql", None,
                          "reinstall it: pip install --force-reinstall segsql")
    return None


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A 'did you mean' hint for a misspelt name, or None when nothing is close."""
    options = sorted(set(choices))
    lowered = {c.lower(): c for c in options}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return f"did you mean `{lowered[close[0]]}`?" if close else None


def display_path(path: Path, root: Path | None = None) -> str:
    """A path as the analyst typed it: relative to the project root when inside it."""
    if root is not None:
        try:
            return str(path.resolve().relative_to(root.resolve()))
        except ValueError:
            pass
    return str(path)


QUOTED = re.compile(r"'(.*?)'(?=[\s,.;:)\]]|$)|\"(.*?)\"(?=[\s,.;:)\]]|$)")  # a quote inside a value does not end it
LONG_NUMBER = re.compile(r"(?<![\w.])\d{5,}(?![\w])")


def hide_quoted_values(text: str, known: set[str]) -> str:
    """An engine's message with every quoted value, and every number of 5+ digits, that is not a
    name or literal of the statement (`known`, lower case) replaced by `'…'`/`…`: engines quote
    the row value a cast or check failed on (`Could not convert string 'Jane Doe'`), and print
    numbers that overflowed, and those values may be personal data."""
    def hide(match: re.Match[str]) -> str:
        inner = match.group(1) if match.group(1) is not None else match.group(2)
        if inner.lower() in known or not inner.strip():
            return match.group(0)
        return "'…'" if match.group(1) is not None else '"…"'

    def hide_number(match: re.Match[str]) -> str:
        return match.group(0) if match.group(0) in known else "…"

    return LONG_NUMBER.sub(hide_number, QUOTED.sub(hide, text))
