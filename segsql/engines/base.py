"""The interface every engine adapter implements, with capability flags as data."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from segsql.catalog import Columns
from segsql.config import ProjectConfig, Source


@dataclass(frozen=True)
class Capabilities:
    """What an engine can do; callers branch on these flags, never on the engine's name."""

    transactional_ddl: bool
    reads_files: bool
    in_process: bool


class Engine(ABC):
    """One connection to one engine, for one project."""

    name: ClassVar[str]
    dialect: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    def __init__(self, config: ProjectConfig, root: Path, read_only: bool = False):
        self.config = config
        self.root = root
        self.read_only = read_only

    @abstractmethod
    def describe_source(self, name: str, source: Source) -> Columns | None:
        """Columns (lower-case name -> type) of a source, or None when it cannot be found."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
