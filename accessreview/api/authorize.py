"""Authorization decisions: the portal's check, batch and list; who-has-access and explain for the people
who investigate access (the access explorer's API); the decision log.

Checks are parsed, decided and recorded by accessreview.authz.checks; these views are its Flask
transport. Anything that goes wrong while evaluating is a 5xx (the portal denies), never an allow.
"""

from __future__ import annotations

import bisect
from typing import Any

from flask import Blueprint, Flask, current_app, request
from pydantic import BaseModel, Field

from ..authz.checks import Batch, Check, check_batch, check_one, snapshot_for
from ..authz.deadline import Deadline
from ..authz.engine import get_engine
from ..errors import BadRequest
from ..guard import authorize, body, clock_now, page_limit, query
from ..log_pages import DecisionQuery, decision_log_page
from ..pagination import decode_cursor, encode_cursor
from . import shapes
from .keys import principal_key, resource_key
from .common import answer, documented, fail_closed

bp = Blueprint("authorize", __name__, url_prefix="/v1")

# 500: what broke while deciding, answered as an error the caller treats as a deny (fail_closed)
ERRORS = {400: shapes.ErrorOut, 401: shapes.ErrorOut, 403: shapes.ErrorOut, 500: shapes.ErrorOut}


class ResourcesQuery(BaseModel):
    action: str = Field(min_length=1)
    type: str = Field(min_length=1)
    cursor: str | None = None
    limit: int | None = None


class PageQuery(BaseModel):
    cursor: str | None = None
    limit: int | None = None


bp.register_error_handler(Exception, fail_closed)


# The portal's requests to these two are normally answered by accessreview.api.hotpath without
# entering Flask; these views answer the rest (a body sent without a length, say) the same way.
@bp.post("/authorize")
@documented("May actor do action on resource? Unknown actors and resources are denied", body=Check,
            tag="authorization", responses={200: shapes.AuthorizeOut, 503: shapes.ErrorOut, **ERRORS})
def authorize_one():
    caller = authorize("check")
    return answer(check_one(current_app._get_current_object(), caller, request.get_data(cache=True)))


@bp.post("/authorize/batch")
@documented("Up to MAX_BATCH checks, answered in order", body=Batch, tag="authorization",
            responses={200: shapes.BatchOut, 503: shapes.ErrorOut, **ERRORS})
def authorize_batch():
    caller = authorize("check")
    return answer(check_batch(current_app._get_current_object(), caller, request.get_data(cache=True)))


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
    return answer({**_page(keys, q.cursor, page_limit(q.limit)), "revision": snapshot.revision})


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
    return answer({"items": [by_key[k] for k in page["items"]], "next_cursor": page["next_cursor"],
                          "revision": snapshot.revision})


@bp.post("/explain")
@documented("Why a check is allowed or denied: the grant chain, or what is missing", body=Check,
            tag="authorization", responses={200: shapes.ExplainOut, 503: shapes.ErrorOut, **ERRORS})
def explain():
    authorize("explain_access")
    check = body(Check)
    snapshot = snapshot_for(get_engine(), check.at_least_revision)
    explained = snapshot.evaluator.explain(check.actor, check.action, check.resource, clock_now())
    return answer({**explained, "policy_version": snapshot.policy.version, "revision": snapshot.revision})


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
    return answer(decision_log_page(query(DecisionQuery)))


