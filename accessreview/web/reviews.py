"""A reviewer's pages: the queue (every item with what it gives, how it was used, and what is
recommended, each with its own keep/revoke form, and ticked items decided at once), one item with
its history, and delegation."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from flask import g, redirect, render_template, request, url_for
from pydantic import BaseModel
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from ..authz.engine import get_engine
from ..campaigns import review
from ..campaigns.deciding import decide_many, decision_target, item_or_404, reassign_item, record_decision
from ..campaigns.schemas import BulkDecisions, DecisionBody, ReassignBody
from ..db import get_session
from ..errors import ApiError, BadRequest
from ..guard import authorize_object, caller, page_limit
from ..models import Campaign
from ..pagination import Cursor
from ..validation import RowId, parse_query
from .blueprint import bp


class QueueQuery(BaseModel):
    campaign: RowId | None = None
    status: Literal["pending", "decided", "all"] = "pending"
    cursor: Cursor | None = None
    done: RowId | None = None  # the item just decided or handed on, to say so
    saved: int | None = None  # how many were just decided at once


@bp.get("/")
def home():
    me = caller()
    allowed = get_engine().is_allowed_on_object(me, "view", f"review_queue:{me}", {"reviewer": me})
    g.authorization_decision = ("view", f"review_queue:{me}", allowed)
    queues = review.queue_summary(get_session(), me) if allowed else []
    return render_template("home.html", queues=queues)


def _own_queue() -> str:
    """The caller, authorized to look at their own queue (what the API's ``reviewer=me`` asks)."""
    me = caller()
    return authorize_object("view", f"review_queue:{me}", {"reviewer": me})


@bp.get("/reviews")
def queue():
    return _render_queue(_own_queue(), request.args)


def _render_queue(me: str, args, error: ApiError | None = None, status: int = 200):
    q = parse_query(QueueQuery, args)
    session = get_session()
    page = review.list_items(session, campaign=q.campaign, reviewer=me,
                             status=None if q.status == "all" else q.status, cursor=q.cursor,
                             limit=page_limit(None))
    campaigns = {c.id: c for c in session.scalars(select(Campaign).where(
        Campaign.id.in_({item["campaign_id"] for item in page.items})))}
    return render_template("queue.html", page=page, campaigns=campaigns, query=q, error=error,
                           summary=review.queue_summary(session, me)), status


@bp.post("/campaigns/<int:campaign_id>/decisions")
def decide_selected(campaign_id: int):
    """One decision and justification for every ticked item of the queue, all or nothing."""
    me = _own_queue()  # a refusal shows the queue again
    back = _back_to(url_for("web.queue", campaign=campaign_id))
    ticked = request.form.getlist("items")
    justification = request.form.get("justification", "").strip() or None
    try:
        if not ticked:
            raise BadRequest("tick the items to decide first", field="items", code="missing_field")
        data = parse_query(BulkDecisions, {"decisions": [
            {"item": item, "decision": request.form.get("decision") or None, "justification": justification,
             "version": request.form.get(f"version-{item}") or None} for item in ticked]})
        result = decide_many(me, campaign_id, data)
    except ApiError as error:
        return _render_queue(me, MultiDict(parse_qsl(urlsplit(back).query)), error, error.status)
    return redirect(_with(back, "saved", result["decided"]))


@bp.get("/review-items/<int:item_id>")
def item_page(item_id: int):
    item, _ = item_or_404(item_id, "view")
    return _render_item(item)


def _render_item(item, error: ApiError | None = None, submitted: dict[str, Any] | None = None, status: int = 200):
    session = get_session()
    me = caller()
    engine = get_engine()
    attributes = {"reviewer": item.reviewer}
    key = f"review_item:{item.id}"
    allowed = {permission: engine.is_allowed_on_object(me, permission, key, attributes)
               for permission in ("decide", "override", "reassign")}
    return render_template("item.html", item=review.item_state(item), history=review.item_history(session, item.id),
                           campaign=review.get_campaign(session, item.campaign_id), allowed=allowed, error=error,
                           submitted=submitted or {}), status


def _back_to(default: str) -> str:
    """The queue page the form was on (with its filters), or ``default``."""
    target = request.form.get("next", "")
    return target if target.startswith("/ui/reviews") else default


@bp.post("/review-items/<int:item_id>/decision")
def decide(item_id: int):
    target = decision_target(item_id)
    submitted = {"decision": request.form.get("decision") or None,
                 "justification": request.form.get("justification", "").strip() or None}
    try:
        record_decision(target, parse_query(DecisionBody, {**submitted, "version": request.form.get("version") or None}))
    except ApiError as error:
        return _render_item(target.item, error, submitted, error.status)
    queue_url = url_for("web.queue", campaign=target.item.campaign_id)
    return redirect(_with(_back_to(queue_url), "done", item_id) + f"#item-{item_id}")


@bp.post("/review-items/<int:item_id>/reassign")
def reassign(item_id: int):
    item, principal = item_or_404(item_id, "reassign")
    submitted = {"to": request.form.get("to", "").strip(), "reason": request.form.get("reason", "").strip()}
    try:
        reassign_item(item, principal, parse_query(ReassignBody, {**submitted,
                                                                  "version": request.form.get("version") or None}))
    except ApiError as error:
        return _render_item(item, error, submitted, error.status)
    return redirect(_with(url_for("web.queue", campaign=item.campaign_id), "done", item_id))


def _with(url: str, name: str, value: int) -> str:
    """``url`` with one more query parameter (what the queue says was just saved)."""
    return f"{url}{'&' if '?' in url else '?'}{name}={value}"


@bp.app_template_filter("permissions")
def _permissions(effective: dict[str, list[str]] | None) -> str:
    """``{"document": ["edit", "read"]}`` as ``document: edit, read``."""
    return "; ".join(f"{kind}: {', '.join(perms)}" for kind, perms in sorted((effective or {}).items())) or "none"
