"""`segsql diff`: what would this pull request do to membership?

The project's files at a git revision (default: the merge base with main) are extracted to a
temporary folder and compiled with the same vars and `as_of` as the working tree; both versions
run on the same data (the working tree's connection, read only: nothing is written). Per segment:
members added and removed (counts and samples), size change, and the diff of the compiled SQL.
Segments whose compiled SQL is identical cannot differ and are not evaluated.
"""

from __future__ import annotations

import difflib
import io
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from sqlglot import exp
from sqlglot.errors import SqlglotError

from segsql.activate.diffreport import DiffReport, SegmentDiff
from segsql.compile.compiler import Compiler
from segsql.compile.files import SegmentFiles
from segsql.compile.keys import EntityKey
from segsql.compile.lineage import segment_lineage
from segsql.compile.selection import select_segments
from segsql.config.dbt import column_changes
from segsql.config.models import load_project_config
from segsql.errors import SegsqlError, UsageError

if TYPE_CHECKING:
    from segsql.engines.base import Engine

DEFAULT_BRANCHES = ("main", "origin/main", "master", "origin/master")


def diff(compiler: Compiler, engine: Engine, base: str | None = None, select: list[str] | None = None,
         samples: int = 5, dbt_state: Path | None = None) -> DiffReport:
    """Compare the segments at git revision `base` with the working tree on the same data (both
    evaluated through `engine`). With a dbt project, the base reads the dbt artifacts of that
    revision (from git, or `dbt_state`: a folder with its manifest.json and catalog.json), and
    segments reading dbt columns that changed between the two are reported."""
    repo = _git_root(compiler.root)
    prefix = _git(repo, "rev-parse", "--show-prefix", cwd=compiler.root).strip()
    revision = base or _merge_base(repo)
    commit = _resolve(repo, revision)
    with tempfile.TemporaryDirectory(prefix="segsql-diff-") as folder:
        dbt_paths, note = _base_dbt_artifacts(compiler, repo, commit, revision, Path(folder), dbt_state)
        base_compiler = _compiler_at(compiler, repo, commit, prefix, Path(folder), dbt_paths)
        names = sorted(set(select_segments(compiler, select, [], ordered=False) if select else compiler.segments)
                       | (set(base_compiler.segments) if base_compiler and not select else set()))
        engine.prepare_sources()
        segments = [_segment(compiler, base_compiler, engine, name, samples) for name in names]
    changes = {}
    if base_compiler is not None and not note and compiler.config.dbt_artifacts is not None \
            and base_compiler.config.dbt_artifacts is not None:
        changes = column_changes(base_compiler.config.dbt_artifacts, compiler.config.dbt_artifacts)
        for segment in segments:
            segment.dbt_columns = _changed_reads(compiler, segment.name, changes)
    return DiffReport(revision, commit[:12], segments, changes, note)


def _base_dbt_artifacts(head: Compiler, repo: Path, commit: str, revision: str, folder: Path,
                        dbt_state: Path | None) -> tuple[tuple[Path, Path] | None, str]:
    """The manifest.json and catalog.json the base revision reads, and a note when they are the
    working tree's (not in git at that revision and no --dbt-state), so nothing is compared."""
    artifacts = head.config.dbt_artifacts
    if artifacts is None:
        return None, ""
    if dbt_state is not None:
        paths = (dbt_state / "manifest.json", dbt_state / "catalog.json")
        missing = [str(path) for path in paths if not path.is_file()]
        if missing:
            raise UsageError(f"--dbt-state: {', '.join(missing)} does not exist", None,
                             "give the folder holding the base's manifest.json and catalog.json (dbt's target/)")
        return paths, ""
    extracted = []
    for path in (artifacts.manifest_path, artifacts.catalog_path):
        try:
            relative = path.resolve().relative_to(repo.resolve()).as_posix()
        except ValueError:
            relative = ""
        if not relative or not _git(repo, "ls-tree", "--name-only", commit, "--", relative).strip():
            return ((artifacts.manifest_path, artifacts.catalog_path),
                    f"the dbt artifacts of {revision} are not in git, so dbt changes are not compared "
                    "(pass --dbt-state DIR: a folder with that revision's manifest.json and catalog.json)")
        target = folder / ".segsql-dbt-base" / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_git(repo, "show", f"{commit}:{relative}"), encoding="utf-8")
        extracted.append(target)
    return (extracted[0], extracted[1]), ""


def _changed_reads(compiler: Compiler, name: str, changes: dict[str, dict[str, str]]) -> list[str]:
    """"dbt:x.column: change" for each changed dbt column segment `name` reads (refs included)."""
    if not changes or name not in compiler.segments:
        return []
    try:
        reads = segment_lineage(compiler, name).reads
    except (SegsqlError, SqlglotError, KeyError, ValueError):
        return []  # invalid (reported as such) or beyond lineage
    return [f"{source}.{column}: {changes[source][column]}" for source, columns in reads.items()
            if source in changes for column in columns if column in changes[source]]


def _git(repo: Path, *args: str, cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=cwd or repo, capture_output=True, check=False)
    except FileNotFoundError:
        raise UsageError("git is not installed", None, "install git to compare revisions") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise UsageError(f"git {' '.join(args)}: {message[-1] if message else 'failed'}", None)
    return done.stdout.decode()


def _git_root(root: Path) -> Path:
    try:
        return Path(_git(root, "rev-parse", "--show-toplevel").strip())
    except UsageError:
        raise UsageError(f"{root} is not inside a git repository", None,
                         "segsql diff compares git revisions: run it in a clone of the project") from None


def _merge_base(repo: Path) -> str:
    for branch in DEFAULT_BRANCHES:
        try:
            return _git(repo, "merge-base", "HEAD", branch).strip()
        except UsageError:
            continue
    raise UsageError("no main branch to compare with", None, "pass --base REV (e.g. --base HEAD~1)")


def _resolve(repo: Path, revision: str) -> str:
    try:
        return _git(repo, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}").strip()
    except UsageError:
        raise UsageError(f"--base `{revision}` is not a git revision", None,
                         "use a commit, branch or tag, e.g. --base main or --base HEAD~1") from None


def _compiler_at(head: Compiler, repo: Path, commit: str, prefix: str, folder: Path,
                 dbt_paths: tuple[Path, Path] | None = None) -> Compiler | None:
    """The segments as they were at `commit`, with the head's connection, options and catalog
    source (so both versions read the same data); None if the project did not exist then."""
    listing = _git(repo, "ls-tree", "--name-only", commit, "--", f"{prefix}segsql.yml")
    if not listing.strip():
        return None
    archive = subprocess.run(["git", "archive", "--format=tar", commit, "--", prefix or "."], cwd=repo,
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    root = folder / prefix
    # the head's profile: its dbt target's relations, named as its warehouse names them
    config = load_project_config(root, dbt_paths, head.config.profile).model_copy(
        update={"connection": head.config.connection})
    files = SegmentFiles.discover(root, config.limits.segment_bytes)
    return Compiler(files, config, dict(head.overrides), head.as_of, connect=head.connect)


def _segment(head: Compiler, base: Compiler | None, engine: Engine, name: str, samples: int) -> SegmentDiff:
    in_head, in_base = name in head.segments, base is not None and name in base.segments
    head_sql = base_sql = None
    try:
        head_sql = _pretty(head, name) if in_head else None
    except SegsqlError as error:
        return SegmentDiff(name, "invalid", error=str(error))
    try:
        base_sql = _pretty(base, name) if in_base and base is not None else None
    except SegsqlError:
        base_sql = None  # broken at the base: every member counts as added
    sql_diff = "".join(difflib.unified_diff((base_sql or "").splitlines(keepends=True),
                                            (head_sql or "").splitlines(keepends=True),
                                            f"a/{name}.sql (compiled)", f"b/{name}.sql (compiled)"))
    if head_sql == base_sql:
        return SegmentDiff(name, "unchanged", entity=head.compiled(name).entity)
    status = "changed" if in_head and in_base else ("added" if in_head else "removed")
    entity = (head if in_head else base).compiled(name).entity  # type: ignore[union-attr]
    head_keys = _keys(head, name) if head_sql else None
    base_keys = _keys(base, name) if base_sql and base is not None else None
    result = SegmentDiff(name, status, entity=entity, sql_diff=sql_diff)
    _measure(engine, result, base_keys, head_keys, samples)
    return result


def _pretty(compiler: Compiler, name: str) -> str:
    tree = compiler.tree(name)
    return tree.sql(dialect=compiler.config.dialect, pretty=True) + "\n"


def _keys(compiler: Compiler, name: str) -> exp.Select:
    """The distinct member keys of a segment's query, refs inlined: `k` as text (comparable across
    revisions whatever the type), `n` as the key itself (samples are ordered and shown by it)."""
    key = EntityKey(compiler.config.entities[compiler.compiled(name).entity].key_columns)
    tree = compiler.tree(name)
    return exp.select(key.text().as_("k"), key.value().as_("n")
                      ).distinct().from_(tree.subquery("q")).where(key.any_null().not_())


def _measure(engine: Engine, result: SegmentDiff, base: exp.Select | None, head: exp.Select | None,
             samples: int) -> None:
    empty = exp.select(exp.cast(exp.null(), exp.DataType.Type.VARCHAR).as_("k"), exp.null().as_("n")
                       ).where(exp.false())
    base_q = base or (empty.copy() if head is None else _typed_empty(head))
    head_q = head or (empty.copy() if base is None else _typed_empty(base))

    def count(query: exp.Query) -> exp.Expr:
        return exp.select(exp.func("count", exp.Star())).from_(query.subquery("c")).subquery()

    def only(left: exp.Select, right: exp.Select) -> exp.Select:
        return exp.select("k", "n").from_(left.copy().subquery("l")).where(
            exp.column("k").isin(query=exp.select("k").from_(right.copy().subquery("r"))).not_())

    sizes = engine.fetchall(exp.select(count(base_q.copy()), count(head_q.copy()), count(only(head_q, base_q)),
                                       count(only(base_q, head_q))))[0]
    result.base_size = int(sizes[0]) if base is not None else None
    result.head_size = int(sizes[1]) if head is not None else None
    result.added, result.removed = int(sizes[2]), int(sizes[3])
    result.added_sample = [r[1] for r in engine.fetchall(only(head_q, base_q).order_by("n").limit(samples))]
    result.removed_sample = [r[1] for r in engine.fetchall(only(base_q, head_q).order_by("n").limit(samples))]


def _typed_empty(keys: exp.Select) -> exp.Select:
    """No rows, with the columns (and types) of `keys`."""
    return keys.copy().where(exp.false(), append=True)
