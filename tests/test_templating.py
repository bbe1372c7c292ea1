"""Rendering: values become literals, params are typed, helpers behave as documented."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from segsql import TemplateError
from tests.conftest import ProjectFactory

CFG = "{{ config(entity='account') }}\n"
BASE = CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a WHERE "


def where_of(make_project: ProjectFactory, condition: str, **options: object) -> str:
    project = make_project({"seg": BASE + condition}, **options)
    tree = sqlglot.parse_one(project.compile("seg"), dialect="duckdb")
    return tree.args["where"].this.sql(dialect="duckdb")


@pytest.mark.parametrize("value", ["'; DROP TABLE accounts; --", "it's", 'a"b', "x\\'; SELECT 1 --", "\n;\n"])
def test_param_strings_with_quotes_and_semicolons_stay_literals(make_project: ProjectFactory, value: str) -> None:
    project = make_project({"seg": BASE + "a.name = {{ param('who', 'x') }}"}, vars={"who": value})
    sql = project.compile("seg")
    statements = sqlglot.parse(sql, dialect="duckdb")
    assert len(statements) == 1
    literal = statements[0].args["where"].this.expression
    assert isinstance(literal, exp.Literal) and literal.is_string and literal.this == value
    assert duckdb.connect().execute(f"SELECT {literal.sql(dialect='duckdb')}").fetchone() == (value,)


def test_var_list_prints_a_tuple_for_in(make_project: ProjectFactory) -> None:
    assert where_of(make_project, "a.region IN {{ var('regions') }}") == "a.region IN ('DACH')"
    assert where_of(make_project, "a.region IN {{ var('regions') }}",
                    vars={"regions": ["DACH", "O'Neil"]}) == "a.region IN ('DACH', 'O''Neil')"


def test_param_types_come_from_defaults_and_overrides_are_coerced(make_project: ProjectFactory) -> None:
    condition = ("a.arr > {{ param('n', 5) }} AND a.arr > {{ param('f', 1.5) }} AND {{ param('b', false) }} "
                 "AND a.signup_date > {{ param('d', '2024-01-01', type='date') }} "
                 "AND a.region IN {{ param('l', ['x']) }}")
    text = where_of(make_project, condition, vars={"n": "7", "f": "2", "b": "yes", "d": "2025-02-03", "l": "DACH,NA"})
    assert text == ("a.arr > 7 AND a.arr > 2.0 AND TRUE AND a.signup_date > CAST('2025-02-03' AS DATE) "
                    "AND a.region IN ('DACH', 'NA')")


@pytest.mark.parametrize(("name", "value", "fragment"), [
    ("n", "7; DROP TABLE x", "param `n` expects int"),
    ("n", "1.5", "param `n` expects int"),
    ("b", "maybe", "param `b` expects bool"),
    ("d", "yesterday", "param `d` expects date"),
])
def test_bad_override_is_a_clear_error(make_project: ProjectFactory, name: str, value: str, fragment: str) -> None:
    condition = ("a.arr > {{ param('n', 5) }} AND {{ param('b', false) }} "
                 "AND a.signup_date > {{ param('d', '2024-01-01', type='date') }}")
    project = make_project({"seg": BASE + condition}, vars={name: value})
    [error] = project.validate()
    assert isinstance(error, TemplateError) and fragment in error.message
    assert error.line == 2 and error.col is not None


def test_jinja_logic_sees_raw_values(make_project: ProjectFactory) -> None:
    condition = "{% if param('tier', 'all') == 'all' %}TRUE{% else %}a.name = {{ param('tier') }}{% endif %}"
    assert where_of(make_project, condition) == "TRUE"
    assert where_of(make_project, condition, vars={"tier": "gold"}) == "a.name = 'gold'"


def test_safe_filter_cannot_paste_raw_sql(make_project: ProjectFactory) -> None:
    project = make_project({"seg": BASE + "a.name = {{ param('x', 'a')|safe }}"}, vars={"x": "1 OR 1=1"})
    errors = project.validate()
    assert errors and "safe" in errors[0].message


def test_join_filter_output_is_a_literal(make_project: ProjectFactory) -> None:
    assert where_of(make_project, "a.name = {{ var('regions')|join(',') }}") == "a.name = 'DACH'"


def test_macros_print_sql_and_their_arguments_as_literals(make_project: ProjectFactory) -> None:
    macros = {"macros/m.sql": "{% macro named(col, value) %}{{ ident(col) }} = {{ value }}{% endmacro %}"}
    assert where_of(make_project, "{{ named('a.name', \"O'Hara\") }}", files=macros) == "a.name = 'O''Hara'"


def test_macro_name_clash_with_builtin_is_refused(make_project: ProjectFactory) -> None:
    project = make_project({"seg": BASE + "TRUE"}, files={"macros/m.sql": "{% macro ref(x) %}{% endmacro %}"})
    [error] = project.validate()
    assert "macro `ref` is already defined" in error.message and error.path == "macros/m.sql"


def test_as_of_defaults_to_today_and_can_be_set(make_project: ProjectFactory) -> None:
    project = make_project({"seg": BASE + "a.signup_date < {{ as_of }}"}, as_of=None)
    assert project.as_of == dt.date.today()
    assert where_of(make_project, "a.signup_date < {{ days_ago(1) }}", as_of="2024-03-01") == \
        "a.signup_date < CAST('2024-02-29' AS DATE)"


def test_months_ago_clamps_to_month_end(make_project: ProjectFactory) -> None:
    assert where_of(make_project, "a.signup_date >= {{ months_ago(1) }}", as_of="2026-03-31") == \
        "a.signup_date >= CAST('2026-02-28' AS DATE)"


def test_undefined_attribute_is_an_error(make_project: ProjectFactory) -> None:
    project = make_project({"seg": BASE + "a.arr > {{ as_of.nonexistent }}"})
    [error] = project.validate()
    assert isinstance(error, TemplateError) and error.line == 2


ROLLUP_DATA = [
    "CREATE TABLE accounts (account_id BIGINT, name VARCHAR, arr DOUBLE, region VARCHAR, country VARCHAR, "
    "signup_date DATE)",
    "INSERT INTO accounts VALUES (1,'a',0,'x','x',NULL),(2,'b',0,'x','x',NULL),(3,'c',0,'x','x',NULL),"
    "(4,'no users',0,'x','x',NULL)",
    "CREATE TABLE users (user_id BIGINT, account_id BIGINT, role VARCHAR, country VARCHAR, last_seen_at TIMESTAMP)",
    "INSERT INTO users VALUES (10,1,'admin','x',NULL),(11,1,'admin','x',NULL),(12,1,'member','x',NULL),"
    "(20,2,'admin','x',NULL),(30,3,'member','x',NULL),(31,3,'member','x',NULL)",
]


@pytest.mark.parametrize(("quantifier", "n"), [("any", None), ("all", None), ("none", None),
                                               ("at_least", 1), ("at_least", 2), ("at_least", 3)])
def test_rollup_matches_a_python_computation(make_project: ProjectFactory, tmp_path, quantifier: str,
                                             n: int | None) -> None:
    connection = duckdb.connect(str(tmp_path / "r.duckdb"))
    for statement in ROLLUP_DATA:
        connection.execute(statement)
    users = connection.execute("SELECT user_id, account_id, role FROM users").fetchall()
    connection.close()
    config = open_config(tmp_path)
    call = f"rollup('admins', '{quantifier}'" + (f", n={n})" if n else ")")
    project = make_project({
        "admins": "{{ config(entity='user') }}\nSELECT u.user_id FROM {{ source('users') }} AS u WHERE u.role = 'admin'",
        "seg": CFG + "{{ " + call + " }}",
    }, config=config)
    connection = duckdb.connect(str(tmp_path / "r.duckdb"), read_only=True)
    got = sorted(r[0] for r in connection.execute(project.compile("seg")).fetchall())
    connection.close()
    per_account = {a: [role == "admin" for (_u, acc, role) in users if acc == a] for a in (1, 2, 3, 4)}
    expected = sorted(a for a, flags in per_account.items() if {
        "any": sum(flags) >= 1, "all": bool(flags) and all(flags), "none": sum(flags) == 0,
        "at_least": sum(flags) >= (n or 0)}[quantifier])
    assert got == expected


def open_config(tmp_path) -> str:
    from tests.conftest import BASE_CONFIG

    return BASE_CONFIG.replace("dialect: duckdb\n", "dialect: duckdb\nconnection: {type: duckdb, path: r.duckdb}\n")


@pytest.mark.parametrize(("call", "fragment"), [
    ("rollup('admins', 'most')", "unknown quantifier"),
    ("rollup('admins', 'at_least')", "takes n only with"),
    ("rollup('admins', 'any', n=2)", "takes n only with"),
    ("rollup('admins', 'at_least', n=0)", "n ≥ 1"),
    ("rollup('accs')", "has no parent"),
    ("exclude('accs')", "needs at least one segment to remove"),
    ("union()", "needs at least one segment"),
])
def test_helper_misuse_is_reported(make_project: ProjectFactory, call: str, fragment: str) -> None:
    project = make_project({
        "admins": "{{ config(entity='user') }}\nSELECT u.user_id FROM {{ source('users') }} AS u",
        "accs": CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a",
        "seg": CFG + "{{ " + call + " }}",
    })
    [error] = project.validate()
    assert fragment in error.message and error.path == "segments_sql/seg.sql" and error.line == 2
