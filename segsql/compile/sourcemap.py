"""Map positions in rendered SQL back to the template the analyst wrote.

Jinja reports only line numbers, and no SQL templating tool maps rendered SQL back to the
template. We instrument the template before Jinja sees it: a marker goes in front of every run
of literal text (saying "the next characters are template offset N onwards") and in front of
every `{{ ... }}` (saying "the next characters were printed by the expression at offset N").
Markers are private-use characters, so they pass through rendering untouched; stripping them
afterwards yields the clean SQL plus an exact map from SQL offset to template offset. Output of
macros and helpers maps to the `{{` of the call, which is where the analyst can act.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

MARK_OPEN, MARK_CLOSE = "\ue000", "\ue001"
_MARK = re.compile("\ue000([dxDX])(\\d+)\ue001")
_OPENERS = ("{{", "{%", "{#")
_CLOSERS = {"{{": "}}", "{%": "%}", "{#": "#}"}
_RAW = re.compile(r"\{%-?\s*raw\s*-?%\}")
_ENDRAW = re.compile(r"\{%-?\s*endraw\s*-?%\}")


def _marker(kind: str, offset: int) -> str:
    return f"{MARK_OPEN}{kind}{offset}{MARK_CLOSE}"


def instrument(source: str) -> str:
    """Return `source` with position markers in every data run and before every `{{`."""
    out: list[str] = [_marker("d", 0)]
    pos = 0
    while True:
        start = _next_opener(source, pos)
        if start < 0:
            out.append(source[pos:])
            return "".join(out)
        opener = source[start:start + 2]
        data = source[pos:start]
        if opener == "{{":
            # `{{-` strips the whitespace before it, so the marker goes before that whitespace.
            keep = data.rstrip() if source.startswith("{{-", start) else data
            out.append(keep + _marker("x", start) + data[len(keep):])
        else:
            out.append(data)
        end = _block_end(source, start, _CLOSERS[opener])
        if end < 0:  # unterminated: leave the rest to Jinja, which reports the syntax error
            out.append(source[start:])
            return "".join(out)
        raw = opener == "{%" and _RAW.match(source, start)
        out.append(source[start:end])
        pos = _after_closer(source, end)
        out.append(source[end:pos])
        if raw:
            closing = _ENDRAW.search(source, pos)
            stop = closing.start() if closing else len(source)
            out.append(_marker("d", pos) + source[pos:stop])
            pos = stop
            continue
        out.append(_marker("d", pos))


def _next_opener(source: str, pos: int) -> int:
    found = [i for i in (source.find(o, pos) for o in _OPENERS) if i >= 0]
    return min(found) if found else -1


def _block_end(source: str, start: int, closer: str) -> int:
    """Offset just past the closer of the tag at `start`, skipping quoted strings inside it."""
    i = start + 2
    quote = None
    while i < len(source):
        ch = source[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in "'\"" and closer != "#}":
            quote = ch
        elif source.startswith(closer, i):
            return i + 2
        i += 1
    return -1


def _after_closer(source: str, end: int) -> int:
    """Where the next data run starts: a `-}}`/`-%}` closer eats the whitespace after it."""
    if source[end - 3] == "-":
        while end < len(source) and source[end].isspace():
            end += 1
    return end


@dataclass(frozen=True)
class SourceMap:
    """Maps offsets in the clean rendered text to offsets in the template source."""

    rendered_starts: list[int]
    template_starts: list[int]
    linear: list[bool]

    def template_offset(self, rendered_offset: int) -> int:
        index = bisect.bisect_right(self.rendered_starts, rendered_offset) - 1
        if index < 0:
            return 0
        start = self.template_starts[index]
        if self.linear[index]:
            return start + rendered_offset - self.rendered_starts[index]
        return start


def strip_markers(rendered: str) -> tuple[str, SourceMap]:
    """Remove markers from rendered text; return the clean text and its source map."""
    clean: list[str] = []
    rendered_starts: list[int] = []
    template_starts: list[int] = []
    linear: list[bool] = []
    length = 0
    pos = 0
    for match in _MARK.finditer(rendered):
        piece = rendered[pos:match.start()]
        clean.append(piece)
        length += len(piece)
        rendered_starts.append(length)
        template_starts.append(int(match.group(2)))
        linear.append(match.group(1) in "dD")
        pos = match.end()
    clean.append(rendered[pos:])
    text = "".join(clean).replace(MARK_OPEN, "").replace(MARK_CLOSE, "")
    return text, SourceMap(rendered_starts, template_starts, linear)


class LineIndex:
    """Converts between 0-based offsets and 1-based (line, column) in one text."""

    def __init__(self, text: str):
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def position(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.starts, offset) - 1
        return line + 1, offset - self.starts[line] + 1

    def offset(self, line: int, col: int) -> int:
        line = max(1, min(line, len(self.starts)))
        return self.starts[line - 1] + max(col, 1) - 1


def find_pointed(sql: str, before: str, part: str) -> int | None:
    """Offset in `sql` of the text an engine pointed at (`part`, preceded by `before` on the
    engine's line), or None. The engine ran SQL that segsql regenerated (one line, refs inlined),
    so spacing differs: whitespace is compared collapsed, and the longest tail of `before` that
    still occurs in `sql` picks the right one of several occurrences of `part`.

    >>> find_pointed("SELECT a.d\\nFROM a\\nWHERE a.d   > 5", "WHERE ", "a.d > 5")  # line 3, after "WHERE "
    24
    """
    spaced = [(m.start(), m.group(0)) for m in re.finditer(r"\s+|\S", sql)]
    squeezed = "".join(" " if text[0].isspace() else text for _, text in spaced).lower()
    wanted_part = " ".join(part.split()).lower()
    context = re.sub(r"\s+", " ", before).lower()
    if not wanted_part:
        return None
    for cut in range(len(context) + 1):
        tail = context[cut:]
        found = squeezed.find(tail + wanted_part)
        if found >= 0:
            return spaced[found + len(tail)][0]
    return None
