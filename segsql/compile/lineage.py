"""Column lineage with sqlglot: which source columns a segment reads (anywhere in its query,
refs included) and which source columns each output column comes from. Used for the PII report
of `segsql validate`, masking, and the docs catalog."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlglot import exp
from sqlglot.lineage import lineage
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import traverse_scope

from segsql.compile import pointintime
from segsql.compile.builtins import table_for_source
from segsql.compile.literals import get_dialect

if TYPE_CHECKING:
    from segsql.compile.compiler import Compiler


@dataclass
class Lineage:
    reads: dict[str, list[str]] = field(default_factory=dict)  # source -> columns read
    outputs: dict[str, list[str]] = field(default_factory=dict)  # output column -> ["source.column", ...]

    def pii_read(self, compiler: Compiler) -> dict[str, str]:
        """"source.column" -> category for every tagged column the segment reads."""
        return {f"{s}.{c}": category for s, columns in self.reads.items() for c in columns
                if (category := _tag(compiler, s, c)) is not None}

    def pii_output(self, compiler: Compiler) -> dict[str, str]:
        """Output column -> PII category, for outputs derived from a `pii:` source column (also
        when renamed or transformed, e.g. lower(u.email) AS contact)."""
        found = {}
        for output, origins in self.outputs.items():
            for origin in origins:
                source, _, column = origin.rpartition(".")  # a dbt source name has a dot: dbt:stripe.invoices
                category = _tag(compiler, source, column, sensitive=False)
                if category is not None:
                    found[output] = category
                    break
        return found


    def descriptions(self, compiler: Compiler) -> dict[str, str]:
        """Output column -> the description of the dbt column it comes from (its first origin
        that the dbt project describes)."""
        artifacts = compiler.config.dbt_artifacts
        if artifacts is None:
            return {}
        nodes = artifacts.by_segsql_name()
        found = {}
        for output, origins in self.outputs.items():
            for origin in origins:
                source, _, column = origin.rpartition(".")
                described = nodes[source].columns.get(column) if source in nodes else None
                if described is not None and described.description:
                    found[output] = described.description
                    break
        return found


def _tag(compiler: Compiler, source: str, column: str, sensitive: bool = True) -> str | None:
    declared = compiler.config.sources.get(source)
    if declared is None:
        return None
    tags = {k.lower(): v for k, v in {**(declared.sensitive if sensitive else {}), **declared.pii}.items()}
    return tags.get(column.lower())


def segment_lineage(compiler: Compiler, name: str) -> Lineage:
    """Lineage of `name` through its inlined refs, against the project's sources."""
    cache = compiler.lineage  # per vars and as_of, like the compiled trees
    if name in cache:
        return cache[name]  # type: ignore[no-any-return]
    dialect = get_dialect(compiler.config.dialect)
    tables, schema = _source_tables(compiler)
    tree = qualify(pointintime.unwrap(compiler.tree(name)), schema=schema, dialect=dialect,
                   validate_qualify_columns=False, identify=False)
    result = Lineage()
    reads: dict[str, set[str]] = {}
    for scope in traverse_scope(tree):
        for column in scope.columns:
            table = scope.sources.get(column.table)
            if isinstance(table, exp.Table) and table.name.lower() in tables:
                reads.setdefault(tables[table.name.lower()], set()).add(column.name.lower())
    result.reads = {source: sorted(columns) for source, columns in sorted(reads.items())}
    for output in compiler.compiled(name).columns:
        node = lineage(output, tree, schema, dialect=dialect, copy=True)
        origins = {f"{tables[leaf.source.name.lower()]}.{leaf.name.rsplit('.', 1)[-1].lower()}"
                   for leaf in node.walk() if not leaf.downstream and isinstance(leaf.source, exp.Table)
                   and leaf.source.name.lower() in tables}
        result.outputs[output] = sorted(origins)
    cache[name] = result
    return result


def _source_tables(compiler: Compiler) -> tuple[dict[str, str], dict[str, object]]:
    """Table name (lower) -> source name, and a sqlglot schema of the declared/described columns."""
    tables: dict[str, str] = {}
    schema: dict[str, object] = {}
    catalog = compiler.catalog
    for name, source in compiler.config.sources.items():
        table = table_for_source(name, source.table, compiler.config.dialect)
        tables[table.name.lower()] = name
        found = catalog.find(table)
        if found is not None and found[1]:
            schema[table.name] = {column: kind or "UNKNOWN" for column, kind in found[1].items()}
    return tables, schema
