"""Inline SVG for the docs catalog: a layered lineage graph and a size-history chart."""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 190, 28, 70, 16, 10


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
        (left_x, left_y), (x2, top_y) = position[left], position[right]
        x1, y1, y2 = left_x + NODE_W, left_y + NODE_H / 2, top_y + NODE_H / 2
        bend = (x2 - x1) / 2
        label = html.escape(f"{_label(left)}->{_label(right)}", quote=True)
        parts.append(f"<path class='edge' data-edge='{label}' marker-end='url(#arrow)' "
                     f"d='M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}'/>")
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


def _label(name: str) -> str:
    return name.removeprefix("source:")


def size_chart(points: list[tuple[dt.datetime, int]], width: int = 520, height: int = 140) -> str:
    """Size after each run, as a line with one dot (and tooltip) per run."""
    top = max(size for _, size in points) or 1
    step = (width - 60) / max(len(points) - 1, 1)
    coords = [(40 + i * step, height - 25 - (size / top) * (height - 45)) for i, (_, size) in enumerate(points)]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    dots = "".join(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3' fill='#1a56db'><title>{when:%Y-%m-%d %H:%M}: "
                   f"{size:,}</title></circle>" for (x, y), (when, size) in zip(coords, points, strict=True))
    first, last = points[0][0], points[-1][0]
    return (f"<svg class='sizes' xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img' "
            f"aria-label='size history' data-runs='{len(points)}'>"
            f"<line x1='40' y1='{height - 25}' x2='{width - 20}' y2='{height - 25}' stroke='#aab'/>"
            f"<text x='4' y='24'>{top:,}</text><text x='4' y='{height - 25}'>0</text>"
            f"<text x='40' y='{height - 6}'>{first:%Y-%m-%d}</text>"
            f"<text x='{width - 100}' y='{height - 6}'>{last:%Y-%m-%d}</text>"
            f"<polyline fill='none' stroke='#1a56db' stroke-width='2' points='{line}'/>{dots}</svg>")
