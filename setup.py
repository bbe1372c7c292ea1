"""Package discovery for setuptools; everything else about the distribution is in pyproject.toml.

The repository keeps `magics/` and `segments_sql/` at the top level, but they install inside the
`segsql` namespace: `magics/` as the package `segsql.magics`, `segments_sql/` as the starter
library's data folder `segsql/starter/segments_sql/` (files matched by the package-data globs in
pyproject.toml). `packages.find` in pyproject.toml cannot rename what it finds, so the names are
found here, never listed by hand.
"""

from setuptools import find_namespace_packages, find_packages, setup

MAGICS, LIBRARY = "segsql.magics", "segsql.starter.segments_sql"


def inside(package: str, names: list[str]) -> list[str]:
    return [package, *(f"{package}.{name}" for name in names)]


setup(
    packages=[*find_packages(include=["segsql", "segsql.*"]),
              *inside(MAGICS, find_packages("magics")),
              # the library's folders hold no __init__.py: they are data-only namespace packages
              *inside(LIBRARY, find_namespace_packages("segments_sql", exclude=["*__pycache__*"]))],
    package_dir={MAGICS: "magics", LIBRARY: "segments_sql"},
)
