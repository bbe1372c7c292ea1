"""Personal data: which output columns carry declared PII, and deterministic masking.

Masking keeps analysis possible (the same value always gives the same mask, so analysts can
still count and join by eye) while never showing the value itself.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    from segsql.project import Project


def pii_columns(project: Project, name: str) -> dict[str, str]:
    """Output columns of segment `name` that carry a PII column of a source it reads."""
    compiled = project.compiled(name)
    declared: dict[str, str] = {}
    for source_name in compiled.sources:
        for column, category in project.config.sources[source_name].pii.items():
            declared[column.lower()] = category
    return {column: declared[column] for column in compiled.columns if column in declared}


def mask(value: Any, category: str, salt: str) -> str | None:
    """`email:3f2a9c1b0d` for a value: deterministic, not reversible without the data."""
    if value is None:
        return None
    digest = hashlib.sha256(f"{salt}\0{value}".encode()).hexdigest()[:10]
    return f"{category}:{digest}"


def mask_table(table: pa.Table, columns: dict[str, str], salt: str) -> pa.Table:
    """The table with every PII column replaced by its masks."""
    for column, category in columns.items():
        if column in table.column_names:
            index = table.column_names.index(column)
            masked = pa.array([mask(v, category, salt) for v in table.column(column).to_pylist()], type=pa.string())
            table = table.set_column(index, column, masked)
    return table
