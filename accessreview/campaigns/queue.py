"""A reviewer's queue as the pages show it: filtered and searched, counted, and a page at a time
(page k of n), with a summary of what is decided and what is recommended."""

from __future__ import annotations

from dataclasses import dataclass
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
    recommendation: str | None = None  # keep | revoke | none


def _contains(column, text: str):
    return func.lower(column).contains(text.lower(), autoescape=True)


def _where(f: QueueFilter, *, with_status: bool = True) -> list[Any]:
    where: list[Any] = [ReviewItem.reviewer == f.reviewer]
    if f.campaign is not None:
        where.append(ReviewItem.campaign_id == f.campaign)
    if with_status and f.status:
        where.append(ReviewItem.status == f.status)
    if f.person:
        named = select(Principal.key).where(_contains(Principal.name, f.person))
        where.append(or_(_contains(ReviewItem.principal_key, f.person), ReviewItem.principal_key.in_(named)))
    if f.resource:
        where.append(_contains(ReviewItem.resource_key, f.resource))
    if f.role:
        where.append(func.lower(ReviewItem.role) == f.role.lower())
    if f.recommendation:
        where.append(ReviewItem.recommendation == f.recommendation)
    return where


def summary(session: Session, f: QueueFilter) -> dict[str, Any]:
    """Of the reviewer's items (in the chosen campaign, whatever the other filters): how many are
    decided, and what is recommended for those still to decide."""
    rows = session.execute(select(ReviewItem.status, ReviewItem.recommendation, func.count())
                           .where(*_where(QueueFilter(f.reviewer, f.campaign, None)))
                           .group_by(ReviewItem.status, ReviewItem.recommendation)).all()
    decided = sum(count for status, _, count in rows if status == "decided")
    to_decide = {"keep": 0, "revoke": 0, "none": 0}
    for status, recommendation, count in rows:
        if status == "pending":
            to_decide[recommendation if recommendation in to_decide else "none"] += count
    total = decided + sum(to_decide.values())
    return {"decided": decided, "total": total, "pending": total - decided, "recommended": to_decide}


def page(session: Session, f: QueueFilter, number: int, per_page: int) -> dict[str, Any]:
    """Page ``number`` (from 1) of the items matching ``f``, oldest item first, with their campaigns;
    a number past the end gives the last page."""
    where = _where(f)
    matching = session.scalar(select(func.count()).select_from(ReviewItem).where(*where)) or 0
    pages = max(1, ceil(matching / per_page))
    number = min(max(1, number), pages)
    items = [item_state(i) for i in session.scalars(select(ReviewItem).where(*where).order_by(ReviewItem.id)
                                                    .offset((number - 1) * per_page).limit(per_page))]
    campaigns = {c.id: campaign_state(c) for c in session.scalars(
        select(Campaign).where(Campaign.id.in_({i["campaign_id"] for i in items})))} if items else {}
    return {"items": items, "campaigns": campaigns, "matching": matching, "page": number, "pages": pages}


def roles(session: Session, reviewer: str, campaign: int | None) -> list[str]:
    """The roles among the reviewer's items, for the filter's choices."""
    return [role for role in session.scalars(select(ReviewItem.role).distinct().where(
        *_where(QueueFilter(reviewer, campaign, None)), ReviewItem.role.is_not(None)).order_by(ReviewItem.role))]
