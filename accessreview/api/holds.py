"""/v1/holds: revocations that hold against syncs and writes, and lifting them."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint
from pydantic import BaseModel

from ..db import get_session
from ..directory import holds
from ..directory.schemas import LiftBody, PrincipalKey
from ..pagination import Cursor
from ..guard import authorize, body, clock_now, page_limit, query, unit_of_work
from . import shapes
from .common import answer, documented
from .shapes import Out

bp = Blueprint("holds", __name__, url_prefix="/v1")
ERRORS = {400: shapes.ErrorOut, 401: shapes.ErrorOut, 403: shapes.ErrorOut}


class HoldQuery(BaseModel):
    state: Literal["active", "inactive"] | None = None
    campaign: int | None = None
    principal: PrincipalKey | None = None
    cursor: Cursor | None = None
    limit: int | None = None


class LiftedOut(Out):
    at: str
    by: str
    justification: str
    until: str | None


class HoldDecision(Out):
    """The review decision the hold keeps in force, as it was at remediation."""

    decision: Literal["revoke"]
    by: str | None
    rule: str | None  # the no-response rule, when nobody decided by hand
    at: str | None
    justification: str | None
    signed_off_by: str | None


class HoldOut(Out):
    id: int
    kind: Literal["grant", "membership"]
    principal: str
    role: str
    resource: str
    campaign: int
    item: int
    decision: HoldDecision
    created_at: str
    expires_at: str | None
    active: bool
    lifted: LiftedOut | None


class HoldPage(Out):
    items: list[HoldOut]
    next_cursor: str | None


@bp.get("/holds")
@documented("Revocation holds, filtered by state (active or inactive), campaign or principal", query=HoldQuery,
            tag="directory", responses={200: HoldPage, **ERRORS})
def list_holds():
    authorize("read_directory")
    q = query(HoldQuery)
    page = holds.list_holds(get_session(), clock_now(), state=q.state, campaign=q.campaign, principal=q.principal,
                            cursor=q.cursor, limit=page_limit(q.limit))
    return answer(page.to_dict())


@bp.get("/holds/<int:hold_id>")
@documented("One hold: what it keeps out, the campaign, item and decision behind it, and any lift", tag="directory",
            responses={200: HoldOut, 404: shapes.ErrorOut, **ERRORS})
def get_hold(hold_id: int):
    authorize("read_directory")
    return answer(holds.get(get_session(), hold_id, clock_now()))


@bp.post("/holds/<int:hold_id>/lift")
@documented("Lift a hold, with a justification (and, optionally, until when): the next sync may restore the "
            "grant. Security leads and admins", body=LiftBody, tag="directory",
            responses={200: HoldOut, 404: shapes.ErrorOut, 409: shapes.ErrorOut, 422: shapes.ErrorOut, **ERRORS})
def lift_hold(hold_id: int):
    actor = authorize("manage_campaigns")
    data = body(LiftBody)
    with unit_of_work(actor) as (session, ctx):
        state = holds.lift(session, ctx, hold_id, data.justification, data.until)
    return answer(state)
