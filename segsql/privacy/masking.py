"""Deterministic masking of personal values, in tables and in free text (messages, logs).

Masking keeps analysis possible (the same value always gives the same mask, so analysts can
still count and join by eye) while never showing the value itself.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pyarrow as pa


def mask(value: Any, category: str, salt: str) -> str | None:
    """`email:3f2a9c1b0d` for a value: deterministic per project (salted with the project's secret
    salt, .segsql/erasure_salt), so a mask cannot be reversed by hashing guesses."""
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


SCRUB_EMAIL = re.compile(r"[A-Za-z0-9._+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
SCRUB_PHONE = re.compile(r"\+\d[\d\s().-]{6,}\d")


def scrub(text: str, salt: str = "") -> str:
    """Text for logs, error messages and docs with email addresses and international phone
    numbers masked (deterministically). Values of other tagged columns cannot be recognised in
    free text; segsql never puts member rows into messages."""
    text = SCRUB_EMAIL.sub(lambda m: mask(m.group(0), "email", salt) or "", text)
    return SCRUB_PHONE.sub(lambda m: mask(m.group(0), "phone", salt) or "", text)
