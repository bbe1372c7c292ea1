"""Compile many segments on several cores: forked workers inherit the compiler and compile a
share of the segments; results come back as plain data (errors rebuilt with their location).

Worth it only for large projects: a worker recompiles the upstream refs it needs.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING, Any

from segsql import errors

if TYPE_CHECKING:
    from segsql.compile.compiler import Compiler

MIN_SEGMENTS_PER_WORKER = 100

Work = Callable[[Any, str], dict[str, Any]]


def worker_count(segments: int) -> int:
    """How many processes pay off: one per core, each with enough segments."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, segments // MIN_SEGMENTS_PER_WORKER))


_inherited: list[Compiler] = []  # the parent's compiler, in a forked worker (set by its initializer)


def run_parallel(compiler: Compiler, names: list[str], work: Work,
                 workers: int) -> dict[str, dict[str, Any] | errors.SegsqlError]:
    """`work(compiler, name)` for every name, in `workers` forked processes."""
    chunks = [names[i::workers] for i in range(workers)]
    context = multiprocessing.get_context("fork")
    results: dict[str, dict[str, Any] | errors.SegsqlError] = {}
    compiler.catalog  # noqa: B018 (built once here, so workers do not each connect to describe sources)
    # Fork passes initargs without pickling: each worker starts with the parent's compiler.
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_inherit,
                             initargs=(compiler,)) as pool:
        futures = [pool.submit(_compile_chunk, chunk, work) for chunk in chunks]
        for future in futures:
            for name, (ok, payload) in future.result().items():
                results[name] = payload if ok else _rebuild_error(payload)
    return results


def _inherit(compiler: Compiler) -> None:
    _inherited.append(compiler)


def _compile_chunk(names: list[str], work: Work) -> dict[str, tuple[bool, Any]]:
    compiler = _inherited[0]
    out: dict[str, tuple[bool, Any]] = {}
    for name in names:
        try:
            out[name] = (True, work(compiler, name))
        except errors.SegsqlError as error:
            out[name] = (False, _error_data(error))
    return out


def _error_data(error: errors.SegsqlError) -> dict[str, Any]:
    location = error.location
    return {"kind": type(error).__name__, "message": error.message, "hint": error.hint,
            "location": None if location is None else (location.path, location.line, location.col)}


def _rebuild_error(data: dict[str, Any]) -> errors.SegsqlError:
    kind = _error_classes().get(data["kind"], errors.SegsqlError)
    location = errors.Location(*data["location"]) if data["location"] else None
    error: errors.SegsqlError = kind(data["message"], location, data["hint"])
    return error


def _error_classes() -> dict[str, type[errors.SegsqlError]]:
    """Every SegsqlError subclass by name (BudgetError, HelperError, ... live outside errors.py)."""
    found: dict[str, type[errors.SegsqlError]] = {}
    pending: list[type[errors.SegsqlError]] = [errors.SegsqlError]
    while pending:
        cls = pending.pop()
        found[cls.__name__] = cls
        pending.extend(cls.__subclasses__())
    return found
