"""dbt-style selection: `name`, `tag:x`, `path:dir`, `+name` (with upstream), `name+`
(with downstream), `dbt:model` / `dbt:source.table` (every segment downstream of that dbt node:
reading it, or reading a segment that does); several selectors are a union; results come in
dependency order."""

from __future__ import annotations

from typing import TYPE_CHECKING

from segsql.errors import SegsqlError, SelectionError, did_you_mean

if TYPE_CHECKING:
    from segsql.compile.compiler import Compiler


def select_segments(compiler: Compiler, select: list[str], exclude: list[str], ordered: bool = True) -> list[str]:
    """Matching names; in dependency order when `ordered` (that renders every segment), else sorted."""
    names = sorted(compiler.segments)
    chosen = set(names) if not select else set().union(*(_match(compiler, s) for s in _split(select)))
    for selector in _split(exclude):
        chosen -= _match(compiler, selector)
    if not ordered:
        return [name for name in names if name in chosen]
    return [name for name in dependency_order(compiler, names) if name in chosen]


def _split(selectors: list[str]) -> list[str]:
    return [part for selector in selectors for part in selector.replace(",", " ").split()]


def _match(compiler: Compiler, selector: str) -> set[str]:
    upstream = selector.startswith("+")
    downstream = selector.endswith("+") and len(selector) > 1
    core = selector.strip("+")
    if core.startswith("tag:"):
        found = {n for n in compiler.segments if core[4:] in _tags(compiler, n)}
    elif core.startswith("path:"):
        prefix = core[5:].rstrip("/")
        found = {n for n, s in compiler.segments.items()
                 if s.shown_path == prefix or s.shown_path.startswith(prefix + "/")
                 or s.shown_path.removeprefix("segments_sql/").startswith(prefix)}
    elif core.startswith("dbt:"):
        found = _reading_dbt_node(compiler, core, selector)
    elif core in compiler.segments:
        found = {core}
    else:
        raise SelectionError(f"--select `{selector}` matches no segment", None,
                             did_you_mean(core, compiler.segments) or "use a name, tag:x, path:dir or +name")
    if not found:
        raise SelectionError(f"--select `{selector}` matches no segment", None,
                             "check the tag or path; `segsql list` shows them")
    result = set(found)
    if upstream:
        for name in found:
            result |= set(_upstream(compiler, name))
    if downstream:
        for name in compiler.segments:
            if set(_upstream(compiler, name)) & found:
                result.add(name)
    return result


def _reading_dbt_node(compiler: Compiler, node: str, selector: str) -> set[str]:
    """Segments that read dbt node `node` (`dbt:x`) directly or through their refs."""
    known = {name.lower(): name for name in compiler.config.sources if name.startswith("dbt:")}
    if node.lower() not in known:
        hint = did_you_mean(node, list(known.values())) if known else "add `dbt:` to segsql.yml (docs/dbt.md)"
        raise SelectionError(f"--select `{selector}`: no dbt node `{node.removeprefix('dbt:')}`", None, hint)
    wanted = known[node.lower()]
    direct = {name for name in compiler.segments if wanted in _sources(compiler, name)}
    return direct | {name for name in compiler.segments if set(_upstream(compiler, name)) & direct}


def _sources(compiler: Compiler, name: str) -> set[str]:
    try:
        return set(compiler.rendered(name).state.sources)
    except SegsqlError:
        return set()


def _tags(compiler: Compiler, name: str) -> list[str]:
    try:
        return compiler.compiled(name).config.tags
    except SegsqlError:
        try:
            rendered = compiler.rendered(name)
        except SegsqlError:
            return []
        return list((rendered.state.config or {}).get("tags", []))


def _refs(compiler: Compiler, name: str) -> list[str]:
    try:
        return sorted(compiler.rendered(name).state.refs)
    except SegsqlError:
        return []


def _upstream(compiler: Compiler, name: str) -> list[str]:
    seen: list[str] = []
    stack = list(_refs(compiler, name))
    while stack:
        ref = stack.pop()
        if ref not in seen and ref in compiler.segments:
            seen.append(ref)
            stack.extend(_refs(compiler, ref))
    return seen


def dependency_order(compiler: Compiler, names: list[str]) -> list[str]:
    """Names sorted so every segment comes after what it refs (ties by name)."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order or name in visiting:
            return
        visiting.add(name)
        for ref in _refs(compiler, name):
            if ref in compiler.segments:
                visit(ref)
        visiting.discard(name)
        order.append(name)

    for name in sorted(names):
        visit(name)
    return order
