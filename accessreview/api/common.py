"""What the API's handlers alone use: the OpenAPI description of an endpoint, and the JSON answer.

A view's answer goes out through the model its ``documented(...)`` declares for the status (see
:func:`answer`): the model that /openapi.json shows is the one that shapes what is sent, so the
document cannot drift from the answers. (The portal's hot path builds its few typed answers itself.)
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from flask import current_app, jsonify, request
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


def answer(payload: Any, status: int = 200):
    """The view's JSON answer for ``status``, validated by and dumped through the model its
    documentation declares for that status. An answer that does not fit its model (a missing or an
    unknown field, a wrong type), or a status the view does not document, is a server error: a bug
    here, never a surprise for a client."""
    return current_app.response_class(through_model(request.endpoint, status, payload) + "\n", status=status,
                                      mimetype="application/json")


def through_model(endpoint: str | None, status: int, payload: Any) -> str:
    """``payload`` as JSON text, validated by and encoded with the model documented for ``status``
    (pydantic's own encoder: a 1,000-item page costs about three times plain json.dumps, where
    validating, dumping to dicts and then json.dumps cost about seven)."""
    view = current_app.view_functions[endpoint or ""]
    model = view.openapi["responses"].get(status)  # type: ignore[attr-defined]
    if model is None:
        raise LookupError(f"{endpoint} answers {status}, which its documentation does not list")
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"{endpoint} documents {status} without a model to answer through")
    # Not strict: the shapes the stored JSON had when it was validated (a time as its ISO text) are read back.
    return model.model_validate(payload, strict=False).model_dump_json(exclude_unset=True)


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
