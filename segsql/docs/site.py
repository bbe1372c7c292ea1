"""`segsql docs`: a static HTML catalog of the project's segments (no server, no external assets).

index.html lists every segment and draws the whole lineage graph; segments/NAME.html shows one
segment: description, owner, tags, entity, template and compiled SQL, its upstream and
downstream refs as a lineage graph, the source columns it reads (sqlglot column lineage, with
personal data marked), the last size and size history, and its tests. No member data appears:
only counts, and SQL text is scrubbed of anything that looks like an email address or phone number.
The site is built in a temporary folder and swapped in, so a reader never sees half a site.
"""

from __future__ import annotations

import datetime as dt
import html
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from segsql.compile.lineage import segment_lineage
from segsql.docs.svg import lineage_svg, size_chart
from segsql.engines import storage
from segsql.errors import SegsqlError, UsageError
from segsql.measure.testing import unit_test_names
from segsql.privacy.masking import scrub

if TYPE_CHECKING:
    from segsql.compile.compiler import Compiler
    from segsql.engines.base import Engine

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f7f8fa}
header{background:#1d2330;color:#fff;padding:12px 24px}header a{color:#9cc3ff}
main{padding:16px 24px;max-width:1200px}h1{font-size:22px;margin:0}h2{font-size:17px;margin:22px 0 6px}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #dde1e8;padding:4px 8px;text-align:left;
vertical-align:top}th{background:#eef1f6}pre{background:#fff;border:1px solid #dde1e8;padding:10px;overflow:auto}
.tag{display:inline-block;background:#e4ecfb;border-radius:8px;padding:0 6px;margin-right:4px;font-size:12px}
.pii{color:#a4262c;font-weight:600}.muted{color:#6b7280}.err{color:#a4262c}
svg text{font:12px system-ui,sans-serif}svg .node rect{fill:#fff;stroke:#5b6b8c}
svg .node.source rect{fill:#eef1f6}svg .node.dbt rect{fill:#fdf0e8;stroke:#c8643b}
svg .node.current rect{fill:#dbe8ff;stroke:#1a56db;stroke-width:2}
svg .edge{fill:none;stroke:#8792a8;stroke-width:1.4}
#filter{padding:4px 8px;width:280px;margin-bottom:8px}
"""
FILTER_SCRIPT = """
document.getElementById('filter').addEventListener('input', function (event) {
  var needle = event.target.value.toLowerCase();
  document.querySelectorAll('#segments tbody tr').forEach(function (row) {
    row.style.display = row.textContent.toLowerCase().indexOf(needle) >= 0 ? '' : 'none';
  });
});
"""


@dataclass
class SegmentDoc:
    name: str
    path: str
    entity: str = ""
    description: str = ""
    owner: str = ""
    tags: list[str] = field(default_factory=list)
    template: str = ""
    compiled: str = ""
    refs: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    reads: dict[str, list[str]] = field(default_factory=dict)
    pii_read: dict[str, str] = field(default_factory=dict)
    pii_output: dict[str, str] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)  # output column -> its dbt column's description
    columns: dict[str, str | None] = field(default_factory=dict)
    unit_tests: list[str] = field(default_factory=list)
    data_tests: dict[str, Any] = field(default_factory=dict)
    sizes: list[tuple[dt.datetime, int]] = field(default_factory=list)
    error: str | None = None


def build_site(compiler: Compiler, engine: Engine | None, out: Path) -> Path:
    """Write the catalog into `out` (replacing it); return the index page. Without an engine
    (none reachable) the catalog has no size history."""
    out = _checked_output(out.resolve())
    docs = [_document(compiler, name) for name in sorted(compiler.segments)]
    _attach_sizes(compiler, engine, docs)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".segsql-docs-", dir=out.parent))
    except OSError as error:
        raise UsageError(f"cannot write the docs next to {out}: {error.strerror}", None, "pick another --out") from None
    try:
        (staging / MARKER).write_text("built by segsql docs; the folder is replaced on every build\n")
        (staging / "segments").mkdir()
        (staging / "index.html").write_text(_index(compiler, docs), encoding="utf-8")
        downstream = _downstream(docs)
        for doc in docs:
            page = _segment_page(compiler, doc, docs, downstream)
            (staging / "segments" / f"{doc.name}.html").write_text(page, encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out / "index.html"


MARKER = ".segsql-docs"


def _checked_output(out: Path) -> Path:
    """The site replaces `out`: only a folder segsql built (or an empty one, or none) may be replaced."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file", None, "give a folder for the site, e.g. target/docs")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
        raise UsageError(f"--out {out} holds files segsql did not write; the site would replace them", None,
                         "give an empty or new folder, e.g. target/docs")
    return out


def _document(compiler: Compiler, name: str) -> SegmentDoc:
    segment = compiler.segments[name]
    doc = SegmentDoc(name, segment.shown_path)
    try:
        doc.template = scrub(segment.read())
        compiled = compiler.compiled(name)
    except SegsqlError as error:
        doc.error = scrub(str(error))
        return doc
    config = compiled.config
    doc.entity, doc.description, doc.owner, doc.tags = compiled.entity, config.description, config.owner, config.tags
    doc.compiled = scrub(compiler.tree(name).sql(dialect=compiler.config.dialect, pretty=True))
    doc.refs, doc.sources, doc.columns = compiled.refs, compiled.sources, dict(compiled.columns)
    lineage = segment_lineage(compiler, name)
    doc.reads, doc.pii_read, doc.pii_output = lineage.reads, lineage.pii_read(compiler), lineage.pii_output(compiler)
    doc.descriptions = lineage.descriptions(compiler)
    try:
        doc.unit_tests = unit_test_names(compiler, name)
    except SegsqlError as error:
        doc.unit_tests = [f"(unreadable: {scrub(str(error))})"]
    if config.tests is not None:
        doc.data_tests = config.tests.model_dump(exclude_defaults=True)
    return doc


def _attach_sizes(compiler: Compiler, engine: Engine | None, docs: list[SegmentDoc]) -> None:
    """Size after each successful run (oldest first), when the engine has run records."""
    if engine is None:
        return
    try:
        if not engine.table_exists(storage.table("run_segments")):
            return
        query = (exp.select(exp.column("segment", "s"), exp.column("started_at", "r"),
                            exp.column("row_count", "s"))
                 .from_(storage.table("run_segments").as_("s"))
                 .join(storage.table("runs").as_("r"), on=exp.column("run_id", "r").eq(exp.column("run_id", "s")))
                 .where(exp.column("status", "s").like(exp.Literal.string("success%")))
                 .order_by(exp.column("started_at", "r")))
        rows = engine.fetchall(query)
    except SegsqlError:
        return  # no run records readable: a catalog without sizes is still a catalog
    by_name = {doc.name: doc for doc in docs}
    for segment, started, size in rows:
        if segment in by_name and size is not None:
            by_name[segment].sizes.append((started, int(size)))


def _downstream(docs: list[SegmentDoc]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {doc.name: [] for doc in docs}
    for doc in docs:
        for ref in doc.refs:
            found.setdefault(ref, []).append(doc.name)
    return found


def _closure(start: str, links: dict[str, list[str]]) -> set[str]:
    seen, stack = set(), [start]
    while stack:
        for other in links.get(stack.pop(), []):
            if other not in seen:
                seen.add(other)
                stack.append(other)
    return seen


# -- pages ----------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _page(title: str, body: str, home: str) -> str:
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{_e(title)}</title>"
            f"<meta name=viewport content='width=device-width'><style>{STYLE}</style></head><body>"
            f"<header><h1>{_e(title)}</h1><a href='{home}'>all segments</a></header><main>{body}</main></body></html>")


def _tags(tags: list[str]) -> str:
    return "".join(f"<span class=tag>{_e(t)}</span>" for t in tags)


def _index(compiler: Compiler, docs: list[SegmentDoc]) -> str:
    rows = []
    for doc in docs:
        size = f"{doc.sizes[-1][1]:,}" if doc.sizes else ""
        status = "<span class=err>invalid</span>" if doc.error else ""
        pii = "<span class=pii>yes</span>" if doc.pii_read else ""
        rows.append(f"<tr><td><a href='segments/{_e(doc.name)}.html'>{_e(doc.name)}</a> {status}</td>"
                    f"<td>{_e(doc.entity)}</td><td>{_tags(doc.tags)}</td><td>{_e(doc.owner)}</td>"
                    f"<td>{_e(doc.description)}</td><td style='text-align:right'>{size}</td><td>{pii}</td></tr>")
    graph = lineage_svg(_graph(docs, {d.name for d in docs}, None, _dbt_inputs(compiler)), link_prefix="segments/")
    body = (f"<p class=muted>{len(docs)} segment(s) in project <b>{_e(compiler.config.name)}</b>, "
            f"generated {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC.</p>"
            "<input id=filter placeholder='filter segments'>"
            "<table id=segments><thead><tr><th>segment</th><th>entity</th><th>tags</th><th>owner</th>"
            "<th>description</th><th>last size</th><th>personal data</th></tr></thead><tbody>"
            + "".join(rows) + f"</tbody></table><h2>Lineage</h2>{graph}<script>{FILTER_SCRIPT}</script>")
    return _page(f"{compiler.config.name}: segments", body, "index.html")


def _graph(docs: list[SegmentDoc], names: set[str], current: str | None,
           dbt_inputs: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Nodes (segments, the sources they read and, for dbt nodes, the dbt nodes upstream of
    them) and edges for the lineage SVG."""
    by_name = {doc.name: doc for doc in docs}
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str]] = []
    dbt_inputs = dbt_inputs or {}
    for name in sorted(names):
        doc = by_name.get(name)
        if doc is None:
            continue
        nodes[name] = "current" if name == current else "segment"
        for source in doc.sources:
            nodes.setdefault(f"source:{source}", "dbt" if source in dbt_inputs else "source")
            edges.append((f"source:{source}", name))
            _add_dbt_upstream(source, dbt_inputs, nodes, edges)
        edges.extend((ref, name) for ref in doc.refs if ref in names)
    return {"nodes": nodes, "edges": list(dict.fromkeys(edges))}


def _add_dbt_upstream(node: str, dbt_inputs: dict[str, list[str]], nodes: dict[str, str],
                      edges: list[tuple[str, str]]) -> None:
    stack = [node]
    while stack:
        current = stack.pop()
        for parent in dbt_inputs.get(current, []):
            edges.append((f"source:{parent}", f"source:{current}"))
            if f"source:{parent}" not in nodes:
                nodes[f"source:{parent}"] = "dbt"
                stack.append(parent)


def _dbt_inputs(compiler: Compiler) -> dict[str, list[str]]:
    """dbt node (`dbt:x`) -> the dbt nodes it is built from, from the project's manifest."""
    artifacts = compiler.config.dbt_artifacts
    if artifacts is None:
        return {}
    nodes = artifacts.by_segsql_name()
    names = {node.unique_id: name for name, node in nodes.items()}
    return {name: sorted(names[u] for u in node.depends_on if u in names) for name, node in nodes.items()}


def _segment_page(compiler: Compiler, doc: SegmentDoc, docs: list[SegmentDoc], downstream: dict[str, list[str]]) -> str:
    if doc.error:
        body = f"<p class=err>This segment does not validate:</p><pre>{_e(doc.error)}</pre>" \
               f"<h2>Template ({_e(doc.path)})</h2><pre>{_e(doc.template)}</pre>"
        return _page(f"segment {doc.name}", body, "../index.html")
    upstream = {ref for ref in _closure(doc.name, {d.name: d.refs for d in docs})}
    below = _closure(doc.name, downstream)
    graph = lineage_svg(_graph(docs, upstream | below | {doc.name}, doc.name, _dbt_inputs(compiler)), link_prefix="")
    facts = [("entity", _e(doc.entity)), ("owner", _e(doc.owner) or "<span class=muted>none</span>"),
             ("tags", _tags(doc.tags)), ("file", _e(doc.path)),
             ("upstream refs", ", ".join(_link(r) for r in doc.refs) or "none"),
             ("downstream", ", ".join(_link(r) for r in sorted(downstream.get(doc.name, []))) or "none")]
    columns = "".join(f"<tr><td>{_e(c)}</td><td>{_e(t or '')}</td><td>{_pii(doc.pii_output.get(c))}</td>"
                      f"<td>{_e(doc.descriptions.get(c, ''))}</td></tr>" for c, t in doc.columns.items())
    reads = "".join(
        f"<tr><td>{_e(source)}</td><td>" + ", ".join(
            f"{_e(c)} {_pii(doc.pii_read.get(f'{source}.{c}'))}" for c in cols) + "</td></tr>"
        for source, cols in doc.reads.items())
    sizes = size_chart(doc.sizes) if doc.sizes else "<p class=muted>not run yet</p>"
    last = f"<p>Last size: <b>{doc.sizes[-1][1]:,}</b> ({doc.sizes[-1][0]:%Y-%m-%d %H:%M} UTC)</p>" if doc.sizes else ""
    tests = "".join(f"<li>unit: {_e(t)}</li>" for t in doc.unit_tests) + "".join(
        f"<li>data: {_e(k)} = {_e(v)}</li>" for k, v in doc.data_tests.items())
    body = (f"<p>{_e(doc.description)}</p><table>"
            + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts) + "</table>"
            f"<h2>Lineage</h2>{graph}"
            "<h2>Output columns</h2><table><tr><th>column</th><th>type</th><th>personal data</th>"
            "<th>description</th></tr>"
            f"{columns}</table>"
            f"<h2>Source columns read</h2><table><tr><th>source</th><th>columns</th></tr>{reads}</table>"
            f"<h2>Size</h2>{last}{sizes}"
            f"<h2>Tests</h2><ul>{tests or '<li class=muted>none</li>'}</ul>"
            f"<h2>Template ({_e(doc.path)})</h2><pre>{_e(doc.template)}</pre>"
            f"<h2>Compiled SQL ({_e(compiler.config.dialect)})</h2><pre>{_e(doc.compiled)}</pre>")
    return _page(f"segment {doc.name}", body, "../index.html")


def _link(name: str) -> str:
    return f"<a href='{_e(name)}.html'>{_e(name)}</a>"


def _pii(category: str | None) -> str:
    return f"<span class=pii>{_e(category)}</span>" if category else ""
