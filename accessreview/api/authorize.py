"""Authorization decisions: the portal's check, batch and list; who-has-access and explain for the people
who investigate access (the access explorer's API); the decision log.

A check touches memory only: the token table, the snapshot and the decision buffer. Anything that
goes wrong while evaluating is a 5xx (the portal denies), never an allow.
"""

from __future__ import annotations

import bisect
import time
from typing import Any

from flask import Blueprint, Flask, current_app, request
from pydantic import BaseModel, Field
from werkzeug.exceptions import HTTPException

from ..authz.deadline import Deadline
from ..authz.decisions import grant_ids_json
from ..authz.engine import AuthzEngine, Snapshot, StaleError, get_engine
from ..errors import ApiError, BadRequest, ServiceUnavailable, render_api_error, render_http_error
from ..guard import authorize, body, clock_now, page_limit, query
from ..log_pages import DecisionQuery, decision_log_page
from ..pagination import decode_cursor, encode_cursor
from ..validation import Strict, Text, parse_json
from . import shapes
from .keys import principal_key, resource_key
from .common import documented, json_response

bp = Blueprint("authorize", __name__, url_prefix="/v1")

# A check's text as the decision log's columns hold it (models.Decision): a value it could not store
# is refused before it is decided, so that no answered decision is one the log must drop.
Actor = Text(255)
Action = Text(64)
Resource = Text(255)
ERRORS = {400: shapes.ErrorOut, 401: shapes.ErrorOut, 403: shapes.ErrorOut}


class Check(Strict):
    actor: Actor
    action: Action
    resource: Resource
    at_least_revision: int | None = Field(default=None, ge=0)


class Batch(Strict):
    checks: list[Check] = Field(min_length=1)
    at_least_revision: int | None = Field(default=None, ge=0)


class ResourcesQuery(BaseModel):
    action: str = Field(min_length=1)
    type: str = Field(min_length=1)
    cursor: str | None = None
    limit: int | None = None


class PageQuery(BaseModel):
    cursor: str | None = None
    limit: int | None = None


EVALUATION_FAILED = {"error": {"code": "evaluation_failed", "field": None,
                               "message": "the decision could not be evaluated; treat it as a deny"}}


@bp.errorhandler(Exception)
def _evaluation_failed(error: Exception):
    """Fail closed: whatever broke while deciding, the answer is an error the portal treats as deny."""
    # Blueprint handlers are consulted before the app's for every class, so pass ours through.
    if isinstance(error, ApiError):
        return render_api_error(error)
    if isinstance(error, HTTPException):
        return render_http_error(error)
    current_app.logger.exception("evaluation failed")
    return json_response(EVALUATION_FAILED, 500)


def _snapshot(engine: AuthzEngine, at_least: int | None) -> Snapshot:
    if at_least is None:
        return engine.snapshot()
    try:
        return engine.wait_for(at_least)
    except StaleError as exc:
        raise ServiceUnavailable(str(exc), code="stale", field="at_least_revision") from None


def _decide(app: Flask, snapshot: Snapshot, caller: str, checks: list[Check],
            deadline: Deadline | None = None) -> list[dict[str, Any]]:
    """Decide ``checks`` against one snapshot, within ``deadline`` if given, then keep them all in the
    decision log (memory only): a request that fails part way leaves no decisions its caller never
    received. One loop for the whole request: at ~10 µs a check, per-check calls and lookups count."""
    log = app.extensions["decisions"]
    now = app.config["CLOCK"].now()
    stamp, version, revision = log.stamp(now), snapshot.policy.version, snapshot.revision
    evaluate, clock = snapshot.evaluator.check, time.perf_counter_ns
    allowed_values, no_grants = log.allowed_values, log.no_grants
    prefix, numbers = log.id_source()
    rows: list[tuple] = []
    used: list[int] = []
    answers: list[dict[str, Any]] = []
    for check in checks:
        if deadline is not None:
            deadline.check()
        decision_id = f"{prefix}{next(numbers):010x}"
        started = clock()
        decision = evaluate(check.actor, check.action, check.resource, now)
        latency_us = (clock() - started) // 1000
        grants = decision.grants
        if grants:
            used.extend(grants)
        rows.append((decision_id, stamp, caller, check.actor, check.action, check.resource,
                     allowed_values[decision.allowed], version, revision, latency_us,
                     grant_ids_json(grants) if grants else no_grants))
        answers.append({"allowed": decision.allowed, "decision_id": decision_id})
    log.record(rows, stamp, used)
    return answers


def check_one(app: Flask, caller: str, raw: bytes) -> dict[str, Any]:
    """Answer one check for ``caller``, who may check (see :func:`require_permission`)."""
    check = parse_json(Check, raw)
    snapshot = _snapshot(app.extensions["authz"], check.at_least_revision)
    [answer] = _decide(app, snapshot, caller, [check])  # one check: oso's own query limit bounds it
    return {**answer, "policy_version": snapshot.policy.version, "revision": snapshot.revision}


def check_batch(app: Flask, caller: str, raw: bytes) -> dict[str, Any]:
    batch = parse_json(Batch, raw)
    if len(batch.checks) > app.config["MAX_BATCH"]:
        raise BadRequest(f"at most {app.config['MAX_BATCH']} checks per batch", field="checks", code="invalid_value")
    wanted = [r for r in [batch.at_least_revision, *(c.at_least_revision for c in batch.checks)] if r is not None]
    snapshot = _snapshot(app.extensions["authz"], max(wanted) if wanted else None)
    results = _decide(app, snapshot, caller, batch.checks, Deadline(app.config["EVALUATION_TIMEOUT"]))
    return {"results": results, "policy_version": snapshot.policy.version, "revision": snapshot.revision}


# The portal's requests to these two are normally answered by accessreview.api.hotpath without
# entering Flask; these views answer the rest (a body sent without a length, say) the same way.
@bp.post("/authorize")
@documented("May actor do action on resource? Unknown actors and resources are denied", body=Check,
            tag="authorization", responses={200: shapes.AuthorizeOut, 503: shapes.ErrorOut, **ERRORS})
def authorize_one():
    caller = authorize("check")
    return json_response(check_one(current_app._get_current_object(), caller, request.get_data(cache=True)))


@bp.post("/authorize/batch")
@documented("Up to MAX_BATCH checks, answered in order", body=Batch, tag="authorization",
            responses={200: shapes.BatchOut, 503: shapes.ErrorOut, **ERRORS})
def authorize_batch():
    caller = authorize("check")
    return json_response(check_batch(current_app._get_current_object(), caller, request.get_data(cache=True)))


@bp.get("/principals/<principal>/resources")
@documented("Every resource of a type the principal may act on, complete and cursor-paginated",
            query=ResourcesQuery, tag="authorization", responses={200: shapes.KeyPage, 503: shapes.ErrorOut, **ERRORS})
def resources_of(principal: str):
    authorize("check")
    q = query(ResourcesQuery)
    snapshot = get_engine().snapshot()
    if q.type not in snapshot.policy.declarations.resource_types:
        raise BadRequest(f"{q.type!r} is not a resource type of the policy", field="type", code="unknown_type")
    keys = snapshot.evaluator.resources_for(principal_key(principal), q.action, q.type, clock_now(),
                                            Deadline(current_app.config["EVALUATION_TIMEOUT"]))
    return json_response({**_page(keys, q.cursor, page_limit(q.limit)), "revision": snapshot.revision})


@bp.get("/resources/<type_>/<id_>/access")
@documented("Every principal with any permission on the resource, through groups and parents", query=PageQuery,
            tag="authorization", responses={200: shapes.AccessPage, 503: shapes.ErrorOut, **ERRORS})
def access(type_: str, id_: str):
    authorize("explain_access")
    q = query(PageQuery)
    snapshot = get_engine().snapshot()
    items = snapshot.evaluator.access(resource_key(type_, id_), clock_now(),
                                      Deadline(current_app.config["EVALUATION_TIMEOUT"]))
    page = _page([item["principal"] for item in items], q.cursor, page_limit(q.limit))
    by_key = {item["principal"]: item for item in items}
    return json_response({"items": [by_key[k] for k in page["items"]], "next_cursor": page["next_cursor"],
                          "revision": snapshot.revision})


@bp.post("/explain")
@documented("Why a check is allowed or denied: the grant chain, or what is missing", body=Check,
            tag="authorization", responses={200: shapes.ExplainOut, 503: shapes.ErrorOut, **ERRORS})
def explain():
    authorize("explain_access")
    check = body(Check)
    snapshot = _snapshot(get_engine(), check.at_least_revision)
    explained = snapshot.evaluator.explain(check.actor, check.action, check.resource, clock_now())
    return json_response({**explained, "policy_version": snapshot.policy.version, "revision": snapshot.revision})


def _page(keys: list[str], cursor: str | None, limit: int) -> dict[str, Any]:
    """A page of a sorted key list: keys after the cursor's, and a cursor when more remain."""
    start = bisect.bisect_right(keys, decode_cursor(cursor, str)) if cursor else 0
    items = keys[start:start + limit]
    more = start + limit < len(keys)
    return {"items": items, "next_cursor": encode_cursor(items[-1]) if more and items else None}


@bp.get("/decisions")
@documented("The decision log, oldest first, filtered by actor, resource, outcome and time. A filtered page "
            "may hold fewer decisions than asked, even none, when its scan reached its time bound (about a "
            "second); follow next_cursor until it is null", query=DecisionQuery,
            tag="authorization", responses={200: shapes.DecisionPage, **ERRORS})
def decisions():
    authorize("read_decisions")
    return json_response(decision_log_page(query(DecisionQuery)))


