"""A dbt project's artifacts as segsql sources: `target/manifest.json` + `target/catalog.json`.

dbt is never imported: both files are read as JSON. Every model, seed, snapshot and source of
the manifest becomes a node with the relation dbt built for the target the artifacts were made
for (database, schema, identifier), its columns and types from catalog.json (so `validate` works
offline), and the descriptions, tags and `meta` of its columns (`meta: {pii: true}` tags PII).

Names: a model, seed or snapshot is `dbt:NAME` (`{{ dbt('NAME') }}`), a source table is
`dbt:SOURCE.TABLE` (`{{ dbt_source('SOURCE', 'TABLE') }}`); these are the names segsql's sources,
lineage, docs and `--select dbt:NAME` use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segsql.errors import ConfigError, Location, did_you_mean

PREFIX = "dbt:"
RESOURCE_TYPES = ("model", "seed", "snapshot")
GENERATED_META = "segsql_segment"  # meta of the models `compile --format dbt` wrote: segments, not dbt nodes
FIX = "run `dbt docs generate` in the dbt project (it writes target/manifest.json and target/catalog.json)"
# Warehouses whose queries name a relation of another database as database.schema.name. Postgres
# and Spark read their connection's database (catalog) by schema.name only.
DATABASE_QUALIFIED = frozenset({"duckdb", "snowflake", "bigquery", "databricks", "trino"})
ADAPTER_DIALECTS = {"sqlserver": "tsql"}  # dbt adapters not named as their sqlglot dialect


@dataclass(frozen=True)
class DbtColumn:
    name: str
    type: str | None
    description: str = ""
    tags: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def pii(self) -> str | None:
        """The PII category: `meta: {pii: true}` (category `pii`), `meta: {pii: email}`, or tag `pii`."""
        value = self.meta.get("pii")
        if isinstance(value, str) and value.strip():
            return value.strip()
        if value is True or "pii" in self.tags:
            return "pii"
        return None

    @property
    def sensitive(self) -> str | None:
        """A protected category from `meta: {sensitive: gender}` (`true` names the column)."""
        value = self.meta.get("sensitive")
        if isinstance(value, str) and value.strip():
            return value.strip()
        return self.name if value is True else None


@dataclass(frozen=True)
class DbtNode:
    """One node dbt built: what `{{ dbt('x') }}` / `{{ dbt_source('s', 't') }}` stands for."""

    unique_id: str
    resource_type: str  # model, seed, snapshot or source
    name: str
    package: str
    database: str | None
    schema: str | None
    identifier: str
    source_name: str | None = None
    description: str = ""
    tags: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, DbtColumn] = field(default_factory=dict)  # lower-case name -> column
    depends_on: tuple[str, ...] = ()  # unique ids
    path: str = ""  # the file in the dbt project that defines it
    relation_name: str = ""  # as dbt renders it for its adapter, quoting included

    @property
    def segsql_name(self) -> str:
        """`dbt:NAME`, or `dbt:SOURCE.TABLE` for a source table."""
        if self.resource_type == "source":
            return f"{PREFIX}{self.source_name}.{self.name}"
        return f"{PREFIX}{self.name}"

    @property
    def jinja(self) -> str:
        """How a dbt model refers to this node: `{{ ref('x') }}` or `{{ source('s', 't') }}`."""
        if self.resource_type == "source":
            return f"{{{{ source({self.source_name!r}, {self.name!r}) }}}}"
        return f"{{{{ ref({self.name!r}) }}}}"


@dataclass
class DbtArtifacts:
    """The nodes of one manifest (by unique id) and where the files were read from."""

    nodes: dict[str, DbtNode]
    manifest_path: Path
    catalog_path: Path
    project_name: str = ""
    adapter_type: str = ""  # the dbt adapter (duckdb, postgres, snowflake, ...)

    def by_segsql_name(self) -> dict[str, DbtNode]:
        """`dbt:x` -> node. A name defined in two packages resolves to the root project's."""
        found: dict[str, DbtNode] = {}
        for node in sorted(self.nodes.values(), key=lambda n: (n.package == self.project_name, n.unique_id)):
            found[node.segsql_name] = node  # the root project's come last and win
        return found

    def upstream(self, unique_id: str) -> list[DbtNode]:
        """Every node `unique_id` depends on, transitively, nearest first."""
        seen: list[str] = []
        queue = list(self.nodes[unique_id].depends_on) if unique_id in self.nodes else []
        while queue:
            current = queue.pop(0)
            if current in seen or current not in self.nodes:
                continue
            seen.append(current)
            queue.extend(self.nodes[current].depends_on)
        return [self.nodes[uid] for uid in seen]


def artifact_paths(root: Path, project_dir: str | None, target_path: str, manifest: str | None,
                   catalog: str | None) -> tuple[Path, Path]:
    """manifest.json and catalog.json: given explicitly, else in `project_dir/target_path`."""
    folder = (root / project_dir / target_path) if project_dir is not None else root
    return ((root / manifest) if manifest else folder / "manifest.json",
            (root / catalog) if catalog else folder / "catalog.json")


def read_artifacts(manifest_path: Path, catalog_path: Path, where: Location, target: str | None = None,
                   shown_dir: str | None = None) -> DbtArtifacts:
    """The dbt nodes of a manifest with the columns of its catalog; ConfigError at `where` (the
    `dbt:` key of segsql.yml) when a file is missing, unreadable or for another target. Node
    paths are shown under `shown_dir` (the dbt project as segsql.yml names it)."""
    manifest = _load(manifest_path, where)
    catalog = _load(catalog_path, where)
    if target is not None:
        _check_target(manifest_path.parent, target, where)
    columns = {**catalog.get("nodes", {}), **catalog.get("sources", {})}
    nodes: dict[str, DbtNode] = {}
    for unique_id, raw in [*manifest.get("nodes", {}).items(), *manifest.get("sources", {}).items()]:
        kind = raw.get("resource_type")
        if kind not in (*RESOURCE_TYPES, "source") or not raw.get("config", {}).get("enabled", True):
            continue
        if kind == "model" and raw.get("config", {}).get("materialized") == "ephemeral":
            continue  # an ephemeral model is a CTE inside other models: there is no relation to read
        if GENERATED_META in (raw.get("meta") or {}):
            continue  # a segment compiled into the dbt project: segments read it with ref(), not dbt()
        nodes[unique_id] = _node(unique_id, kind, raw, columns.get(unique_id), shown_dir)
    metadata = manifest.get("metadata", {})
    return DbtArtifacts(nodes, manifest_path, catalog_path, str(metadata.get("project_name") or ""),
                        str(metadata.get("adapter_type") or ""))


def _load(path: Path, where: Location) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"dbt artifact {path} does not exist", where, FIX)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"dbt artifact {path} cannot be read: {error}", where, FIX) from None
    if not isinstance(data, dict):
        raise ConfigError(f"dbt artifact {path} is not a JSON object", where, FIX)
    return data


def _check_target(folder: Path, target: str, where: Location) -> None:
    """The target of the last dbt command that wrote `folder` (run_results.json records it)."""
    results = folder / "run_results.json"
    if not results.is_file():
        return
    try:
        recorded = json.loads(results.read_text(encoding="utf-8")).get("args", {}).get("target")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return
    if recorded and recorded != target:
        raise ConfigError(f"the dbt artifacts in {folder} were generated for target `{recorded}`, "
                          f"not `{target}`", where, f"run `dbt docs generate --target {target}`")


def _node(unique_id: str, kind: str, raw: dict[str, Any], described: dict[str, Any] | None,
          shown_dir: str | None) -> DbtNode:
    declared = {str(name).lower(): column for name, column in (raw.get("columns") or {}).items()}
    types: dict[str, str | None] = {}
    for name, column in ((described or {}).get("columns") or {}).items():
        types[str(name).lower()] = column.get("type")
    names = list(types) if described is not None else list(declared)
    columns = {}
    for name in names:
        doc = declared.get(name, {})
        meta = {**(doc.get("config", {}) or {}).get("meta", {}), **(doc.get("meta") or {})}
        columns[name] = DbtColumn(name, types.get(name), str(doc.get("description") or ""),
                                  tuple(doc.get("tags") or ()), meta)
    identifier = raw.get("identifier") if kind == "source" else raw.get("alias")
    return DbtNode(
        unique_id=unique_id, resource_type=kind, name=str(raw.get("name")), package=str(raw.get("package_name", "")),
        database=raw.get("database") or None, schema=raw.get("schema") or None,
        identifier=str(identifier or raw.get("name")), source_name=raw.get("source_name"),
        description=str(raw.get("description") or ""), tags=tuple(raw.get("tags") or ()),
        meta=dict(raw.get("meta") or {}), columns=columns,
        depends_on=tuple((raw.get("depends_on") or {}).get("nodes") or ()),
        path=_shown_path(raw, shown_dir), relation_name=str(raw.get("relation_name") or ""),
    )


def _shown_path(raw: dict[str, Any], shown_dir: str | None) -> str:
    """The file describing a node's columns: its properties .yml (`patch_path`), else its own file."""
    patch = str(raw.get("patch_path") or "")
    relative = patch.split("://", 1)[1] if "://" in patch else str(raw.get("original_file_path") or "")
    if not relative:
        return ""
    return str(Path(shown_dir) / relative) if shown_dir else relative


def relation(node: DbtNode, warehouse: str, adapter: str) -> Any:
    """The table (a sqlglot Table) a segment running on `warehouse` (a dialect) reads for `node`,
    whose artifacts dbt's `adapter` wrote. On the warehouse dbt built it is dbt's own relation:
    quoted where dbt quoted a name that folds otherwise (a Postgres schema `Analytics`), the database
    kept only where queries name databases (DuckDB, Snowflake, BigQuery). Another warehouse holds
    copies of the relations under the same schema.name (unquoted: each folds it its own way)."""
    from sqlglot import exp  # here, not at the top: `import segsql` loads the config layer and should stay light

    built_here = ADAPTER_DIALECTS.get(adapter, adapter) == warehouse
    quoted = _quoted_names(node.relation_name, warehouse) if built_here else set()

    def name(text: str) -> exp.Identifier:
        return exp.to_identifier(text, quoted=True) if text in quoted else exp.to_identifier(text)

    keep_database = built_here and warehouse in DATABASE_QUALIFIED and node.schema
    return exp.Table(this=name(node.identifier), db=name(node.schema) if node.schema else None,
                     catalog=name(node.database) if keep_database and node.database else None)


def _quoted_names(relation_name: str, dialect: str) -> set[str]:
    """The parts of dbt's `relation_name` that must stay quoted in `dialect`: quoted by dbt and
    not what the warehouse folds an unquoted name to (`"main"` on Postgres needs no quotes)."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.dialects.dialect import Dialect

    if not relation_name:
        return set()
    try:
        table = sqlglot.parse_one(relation_name, read=dialect, into=exp.Table)
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError):
        return set()
    folding = Dialect.get_or_raise(dialect)
    return {part.name for part in table.parts if isinstance(part, exp.Identifier) and part.quoted
            and (folding.case_sensitive(part.name) or not exp.SAFE_IDENTIFIER_RE.match(part.name))}


def source_fields(node: DbtNode, dialect: str, warehouse: str | None = None, adapter: str = "") -> dict[str, Any]:
    """The `sources:` entry a dbt node stands for: its relation on `warehouse` (default: the
    `dialect` segments are written in) as a table name, the catalog's columns (None when
    catalog.json does not describe it), description and privacy tags."""
    table = relation(node, warehouse or dialect, adapter or warehouse or dialect)
    columns = {name: column.type for name, column in node.columns.items()} or None
    described = [column for column in node.columns.values() if column.type is not None]
    fields: dict[str, Any] = {
        "table": table.sql(dialect=dialect),
        "columns": columns if described else None,
        "description": node.description or f"dbt {node.resource_type} {node.unique_id}",
        "pii": {name: column.pii for name, column in node.columns.items() if column.pii},
        "sensitive": {name: column.sensitive for name, column in node.columns.items() if column.sensitive},
        "static": node.resource_type == "seed",
    }
    if node.resource_type == "snapshot" and {"dbt_valid_from", "dbt_valid_to"} <= set(node.columns):
        # a dbt snapshot is slowly changing: a version is valid from dbt_valid_from until (excluding)
        # dbt_valid_to, NULL while current, which is what segsql's valid_from/valid_to mean
        fields["time"] = {"valid_from": "dbt_valid_from", "valid_to": "dbt_valid_to"}
    return fields


def column_changes(base: DbtArtifacts, head: DbtArtifacts) -> dict[str, dict[str, str]]:
    """`dbt:x` -> column -> what changed between two manifests/catalogs: `removed`, `added`,
    or `TYPE -> TYPE`. Nodes only in one of them are left out (segments reading a node that
    is gone fail to validate, which the diff reports)."""
    before, after = base.by_segsql_name(), head.by_segsql_name()
    changes: dict[str, dict[str, str]] = {}
    for name in sorted(set(before) & set(after)):
        old, new = before[name].columns, after[name].columns
        found = {column: "removed" for column in old if column not in new}
        found.update({column: "added" for column in new if column not in old})
        found.update({column: f"{old[column].type} -> {new[column].type}" for column in old
                      if column in new and old[column].type != new[column].type})
        if found:
            changes[name] = dict(sorted(found.items()))
    return changes


def unknown_node(name: str, artifacts: DbtArtifacts, function: str) -> str:
    """The hint for a name the manifest does not have."""
    known = [n.removeprefix(PREFIX) for n in artifacts.by_segsql_name()]
    return did_you_mean(name, known) or (f"no dbt node is called `{name}` in {artifacts.manifest_path}; "
                                         f"{function}() takes a model, seed or snapshot name"
                                         if function == "dbt" else "check the source and table names")
