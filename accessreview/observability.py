"""Request ids, JSON logs and Prometheus metrics."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from datetime import datetime, timezone

from flask import Flask, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

REQUESTS = Counter("accessreview_http_requests_total", "HTTP requests answered",
                   ["endpoint", "method", "status"])
LATENCY = Histogram("accessreview_http_request_duration_seconds", "Time to answer an HTTP request",
                    ["endpoint", "method"],
                    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "method", "path", "status", "duration_ms", "caller", "endpoint"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            try:
                record.request_id = g.get("request_id")
            except RuntimeError:  # outside a request
                record.request_id = None
        return True


def configure_logging(level: str, json_logs: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_logs else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger("accessreview")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def metrics_payload() -> tuple[bytes, str]:
    """All workers' metrics when gunicorn runs several (PROMETHEUS_MULTIPROC_DIR), else this process's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def init_app(app: Flask) -> None:
    @app.before_request
    def _start():
        g.request_id = request_id(request.headers.get("X-Request-Id", ""))
        g.request_started = time.perf_counter()

    @app.after_request
    def _finish(response):
        elapsed = time.perf_counter() - g.get("request_started", time.perf_counter())
        response.headers["X-Request-Id"] = g.get("request_id", "")
        record_request(request.url_rule.rule if request.url_rule else "unmatched", request.endpoint,
                       request.method, request.path, response.status_code, elapsed, g.get("request_id"),
                       g.get("caller"))
        return response


def request_id(incoming: str) -> str:
    """The caller's X-Request-Id when it is a sane one, else a new id."""
    return incoming if incoming and _REQUEST_ID.match(incoming) else os.urandom(16).hex()


_REQUEST_LOG = logging.getLogger("accessreview.request")


def record_request(rule: str, endpoint: str | None, method: str, path: str, status: int, elapsed: float,
                   request_id: str | None, caller: str | None, level: int = logging.INFO) -> None:
    """Count, time and log one answered request (Flask's and the hot path's alike)."""
    REQUESTS.labels(rule, method, str(status)).inc()
    LATENCY.labels(rule, method).observe(elapsed)
    if _REQUEST_LOG.isEnabledFor(level):
        _REQUEST_LOG.log(level, "%s %s %s", method, path, status, extra={
            "request_id": request_id, "method": method, "path": path, "status": status,
            "duration_ms": round(elapsed * 1000, 3), "caller": caller, "endpoint": endpoint})
