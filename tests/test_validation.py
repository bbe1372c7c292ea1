"""Every validation rule, with the exact template location it reports.

Each case fails if its check is removed: the segment would then validate (no error) or report
another message/location.
"""

from __future__ import annotations

import pytest

from segsql import SegsqlError, SqlError, TemplateError, ValidationError
from tests.conftest import BASE_CONFIG, ProjectFactory

CFG = "{{ config(entity='account') }}\n"


def only_error(make_project: ProjectFactory, template: str, **kwargs: object) -> SegsqlError:
    project = make_project({"seg": template}, **kwargs)
    errors = project.validate()
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


CASES = [
    # (id, template, error class, message fragment, line, col)
    ("jinja-syntax", CFG + "SELECT a.account_id\nFROM {{ source('accounts') }} AS a\nWHERE {% if x %} a.arr > 1",
     TemplateError, "Jinja syntax error", 4, 7),
    ("jinja-unclosed-expression", CFG + "SELECT {{ source('accounts' }}", TemplateError, "Jinja syntax error", 2, 8),
    ("undefined-name", CFG + "SELECT a.account_id\n  FROM {{ source('accounts') }} AS a WHERE a.arr > {{ min_arr }}",
     TemplateError, "'min_arr' is undefined", 3, 55),
    ("unknown-source", CFG + "SELECT a.account_id FROM {{ source('acounts') }} AS a",
     TemplateError, "unknown source `acounts`", 2, 29),
    ("unknown-var", CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a\nWHERE a.region = {{ var('regon') }}",
     TemplateError, "undefined var `regon`", 3, 21),
    ("param-without-value", CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a\nWHERE a.arr > {{ param('x') }}",
     TemplateError, "param `x` has no default", 3, 18),
    ("sql-syntax", CFG + "SELECT a.account_id,\n       a.arr +\nFROM {{ source('accounts') }} AS a",
     SqlError, "SQL syntax error", 4, 1),
    ("unterminated-string", CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a\nWHERE a.name = 'oops",
     SqlError, "unterminated", 3, 16),
    ("unknown-table", CFG + "SELECT a.account_id FROM acounts AS a", ValidationError, "unknown table `acounts`", 2, 26),
    ("unknown-column-unqualified", CFG + "SELECT a.account_id, arrr FROM {{ source('accounts') }} AS a",
     ValidationError, "unknown column `arrr`", 2, 22),
    ("unknown-column-qualified", CFG + "SELECT a.account_id,\n  a.mrrr\nFROM {{ source('accounts') }} AS a",
     ValidationError, "unknown column `mrrr` in `a`", 3, 5),
    ("unknown-alias", CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a\nWHERE b.role = 'admin'",
     ValidationError, "unknown table or alias `b`", 3, 7),
    ("unknown-column-in-join-table", CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a\n"
     "JOIN {{ source('users') }} AS u ON u.acount_id = a.account_id", ValidationError, "unknown column `acount_id` in `u`", 3, 38),
    ("unknown-column-in-cte", CFG + "WITH c AS (SELECT a.account_id FROM {{ source('accounts') }} AS a)\n"
     "SELECT c.account_id, c.arr FROM c", ValidationError, "unknown column `arr` in `c`", 3, 24),
    ("unknown-column-in-subquery", CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a\n"
     "WHERE a.account_id IN (SELECT u.acc FROM {{ source('users') }} AS u)",
     ValidationError, "unknown column `acc`", 3, 33),
    ("ambiguous-column", CFG + "SELECT a.account_id, country FROM {{ source('accounts') }} AS a\n"
     "JOIN {{ source('users') }} AS u ON u.account_id = a.account_id", ValidationError, "ambiguous", 2, 22),
    ("drop", CFG + "DROP TABLE accounts", SqlError, "not DROP", 2, 1),
    ("insert", CFG + "INSERT INTO accounts SELECT * FROM accounts", SqlError, "not INSERT", 2, 1),
    ("update", CFG + "UPDATE accounts SET arr = 0", SqlError, "not UPDATE", 2, 1),
    ("create-table-as", CFG + "CREATE TABLE t AS SELECT 1 AS account_id", SqlError, "not CREATE", 2, 1),
    ("delete-in-cte", CFG + "WITH d AS (DELETE FROM accounts RETURNING account_id) SELECT d.account_id FROM d",
     SqlError, "DELETE is not allowed", 2, 24),
    ("copy", CFG + "COPY accounts TO 'x.csv'", SqlError, "not COPY", 2, 1),
    ("attach", CFG + "ATTACH 'other.db'", SqlError, "not ATTACH", 2, 1),
    ("pragma", CFG + "PRAGMA version", SqlError, "not PRAGMA", 2, 1),
    ("select-into", CFG + "SELECT a.account_id INTO t2 FROM {{ source('accounts') }} AS a", SqlError, "INTO", 2, 26),
    ("table-function", CFG + "SELECT account_id FROM read_csv('/etc/passwd')", SqlError, "table functions", 2, 24),
    ("file-function", CFG + "SELECT a.account_id, read_text('/etc/passwd') AS t FROM {{ source('accounts') }} AS a",
     SqlError, "read_text() is not allowed", 2, 22),
    ("two-statements", CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a;\nSELECT 1",
     SqlError, "found 2 statements", 3, 1),
    ("missing-entity-key", CFG + "SELECT a.name FROM {{ source('accounts') }} AS a", ValidationError,
     "lacks the entity key `account_id`", 2, 8),
    ("ambiguous-entity-key", CFG + "SELECT a.account_id, u.account_id\nFROM {{ source('accounts') }} AS a "
     "JOIN {{ source('users') }} AS u ON u.account_id = a.account_id", ValidationError, "appears 2 times", 2, 8),
    ("duplicate-output-column", CFG + "SELECT a.account_id, a.arr AS x, a.name AS x FROM {{ source('accounts') }} AS a",
     ValidationError, "output column `x` appears more than once", 2, 8),
    ("unknown-entity", "{{ config(entity='acount') }}\nSELECT 1 AS account_id",
     TemplateError, "unknown entity `acount`", 1, 4),
    ("bad-tag-type", "{{ config(entity='account', tags='value') }}\nSELECT 1 AS account_id",
     TemplateError, "config `tags`", 1, 4),
    ("unknown-config-key", "{{ config(entity='account', ownr='x') }}\nSELECT 1 AS account_id",
     TemplateError, "unknown config key `ownr`", 1, 4),
    ("config-missing-entity", "{{ config(description='x') }}\nSELECT 1 AS account_id",
     TemplateError, "config() needs `entity`", 1, 4),
    ("no-config", "SELECT 1 AS account_id", TemplateError, "no config() call", 1, 1),
    ("config-twice", CFG + "{{ config(entity='account') }}\nSELECT 1 AS account_id", TemplateError, "twice", 2, 4),
    ("error-in-builtin-macro-output", CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a\n"
     "WHERE {{ last_n_days('a.signup_dat', 7) }}", ValidationError, "unknown column `signup_dat`", 3, 7),
    ("bad-builtin-argument", CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a\n"
     "WHERE {{ last_n_days('a.signup_date', -3) }}", TemplateError, "whole number of days", 3, 10),
    ("sandbox", CFG + "SELECT {{ ''.__class__.__mro__ }} AS account_id", TemplateError, "", 2, 8),
    # sqlglot reads `> >` as the shift `>>` (and previews 0 members); DuckDB rejects it
    ("split-operator", CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a\nWHERE a.arr > > 100",
     SqlError, "`> >` is not an operator", 3, 15),
    ("split-operator-left", CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a\nWHERE a.arr < < 100",
     SqlError, "`< <` is not an operator", 3, 15),
]


def test_a_shift_written_as_one_operator_is_valid(make_project: ProjectFactory) -> None:
    project = make_project({"seg": CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a\n"
                                         "WHERE (a.account_id >> 1) > 0 AND (a.account_id << 2) < 100"})
    assert project.validate() == []


@pytest.mark.parametrize(("template", "kind", "fragment", "line", "col"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule_reports_template_location(make_project: ProjectFactory, template: str, kind: type,
                                        fragment: str, line: int, col: int) -> None:
    error = only_error(make_project, template)
    assert isinstance(error, kind), repr(error)
    assert fragment in error.message
    assert (error.path, error.line, error.col) == ("segments_sql/seg.sql", line, col), str(error)


def test_error_inside_user_macro_points_at_the_call(make_project: ProjectFactory) -> None:
    macros = {"macros/filters.sql": "{% macro big(col) %}{{ ident(col) }} > 1000 AND nosuchcol = 1{% endmacro %}\n"}
    error = only_error(make_project, CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a\n"
                       "WHERE a.arr > 0 AND {{ big('a.arr') }}", files=macros)
    assert "unknown column `nosuchcol`" in error.message
    assert (error.line, error.col) == (3, 21)


def test_unknown_ref_suggests_the_closest_name(make_project: ProjectFactory) -> None:
    project = make_project({
        "enterprise_dach": CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a",
        "seg": CFG + "SELECT x.account_id\nFROM {{ ref('enterprise_dah') }} AS x",
    })
    [error] = project.validate()
    assert "unknown segment `enterprise_dah`" in error.message
    assert error.hint == "did you mean `enterprise_dach`?"
    assert (error.path, error.line, error.col) == ("segments_sql/seg.sql", 3, 9)


def test_reference_cycle_is_named(make_project: ProjectFactory) -> None:
    project = make_project({
        "a": CFG + "SELECT b.account_id FROM {{ ref('b') }} AS b",
        "b": CFG + "SELECT c.account_id FROM {{ ref('c') }} AS c",
        "c": CFG + "SELECT a.account_id FROM {{ ref('a') }} AS a",
    })
    errors = project.validate()
    cycles = [e for e in errors if "reference cycle" in e.message]
    assert len(cycles) == 1
    assert "a -> b -> c -> a" in cycles[0].message
    assert cycles[0].path == "segments_sql/c.sql" and cycles[0].line == 2
    assert len(errors) == 3  # a and b fail because what they ref is broken


def test_columns_of_refs_are_checked(make_project: ProjectFactory) -> None:
    project = make_project({
        "base": CFG + "SELECT a.account_id, a.arr FROM {{ source('accounts') }} AS a",
        "seg": CFG + "SELECT b.account_id, b.name FROM {{ ref('base') }} AS b",
    })
    [error] = project.validate()
    assert "unknown column `name` in `b`" in error.message and error.path == "segments_sql/seg.sql"


def test_set_helpers_refuse_mixed_entities(make_project: ProjectFactory) -> None:
    project = make_project({
        "accs": CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a",
        "usrs": "{{ config(entity='user') }}\nSELECT u.user_id FROM {{ source('users') }} AS u",
        "seg": CFG + "{{ union('accs', 'usrs') }}",
    })
    [error] = project.validate()
    assert "mixes entities" in error.message and (error.line, error.col) == (2, 4)


def test_cte_named_like_a_ref_is_refused(make_project: ProjectFactory) -> None:
    project = make_project({
        "base": CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a",
        "seg": CFG + "WITH base AS (SELECT 1 AS account_id)\nSELECT b.account_id FROM {{ ref('base') }} AS b",
    })
    [error] = project.validate()
    assert "CTE `base`" in error.message and (error.line, error.col) == (2, 6)


def test_validate_reports_every_broken_segment(make_project: ProjectFactory) -> None:
    project = make_project({
        "good": CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a",
        "bad1": CFG + "SELECT a.nope FROM {{ source('accounts') }} AS a",
        "bad2": CFG + "DELETE FROM accounts",
    })
    errors = project.validate()
    assert sorted(e.path or "" for e in errors) == ["segments_sql/bad1.sql", "segments_sql/bad2.sql"]


def test_columns_come_from_the_engine_catalog(make_project: ProjectFactory, tmp_path) -> None:
    import duckdb

    duckdb.connect(str(tmp_path / "db.duckdb")).execute(
        "CREATE TABLE raw_accounts (account_id BIGINT, mrr DOUBLE)").close()
    config = """\
    connection: {type: duckdb, path: db.duckdb}
    sources:
      accounts: {table: raw_accounts}
    entities:
      account: {key: account_id, source: accounts}
    """
    project = make_project({"seg": CFG + "SELECT a.account_id, a.mrrr FROM {{ source('accounts') }} AS a"},
                           config=config)
    [error] = project.validate()
    assert "unknown column `mrrr`" in error.message and error.hint == "did you mean `mrr`?"


def test_csv_source_columns_are_read(make_project: ProjectFactory) -> None:
    config = """\
    sources:
      accounts: {path: data/accounts.csv}
    entities:
      account: {key: account_id, source: accounts}
    """
    project = make_project({"seg": CFG + "SELECT a.account_id, a.arr FROM {{ source('accounts') }} AS a"},
                           config=config, files={"data/accounts.csv": "account_id,name\n1,x\n"})
    [error] = project.validate()
    assert "unknown column `arr`" in error.message


def test_select_star_expands_from_the_schema(make_project: ProjectFactory) -> None:
    project = make_project({"seg": CFG + "SELECT * FROM {{ source('accounts') }} AS a"})
    assert project.validate() == []
    assert list(project.compiled("seg").columns)[:2] == ["account_id", "name"]


@pytest.mark.parametrize(("select", "dialect", "fragment"), [
    ("SELECT a.account_id FROM {{ source('accounts') }} AS a ASOF JOIN {{ source('users') }} AS u "
     "ON u.account_id = a.account_id AND u.last_seen_at >= a.signup_date", "postgres", "ASOF JOIN cannot run on postgres"),
    ("SELECT a.account_id, struct_pack(x := 1) AS s FROM {{ source('accounts') }} AS a", "postgres",
     "struct literals cannot run on postgres"),
])
def test_unportable_constructs_fail_for_that_target(make_project: ProjectFactory, select: str, dialect: str,
                                                    fragment: str) -> None:
    project = make_project({"seg": CFG + select})
    assert project.validate() == []  # fine on DuckDB
    with pytest.raises(ValidationError, match=fragment) as caught:
        project.compile("seg", dialect=dialect)
    assert caught.value.path == "segments_sql/seg.sql" and caught.value.hint
    project.compile("seg", dialect="duckdb")


PROTECTED_CONFIG = BASE_CONFIG.replace("users:\n    table: users\n", "users:\n    table: users\n").replace(
    "last_seen_at: TIMESTAMP}", "last_seen_at: TIMESTAMP, gender: VARCHAR, score: INTEGER}\n    sensitive: {score: health}")


@pytest.mark.parametrize(("condition", "column", "line"), [
    ("WHERE u.gender = 'f'", "gender", 3),
    ("WHERE u.role = 'x'\n  AND u.score > 3", "score", 4),
    ("GROUP BY u.user_id, u.gender HAVING COUNT(*) > 0", "gender", 3),
])
def test_protected_attribute_lint(make_project: ProjectFactory, condition: str, column: str, line: int) -> None:
    template = "{{ config(entity='user') }}\nSELECT u.user_id FROM {{ source('users') }} AS u\n" + condition
    project = make_project({"seg": template}, config=PROTECTED_CONFIG + "point_in_time: off\n")
    assert project.validate() == []
    [warning] = project.warnings
    assert f"protected attribute `{column}`" in warning.message and warning.line == line
    strict = make_project({"seg": template}, config=PROTECTED_CONFIG + "point_in_time: off\nprivacy: {strict: true}\n")
    [error] = strict.validate()
    assert "protected attribute" in error.message and error.line == line


def test_protected_attribute_as_a_trait_or_justified_is_fine(make_project: ProjectFactory) -> None:
    trait = "{{ config(entity='user') }}\nSELECT u.user_id, u.gender FROM {{ source('users') }} AS u"
    justified = ("{{ config(entity='user', protected_use='age-appropriate product: legal requirement') }}\n"
                 "SELECT u.user_id FROM {{ source('users') }} AS u WHERE u.gender = 'f'")
    project = make_project({"trait": trait, "justified": justified}, config=PROTECTED_CONFIG + "point_in_time: off\n")
    assert project.validate() == [] and project.warnings == []


def test_untagged_personal_data_is_flagged(make_project: ProjectFactory, tmp_path) -> None:
    import duckdb

    duckdb.connect(str(tmp_path / "db.duckdb")).execute(
        "CREATE TABLE people AS SELECT 1 AS person_id, 'a@b.example' AS contact, '+49 30 1234567' AS tel, "
        "'x@y.example' AS work_email, DATE '2026-01-01' AS joined, 'DE' AS country").close()
    config = """\
    connection: {type: duckdb, path: db.duckdb}
    sources:
      people:
        table: people
        pii: {work_email: email}
    entities:
      person: {key: person_id, source: people}
    """
    project = make_project({"seg": "{{ config(entity='person') }}\nSELECT p.person_id FROM {{ source('people') }} AS p"},
                           config=config)
    flagged = {(w.message.split("`")[3], w.line) for w in project.privacy_warnings()}
    assert flagged == {("contact", 3), ("tel", 3)}  # joined (a date), country and tagged work_email are fine
