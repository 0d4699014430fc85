"""Parsing request bodies and query strings into pydantic models, with errors in the house shape.

Schema problems (malformed JSON, wrong types, unknown or missing fields) are 400s that name the
field; problems with what the values refer to (unknown role, type or principal) are 422s, raised
by the service functions.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Mapping, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, ValidationError
from pydantic_core import PydanticCustomError
from sqlalchemy import BigInteger
from sqlalchemy.orm import InstrumentedAttribute
from werkzeug.routing import IntegerConverter

from .clock import as_utc
from .errors import BadRequest

M = TypeVar("M", bound=BaseModel)


# Ids are SQL INTEGER columns (32 bits); the audit trail's sequence and revisions are BIGINT. A
# number past its column names no row, but PostgreSQL refuses to compare it with the column (and
# the drivers to bind anything past 64 bits), so it is refused here, where it can be a 400 or a 404
# rather than a 500.
INTEGER_RANGE = range(-(2**31), 2**31)
BIGINT_RANGE = range(-(2**63), 2**63)
RowId = Annotated[int, Field(ge=INTEGER_RANGE.start, le=INTEGER_RANGE.stop - 1)]


def column_range(column_type: Any) -> range:
    return BIGINT_RANGE if isinstance(column_type, BigInteger) else INTEGER_RANGE


# Free text kept in TEXT columns (reasons, justifications, descriptions, statements): the database
# would take more, but nobody writes more than this in a form, and a page or a report shows it whole.
LONG_TEXT = 4000


def column_length(column: InstrumentedAttribute) -> int:
    """The most characters a text column holds (VARCHAR(n): n; TEXT: :data:`LONG_TEXT`)."""
    return getattr(column.type, "length", None) or LONG_TEXT


def column_text(column: InstrumentedAttribute, *, min_length: int = 0, pattern: str | None = None) -> Any:
    """A request's text for ``column``: no longer than the column holds, so that a value the API
    accepts is one the database stores (PostgreSQL refuses a longer one; SQLite would keep it)."""
    return Annotated[str, StringConstraints(min_length=min_length, max_length=column_length(column),
                                            pattern=pattern)]


# PostgreSQL cannot store NUL in text (nor in JSON text), and no name, key or sentence needs one. It
# is refused wherever text comes in, in one place for each way in: JSON bodies and query strings
# here, path ids in the API's key helpers, file cells in the import's reader.
NUL = "\x00"


def nul_at(value: Any, path: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
    """Where in ``value`` (JSON data: dicts, lists, text) the first NUL is, or None."""
    if isinstance(value, str):
        return path if NUL in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if NUL in str(key):
                return path
            found = nul_at(item, (*path, key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = nul_at(item, (*path, index))
            if found is not None:
                return found
    return None


def nul_refused(path: tuple[Any, ...]) -> BadRequest:
    field = field_path(path)
    return BadRequest(f"{field or 'the request'} contains a NUL character (\\x00), which no text here may hold",
                      field=field, code="nul_character")


def _refuse_nul_in_json(raw: bytes | str) -> None:
    """A NUL can reach JSON text only escaped: look for the escape, and only then for the field.
    (``find`` rather than ``in``, which on bytes costs an integer conversion's TypeError first.)"""
    if raw.find(b"\\u0000" if isinstance(raw, bytes) else "\\u0000") < 0:
        return
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return  # the model reports what is wrong with it
    path = nul_at(data)
    if path is not None:
        raise nul_refused(path)


def refuse_nul_in_query(args: Mapping[str, Any]) -> None:
    items = args.items(multi=True) if hasattr(args, "getlist") else args.items()  # type: ignore[call-arg]
    for key, value in items:
        path = nul_at(value, (key,)) if NUL not in key else (key.replace(NUL, "\\x00"),)
        if path is not None:
            raise nul_refused(path)


def _moment(value: Any) -> datetime:
    """ISO 8601 text (or a datetime) that UTC can hold. Pydantic would also read a number, even in
    text, as seconds since 1970, so that ``?since=2026`` meant 00:33:46 on 1970-01-01, not the year
    the caller meant."""
    if not isinstance(value, datetime):
        try:
            value = datetime.fromisoformat(value)
        except (TypeError, ValueError):
            raise ValueError("give an ISO 8601 time, such as 2026-01-31T00:00:00Z") from None
    try:
        as_utc(value)
    except OverflowError:  # 0001-01-01T00:00:00+01:00, or 9999-12-31T23:59:59-01:00
        raise ValueError("is out of range once converted to UTC") from None
    return value


# A time as requests give it, in ISO 8601 with or without an offset (none: UTC), that the service
# can compare, store and print in UTC.
Moment = Annotated[datetime, BeforeValidator(_moment)]


def _without_nul(value: str) -> str:
    """PostgreSQL's text cannot hold NUL (U+0000): refused here, as a 400, on either database."""
    if "\x00" in value:
        raise PydanticCustomError("nul_character", "must not contain the NUL character (U+0000)")
    return value


def Text(max_length: int, min_length: int = 1) -> Any:
    """Text stored in a column of ``max_length`` characters: longer, or with a NUL, is a 400."""
    return Annotated[str, StringConstraints(min_length=min_length, max_length=max_length),
                     AfterValidator(_without_nul)]


class RowIdConverter(IntegerConverter):
    """``<int:...>`` in a URL: an id, all of them INTEGER columns. A number past the column names no
    row, so it is passed on as 0, which no row has (ids count from 1), and the view answers 404 as
    for any other missing row. (Refused here, werkzeug would answer 405 to methods of a sibling rule.)"""

    def to_python(self, value: str) -> int:
        number = int(value)
        return number if number in INTEGER_RANGE else 0


class Strict(BaseModel):
    """Base of request models: unknown fields are refused and JSON types are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)


_CODES = {
    "json_invalid": "malformed_json",
    "string_too_long": "too_long",
    "too_long": "too_long",
    "too_deep": "too_deep",
    "nul_character": "nul_character",
    "extra_forbidden": "unknown_field",
    "missing": "missing_field",
    "model_type": "invalid_body",
    "model_attributes_type": "invalid_body",
}


def field_path(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if not str(p).startswith("function-")]
    return ".".join(parts) or None


def error_code(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind in _CODES:
        return _CODES[kind]
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return "invalid_type"
    return "invalid_value"


def describe(error: Mapping[str, Any]) -> str:
    path = field_path(error["loc"])
    if error["type"] == "json_invalid":
        return f"request body is not valid JSON: {error['msg']}"
    if error["type"] == "extra_forbidden":
        return f"unknown field {path}"
    return f"{path}: {error['msg']}" if path else error["msg"]


def parse_json(model: type[M], raw: bytes | str) -> M:
    if not raw.strip():
        raise BadRequest("request body is empty; a JSON object is expected", code="malformed_json")
    _refuse_nul_in_json(raw)
    try:
        # The validator itself: model_validate_json's keyword handling costs a fifth as much again.
        return model.__pydantic_validator__.validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        status_code = error_code(first)
        raise BadRequest(describe(first), field=field_path(first["loc"]), code=status_code,
                         errors=[{"code": error_code(e), "field": field_path(e["loc"]), "message": describe(e)}
                                 for e in exc.errors()[:50]]) from None


def parse_query(model: type[M], args: Mapping[str, str]) -> M:
    """Query strings are text, so these models are validated in lax mode (``"10"`` → 10). Pages
    read their forms through here too, so a form's refusal is the API's."""
    refuse_nul_in_query(args)
    try:
        return model.model_validate(dict(args), strict=False)
    except ValidationError as exc:
        raise refusal(exc) from None


def refusal(exc: ValidationError) -> BadRequest:
    """A model's first complaint, as a 400 that names its field."""
    first = exc.errors()[0]
    return BadRequest(describe(first), field=field_path(first["loc"]), code=error_code(first))
