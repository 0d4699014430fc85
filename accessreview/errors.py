"""One JSON error shape for every failure: ``{"error": {"code", "message", "field", ...}}``."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, jsonify
from werkzeug.exceptions import HTTPException


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None,
                 status: int | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code
        if status:
            self.status = status
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "field": self.field, **self.details}}


class BadRequest(ApiError):
    status = 400
    code = "invalid_body"


class Unauthenticated(ApiError):
    status = 401
    code = "unauthenticated"


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class Unprocessable(ApiError):
    status = 422
    code = "invalid_reference"


class ServiceUnavailable(ApiError):
    status = 503
    code = "unavailable"


class EvaluationTimeout(ServiceUnavailable):
    """An authorization request ran past EVALUATION_TIMEOUT: an error, which the portal treats as a deny."""

    code = "evaluation_timeout"

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the decision took longer than {seconds:g} s to evaluate; treat it as a deny")


def body_too_large(limit: int) -> ApiError:
    return ApiError(f"request body is larger than {limit} bytes", code="body_too_large", status=413)


_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def render_api_error(error: ApiError):
    response = jsonify(error.to_dict())
    response.status_code = error.status
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="accessreview"'
    return response


def render_http_error(error: HTTPException):
    status = error.code or 500
    message = error.description or error.name
    if status == 413:
        message = body_too_large(current_app.config["MAX_BODY_BYTES"]).message
    response = jsonify({"error": {"code": _HTTP_CODES.get(status, error.name.lower().replace(" ", "_")),
                                  "message": message, "field": None}})
    response.status_code = status
    if status == 405 and error.valid_methods:
        response.headers["Allow"] = ", ".join(error.valid_methods)
    return response


def init_app(app: Flask) -> None:
    app.register_error_handler(ApiError, render_api_error)
    app.register_error_handler(HTTPException, render_http_error)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        app.logger.exception("unhandled error")
        response = jsonify({"error": {"code": "internal_error", "message": "internal error; see the service log",
                                      "field": None}})
        response.status_code = 500
        return response
