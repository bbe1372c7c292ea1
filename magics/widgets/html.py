"""Static HTML for every widget: what a saved notebook shows without a kernel or widget state
(GitHub, nbconvert, VS Code). Every data value is escaped; charts are inline SVG."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

STYLE = ("<style>.segsql table{border-collapse:collapse;font-size:12px}.segsql td,.segsql th{border:1px solid #ddd;"
         "padding:2px 6px;text-align:right}.segsql th{background:#f4f4f4}.segsql .banner{color:#666;font-size:11px}"
         ".segsql .pass{color:#17803d}.segsql .warn{color:#b26b00}.segsql .fail{color:#c0392b}</style>")


def esc(value: Any) -> str:
    """Text of a value, HTML-escaped (a trait like `<img onerror=...>` shows as text)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return html.escape(f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}")
    return html.escape(str(value))


def percent(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.1%}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], cell_class: Sequence[str] | None = None) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(f"<td{f' class={cell_class[i]!r}' if cell_class and cell_class[i] else ''}>{esc(v)}</td>"
                        for i, v in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def wrap(title: str, banner: str, *parts: str) -> str:
    return (f'{STYLE}<div class="segsql"><h4>{esc(title)}</h4><div class="banner">{esc(banner)}</div>'
            + "".join(parts) + "</div>")


def preview(result: Any, page: pd.DataFrame, waterfall: pd.DataFrame | None, sql: str, banner: str,
            offset: int = 0) -> str:
    about = "" if result.population_exact else "≈"
    share = (f", {about}{percent(result.share)} of {about}{result.population:,} {esc(result.entity)}s"
             if result.population else "")
    summary = (f'<p class="size"><b>{result.size:,}</b> {esc(result.entity)}(s){share} · '
               f"ran in {result.elapsed_ms:.1f} ms on {esc(result.engine)}</p>")
    masked = f"<p>masked PII columns: {esc(', '.join(result.pii))}</p>" if result.pii else ""
    first, last = (offset + 1, offset + len(page)) if len(page) else (0, 0)
    shown = f"<p>members {first:,}–{last:,} of {result.size:,}</p>" + table(list(page.columns), page.values.tolist())
    steps = ""
    if waterfall is not None and len(waterfall):
        steps = "<h5>size waterfall</h5>" + table(["condition", "remaining", "removed"],
                                                   waterfall[["condition", "remaining", "removed"]].values.tolist())
    code = f"<details><summary>compiled SQL</summary><pre>{html.escape(sql)}</pre></details>"
    return wrap(f"segment {result.name}", banner, summary, masked, steps, shown, code)


def comparison(comparison: Any, kinds: dict[str, str], banner: str) -> str:
    parts = []
    for metric, frame in comparison.tables.items():
        kind = kinds.get(metric, "")
        rows = [[r.segment, r.members, _value(r.value, kind), _value(r.baseline, kind), _value(r.diff, kind),
                 _interval(r.ci_low, r.ci_high, kind), _p(r.p_value), "*" if r.significant is True else "", r.note]
                for r in frame.itertuples(index=False)]
        parts.append(f"<h5>{esc(metric)} ({esc(kind)}) vs {esc(comparison.baseline)}</h5>")
        parts.append(table(["segment", "members", "value", "baseline", "diff", "95% CI", "p", "sig.", "note"], rows))
        parts.append(diff_chart(frame, kind))
    return wrap("segment comparison", banner, *parts, "<p>* significant after Benjamini–Hochberg (5%)</p>")


def _interval(low: Any, high: Any, kind: str) -> str:
    if low is None or pd.isna(low):
        return ""
    return f"[{_value(low, kind)}, {_value(high, kind)}]"


def _value(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return percent(value) if kind == "proportion" else f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"


def _p(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.2g}" if value >= 1e-4 else "<1e-4"


def diff_chart(frame: pd.DataFrame, kind: str) -> str:
    """Horizontal bars of (segment − baseline) with 95% CI error bars, as inline SVG."""
    rows = [r for r in frame.itertuples(index=False) if r.diff is not None and not pd.isna(r.diff)]
    if not rows:
        return ""
    extent = max(*(abs(v) for r in rows for v in (r.diff, r.ci_low, r.ci_high) if v is not None and not pd.isna(v)),
                 1e-12)
    width, label, height = 420, 140, 22
    middle = label + (width - label) / 2
    scale = (width - label - 10) / 2 / extent
    shapes = [f'<line x1="{middle}" y1="0" x2="{middle}" y2="{height * len(rows)}" stroke="#999"/>']
    for index, row in enumerate(rows):
        y = index * height
        x0, x1 = sorted((middle, middle + row.diff * scale))
        colour = "#2e86de" if row.significant is True else "#aab7c4"
        shapes.append(f'<text x="0" y="{y + 15}" font-size="11">{esc(row.segment)}</text>')
        bar = max(x1 - x0, 1)
        shapes.append(f'<rect x="{x0:.1f}" y="{y + 4}" width="{bar:.1f}" height="{height - 8}" fill="{colour}"/>')
        if row.ci_low is not None and not pd.isna(row.ci_low):
            low, high = middle + row.ci_low * scale, middle + row.ci_high * scale
            shapes.append(f'<line x1="{low:.1f}" y1="{y + 11}" x2="{high:.1f}" y2="{y + 11}" stroke="#333"/>')
            shapes.append(f'<line x1="{low:.1f}" y1="{y + 6}" x2="{low:.1f}" y2="{y + 16}" stroke="#333"/>')
            shapes.append(f'<line x1="{high:.1f}" y1="{y + 6}" x2="{high:.1f}" y2="{y + 16}" stroke="#333"/>')
    return (f'<svg width="{width}" height="{height * len(rows)}" role="img" '
            f'aria-label="difference from baseline with 95% CI">{"".join(shapes)}</svg>')


def overlap(frame: pd.DataFrame, banner: str) -> str:
    names = list(dict.fromkeys(frame["left"]))
    cells = {(r.left, r.right): r for r in frame.itertuples(index=False)}
    head = "<tr><th></th>" + "".join(f"<th>{esc(n)}</th>" for n in names) + "</tr>"
    body = []
    for left in names:
        row = [f"<th>{esc(left)}</th>"]
        for right in names:
            cell = cells[(left, right)]
            jaccard = 0.0 if cell.jaccard is None or pd.isna(cell.jaccard) else float(cell.jaccard)
            row.append(f'<td style="background:rgba(46,134,222,{jaccard:.2f})" title="Jaccard {jaccard:.3f}">'
                       f"{jaccard:.2f}<br><small>{cell.shared:,}</small></td>")
        body.append("<tr>" + "".join(row) + "</tr>")
    return wrap("segment overlap (Jaccard, shared members)", banner,
                f"<table>{head}{''.join(body)}</table>")


def report(frame: pd.DataFrame, banner: str) -> str:
    rows = frame[["segment", "criterion", "verdict", "value", "threshold", "detail"]].values.tolist()
    classes = ["", "", "verdict", "", "", ""]
    rendered = table(["segment", "criterion", "verdict", "value", "threshold", "detail"], rows, classes)
    for verdict in ("pass", "warn", "fail"):
        rendered = rendered.replace(f"<td class='verdict'>{verdict}</td>", f'<td class="{verdict}">{verdict}</td>')
    return wrap("segment validation report", banner, rendered)


def plain_table(frame: pd.DataFrame, limit: int = 20) -> str:
    return str(frame.head(limit).to_string(index=False))


def git_diff(report: Any, banner: str) -> str:
    """`segsql diff` in a notebook: the per-segment table and each changed segment's SQL diff."""
    rows = [[s.name, s.status, s.entity or "", "" if s.base_size is None else f"{s.base_size:,}",
             "" if s.head_size is None else f"{s.head_size:,}", f"{s.added:,}", f"{s.removed:,}",
             ", ".join(map(str, s.added_sample)), ", ".join(map(str, s.removed_sample))] for s in report.segments]
    rendered = table(["segment", "status", "entity", "base size", "new size", "added", "removed", "added e.g.",
                      "removed e.g."], rows)
    details = "".join(f"<details><summary>{esc(s.name)}</summary><pre>{esc(s.sql_diff or s.error or '')}</pre>"
                      "</details>" for s in report.segments if s.status != "unchanged")
    return wrap(f"diff against {report.base} ({report.base_commit})", banner, rendered, details)


def cohort_curves(result: Any, value: str, width: int = 560, height: int = 220) -> str:
    """Retention curves: one line per cohort (value by period since), newest cohorts darkest."""
    frame = result.frame
    if not len(frame):
        return "<p>no cohorts</p>"
    top = max(float(frame[value].max() or 0), 1.0)
    periods = max(int(frame["period_index"].max()), 1)
    cohorts = sorted(frame["cohort"].unique())
    lines = []
    for rank, cohort in enumerate(cohorts):
        rows = frame[frame["cohort"] == cohort].sort_values("period_index")
        points = " ".join(f"{40 + p / periods * (width - 60):.1f},{height - 25 - (v / top) * (height - 45):.1f}"
                          for p, v in zip(rows["period_index"], rows[value].fillna(0), strict=True))
        shade = 0.25 + 0.75 * (rank + 1) / len(cohorts)
        lines.append(f"<polyline fill='none' stroke='rgba(26,86,219,{shade:.2f})' stroke-width='1.5' "
                     f"points='{points}'><title>{esc(cohort)}</title></polyline>")
    return (f"<svg class='cohort-curves' width='{width}' height='{height}' role='img' aria-label='{esc(value)} curves'>"
            f"<line x1='40' y1='{height - 25}' x2='{width - 20}' y2='{height - 25}' stroke='#aab'/>"
            f"<text x='2' y='24' font-size='11'>{top:.0%}</text><text x='2' y='{height - 25}' font-size='11'>0%</text>"
            f"<text x='40' y='{height - 6}' font-size='11'>period 0</text>"
            f"<text x='{width - 90}' y='{height - 6}' font-size='11'>period {periods}</text>{''.join(lines)}</svg>")


def cohorts(result: Any, value: str, banner: str) -> str:
    from segsql.methods.cohorts import triangle_html

    return wrap(f"cohort {value} by {result.period}", banner, triangle_html(result, value),
                "<h5>curves</h5>", cohort_curves(result, value))
