"""dbt-style selection: `name`, `tag:x`, `path:dir`, `+name` (with upstream), `name+`
(with downstream); several selectors are a union; results come in dependency order."""

from __future__ import annotations

from typing import TYPE_CHECKING

from segsql.errors import SegsqlError, SelectionError, did_you_mean

if TYPE_CHECKING:
    from segsql.project import Project


def select_segments(project: Project, select: list[str], exclude: list[str], ordered: bool = True) -> list[str]:
    """Matching names; in dependency order when `ordered` (that renders every segment), else sorted."""
    names = sorted(project.segments)
    chosen = set(names) if not select else set().union(*(_match(project, s) for s in _split(select)))
    for selector in _split(exclude):
        chosen -= _match(project, selector)
    if not ordered:
        return [name for name in names if name in chosen]
    return [name for name in dependency_order(project, names) if name in chosen]


def _split(selectors: list[str]) -> list[str]:
    return [part for selector in selectors for part in selector.replace(",", " ").split()]


def _match(project: Project, selector: str) -> set[str]:
    upstream = selector.startswith("+")
    downstream = selector.endswith("+") and len(selector) > 1
    core = selector.strip("+")
    if core.startswith("tag:"):
        found = {n for n in project.segments if core[4:] in _tags(project, n)}
    elif core.startswith("path:"):
        prefix = core[5:].rstrip("/")
        found = {n for n, s in project.segments.items()
                 if s.shown_path == prefix or s.shown_path.startswith(prefix + "/")
                 or s.shown_path.removeprefix("segments_sql/").startswith(prefix)}
    elif core in project.segments:
        found = {core}
    else:
        raise SelectionError(f"--select `{selector}` matches no segment", None,
                             did_you_mean(core, project.segments) or "use a name, tag:x, path:dir or +name")
    if not found:
        raise SelectionError(f"--select `{selector}` matches no segment", None,
                             "check the tag or path; `segsql list` shows them")
    result = set(found)
    if upstream:
        for name in found:
            result |= set(_upstream(project, name))
    if downstream:
        for name in project.segments:
            if set(_upstream(project, name)) & found:
                result.add(name)
    return result


def _tags(project: Project, name: str) -> list[str]:
    try:
        return project.compiler.compiled(name).config.tags
    except SegsqlError:
        try:
            rendered = project.compiler.rendered(name)
        except SegsqlError:
            return []
        return list((rendered.state.config or {}).get("tags", []))


def _refs(project: Project, name: str) -> list[str]:
    try:
        return sorted(project.compiler.rendered(name).state.refs)
    except SegsqlError:
        return []


def _upstream(project: Project, name: str) -> list[str]:
    seen: list[str] = []
    stack = list(_refs(project, name))
    while stack:
        ref = stack.pop()
        if ref not in seen and ref in project.segments:
            seen.append(ref)
            stack.extend(_refs(project, ref))
    return seen


def dependency_order(project: Project, names: list[str]) -> list[str]:
    """Names sorted so every segment comes after what it refs (ties by name)."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order or name in visiting:
            return
        visiting.add(name)
        for ref in _refs(project, name):
            if ref in project.segments:
                visit(ref)
        visiting.discard(name)
        order.append(name)

    for name in sorted(names):
        visit(name)
    return order
