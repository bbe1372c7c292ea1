"""The version of segsql (one place; the package metadata and `segsql --version` read it)."""

__version__ = "0.1.0"
