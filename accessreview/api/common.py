"""What the API's handlers alone use: the OpenAPI description of an endpoint, and the JSON answer."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from flask import jsonify
from pydantic import BaseModel

from .openapi import Media

F = TypeVar("F", bound=Callable[..., Any])


def documented(summary: str, *, body: type[BaseModel] | Media | None = None, query: type[BaseModel] | None = None,
               responses: dict[int, Any] | None = None, tag: str | None = None,
               body_optional: bool = False) -> Callable[[F], F]:
    """Attach what the OpenAPI document says about an endpoint."""

    def decorate(view: F) -> F:
        view.openapi = {"summary": summary, "body": body, "query": query,  # type: ignore[attr-defined]
                        "responses": responses or {}, "tag": tag, "body_optional": body_optional}
        return view

    return decorate


def json_response(payload: Any, status: int = 200):
    response = jsonify(payload)
    response.status_code = status
    return response
