"""A reviewer's queue as the pages show it: filtered and searched, counted, and a page at a time
(page k of n), with a summary of what is decided and what is recommended."""

from __future__ import annotations

from dataclasses import dataclass, replace
from math import ceil
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from ..models import Campaign, Principal, ReviewItem
from .review import campaign_state, item_state


@dataclass(frozen=True)
class QueueFilter:
    reviewer: str
    campaign: int | None = None
    status: str | None = "pending"  # pending | decided | None for both
    person: str | None = None  # part of the principal's key or name
    resource: str | None = None  # part of the resource's key
    role: str | None = None
    recommendation: str | None = None  # keep | revoke | none (anything else: nothing to accept)


ACCEPTABLE = ("keep", "revoke")  # advice a reviewer can accept; the rest ("review", "none") is none


def _advice(recommendation: str | None) -> str:
    return recommendation if recommendation in ACCEPTABLE else "none"


def _contains(column, text: str):
    return func.lower(column).contains(text.lower(), autoescape=True)


def _where(f: QueueFilter) -> list[Any]:
    where: list[Any] = [ReviewItem.reviewer == f.reviewer]
    if f.campaign is not None:
        where.append(ReviewItem.campaign_id == f.campaign)
    if f.status:
        where.append(ReviewItem.status == f.status)
    if f.person:  # principals are never removed from the directory: every item's is there to search
        where.append(ReviewItem.principal_key.in_(select(Principal.key).where(
            or_(_contains(Principal.key, f.person), _contains(Principal.name, f.person)))))
    if f.resource:
        where.append(_contains(ReviewItem.resource_key, f.resource))
    if f.role:
        where.append(func.lower(ReviewItem.role) == f.role.lower())
    if f.recommendation in ("keep", "revoke"):
        where.append(ReviewItem.recommendation == f.recommendation)
    elif f.recommendation:
        where.append(ReviewItem.recommendation.not_in(ACCEPTABLE))
    return where


def _overview(session: Session, reviewer: str) -> list[tuple[int, str, str, str | None, int]]:
    """The reviewer's items counted by campaign, status, recommendation and role: one pass over
    their items, from which the summary, the filter's choices and most counts are read."""
    return [tuple(row) for row in session.execute(  # type: ignore[misc]
        select(ReviewItem.campaign_id, ReviewItem.status, ReviewItem.recommendation, ReviewItem.role, func.count())
        .where(ReviewItem.reviewer == reviewer)
        .group_by(ReviewItem.campaign_id, ReviewItem.status, ReviewItem.recommendation, ReviewItem.role))]


def view(session: Session, f: QueueFilter, number: int, per_page: int) -> dict[str, Any]:
    """Page ``number`` (from 1; past the end: the last page) of the items matching ``f``, oldest
    first, with their campaigns; a summary of the reviewer's items in the chosen campaign (decided
    of all, and what is recommended for the rest); the reviewer's campaigns with their counts; and
    the roles among their items, for the filter's choices."""
    rows = _overview(session, f.reviewer)
    chosen = [row for row in rows if f.campaign is None or row[0] == f.campaign]
    decided = sum(count for _, status, _, _, count in chosen if status == "decided")
    recommended = {"keep": 0, "revoke": 0, "none": 0}
    for _, status, recommendation, _, count in chosen:
        if status == "pending":
            recommended[_advice(recommendation)] += count
    total = sum(count for *_, count in chosen)
    if f.person or f.resource:
        matching = session.scalar(select(func.count()).select_from(ReviewItem).where(*_where(f))) or 0
    else:
        matching = sum(count for _, status, recommendation, role, count in chosen
                       if (not f.status or status == f.status)
                       and (not f.recommendation or _advice(recommendation) == f.recommendation)
                       and (not f.role or (role or "").lower() == f.role.lower()))
    pages = max(1, ceil(matching / per_page))
    number = min(max(1, number), pages)
    # The page's ids first (read from ix_review_items_queue, skipping earlier pages without visiting
    # their items), then only those items.
    ids = list(session.scalars(select(ReviewItem.id).where(*_where(f)).order_by(ReviewItem.id)
                               .offset((number - 1) * per_page).limit(per_page)))
    items = [item_state(i) for i in session.scalars(select(ReviewItem).where(ReviewItem.id.in_(ids))
                                                    .order_by(ReviewItem.id))] if ids else []
    per_campaign: dict[int, dict[str, int]] = {}
    for campaign_id, status, _, _, count in rows:
        counts = per_campaign.setdefault(campaign_id, {"pending": 0, "decided": 0})
        counts[status] = counts.get(status, 0) + count
    campaigns = {c.id: campaign_state(c) for c in session.scalars(
        select(Campaign).where(Campaign.id.in_(per_campaign)))} if per_campaign else {}
    return {
        "items": items, "campaigns": campaigns, "matching": matching, "page": number, "pages": pages,
        "summary": {"decided": decided, "total": total, "pending": total - decided, "recommended": recommended},
        "queues": [{"campaign": campaigns[cid], **per_campaign[cid]} for cid in sorted(per_campaign, reverse=True)],
        "roles": sorted({role for _, _, _, role, _ in chosen if role}),
    }


def to_decide(session: Session, f: QueueFilter, limit: int) -> tuple[list[int], int]:
    """The reviewer's items still to decide that match ``f`` (whatever status it shows), in open
    campaigns, oldest first: the first ``limit`` of their ids, and how many there are in all."""
    where = [*_where(replace(f, status="pending")),
             ReviewItem.campaign_id.in_(select(Campaign.id).where(Campaign.status == "open"))]
    total = session.scalar(select(func.count()).select_from(ReviewItem).where(*where)) or 0
    ids = list(session.scalars(select(ReviewItem.id).where(*where).order_by(ReviewItem.id).limit(limit)))
    return ids, total
