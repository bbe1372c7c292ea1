"""The storage contract: where segsql keeps runs and membership in the engine (documented in
docs/storage.md; stable). Statements are written once in DuckDB's dialect and transpiled by
sqlglot for each engine; values are always bound parameters.

segsql.runs            one row per run: run_id, started_at, finished_at, status, as_of, selected, error
segsql.run_segments    one row per segment per run: rows, definition_hash, status, duration_ms, error
segsql.membership      (segment, entity_key) -> entity, run_id, as_of: current members of every segment
segsql.segment__<name> the typed result (key + trait columns) of the segment's last successful run
segsql.exports         one row per `segsql export`: destination, purpose, counts (added/removed/dropped)
segsql.export_state    (destination, segment, entity_key): what each destination last received
segsql.unmask_audit    (unmasked_at, who, segment, columns, via): every preview shown with --unmask
segsql.export_*        `export --to table`: export_segments, export_memberships, export_members__<name>
segsql.history         SCD-2: one row per stay of a member in a segment (valid_from, valid_to NULL
                       while still a member), opened/closed by runs in the same transaction
"""

from __future__ import annotations

import datetime as dt

from sqlglot import exp

# the key encoding `entity_key` holds (one column: its text, as always)
from segsql.compile.keys import EntityKey

SCHEMA = "segsql"
SEGMENT_TABLE_PREFIX = "segment__"
RUNNING, SUCCESS, FAILED = "running", "success", "failed"
BACKFILL, BACKFILLED = "backfill", "success (backfill)"  # runs.status / run_segments.status of a replayed date
SUPERSEDED = "replaced by a backfill"  # run_segments.status of a real run whose history `backfill --replace` rewrote
INTERRUPTED = "interrupted: the process stopped before the run finished"

DDL = [
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.runs (
        run_id VARCHAR PRIMARY KEY, started_at TIMESTAMP NOT NULL, finished_at TIMESTAMP,
        status VARCHAR NOT NULL, as_of DATE NOT NULL, selected VARCHAR NOT NULL, error VARCHAR,
        segsql_version VARCHAR NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.run_segments (
        run_id VARCHAR NOT NULL, segment VARCHAR NOT NULL, entity VARCHAR NOT NULL,
        row_count BIGINT, population BIGINT, definition_hash VARCHAR NOT NULL, status VARCHAR NOT NULL,
        duration_ms BIGINT, error VARCHAR)""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.membership (
        segment VARCHAR NOT NULL, entity VARCHAR NOT NULL, entity_key VARCHAR NOT NULL,
        run_id VARCHAR NOT NULL, as_of DATE NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.history (
        segment VARCHAR NOT NULL, entity VARCHAR NOT NULL, entity_key VARCHAR NOT NULL,
        valid_from TIMESTAMP NOT NULL, valid_to TIMESTAMP, run_id VARCHAR NOT NULL,
        closed_by_run VARCHAR, definition_hash VARCHAR NOT NULL, as_of DATE NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.erasures (
        erased_at TIMESTAMP NOT NULL, entity VARCHAR NOT NULL, key_hash VARCHAR NOT NULL,
        reason VARCHAR, rows_removed BIGINT NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.exports (
        export_id VARCHAR NOT NULL, exported_at TIMESTAMP NOT NULL, segment VARCHAR NOT NULL,
        entity VARCHAR NOT NULL, destination VARCHAR NOT NULL, format VARCHAR NOT NULL, purpose VARCHAR,
        changes_only BOOLEAN NOT NULL, run_id VARCHAR NOT NULL, members BIGINT NOT NULL, added BIGINT NOT NULL,
        removed BIGINT NOT NULL, dropped_no_consent BIGINT NOT NULL, columns VARCHAR NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.export_state (
        destination VARCHAR NOT NULL, segment VARCHAR NOT NULL, entity VARCHAR NOT NULL,
        entity_key VARCHAR NOT NULL, export_id VARCHAR NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.unmask_audit (
        unmasked_at TIMESTAMP NOT NULL, who VARCHAR NOT NULL, segment VARCHAR NOT NULL,
        columns VARCHAR NOT NULL, via VARCHAR NOT NULL)""",
]
MANAGED_TABLES = ("runs", "run_segments", "membership", "history", "erasures", "exports", "export_state",
                  "unmask_audit")
# No PRIMARY KEY on membership: the runner refuses NULL and duplicate keys before writing, and
# DuckDB's index maintenance made committing 100k members 40x slower (benchmarks/RESULTS.md).


def table(name: str) -> exp.Table:
    return exp.Table(this=exp.to_identifier(name), db=exp.to_identifier(SCHEMA))


def segment_table(segment: str) -> exp.Table:
    """Where a segment's typed result lives, e.g. segsql.segment__power_users."""
    return table(f"{SEGMENT_TABLE_PREFIX}{segment}")


def placeholder() -> exp.Placeholder:
    return exp.Placeholder()


def insert_run() -> exp.Expr:
    columns = ["run_id", "started_at", "status", "as_of", "selected", "segsql_version"]
    return exp.insert(exp.Values(expressions=[exp.tuple_(*[placeholder() for _ in columns])]),
                      table("runs"), columns=columns)


def insert_finished_run() -> exp.Expr:
    """A run recorded whole (a backfilled date): every column of segsql.runs."""
    columns = ["run_id", "started_at", "finished_at", "status", "as_of", "selected", "error", "segsql_version"]
    return exp.insert(exp.Values(expressions=[exp.tuple_(*[placeholder() for _ in columns])]),
                      table("runs"), columns=columns)


def finish_run() -> exp.Expr:
    return exp.update(table("runs"), {"finished_at": placeholder(), "status": placeholder(),
                                      "error": placeholder()}, where=exp.column("run_id").eq(placeholder()))


def mark_interrupted() -> exp.Expr:
    return exp.update(table("runs"), {"status": exp.Literal.string(FAILED),
                                      "error": exp.Literal.string(INTERRUPTED)},
                      where=exp.column("status").eq(exp.Literal.string(RUNNING)))


def insert_run_segment() -> exp.Expr:
    columns = ["run_id", "segment", "entity", "row_count", "population", "definition_hash", "status",
               "duration_ms", "error"]
    return exp.insert(exp.Values(expressions=[exp.tuple_(*[placeholder() for _ in columns])]),
                      table("run_segments"), columns=columns)


def last_success(segment: str, columns: tuple[str, ...] = ("s.row_count", "s.population")) -> exp.Select:
    """`columns` (of run_segments `s` / runs `r`) of the segment's last successful run (bound: segment)."""
    runs, segments = table("runs"), table("run_segments")
    return (exp.select(*[exp.column(c.split(".")[1], c.split(".")[0]) for c in columns])
            .from_(segments.as_("s"))
            .join(runs.as_("r"), on=exp.column("run_id", "r").eq(exp.column("run_id", "s")))
            .where(exp.and_(exp.column("segment", "s").eq(placeholder()),
                            exp.column("status", "r").eq(exp.Literal.string(SUCCESS))))
            .order_by(exp.Ordered(this=exp.column("started_at", "r"), desc=True)).limit(1))


def last_success_dates(segments: list[str]) -> exp.Select:
    """(segment, as_of) of each segment's last successful run, for several segments at once."""
    runs, segments_table = table("runs"), table("run_segments")
    latest = exp.Window(this=exp.RowNumber(), partition_by=[exp.column("segment", "s")],
                        order=exp.Order(expressions=[exp.Ordered(this=exp.column("started_at", "r"), desc=True)]))
    ranked = (exp.select(exp.column("segment", "s"), exp.column("as_of", "r"), latest.as_("n"))
              .from_(segments_table.as_("s"))
              .join(runs.as_("r"), on=exp.column("run_id", "r").eq(exp.column("run_id", "s")))
              .where(exp.and_(exp.column("segment", "s").isin(*[exp.Literal.string(n) for n in segments]),
                              exp.column("status", "r").eq(exp.Literal.string(SUCCESS)))))
    return exp.select("segment", "as_of").from_(ranked.subquery("latest")).where(exp.column("n").eq(1))


def last_population(entity: str) -> exp.Select:
    """The entity's population recorded by the latest successful run, with that run's as_of
    (bound: entity)."""
    runs, segments = table("runs"), table("run_segments")
    return (exp.select(exp.column("population", "s"), exp.column("as_of", "r"))
            .from_(segments.as_("s"))
            .join(runs.as_("r"), on=exp.column("run_id", "r").eq(exp.column("run_id", "s")))
            .where(exp.and_(exp.column("entity", "s").eq(placeholder()),
                            exp.column("status", "r").eq(exp.Literal.string(SUCCESS)),
                            exp.column("population", "s").is_(exp.null()).not_()))
            .order_by(exp.Ordered(this=exp.column("started_at", "r"), desc=True)).limit(1))


def delete_membership(segments: list[str]) -> exp.Expr:
    return exp.delete(table("membership"), where=exp.column("segment").isin(*[placeholder() for _ in segments]))


def insert_membership(segment: str, entity: str, key: EntityKey) -> exp.Expr:
    """Rows of the segment's result table into membership (bound: run_id, as_of)."""
    query = exp.select(
        exp.Literal.string(segment), exp.Literal.string(entity), key.text(), placeholder(), placeholder(),
    ).from_(segment_table(segment))
    return exp.insert(query, table("membership"),
                      columns=["segment", "entity", "entity_key", "run_id", "as_of"])


def _current(segment: str) -> exp.Condition:
    return exp.and_(exp.column("segment").eq(exp.Literal.string(segment)), exp.column("valid_to").is_(exp.null()))


def _keys_now(segment: str, key: EntityKey) -> exp.Select:
    return exp.select(key.text()).from_(segment_table(segment))


def close_history(segment: str, key: EntityKey) -> exp.Expr:
    """Close the open stays of members that left (bound: valid_to, closed_by_run)."""
    left = exp.column("entity_key").isin(query=_keys_now(segment, key)).not_()
    return exp.update(table("history"), {"valid_to": placeholder(), "closed_by_run": placeholder()},
                      where=exp.and_(_current(segment), left))


def open_history(segment: str, entity: str, key: EntityKey) -> exp.Expr:
    """Open stays for members that entered (bound: valid_from, run_id, definition_hash, as_of)."""
    open_keys = exp.select("entity_key").from_(table("history")).where(_current(segment))
    key_text = key.text()
    query = exp.select(exp.Literal.string(segment), exp.Literal.string(entity), key_text, placeholder(),
                       placeholder(), placeholder(), placeholder()).from_(segment_table(segment)).where(
        key_text.copy().isin(query=open_keys).not_())
    return exp.insert(query, table("history"),
                      columns=["segment", "entity", "entity_key", "valid_from", "run_id", "definition_hash", "as_of"])


def staged_members(batch: str, temporary: bool = True) -> exp.Table:
    """Where a backfill keeps the keys of every segment and date until it commits: a temporary
    table where the engine has them (no WAL, gone with the session), else one in segsql."""
    name = f"backfill_members__{batch}"
    return exp.to_table(name) if temporary else table(name)


def staged_history(batch: str, temporary: bool = True) -> exp.Table:
    name = f"backfill_history__{batch}"
    return exp.to_table(name) if temporary else table(name)


def create_staging(target: exp.Table, temporary: bool, query: exp.Query | None = None) -> exp.Create:
    """CREATE [TEMPORARY] TABLE: the staged members' columns, or AS `query`."""
    properties = exp.Properties(expressions=[exp.TemporaryProperty()]) if temporary else None
    if query is not None:
        return exp.Create(this=target, kind="TABLE", expression=query, properties=properties)
    columns = [exp.ColumnDef(this=exp.to_identifier(name), kind=exp.DataType.build(kind))
               for name, kind in (("segment", "VARCHAR"), ("snapshot_index", "INT"), ("entity_key", "VARCHAR"))]
    return exp.Create(this=exp.Schema(this=target, expressions=columns), kind="TABLE", properties=properties)


def stage_members(target: exp.Table, segment: str, members: exp.Query) -> exp.Expr:
    """The (snapshot_index, entity_key) rows of one segment at one date into the staging table."""
    query = exp.select(exp.Literal.string(segment), exp.column("snapshot_index"), exp.column("entity_key")).from_(
        members.subquery("staged"))
    return exp.insert(query, target.copy(), columns=["segment", "snapshot_index", "entity_key"])


def staged_counts(members: exp.Table | exp.Query) -> exp.Select:
    """Rows, non-NULL keys and distinct keys per (segment, snapshot_index): the run's key checks."""
    source = members.subquery("m") if isinstance(members, exp.Query) else members
    return (exp.select("segment", "snapshot_index", exp.func("count", exp.Star()),
                       exp.func("count", exp.column("entity_key")),
                       exp.Count(this=exp.Distinct(expressions=[exp.column("entity_key")])))
            .from_(source).group_by("segment", "snapshot_index"))


def delete_run_segment() -> exp.Expr:
    """(bound: run_id, segment)"""
    return exp.delete(table("run_segments"), where=exp.and_(exp.column("run_id").eq(placeholder()),
                                                            exp.column("segment").eq(placeholder())))


def supersede_run_segment() -> exp.Expr:
    """(bound: run_id, segment)"""
    return exp.update(table("run_segments"), {"status": exp.Literal.string(SUPERSEDED)},
                      where=exp.and_(exp.column("run_id").eq(placeholder()), exp.column("segment").eq(placeholder())))


def delete_empty_backfill_runs() -> exp.Expr:
    """Backfilled runs none of whose segments is on record any more (all replaced)."""
    segments = exp.select(exp.Literal.number(1)).from_(table("run_segments").as_("s")).where(
        exp.column("run_id", "s").eq(exp.column("run_id", "runs")))
    return exp.delete(table("runs"), where=exp.and_(exp.column("status").eq(exp.Literal.string(BACKFILL)),
                                                    exp.Exists(this=segments).not_()))


def latest_history_as_of(segment: str) -> exp.Select:
    """The latest as_of written to a segment's timeline (bound: segment)."""
    return exp.select(exp.func("max", exp.column("as_of"))).from_(table("history")).where(
        exp.column("segment").eq(placeholder()))


def purge_history() -> exp.Expr:
    """Delete stays that ended before a cutoff (bound: cutoff); open stays are never purged."""
    return exp.delete(table("history"), where=exp.and_(
        exp.column("valid_to").is_(exp.null()).not_(),
        exp.LT(this=exp.column("valid_to"), expression=placeholder())))


def months_before(moment: dt.datetime, months: int) -> dt.datetime:
    """`moment` minus whole calendar months (the day clamped to the target month's last day)."""
    import calendar

    index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def now() -> dt.datetime:
    """A timestamp for the storage tables: UTC, without a time zone (every engine stores it alike)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def insert_unmask_audit() -> exp.Expr:
    columns = ["unmasked_at", "who", "segment", "columns", "via"]
    return exp.insert(exp.Values(expressions=[exp.tuple_(*[placeholder() for _ in columns])]),
                      table("unmask_audit"), columns=columns)
