"""What a check's request says about its subject and resource, and its context, for attribute rules.

A check may carry properties of its subject and resource and a context object (AuthZEN's
``properties`` and ``context``; /v1/authorize's ``actor_properties``, ``resource_properties`` and
``context``). Only types whose rules read attributes are evaluated with them (by oso); the compiled
table's types read none, so their checks never look at them. Nothing here is ever written: properties
layer over what the directory holds for one decision, then are gone.

Bounds, as for any request text: a text value (or key) up to LONG_TEXT characters, no NUL (refused
by parse_json for the whole body), nesting at most MAX_DEPTH deep, and each object at most
``AUTHZEN_MAX_PROPERTIES_BYTES`` as compact JSON (413).
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Iterable

from flask import Flask
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from ..errors import ApiError
from ..validation import LONG_TEXT

# Properties are flat facts (an owner, a department, a list of tags); a few levels leave room for a
# structured one. Deeper is refused as a 400 before oso, or any recursive walk, sees it.
MAX_DEPTH = 8


class Given:
    """One check's request-supplied facts: the subject's and resource's properties, and the context."""

    __slots__ = ("subject", "resource", "context")

    def __init__(self, subject: dict[str, Any] | None, resource: dict[str, Any] | None,
                 context: dict[str, Any] | None) -> None:
        self.subject = subject or {}
        self.resource = resource or {}
        self.context = context or {}

    def digest(self) -> str:
        """What the decision log keeps of them: the SHA-256, in hex, of the UTF-8 canonical JSON
        ``{"context": …, "resource": …, "subject": …}`` (keys sorted at every level, no spaces,
        non-ASCII as it is; an absent object as ``{}``)."""
        text = json.dumps({"context": self.context, "resource": self.resource, "subject": self.subject},
                          sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def __repr__(self) -> str:
        return f"Given(subject={self.subject!r}, resource={self.resource!r}, context={self.context!r})"


def given(subject: dict | None, resource: dict | None, context: dict | None) -> Given | None:
    """The facts of one check, or None when the request gives none (the usual check: nothing to carry)."""
    if subject is None and resource is None and context is None:
        return None
    return Given(subject, resource, context)


def _json_object(value: dict[str, Any]) -> dict[str, Any]:
    _refuse_long_or_deep(value, 1)
    return value


def _refuse_long_or_deep(value: Any, depth: int) -> None:
    if isinstance(value, str):
        if len(value) > LONG_TEXT:
            raise PydanticCustomError("too_long", "a value holds at most {most} characters", {"most": LONG_TEXT})
    elif isinstance(value, (dict, list)):
        if depth > MAX_DEPTH:
            raise PydanticCustomError("too_deep", "objects and lists nest at most {most} deep", {"most": MAX_DEPTH})
        if isinstance(value, dict):
            for key, item in value.items():
                _refuse_long_or_deep(key, depth)
                _refuse_long_or_deep(item, depth + 1)
        else:
            for item in value:
                _refuse_long_or_deep(item, depth + 1)


# A properties or context object: JSON, its text no longer than free text may be, nested at most
# MAX_DEPTH deep (the object itself is the first level).
JsonObject = Annotated[dict[str, Any], AfterValidator(_json_object)]


def refuse_large(app: Flask, raw: bytes, objects: Iterable[tuple[str, dict[str, Any]]]) -> None:
    """Each of ``objects`` (field path, value) past AUTHZEN_MAX_PROPERTIES_BYTES as JSON is a 413."""
    if b'properties"' not in raw and b'"context"' not in raw:  # the portal's usual request: nothing to weigh
        return
    most = app.config["AUTHZEN_MAX_PROPERTIES_BYTES"]
    for path, value in objects:
        if len(json.dumps(value, separators=(",", ":"))) > most:
            raise ApiError(f"{path}: at most {most} bytes of JSON", field=path, code="too_large", status=413)
