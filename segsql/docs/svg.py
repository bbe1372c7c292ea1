"""Inline SVG for the docs catalog: a layered lineage graph and a size-history chart."""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

from segsql import formats

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 190, 28, 70, 16, 10
AXIS, GRID = "#8792a8", "#e3e6ec"


def _layers(nodes: dict[str, str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """A segment one column right of its furthest input; sources just left of their first reader."""
    inputs: dict[str, list[str]] = {name: [] for name in nodes}
    for left, right in edges:
        inputs[right].append(left)
    layer: dict[str, int] = {}

    def depth(name: str, seen: frozenset[str]) -> int:
        if name not in layer:
            before = [depth(i, seen | {name}) for i in inputs[name] if i not in seen]
            kind = nodes[name]  # a dbt node sits one right of the dbt nodes it is built from
            layer[name] = 0 if kind == "source" else 1 + max(before, default=-1 if kind == "dbt" else 0)
        return layer[name]

    for name in nodes:
        depth(name, frozenset())
    for left, _ in edges:  # a source sits just left of its first reader: no edge crosses a column
        if nodes[left] == "source":
            readers = [layer[right] for other, right in edges if other == left]
            layer[left] = max(min(readers) - 1, 0)
    return layer


def lineage_svg(graph: dict[str, Any], link_prefix: str) -> str:
    nodes: dict[str, str] = graph["nodes"]
    edges: list[tuple[str, str]] = graph["edges"]
    if not nodes:
        return "<p class=muted>no lineage</p>"
    layer = _layers(nodes, edges)
    columns: dict[int, list[str]] = {}
    for name in sorted(nodes, key=lambda n: (layer[n], n)):
        columns.setdefault(layer[name], []).append(name)
    position = {name: (PAD + col * (NODE_W + GAP_X), PAD + row * (NODE_H + GAP_Y))
                for col, names in columns.items() for row, name in enumerate(names)}
    width: float = PAD * 2 + (max(columns) + 1) * (NODE_W + GAP_X) - GAP_X
    height: float = PAD * 2 + max(len(v) for v in columns.values()) * (NODE_H + GAP_Y) - GAP_Y
    parts = [f"<svg class='lineage' xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
             f"viewBox='0 0 {width} {height}' role='img' aria-label='lineage graph'>",
             "<defs><marker id='arrow' viewBox='0 0 10 10' refX='10' refY='5' markerWidth='7' markerHeight='7' "
             "orient='auto'><path d='M0,0L10,5L0,10z' fill='#8792a8'/></marker></defs>"]
    for left, right in edges:
        label = html.escape(f"{_label(left)}->{_label(right)}", quote=True)
        crossed = [len(columns[c]) for c in range(layer[left] + 1, layer[right])]
        path = _edge_path(position[left], position[right], crossed)
        parts.append(f"<path class='edge' data-edge='{label}' marker-end='url(#arrow)' d='{path}'/>")
    for name, kind in nodes.items():
        x, y = position[name]
        text = html.escape(_label(name))
        shown = text if len(text) <= 26 else text[:25] + "…"
        mark = "◇ " if kind in ("source", "dbt") else ""
        box = (f"<rect x='{x}' y='{y}' width='{NODE_W}' height='{NODE_H}' rx='5'/>"
               f"<text x='{x + 8}' y='{y + 18}'>{mark}{shown}</text><title>{text}</title>")
        if kind not in ("source", "dbt"):
            box = f"<a href='{html.escape(link_prefix + name, quote=True)}.html'>{box}</a>"
        parts.append(f"<g class='node {kind}' data-node='{html.escape(_label(name), quote=True)}'>{box}</g>")
    parts.append("</svg>")
    return "".join(parts)


def _edge_path(start: tuple[float, float], end: tuple[float, float], crossed: list[int]) -> str:
    """An edge from the right side of the box at `start` to the left side of the box at `end`. An
    edge that skips columns (`crossed`: how many boxes each column between holds) runs straight
    through each of them in the gap between two boxes (or above or below them) nearest its line,
    so it never crosses a box; the curves between stay in the empty space between columns."""
    x, y = start[0] + NODE_W, start[1] + NODE_H / 2
    x2, y2 = end[0], end[1] + NODE_H / 2
    path = [f"M{x},{y}"]
    for index, boxes in enumerate(crossed, start=1):
        column_x = start[0] + index * (NODE_W + GAP_X)
        wanted = y + (y2 - y) * (column_x - x) / max(x2 - x, 1)
        gaps = [PAD + row * (NODE_H + GAP_Y) - GAP_Y / 2 for row in range(boxes + 1)]
        lane = min(gaps, key=lambda gap: abs(gap - wanted))
        path.append(_curve(x, y, column_x, lane) + f" L{column_x + NODE_W},{lane}")
        x, y = column_x + NODE_W, lane
    path.append(_curve(x, y, x2, y2))
    return " ".join(path)


def _curve(x1: float, y1: float, x2: float, y2: float) -> str:
    bend = (x2 - x1) / 2
    return f"C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}"


def _label(name: str) -> str:
    return name.removeprefix("source:")


def size_chart(points: list[tuple[dt.datetime, int]], width: int = 560, height: int = 180) -> str:
    """Size after each run: a line with one dot (and tooltip) per run, on a y axis from zero with
    round ticks and gridlines, the first, middle and last run's date on the x axis, both titled.
    Numbers read as segsql.formats prints counts."""
    left, right, top_pad, bottom = 64, 16, 12, 40
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    ticks = _round_ticks(max(size for _, size in points))
    top = ticks[-1] or 1
    step = plot_w / max(len(points) - 1, 1)
    coords = [(left + (i * step if len(points) > 1 else plot_w / 2), top_pad + plot_h - size / top * plot_h)
              for i, (_, size) in enumerate(points)]
    grid = "".join(
        f"<line x1='{left}' x2='{width - right}' y1='{y:.1f}' y2='{y:.1f}' stroke='{AXIS if t == 0 else GRID}'/>"
        f"<text x='{left - 6}' y='{y + 4:.1f}' text-anchor='end' fill='#4b5563'>{formats.count(t)}</text>"
        for t in ticks for y in [top_pad + plot_h - t / top * plot_h])
    shown = sorted({0, len(points) // 2, len(points) - 1})
    dates = "".join(f"<text x='{coords[i][0]:.1f}' y='{top_pad + plot_h + 16}' text-anchor='middle' fill='#4b5563'>"
                    f"{points[i][0]:%Y-%m-%d}</text>" for i in shown)
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    dots = "".join(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3.5' fill='#1a56db'><title>{when:%Y-%m-%d %H:%M} UTC: "
                   f"{formats.count(size)} members</title></circle>"
                   for (x, y), (when, size) in zip(coords, points, strict=True))
    titles = (f"<text x='14' y='{top_pad + plot_h / 2:.1f}' text-anchor='middle' fill='#1d2330' "
              f"transform='rotate(-90 14 {top_pad + plot_h / 2:.1f})'>members</text>"
              f"<text x='{left + plot_w / 2:.1f}' y='{height - 4}' text-anchor='middle' fill='#1d2330'>"
              "run (UTC date)</text>")
    return (f"<svg class='sizes' xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img' "
            f"aria-label='size after each of {len(points)} run(s)' data-runs='{len(points)}'>{grid}{dates}{titles}"
            f"<polyline fill='none' stroke='#1a56db' stroke-width='2' points='{line}'/>{dots}</svg>")


def _round_ticks(largest: int) -> list[int]:
    """0 and up to four round steps (1, 2 or 5 times a power of ten) reaching `largest`.

    >>> _round_ticks(1744), _round_ticks(7), _round_ticks(0)
    ([0, 500, 1000, 1500, 2000], [0, 2, 4, 6, 8], [0, 1])
    """
    if largest <= 0:
        return [0, 1]
    magnitude = 10 ** max(len(str(largest)) - 2, 0)
    step = next(m * f for f in (1, 10, 100) for m in (magnitude, 2 * magnitude, 5 * magnitude) if largest <= 4 * m * f)
    return list(range(0, -(-largest // step) * step + 1, step))
