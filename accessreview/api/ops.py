"""Operations endpoints, reachable without a token: liveness, readiness, metrics, the API document."""

from __future__ import annotations

from flask import Blueprint, Response, current_app
from sqlalchemy import text

from ..authz.engine import get_engine
from ..db import get_db
from ..guard import public
from ..migrate import database_revision, head_revision
from ..observability import metrics_payload
from . import shapes
from .common import answer, documented, json_response
from .openapi import Media, build_openapi

bp = Blueprint("ops", __name__)
HEALTHY = {"status": "ok"}


@bp.get("/healthz")
@public
@documented("The process is alive", tag="operations", responses={200: shapes.Health})
def healthz():
    return answer(HEALTHY)


@bp.get("/readyz")
@public
@documented("Ready to serve: database reachable, migrations current, policy loaded", tag="operations",
            responses={200: shapes.Health, 503: shapes.Health})
def readyz():
    checks: dict[str, object] = {}
    try:
        engine = get_db().engine
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
        current, head = database_revision(engine), head_revision()
        checks["migrations"] = "ok" if current == head else f"at {current}, code expects {head}"
    except Exception as exc:  # the point of the endpoint is to report, not to raise
        checks["database"] = f"unreachable: {type(exc).__name__}"
    policy = get_engine().policy
    checks["policy"] = {"version": policy.version, "files": [f.name for f in policy.files]}
    # Reported, not required: checks are answered either way; the metrics count what is at risk.
    checks["decision_spool"] = current_app.extensions["decisions"].spool_state()
    ready = checks.get("database") == "ok" and checks.get("migrations") == "ok"
    return answer({"status": "ok" if ready else "unavailable", "checks": checks}, 200 if ready else 503)


@bp.get("/metrics")
@public
@documented("Prometheus metrics: requests and latency by endpoint", tag="operations",
            responses={200: Media("text/plain", {"type": "string", "description": "Prometheus text exposition format"})})
def metrics():
    payload, content_type = metrics_payload()
    return Response(payload, content_type=content_type)


@bp.get("/openapi.json")
@public
@documented("This API, as an OpenAPI 3.1 document", tag="operations",
            responses={200: {"type": "object", "description": "OpenAPI 3.1 document"}})
def openapi():
    return json_response(build_openapi(current_app))
