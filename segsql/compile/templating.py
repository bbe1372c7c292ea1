"""The sandboxed Jinja environment segments are written in, and rendering with a source map.

Names available in a segment template (documented in docs/templating.md, generated from the
docstrings in `segsql.builtins`): config, source, ref, var, param, as_of, ident, the date-window
macros and the set-algebra/rollup helpers. The helpers reach the segment being rendered through
a context variable, so the analyst's own macros in `macros/` can call them too.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
import hashlib
import marshal
import os
import re
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import jinja2
from jinja2 import StrictUndefined, Undefined, nodes
from jinja2 import filters as jinja_filters
from jinja2.runtime import Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment

from segsql.compile.budget import Budget
from segsql.compile.literals import SqlText, get_dialect, to_literal
from segsql.compile.sourcemap import LineIndex, SourceMap, instrument, strip_markers
from segsql.errors import Location, SegsqlError, TemplateError, did_you_mean


@dataclass
class CallSite:
    """Where a helper was called: its name and first argument, to find the column."""

    function: str
    argument: str | None = None
    line: int | None = None

    @classmethod
    def here(cls, function: str, argument: str | None = None) -> CallSite:
        """A call site with the template line of the helper call being evaluated now."""
        return cls(function, argument, _current_template_line())


class RenderSession(Protocol):
    """What helpers need from the compiler while a segment renders."""

    dialect: str
    as_of: dt.date
    overrides: dict[str, Any]

    @property
    def config(self) -> Any: ...

    def segment_entity(self, name: str, call: CallSite) -> str:
        """The entity of segment `name` (rendering it first); HelperError if it has none."""


class HelperError(SegsqlError):
    """Raised by a helper; the renderer adds the template location of the call."""

    def __init__(self, message: str, call: CallSite, hint: str | None = None):
        super().__init__(message, None, hint)
        self.call = call


@dataclass
class RenderState:
    """What rendering one segment recorded: its config call, refs, sources, params, vars."""

    name: str
    path: str
    session: RenderSession
    template: jinja2.Template | None = None
    config: dict[str, Any] | None = None
    config_line: int | None = None
    refs: dict[str, CallSite] = field(default_factory=dict)
    sources: set[str] = field(default_factory=set)
    params: dict[str, Any] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    splits: list[Any] = field(default_factory=list)  # compile.splits.Split per split() call
    budget: Budget = field(default_factory=Budget)


_CURRENT: contextvars.ContextVar[RenderState] = contextvars.ContextVar("segsql_render_state")


def _current_template_line() -> int | None:
    """The segment template line being evaluated, from the Jinja frame on the Python stack."""
    try:
        state = _CURRENT.get()
    except LookupError:
        return None
    if state.template is None:
        return None
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename == state.path:
            return state.template.get_corresponding_lineno(frame.f_lineno)
        frame = frame.f_back
    return None


def current_state() -> RenderState:
    """The state of the segment being rendered (helpers call this)."""
    try:
        return _CURRENT.get()
    except LookupError:
        raise SegsqlError("segsql helpers can only be called while rendering a segment") from None


@contextmanager
def rendering(state: RenderState) -> Iterator[None]:
    token = _CURRENT.set(state)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def finalize(value: Any) -> str:
    """Every `{{ value }}`: helper/macro SQL passes through, anything else becomes a literal."""
    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises UndefinedError naming the variable
    if isinstance(value, SqlText):
        return value
    state = current_state()
    if isinstance(value, list | tuple | str):  # measured before a literal of it is built
        state.budget.check_value(len(value), "a printed value")
    try:
        return to_literal(value).sql(dialect=get_dialect(state.session.dialect), copy=False)
    except (TypeError, ValueError) as error:
        raise HelperError(f"cannot print this value into SQL: {error}", CallSite("{{")) from None


LOOP_GUARD = "segsql_loop"  # the environment attribute every {% for %} iterable goes through (_parse)
CODE_VERSION = "budget-3"  # part of the code cache key: code generated before loops were guarded is not reused


def _budget() -> Budget:
    try:
        return _CURRENT.get().budget
    except LookupError:
        return Budget()  # macro files evaluated outside a segment render get a budget of their own


class SegmentEnvironment(ImmutableSandboxedEnvironment):
    """Sandboxed, strict Jinja with render budgets; the analyst's macros return SQL text, not literals.

    The guards are environment attributes (`environment.segsql_loop`, `environment.concat`),
    which a template cannot rebind; every call's and filter's result is measured too."""

    intercepted_binops = frozenset({"*", "+", "**", "%"})

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        budget = _budget()
        budget.check_call(__obj, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        budget.check_result(result)
        if isinstance(__obj, Macro):
            return SqlText(result)
        return result

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        budget = _budget()
        budget.check_binop(operator, left, right)
        result = super().call_binop(context, operator, left, right)
        budget.check_result(result)
        return result

    @staticmethod
    def concat(parts: Any) -> str:  # type: ignore[override]
        """Joins captured output ({% set %} blocks, macro bodies), measured before joining."""
        chunks = [str(part) for part in parts]
        _budget().check_value(sum(len(chunk) for chunk in chunks), "captured output")
        return "".join(chunks)

    @staticmethod
    def segsql_loop(iterable: Any) -> Any:
        return _budget().loop(iterable)

    @staticmethod
    def segsql_concat(*parts: Any) -> str:
        """`a ~ b`: the pieces as text, measured before joining."""
        return SegmentEnvironment.concat(parts)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """Every loop's iterable goes through the loop guard, which counts iterations; `~` goes
        through the measured join; recursive loops (whose inner calls no guard sees) are refused."""
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            if loop.recursive:
                raise jinja2.TemplateSyntaxError("recursive loops are not allowed in segment templates "
                                                 "(write a macro)", loop.lineno, name, filename)
            loop.iter = nodes.Call(nodes.EnvironmentAttribute(LOOP_GUARD), [loop.iter], [], None, None,
                                   lineno=loop.iter.lineno)
        for join in list(tree.find_all(nodes.Concat)):
            call = nodes.Call(nodes.EnvironmentAttribute("segsql_concat"), list(join.nodes), [], None, None,
                              lineno=join.lineno)
            _replace(tree, join, call)
        return tree


def _replace(tree: nodes.Node, old: nodes.Node, new: nodes.Node) -> None:
    """Put `new` where `old` is in the template's AST."""
    for node in tree.find_all(nodes.Node):
        for attribute in node.fields:
            value = getattr(node, attribute, None)
            if value is old:
                setattr(node, attribute, new)
            elif isinstance(value, list) and any(item is old for item in value):
                setattr(node, attribute, [new if item is old else item for item in value])


def _guarded_filter(name: str, check: Callable[..., None]) -> Callable[..., Any]:
    original = jinja_filters.FILTERS[name]

    @functools.wraps(original)  # keeps jinja_pass_arg: eval-context filters keep their marker
    def guarded(*args: Any, **kwargs: Any) -> Any:
        check(*args, **kwargs)
        return original(*args, **kwargs)

    return guarded


def _timed_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """Every filter reads the clock before it runs and has its result measured after."""
    @functools.wraps(function)  # keeps jinja_pass_arg, as above
    def timed(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.check_time()
        if name == "join":  # (eval_ctx, value, d='') : measured before joining
            values = [a for a in args if not hasattr(a, "autoescape")]
            if values:
                budget.check_join(values[1] if len(values) > 1 else kwargs.get("d", ""), values[0])
        result = function(*args, **kwargs)
        budget.check_result(result)
        return result

    return timed


def _check_width(value: Any, width: Any = 80, *_: Any, **__: Any) -> None:
    if isinstance(width, int):
        _budget().check_value(width * max(1, str(value).count("\n") + 1), "a filter's width")


def _check_format(value: Any, *_: Any, **__: Any) -> None:
    _budget().check_format(str(value))


def _check_replace(_context: Any, value: Any = "", _old: Any = "", new: Any = "", *_: Any, **__: Any) -> None:
    text = str(value)
    _budget().check_value(len(text) + (len(text) + 1) * len(str(new)), "`replace`")


def make_environment(builtins: dict[str, Callable[..., Any]]) -> SegmentEnvironment:
    env = SegmentEnvironment(
        undefined=StrictUndefined, autoescape=False, finalize=finalize,
        keep_trailing_newline=True, extensions=[],
    )
    env.optimized = False  # constant folding buys nothing for SQL templates, and would run `'x' * n` unchecked
    env.filters.pop("safe", None)  # no way to paste a value as raw SQL
    env.filters.update({"center": _guarded_filter("center", _check_width),
                        "indent": _guarded_filter("indent", _check_width),
                        "format": _guarded_filter("format", _check_format),
                        "replace": _guarded_filter("replace", _check_replace)})
    env.globals.pop("lipsum", None)  # generates text of any size
    env.filters.update({name: _timed_filter(name, function) for name, function in env.filters.items()})
    env.globals.update(builtins)
    return env


@dataclass
class Rendered:
    """A rendered segment: clean SQL, its source map and what rendering recorded."""

    sql: str
    source_map: SourceMap
    state: RenderState
    template_lines: LineIndex
    sql_lines: LineIndex

    def template_location(self, sql_offset: int) -> Location:
        line, col = self.template_lines.position(self.source_map.template_offset(sql_offset))
        return Location(self.state.path, line, col)

    def location_at(self, line: int, col: int) -> Location:
        """Template location of a 1-based (line, col) in the rendered SQL."""
        return self.template_location(self.sql_lines.offset(line, col))


def compile_template(env: SegmentEnvironment, source: str, path: str, *,
                     instrumented: bool = True, code_cache: Path | None = None) -> jinja2.Template:
    """Compile a template; segment templates get position markers, macro files do not (their
    output then maps to the `{{` of the call in the segment, where the analyst can act).

    With `code_cache`, Jinja's generated code is kept on disk by content hash: compiling Jinja
    costs about 2 ms a template, more than parsing and checking the SQL."""
    text = instrument(source) if instrumented else source
    cached = code_cache / f"{_code_key(text, path)}.bin" if code_cache else None
    code = _load_code(cached) if cached else None
    if code is None:
        try:
            code = env.compile(text, name=path, filename=path)
        except jinja2.TemplateSyntaxError as error:
            raise TemplateError(f"Jinja syntax error: {error.message}",
                                line_location(path, source, error.lineno, None)) from None
        if cached:
            _store_code(cached, code)
    return env.template_class.from_code(env, code, env.make_globals(None), None)


def template_code_cache() -> Path | None:
    """Where compiled Jinja code is kept, like __pycache__: $SEGSQL_CACHE_DIR (`off` disables),
    else $XDG_CACHE_HOME/segsql/jinja or ~/.cache/segsql/jinja. Entries are keyed by content.

    The cache holds code that is executed, so a folder another user could write to would be a
    way to run code as you: a cache folder (or a parent up to the cache root) not owned by you,
    or writable by group or others, is not used (compiling costs only speed)."""
    configured = os.environ.get("SEGSQL_CACHE_DIR")
    if configured:
        folder = None if configured.lower() in ("off", "0", "none") else Path(configured) / "jinja"
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        folder = Path(base) / "segsql" / "jinja"
    return folder if folder is None or _private_folder(folder) else None


def _private_folder(folder: Path) -> bool:
    """True when `folder` (created 0700 if missing) and the folders segsql made above it are
    owned by this user and not writable by group or others."""
    try:
        created = [path for path in (folder.parent, folder) if not path.exists()]
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for path in created:  # mkdir's mode is filtered by the umask (0775 under umask 002)
            os.chmod(path, 0o700)
        return all(_is_private(path) for path in (folder, folder.parent))
    except OSError:
        return False


def _is_private(path: Path) -> bool:
    status = path.lstat()
    owner_ok = not hasattr(os, "getuid") or status.st_uid == os.getuid()
    return owner_ok and not path.is_symlink() and status.st_mode & 0o022 == 0


def _code_key(text: str, path: str) -> str:
    digest = hashlib.sha256(f"{CODE_VERSION}\0{jinja2.__version__}\0{sys.version}\0{path}\0{text}".encode())
    return digest.hexdigest()[:32]


def _load_code(path: Path) -> types.CodeType | None:
    """An entry is `sha256(payload) + payload`; one that is not ours (owner, mode) or does not
    match its hash is ignored."""
    try:
        if not _is_private(path):
            return None
        raw = path.read_bytes()
        digest, payload = raw[:32], raw[32:]
        if hashlib.sha256(payload).digest() != digest:
            return None
        code = marshal.loads(payload)
    except (OSError, ValueError, EOFError, TypeError):
        return None
    return code if isinstance(code, types.CodeType) else None


def _store_code(path: Path, code: types.CodeType) -> None:
    try:
        payload = marshal.dumps(code)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(hashlib.sha256(payload).digest() + payload)
        os.replace(temporary, path)
    except OSError:
        pass  # a cache that cannot be written only costs speed


def render(template: jinja2.Template, source: str, state: RenderState,
           variables: dict[str, Any]) -> Rendered:
    """Render `template`; every failure becomes a TemplateError at the template line/col."""
    state.template = template
    state.budget.restart_clock()
    try:
        with rendering(state):
            output = _render_within_budget(template, variables, state.budget)
    except RecursionError as error:
        location = _traceback_location(error, state.path, source, None)
        raise TemplateError("the template recurses too deeply (a macro calling itself?)", location,
                            "make sure every recursive macro stops") from None
    except MemoryError as error:
        location = _traceback_location(error, state.path, source, None)
        raise TemplateError("the template built more than this process's memory allows", location,
                            "build smaller values (limits: in segsql.yml bound what templates build)") from None
    except SegsqlError as error:
        if error.location is not None:
            raise
        call = error.call if isinstance(error, HelperError) else None
        if call is not None and call.line is not None:
            location = line_location(state.path, source, call.line, call)
        else:
            location = _traceback_location(error, state.path, source, call)
        raise TemplateError(error.message, location, error.hint) from None
    except jinja2.UndefinedError as error:
        name = _undefined_name(str(error))
        location = _traceback_location(error, state.path, source, CallSite(name or ""))
        hint = did_you_mean(name, list(template.environment.globals) + list(variables)) if name else None
        raise TemplateError(f"undefined name: {error.message}", location, hint) from None
    except jinja2.exceptions.SecurityError as error:
        location = _traceback_location(error, state.path, source, None)
        raise TemplateError(f"not allowed in a segment template: {error}", location) from None
    except jinja2.TemplateError as error:
        location = _traceback_location(error, state.path, source, None)
        raise TemplateError(f"template error: {error}", location) from None
    except (TypeError, ValueError, ArithmeticError, AttributeError, KeyError, IndexError) as error:
        location = _traceback_location(error, state.path, source, None)
        raise TemplateError(f"error while rendering: {type(error).__name__}: {error}", location) from None
    sql, source_map = strip_markers(output)
    return Rendered(sql, source_map, state, LineIndex(source), LineIndex(sql))


def _render_within_budget(template: jinja2.Template, variables: dict[str, Any], budget: Budget) -> str:
    """Render chunk by chunk, so output size and time are checked while the template runs."""
    chunks = []
    for chunk in template.generate(variables):
        budget.count_output(chunk)
        chunks.append(chunk)
    return "".join(chunks)


def _undefined_name(message: str) -> str | None:
    match = re.search(r"'([^']+)' is undefined", message)
    return match.group(1) if match else None


def _traceback_location(error: BaseException, path: str, source: str,
                        call: CallSite | None) -> Location:
    """The innermost line of the segment template on the traceback, and the call's column."""
    line = None
    tb: types.TracebackType | None = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == path:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line_location(path, source, line, call)


def line_location(path: str, source: str, line: int | None, call: CallSite | None) -> Location:
    if line is None:
        return Location(path)
    lines = source.splitlines() or [""]
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    return Location(path, line, _column_in_line(text, call))


def _column_in_line(text: str, call: CallSite | None) -> int:
    """Best column for a call on one template line: the call itself, else the first tag."""
    if call is not None and call.function:
        if call.argument is not None:
            pattern = rf"\b{re.escape(call.function)}\s*\(\s*['\"]{re.escape(call.argument)}['\"]"
            match = re.search(pattern, text)
            if match:
                return match.start() + 1
        match = re.search(rf"\b{re.escape(call.function)}\b" if call.function[0].isalnum()
                          else re.escape(call.function), text)
        if match:
            return match.start() + 1
    tag = re.search(r"\{[{%#]", text)
    return tag.start() + 1 if tag else 1
