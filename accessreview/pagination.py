"""Keyset pagination with opaque cursors: complete, stable under inserts, never silently cut."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from .errors import BadRequest

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


def decode_cursor(cursor: str) -> Any:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return json.loads(base64.urlsafe_b64decode(padded.encode()))["after"]
    except (ValueError, KeyError, TypeError):
        raise BadRequest("cursor is not one this service issued", field="cursor", code="invalid_cursor") from None


def paginate(session: Session, query: Select, key: InstrumentedAttribute, cursor: str | None, limit: int) -> Page:
    if cursor:
        query = query.where(key > decode_cursor(cursor))
    rows = list(session.scalars(query.order_by(key).limit(limit + 1)))
    if len(rows) > limit:
        rows = rows[:limit]
        return Page(rows, encode_cursor(getattr(rows[-1], key.key)))
    return Page(rows, None)
