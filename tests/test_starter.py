"""The starter segment library: documented, typed by segmentation type, and tested well enough
that dropping any filter of a segment makes its own unit tests fail."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlglot import exp

from segsql import Project
from segsql.compile import pointintime
from segsql.measure.testing import PASS, run_unit_tests
from tests.conftest import AS_OF

LIBRARY = Path(__file__).resolve().parent.parent / "segments_sql"
NAMES = sorted(p.stem for p in LIBRARY.rglob("*.sql"))
TYPES = {"firmographic", "behavioural", "value", "lifecycle", "technographic", "needs", "geographic", "rollup"}


@pytest.fixture(scope="module")
def starter(tmp_path_factory: pytest.TempPathFactory) -> Project:
    from segsql.starter.scaffold import create_project

    root = tmp_path_factory.mktemp("starter") / "p"
    create_project(root)
    return Project.load(root, as_of=AS_OF)


def test_library_size_and_types(starter: Project) -> None:
    assert len(NAMES) >= 15
    tags = {tag for name in NAMES for tag in starter.compiled(name).config.tags}
    assert tags >= TYPES
    assert {starter.compiled(n).entity for n in NAMES} == {"account", "user"}


@pytest.mark.parametrize("name", NAMES)
def test_segment_is_documented_and_tested(starter: Project, name: str) -> None:
    config = starter.compiled(name).config
    assert len(config.description) > 20 and config.owner and config.tags
    assert config.tests is not None, "every starter segment has data tests"
    assert (LIBRARY.rglob(f"{name}.test.yml")), name
    assert next(LIBRARY.rglob(f"{name}.test.yml"), None) is not None, f"{name} has no unit tests"


@pytest.mark.parametrize("name", NAMES)
def test_unit_tests_pass(starter: Project, name: str) -> None:
    results = run_unit_tests(starter.compiler, name)
    assert results and all(r.status == PASS for r in results), [(r.test, r.details) for r in results]


def own_nodes(tree: exp.Query, upstream: list[str]) -> list[exp.Expr]:
    """Nodes of the segment's own query, leaving out the refs inlined as CTEs and the
    point-in-time filters on sources (tests/test_point_in_time.py tests those)."""
    inlined = {cte.this for cte in tree.find_all(exp.CTE) if cte.alias_or_name in upstream}
    inlined |= {sub for sub in tree.find_all(exp.Subquery) if sub.meta.get(pointintime.MARK)}
    skip = {id(node) for body in inlined for node in body.walk()}
    return [node for node in tree.walk() if id(node) not in skip]


def mutations(tree: exp.Query, upstream: list[str]) -> list[tuple[str, Callable[[exp.Query], exp.Query]]]:
    """One mutation per WHERE and HAVING of the segment's own query; joins when it has none."""
    nodes = own_nodes(tree, upstream)
    found: list[tuple[str, Callable[[exp.Query], exp.Query]]] = []
    for kind in (exp.Where, exp.Having):
        for index, _ in enumerate(n for n in nodes if isinstance(n, kind)):
            found.append((f"drop {kind.key} #{index}", _dropper(kind, index, upstream)))
    if not found:
        for index, _ in enumerate(n for n in nodes if isinstance(n, exp.Join)):
            found.append((f"drop join #{index}", _dropper(exp.Join, index, upstream)))
    return found


def _dropper(kind: type, index: int, upstream: list[str]) -> Callable[[exp.Query], exp.Query]:
    def mutate(tree: exp.Query) -> exp.Query:
        target = [n for n in own_nodes(tree, upstream) if isinstance(n, kind)][index]
        target.pop()
        return tree

    return mutate


@pytest.mark.parametrize("name", NAMES)
def test_dropping_any_filter_fails_the_unit_tests(starter: Project, name: str) -> None:
    upstream = starter.compiled(name).upstream
    cases = mutations(starter.compiler.tree(name), upstream)
    assert cases, f"{name}: nothing to mutate"
    for label, mutate in cases:
        results = run_unit_tests(starter.compiler, name, transform=mutate)
        assert any(r.status != PASS for r in results), f"{name}: unit tests still pass after `{label}`"


def test_expected_rows_check_trait_values(make_project) -> None:  # type: ignore[no-untyped-def]
    """`expect` entries written as rows also compare the listed columns (and name the difference)."""
    project = make_project(
        {"rich": "{{ config(entity='account') }}\nSELECT a.account_id, a.arr * 2 AS doubled, a.region "
                 "FROM {{ source('accounts') }} AS a WHERE a.arr > 10"},
        files={"segments_sql/rich.test.yml":
               "unit_tests:\n"
               "  - name: values\n"
               "    given:\n      accounts: [{account_id: 1, arr: 20, region: DACH}, {account_id: 2, arr: 5}]\n"
               "    expect: [{account_id: 1, doubled: 40.0, region: DACH}]\n"
               "  - name: wrong\n"
               "    given:\n      accounts: [{account_id: 1, arr: 20, region: DACH}]\n"
               "    expect: [{account_id: 1, doubled: 41, region: UKI, nope: 1}]\n"})
    good, bad = run_unit_tests(project.compiler, "rich")
    assert good.status == PASS, good.details
    assert bad.status != PASS
    assert "account_id 1: doubled = 40.0, expected 41" in bad.details
    assert "region = 'DACH', expected 'UKI'" in bad.details and "no column `nope`" in bad.details


@pytest.mark.parametrize(("metric", "days"), [("conversion_rate", 90), ("csat", 90), ("feature_adoption", 30)])
def test_a_window_of_n_days_has_n_days_ending_at_as_of(starter: Project, metric: str, days: int) -> None:
    # conversion_rate used `ended_at >= as_of - 90 AND ended_at <= as_of`: 91 days, and as_of's own day
    # only up to midnight for timestamps
    import datetime as dt

    import duckdb

    from segsql.measure.metrics import entity_query

    where = entity_query(starter.compiler, starter.metrics[metric]).args["where"].this
    column = next(iter(where.find_all(exp.Column))).name
    hours = exp.select(exp.func("count", exp.Distinct(expressions=[exp.cast(exp.column(column), "DATE")]))).from_(
        "hours").where(where.copy())
    connection = duckdb.connect()
    connection.execute(f"CREATE TABLE hours AS SELECT TIMESTAMP '2026-06-01' + to_hours(i) AS {column} "
                       "FROM range(0, 24 * 240) AS t(i)")
    assert connection.execute(hours.sql("duckdb")).fetchone() == (days,)
    last = exp.select(exp.func("max", exp.column(column))).from_("hours").where(where.copy())
    assert connection.execute(last.sql("duckdb")).fetchone()[0] == dt.datetime.fromisoformat(AS_OF + " 23:00")
