"""A reviewer's pages: the queue (every item with what it gives, how it was used, and what is
recommended, each with its own keep/revoke form, and ticked items decided at once), one item with
its history, and delegation."""

from __future__ import annotations

from collections import Counter
from functools import partial
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from flask import g, redirect, render_template, request, url_for
from pydantic import BaseModel, Field
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from ..authz.engine import get_engine
from ..campaigns import review
from ..campaigns.deciding import decide_many, decision_target, item_or_404, reassign_item, record_decision
from ..campaigns.queue import QueueFilter, to_decide, view as queue_view
from ..campaigns.schemas import BulkDecisions, DecisionBody, ReassignBody
from ..db import get_session
from ..errors import ApiError, BadRequest
from ..guard import authorize_object, caller, page_limit
from ..models import Campaign, ReviewItem
from ..validation import RowId, column_text, parse_query
from .blueprint import bp, page_query_of
from .forms import as_error, beside, problems

MAX_TICKED = 1000  # the API's bulk limit
OPPOSITE = {"keep": "revoke", "revoke": "keep"}


class QueueQuery(BaseModel):
    campaign: RowId | None = None
    status: Literal["pending", "decided", "all"] = "pending"
    person: column_text(ReviewItem.principal_key) | None = None  # type: ignore[valid-type]
    resource: column_text(ReviewItem.resource_key) | None = None  # type: ignore[valid-type]
    role: column_text(ReviewItem.role) | None = None  # type: ignore[valid-type]
    recommendation: Literal["keep", "revoke", "none"] | None = None
    page: int = Field(1, ge=1, le=1_000_000)
    tick: Literal["all"] | None = None  # every box on this page ticked (select all, without script)
    done: RowId | None = None  # the item just decided or handed on, to say so
    saved: int | None = None  # how many were just decided at once

    def filter(self, reviewer: str) -> QueueFilter:
        return QueueFilter(reviewer, self.campaign, None if self.status == "all" else self.status, self.person,
                           self.resource, self.role, self.recommendation)

    def url(self, **changes: Any) -> str:
        """This queue page's address with ``changes`` (what its links and forms come back to)."""
        args = {key: value for key, value in self.model_dump(exclude={"done", "saved", "tick"}).items()
                if value is not None and not (key == "page" and value == 1)}
        args.update(changes)
        return url_for("web.queue", **{key: value for key, value in args.items() if value is not None})


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


def _render_queue(me: str, args, *, drafts: dict[int, dict[str, str]] | None = None,
                  problems: dict[Any, dict[str, str]] | None = None, bulk: dict[str, Any] | None = None,
                  ticked: set[int] | None = None, saved_item: int | None = None, status: int = 200):
    """The queue, with what was typed into its forms (``drafts`` per item, ``bulk``), the boxes
    that were ticked, and every problem beside its field (``problems`` per item id, or "bulk")."""
    try:
        q = page_query_of(QueueQuery, args)
    except BadRequest as error:  # a hand-edited address: the queue unfiltered, with what was wrong
        q, problems = QueueQuery(), {"filters": {error.field or "form": error.message}}
        status = error.status
    session = get_session()
    found = queue_view(session, q.filter(me), q.page, page_limit(None))
    drafts = {item: {name: _shown(value) for name, value in typed.items()} for item, typed in (drafts or {}).items()}
    bulk = {name: _shown(value) for name, value in (bulk or {}).items()}
    return render_template("queue.html", found=found, query=q, drafts=drafts, problems=problems or {},
                           bulk=bulk, ticked=ticked or set(), summary=found["summary"],
                           queues=found["queues"], roles=found["roles"], saved_item=saved_item or q.done,
                           max_ticked=MAX_TICKED), status


def _shown(value: str | None) -> str | None:
    """Typed text shown again in the page: as typed, but never a NUL (refused beside its field)."""
    return value.replace("\x00", "") if value else value


def _drafts(form) -> dict[int, dict[str, str]]:
    """What was typed or chosen in each item's part of the queue's form."""
    drafts: dict[int, dict[str, str]] = {}
    for key, value in form.items():
        name, _, item = key.rpartition("-")
        if name in ("decision", "justification") and item.isdigit() and value.strip():
            drafts.setdefault(int(item), {})[name] = value if name == "justification" else value.strip()
    return drafts


def _ticked(form) -> list[int]:
    return sorted({int(value) for value in form.getlist("items") if value.isdigit()})


def _versions(ticked: list[int]) -> dict[int, str | None]:
    """The version of each ticked item the page showed (a change since then stops the decision)."""
    return {item: request.form.get(f"version-{item}") or None for item in ticked}


@bp.post("/reviews")
def queue_form():
    """The queue is one form, so nothing typed is lost: a press of one item's button records that
    item alone and shows the queue again with the others' drafts; the bulk buttons decide the ticked
    items (the same decision for all, or each its own recommendation, after a confirmation)."""
    me = _own_queue()
    back = _back_to(url_for("web.queue"))
    args = MultiDict(parse_qsl(urlsplit(back).query))
    drafts, ticked = _drafts(request.form), _ticked(request.form)
    bulk = {"decision": request.form.get("decision"), "justification": request.form.get("justification", "")}
    again = partial(_render_queue, me, args, drafts=drafts, ticked=set(ticked), bulk=bulk)
    if request.form.get("record", "").isdigit():
        return _record_one(int(request.form["record"]), drafts, back, again)
    if request.form.get("matching") == "all":
        return _confirm_matching(me, args, back, again)
    if not ticked:
        return again(problems={"bulk": {"items": "Tick the items to decide first."}}, status=400)
    if len(ticked) > MAX_TICKED:
        return again(problems={"bulk": {"items": f"Tick at most {MAX_TICKED:,} items at once."}}, status=413)
    if request.form.get("bulk") == "accept":
        return _confirm_accept(me, ticked, back)
    decision = request.form.get("decision")
    if decision not in ("keep", "revoke"):
        return again(problems={"bulk": {"decision": "Choose keep or revoke for the ticked items."}}, status=400)
    justification = request.form.get("justification", "").strip() or None
    saved, refused, status = decide_ticked(me, ticked, lambda item: (decision, justification), _versions(ticked))
    if refused:
        said = _bulk_problem(saved, refused)
        for found in refused.values():  # the one justification was for all of them: said beside it
            if "justification" in found:
                said["justification"] = found.pop("justification")
        return again(problems={"bulk": said, **refused}, status=status)
    return redirect(_with(back, "saved", saved))


def _record_one(item_id: int, drafts, back: str, again):
    submitted = drafts.get(item_id, {})
    target = decision_target(item_id)
    body, found = problems(DecisionBody, {"decision": submitted.get("decision"),
                                          "justification": (submitted.get("justification") or "").strip() or None,
                                          "version": request.form.get(f"version-{item_id}") or None})
    status = 400  # what the form holds will not do; else what recording it answered
    if not found:
        try:
            record_decision(target, body)
        except ApiError as error:
            found, status = beside(error), error.status
    if found:
        return again(problems={item_id: _in_words(found)}, status=status)
    drafts.pop(item_id, None)
    if drafts:  # others are half-done: the queue again, as it was typed
        return again(saved_item=item_id)
    return redirect(_with(back, "done", item_id) + f"#item-{item_id}")


def _bulk_problem(saved: int, refused: dict[int, dict[str, str]]) -> dict[str, str]:
    said = f"{len(refused)} of the ticked items could not be decided (see beside each)"
    return {"form": said + (f"; the other {saved} were saved." if saved else "; nothing was saved.")}


def decide_ticked(me: str, ticked: list[int], outcome,
                  versions: dict[int, str | None]) -> tuple[int, dict[int, dict[str, str]], int]:
    """Decide the ticked items, each campaign's at once (all or nothing within a campaign, as the
    API's bulk decisions): ``outcome(item)`` gives the decision and justification. Returns how
    many were saved, the problems of the refused ones by item, and the status that fits them."""
    session = get_session()
    items = list(session.scalars(select(ReviewItem).where(ReviewItem.id.in_(ticked))))
    refused: dict[int, dict[str, str]] = {i: {"items": "This item is not yours to decide (or no longer exists)."}
                                         for i in set(ticked) - {item.id for item in items}}
    saved, status = 0, 404 if refused else 200
    by_campaign: dict[int, list[ReviewItem]] = {}
    for item in items:
        by_campaign.setdefault(item.campaign_id, []).append(item)
    for campaign_id, group in sorted(by_campaign.items()):
        decisions = [{"item": item.id, "decision": outcome(item)[0], "justification": outcome(item)[1],
                      "version": versions.get(item.id)} for item in group]
        try:
            saved += decide_many(me, campaign_id, parse_query(BulkDecisions, {"decisions": decisions}))["decided"]
        except ApiError as error:
            status = max(status, error.status)
            listed = [e for e in error.details.get("errors", []) if isinstance(e, dict)]
            for problem in listed:
                refused.setdefault(problem["item"], {})[problem.get("field") or "items"] = problem["message"]
            if not listed:
                for item in group:
                    refused.setdefault(item.id, {})["items"] = error.message
    return saved, refused, status


def _confirm_matching(me: str, args, back: str, again):
    """Every item still to decide that matches the queue's filter (on every page, the first
    MAX_TICKED of them, oldest first), and what deciding them would do, before anything is recorded:
    the same confirmation as for ticked items, which then sends their ids like ticked boxes."""
    try:
        q = page_query_of(QueueQuery, args)
    except BadRequest as error:
        return again(problems={"filters": {error.field or "form": error.message}}, status=error.status)
    ids, total = to_decide(get_session(), q.filter(me), MAX_TICKED)
    if not ids:
        return again(problems={"bulk": {"items": "No item still to decide matches this filter."}}, status=409)
    if request.form.get("bulk") == "accept":
        return _confirm_accept(me, ids, back, matching=total)
    decision = request.form.get("decision")
    if decision not in ("keep", "revoke"):
        return again(problems={"bulk": {"decision": "Choose keep or revoke for the items that match."}}, status=400)
    session = get_session()
    chosen = [review.item_state(item) for item in
              session.scalars(select(ReviewItem).where(ReviewItem.id.in_(ids)).order_by(ReviewItem.id))]
    return render_template("decide_confirm.html", chosen=chosen, matching=total, decision=decision,
                           justification=request.form.get("justification", ""), back=back,
                           limit=MAX_TICKED, by_campaign=_by_campaign(session, chosen),
                           against=sum(1 for i in chosen if i["recommendation"] == OPPOSITE[decision]))


def _by_campaign(session, items: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """How many of ``items`` each campaign holds, by the campaign's name."""
    counts = Counter(item["campaign_id"] for item in items)
    return [(campaign.name, counts[campaign.id]) for campaign in
            session.scalars(select(Campaign).where(Campaign.id.in_(counts)).order_by(Campaign.id))]


def _confirm_accept(me: str, ticked: list[int], back: str, matching: int | None = None):
    """The ticked items (or those matching the filter) and the outcome each would get, before
    anything is recorded."""
    session = get_session()
    accepted, left_out = [], []
    for item in session.scalars(select(ReviewItem).where(ReviewItem.id.in_(ticked[:MAX_TICKED]))
                                .order_by(ReviewItem.id)):
        campaign = session.get(Campaign, item.campaign_id)
        why_not = _why_not_accepted(me, item, campaign)
        (left_out if why_not else accepted).append((review.item_state(item), why_not))
    return render_template("accept.html", accepted=accepted, left_out=left_out, back=back, matching=matching,
                           limit=MAX_TICKED)


def _why_not_accepted(me: str, item: ReviewItem, campaign: Campaign) -> str | None:
    if item.reviewer != me:
        return "not yours to decide"
    if item.status != "pending":
        return f"already decided ({item.decision})"
    if campaign.status != "open":
        return f"its campaign is {campaign.status.replace('_', ' ')}"
    if item.recommendation not in ("keep", "revoke"):
        return "no recommendation to accept"
    return None


@bp.post("/reviews/accept")
def accept_recommendations():
    """Each confirmed item decided as recommended, its recommendation's reason as the justification."""
    me = _own_queue()
    back = _back_to(url_for("web.queue"))
    ticked = _ticked(request.form)
    session = get_session()
    acceptable = [item.id for item in session.scalars(select(ReviewItem).where(ReviewItem.id.in_(ticked[:MAX_TICKED])))
                  if not _why_not_accepted(me, item, session.get(Campaign, item.campaign_id))]
    if not acceptable:
        return _render_queue(me, MultiDict(parse_qsl(urlsplit(back).query)), problems={"bulk": {
            "items": "None of those items has a recommendation left to accept."}}, status=409)
    saved, refused, status = decide_ticked(me, acceptable,
                                           lambda item: (item.recommendation, item.recommendation_reason),
                                           _versions(acceptable))
    if refused:
        return _render_queue(me, MultiDict(parse_qsl(urlsplit(back).query)), ticked=set(ticked),
                             problems={"bulk": _bulk_problem(saved, refused), **refused}, status=status)
    return redirect(_with(back, "saved", saved))


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
    return render_template("item.html", item=review.item_state(item), history=review.item_history(session, item),
                           campaign=review.get_campaign(session, item.campaign_id), allowed=allowed, error=error,
                           found=_in_words(beside(error)), submitted=submitted or {}), status


def _in_words(found: dict[str, str]) -> dict[str, str]:
    if "decision" in found:
        found["decision"] = "Choose keep or revoke."
    return found


def _back_to(default: str) -> str:
    """The queue page the form was on (with its filters), or ``default``."""
    target = request.form.get("next", "")
    return target if target.startswith("/ui/reviews") else default


@bp.post("/review-items/<int:item_id>/decision")
def decide(item_id: int):
    target = decision_target(item_id)
    submitted = {"decision": request.form.get("decision") or None,
                 "justification": request.form.get("justification", "").strip() or None}
    body, found = problems(DecisionBody, {**submitted, "version": request.form.get("version") or None})
    try:
        if found:
            raise as_error(found, errors=found)
        record_decision(target, body)
    except ApiError as error:
        return _render_item(target.item, error, submitted, error.status)
    if target.overriding:  # a security lead has no queue of these: back to the campaign they came from
        return redirect(url_for("web.campaign_page", campaign_id=target.item.campaign_id, overridden=item_id))
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


@bp.app_template_filter("item_label")
def _item_label(item: dict[str, Any]) -> str:
    """What tells one item's controls from another's: ``item 7: user:ann editor on project:p1``
    (a filter, not a macro: the queue says it five times for each of its items)."""
    return f"item {item['id']}: {item['principal']['id']} {item['role']} on {item['resource']['id']}"


@bp.app_template_filter("permissions")
def _permissions(effective: dict[str, list[str]] | None) -> str:
    """``{"document": ["edit", "read"]}`` as ``document: edit, read``."""
    return "; ".join(f"{kind}: {', '.join(perms)}" for kind, perms in sorted((effective or {}).items())) or "none"
