"""`segsql export`: hand a segment's members to CRM / reverse-ETL tools (contract in docs/exports.md).

Every export produces three datasets with stable columns:
  segments     one row: export_id, exported_at, segment, entity, description, owner, purpose,
               run_id, as_of, members, added, removed, dropped_no_consent, changes_only
  members      segment, entity, entity_key + the declared columns (all members, or with
               --changes-only the added ones)
  memberships  segment, entity, entity_key, change ('member' in a full export; 'added' or
               'removed' with --changes-only), export_id

Only the key and declared columns leave (`--columns`, or config(export_columns=[...])). With a
consent purpose, members without consent are dropped (and counted). What each destination last
received is kept in segsql.export_state, so --changes-only sends the difference; state and files
change together: files are written to temporary names, the state is updated in a transaction,
and the files are renamed into place before it commits (a crash in between re-sends changes:
at-least-once, never lost).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from segsql.compile.builtins import table_for_source
from segsql.compile.keys import EntityKey
from segsql.engines import storage
from segsql.errors import SegsqlError, UsageError, did_you_mean
from segsql.privacy.pii import pii_columns

if TYPE_CHECKING:
    from segsql.compile.compiler import Compiler
    from segsql.engines.base import Engine

FORMATS = ("csv", "parquet", "table")
DATASETS = ("segments", "members", "memberships")


class ExportError(SegsqlError):
    """The export could not be written; earlier exports and their state are unchanged."""


@dataclass
class ExportResult:
    export_id: str
    segment: str
    entity: str
    destination: str
    format: str
    purpose: str | None
    changes_only: bool
    members: int  # members sent (after consent)
    added: int
    removed: int
    dropped_no_consent: int
    columns: list[str]
    written: list[str] = field(default_factory=list)  # files or tables
    personal_data: dict[str, str] = field(default_factory=dict)  # exported column -> PII category (lineage)


@dataclass
class ExportPlan:
    name: str
    entity: str
    key: EntityKey  # its columns lower-case, as compiled outputs are named
    columns: list[str]
    consent_column: str | None
    destination: str
    to: str
    folder: Path | None
    current: exp.Select | None = None  # the members the destination holds after this export


def export(compiler: Compiler, engine: Engine, name: str, to: str, path: str | Path | None = None,
           columns: list[str] | None = None, changes_only: bool = False,
           purpose: str | None = None) -> ExportResult:
    """Export the members of `name` from its last successful run (`engine` open for writing); see
    the module docstring."""
    plan = _plan(compiler, name, to, path, columns, purpose)
    if not engine.capabilities.transactions:
        raise ExportError(f"{engine.name} has no transactional tables to keep export state in", None,
                          "export from a DuckDB or Postgres profile (--target), which read the same data")
    store = engine.run_store()
    store.ensure_tables()
    return _export(compiler, engine, plan, changes_only, purpose)


def _plan(compiler: Compiler, name: str, to: str, path: str | Path | None, columns: list[str] | None,
          purpose: str | None) -> ExportPlan:
    if to not in FORMATS:
        raise UsageError(f"--to `{to}` is not an export format", None, f"choose one of {', '.join(FORMATS)}")
    compiled = compiler.compiled(name)
    entity = compiled.entity
    key = EntityKey(tuple(column.lower() for column in compiler.config.entities[entity].key_columns))
    wanted = [c.lower() for c in (columns if columns is not None else compiled.config.export_columns)]
    for column in wanted:
        if column not in compiled.columns:
            raise UsageError(f"segment `{name}` has no output column `{column}` to export", None,
                             did_you_mean(column, compiled.columns) or
                             f"its columns: {', '.join(compiled.columns)}")
    chosen = [c for c in dict.fromkeys(wanted) if c not in key.columns]
    consent_column = _consent_column(compiler, entity, purpose)
    if to == "table":
        if path is not None:
            raise UsageError("--path applies to csv and parquet exports", None, "drop --path with --to table")
        return ExportPlan(name, entity, key, chosen, consent_column, "table", to, None)
    folder = Path(path) if path is not None else compiler.root / "exports" / name
    if not folder.is_absolute():
        folder = Path.cwd() / folder
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--path {folder} is a file", None, "give a folder; the export writes three files into it")
    return ExportPlan(name, entity, key, chosen, consent_column, f"{to}:{folder.resolve()}", to, folder)


def _consent_column(compiler: Compiler, entity: str, purpose: str | None) -> str | None:
    """The consent column for (purpose, entity); a purpose is required once consent is declared."""
    declared = compiler.config.privacy.consent
    if purpose is None:
        purposes = sorted(p for p, entities in declared.items() if entity in entities)
        if purposes:
            raise UsageError(f"exports of {entity}s need a consent purpose", None,
                             f"pass --purpose ({', '.join(purposes)}); members without consent are dropped")
        return None
    if purpose not in declared:
        raise UsageError(f"unknown consent purpose `{purpose}`", None,
                         did_you_mean(purpose, declared) or "declare it under privacy.consent in segsql.yml")
    if entity not in declared[purpose]:
        raise UsageError(f"purpose `{purpose}` declares no consent column for entity `{entity}`", None,
                         f"add privacy.consent.{purpose}.{entity}: <boolean column> to segsql.yml")
    return declared[purpose][entity]


# -- queries --------------------------------------------------------------------------------
def _key_parts(plan: ExportPlan) -> list[str]:
    """The key's own columns, sent beside entity_key when it has several (docs/exports.md)."""
    return list(plan.key.columns) if plan.key.composite else []


def _all_members(plan: ExportPlan) -> exp.Select:
    return exp.select(plan.key.text().as_("entity_key"), *[exp.column(c) for c in _key_parts(plan)],
                      *[exp.column(c) for c in plan.columns]).from_(storage.segment_table(plan.name))


def _consented(compiler: Compiler, plan: ExportPlan) -> exp.Select:
    """Members whose consent column is TRUE (NULL or FALSE: no consent)."""
    query = _all_members(plan)
    if plan.consent_column is None:
        return query
    entity = compiler.config.entities[plan.entity]
    assert entity.source is not None
    # consent as it is now, whatever date the segment was evaluated for (GDPR: today's consent)
    source = table_for_source(entity.source, compiler.config.sources[entity.source].table, compiler.config.dialect)
    allowed = exp.select(EntityKey(entity.key_columns).text()).from_(source).where(
        exp.column(plan.consent_column).eq(exp.true()))
    return query.where(plan.key.text().isin(query=allowed))


def _state(plan: ExportPlan) -> exp.Select:
    return exp.select("entity_key").from_(storage.table("export_state")).where(exp.and_(
        exp.column("destination").eq(exp.Literal.string(plan.destination)),
        exp.column("segment").eq(exp.Literal.string(plan.name))))


def _counts(engine: Engine, *queries: exp.Query) -> list[int]:
    """Row counts of several queries in one round trip."""
    cells = [exp.select(exp.func("count", exp.Star())).from_(q.copy().subquery(f"c{i}")).subquery()
             for i, q in enumerate(queries)]
    return [int(v) for v in engine.fetchall(exp.select(*cells))[0]]


def _last_run(engine: Engine, name: str) -> tuple[str, Any]:
    rows = engine.fetchall(storage.last_success(name, ("r.run_id", "r.as_of")), [name])
    if not rows or not engine.table_exists(storage.segment_table(name)):
        raise UsageError(f"segment `{name}` has no results yet", None, f"run `segsql run --select {name}` first")
    return str(rows[0][0]), rows[0][1]


# -- the export -----------------------------------------------------------------------------
def _export(compiler: Compiler, engine: Engine, plan: ExportPlan, changes_only: bool,
            purpose: str | None) -> ExportResult:
    run_id, as_of = _last_run(engine, plan.name)
    current = plan.current = _consented(compiler, plan)
    in_state = _state(plan)
    added_query = exp.select("*").from_(current.copy().subquery("m")).where(
        exp.column("entity_key", "m").isin(query=in_state).not_())  # Postgres: no select aliases in WHERE
    current_keys = exp.select("entity_key").from_(current.copy().subquery("k"))
    removed_query = in_state.copy().where(exp.column("entity_key").isin(query=current_keys).not_())
    total, sent, added, removed = _counts(engine, _all_members(plan), current, added_query, removed_query)
    export_id = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"

    result = ExportResult(export_id, plan.name, plan.entity, plan.destination, plan.to, purpose, changes_only,
                          sent, added, removed, total - sent, plan.columns)
    result.personal_data = {c: k for c, k in pii_columns(compiler, plan.name).items() if c in plan.columns}
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    summary = _segment_row(compiler, result, run_id, as_of, now)
    members = added_query if changes_only else current
    if plan.folder is not None:
        datasets = _datasets(engine, plan, result, summary, members, removed_query if changes_only else None)
        _write_files(engine, plan, result, datasets, now, run_id)
    else:
        _write_tables(engine, plan, result, summary, members, removed_query if changes_only else None, now, run_id)
    return result


def _segment_row(compiler: Compiler, result: ExportResult, run_id: str, as_of: Any, now: dt.datetime) -> dict[str, Any]:
    config = compiler.compiled(result.segment).config
    return {"export_id": result.export_id, "exported_at": now, "segment": result.segment, "entity": result.entity,
            "description": config.description, "owner": config.owner, "purpose": result.purpose,
            "run_id": run_id, "as_of": as_of, "members": result.members, "added": result.added,
            "removed": result.removed, "dropped_no_consent": result.dropped_no_consent,
            "changes_only": result.changes_only}


def _datasets(engine: Engine, plan: ExportPlan, result: ExportResult, summary: dict[str, Any],
              members: exp.Select, removed: exp.Select | None) -> dict[str, pa.Table]:
    rows = engine.fetch_arrow(members.copy().order_by("entity_key"))
    count = rows.num_rows
    member_table = pa.table({"segment": pa.array([plan.name] * count, pa.string()),
                             "entity": pa.array([plan.entity] * count, pa.string()),
                             "entity_key": rows.column("entity_key").cast(pa.string()),
                             **{c: rows.column(c) for c in [*_key_parts(plan), *plan.columns]}})
    change = "added" if result.changes_only else "member"
    keys = member_table.column("entity_key").to_pylist()
    changes = [(key, change) for key in keys]
    if removed is not None:
        changes += [(str(row[0]), "removed") for row in engine.fetchall(removed.copy().order_by("entity_key"))]
    memberships = pa.table({"segment": pa.array([plan.name] * len(changes), pa.string()),
                            "entity": pa.array([plan.entity] * len(changes), pa.string()),
                            "entity_key": pa.array([k for k, _ in changes], pa.string()),
                            **_decoded_parts(plan, [k for k, _ in changes]),
                            "change": pa.array([c for _, c in changes], pa.string()),
                            "export_id": pa.array([result.export_id] * len(changes), pa.string())})
    segments = pa.Table.from_pylist([summary])
    return {"segments": segments, "members": member_table, "memberships": memberships}


def _decoded_parts(plan: ExportPlan, keys: list[str]) -> dict[str, pa.Array]:
    """A composite key's parts (as text) of each stored entity_key: removed members are known
    only by it."""
    parts = [plan.key.decode(key) for key in keys]
    return {column: pa.array([p[i] for p in parts], pa.string()) for i, column in enumerate(_key_parts(plan))}


def _write_files(engine: Engine, plan: ExportPlan, result: ExportResult, datasets: dict[str, pa.Table],
                 now: dt.datetime, run_id: str) -> None:
    assert plan.folder is not None
    plan.folder.mkdir(parents=True, exist_ok=True)
    temporary: dict[Path, Path] = {}
    try:
        for dataset, table in datasets.items():
            final = plan.folder / f"{dataset}.{plan.to}"
            temp = plan.folder / f".{dataset}.{result.export_id}.tmp"
            temporary[temp] = final
            _write_file(table, temp, plan.to)
        engine.begin()
        try:
            _record(engine, plan, result, now, run_id)
            for temp, final in temporary.items():
                os.replace(temp, final)
            engine.commit()
        except BaseException:
            engine.rollback()
            raise
    except OSError as error:
        raise ExportError(f"cannot write the export to {plan.folder}: {error.strerror}", None,
                          "check the folder's permissions and free space; nothing was exported") from None
    finally:
        for temp in temporary:
            temp.unlink(missing_ok=True)
    result.written = [str(final) for final in temporary.values()]


def _write_file(table: pa.Table, path: Path, to: str) -> None:
    if to == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, path)
    else:
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, path)


def _write_tables(engine: Engine, plan: ExportPlan, result: ExportResult, summary: dict[str, Any],
                  members: exp.Select, removed: exp.Select | None, now: dt.datetime, run_id: str) -> None:
    """--to table: segsql.export_segments / export_memberships (rows of this segment replaced)
    and segsql.export_members__NAME, in the same transaction as the state."""
    segments_table, memberships_table = storage.table("export_segments"), storage.table("export_memberships")
    members_table = storage.table(f"export_members__{plan.name}")
    _ensure_contract_tables(engine)
    engine.begin()
    try:
        literal = {"segment": exp.Literal.string(plan.name), "entity": exp.Literal.string(plan.entity),
                   "export_id": exp.Literal.string(result.export_id)}
        engine.replace_table(members_table, exp.select(literal["segment"].as_("segment"),
                                                      literal["entity"].as_("entity"), "*")
                             .from_(members.copy().subquery("m")))
        mine = exp.column("segment").eq(exp.Literal.string(plan.name))
        for table in (segments_table, memberships_table):
            engine.execute(exp.delete(table, where=mine.copy()))
        change = "added" if result.changes_only else "member"
        engine.execute(exp.insert(exp.select(literal["segment"], literal["entity"], exp.column("entity_key"),
                                             exp.Literal.string(change), literal["export_id"])
                                  .from_(members.copy().subquery("m")), memberships_table))
        if removed is not None:
            engine.execute(exp.insert(exp.select(literal["segment"], literal["entity"], exp.column("entity_key"),
                                                 exp.Literal.string("removed"), literal["export_id"])
                                      .from_(removed.copy().subquery("r")), memberships_table))
        columns = list(summary)
        engine.execute(exp.insert(exp.Values(expressions=[exp.tuple_(*[exp.Placeholder() for _ in columns])]),
                                  segments_table, columns=columns), list(summary.values()))
        _record(engine, plan, result, now, run_id)
        engine.commit()
    except BaseException:
        engine.rollback()
        raise
    result.written = [f"{storage.SCHEMA}.{t.name}" for t in (segments_table, members_table, memberships_table)]


CONTRACT_DDL = [
    f"""CREATE TABLE IF NOT EXISTS {storage.SCHEMA}.export_segments (
        export_id VARCHAR NOT NULL, exported_at TIMESTAMP NOT NULL, segment VARCHAR NOT NULL,
        entity VARCHAR NOT NULL, description VARCHAR, owner VARCHAR, purpose VARCHAR, run_id VARCHAR NOT NULL,
        as_of DATE NOT NULL, members BIGINT NOT NULL, added BIGINT NOT NULL, removed BIGINT NOT NULL,
        dropped_no_consent BIGINT NOT NULL, changes_only BOOLEAN NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS {storage.SCHEMA}.export_memberships (
        segment VARCHAR NOT NULL, entity VARCHAR NOT NULL, entity_key VARCHAR NOT NULL,
        change VARCHAR NOT NULL, export_id VARCHAR NOT NULL)""",
]


def _ensure_contract_tables(engine: Engine) -> None:
    for statement in CONTRACT_DDL:
        engine.execute(statement)


def _record(engine: Engine, plan: ExportPlan, result: ExportResult, now: dt.datetime, run_id: str) -> None:
    """The export log row, and the destination's state replaced by what it now holds."""
    state = storage.table("export_state")
    engine.execute(exp.delete(state, where=exp.and_(
        exp.column("destination").eq(exp.Placeholder()), exp.column("segment").eq(exp.Placeholder()))),
        [plan.destination, plan.name])
    assert plan.current is not None
    holds = exp.select(exp.Literal.string(plan.destination), exp.Literal.string(plan.name),
                       exp.Literal.string(plan.entity), exp.column("entity_key"),
                       exp.Literal.string(result.export_id)).from_(plan.current.copy().subquery("h"))
    engine.execute(exp.insert(holds, state, columns=["destination", "segment", "entity", "entity_key", "export_id"]))
    columns = ["export_id", "exported_at", "segment", "entity", "destination", "format", "purpose", "changes_only",
               "run_id", "members", "added", "removed", "dropped_no_consent", "columns"]
    values = [result.export_id, now, plan.name, plan.entity, plan.destination, plan.to, result.purpose,
              result.changes_only, run_id, result.members, result.added, result.removed, result.dropped_no_consent,
              json.dumps(plan.columns)]
    engine.execute(exp.insert(exp.Values(expressions=[exp.tuple_(*[exp.Placeholder() for _ in columns])]),
                              storage.table("exports"), columns=columns), values)
