"""Keyset pagination with opaque cursors: complete, stable under inserts, never silently cut."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from .errors import BadRequest
from .validation import column_range

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
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        after = json.loads(base64.urlsafe_b64decode(padded.encode()))["after"]
    except (ValueError, KeyError, TypeError):
        raise invalid_cursor() from None
    kinds = shape if isinstance(shape, tuple) else (shape,)
    values = after if isinstance(shape, tuple) else [after]
    if not (isinstance(values, list) and len(values) == len(kinds)
            and all(type(value) is kind for value, kind in zip(values, kinds))):
        raise invalid_cursor()
    return after


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
