"""What a page says about a refused form: each problem beside its field, all at once, in words a
person reads (never a pattern's text), and the form handed back with what was typed."""

from __future__ import annotations

from typing import Any, Mapping, TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import ApiError, BadRequest
from ..validation import field_path, refuse_nul_in_query

M = TypeVar("M", bound=BaseModel)

EXAMPLES = {"to": "user:mia", "principal": "user:ann", "resource": "project:acme", "fallback_reviewer": "user:lead"}


def in_words(error: Mapping[str, Any]) -> str:
    """One of pydantic's complaints as a sentence about the field."""
    kind, context = error["type"], error.get("ctx") or {}
    field = field_path(error["loc"]).split(".")[-1] if error["loc"] else ""
    if kind in ("missing", "string_too_short") and not context.get("min_length", 1) > 1:
        return "Please fill this in."
    if kind == "string_too_short":
        return f"Please write at least {context['min_length']} characters."
    if kind == "string_too_long":
        return f"This is too long: at most {context['max_length']} characters."
    if kind == "string_pattern_mismatch":
        example = EXAMPLES.get(field)
        return (f"This is not in the expected form (like {example})." if example
                else "This has characters or a shape that is not allowed here.")
    if kind in ("literal_error", "enum"):
        return f"Please choose one of: {context.get('expected', 'the choices offered')}."
    if kind.startswith("int_") or kind.startswith("float_"):
        return "Please give a whole number." if "parsing" in kind else f"This number is out of range ({error['msg']})."
    return error["msg"][0].upper() + error["msg"][1:] + "."


def problems(model: type[M], data: Mapping[str, Any]) -> tuple[M | None, dict[str, str]]:
    """The model from ``data``, or every problem by field (NUL refused first, as everywhere)."""
    try:
        refuse_nul_in_query(data)
    except BadRequest as error:
        return None, {error.field or "form": error.message}
    try:
        return model.model_validate(dict(data), strict=False), {}
    except ValidationError as exc:
        found: dict[str, str] = {}
        for error in exc.errors():
            found.setdefault(field_path(error["loc"]) or "form", in_words(error))
        return None, found


def beside(error: ApiError | None) -> dict[str, str]:
    """An operation's refusal keyed by its field, for the template to show beside it."""
    if error is None:
        return {}
    listed = error.details.get("errors")
    if isinstance(listed, dict):
        return dict(listed)
    found = {e.get("field") or "form": e["message"] for e in listed or [] if isinstance(e, dict)}
    return found or {error.field or "form": error.message}


def as_error(found: dict[str, str], **details: Any) -> BadRequest:
    """Every problem found, as one refusal naming the first (``errors`` keeps them all for the page)."""
    first = next(iter(found))
    return BadRequest(found[first], field=first, code="invalid_body", **details)
