"""Notebook overhead: %%segment vs the bare DuckDB query, in one IPython process.

  bare      duckdb: execute the compiled SQL of a simple segment and fetch its rows
  validate  %%segment --no-run: parse the cell, render, validate, compile
  preview   %%segment: the above plus evaluating it into a temp table, size, share, waterfall,
            the first page and the widget view (what appears under the cell)
  render    building the view's HTML and MIME bundle once the data is there
Targets (issue 5): ≤ 1 ms extra for compile + validate + run; the widget within 50 ms more.

    python benchmarks/magic.py [--runs 200]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import subprocess
import sys
import time
from pathlib import Path

import duckdb
from IPython.core.interactiveshell import InteractiveShell

from segsql.demo.project import prepare_demo

WORK = Path(__file__).resolve().parent / ".work" / "magic"
CELL = ("SELECT a.account_id, a.name FROM {{ source('accounts') }} AS a\n"
        "WHERE a.region = 'DACH' AND a.employees >= {{ param('min_emp', 500) }}")


def median_ms(function, runs: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
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
    connection = duckdb.connect(str(root / "data" / "demo.duckdb"), read_only=True)
    bare = median_ms(lambda: connection.execute(sql).fetchall(), args.runs)
    validate = median_ms(lambda: shell.run_cell_magic("segment", "simple --entity account --no-run", CELL), args.runs)
    preview = median_ms(lambda: shell.run_cell_magic("segment", "simple --entity account", CELL), args.runs)
    render = median_ms(view._repr_mimebundle_, args.runs)
    print(f"median of {args.runs} runs, demo scale 1 (2,000 accounts); segment returns {view.result.size} members")
    print(f"  bare DuckDB query + fetch          {bare:7.2f} ms")
    print(f"  %%segment --no-run (validate)     {validate:7.2f} ms  (+{validate - bare:.2f} ms over bare)")
    print(f"  %%segment (validate + preview)    {preview:7.2f} ms  (+{preview - bare:.2f} ms over bare)")
    print(f"  widget bundle (HTML + view)       {render:7.2f} ms")
    connection.close()
    for members in (50_000, 5_000_000):
        opened, previewed = preview_memory(members)
        print(f"  peak RSS, {members:>9,} members: open the database {opened} MB; %%segment preview {previewed} MB")


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
