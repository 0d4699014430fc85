"""What the API's handlers alone use: the OpenAPI description of an endpoint, and the JSON answer."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from flask import current_app, jsonify
from werkzeug.exceptions import HTTPException
from pydantic import BaseModel

from ..authz.checks import EVALUATION_FAILED
from ..errors import ApiError, render_api_error, render_http_error
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


def fail_closed(error: Exception):
    """The error handler of the decision endpoints: whatever broke while deciding, the answer is an
    error the caller treats as a deny, never an allow. (Blueprint handlers are consulted before the
    app's for every class, so the service's own errors pass through as they are.)"""
    if isinstance(error, ApiError):
        return render_api_error(error)
    if isinstance(error, HTTPException):
        return render_http_error(error)
    current_app.logger.exception("evaluation failed")
    return json_response(EVALUATION_FAILED, 500)
