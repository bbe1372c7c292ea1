"""What tables and columns exist: from the engine's catalog, declared columns, and segments.

Names compare case-insensitively (DuckDB, Postgres, Spark and Snowflake unquoted names all
fold), which is what an analyst expects from a validator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlglot import exp

Columns = dict[str, str | None]  # lower-case column name -> type (None when unknown)
# BIGINT, HUGEINT, INT64 ... contain INT; Snowflake's catalog reports integers as NUMBER (NUMBER(38,0))
NUMERIC_TYPES = ("INT", "DOUBLE", "FLOAT", "DECIMAL", "NUMERIC", "NUMBER", "REAL")


def is_numeric(kind: str | None) -> bool:
    """Whether a column type (as the catalog reports it) holds numbers."""
    return kind is not None and any(word in kind.upper() for word in NUMERIC_TYPES)


def table_key(table: exp.Table) -> tuple[str, ...]:
    """Lower-case (catalog, db, name) parts that are present, e.g. ('main', 'accounts')."""
    return tuple(part.lower() for part in (table.catalog, table.db, table.name) if part)


@dataclass
class Catalog:
    """Known tables with their columns; `None` columns mean "exists, columns unknown"."""

    tables: dict[tuple[str, ...], Columns | None] = field(default_factory=dict)
    labels: dict[tuple[str, ...], str] = field(default_factory=dict)

    def add(self, key: tuple[str, ...], columns: Columns | None, label: str) -> None:
        self.tables[key] = columns
        self.labels[key] = label

    def find(self, table: exp.Table) -> tuple[tuple[str, ...], Columns | None] | None:
        """The catalog entry for a table reference (schema-less names match by last part)."""
        key = table_key(table)
        if key in self.tables:
            return key, self.tables[key]
        matches = [k for k in self.tables if k[-len(key):] == key]
        if len(matches) == 1:
            return matches[0], self.tables[matches[0]]
        return None

    def names(self) -> list[str]:
        return [".".join(key) for key in self.tables]

    def with_tables(self, extra: dict[tuple[str, ...], tuple[Columns | None, str]]) -> Catalog:
        """A copy with more tables (e.g. the refs a segment reads)."""
        tables = dict(self.tables)
        labels = dict(self.labels)
        for key, (columns, label) in extra.items():
            tables[key] = columns
            labels[key] = label
        return Catalog(tables, labels)


class SourceDescriber(Protocol):
    """A connection that can read a source's columns from its catalog (an engine adapter)."""
    def describe_source(self, name: str, source: Any) -> Columns | None: ...

    def close(self) -> None: ...
