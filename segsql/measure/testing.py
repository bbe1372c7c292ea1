"""`segsql test`: unit tests (given rows -> expected members, offline on DuckDB) and data tests
(size, share, unique, not_null, custom conditions on the live data, one query per segment).

Unit tests live beside the segment as `<name>.test.yml`:
    unit_tests:
      - name: boundary at min_mrr
        as_of: 2026-11-23            # optional; vars/params overrides under `vars:`
        vars: {min_mrr: 2000}
        given:
          mrr_monthly:               # rows; types from the source's declared columns ...
            - {account_id: 1, month: 2026-11-01, mrr: 2000.0}
          accounts:                  # ... or explicit column types
            columns: {account_id: BIGINT, region: VARCHAR}
            rows: [{account_id: 1, region: DACH}]
        expect: [1]                  # the member keys, in any order
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import sqlglot
from pydantic import Field
from sqlglot import exp

from segsql.compile.builtins import table_for_source
from segsql.compile.literals import get_dialect
from segsql.config.models import Strict, validate_model
from segsql.config.yamlfile import LocatedYaml, read_yaml_file
from segsql.errors import ConfigError, Location, SegsqlError
from segsql.run import results

if TYPE_CHECKING:
    from segsql.compile.compiler import Compiler
    from segsql.engines.base import Engine

PASS, FAIL, ERROR = "pass", "fail", "error"


class GivenTable(Strict):
    columns: dict[str, str] | None = None
    rows: list[dict[str, Any]] = Field(default_factory=list)


class UnitTest(Strict):
    name: str
    given: dict[str, GivenTable | list[dict[str, Any]]] = Field(default_factory=dict)
    expect: list[Any]
    vars: dict[str, Any] = Field(default_factory=dict)
    as_of: dt.date | None = None


class UnitTestFile(Strict):
    unit_tests: list[UnitTest]


@dataclass
class TestResult:
    segment: str
    test: str
    kind: str
    status: str
    details: str = ""
    location: Location | None = None
    missing: list[Any] = field(default_factory=list)
    unexpected: list[Any] = field(default_factory=list)


def test_file(compiler: Compiler, name: str) -> Path:
    return compiler.segment(name).path.with_suffix(".test.yml")


def _read_tests(compiler: Compiler, name: str) -> tuple[UnitTestFile, LocatedYaml] | None:
    """The segment's NAME.test.yml, validated, or None when it has none."""
    path = test_file(compiler, name)
    if not path.exists():
        return None
    located = read_yaml_file(path, str(path.relative_to(compiler.root)))
    spec: UnitTestFile = validate_model(UnitTestFile, located.data, located)
    return spec, located


def unit_test_names(compiler: Compiler, name: str) -> list[str]:
    """The names of a segment's unit tests (validated like `segsql test` reads them)."""
    found = _read_tests(compiler, name)
    return [case.name for case in found[0].unit_tests] if found else []


Transform = Callable[[exp.Query], exp.Query]


def run_unit_tests(compiler: Compiler, name: str, transform: Transform | None = None) -> list[TestResult]:
    """Every unit test of segment `name` (none when it has no .test.yml). `transform` changes
    the compiled query before it runs (the starter library's mutation tests use it)."""
    found = _read_tests(compiler, name)
    if found is None:
        return []
    spec, located = found
    return [_run_case(compiler, name, case, index, located, transform) for index, case in enumerate(spec.unit_tests)]


def _run_case(compiler: Compiler, name: str, case: UnitTest, index: int, located: LocatedYaml,
              transform: Transform | None) -> TestResult:
    where = located.locate(("unit_tests", index))
    result = TestResult(name, case.name, "unit", PASS, location=where)
    try:
        variant = compiler.with_options(vars=case.vars, as_of=case.as_of or compiler.as_of)
        tree = variant.tree(name)
        sql = (transform(tree) if transform else tree).sql(dialect=get_dialect("duckdb"))
        entity = variant.compiled(name).entity
        key = compiler.config.entities[entity].single_key(entity, "a unit test's `expect` list")
        connection = duckdb.connect(":memory:", config={"enable_external_access": False})  # untrusted SQL
        try:
            _load_given(compiler, connection, case, index, located)
            rows = connection.execute(sql).fetchall()
            columns = [c[0] for c in connection.description or []]
        finally:
            connection.close()
    except SegsqlError as error:
        result.status, result.details = ERROR, str(error)
        return result
    except duckdb.Error as error:
        result.status, result.details = ERROR, f"DuckDB: {str(error).splitlines()[0]}"
        return result
    got = [row[columns.index(key)] for row in rows]
    expected_rows = {str(item.get(key)): item for item in case.expect if isinstance(item, dict)}
    expected = {str(k): k for k in (item.get(key) if isinstance(item, dict) else item for item in case.expect)}
    found = {str(k): k for k in got}
    got_text = [str(k) for k in got]
    result.missing = keys_in_order(expected[t] for t in set(expected) - set(found))  # as written: 3, not '3'
    result.unexpected = keys_in_order(found[t] for t in set(found) - set(expected))
    duplicates = keys_in_order({found[t] for t in got_text if got_text.count(t) > 1})
    wrong = _wrong_values(expected_rows, rows, columns, key)
    if result.missing or result.unexpected or duplicates or wrong:
        result.status = FAIL
        parts = [f"missing {result.missing}" if result.missing else "",
                 f"unexpected {result.unexpected}" if result.unexpected else "",
                 f"duplicated {duplicates}" if duplicates else "", "; ".join(wrong)]
        result.details = "; ".join(p for p in parts if p)
    return result


def keys_in_order(keys: Iterable[Any]) -> list[Any]:
    """Keys with their own type, numbers in numeric order (2 before 10), then text."""
    return sorted(keys, key=lambda k: (0, k, "") if isinstance(k, int | float) and not isinstance(k, bool)
                  else (1, 0, str(k)))


def _wrong_values(expected: dict[str, dict[str, Any]], rows: list[tuple[Any, ...]], columns: list[str],
                  key: str) -> list[str]:
    """For `expect` entries written as rows ({key: 1, mrr: 100}): the trait values that differ."""
    lowered = [c.lower() for c in columns]
    found = {str(row[lowered.index(key.lower())]): row for row in rows}
    problems = []
    for member, wanted in sorted(expected.items()):
        row = found.get(member)
        if row is None:
            continue  # reported as missing
        for column, value in wanted.items():
            if column.lower() == key.lower():
                continue
            if column.lower() not in lowered:
                problems.append(f"{key} {member}: no column `{column}`")
                continue
            actual = row[lowered.index(column.lower())]
            if not _same(actual, value):
                problems.append(f"{key} {member}: {column} = {actual!r}, expected {value!r}")
    return problems


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(actual, int | float) and isinstance(expected, int | float) and not isinstance(expected, bool):
        return abs(float(actual) - float(expected)) <= 1e-9 * max(1.0, abs(float(expected)))
    return str(actual) == str(expected)


def _load_given(compiler: Compiler, connection: duckdb.DuckDBPyConnection, case: UnitTest, index: int,
                located: LocatedYaml) -> None:
    """A table per source: given rows, or empty with the declared columns."""
    for source_name in case.given:
        if source_name not in compiler.config.sources:
            raise ConfigError(f"unknown source `{source_name}` in given",
                              located.locate(("unit_tests", index, "given", source_name)))
    for source_name, source in sorted(compiler.config.sources.items()):
        given = case.given.get(source_name)
        table = GivenTable(rows=given) if isinstance(given, list) else (given or GivenTable())
        columns = table.columns or source.columns
        where = located.locate(("unit_tests", index, "given", source_name))
        if columns is None:
            if given is None:
                continue
            raise ConfigError(f"source `{source_name}` declares no columns", where,
                              "give `columns:` with types in the test, or declare them in segsql.yml")
        target = table_for_source(source_name, source.table, "duckdb")
        _create_table(connection, target, columns, table.rows, where)


def _create_table(connection: duckdb.DuckDBPyConnection, target: exp.Table, columns: dict[str, str],
                  rows: list[dict[str, Any]], where: Location) -> None:
    duck = get_dialect("duckdb")
    if target.db:
        connection.execute(exp.Create(this=exp.to_identifier(target.db), kind="SCHEMA", exists=True).sql(dialect=duck))
    definitions = []
    for column, type_text in columns.items():
        try:
            data_type = exp.DataType.build(type_text, dialect="duckdb")
        except (sqlglot.errors.ParseError, ValueError):
            raise ConfigError(f"unknown type `{type_text}` for column `{column}`", where) from None
        definitions.append(exp.ColumnDef(this=exp.to_identifier(column), kind=data_type))
    schema = exp.Schema(this=target, expressions=definitions)
    connection.execute(exp.Create(this=schema, kind="TABLE", replace=True).sql(dialect=duck))
    names = list(columns)
    for row in rows:
        unknown = sorted(set(row) - set(names))
        if unknown:
            raise ConfigError(f"row has unknown column(s) {unknown}", where, f"columns are {names}")
    if rows:
        insert = exp.insert(exp.Values(expressions=[exp.tuple_(*[exp.Placeholder() for _ in names])]),
                            target, columns=names)
        connection.executemany(insert.sql(dialect=duck), [[row.get(n) for n in names] for row in rows])


def run_data_tests(compiler: Compiler, name: str, engine: Engine) -> list[TestResult]:
    """The data tests in the segment's config, evaluated in one query on the live data."""
    compiled = compiler.compiled(name)
    tests = compiled.config.tests
    if tests is None:
        return []
    checks = _data_checks(compiler, name, tests)
    query = exp.select(*[expression.as_(f"c{i}") for i, (_, expression, _) in enumerate(checks)]).from_(
        compiler.tree(name).subquery("m"))
    location = Location(compiled.path)
    try:
        values = engine.fetchall(query)[0]
    except SegsqlError as error:
        return [TestResult(name, "data tests", "data", ERROR, error.message, location)]
    population = None
    if tests.max_share is not None:
        population = results.population(compiler, engine, compiled.entity)
    out = []
    for (label, _, judge), value in zip(checks, values, strict=True):
        failure = judge(value, population)
        out.append(TestResult(name, label, "data", FAIL if failure else PASS, failure or "", location))
    return out


def _data_checks(compiler: Compiler, name: str, tests: Any) -> list[tuple[str, exp.Expr, Any]]:
    count = exp.func("count", exp.Star())
    checks: list[tuple[str, exp.Expr, Any]] = []
    if tests.min_size is not None:
        checks.append((f"min_size {tests.min_size}", count.copy(),
                       lambda v, _p, n=tests.min_size: None if v >= n else f"{v} members < {n}"))
    if tests.max_size is not None:
        checks.append((f"max_size {tests.max_size}", count.copy(),
                       lambda v, _p, n=tests.max_size: None if v <= n else f"{v} members > {n}"))
    if tests.max_share is not None:
        checks.append((f"max_share {tests.max_share:g}", count.copy(), lambda v, p, s=tests.max_share:
                       None if not p or v / p <= s else f"share {v / p:.1%} > {s:.1%}"))
    columns = compiler.compiled(name).columns
    for column in tests.unique:
        _known(column, columns, name)
        distinct = exp.Count(this=exp.Distinct(expressions=[exp.column(column)]))
        checks.append((f"unique {column}", exp.func("count", exp.column(column)) - distinct,
                       lambda v, _p: None if not v else f"{v} duplicate value(s)"))
    for column in tests.not_null:
        _known(column, columns, name)
        checks.append((f"not_null {column}", count.copy() - exp.func("count", exp.column(column)),
                       lambda v, _p: None if not v else f"{v} NULL value(s)"))
    for condition in tests.expect:
        parsed = _condition(condition, name)
        fails = exp.or_(exp.not_(exp.paren(parsed)), parsed.copy().is_(exp.null()))
        failing = exp.Sum(this=exp.Case(ifs=[exp.If(this=fails, true=exp.Literal.number(1))],
                                        default=exp.Literal.number(0)))
        checks.append((f"expect {condition}", exp.Coalesce(this=failing, expressions=[exp.Literal.number(0)]),
                       lambda v, _p: None if not v else f"{v} member(s) fail the condition"))
    return checks


def _known(column: str, columns: dict[str, Any], name: str) -> None:
    if column.lower() not in columns:
        raise ConfigError(f"data test on unknown column `{column}` of segment `{name}`", None,
                          f"output columns are {list(columns)}")


def _condition(text: str, name: str) -> exp.Expr:
    try:
        parsed = exp.condition(text, dialect="duckdb")
    except sqlglot.errors.ParseError as error:
        raise ConfigError(f"segment `{name}`: test condition `{text}` is not SQL: {error.errors[0]['description']}",
                          None) from None
    if any(isinstance(node, exp.Query) for node in parsed.walk()):
        raise ConfigError(f"segment `{name}`: test condition `{text}` may not contain a query", None)
    return parsed
