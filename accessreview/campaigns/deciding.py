"""Deciding review items, as the API and the pages take it: who may decide or hand on an item (its
reviewer, or a security lead's override), and recording it in one unit of work.

The caller is authenticated; each function asks the policy about the item before it reads or changes
anything, and answers 404 for an item the caller may not even look at."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import g
from sqlalchemy import select

from ..authz.engine import get_engine
from ..db import get_session
from ..errors import NotFound
from ..guard import authorize_object, caller, unit_of_work
from ..models import Campaign, ReviewItem
from . import review
from .schemas import BulkDecisions, DecisionBody, ReassignBody


def declared_types() -> set[str]:
    return set(get_engine().policy.declarations.resource_types)


def item_or_404(item_id: int, permission: str) -> tuple[ReviewItem, str]:
    """The item, with the caller authorized for ``permission`` on it (404 if it may not even look)."""
    item = get_session().get(ReviewItem, item_id)
    if item is None:
        caller()
        g.authorization_decision = (permission, f"review_item:{item_id}", False)  # a deny, then 404
        raise NotFound(f"review item {item_id} does not exist", field="id")
    return item, authorize_object(permission, f"review_item:{item_id}", {"reviewer": item.reviewer})


def _may(principal: str, permission: str, item: ReviewItem) -> bool:
    return get_engine().is_allowed_on_object(principal, permission, f"review_item:{item.id}",
                                             {"reviewer": item.reviewer})


def _now_overriding(principal: str, item: ReviewItem, overriding: bool) -> tuple[bool, str | None]:
    """Asked again of ``item`` as it is now (locked): whether the caller overrides it, and, when what
    they were authorized for no longer holds (the item was handed on, escalated or passed to its next
    stage since), why. A reviewer's own decision never turns into an override unasked."""
    if _may(principal, "decide", item):
        return False, None
    if overriding and _may(principal, "override", item):
        return True, None
    return overriding, f"it was handed on to {item.reviewer}"


def decide_many(principal: str, campaign_id: int, data: BulkDecisions) -> dict[str, Any]:
    """Each item authorized like a single decision (its reviewer, or a security lead's override);
    then all are written, or none."""
    session = get_session()
    campaign = session.get(Campaign, campaign_id)
    ids = [d.item for d in data.decisions]
    items = {i.id: i for i in session.scalars(select(ReviewItem).where(ReviewItem.id.in_(ids)))}
    overriding: dict[int, bool] = {}
    for decision in data.decisions:
        item = items.get(decision.item)
        own = item is not None and _may(principal, "decide", item)
        if campaign is None or item is None or item.campaign_id != campaign_id or \
                not (own or _may(principal, "override", item)):
            g.authorization_decision = ("decide", f"review_item:{decision.item}", False)
            raise NotFound(f"review item {decision.item} is not in campaign {campaign_id} (or not yours to decide)",
                           field="decisions")
        overriding[item.id] = not own
    g.authorization_decision = ("decide", f"campaign:{campaign_id}", True)
    with unit_of_work(principal) as (session, ctx):
        campaign, locked = review.lock_for_change(session, campaign_id, ids)
        requests = []
        for decision in data.decisions:
            item = locked[decision.item]
            override, handed_on = _now_overriding(principal, item, overriding[item.id])
            requests.append(review.DecisionRequest(item, decision.decision, decision.justification, override,
                                                   decision.version, handed_on))
        return review.decide_many(session, ctx, campaign, requests)


@dataclass(frozen=True)
class DecisionTarget:
    item: ReviewItem
    principal: str
    overriding: bool  # a security lead's override of the assigned reviewer


def decision_target(item_id: int) -> DecisionTarget:
    """The item the caller may decide: its own, or one a security lead overrides (404 or 403 if neither)."""
    item, principal = item_or_404(item_id, "view")
    overriding = not _may(principal, "decide", item)
    if overriding:
        authorize_object("override", f"review_item:{item_id}", {"reviewer": item.reviewer})
    return DecisionTarget(item, principal, overriding)


def record_decision(target: DecisionTarget, data: DecisionBody) -> dict[str, Any]:
    """The decision, made on the item as it is once locked (authorized again on it)."""
    with unit_of_work(target.principal) as (session, ctx):
        campaign, locked = review.lock_for_change(session, target.item.campaign_id, [target.item.id])
        item = locked[target.item.id]
        override, handed_on = _now_overriding(target.principal, item, target.overriding)
        return review.decide(session, ctx, campaign, review.DecisionRequest(
            item, data.decision, data.justification, override, data.version, handed_on))


def reassign_item(item: ReviewItem, principal: str, data: ReassignBody) -> dict[str, Any]:
    """Its reviewer delegates, or a security lead reassigns (the caller is authorized to reassign), to
    an active user the policy would let decide it, who is not the reviewed principal nor one of its
    members (422 naming why not); on the item as it is once locked, which must still be the
    caller's to hand on."""
    engine = get_engine()
    subject = item.principal_key
    members = engine.snapshot().index.members(subject) if subject.startswith("group:") else []
    delegating = principal == item.reviewer

    def may_review(reviewer: str) -> bool:
        return engine.is_allowed_on_object(reviewer, "decide", f"review_item:{item.id}", {"reviewer": reviewer})

    with unit_of_work(principal) as (session, ctx):
        _, locked = review.lock_for_change(session, item.campaign_id, [item.id])
        item = locked[item.id]
        if delegating and item.reviewer != principal:
            raise review.stale(item, data.version, f"it was handed on to {item.reviewer}")
        return review.reassign(session, ctx, item, data.to, data.reason, delegated=delegating,
                               may_review=may_review, members=members, seen_version=data.version)
