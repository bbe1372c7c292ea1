"""The template <-> rendered SQL position map."""

from __future__ import annotations

import jinja2
import pytest

from segsql.compile.sourcemap import LineIndex, instrument, strip_markers

TEMPLATES = [
    "SELECT a,\n  {{ x }} AS b  {%- if true -%}  \n  FROM t {%- endif %}\n",
    "{% for i in [1, 2] %}c{{ i }}\n{% endfor %}{# note #}WHERE z",
    "{% raw %}{{ not jinja }}{% endraw %} tail",
    "{{- x -}}   gap   {{ '}}' }} end",
    "no jinja at all\nsecond line",
    "{% set y = 'v' %}{{ y }}{%- if false %}dropped{% else %} kept{% endif -%}\n  after",
]


@pytest.mark.parametrize("template", TEMPLATES)
def test_markers_do_not_change_the_rendered_text(template: str) -> None:
    env = jinja2.Environment()
    plain = env.from_string(template).render(x="XYZ")
    text, _ = strip_markers(env.from_string(instrument(template)).render(x="XYZ"))
    assert text == plain


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_literal_character_maps_to_itself(template: str) -> None:
    env = jinja2.Environment()
    text, source_map = strip_markers(env.from_string(instrument(template)).render(x="XYZ"))
    for offset, char in enumerate(text):
        origin = source_map.template_offset(offset)
        if template[origin:origin + 2] != "{{":  # expression output maps to its `{{`
            assert template[origin] == char, (offset, char, origin)


def test_expression_output_maps_to_its_opening_braces() -> None:
    template = "SELECT\n    {{ x }}, y"
    text, source_map = strip_markers(jinja2.Environment().from_string(instrument(template)).render(x="LONG_VALUE"))
    origin = source_map.template_offset(text.index("VALUE"))
    assert LineIndex(template).position(origin) == (2, 5)


def test_line_index_round_trip() -> None:
    index = LineIndex("ab\ncde\n\nf")
    for offset in range(9):
        assert index.offset(*index.position(offset)) == offset
