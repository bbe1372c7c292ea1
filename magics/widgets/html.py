"""The static report of every view: HTML that a saved notebook shows without a kernel or widget
state (GitHub, nbconvert, VS Code). Every data value is escaped; numbers read as segsql.formats
prints them (text left-aligned, numbers right-aligned). Charts are separate outputs (charts.py)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import pandas as pd

from segsql import formats
from segsql.run.runner import KEY_FIX

# Selectors of two classes and two elements: they must win over JupyterLab's (and nbconvert's)
# `:not(.jp-RenderedMarkdown).jp-RenderedHTMLCommon td {text-align: right}`, which aligns text right.
STYLE = ("<style>.segsql table{border-collapse:collapse;font-size:12px;margin:4px 0}"
         ".segsql table.segsql-t td,.segsql table.segsql-t th{border:1px solid #ddd;padding:2px 6px;text-align:left}"
         ".segsql th{background:#f4f4f4}.segsql table.segsql-t td.num,.segsql table.segsql-t th.num{"
         "text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}"
         ".segsql .banner{color:#666;font-size:11px}"
         ".segsql .pass{color:#17803d}.segsql .warn{color:#b26b00}.segsql .fail{color:#c0392b}"
         ".segsql .kpi{font-size:15px}.segsql .note{color:#57606a;font-size:11px}"
         # nbconvert's page styles a <pre> in an output as body text: SQL and diffs read as code
         ".segsql pre{font-family:var(--jp-code-font-family,monospace);font-size:12px;line-height:1.4;"
         "background:#f6f8fa;padding:6px 8px;margin:4px 0;overflow-x:auto}</style>")


def esc(value: Any) -> str:
    """Text of a value, HTML-escaped (a trait like `<img onerror=...>` shows as text)."""
    return html.escape(formats.cell(value))


def percent(value: Any) -> str:
    return formats.percent(value)


def _numeric(column: list[Any]) -> bool:
    present = [v for v in column if formats.cell(v) != ""]
    return bool(present) and all(formats.is_numeric(v) or (isinstance(v, str) and formats.is_number_text(v))
                                 for v in present)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], cell_class: Sequence[str] | None = None) -> str:
    """An HTML table; a column whose values are all numbers (or formatted numbers) aligns right."""
    numeric = [_numeric([row[i] for row in rows]) for i in range(len(headers))]
    head = "".join(f"<th{' class=num' if numeric[i] else ''}>{esc(h)}</th>" for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            classes = " ".join(filter(None, ["num" if numeric[i] else "", cell_class[i] if cell_class else ""]))
            cells.append(f"<td{f' class={classes!r}' if classes else ''}>{esc(value)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table class='segsql-t'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def frame_table(frame: pd.DataFrame) -> str:
    return table([str(c) for c in frame.columns], frame.values.tolist())


def wrap(title: str, banner: str, *parts: str) -> str:
    return (f'{STYLE}<div class="segsql"><h4>{esc(title)}</h4><div class="banner">{esc(banner)}</div>'
            + "".join(parts) + "</div>")


def size_line(result: Any) -> str:
    """`segment NAME: 1,234 account(s) (12.3% of 2,000)`: the preview's headline as text."""
    about = "" if result.population_exact else "≈"
    share = (f" ({about}{formats.percent(result.share)} of {about}{formats.count(result.population)})"
             if result.population else "")
    return f"segment {result.name}: {formats.count(result.size)} {result.entity}(s){share}"


def key_warning(result: Any) -> str:
    return f"{result.key_problem}: `%segsql run` will refuse it ({KEY_FIX})"


def preview(result: Any, page: pd.DataFrame, waterfall: pd.DataFrame | None, sql: str, banner: str,
            offset: int = 0) -> str:
    about = "" if result.population_exact else "≈"
    share = (f", {about}{formats.percent(result.share)} of {about}{formats.count(result.population)} "
             f"{esc(result.entity)}s" if result.population else "")
    summary = (f'<p class="size kpi"><b>{formats.count(result.size)}</b> {esc(result.entity)}(s){share} · '
               f"ran in {formats.number(result.elapsed_ms, 3)} ms on {esc(result.engine)}</p>")
    masked = f"<p>masked PII columns: {esc(', '.join(result.pii))}</p>" if result.pii else ""
    if result.key_problem:
        masked = f"<p class='warn'><b>warning:</b> {esc(key_warning(result))}</p>" + masked
    first, last = (offset + 1, offset + len(page)) if len(page) else (0, 0)
    shown = (f"<p>members {formats.count(first)}–{formats.count(last)} of {formats.count(result.size)}</p>"
             + frame_table(page))
    steps = ""
    if waterfall is not None and len(waterfall):
        rows = [[r.condition, formats.count(r.remaining), formats.count(r.removed)]
                for r in waterfall.itertuples(index=False)]
        steps = "<h5>size waterfall</h5>" + table(["condition", "remaining", "removed"], rows)
    code = f"<details><summary>compiled SQL</summary><pre>{html.escape(sql)}</pre></details>"
    return wrap(f"segment {result.name}", banner, summary, masked, steps, shown, code)


def _comparison_rows(frame: pd.DataFrame, kind: str, unit: str) -> list[list[str]]:
    return [[r.segment, formats.count(r.members), formats.metric(r.value, kind, unit),
             formats.metric(r.baseline, kind, unit), formats.difference(r.diff, kind, unit),
             formats.interval(r.ci_low, r.ci_high, kind, unit), formats.p_value(r.p_value),
             "*" if r.significant is True else "", r.note] for r in frame.itertuples(index=False)]


COMPARE_HEADERS = ["segment", "members", "value", "baseline", "diff", "95% CI of diff", "p", "sig.", "note"]


def comparison(comparison: Any, kinds: dict[str, tuple[str, str]], banner: str) -> str:
    parts = []
    for metric, frame in comparison.tables.items():
        kind, unit = kinds.get(metric, ("", ""))
        parts.append(f"<h5>{esc(metric)} ({esc(kind)}) vs {esc(comparison.baseline)}</h5>")
        parts.append(table(COMPARE_HEADERS, _comparison_rows(frame, kind, unit)))
    note = ("<p class='note'>* significant after Benjamini–Hochberg (5%) · diff of percentages in percentage "
            "points (pp) · charts below</p>")
    return wrap("segment comparison", banner, *parts, note)


def comparison_text(comparison: Any, kinds: dict[str, tuple[str, str]]) -> str:
    """The comparison as text (text/plain): every number the HTML shows, CIs included."""
    if not comparison.tables:
        return "(nothing to compare)"
    lines = []
    for metric, frame in comparison.tables.items():
        kind, unit = kinds.get(metric, ("", ""))
        lines.append(f"{metric} ({kind}) vs {comparison.baseline}")
        rows = _comparison_rows(frame, kind, unit)
        widths = [max(len(h), *(len(str(r[i])) for r in rows)) for i, h in enumerate(COMPARE_HEADERS)]
        for cells in [COMPARE_HEADERS, *rows]:
            lines.append("  " + "  ".join(str(c).rjust(w) if i and i < 8 else str(c).ljust(w)
                                          for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip())
    lines.append("* significant after Benjamini–Hochberg (5%); pp = percentage points")
    return "\n".join(lines)


def overlap(frame: pd.DataFrame, banner: str) -> str:
    """The Jaccard matrix as a table; the diagonal (each segment's size) is not shaded, so the
    off-diagonal cells use the whole colour range."""
    names = list(dict.fromkeys(frame["left"]))
    cells = {(r.left, r.right): r for r in frame.itertuples(index=False)}
    off = [float(r.jaccard) for r in cells.values() if r.left != r.right and not pd.isna(r.jaccard)]
    top = max(off, default=0.0) or 1.0
    head = "<tr><th></th>" + "".join(f"<th>{esc(n)}</th>" for n in names) + "</tr>"
    body = []
    for left in names:
        row = [f"<th>{esc(left)}</th>"]
        for right in names:
            cell = cells[(left, right)]
            if left == right:
                row.append(f"<td class='num' style='background:#eef1f5' title='members'>"
                           f"{formats.count(cell.shared)}<br><small>members</small></td>")
                continue
            jaccard = 0.0 if cell.jaccard is None or pd.isna(cell.jaccard) else float(cell.jaccard)
            shade = jaccard / top
            row.append(f"<td class='num' style='background:rgba(31,111,235,{shade * 0.85:.2f});"
                       f"color:{'#fff' if shade > 0.6 else '#111'}' title='Jaccard {jaccard:.3f}'>"
                       f"{formats.number(jaccard, 2)}<br><small>{formats.count(cell.shared)} shared</small></td>")
        body.append("<tr>" + "".join(row) + "</tr>")
    return wrap("segment overlap (Jaccard, shared members)", banner,
                f"<table class='segsql-t'>{head}{''.join(body)}</table>")


def overlap_text(frame: pd.DataFrame) -> str:
    order = {name: index for index, name in enumerate(dict.fromkeys(frame["left"]))}
    return "\n".join(f"{r.left} & {r.right}: Jaccard {formats.number(r.jaccard, 3)}, {formats.count(r.shared)} shared"
                     for r in frame.itertuples(index=False) if order[r.left] < order[r.right])


def report(frame: pd.DataFrame, banner: str) -> str:
    rows = frame[["segment", "criterion", "verdict", "value", "threshold", "detail"]].values.tolist()
    classes = ["", "", "verdict", "", "", ""]
    rendered = table(["segment", "criterion", "verdict", "value", "threshold", "detail"], rows, classes)
    for verdict in ("pass", "warn", "fail"):
        rendered = rendered.replace(f"<td class='verdict'>{verdict}</td>", f'<td class="{verdict}">{verdict}</td>')
    return wrap("segment validation report", banner, rendered)


def plain_table(frame: pd.DataFrame, limit: int = 20) -> str:
    shown = frame.head(limit)
    return str(shown.map(formats.cell).to_string(index=False)) if len(shown.columns) else "(no columns)"


def git_diff(report: Any, banner: str) -> str:
    """`segsql diff` in a notebook: changed segments first, then each changed segment's SQL diff."""
    ordered = report.ordered()
    rows = [[s.name, s.status, s.entity or "", formats.count(s.base_size), formats.count(s.head_size),
             formats.count(s.added), formats.count(s.removed), ", ".join(map(str, s.added_sample)),
             ", ".join(map(str, s.removed_sample))] for s in ordered]
    rendered = table(["segment", "status", "entity", "base size", "new size", "added", "removed", "added e.g.",
                      "removed e.g."], rows)
    changed = [s for s in ordered if s.status != "unchanged"]
    details = "".join(f"<details{' open' if len(changed) <= OPEN_DIFFS else ''}><summary>{esc(s.name)}: compiled SQL"
                      f"</summary>{_coloured_diff(s.sql_diff or s.error or '')}</details>" for s in changed)
    note = ("<p class='note'>unchanged: the compiled SQL is the same, so the members cannot differ (not "
            "evaluated)</p>" if len(changed) < len(ordered) else "")
    return wrap(f"diff against {report.base} ({report.base_commit})", banner, rendered, note, details)


# With this many changed segments or fewer, their SQL diffs show open: a saved notebook (or a
# page of it) shows what changed without a click; more would bury the table under SQL.
OPEN_DIFFS = 3


def _coloured_diff(text: str) -> str:
    """A unified diff as <pre>, added lines green and removed ones red (file headers left plain)."""
    def line(row: str) -> str:
        kind = "pass" if row.startswith("+") and not row.startswith("+++") else \
            "fail" if row.startswith("-") and not row.startswith("---") else ""
        return f"<span class='{kind}'>{esc(row)}</span>" if kind else esc(row)

    return "<pre>" + "\n".join(line(row) for row in text.splitlines()) + "</pre>"


def cohorts_text(result: Any, value: str) -> str:
    """The triangle as text, each value as the table prints it (retention as a percent, not 0.973)."""
    from segsql.methods.cohorts import VALUE_KINDS

    kind = VALUE_KINDS.get(value, formats.NUMBER)
    shown = result.triangle(value).map(lambda v: "" if pd.isna(v) else formats.metric(v, "mean", kind))
    return str(shown.reset_index().head(60).to_string(index=False))


def cohorts(result: Any, value: str, banner: str) -> str:
    """The cohort table (collapsed: the heat map and curves are the charts below it)."""
    from segsql.methods.cohorts import triangle_html

    summary = (f"<p class='kpi'><b>{formats.count(result.frame['cohort'].nunique())}</b> cohort(s) by "
               f"{esc(result.period)}</p>")
    return wrap(f"cohort {value} by {result.period}", banner, summary,
                f"<details><summary>table</summary>{triangle_html(result, value)}</details>")
