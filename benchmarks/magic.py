"""Notebook overhead: %%segment vs the bare DuckDB query, in one IPython process.

  bare      duckdb: execute the compiled SQL of a simple segment and fetch its rows
  validate  %%segment --no-run: parse the cell, render, validate, compile
  preview   %%segment: the above plus its size and key checks, share, waterfall,
            the first page and the widget view (what appears under the cell)
  render    building the view's HTML and MIME bundle once the data is there
  jupysql   JupySQL's `%%sql` with the same compiled SQL, in the same InteractiveShell, over
            SQLAlchemy + duckdb-engine on the same database file (read-only), rows fetched as
            JupySQL does by default; its HTML table is the display it shows under the cell
Targets (issue 5): ≤ 1 ms extra for compile + validate + run; the widget within 50 ms more.
Targets (issue 20): the %%segment cell with preview ≤ 1.5x JupySQL's %%sql, and ≤ 10 ms.
All timed calls are interleaved run by run (the machine is shared), medians of --runs.
--profile: cProfile of 50 preview cells, the cell's time by part, engine round trips per cell.

JupySQL is the baseline only, never a segsql dependency: install it beside segsql, e.g.
    .venv/bin/pip install jupysql duckdb-engine

    python benchmarks/magic.py [--runs 200] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import io
import os
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
from IPython.core.interactiveshell import InteractiveShell

from segsql.demo.project import prepare_demo

WORK = Path(__file__).resolve().parent / ".work" / "magic"
CELL = ("SELECT a.account_id, a.name FROM {{ source('accounts') }} AS a\n"
        "WHERE a.region = 'DACH' AND a.employees >= {{ param('min_emp', 500) }}")


JUPYSQL_PIP = ".venv/bin/pip install jupysql duckdb-engine"


def median_ms(function, runs: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def interleaved_ms(functions: dict[str, Callable[[], Any]], runs: int) -> dict[str, float]:
    """Median ms of each function, called in turn run by run (a slow spell hits all of them);
    what they print (JupySQL's "Running query in ...") is swallowed."""
    times: dict[str, list[float]] = {name: [] for name in functions}
    with contextlib.redirect_stdout(io.StringIO()):
        for _ in range(runs):
            for name, function in functions.items():
                start = time.perf_counter()
                function()
                times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def jupysql_cell(shell: InteractiveShell, database: Path) -> Callable[[], Any] | None:
    """`%%sql` in the same shell, or None (with a message) when JupySQL is not installed.

    JupySQL connects through SQLAlchemy and duckdb-engine. A plain `%sql duckdb:///FILE` opens the
    file with duckdb-engine's own settings (a custom_user_agent), and DuckDB refuses a second
    connection to a file with other settings in one process, so segsql's connection (and the
    bare one) could not open it: the engine's connection is made by duckdb.connect(read_only=True)
    and wrapped as duckdb-engine wraps its own."""
    os.environ.setdefault("PLOOMBER_STATS_ENABLED", "false")  # JupySQL's telemetry: no network calls
    os.environ.setdefault("PLOOMBER_VERSION_CHECK_DISABLED", "true")
    try:
        import duckdb_engine
        import sql  # noqa: F401 (JupySQL)
        import sqlalchemy
    except ImportError as error:
        print(f"  JupySQL %%sql baseline skipped: cannot import {error.name!r} (JupySQL's module is `sql`). "
              f"Install it beside segsql, never as a segsql dependency: {JUPYSQL_PIP}")
        return None

    def connect() -> Any:
        return duckdb_engine.ConnectionWrapper(duckdb.connect(str(database), read_only=True))

    shell.user_ns["jupysql_engine"] = sqlalchemy.create_engine("duckdb://", creator=connect)
    with contextlib.redirect_stdout(io.StringIO()):
        shell.run_line_magic("load_ext", "sql")
        shell.run_line_magic("sql", "jupysql_engine")
    return lambda: shell.run_cell_magic("sql", "", SQL_CELL[0])


SQL_CELL = [""]  # the compiled SQL of the segment, set once known


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--profile", action="store_true", help="where a preview cell's time goes")
    parser.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True,
                        help="the peak RSS rows (two fresh processes each)")
    args = parser.parse_args()
    root = WORK / "demo"
    if not (root / "data" / "demo.duckdb").exists():
        prepare_demo(root, scale=1, seed=42, as_of=dt.date(2026, 11, 23))
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "segsql")
    shell.run_line_magic("segsql", f"project {root}")
    shell.run_line_magic("segsql", "as_of 2026-11-23")
    view = shell.run_cell_magic("segment", "simple --entity account", CELL)
    sql = view.sql
    SQL_CELL[0] = sql
    database = root / "data" / "demo.duckdb"
    connection = duckdb.connect(str(database), read_only=True)
    functions: dict[str, Callable[[], Any]] = {
        "bare": lambda: connection.execute(sql).fetchall(),
        "validate": lambda: shell.run_cell_magic("segment", "simple --entity account --no-run", CELL),
        "preview": lambda: shell.run_cell_magic("segment", "simple --entity account", CELL),
        "render": view._repr_mimebundle_,
    }
    jupysql = jupysql_cell(shell, database)
    if jupysql is not None:
        with contextlib.redirect_stdout(io.StringIO()):
            result = jupysql()
        functions["jupysql"] = jupysql
        functions["jupysql_html"] = result._repr_html_
    for function in functions.values():  # warm-up: first calls import and cache
        with contextlib.redirect_stdout(io.StringIO()):
            function()
    ms = interleaved_ms(functions, args.runs)
    bare, validate, preview, render = ms["bare"], ms["validate"], ms["preview"], ms["render"]
    print(f"median of {args.runs} runs, interleaved, demo scale 1 (2,000 accounts); segment returns "
          f"{view.result.size} members")
    print(f"  bare DuckDB query + fetch          {bare:7.2f} ms")
    print(f"  %%segment --no-run (validate)     {validate:7.2f} ms  (+{validate - bare:.2f} ms over bare)")
    print(f"  %%segment (validate + preview)    {preview:7.2f} ms  (+{preview - bare:.2f} ms over bare)")
    print(f"  widget bundle (HTML + view)       {render:7.2f} ms")
    if jupysql is not None:
        import sql as jupysql_module

        base, html = ms["jupysql"], ms["jupysql_html"]
        print(f"  JupySQL %%sql, same SQL (jupysql {jupysql_module.__version__}) "
              f"{base:7.2f} ms; its HTML table {html:.2f} ms ({len(result)} rows fetched)")
        print(f"  ratio %%segment preview / %%sql    {preview / base:7.2f}   (target ≤ 1.5, and ≤ 10 ms)")
        print(f"  ratio %%segment --no-run / %%sql   {validate / base:7.2f}")
        print(f"  ratio with display: (preview + bundle) / (%%sql + HTML table) "
              f"{(preview + render) / (base + html):.2f}")
    if args.profile:
        profile_preview(shell, 50)
    connection.close()
    for members in (50_000, 5_000_000) if args.memory else ():
        opened, previewed = preview_memory(members)
        print(f"  peak RSS, {members:>9,} members: open the database {opened} MB; %%segment preview {previewed} MB")


ROUND_TRIPS = ("execute", "fetchall", "fetch_arrow", "relation", "stream", "_describe_file", "text_collation")


def count_round_trips() -> tuple[list[tuple[str, float, str]], Callable[[], None]]:
    """Wrap the DuckDB engine's statement methods (at runtime, the engine is not edited): every
    call is logged with its time and SQL; also connect_file (opening the file), _tables when it
    reads information_schema (its cache is per connection) and Engine.sql (generating the text
    of a statement, inside the statement's own time). The SQL of an entry is generated when read,
    after the timed call. Returns the log and an undo."""
    from segsql.engines import duckdb as engine_module
    from segsql.engines.base import Engine

    log: list[Any] = []
    originals: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, name: str, describe: Callable[..., str]) -> None:
        original = getattr(owner, name)
        originals.append((owner, name, original if name in vars(owner) else None))

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            # _tables answers from its cache (no statement) once the connection has read information_schema
            cold = name != "_tables" or args[0]._table_columns is None
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                if cold:
                    log.append((name, time.perf_counter() - start, lambda: describe(*args, **kwargs)))
        setattr(owner, name, wrapper)

    def statement(engine: Any, statement: Any = "", *_: Any, **__: Any) -> str:
        return statement if isinstance(statement, str) else Engine.sql(engine, statement) if statement else "?"

    for name in ROUND_TRIPS:
        wrap(engine_module.DuckDBEngine, name, statement if name not in ("_describe_file", "text_collation")
             else lambda *_a, _n=name, **_k: _n)
    wrap(engine_module.DuckDBEngine, "_tables", lambda engine: "information_schema.columns")
    wrap(engine_module, "connect_file", lambda database, read_only=False: f"open {database} read_only={read_only}")
    wrap(engine_module.DuckDBEngine, "sql", lambda *_a, **_k: "(SQL text generated from the tree)")

    def undo() -> None:
        for owner, name, original in reversed(originals):
            if original is None:
                delattr(owner, name)  # it was inherited
            else:
                setattr(owner, name, original)
    return log, undo


# (label, file suffix, function name): the cell's parts by cumulative time; nested parts overlap
PARTS = [
    ("whole cell (SegsqlMagics.segment)", "magics/core.py", "segment"),
    ("  session.refresh (segment files fingerprinted)", "magics/session.py", "refresh"),
    ("  _project_with (overrides, with_options)", "magics/core.py", "_project_with"),
    ("  Project.with_segment (the cell as a segment)", "segsql/project.py", "with_segment"),
    ("  Project.validate (render + parse + checks)", "segsql/project.py", "validate"),
    ("  Project.compile (to SQL text)", "segsql/project.py", "compile"),
    ("  _preview", "magics/core.py", "_preview"),
    ("    session.engine (open + prepare_sources)", "magics/session.py", "engine"),
    ("    results.preview (size + key checks, population)", "segsql/run/results.py", "preview"),
    ("      results.preview_population (entity count)", "segsql/run/results.py", "preview_population"),
    ("      Engine.existing_tables (information_schema)", "segsql/engines/base.py", "existing_tables"),
    ("    Project.waterfall (one query, step counts)", "segsql/project.py", "waterfall"),
    ("    PreviewView() (fetches the first page)", "magics/widgets/views.py", "__init__"),
    ("      results.page (first page, Arrow)", "segsql/run/results.py", "page"),
    ("  session.release (close the file)", "magics/session.py", "release"),
    ("templating: render", "segsql/compile/templating.py", "render"),
    ("sqlglot parse_one", "sqlglot/__init__.py", "parse_one"),
    ("sqlglot Expression.sql (generate)", "sqlglot/expressions/core.py", "sql"),
    ("sqlglot optimizer qualify", "sqlglot/optimizer/qualify.py", "qualify"),
    ("duckdb connect (connect_file)", "segsql/engines/duckdb.py", "connect_file"),
    ("engine deadline + watchdog, around each statement", "segsql/engines/base.py", "deadline"),
    ("DuckDB statements: DuckDBEngine._run (fetchall, execute)", "segsql/engines/duckdb.py", "_run"),
    ("DuckDB statements: DuckDBEngine.fetch_arrow", "segsql/engines/duckdb.py", "fetch_arrow"),
]


def profile_preview(shell: InteractiveShell, cells: int) -> None:
    """cProfile of `cells` preview cells: the parts above (ms per cell), the top cumulative
    entries of segsql's and the magics' own functions, and the engine round trips of one cell."""
    profiler = cProfile.Profile()
    with contextlib.redirect_stdout(io.StringIO()):
        profiler.enable()
        for _ in range(cells):
            shell.run_cell_magic("segment", "simple --entity account", CELL)
        profiler.disable()
    stats = pstats.Stats(profiler)
    entries = stats.stats  # type: ignore[attr-defined]
    print(f"\nprofile: {cells} %%segment preview cells under cProfile (which slows Python code, not DuckDB)")
    print("| part | ms per cell (cumulative) | calls per cell |")
    print("|---|---|---|")
    for label, suffix, function in PARTS:
        found = [(value[1], value[3]) for (path, _, name), value in entries.items()
                 if path.endswith(suffix) and name == function]
        if found:
            print(f"| {label} | {sum(c for _, c in found) * 1000 / cells:.2f} | {sum(n for n, _ in found) / cells:g} |")
    ours = [(value[3], value[1], f"{Path(path).parent.name}/{Path(path).name}:{line} {name}")
            for (path, line, name), value in entries.items()
            if "/segsql/" in path or "/magics/" in path]
    print("\ntop 25 cumulative entries among segsql's and the magics' functions (ms per cell, calls per cell)")
    for cumulative, calls, where in sorted(ours, reverse=True)[:25]:
        print(f"  {cumulative * 1000 / cells:7.2f} ms  {calls / cells:6g}x  {where}")
    log, undo = count_round_trips()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            for _ in range(3):
                log.clear()
                start = time.perf_counter()
                shell.run_cell_magic("segment", "simple --entity account", CELL)
                wall = (time.perf_counter() - start) * 1000
    finally:
        undo()
    log[:] = [(name, seconds, describe()) for name, seconds, describe in log]
    generating = sum(seconds for name, seconds, _ in log if name == "sql") * 1000
    log[:] = [entry for entry in log if entry[0] != "sql"]  # inside the statements' own times
    in_engine = sum(seconds for _, seconds, _ in log) * 1000
    statements = [entry for entry in log if entry[0] != "connect_file"]
    print(f"\nengine round trips of one preview cell (the third of 3, no profiler): {len(statements)} statements "
          f"+ {len(log) - len(statements)} file open(s), {in_engine:.2f} ms inside them of {wall:.2f} ms; "
          f"of which {generating:.2f} ms generating their SQL text (Engine.sql: for_dialect + sqlglot)")
    for number, (name, seconds, text) in enumerate(log, 1):
        short = " ".join(text.split())
        print(f"  {number:2}. {name:14} {seconds * 1000:6.2f} ms  {short[:110] + ('...' if len(short) > 110 else '')}")


def preview_memory(members: int) -> tuple[int, int]:
    """Peak RSS (MB, VmHWM) of a fresh process that opens the database, and of one that also
    previews a segment with `members` members through %%segment."""
    root = WORK / f"preview-{members}"
    if not (root / "db.duckdb").exists():
        (root / "segments_sql").mkdir(parents=True, exist_ok=True)
        (root / "segsql.yml").write_text(
            "connection: {type: duckdb, path: db.duckdb}\nsources:\n  people: {table: people}\n"
            "entities:\n  person: {key: person_id, source: people}\n")
        connection = duckdb.connect(str(root / "db.duckdb"))
        connection.execute(f"CREATE TABLE people AS SELECT range AS person_id, random() AS score, "
                           f"'member ' || range AS label FROM range({members})")
        connection.close()
    open_only = f"import duckdb\nduckdb.connect({str(root / 'db.duckdb')!r}, read_only=True).close()\n"
    cell = "SELECT p.person_id, p.score, p.label FROM {{ source('people') }} AS p"
    previewed = ("from IPython.core.interactiveshell import InteractiveShell\n"
                 "shell = InteractiveShell.instance()\nshell.run_line_magic('load_ext', 'segsql')\n"
                 f"shell.run_line_magic('segsql', 'project {root}')\n"
                 f"view = shell.run_cell_magic('segment', 'many --entity person', {cell!r})\n"
                 "view._repr_mimebundle_()\nassert view.result.size > 0\n")
    return _peak(open_only), _peak(previewed)


def _peak(body: str) -> int:
    probe = "import sys\n" + body + (
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "print(hwm, file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
    return int(done.stderr.strip().splitlines()[-1]) // 1024


if __name__ == "__main__":
    main()
