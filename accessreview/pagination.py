"""Keyset pagination with opaque cursors: complete, stable under inserts, never silently cut."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Generic, TypeVar

from pydantic import StringConstraints
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from .errors import BadRequest
from .validation import column_range

# The longest cursor this service issues holds a 255-character key (about 360 characters); the
# deepest, a list of two values in an object. Past either, a cursor is not ours, and it is refused
# before it is decoded: JSON nested a few thousand levels deep would otherwise overflow the stack.
MAX_CURSOR_LENGTH = 1024
MAX_CURSOR_DEPTH = 2

Cursor = Annotated[str, StringConstraints(max_length=MAX_CURSOR_LENGTH)]

T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None

    def map(self, convert: Callable[[T], U]) -> "Page[U]":
        return Page([convert(item) for item in self.items], self.next_cursor)

    def to_dict(self) -> dict[str, Any]:
        return {"items": self.items, "next_cursor": self.next_cursor}


def encode_cursor(after: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, shape: type | tuple[type, ...]) -> Any:
    """The position a cursor of ours holds: a value of type ``shape`` or, for a tuple of types, a
    list of one value of each. Anything else, garbled or made up, is a 400, never a query."""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise invalid_cursor()
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode())
        if _depth(text) > MAX_CURSOR_DEPTH:
            raise invalid_cursor()
        after = json.loads(text)["after"]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise invalid_cursor() from None
    kinds = shape if isinstance(shape, tuple) else (shape,)
    values = after if isinstance(shape, tuple) else [after]
    if not (isinstance(values, list) and len(values) == len(kinds)
            and all(type(value) is kind for value, kind in zip(values, kinds))):
        raise invalid_cursor()
    return after


def _depth(text: bytes) -> int:
    """How deeply the JSON in ``text`` nests its arrays and objects (brackets in strings aside)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in text:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def invalid_cursor() -> BadRequest:
    return BadRequest("cursor is not one this service issued", field="cursor", code="invalid_cursor")


def paginate(session: Session, query: Select, key: InstrumentedAttribute, cursor: str | None, limit: int) -> Page:
    if cursor:
        after = decode_cursor(cursor, key.type.python_type)
        if type(after) is int and after not in column_range(key.type):  # PostgreSQL would refuse it
            raise invalid_cursor()
        query = query.where(key > after)
    rows = list(session.scalars(query.order_by(key).limit(limit + 1)))
    if len(rows) > limit:
        rows = rows[:limit]
        return Page(rows, encode_cursor(getattr(rows[-1], key.key)))
    return Page(rows, None)
