"""Validated models for segsql.yml and for a segment's `config(...)` call.

Unknown keys are rejected (`extra="forbid"`) so a typo is an error that names the key and its
line, never silence. Secrets never live in the file: connection passwords are named by the
environment variable that holds them.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from segsql.config import DIALECTS
from segsql.config.yamlfile import LocatedYaml, read_yaml_file
from segsql.errors import ConfigError, Location, did_you_mean

CONFIG_FILE = "segsql.yml"
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DuckDBConnection(Strict):
    type: Literal["duckdb"] = "duckdb"
    path: str = ":memory:"


class PostgresConnection(Strict):
    type: Literal["postgres"]
    host: str = "localhost"
    port: int = 5432
    dbname: str
    user: str
    password_env: str | None = Field(
        default=None, description="name of the environment variable holding the password"
    )
    schema_: str = Field(default="public", alias="schema")


class SparkConnection(Strict):
    type: Literal["spark"]
    master: str = "local[*]"
    remote: str | None = Field(default=None, description="a Spark Connect server (sc://HOST:15002): segsql "
                               "talks to it instead of starting a driver; `master` is then the server's own")
    warehouse: str | None = None
    conf: dict[str, str] = Field(default_factory=dict)

    @field_validator("remote")
    @classmethod
    def _remote_is_a_connect_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("sc://"):
            raise ValueError("a Spark Connect URL starts with sc://, e.g. sc://127.0.0.1:15002")
        return value


class DbapiConnection(Strict):
    """Any warehouse with a DB-API 2 driver (Snowflake, Trino, Redshift, BigQuery's dbapi, ...)."""

    type: Literal["dbapi"]
    module: str = Field(description="the driver module, e.g. snowflake.connector or trino.dbapi")
    dialect: Literal[DIALECTS] = Field(description="the sqlglot dialect to generate")  # type: ignore[valid-type]
    connect_args: dict[str, Any] = Field(default_factory=dict)
    password_env: str | None = None
    password_arg: str = "password"
    schema_: str | None = Field(default=None, alias="schema", description="default schema of source tables")


def _refuse_literal_secrets(data: Any, fields: tuple[str, ...]) -> Any:
    """A secret written into segsql.yml is refused (its value is never repeated back)."""
    if isinstance(data, dict):
        for field in fields:
            if field in data:
                raise ValueError(f"`{field}:` is a secret and never goes in segsql.yml: put it in an environment "
                                 f"variable and name the variable instead (e.g. password_env: SNOWFLAKE_PASSWORD)")
    return data


class SnowflakeConnection(Strict):
    """Snowflake through snowflake-connector-python; the password only from the environment.
    `host`/`port`/`protocol` point it elsewhere than ACCOUNT.snowflakecomputing.com (an emulator)."""

    type: Literal["snowflake"]
    account: str = Field(description="the account identifier, e.g. myorg-myaccount")
    user: str
    password_env: str | None = Field(default=None, description="name of the environment variable holding the "
                                     "password (or the programmatic access token)")
    database: str
    schema_: str = Field(default="PUBLIC", alias="schema", description="the schema of source tables")
    warehouse: str | None = Field(default=None, description="the virtual warehouse queries run on")
    role: str | None = None
    host: str | None = Field(default=None, description="only to reach an emulator or a private link host")
    port: int | None = None
    protocol: Literal["https", "http"] = "https"
    login_timeout: int = Field(default=30, description="seconds to wait for the login before giving up")

    @model_validator(mode="before")
    @classmethod
    def _no_literal_password(cls, data: Any) -> Any:
        return _refuse_literal_secrets(data, ("password", "token", "private_key"))


class BigQueryConnection(Strict):
    """BigQuery through google-cloud-bigquery; credentials from the environment (Application
    Default Credentials: GOOGLE_APPLICATION_CREDENTIALS or `gcloud auth application-default login`)."""

    type: Literal["bigquery"]
    project: str = Field(description="the Google Cloud project jobs run (and are billed) in")
    dataset: str = Field(description="the dataset of source tables")
    location: str | None = Field(default=None, description="where jobs run, e.g. EU or europe-west3")
    maximum_bytes_billed: int | None = Field(default=None, gt=0, description="the query budget: a job that "
                                             "would bill more fails, and a segment over it is refused by a dry run")

    @model_validator(mode="before")
    @classmethod
    def _no_literal_credentials(cls, data: Any) -> Any:
        return _refuse_literal_secrets(data, ("credentials", "keyfile", "keyfile_json", "private_key"))


Connection = Annotated[
    DuckDBConnection | PostgresConnection | SparkConnection | DbapiConnection | SnowflakeConnection
    | BigQueryConnection, Field(discriminator="type")
]


def _check_location(table: str | None, path: str | None, file_format: str | None) -> None:
    if (table is None) == (path is None):
        raise ValueError("give exactly one of `table` or `path`")
    if file_format and not path:
        raise ValueError("`format` applies only to a `path` source")


class SourceLocation(Strict):
    """Where a source is for one profile (`sources.NAME.profiles.PROFILE`): a table or files."""

    table: str | None = None
    path: str | None = None
    format: Literal["csv", "parquet"] | None = None

    @model_validator(mode="after")
    def _one_location(self) -> SourceLocation:
        _check_location(self.table, self.path, self.format)
        return self


class SourceTime(Strict):
    """When a source's rows became known, so a segment evaluated as of D reads only what was known
    at the end of D (docs/point-in-time.md). Exactly one of: `event`, `valid_from` + `valid_to`
    (slowly changing, `valid_to` exclusive, NULL = still valid), or `snapshot`."""

    event: str | None = Field(default=None, description="a row is known from this date/timestamp column on")
    valid_from: str | None = Field(default=None, description="start of a version's validity (inclusive)")
    valid_to: str | None = Field(default=None, description="end of a version's validity (exclusive; NULL = open)")
    snapshot: str | None = Field(default=None, description="the snapshot date: as of D only the last snapshot <= D")
    known_at: dict[str, str] = Field(default_factory=dict, description="column -> the date/timestamp column telling "
                                     "when its value became known; NULL as of earlier dates (e.g. converted_at)")
    current: list[str] = Field(default_factory=list, description="columns holding the latest value, not the value "
                               "at D: a segment reading them is flagged when evaluated as of a past date")

    @model_validator(mode="after")
    def _one_kind(self) -> SourceTime:
        kinds = [kind for kind, given in (("event", self.event), ("snapshot", self.snapshot),
                                          ("valid_from/valid_to", self.valid_from or self.valid_to)) if given]
        if len(kinds) != 1:
            raise ValueError("give exactly one of `event`, `snapshot` or `valid_from` with `valid_to`")
        if (self.valid_from is None) != (self.valid_to is None):
            raise ValueError("`valid_from` and `valid_to` go together")
        return self

    @property
    def columns(self) -> list[str]:
        """The time columns the filter reads."""
        named = [self.event, self.valid_from, self.valid_to, self.snapshot, *self.known_at.values()]
        return [column for column in named if column]


class Source(Strict):
    """A name segments use in `source('name')`: a table in the connection or data files, and
    optionally another location per profile (`profiles: {lake: {path: ...}}`), so one project
    runs on engines that read tables and engines that read files."""

    table: str | None = None
    path: str | None = None
    format: Literal["csv", "parquet"] | None = None
    columns: dict[str, str] | None = None
    unique: list[str | list[str]] = Field(default_factory=list, description="keys of the source for the "
                                          "determinism check: a column, or a list of columns unique together; "
                                          "entity keys of population sources count already")
    description: str = ""
    pii: dict[str, str] = Field(default_factory=dict, description="column -> category (email, name, ip, ...)")
    sensitive: dict[str, str] = Field(default_factory=dict,
                                      description="column -> protected category (gender, age, health, ...)")
    profiles: dict[str, SourceLocation] = Field(
        default_factory=dict, description="profile -> where this source is when `--target PROFILE` runs")
    time: SourceTime | None = Field(default=None, description="when rows became known, for evaluations as of a "
                                    "date (docs/point-in-time.md)")
    static: bool = Field(default=False, description="the rows do not change over time (a lookup table): no "
                         "point-in-time filter and no warning")

    @property
    def timeless(self) -> bool:
        """Neither time semantics nor `static: true`: as-of evaluations cannot be trusted."""
        return self.time is None and not self.static

    def at(self, profile: str) -> Source:
        """This source as the profile sees it (its own location unless the profile names one)."""
        location = self.profiles.get(profile)
        if location is None:
            return self
        return self.model_copy(update={"table": location.table, "path": location.path, "format": location.format})

    @model_validator(mode="after")
    def _one_location(self) -> Source:
        _check_location(self.table, self.path, self.format)
        if self.time is not None and self.static:
            raise ValueError("a source is either `static: true` or has `time:`, not both")
        return self

    @property
    def file_format(self) -> str | None:
        if self.path is None:
            return None
        if self.format:
            return self.format
        return "parquet" if self.path.lower().endswith(".parquet") else "csv"


class Entity(Strict):
    """What a segment's members are: accounts, users, ... keyed by one column, or by several
    together (`key: [order_id, line_no]`, docs/entities.md)."""

    key: str | list[str] = Field(description="the key column, or a list of columns unique together")
    source: str | None = Field(default=None, description="source holding the whole population")
    parent: str | None = None
    parent_key: str | None = Field(
        default=None, description="column of `source` holding the parent's key"
    )
    description: str = ""

    @field_validator("key", mode="before")
    @classmethod
    def _key_columns_are_distinct(cls, key: object) -> str | list[str]:
        if isinstance(key, str):
            return key
        if not isinstance(key, list) or not all(isinstance(column, str) for column in key):
            raise ValueError("an entity key is a column name, or a list of column names")
        if not key:
            raise ValueError("an entity key needs at least one column")
        seen: set[str] = set()
        for column in key:
            if column.lower() in seen:
                raise ValueError(f"key column `{column}` is listed twice")
            seen.add(column.lower())
        return key[0] if len(key) == 1 else key

    @property
    def key_columns(self) -> tuple[str, ...]:
        """The key's columns in order: one for most entities, several for a composite key."""
        return (self.key,) if isinstance(self.key, str) else tuple(self.key)

    @property
    def composite(self) -> bool:
        return len(self.key_columns) > 1

    def single_key(self, entity: str, use: str, location: Location | None = None) -> str:
        """The one key column, for a feature that needs one; a composite key is refused, naming
        the entity and what to do."""
        if isinstance(self.key, str):
            return self.key
        raise ConfigError(f"{use} needs a one-column entity key; entity `{entity}` is keyed by "
                          f"({', '.join(self.key)})", location,
                          hint="use it on the parent entity (rollup() a segment up to it), or an entity "
                               "keyed by one column")


class DataTests(Strict):
    """Checks on a segment's members, declared in `config(tests={...})` and run by `segsql test`."""

    min_size: int | None = Field(default=None, ge=0)
    max_size: int | None = Field(default=None, ge=0)
    max_share: float | None = Field(default=None, ge=0, le=1)
    unique: list[str] = Field(default_factory=list)
    not_null: list[str] = Field(default_factory=list)
    expect: list[str] = Field(default_factory=list, description="SQL conditions every member row must meet")


class SegmentConfig(Strict):
    """What a segment file declares in `{{ config(...) }}`."""

    entity: str
    description: str = ""
    owner: str = ""
    tags: list[str] = Field(default_factory=list)
    protected_use: str = Field(default="", description="why filtering on a protected attribute is justified")
    export_columns: list[str] = Field(
        default_factory=list, description="output columns `segsql export` may send besides the key (data minimisation)")
    duplicates: Literal["error", "dedupe"] = Field(
        default="error", description="duplicate or NULL keys in the output: fail the run, or keep one row per key")
    tests: DataTests | None = None

    @field_validator("tags")
    @classmethod
    def _tags_are_names(cls, tags: list[str]) -> list[str]:
        for tag in tags:
            if not tag or not re.match(r"^[\w.-]+$", tag):
                raise ValueError(f"tag {tag!r} must be a word (letters, digits, _ . -)")
        return tags


PROTECTED_DEFAULT = ["gender", "sex", "age", "birth_date", "date_of_birth", "birthday", "ethnicity", "race",
                     "religion", "health", "disability", "nationality", "citizenship", "sexual_orientation",
                     "pregnancy", "marital_status"]


class Privacy(Strict):
    """GDPR defaults: which attributes are protected, and whether using them is an error."""

    protected_attributes: list[str] = Field(default_factory=lambda: list(PROTECTED_DEFAULT))
    strict: bool = False
    erasure_salt_env: str | None = Field(default=None, description="env var with the salt for erasure records")
    consent: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="purpose -> entity -> boolean column of the entity's source that records consent")
    history_retention_months: int | None = Field(
        default=None, ge=1, description="purge history stays that ended longer ago than this, on every run")


class Hook(Strict):
    """After a successful run, send the entered/exited keys of watched segments to a command
    (JSON on stdin) or a webhook (JSON POST). Failures are retried and reported, never rolled back."""

    name: str = ""
    segments: list[str] = Field(min_length=1, description="watched segments")
    command: list[str] | str | None = Field(default=None, description="argv list, or a string split like a shell")
    url: str | None = None
    token_env: str | None = Field(default=None, description="env var with a bearer token for the webhook")
    retries: int = Field(default=2, ge=0, le=10)
    backoff_seconds: float = Field(default=1.0, ge=0, le=60)
    timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    max_keys: int = Field(default=10_000, ge=0, description="keys sent per list; counts are always complete")
    only_changes: bool = Field(default=True, description="skip the call when no watched segment changed")

    @model_validator(mode="after")
    def _one_target(self) -> Hook:
        if (self.command is None) == (self.url is None):
            raise ValueError("give exactly one of `command` or `url`")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError("`url` must start with http:// or https://")
        return self

    @property
    def label(self) -> str:
        if self.name or self.url:
            return self.name or self.url or ""
        return " ".join(self.command) if isinstance(self.command, list) else str(self.command)


class SegmentValidation(Strict):
    """Thresholds for `segsql validate-segments` (the field's criteria for a good segment)."""

    min_size: int = Field(default=30, ge=0)
    min_share: float = Field(default=0.005, ge=0, le=1)
    target_metrics: list[str] = Field(default_factory=list)
    min_measured_share: float = Field(default=0.8, ge=0, le=1)
    reachable: dict[str, str] = Field(default_factory=dict, description="entity -> proportion metric")
    min_reachable_share: float = Field(default=0.5, ge=0, le=1)
    max_size_change: float = Field(default=0.3, ge=0, description="size change between runs (without history)")
    min_jaccard: float = Field(default=0.7, ge=0, le=1,
                               description="members kept between the last two runs (Jaccard) for `stable`")


class Limits(Strict):
    """Budgets for untrusted segment files (docs/security.md): rendering, size and query time."""

    render_seconds: float = Field(default=10.0, gt=0, description="CPU seconds of rendering one segment")
    rendered_bytes: int = Field(default=20_000_000, gt=0, description="characters of rendered SQL per segment")
    template_value_bytes: int = Field(default=5_000_000, gt=0,
                                      description="largest string or list a template may build (`*`, `+`, ...)")
    loop_iterations: int = Field(default=1_000_000, gt=0, description="all {% for %} iterations of one render")
    segment_bytes: int = Field(default=10_000_000, gt=0, description="size of a segment file")
    nesting_depth: int = Field(default=200, gt=0, description="parentheses/subqueries nested in one segment")
    query_seconds: float = Field(default=600.0, gt=0, description="statement timeout of segment queries")


class DbtTarget(Strict):
    """The dbt artifacts one profile reads (`dbt.profiles.PROFILE`): those of the dbt target built
    on that profile's warehouse, e.g. `dbt docs generate --target pg --target-path target-pg`."""

    target: str | None = Field(default=None, description="the dbt target built on this profile's warehouse")
    target_path: str | None = Field(default=None, description="its artifact folder inside project_dir")
    manifest: str | None = Field(default=None, description="path of its manifest.json (instead of target_path)")
    catalog: str | None = Field(default=None, description="path of its catalog.json (instead of target_path)")


class DbtConfig(Strict):
    """A dbt project whose models, seeds, snapshots and sources segments read (docs/dbt.md):
    its `target/manifest.json` and `target/catalog.json`, read as JSON (dbt is not imported)."""

    project_dir: str | None = Field(default=None, description="the dbt project folder (holding dbt_project.yml), "
                                    "relative to this project")
    target: str | None = Field(default=None, description="the dbt target the artifacts were generated for; "
                               "checked against what the artifacts record")
    target_path: str = Field(default="target", description="dbt's artifact folder inside project_dir")
    manifest: str | None = Field(default=None, description="path of manifest.json (instead of project_dir)")
    catalog: str | None = Field(default=None, description="path of catalog.json (instead of project_dir)")
    profiles: dict[str, DbtTarget] = Field(
        default_factory=dict, description="profile -> the dbt target (and its artifacts) built on that "
        "profile's warehouse, when `--target PROFILE` runs; other profiles read the artifacts above")

    @model_validator(mode="after")
    def _where(self) -> DbtConfig:
        if self.project_dir is None and (self.manifest is None or self.catalog is None):
            raise ValueError("give `project_dir`, or both `manifest` and `catalog`")
        for name, chosen in self.profiles.items():
            if (chosen.manifest is None) != (chosen.catalog is None):
                raise ValueError(f"profiles.{name}: give both `manifest` and `catalog`, or neither")
            if self.project_dir is None and chosen.manifest is None:
                raise ValueError(f"profiles.{name}: without `project_dir`, give its `manifest` and `catalog`")
        return self

    def at(self, profile: str | None) -> DbtConfig:
        """The artifacts `--target PROFILE` reads: the profile's own target, else these."""
        chosen = self.profiles.get(profile or "")
        if chosen is None:
            return self
        named = {**chosen.model_dump(exclude_none=True), "target": chosen.target}  # another folder's target is not ours
        if chosen.manifest is None:  # its own folder of project_dir, not the default files
            named.update({"manifest": None, "catalog": None})
        return self.model_copy(update=named)


class ProjectConfig(Strict):
    """The whole of segsql.yml."""

    name: str = Field(default="segsql_project", description="the project's name (shown in outputs and payloads)")
    dialect: Literal[DIALECTS] = Field(default="duckdb", description="the SQL dialect segments are written in")  # type: ignore[valid-type]
    as_of: dt.date | None = Field(default=None, description="the evaluation date when no --as-of is given "
                                  "(for a project on historical data); default today")
    connection: Connection = Field(default_factory=DuckDBConnection,
                                   description="where segments run (type: duckdb, postgres, spark, snowflake, "
                                   "bigquery, dbapi)")
    profiles: dict[str, Connection] = Field(default_factory=dict, description="named connections for --target")
    sources: dict[str, Source] = Field(default_factory=dict,
                                       description="the tables segments read, by the name source() uses")
    entities: dict[str, Entity] = Field(default_factory=dict, description="what segments are sets of, with their key")
    vars: dict[str, Any] = Field(default_factory=dict,
                                 description="values var() reads; --var overrides take their type")
    segment_validation: SegmentValidation = Field(default_factory=SegmentValidation)
    privacy: Privacy = Field(default_factory=Privacy)
    hooks: list[Hook] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)
    determinism: Literal["warn", "error", "off"] = Field(
        default="warn", description="constructs that can give other members on a rerun or another engine "
        "(ties in ROW_NUMBER/NTILE/LIMIT, ANY_VALUE, random(), now()): a warning, an error, or not checked")
    break_ties: bool = Field(
        default=False, description="append the key columns (or the GROUP BY items) as the last ORDER BY terms "
        "of a ranking window or LIMIT whose order can tie, instead of warning: the same members on every "
        "engine and rerun, ties broken by the smallest key")

    @field_validator("determinism", mode="before")
    @classmethod
    def _off_is_false_in_yaml(cls, value: Any) -> Any:
        return "off" if value is False else value  # YAML reads a bare `off` as false

    point_in_time: Literal["warn", "error", "off"] = Field(
        default="warn", description="a segment reading a source that declares neither `time:` nor `static: true`, "
        "or an open-ended date window on one: a warning, an error, or not checked")

    @field_validator("point_in_time", mode="before")
    @classmethod
    def _pit_off_is_false_in_yaml(cls, value: Any) -> Any:
        return "off" if value is False else value

    collation: Literal["warn", "binary", "off"] = Field(
        default="warn", description="text comparisons and orders (`name >= 'A'`, MIN(name), ORDER BY name "
        "in a window or before LIMIT) on a target whose collation is not byte order (a Postgres database "
        "created with an ICU or en_US locale): `warn` at validate, `binary` compiles them with the "
        "target's byte-order collation (COLLATE \"C\") so members match DuckDB and Spark, `off`")

    @field_validator("collation", mode="before")
    @classmethod
    def _collation_off_is_false_in_yaml(cls, value: Any) -> Any:
        return "off" if value is False else value

    udfs: list[str] = Field(default_factory=list, description="trusted functions segments may call beyond the "
                            "built-in allowlist (your warehouse's UDFs)")
    dbt: DbtConfig | None = Field(default=None, description="a dbt project whose nodes segments read with dbt() and "
                                  "dbt_source() (docs/dbt.md)")
    _dbt: Any = PrivateAttr(default=None)  # config.dbt.DbtArtifacts, set by with_dbt_sources
    _profile: str | None = PrivateAttr(default=None)  # the profile of `--target`, set by for_profile

    @property
    def dbt_artifacts(self) -> Any:
        """The dbt nodes read from the artifacts (`segsql.config.dbt.DbtArtifacts`), or None."""
        return self._dbt

    @property
    def profile(self) -> str | None:
        """The profile this config runs (`--target PROFILE`), None for `connection:`."""
        return self._profile


def load_project_config(root: Path, dbt_artifacts: tuple[Path, Path] | None = None,
                        profile: str | None = None) -> ProjectConfig:
    """Read `root/segsql.yml` into a validated ProjectConfig, errors located at the key.
    `dbt_artifacts` (manifest.json, catalog.json) replaces the files `dbt:` names, e.g. the
    artifacts of another revision for `segsql diff`; `profile` (the `--target` that will run)
    picks the dbt target of `dbt.profiles` and the relation names its warehouse reads."""
    path = root / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(
            f"no {CONFIG_FILE} in {root}", Location(str(root)),
            "run `segsql init DIR` to create a project, or pass --project DIR",
        )
    located = read_yaml_file(path, CONFIG_FILE)
    if not isinstance(located.data, dict):
        raise ConfigError("segsql.yml must be a mapping of keys", located.locate(()))
    config: ProjectConfig = validate_model(ProjectConfig, located.data, located)
    if config.dbt is not None:  # before the checks: entities and consent may name dbt nodes
        config = with_dbt_sources(config, root, located, dbt_artifacts, profile)
    _check_references(config, located)
    return config


def with_dbt_sources(config: ProjectConfig, root: Path, located: LocatedYaml,
                     paths: tuple[Path, Path] | None = None, profile: str | None = None) -> ProjectConfig:
    """`config` plus a source per node of its dbt project (`dbt:NAME`, `dbt:SOURCE.TABLE`) as the
    warehouse of `profile` (default: `connection:`) names it; a node's `meta: {segsql: {...}}`
    adds source keys such as `static: true` or `time:`."""
    from segsql.config import dbt  # reads JSON artifacts: only projects that use dbt load it

    assert config.dbt is not None
    where = located.locate(("dbt", "profiles", profile) if profile in config.dbt.profiles else ("dbt",))
    settings = config.dbt.at(profile)
    manifest, catalog = paths or dbt.artifact_paths(root, settings.project_dir, settings.target_path,
                                                    settings.manifest, settings.catalog)
    artifacts = dbt.read_artifacts(manifest, catalog, where, settings.target, settings.project_dir)
    connection = config.profiles.get(profile or "", config.connection)
    warehouse = str(getattr(connection, "dialect", connection.type))  # a dbapi connection names its dialect
    sources = dict(config.sources)
    for name, node in artifacts.by_segsql_name().items():
        extra = node.meta.get("segsql") or {}
        if not isinstance(extra, dict):
            raise ConfigError(f"dbt node `{node.unique_id}`: meta.segsql must be a mapping", where,
                              f"fix it in {node.path}")
        fields = {**dbt.source_fields(node, config.dialect, warehouse, artifacts.adapter_type), **extra}
        sources[name] = validate_model(Source, fields, None, Location(node.path or str(manifest)))
    combined = config.model_copy(update={"sources": sources})
    combined._dbt = artifacts
    return combined


def _check_references(config: ProjectConfig, located: LocatedYaml) -> None:
    """Names must be identifiers and every entity must point at things that exist."""
    for kind in ("sources", "entities"):
        for name in located.data.get(kind) or {}:  # as written in segsql.yml (dbt nodes are named `dbt:x`)
            if not NAME_PATTERN.match(name):
                raise ConfigError(f"{kind[:-1]} name `{name}` must be a plain identifier",
                                  located.locate((kind, name)), "use letters, digits and _")
    for name, entity in config.entities.items():
        if entity.source is not None and entity.source not in config.sources:
            raise ConfigError(f"entity `{name}`: unknown source `{entity.source}`",
                              located.locate(("entities", name, "source")),
                              did_you_mean(entity.source, config.sources))
        if entity.parent is not None and entity.parent not in config.entities:
            raise ConfigError(f"entity `{name}`: unknown parent entity `{entity.parent}`",
                              located.locate(("entities", name, "parent")),
                              did_you_mean(entity.parent, config.entities))
        if entity.parent is not None and config.entities[entity.parent].composite:
            raise ConfigError(f"entity `{name}`: parent `{entity.parent}` has a composite key; a parent needs "
                              "one key column (`parent_key` names the column holding it)",
                              located.locate(("entities", name, "parent")),
                              "make the parent an entity keyed by one column")
        if entity.parent is not None and entity.source is None:
            raise ConfigError(f"entity `{name}` has a parent but no `source` mapping it to one",
                              located.locate(("entities", name)),
                              "add `source:` naming the table that holds both keys")
    _check_consent(config, located)
    _check_column_types(config, located)
    _check_source_profiles(config, located)
    _check_dbt_profiles(config, located)
    _check_time_columns(config, located)


def _check_time_columns(config: ProjectConfig, located: LocatedYaml) -> None:
    """Time columns of a source with declared columns must be among them (a typo would otherwise
    only fail when a query runs)."""
    for name, source in config.sources.items():
        if source.time is None or source.columns is None:
            continue
        declared = {column.lower() for column in source.columns}
        named = [*source.time.columns, *source.time.known_at, *source.time.current]
        for column in named:
            if column.lower() not in declared:
                raise ConfigError(f"source `{name}`: time column `{column}` is not one of its columns",
                                  located.locate(("sources", name, "time")),
                                  did_you_mean(column, source.columns) or "list it under columns:")


COMMON_TYPES = ("BIGINT", "INTEGER", "INT", "SMALLINT", "DOUBLE", "FLOAT", "REAL", "DECIMAL", "NUMERIC", "VARCHAR",
                "TEXT", "STRING", "BOOLEAN", "DATE", "TIMESTAMP", "TIMESTAMPTZ", "TIME", "INTERVAL", "JSON", "UUID")


def _check_column_types(config: ProjectConfig, located: LocatedYaml) -> None:
    """A declared column type that is no type of the project's dialect but close to a common one
    is a typo (`INTEGR`); other unknown names are user-defined types (citext, enums) and pass."""
    import sqlglot  # here, not at the top: `import segsql` loads this module and should stay light
    from sqlglot import exp

    checked: dict[str, list[str]] = {}  # each distinct type once: sources repeat a few types many times

    for source_name, source in config.sources.items():
        if source_name.startswith("dbt:"):
            continue  # types from dbt's catalog.json are the warehouse's own
        for column, kind in (source.columns or {}).items():
            if kind is None:
                continue
            if kind not in checked:
                try:
                    exp.DataType.build(kind, dialect=config.dialect)
                    checked[kind] = []
                except (sqlglot.errors.ParseError, sqlglot.errors.TokenError, ValueError):
                    checked[kind] = difflib.get_close_matches(kind.split("(")[0].upper(), COMMON_TYPES, n=1,
                                                              cutoff=0.85)
            close = checked[kind]
            if close:  # a near miss of a common type is a typo; anything else may be the database's own type
                raise ConfigError(f"source `{source_name}` column `{column}`: `{kind}` is not a {config.dialect} type",
                                  located.locate(("sources", source_name, "columns", column)),
                                  f"did you mean `{close[0]}`?")


def _check_source_profiles(config: ProjectConfig, located: LocatedYaml) -> None:
    """A source's per-profile location must name a profile of `profiles:`."""
    for name, source in config.sources.items():
        for profile in source.profiles:
            if profile not in config.profiles:
                raise ConfigError(f"source `{name}` names unknown profile `{profile}`",
                                  located.locate(("sources", name, "profiles", profile)),
                                  did_you_mean(profile, config.profiles) or "declare it under profiles:")


def _check_dbt_profiles(config: ProjectConfig, located: LocatedYaml) -> None:
    """A dbt target per profile must name a profile of `profiles:`."""
    for profile in config.dbt.profiles if config.dbt is not None else {}:
        if profile not in config.profiles:
            raise ConfigError(f"dbt names unknown profile `{profile}`", located.locate(("dbt", "profiles", profile)),
                              did_you_mean(profile, config.profiles) or "declare it under profiles:")


def for_profile(config: ProjectConfig, profile: str) -> ProjectConfig:
    """The config `--target PROFILE` runs: the profile's connection, each source's location there."""
    sources = {name: source.at(profile) for name, source in config.sources.items()}
    chosen = config.model_copy(update={"connection": config.profiles[profile], "sources": sources})
    chosen._profile = profile
    return chosen


def _check_consent(config: ProjectConfig, located: LocatedYaml) -> None:
    """Consent columns must belong to a declared entity that has a population source."""
    for purpose, columns in config.privacy.consent.items():
        if not NAME_PATTERN.match(purpose):
            raise ConfigError(f"consent purpose `{purpose}` must be a plain identifier",
                              located.locate(("privacy", "consent", purpose)), "e.g. marketing_email")
        for entity_name, column in columns.items():
            where = located.locate(("privacy", "consent", purpose, entity_name))
            entity = config.entities.get(entity_name)
            if entity is None:
                raise ConfigError(f"consent for `{purpose}`: unknown entity `{entity_name}`", where,
                                  did_you_mean(entity_name, config.entities))
            if entity.source is None:
                raise ConfigError(f"consent for `{purpose}`: entity `{entity_name}` has no `source`", where,
                                  "give the entity a source table holding the consent column")
            declared = config.sources[entity.source].columns
            if declared is not None and column.lower() not in {c.lower() for c in declared}:
                raise ConfigError(f"consent for `{purpose}`: source `{entity.source}` has no column `{column}`",
                                  where, did_you_mean(column, declared))


def validate_model(model: type[Strict], data: Any, located: LocatedYaml | None,
                   where: Location | None = None) -> Any:
    """Validate `data` against `model`; the first error names the key path and its location."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        keypath = tuple(part for part in first["loc"] if not _is_union_tag(part))
        location = located.locate(keypath) if located else where
        raise ConfigError(_describe(first, keypath), location) from None


def _is_union_tag(part: Any) -> bool:
    return isinstance(part, str) and part in ("duckdb", "postgres", "spark", "dbapi", "snowflake", "bigquery",
                                                    "function-after")


def _describe(error: Any, keypath: tuple[Any, ...]) -> str:
    key = ".".join(str(p) for p in keypath) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"unknown key `{key}`"
    if kind == "missing":
        return f"missing required key `{key}`"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"`{key}`: {message}"
