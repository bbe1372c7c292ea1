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


def test_the_part_an_engine_points_at_is_found_in_the_rendered_sql() -> None:
    import doctest

    from segsql.compile import sourcemap
    from segsql.engines import base

    line = "LINE 1: ...account_id FROM accounts AS a WHERE a.d > 5 AND a.d > 5)"
    message = ("Binder Error: Cannot compare values of type DATE and type INTEGER_LITERAL\n\n"
               f"{line}\n{' ' * line.rindex('a.d')}^^^^^^^")
    before, part = base.pointed_at(message) or ("", "")
    assert part == "a.d > 5" and before.endswith("WHERE a.d > 5 AND ")  # the second of two equal parts
    sql = "SELECT a.account_id\nFROM accounts AS a\nWHERE a.d > 5\n  AND a.d > 5"
    assert sourcemap.find_pointed(sql, before, part) == sql.rindex("a.d > 5")
    assert sourcemap.find_pointed(sql, "", "b.x") is None and base.pointed_at("IO Error: no position") is None
    assert doctest.testmod(sourcemap).failed == 0 and doctest.testmod(base).failed == 0
