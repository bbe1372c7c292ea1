"""What a magic displays, static first: every view is plain outputs that render wherever a
notebook is opened (nbconvert HTML, GitHub, VS Code, a notebook saved with or without widget
state), and an ipywidget only where it adds something (paging, the baseline picker).

A view displays as
1. its report: text/html (tables, escaped) + text/plain;
2. one output per chart: Vega-Lite + static PNG + text/plain (charts.Chart);
3. for PreviewView and CompareView, a small widget of controls. It holds no numbers: it
   re-renders outputs 1 and 2 in place (display ids), so what a saved notebook keeps is the
   static outputs of the last state shown, and without a kernel the controls say they need one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import pandas as pd

from segsql import formats

from . import charts as charting
from . import html as render

NO_CHARTS: Callable[[], list[charting.Chart]] = list


class View:
    """A report (HTML + text), its charts, and optional controls; displayed as separate outputs."""

    controls: widgets.Widget | None = None

    def __init__(self, html: Callable[[], str], text: Callable[[], str],
                 charts: Callable[[], list[charting.Chart]] = NO_CHARTS):
        self._html, self._text, self._charts = html, text, charts
        self._handles: list[Any] = []

    def report(self) -> dict[str, str]:
        """The static report: what every front end shows."""
        return {"text/html": self._html(), "text/plain": self._text()}

    def charts(self) -> list[charting.Chart]:
        return self._charts()

    def outputs(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Every static output as (data, metadata), in display order: the report, then the charts."""
        return [(self.report(), {}), *(chart.bundle() for chart in self.charts())]

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return self.report()

    def _ipython_display_(self) -> None:
        from IPython import display as ipython_display

        display: Callable[..., Any] = ipython_display.display  # IPython's own is untyped
        self._handles = [display(data, metadata=metadata, raw=True, display_id=True)
                         for data, metadata in self.outputs()]
        if self.controls is not None:
            display(_Controls(self.controls, self._offline_note()))

    def refresh(self) -> None:
        """Show the current state in the outputs already on the page (after a control changed)."""
        for handle, (data, metadata) in zip(self._handles, self.outputs(), strict=False):
            handle.update(data, metadata=metadata, raw=True)

    def _offline_note(self) -> str:
        return ""

    def html(self) -> str:
        return self._html()


class _Controls:
    """The controls widget, whose text form (shown where widgets cannot run) says so."""

    def __init__(self, widget: widgets.Widget, note: str):
        self.widget, self.note = widget, note

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        bundle["text/plain"] = self.note
        return bundle


class PreviewView(View):
    """Size, share, waterfall, a page of members (fetched from the engine), compiled SQL."""

    def __init__(self, result: Any, pager: Callable[[int, int], pd.DataFrame], waterfall: pd.DataFrame | None,
                 sql: str, banner: str, page_size: int = 10):
        self.result, self.pager, self.page_size = result, pager, page_size
        self.offset = 0
        self.page = pager(0, page_size)
        self.waterfall, self.sql, self.banner = waterfall, sql, banner
        super().__init__(self._static, self._plain)
        self.previous = widgets.Button(description="◀ previous", disabled=True)
        self.next = widgets.Button(description="next ▶", disabled=result.size <= page_size)
        self.position = widgets.Label(self._position())
        self.previous.on_click(lambda _: self.turn(-1))
        self.next.on_click(lambda _: self.turn(1))
        self.controls = widgets.HBox([self.previous, self.next, self.position])

    def turn(self, step: int) -> None:
        """Fetch the previous/next page from the engine (LIMIT/OFFSET); nothing else is held."""
        offset = min(max(self.offset + step * self.page_size, 0), max(self.result.size - 1, 0))
        offset -= offset % self.page_size
        try:
            self.page = self.pager(offset, self.page_size)
        except Exception as error:  # a widget callback has nowhere else to report
            self.position.value = f"could not fetch the page: {error}"
            return
        self.offset = offset
        self.position.value = self._position()
        self.previous.disabled = self.offset == 0
        self.next.disabled = self.offset + self.page_size >= self.result.size
        self.refresh()

    def _position(self) -> str:
        last = min(self.offset + self.page_size, self.result.size)
        first = self.offset + 1 if self.result.size else 0
        return f"members {formats.count(first)}–{formats.count(last)} of {formats.count(self.result.size)}"

    def _offline_note(self) -> str:
        return f"({self._position()}; paging needs a running kernel)"

    def _static(self) -> str:
        return render.preview(self.result, self.page, self.waterfall, self.sql, self.banner, self.offset)

    def _plain(self) -> str:
        warning = f"warning: {render.key_warning(self.result)}\n" if self.result.key_problem else ""
        return f"{self.banner}\n{render.size_line(self.result)}\n{warning}" + render.plain_table(self.page)


class CompareView(View):
    """Segment × metric tables with CIs and significance marks, a chart per metric, baseline picker."""

    def __init__(self, recompute: Callable[[str], Any], segments: list[str], kinds: dict[str, tuple[str, str]],
                 baseline: str, banner: str):
        self.recompute, self.kinds, self.banner = recompute, kinds, banner
        self.comparison = recompute(baseline)
        super().__init__(self._static, self._plain, self._chart_list)
        self.picker = widgets.Dropdown(options=["rest", "all", *segments], value=baseline, description="baseline")
        self.picker.observe(self._rebaseline, names="value")
        self.controls = self.picker

    def _rebaseline(self, change: dict[str, Any]) -> None:
        self.comparison = self.recompute(change["new"])
        self.refresh()

    def _offline_note(self) -> str:
        return f"(baseline: {self.comparison.baseline}; choosing another needs a running kernel)"

    def _static(self) -> str:
        return render.comparison(self.comparison, self.kinds, self.banner)

    def _chart_list(self) -> list[charting.Chart]:
        drawn = [charting.difference(frame, metric, *self.kinds.get(metric, ("", "")), self.comparison.baseline)
                 for metric, frame in self.comparison.tables.items()]
        return [chart for chart in drawn if chart is not None]

    def _plain(self) -> str:
        return f"{self.banner}\n" + render.comparison_text(self.comparison, self.kinds)


class StaticView(View):
    """A result with no interaction: a report and its charts, no widget."""

    def __init__(self, html: str, text: str, charts: list[charting.Chart] | None = None):
        drawn = list(charts or [])
        super().__init__(lambda: html, lambda: text, lambda: drawn)


class StepsShown:
    """A long operation's progress as one text output updated in place (a bar of block
    characters, text/plain and text/html: no widget, so any front end shows it), emptied when
    done so the saved notebook keeps only the result. Called as (step done, number, how many)."""

    WIDTH = 30

    def __init__(self, title: str):
        self.title = title
        self._handle: Any = None

    def __call__(self, label: str, number: int, count: int) -> None:
        from IPython import display as ipython_display

        display: Callable[..., Any] = ipython_display.display  # IPython's own is untyped
        filled = round(self.WIDTH * number / max(count, 1))
        text = f"{self.title} {'█' * filled}{'░' * (self.WIDTH - filled)} {number}/{count} · {label}"
        bundle = {"text/plain": text, "text/html": f"<pre class='segsql-progress'>{render.esc(text)}</pre>"}
        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)

    def done(self) -> None:
        if self._handle is not None:
            self._handle.update({"text/plain": ""}, raw=True)
