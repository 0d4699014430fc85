"""The holds pages: what revocations hold against syncs, and lifting one (after its effect is stated)."""

from __future__ import annotations

from typing import Literal

from flask import redirect, render_template, request, url_for

from ..db import get_session
from ..directory import holds
from ..directory.schemas import LiftBody, PrincipalKey
from ..errors import ApiError
from ..pagination import Cursor
from ..guard import authorize, clock_now, page_limit, unit_of_work
from ..validation import Strict, parse_query
from .blueprint import bp, page_query


class HoldsQuery(Strict):
    state: Literal["active", "inactive", "all"] = "active"
    campaign: int | None = None
    principal: PrincipalKey | None = None
    cursor: Cursor | None = None


@bp.get("/holds")
def holds_page():
    authorize("read_directory")
    q = page_query(HoldsQuery)
    page = holds.list_holds(get_session(), clock_now(), state=None if q.state == "all" else q.state,
                            campaign=q.campaign, principal=q.principal, cursor=q.cursor, limit=page_limit(None))
    return render_template("holds.html", holds=page.items, next_cursor=page.next_cursor, query=q)


@bp.get("/holds/<int:hold_id>")
def hold_page(hold_id: int):
    authorize("read_directory")
    return _render_hold(hold_id)


def _render_hold(hold_id: int, error: ApiError | None = None, status: int = 200):
    hold = holds.get(get_session(), hold_id, clock_now())
    return render_template("hold.html", hold=hold, error=error, form=request.form), status


@bp.post("/holds/<int:hold_id>/lift")
def lift_hold_page(hold_id: int):
    actor = authorize("manage_campaigns")
    try:
        data = parse_query(LiftBody, {key: value.strip() for key, value in request.form.items()
                                      if key in ("justification", "until") and value.strip()})
        with unit_of_work(actor) as (session, ctx):
            holds.lift(session, ctx, hold_id, data.justification, data.until)
    except ApiError as error:
        return _render_hold(hold_id, error, error.status)
    return redirect(url_for("web.hold_page", hold_id=hold_id))
