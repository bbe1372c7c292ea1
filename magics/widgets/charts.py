"""Charts of the magics, drawn with Vega-Lite (built with Altair) and rendered to a static image
by vl-convert, offline: no browser, no CDN, no kernel needed to see them.

Each `Chart` is displayed as one output carrying three forms, and every front end picks the best
it can show: the Vega-Lite spec (`application/vnd.vegalite.v5+json`: JupyterLab renders it itself,
interactive, with tooltips), a PNG (nbconvert HTML, GitHub, VS Code, a notebook saved without
widget state) and a text table of the plotted values. PNG rather than SVG: vl-convert lays out
text with its own fonts, and an SVG's text is drawn with the viewer's, which are wider on some
machines (labels then overflow the chart); the PNG looks the same everywhere.

Numbers on axes, labels and tooltips read as everywhere else (segsql.formats): values are
formatted in Python and passed as text fields, so a chart and its table never disagree.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import struct
from dataclasses import dataclass
from typing import Any

import altair as alt
import pandas as pd
import vl_convert

from segsql import formats

VEGALITE_MIME = "application/vnd.vegalite.v5+json"  # what JupyterLab 4 renders natively
SIGNIFICANT, NOT_SIGNIFICANT, NOT_TESTED = "significant (BH 5%)", "not significant", "not tested"
COLOURS = {SIGNIFICANT: "#1f6feb", NOT_SIGNIFICANT: "#9aa7b8", NOT_TESTED: "#d8dee6"}
WIDTH = 520
MAX_COHORTS = 36  # a heat map row or a curve per cohort stays readable up to about this many
DIVERGING = ["#b2182b", "#f7f7f7", "#2166ac"]  # loss (red) · 100% (white) · growth (blue)
RETENTION_CAP = 2.0  # the colour scale and the curves stop at 200%; what is above is marked and named
MEAN_COHORTS = 3  # the all-cohorts line stops where fewer cohorts than this have reached the period
PNG_SCALE = 2  # pixels per CSS pixel: sharp on high-density screens, shown at its CSS size


@dataclass(frozen=True)
class Chart:
    """A Vega-Lite spec with its static PNG and a text table: one notebook output."""
    title: str
    spec: dict[str, Any]
    png: bytes
    text: str

    @property
    def size(self) -> tuple[int, int]:
        """Width and height in CSS pixels (from the PNG's header)."""
        width, height = struct.unpack(">II", self.png[16:24])
        return width // PNG_SCALE, height // PNG_SCALE

    def bundle(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(data, metadata) of the output; the metadata sizes the PNG for every front end."""
        width, height = self.size
        data = {VEGALITE_MIME: self.spec, "image/png": base64.b64encode(self.png).decode("ascii"),
                "text/plain": self.text}
        return data, {"image/png": {"width": width, "height": height}}

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
        return self.bundle()


def _vegalite_version() -> str:
    """vl-convert's name for Altair's Vega-Lite version ('v5.20.1' -> '5.20')."""
    major, minor = alt.SCHEMA_VERSION.lstrip("v").split(".")[:2]
    return f"{major}.{minor}"


def _finish(chart: alt.TopLevelMixin, title: str, text: str) -> Chart:
    styled = (chart.configure(font="system-ui, -apple-system, Segoe UI, sans-serif")
              .configure_view(stroke=None)
              .configure_axis(labelFontSize=11, titleFontSize=11, grid=True, gridColor="#eef1f5")
              .configure_legend(labelFontSize=11, titleFontSize=11, orient="bottom")
              .configure_title(fontSize=13, anchor="start"))
    spec = styled.to_dict()
    png = vl_convert.vegalite_to_png(spec, vl_version=_vegalite_version(), scale=PNG_SCALE)
    return Chart(title, spec, png, text)


def _title(text: str, subtitle: str | list[str] = "") -> alt.TitleParams:
    return alt.TitleParams(text=text, subtitle=subtitle or alt.Undefined, subtitleColor="#57606a", subtitleFontSize=11)


def _axis_labels(shown: str, as_difference: bool) -> str:
    """A Vega expression formatting axis values as segsql.formats does (percentage points, %);
    differences signed, with a hyphen (as the bars' labels, not d3's minus sign) and zero unsigned."""
    unit = " pp" if shown == formats.PERCENT else ""
    if shown == formats.PERCENT:
        label = "format(datum.value * 100, '+~f') + ' pp'" if as_difference else "format(datum.value, '.0%')"
    elif shown in (formats.CURRENCY, formats.COUNT):
        label = "format(datum.value, '" + ("+" if as_difference else "") + ",.0f')"
    else:
        label = "format(datum.value, '" + ("+" if as_difference else "") + ",.4~r')"
    return f"datum.value === 0 ? '0{unit}' : replace({label}, '\u2212', '-')" if as_difference else label


# -- compare ------------------------------------------------------------------------------------
def difference(frame: pd.DataFrame, metric: str, kind: str, unit: str, baseline: str) -> Chart | None:
    """Each segment's difference from the baseline as a bar, its 95% CI as a whisker, a zero line,
    and a colour saying whether the difference stays significant after Benjamini–Hochberg."""
    rows: list[dict[str, Any]] = []
    low, high = 0.0, 0.0  # the x extent: bars, whiskers and zero
    for row in frame.itertuples(index=False):
        if row.diff is None or pd.isna(row.diff):
            continue
        tested = row.significant is not None and not pd.isna(row.significant)
        has_ci = row.ci_low is not None and not pd.isna(row.ci_low)
        right = max(float(row.diff), float(row.ci_high) if has_ci else float(row.diff), 0.0)
        low = min(low, float(row.diff), float(row.ci_low) if has_ci else 0.0)
        high = max(high, right)
        rows.append({"segment": str(row.segment), "diff": float(row.diff), "label_at": right,
                     "ci_low": float(row.ci_low) if has_ci else None, "ci_high": float(row.ci_high) if has_ci else None,
                     "verdict": SIGNIFICANT if row.significant is True else NOT_SIGNIFICANT if tested else NOT_TESTED,
                     "value_text": formats.metric(row.value, kind, unit),
                     "diff_text": formats.difference(row.diff, kind, unit),
                     "ci_text": formats.interval(row.ci_low, row.ci_high, kind, unit) or "no interval",
                     "p_text": formats.p_value(row.p_value) or "n/a"})
    if not rows:
        return None
    shown = formats.display_kind(kind, unit)
    data = pd.DataFrame(rows)
    unit_text = " (percentage points)" if shown == formats.PERCENT else ""
    room = (high - low or abs(high) or 1.0) * 0.18  # for the value printed right of each bar
    x = alt.X("diff:Q", title=f"difference from {baseline}{unit_text}", scale=alt.Scale(domain=[low, high + room]),
              axis=alt.Axis(labelExpr=_axis_labels(shown, True), tickCount=6, labelOverlap=True))
    y = alt.Y("segment:N", title=None, sort=None, axis=alt.Axis(labelLimit=220))
    tooltip = [alt.Tooltip("segment:N"), alt.Tooltip("value_text:N", title="value"),
               alt.Tooltip("diff_text:N", title="difference"), alt.Tooltip("ci_text:N", title="95% CI"),
               alt.Tooltip("p_text:N", title="p")]
    present = [v for v in COLOURS if v in set(data["verdict"])]
    colour = alt.Color("verdict:N", title="after Benjamini–Hochberg at 5%", legend=alt.Legend(titleLimit=400),
                       scale=alt.Scale(domain=present, range=[COLOURS[v] for v in present]))
    base = alt.Chart(data)
    bars = base.mark_bar(height=14).encode(x=x, y=y, color=colour, tooltip=tooltip)
    whiskers = base.transform_filter("datum.ci_low != null").mark_errorbar(ticks=True, color="#24292f").encode(
        x=alt.X("ci_low:Q", title=""), x2="ci_high:Q", y=y)
    zero = alt.Chart(pd.DataFrame({"zero": [0.0]})).mark_rule(color="#24292f", strokeWidth=1.5).encode(x="zero:Q")
    labels = base.mark_text(align="left", dx=6, fontSize=10, color="#24292f").encode(
        x=alt.X("label_at:Q"), y=y, text="diff_text:N")
    title = _title(f"{metric}: difference from {baseline}", "bars: difference · whiskers: 95% CI · line: no difference")
    chart = alt.layer(bars, whiskers, zero, labels).properties(
        width=WIDTH, height=alt.Step(34), title=title)
    text = "\n".join([f"{metric}: difference from {baseline}"] + [
        f"  {r['segment']}: {r['diff_text']} {r['ci_text']} p={r['p_text']} ({r['verdict']})" for r in rows])
    return _finish(chart, f"{metric} vs {baseline}", text)


# -- overlap ------------------------------------------------------------------------------------
def overlap(frame: pd.DataFrame) -> Chart:
    """Jaccard index of every pair as a heat map; the diagonal (a segment with itself, always 1)
    is drawn grey and left out of the colour scale so it does not wash out the other cells."""
    names = list(dict.fromkeys(frame["left"]))
    rows = []
    for row in frame.itertuples(index=False):
        same = row.left == row.right
        jaccard = None if same or row.jaccard is None or pd.isna(row.jaccard) else float(row.jaccard)
        rows.append({"left": row.left, "right": row.right, "jaccard": jaccard, "same": same,
                     "label": f"{formats.count(row.shared)}" if same else
                     f"{formats.number(jaccard or 0.0, 2)}\n{formats.count(row.shared)} shared",
                     "shared": formats.count(row.shared)})
    data = pd.DataFrame(rows)
    top = max((r["jaccard"] for r in rows if r["jaccard"] is not None), default=0.0) or 1.0
    x = alt.X("right:N", sort=names, title=None,
              axis=alt.Axis(labelAngle=-30, orient="top", labelLimit=160, grid=False, ticks=False, domain=False))
    y = alt.Y("left:N", sort=names, title=None, axis=alt.Axis(labelLimit=180, grid=False, ticks=False, domain=False))
    base = alt.Chart(data).encode(x=x, y=y)
    cells = base.transform_filter("!datum.same").mark_rect(stroke="white").encode(
        color=alt.Color("jaccard:Q", title="Jaccard (shared ÷ either)",
                        scale=alt.Scale(scheme="blues", domain=[0, top], nice=False)),
        tooltip=[alt.Tooltip("left:N"), alt.Tooltip("right:N"), alt.Tooltip("jaccard:Q", format=".3f"),
                 alt.Tooltip("shared:N")])
    diagonal = base.transform_filter("datum.same").mark_rect(color="#eef1f5", stroke="white").encode(
        tooltip=[alt.Tooltip("left:N", title="segment"), alt.Tooltip("shared:N", title="members")])
    labels = base.mark_text(fontSize=10, lineBreak="\n").encode(
        text="label:N", color=alt.condition(f"datum.jaccard > {top * 0.6}", alt.value("white"), alt.value("#24292f")))
    side = min(max(70 * len(names), 160), 560)
    title = _title("overlap of segments", "cells: Jaccard index and shared members · diagonal: segment size")
    chart = alt.layer(cells, diagonal, labels).properties(width=side, height=side, title=title)
    text = "\n".join(f"  {r['left']} & {r['right']}: " + (f"{r['shared']} members" if r["same"] else
                                                          f"Jaccard {formats.number(r['jaccard'] or 0.0, 3)}, "
                                                          f"{r['shared']} shared") for r in rows
                     if names.index(r["left"]) <= names.index(r["right"]))
    return _finish(chart, "overlap", "overlap of segments\n" + text)


# -- cohorts ------------------------------------------------------------------------------------
def _cohort_frame(frame: pd.DataFrame, value: str) -> tuple[pd.DataFrame, str]:
    """The newest MAX_COHORTS cohorts and the first MAX_COHORTS periods, with a note if cut."""
    cohorts = sorted(frame["cohort"].unique())
    note = ""
    if len(cohorts) > MAX_COHORTS:
        note = f"newest {MAX_COHORTS} of {len(cohorts)} cohorts"
        frame = frame[frame["cohort"].isin(cohorts[-MAX_COHORTS:])]
    if int(frame["period_index"].max()) >= MAX_COHORTS:
        note = ", ".join(filter(None, [note, f"periods 0–{MAX_COHORTS - 1}"]))
        frame = frame[frame["period_index"] < MAX_COHORTS]
    shown = frame[["cohort", "period_index", "cohort_size", value]].copy()
    shown["cohort"] = [_date_text(c) for c in shown["cohort"]]
    return shown, note


def _date_text(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def _value_kind(value: str) -> str:
    return {"retention": formats.PERCENT, "revenue_retention": formats.PERCENT, "active": formats.COUNT,
            "revenue": formats.CURRENCY}[value]


def _format(value: Any, shown: str) -> str:
    return formats.metric(value, "mean", shown)


def cohort_heatmap(frame: pd.DataFrame, value: str, period: str, segment: str | None = None) -> Chart:
    """Cohorts down, periods since across. Retention ratios get a diverging scale centred at
    100% (blue above, red below), capped at RETENTION_CAP; cells past the cap are labelled with
    their value. Counts and revenue get a sequential scale. Sized to fit: no horizontal scroll."""
    data, note = _cohort_frame(frame, value)
    shown = _value_kind(value)
    data["text"] = [_format(v, shown) for v in data[value]]
    ratio = shown == formats.PERCENT
    over = data[data[value] > RETENTION_CAP] if ratio else data.iloc[0:0]
    data["over"] = data.index.isin(over.index)
    columns, rows = int(data["period_index"].max()) + 1, data["cohort"].nunique()
    cell_width = max(min(WIDTH // max(columns, 1), 34), 12)
    scale = (alt.Scale(domain=[0, 1, RETENTION_CAP], range=DIVERGING, clamp=True) if ratio
             else alt.Scale(scheme="blues"))
    legend = alt.Legend(format=".0%" if ratio else ",.0f", titleLimit=400, title=f"{value.replace('_', ' ')}"
                        + (f" (colours stop at {RETENTION_CAP:.0%})" if ratio else ""))
    base = alt.Chart(data).encode(
        x=alt.X("period_index:O", title=f"{period}s since the cohort's first {period}",
                axis=alt.Axis(labelAngle=0, labelOverlap=True, grid=False)),
        y=alt.Y("cohort:O", title=f"cohort ({period})", sort="ascending", axis=alt.Axis(grid=False)))
    cells = base.mark_rect().encode(
        color=alt.Color(f"{value}:Q", scale=scale, legend=legend),
        tooltip=[alt.Tooltip("cohort:O"), alt.Tooltip("period_index:O", title=f"{period}s since"),
                 alt.Tooltip("text:N", title=value.replace("_", " ")), alt.Tooltip("cohort_size:Q", format=",")])
    layers: list[Any] = [cells]
    if columns * rows <= 120:  # room for every value in its cell
        layers.append(base.mark_text(fontSize=9).encode(text="text:N", color=alt.condition(
            f"abs(datum['{value}'] - 1) > 0.6" if ratio else "false", alt.value("white"), alt.value("#24292f"))))
    elif len(over):  # too narrow for numbers: a dot marks each capped cell, the subtitle names the highest
        layers.append(base.transform_filter("datum.over").mark_point(filled=True, size=14, color="white", opacity=1))
    notes = [note] if note else []
    if len(over):
        top = over.loc[over[value].idxmax()]
        mark = "" if columns * rows <= 120 else ", marked •"
        notes.append(f"{len(over)} cell(s) above {RETENTION_CAP:.0%}{mark} (highest {top['text']}: "
                     f"cohort {top['cohort']}, {period} {int(top['period_index'])})")
    name = f"{value.replace('_', ' ')} by cohort" + (f": {segment}" if segment else "")
    chart = alt.layer(*layers).properties(width=cell_width * columns, height=max(min(16 * rows, 520), 60),
                                          title=_title(name, notes))
    text = name + (f" ({'; '.join(notes)})" if notes else "")
    return _finish(chart, name, text)


def retention_curves(frame: pd.DataFrame, value: str, period: str, segment: str | None = None) -> Chart:
    """One line per cohort (older lighter, newer darker) and the size-weighted mean of all
    cohorts in black, against a dashed 100% line. The y axis stops at RETENTION_CAP; a cohort
    past it is clipped and named in the subtitle instead of squashing every other curve."""
    data, note = _cohort_frame(frame, value)
    shown = _value_kind(value)
    ratio = shown == formats.PERCENT
    data = data.dropna(subset=[value])
    data["text"] = [_format(v, shown) for v in data[value]]
    weighted = (data.assign(weight=data[value] * data["cohort_size"]).groupby("period_index")
                .agg(weight=("weight", "sum"), size=("cohort_size", "sum"), cohorts=("cohort", "nunique"))
                .reset_index())
    # the oldest periods are reached by one or two cohorts: their "mean" would swing with one cohort
    weighted = weighted[weighted["cohorts"] >= MEAN_COHORTS].reset_index(drop=True)
    if value in ("active", "revenue"):
        weighted[value] = data.groupby("period_index")[value].mean().loc[weighted["period_index"]].values
    else:
        weighted[value] = weighted["weight"] / weighted["size"]
    weighted["text"] = [_format(v, shown) for v in weighted[value]]
    peak = float(data[value].max()) if len(data) else 0.0
    cap = RETENTION_CAP if ratio and peak > RETENTION_CAP else None
    notes = [note] if note else []
    if cap is not None:
        over = data[data[value] > cap]
        worst = over.loc[over[value].idxmax()]
        notes.append(f"{over['cohort'].nunique()} cohort(s) go above {cap:.0%} and are cut off "
                     f"(highest {worst['text']}: cohort {worst['cohort']}, {period} {int(worst['period_index'])})")
    y_scale = alt.Scale(domain=[0, cap], clamp=False) if cap is not None else alt.Scale(zero=True)
    axis = alt.Axis(format=".0%") if ratio else alt.Axis(labelExpr=_axis_labels(shown, False))
    x = alt.X("period_index:Q", title=f"{period}s since the cohort's first {period}",
              axis=alt.Axis(tickMinStep=1, format="d"))
    y = alt.Y(f"{value}:Q", title=value.replace("_", " "), scale=y_scale, axis=axis)
    tooltip = [alt.Tooltip("cohort:N"), alt.Tooltip("period_index:Q", title=f"{period}s since"),
               alt.Tooltip("text:N", title=value.replace("_", " "))]
    lines = alt.Chart(data).mark_line(strokeWidth=1.2, opacity=0.75, clip=True).encode(
        x=x, y=y, detail="cohort:N", tooltip=tooltip,
        color=alt.Color("cohort:T", title="cohort", scale=alt.Scale(scheme="blues"),
                        legend=alt.Legend(orient="right", format="%Y-%m", gradientLength=160)))
    mean = alt.Chart(weighted).mark_line(color="#24292f", strokeWidth=2.5, clip=True).encode(
        x=x, y=y, tooltip=[alt.Tooltip("period_index:Q", title=f"{period}s since"),
                           alt.Tooltip("text:N", title="all cohorts (weighted)")])
    layers: list[Any] = [lines, mean]
    if ratio:
        layers.append(alt.Chart(pd.DataFrame({"y": [1.0], "label": ["100%"]})).mark_rule(
            strokeDash=[5, 4], color="#cf222e").encode(y="y:Q"))
    subtitle = [f"black: all cohorts, weighted by size, where {MEAN_COHORTS} or more reach the {period}"
                + (" · dashed: 100%" if ratio else ""), *notes]
    name = f"{value.replace('_', ' ')} curves" + (f": {segment}" if segment else "")
    chart = alt.layer(*layers).properties(width=WIDTH, height=240, title=_title(name, subtitle))
    text = "\n".join([name + (f" ({'; '.join(notes)})" if notes else "")] + [
        f"  {period} {int(r.period_index)}: {r.text} (all cohorts)" for r in weighted.itertuples(index=False)
        if not math.isnan(float(getattr(r, value)))])
    return _finish(chart, name, text)
