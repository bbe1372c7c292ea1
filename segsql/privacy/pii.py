"""Personal data in segments: which output columns carry declared PII (by name and column
lineage), and which source columns look personal but carry no tag."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from segsql.compile.builtins import table_for_source
from segsql.compile.lineage import segment_lineage
from segsql.config.yamlfile import read_yaml_file
from segsql.errors import Location, SegsqlError

if TYPE_CHECKING:
    from segsql.compile.compiler import Compiler
    from segsql.engines.base import Engine


def pii_columns(compiler: Compiler, name: str) -> dict[str, str]:
    """Output columns of segment `name` that carry a PII column of a source it reads: by name,
    and by column lineage (renamed or transformed PII is masked too)."""
    compiled = compiler.compiled(name)
    declared: dict[str, str] = {}
    for source_name in compiled.sources:
        for column, category in compiler.config.sources[source_name].pii.items():
            declared[column.lower()] = category
    found = {column: declared[column] for column in compiled.columns if column in declared}
    read = {s for ref in compiled.upstream for s in compiler.compiled(ref).sources} | set(compiled.sources)
    if any(compiler.config.sources[s].pii for s in read):  # lineage costs ms per preview: only when it can matter
        found.update(_lineage_pii(compiler, name))
    return found


def _lineage_pii(compiler: Compiler, name: str) -> dict[str, str]:
    """Outputs derived from PII columns by sqlglot lineage; name matching covers any query
    lineage cannot follow."""
    from sqlglot.errors import SqlglotError


    try:
        return segment_lineage(compiler, name).pii_output(compiler)
    except (SqlglotError, KeyError, ValueError):
        return {}


# column-name patterns -> the category a `pii:` tag should give them (the first match wins)
PII_KINDS = (
    ("email", re.compile(r"(^|_)e_?mail($|_)", re.IGNORECASE)),
    ("phone", re.compile(r"(^|_)(phone|mobile|fax|tel)($|_)", re.IGNORECASE)),
    ("name", re.compile(r"(^|_)(first_?name|last_?name|full_?name|surname)($|_)", re.IGNORECASE)),
    ("address", re.compile(r"(^|_)(address|street|zip|postcode)($|_)", re.IGNORECASE)),
    ("ip", re.compile(r"(^|_)(ip|ip_address)($|_)", re.IGNORECASE)),
    ("birth_date", re.compile(r"(^|_)(birth_?date|birthday|date_of_birth|dob)($|_)", re.IGNORECASE)),
    ("national_id", re.compile(r"(^|_)(ssn|passport|tax_id)($|_)", re.IGNORECASE)),
    ("bank_account", re.compile(r"(^|_)iban($|_)", re.IGNORECASE)),
)
FLAG_NAMES = re.compile(r"^(has|is)_|_(verified|confirmed|count|opt_in|consent|valid)$", re.IGNORECASE)  # about, not of
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", re.IGNORECASE)
PHONE = re.compile(r"^\+?[\d\s().-]{7,}$")


def untagged_pii(compiler: Compiler, samples: dict[str, dict[str, list[Any]]]) -> list[tuple[str, str, str, str]]:
    """(source, column, why, category) for columns that look personal but are not tagged under
    `pii:` or `sensitive:`: by name, or by sampled values that look like emails or phone numbers."""
    found = []
    for source_name, source in sorted(scanned_sources(compiler).items()):
        tagged = {c.lower() for c in (*source.pii, *source.sensitive)}
        columns = {c.lower() for c in (source.columns or {})} | set(samples.get(source_name, {}))
        for column in sorted(columns - tagged):
            raw = [v for v in samples.get(source_name, {}).get(column, []) if v is not None]
            values = [v for v in raw if isinstance(v, str)] if all(isinstance(v, str) for v in raw) else []
            by_name = None if FLAG_NAMES.search(column) else next(
                (kind for kind, pattern in PII_KINDS if pattern.search(column)), None)
            if by_name is not None:
                found.append((source_name, column, "its name looks like personal data", by_name))
            elif values and all(EMAIL.match(v) for v in values):
                found.append((source_name, column, "its values look like email addresses", "email"))
            elif values and all(PHONE.match(v) and sum(ch.isdigit() for ch in v) >= 7 for v in values):
                found.append((source_name, column, "its values look like phone numbers", "phone"))
    return found


def scanned_sources(compiler: Compiler) -> dict[str, Any]:
    """The sources the untagged-PII scan looks at: every source of segsql.yml, and the dbt nodes
    segments read (a dbt project can have thousands of nodes; those no segment reads are the
    dbt project's concern)."""
    sources = compiler.config.sources
    read: set[str] = set()
    if compiler.config.dbt_artifacts is not None:
        for name in compiler.segments:
            try:
                read |= compiler.rendered(name).state.sources
            except SegsqlError:
                continue
    return {name: source for name, source in sources.items() if not name.startswith("dbt:") or name in read}


def untagged_columns(compiler: Compiler, engine: Engine | None, sample_rows: int) -> list[SegsqlError]:
    """Warnings, at the source's line in segsql.yml, for columns that look like personal data but
    carry no `pii:`/`sensitive:` tag (values sampled from `engine` when there is one)."""
    samples = {} if engine is None else _samples(compiler, engine, sample_rows)
    located = read_yaml_file(compiler.root / "segsql.yml", "segsql.yml")
    return [SegsqlError(f"source `{source}` column `{column}` is not tagged as personal data, but {why}",
                        *_where_to_tag(compiler, located, source, column, kind))
            for source, column, why, kind in untagged_pii(compiler, samples)]


def _where_to_tag(compiler: Compiler, located: Any, source: str, column: str, kind: str) -> tuple[Location, str]:
    """A dbt node is tagged in the dbt project (column `meta`), any other source in segsql.yml."""
    artifacts = compiler.config.dbt_artifacts
    node = artifacts.by_segsql_name().get(source) if artifacts is not None else None
    if node is not None:
        return (Location(node.path or str(artifacts.manifest_path)),
                f"add `meta: {{pii: {kind}}}` to column `{column}` of {node.resource_type} `{node.name}` "
                "in the dbt project, then `dbt docs generate`")
    return located.locate(("sources", source)), f"tag it under sources.{source}.pii ({column}: {kind}) or sensitive:"


def _samples(compiler: Compiler, engine: Engine, rows: int) -> dict[str, dict[str, list[Any]]]:
    samples: dict[str, dict[str, list[Any]]] = {}
    try:
        engine.prepare_sources()
    except SegsqlError:
        return samples
    for name, source in scanned_sources(compiler).items():
        table = table_for_source(name, source.table, compiler.config.dialect)
        try:
            arrow = engine.fetch_arrow(exp.select("*").from_(table).limit(rows))
        except SegsqlError:
            continue
        samples[name] = {c.lower(): arrow.column(c).to_pylist() for c in arrow.column_names}
    return samples
