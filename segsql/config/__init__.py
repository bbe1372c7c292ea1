"""Load: the project's configuration (segsql.yml, profiles, metrics files' YAML) as validated
models that keep each key's file, line and column, and the parsing of user options (as_of, vars).

Imports: `segsql.errors` only. Everything else may import this.
"""

# The dialect names every `dialect:` key and `--dialect` option accepts. Here rather than in
# models.py so that the CLI can list them in --help without importing pydantic.
DIALECTS = ("duckdb", "postgres", "snowflake", "bigquery", "spark", "trino", "redshift", "databricks")
