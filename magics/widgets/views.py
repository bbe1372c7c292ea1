"""Widgets that also carry text/html and text/plain, so saved notebooks still show the numbers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import pandas as pd

from . import html as render


class View:
    """An ipywidget plus its static HTML and text; displayed as one MIME bundle."""

    def __init__(self, widget: widgets.Widget, html: Callable[[], str], text: Callable[[], str]):
        self.widget = widget
        self._html = html
        self._text = text

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {}
        widget_bundle = self.widget._repr_mimebundle_(include=include, exclude=exclude)
        if widget_bundle:
            bundle.update(widget_bundle)
        bundle["text/html"] = self._html()
        bundle["text/plain"] = self._text()
        return bundle

    def html(self) -> str:
        return self._html()


class PreviewView(View):
    """Size, share, waterfall, a page of members (fetched from the engine), compiled SQL."""

    def __init__(self, result: Any, pager: Callable[[int, int], pd.DataFrame], waterfall: pd.DataFrame | None,
                 sql: str, banner: str, page_size: int = 10):
        self.result, self.pager, self.page_size = result, pager, page_size
        self.offset = 0
        self.page = pager(0, page_size)
        self.waterfall, self.sql, self.banner = waterfall, sql, banner
        self.body = widgets.HTML(self._static())
        self.previous = widgets.Button(description="◀ previous", disabled=True)
        self.next = widgets.Button(description="next ▶", disabled=result.size <= page_size)
        self.position = widgets.Label(self._position())
        self.previous.on_click(lambda _: self.turn(-1))
        self.next.on_click(lambda _: self.turn(1))
        controls = widgets.HBox([self.previous, self.next, self.position])
        box = widgets.VBox([self.body, controls], layout=widgets.Layout(width="100%"))
        super().__init__(box, self._static, self._text)

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
        self.body.value = self._static()
        self.position.value = self._position()
        self.previous.disabled = self.offset == 0
        self.next.disabled = self.offset + self.page_size >= self.result.size

    def _position(self) -> str:
        last = min(self.offset + self.page_size, self.result.size)
        return f"members {self.offset + 1 if self.result.size else 0}–{last} of {self.result.size:,}"

    def _static(self) -> str:
        return render.preview(self.result, self.page, self.waterfall, self.sql, self.banner, self.offset)

    def _text(self) -> str:
        population = self.result.population
        share = f" ({render.percent(self.result.share)} of {population:,})" if population else ""
        return (f"{self.banner}\nsegment {self.result.name}: {self.result.size:,} {self.result.entity}(s){share}\n"
                + render.plain_table(self.page))


class CompareView(View):
    """Segment × metric table with CIs and significance marks, a chart per metric, baseline picker."""

    def __init__(self, recompute: Callable[[str], Any], segments: list[str], kinds: dict[str, str],
                 baseline: str, banner: str):
        self.recompute, self.kinds, self.banner = recompute, kinds, banner
        self.comparison = recompute(baseline)
        options = ["rest", "all", *segments]
        self.picker = widgets.Dropdown(options=options, value=baseline, description="baseline")
        self.body = widgets.HTML(self._static())
        self.picker.observe(self._rebaseline, names="value")
        super().__init__(widgets.VBox([self.picker, self.body]), self._static, self._text)

    def _rebaseline(self, change: dict[str, Any]) -> None:
        self.comparison = self.recompute(change["new"])
        self.body.value = self._static()

    def _static(self) -> str:
        return render.comparison(self.comparison, self.kinds, self.banner)

    def _text(self) -> str:
        frame = self.comparison.to_frame()
        columns = ["metric", "segment", "value", "baseline", "diff", "p_value", "significant"]
        return f"{self.banner}\n" + (frame[columns].to_string(index=False) if len(frame) else "(nothing to compare)")


class StaticView(View):
    """A result with no interaction: the HTML is the widget."""

    def __init__(self, html: str, text: str):
        super().__init__(widgets.HTML(html), lambda: html, lambda: text)
