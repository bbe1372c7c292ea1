"""Engine adapters, one per engine, chosen from a registry and imported lazily, with the storage
contract every engine writes runs into (storage.py, records.py, base.py's run stores).

`import segsql` imports no driver: an adapter module is imported only when a project connects,
and a missing driver raises an error with the exact `pip install` line.

Imports: `segsql.compile` (catalog, literals), `segsql.config`, `segsql.errors`. Adapters never
import each other.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from segsql.errors import EngineError

if TYPE_CHECKING:
    from segsql.config.models import ProjectConfig
    from segsql.engines.base import Engine

# connection type -> (module:class, driver module, pip install line)
REGISTRY: dict[str, tuple[str, str, str]] = {
    "duckdb": ("segsql.engines.duckdb:DuckDBEngine", "duckdb", "pip install duckdb"),
    "postgres": ("segsql.engines.postgres:PostgresEngine", "psycopg", "pip install 'segsql[postgres]'"),
    "spark": ("segsql.engines.spark:SparkEngine", "pyspark", "pip install 'segsql[spark]'"),
    "snowflake": ("segsql.engines.snowflake:SnowflakeEngine", "snowflake.connector",
                  "pip install 'segsql[snowflake]'"),
    "bigquery": ("segsql.engines.bigquery:BigQueryEngine", "google.cloud.bigquery", "pip install 'segsql[bigquery]'"),
    "dbapi": ("segsql.engines.dbapi:DbapiEngine", "", ""),  # the driver module comes from the profile
}


# Connection types whose engine reads `path:` sources (CSV/Parquet files); the others read tables.
# Data, so validation can tell without importing a driver (tests check it against each adapter).
FILE_READERS = frozenset({"duckdb", "spark"})


ENGINE_DIALECTS = {"duckdb": "duckdb", "postgres": "postgres", "spark": "spark", "snowflake": "snowflake",
                   "bigquery": "bigquery"}  # dbapi: its profile says


def engine_dialect(config: ProjectConfig) -> str:
    """The SQL dialect the configured connection runs (what `validate --target` compiles for)."""
    connection = config.connection
    return ENGINE_DIALECTS.get(connection.type) or str(getattr(connection, "dialect", config.dialect))


def file_sources_refused(config: ProjectConfig) -> list[str]:
    """The `path:` sources the configured connection cannot read."""
    if config.connection.type in FILE_READERS:
        return []
    return sorted(name for name, source in config.sources.items() if source.path is not None)


def connect(config: ProjectConfig, root: Path, read_only: bool = False) -> Engine:
    """Open the engine the project's connection names."""
    kind = config.connection.type
    target, driver, install = REGISTRY[kind]
    if kind == "dbapi":
        driver = config.connection.module  # type: ignore[union-attr]
        install = f"pip install the package that provides `{driver}`"
    try:
        importlib.import_module(driver)
    except ImportError:
        raise EngineError(f"the {kind} driver `{driver}` is not installed", None, f"run: {install}") from None
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        raise EngineError(f"the {kind} engine is not available in this version of segsql") from None
    engine_class: type[Engine] = getattr(module, class_name)
    return engine_class(config, root, read_only=read_only)
