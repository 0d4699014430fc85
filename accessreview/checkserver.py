"""The check server: the portal's checks on a port of their own, served by an event loop.

``gunicorn --config gunicorn_checks.conf.py checks:app`` answers ``POST /v1/authorize``,
``/v1/authorize/batch``, the AuthZEN API (its metadata, ``/access/v1/evaluation``,
``/access/v1/evaluations`` and the three searches), and the health, readiness and metrics probes on
ACCESSREVIEW_CHECK_BIND, and nothing else (404). A PEP pointed at this port finds every AuthZEN
endpoint here: both ports' metadata name CHECK_URL's. Its workers are gunicorn's asyncio (ASGI)
workers: a connection that is idle, or that sends its request a byte at a time, costs a coroutine
and a socket, never a worker, so idle browsers and slow or hostile clients cannot keep a check
waiting, and no page, import, launch or sign-off ever runs in these processes.

A request, once read whole, is answered by the same WSGI app as on the main port (the hot path for
checks and evaluations, Flask's views for the AuthZEN metadata and searches: the same
authentication, validation, errors, metrics and decision log), called directly: a check is a few
µs of CPU, less than handing it to a thread would cost. A batch (up to ACCESSREVIEW_MAX_BATCH
checks, or AuthZEN evaluations) and a search (an enumeration bounded by
ACCESSREVIEW_EVALUATION_TIMEOUT) run on a small thread pool instead, so that a large one does not
hold the loop's other connections while it is answered.
"""

from __future__ import annotations

import asyncio
import io
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable

from flask import Flask

from .api.authzen import CONFIGURATION_PATH, EVALUATION_PATH, EVALUATIONS_PATH, SEARCH_PATHS
from .errors import body_too_large
from .observability import request_id

BATCH_PATHS = frozenset({"/v1/authorize/batch", EVALUATIONS_PATH, *SEARCH_PATHS.values()})
CHECK_PATHS = frozenset({"/v1/authorize", EVALUATION_PATH, CONFIGURATION_PATH, "/healthz", "/readyz",
                         "/metrics"}) | BATCH_PATHS
_NOT_HERE = (b'{"error":{"code":"not_found","field":null,"message":"this port answers authorization checks '
             b'only (POST /v1/authorize, /v1/authorize/batch, and the AuthZEN API: '
             b'/.well-known/authzen-configuration, /access/v1/evaluation, /access/v1/evaluations, '
             b'/access/v1/search/*); everything else is on the main port"}}')

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class CheckServer:
    def __init__(self, app: Flask, batch_threads: int = 4) -> None:
        self.app = app
        self.wsgi = app.wsgi_app  # the hot path in front of Flask
        self.max_body = app.config["MAX_BODY_BYTES"]
        self.batches = ThreadPoolExecutor(batch_threads, thread_name_prefix="batch")

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path not in CHECK_PATHS:
            await _respond(send, 404, [(b"content-type", b"application/json")], _NOT_HERE)
            return
        body = await self._body(scope, receive)
        if body is None:
            error = json.dumps(body_too_large(self.max_body).to_dict())
            # Answered before the app sees the request: its id is echoed here, as the app does.
            asked_id = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
            await _respond(send, 413, [(b"content-type", b"application/json"),
                                       (b"x-request-id", request_id(asked_id).encode())], error)
            return
        environ = _environ(scope, body)
        if path in BATCH_PATHS:
            status, headers, payload = await asyncio.get_running_loop().run_in_executor(
                self.batches, _call, self.wsgi, environ)
        else:
            status, headers, payload = _call(self.wsgi, environ)
        await _respond(send, status, headers, payload)

    async def _body(self, scope: dict[str, Any], receive: Receive) -> bytes | None:
        """The whole body, or None once it is larger than allowed (the rest is not read)."""
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _accept_one_at_a_time(asyncio.get_running_loop())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.batches.shutdown(wait=False)
                await send({"type": "lifespan.shutdown.complete"})
                return


ACCEPT_QUEUE = 2048  # connections the kernel holds for the workers to accept (gunicorn's backlog)


def _accept_one_at_a_time(loop: asyncio.AbstractEventLoop) -> None:
    """Make the servers this worker's loop starts (gunicorn's, after the lifespan's startup) accept one
    connection each time the shared listening socket wakes it, not every connection waiting. Taking all
    of them, a worker woken by a burst (a portal's pool opening its connections) keeps every one for
    their keep-alive life, and serves them on one core while the other worker idles: 8 connections
    8 : 0 answered 6,300 checks a second against 10,000 split (docs/performance.md). asyncio ties how
    many it accepts a wake-up to the socket's listen backlog, so the backlog is set again afterwards."""
    create_server = loop.create_server

    async def one_at_a_time(*args: Any, **kwargs: Any):
        listening = kwargs.get("sock")
        if listening is None:  # a server that makes its own socket: its backlog is its own
            return await create_server(*args, **kwargs)
        server = await create_server(*args, **{**kwargs, "backlog": 1})
        listening.listen(ACCEPT_QUEUE)
        return server

    loop.create_server = one_at_a_time  # type: ignore[method-assign]


def _environ(scope: dict[str, Any], body: bytes) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"], "SCRIPT_NAME": "", "PATH_INFO": scope["path"],
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"), "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.errors": io.StringIO(), "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
        "wsgi.version": (1, 0), "SERVER_NAME": "checks", "SERVER_PORT": "0",
        "REMOTE_ADDR": (scope.get("client") or ("", 0))[0],
    }
    for name, value in scope["headers"]:
        key = name.decode("latin-1").upper().replace("-", "_")
        text = value.decode("latin-1")
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = text
        elif key != "CONTENT_LENGTH":
            key = f"HTTP_{key}"
            environ[key] = f"{environ[key]},{text}" if key in environ else text
    return environ


def _call(wsgi, environ: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info=None):
        started[:] = [int(status.split(" ", 1)[0]), [(k.lower().encode("latin-1"), v.encode("latin-1"))
                                                     for k, v in headers]]
        return lambda data: None

    chunks = wsgi(environ, start_response)
    try:
        payload = b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return started[0], started[1], payload


async def _respond(send: Send, status: int, headers: list[tuple[bytes, bytes]], payload: bytes | str) -> None:
    body = payload.encode() if isinstance(payload, str) else payload
    headers = [(k, v) for k, v in headers if k != b"content-length"] + [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
