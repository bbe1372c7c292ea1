"""Entity keys: the columns that identify a member, and the one text value segsql stores for it
(`entity_key` in membership, history and export state; docs/entities.md)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

KEY_SEPARATOR = "|"
# (character, its escape) in the order applied: `%` first, so every escape decodes one way
KEY_ESCAPES = (("%", "%25"), ("|", "%7C"))


@dataclass(frozen=True)
class EntityKey:
    """An entity's key columns, and the one text value `entity_key` stores for a member.

    One column: its value cast to text, exactly as segsql always stored it. Several columns
    (docs/entities.md): each part cast to text, `%` and `|` percent-escaped, joined by `|`, e.g.
    `(1001, 3)` -> `1001|3`. The escaping makes the encoding injective; the key checks refuse
    NULL parts before anything is stored, and compile-time checks allow only part types whose
    text is the same on every engine (integers, text, dates, booleans)."""

    columns: tuple[str, ...]

    @property
    def composite(self) -> bool:
        return len(self.columns) > 1

    def __str__(self) -> str:
        return self.columns[0] if not self.composite else f"({', '.join(self.columns)})"

    def parts(self, table: str | None = None) -> list[exp.Column]:
        return [exp.column(column, table) for column in self.columns]

    def text(self, table: str | None = None) -> exp.Expr:
        """The stored `entity_key` of each row: NULL when any part is NULL."""
        texts: list[exp.Expr] = [exp.cast(part, exp.DataType.Type.VARCHAR) for part in self.parts(table)]
        if not self.composite:
            return texts[0]
        encoded: exp.Expr | None = None
        for text in texts:
            escaped = text
            for char, escape in KEY_ESCAPES:
                escaped = exp.func("replace", escaped, exp.Literal.string(char), exp.Literal.string(escape))
            encoded = escaped if encoded is None else exp.DPipe(
                this=exp.DPipe(this=encoded, expression=exp.Literal.string(KEY_SEPARATOR)), expression=escaped)
        assert encoded is not None
        return encoded

    def decode(self, stored: str) -> tuple[str, ...]:
        """The parts (as text) of a stored `entity_key`."""
        if not self.composite:
            return (stored,)
        parts = stored.split(KEY_SEPARATOR)
        for char, escape in reversed(KEY_ESCAPES):
            parts = [part.replace(escape, char) for part in parts]
        return tuple(parts)

    def encode(self, parts: tuple[str, ...] | list[str]) -> str:
        """The stored `entity_key` of key parts given as text (the Python twin of `text`)."""
        if len(parts) != len(self.columns):
            raise ValueError(f"the key {self} has {len(self.columns)} part(s), got {len(parts)}")
        escaped = list(parts)
        for char, escape in KEY_ESCAPES:
            escaped = [part.replace(char, escape) for part in escaped]
        return KEY_SEPARATOR.join(escaped)

    def value(self, table: str | None = None) -> exp.Expr:
        """One expression distinct exactly when keys are (to count or compare them): the column
        itself for a one-column key, the stored text for a composite one."""
        return self.parts(table)[0] if not self.composite else self.text(table)

    def any_null(self, table: str | None = None) -> exp.Condition:
        return exp.or_(*[part.is_(exp.null()) for part in self.parts(table)])


def entity_key(columns: EntityKey | tuple[str, ...] | list[str] | str) -> EntityKey:
    if isinstance(columns, EntityKey):
        return columns
    return EntityKey((columns,) if isinstance(columns, str) else tuple(columns))
