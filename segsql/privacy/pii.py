"""Personal data: which output columns carry declared PII, and deterministic masking.

Masking keeps analysis possible (the same value always gives the same mask, so analysts can
still count and join by eye) while never showing the value itself.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    from segsql.project import Project


def pii_columns(project: Project, name: str) -> dict[str, str]:
    """Output columns of segment `name` that carry a PII column of a source it reads: by name,
    and by column lineage (renamed or transformed PII is masked too)."""
    compiled = project.compiled(name)
    declared: dict[str, str] = {}
    for source_name in compiled.sources:
        for column, category in project.config.sources[source_name].pii.items():
            declared[column.lower()] = category
    found = {column: declared[column] for column in compiled.columns if column in declared}
    read = {s for ref in compiled.upstream for s in project.compiled(ref).sources} | set(compiled.sources)
    if any(project.config.sources[s].pii for s in read):  # lineage costs ms per preview: only when it can matter
        found.update(_lineage_pii(project, name))
    return found


def _lineage_pii(project: Project, name: str) -> dict[str, str]:
    """Outputs derived from PII columns by sqlglot lineage; name matching covers any query
    lineage cannot follow."""
    from sqlglot.errors import SqlglotError

    from segsql.compile.lineage import segment_lineage

    try:
        return segment_lineage(project, name).pii_output(project)
    except (SqlglotError, KeyError, ValueError):
        return {}


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


def key_hash(project: Project, entity: str, key: str) -> str:
    """What an erasure record keeps instead of the key: a salted SHA-256 (salt from the env var
    named in privacy.erasure_salt_env when set, else the project name — then small integer keys
    can be recovered by trying them, so set the variable in production)."""
    import os

    salt_env = project.config.privacy.erasure_salt_env
    salt = os.environ.get(salt_env, "") if salt_env else project.config.name
    return hashlib.sha256(f"{salt}\0{entity}\0{key}".encode()).hexdigest()


def forget(project: Project, entity: str, key: str, reason: str | None = None) -> int:
    """Remove an entity key from every table segsql manages (membership, history, export state
    and exported tables, each result table of that entity) in one transaction, and record the
    erasure without the key in clear. Returns the number of rows removed."""
    import datetime as dt

    from sqlglot import exp

    from segsql.engines import storage
    from segsql.errors import UsageError, did_you_mean

    if entity not in project.config.entities:
        raise UsageError(f"unknown entity `{entity}`", None, did_you_mean(entity, project.config.entities))
    key_column = project.config.entities[entity].key
    segments = [name for name in project.segments if project.entity_of(name) == entity]
    with project.engine(write=True) as engine:
        erase = getattr(engine, "erase", None)
        if erase is not None:  # engines without transactions (Spark) rewrite their files
            entry = {"erased_at": dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(), "entity": entity,
                     "key_hash": key_hash(project, entity, key), "reason": reason}
            return int(erase(entity, key_column, key, segments, entry))
        store = engine.run_store()
        store.prepare()
        removed = 0
        engine.begin()
        try:
            keyed = ["membership", "history", "export_state", "export_memberships"]
            results = [storage.segment_table(name) for name in segments]
            exported = [storage.table(f"export_members__{name}") for name in segments]
            existing = engine.existing_tables([*[storage.table(t) for t in keyed], *results, *exported])
            for managed in keyed:
                if managed in existing:
                    where = exp.and_(exp.column("entity").eq(exp.Placeholder()),
                                     exp.column("entity_key").eq(exp.Placeholder()))
                    removed += _delete(engine, exp.delete(storage.table(managed), where=where), [entity, key])
            for table, column in [*[(t, key_column) for t in results], *[(t, "entity_key") for t in exported]]:
                if table.name.lower() in existing:
                    match = exp.cast(exp.column(column), exp.DataType.Type.VARCHAR).eq(exp.Placeholder())
                    removed += _delete(engine, exp.delete(table, where=match), [key])
            record = exp.insert(exp.Values(expressions=[exp.tuple_(*[exp.Placeholder() for _ in range(5)])]),
                                storage.table("erasures"),
                                columns=["erased_at", "entity", "key_hash", "reason", "rows_removed"])
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            engine.execute(record, [now, entity, key_hash(project, entity, key), reason, removed])
            engine.commit()
        except BaseException:
            engine.rollback()
            raise
    return removed


def _delete(engine: Any, statement: Any, params: list[Any]) -> int:
    """Run a DELETE and return how many rows it removed (counted first: not every driver says)."""
    from sqlglot import exp

    count = exp.select(exp.func("count", exp.Star())).from_(statement.this.copy())
    if statement.args.get("where") is not None:
        count = count.where(statement.args["where"].this.copy())
    rows = int(engine.fetchall(count, params)[0][0])
    if rows:
        engine.execute(statement, params)
    return rows


PII_NAMES = re.compile(r"(^|_)(e_?mail|phone|mobile|fax|first_?name|last_?name|full_?name|surname|address|street|"
                       r"zip|postcode|ip|ip_address|birth|dob|ssn|iban|passport|tax_id)($|_)", re.IGNORECASE)
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", re.IGNORECASE)
PHONE = re.compile(r"^\+?[\d\s().-]{7,}$")


def untagged_pii(project: Project, samples: dict[str, dict[str, list[Any]]]) -> list[tuple[str, str, str]]:
    """(source, column, why) for columns that look personal but are not tagged under `pii:` or
    `sensitive:`: by name, or by sampled values that look like emails or phone numbers."""
    found = []
    for source_name, source in sorted(project.config.sources.items()):
        tagged = {c.lower() for c in (*source.pii, *source.sensitive)}
        columns = {c.lower() for c in (source.columns or {})} | set(samples.get(source_name, {}))
        for column in sorted(columns - tagged):
            raw = [v for v in samples.get(source_name, {}).get(column, []) if v is not None]
            values = [v for v in raw if isinstance(v, str)] if all(isinstance(v, str) for v in raw) else []
            if PII_NAMES.search(column):
                found.append((source_name, column, "its name looks like personal data"))
            elif values and all(EMAIL.match(v) for v in values):
                found.append((source_name, column, "its values look like email addresses"))
            elif values and all(PHONE.match(v) and sum(ch.isdigit() for ch in v) >= 7 for v in values):
                found.append((source_name, column, "its values look like phone numbers"))
    return found


SCRUB_EMAIL = re.compile(r"[A-Za-z0-9._+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
SCRUB_PHONE = re.compile(r"\+\d[\d\s().-]{6,}\d")


def scrub(text: str, salt: str = "") -> str:
    """Text for logs, error messages and docs with email addresses and international phone
    numbers masked (deterministically). Values of other tagged columns cannot be recognised in
    free text; segsql never puts member rows into messages."""
    text = SCRUB_EMAIL.sub(lambda m: mask(m.group(0), "email", salt) or "", text)
    return SCRUB_PHONE.sub(lambda m: mask(m.group(0), "phone", salt) or "", text)
