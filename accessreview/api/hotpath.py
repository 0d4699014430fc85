"""The portal's hot path: its checks and the health probe, answered as plain WSGI ahead of Flask.

The portal asks for a check on every page it renders, and load balancers probe ``/healthz`` all
day. For such small requests, Flask's request context, URL map, hooks and response objects cost
more than the check itself, so these are answered here:

    POST /v1/authorize    POST /v1/authorize/batch    GET /healthz
    POST /access/v1/evaluation    POST /access/v1/evaluations    (AuthZEN)

Everything else the API promises is kept, through the same functions Flask's views call: the
caller's token and the policy's "check" permission first, then the body through the same models,
the same error shape and codes, the body size limit, X-Request-Id, the request metrics, and
failing closed. Only the request log differs: a check's record is the decision log, so an answered
check or probe is logged at DEBUG; errors are logged as everywhere else. A request of another
shape (a body without a Content-Length, another method) goes on to Flask, whose views for the same
paths answer it the same way and document it.
"""

from __future__ import annotations

import json
import logging
import time
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any, Callable, Iterable

from flask import Flask
from werkzeug.http import HTTP_STATUS_CODES

from ..authz import authzen
from ..authz.checks import EVALUATION_FAILED, answer_json, batch_answer_json, check_batch, check_one
from ..errors import ApiError, body_too_large
from ..guard import permitted_caller
from ..observability import record_request, request_id
from .authzen import EVALUATION_PATH, EVALUATIONS_PATH
from .ops import HEALTHY

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict, Callable], Iterable[bytes]]


def _compact_encoder() -> Callable[[Any], str]:
    """JSON as Flask's own responses have it: compact, ASCII-only, keys in the order given.

    ``JSONEncoder.encode`` builds a new C encoder on every call, which costs as much as encoding a
    check's answer; this one is built once. Without the circular-reference check: the hot path
    encodes only the plain dicts and lists it builds itself.
    """
    standard = json.JSONEncoder(separators=(",", ":"))
    if c_make_encoder is None:  # an interpreter without the C accelerator
        return standard.encode
    encoder = c_make_encoder(None, standard.default, encode_basestring_ascii, None, ":", ",", False, False, True)
    return lambda payload: "".join(encoder(payload, 0))


_encode = _compact_encoder()


class _Exchange:
    """What the request log wants to know about one request, filled in as it is answered."""

    __slots__ = ("caller",)

    def __init__(self) -> None:
        self.caller: str | None = None


class HotPath:
    def __init__(self, app: Flask, downstream: WsgiApp) -> None:
        self.app = app
        self.downstream = downstream
        # (method, path) -> (the Flask rule and endpoint it stands for, its handler: the answer to
        # encode, or its JSON text)
        self.routes: dict[tuple[str, str], tuple[str, str, Callable[[dict, _Exchange], Any]]] = {
            ("POST", "/v1/authorize"): ("/v1/authorize", "authorize.authorize_one", self._check_one),
            ("POST", "/v1/authorize/batch"): ("/v1/authorize/batch", "authorize.authorize_batch",
                                              self._check_batch),
            ("POST", EVALUATION_PATH): (EVALUATION_PATH, "authzen.evaluation", self._evaluation),
            ("POST", EVALUATIONS_PATH): (EVALUATIONS_PATH, "authzen.evaluations", self._evaluations),
            ("GET", "/healthz"): ("/healthz", "ops.healthz", self._healthz),
        }

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        route = self.routes.get((method, path))
        if route is None or (method == "POST" and not environ.get("CONTENT_LENGTH", "").isdigit()):
            return self.downstream(environ, start_response)
        rule, endpoint, handler = route
        started = time.perf_counter()
        rid = request_id(environ.get("HTTP_X_REQUEST_ID", ""))
        exchange = _Exchange()
        headers = [("Content-Type", "application/json"), ("X-Request-Id", rid)]
        try:
            status, payload = 200, handler(environ, exchange)
        except ApiError as error:
            status, payload = error.status, error.to_dict()
            if status == 401:
                headers.append(("WWW-Authenticate", 'Bearer realm="accessreview"'))
        except Exception:  # fail closed: an error the portal treats as a deny, never an allow
            log.exception("evaluation failed", extra={"request_id": rid})
            status, payload = 500, EVALUATION_FAILED
        body = f"{payload if isinstance(payload, str) else _encode(payload)}\n".encode()
        headers.append(("Content-Length", str(len(body))))
        start_response(f"{status} {HTTP_STATUS_CODES[status].upper()}", headers)
        # A check's own record is the decision log, and health probes are noise: their request log
        # lines are DEBUG unless something went wrong. The metrics count every one.
        record_request(rule, endpoint, method, path, status, time.perf_counter() - started, rid, exchange.caller,
                       logging.DEBUG if status < 400 else logging.INFO)
        return [body]

    def _check_one(self, environ: dict, exchange: _Exchange) -> str:
        return answer_json(check_one(self.app, self._checker(environ, exchange), self._body(environ)))

    def _check_batch(self, environ: dict, exchange: _Exchange) -> str:
        return batch_answer_json(check_batch(self.app, self._checker(environ, exchange), self._body(environ)))

    def _evaluation(self, environ: dict, exchange: _Exchange) -> str:
        return authzen.evaluation(self.app, self._checker(environ, exchange), self._body(environ))

    def _evaluations(self, environ: dict, exchange: _Exchange) -> str:
        return authzen.evaluations(self.app, self._checker(environ, exchange), self._body(environ))

    def _healthz(self, environ: dict, exchange: _Exchange) -> dict[str, Any]:
        return HEALTHY

    def _checker(self, environ: dict, exchange: _Exchange) -> str:
        """The caller, authenticated and allowed to ask for checks, before the body is read."""
        exchange.caller = permitted_caller(self.app, environ.get("HTTP_AUTHORIZATION", ""), "check")
        return exchange.caller

    def _body(self, environ: dict) -> bytes:
        length, limit = int(environ["CONTENT_LENGTH"]), self.app.config["MAX_BODY_BYTES"]
        if length > limit:
            raise body_too_large(limit)
        return environ["wsgi.input"].read(length)


def init_app(app: Flask) -> None:
    app.wsgi_app = HotPath(app, app.wsgi_app)  # type: ignore[method-assign]
