"""How reviews are going, measured from the review items and their history."""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from ..clock import as_utc
from ..models import Campaign, ReviewEvent, ReviewItem

REMEDIATION_STATES = ("pending", "applied", "verified", "failed")
OVERDUE_DEFINITION = ("An item is overdue when its decision, by hand or by the no-response rule, came at or after "
                      "the due date, or when it is still undecided at or after the due date. It counts against "
                      "the reviewer of record (the reviewer the item was assigned to).")


def decided_by_hand(session: Session, campaign_id: int, person: str) -> tuple[int, int]:
    """How many items of the campaign ``person`` decided by hand (as reviewer or overriding one), and
    how many of those decisions overrode a reviewer."""
    decided, overrode = session.execute(select(
        func.count(), func.coalesce(func.sum(case((ReviewItem.overridden.is_(True), 1), else_=0)), 0)).where(
        ReviewItem.campaign_id == campaign_id, ReviewItem.decided_by == person,
        ReviewItem.automated_rule.is_(None))).one()
    return int(decided), int(overrode)


def overdue_condition(campaign: Campaign, now: datetime):
    """The one definition of overdue (:data:`OVERDUE_DEFINITION`), as a SQL condition on review items."""
    late = ReviewItem.decided_at >= campaign.due_at
    if as_utc(now) >= as_utc(campaign.due_at):
        return or_(late, ReviewItem.status == "pending")
    return late


def is_overdue(campaign: Campaign, now: datetime, decided_at: datetime | None) -> bool:
    """:func:`overdue_condition` for one item, in Python."""
    due = as_utc(campaign.due_at)
    return as_utc(decided_at) >= due if decided_at is not None else as_utc(now) >= due


def campaign_measures(session: Session, campaign: Campaign, now: datetime) -> dict[str, Any]:
    """Counted by the database (a campaign may hold hundreds of thousands of items); only the times of
    decisions made by hand come back, for their median."""
    of_campaign = ReviewItem.campaign_id == campaign.id
    changes = session.scalar(select(func.count()).select_from(ReviewEvent).join(ReviewItem).where(
        of_campaign, ReviewEvent.kind.in_(("changed", "overridden")))) or 0
    launched = as_utc(campaign.launched_at)
    human = and_(ReviewItem.status == "decided", ReviewItem.automated_rule.is_(None))
    automated = ReviewItem.automated_rule.is_not(None)
    reviewer = func.coalesce(ReviewItem.reviewer_of_record, "")  # items with none count as one reviewer
    counts = {
        "decided": ReviewItem.status == "decided", "automated": ReviewItem.automated_rule.is_not(None),
        "keep": and_(human, ReviewItem.decision == "keep"), "revoke": and_(human, ReviewItem.decision == "revoke"),
        "automated_keep": and_(automated, ReviewItem.decision == "keep"),
        "automated_revoke": and_(automated, ReviewItem.decision == "revoke"),
        "overridden": ReviewItem.overridden.is_(True), "escalated": ReviewItem.escalated_at.is_not(None),
        "overdue": overdue_condition(campaign, now),
        **{f"remediation {state}": ReviewItem.remediation_state == state for state in REMEDIATION_STATES},
    }
    session.flush()  # the reads below are Core statements, which do not autoflush
    counted = session.connection().execute(select(
        func.count().label("items"),
        *(func.coalesce(func.sum(case((condition, 1), else_=0)), 0).label(name) for name, condition in counts.items()),
        func.count(reviewer.distinct()).label("reviewers"),
        # reviewers of record with an item not decided by hand
        func.count(case((~human, reviewer)).distinct()).label("reviewers_unfinished"),
    ).where(of_campaign)).one()
    row = {name: int(value) for name, value in counted._mapping.items()}  # PostgreSQL's sums may be numeric
    total, decided = row["items"], row["decided"]
    hours = [(as_utc(decided_at) - launched).total_seconds() / 3600 for (decided_at,) in session.connection().execute(
        select(ReviewItem.decided_at).where(of_campaign, human).execution_options(yield_per=5000))]
    remediation = {state: row[f"remediation {state}"] for state in REMEDIATION_STATES if row[f"remediation {state}"]}
    return {
        "campaign": campaign.id,
        "status": campaign.status,
        "items": total,
        "decided": decided,
        "decided_percent": round(100 * decided / total, 1) if total else 100.0,
        "keep": row["keep"],
        "revoke": row["revoke"],
        "automated": row["automated"],
        "automated_keep": row["automated_keep"],
        "automated_revoke": row["automated_revoke"],
        "kept_total": row["keep"] + row["automated_keep"],
        "revoked_total": row["revoke"] + row["automated_revoke"],
        "overridden": row["overridden"],
        "overdue": row["overdue"],
        "escalated": row["escalated"],
        "median_hours_to_decision": round(statistics.median(hours), 2) if hours else None,
        "cycle_hours": round((as_utc(campaign.signed_off_at) - launched).total_seconds() / 3600, 2)
        if campaign.signed_off_at else None,
        "reviewers": row["reviewers"],
        "reviewer_completion_percent": round(100 * (row["reviewers"] - row["reviewers_unfinished"]) / row["reviewers"],
                                             1) if row["reviewers"] else 100.0,
        "corrections": {"decisions_changed": changes, "remediation_failures": remediation.get("failed", 0)},
        "remediation": remediation,
        "access_removed": remediation.get("verified", 0),
    }


def review_measures(session: Session, now: datetime) -> dict[str, Any]:
    campaigns = list(session.scalars(select(Campaign).order_by(Campaign.id)))
    per_campaign = [campaign_measures(session, c, now) for c in campaigns]
    summed = ("items", "decided", "keep", "revoke", "automated", "overdue", "escalated", "access_removed")
    totals = Counter(dict.fromkeys((*summed, "decisions_changed", "remediation_failures"), 0))  # 0s, not absent
    for m in per_campaign:
        for key in summed:
            totals[key] += m[key]
        totals["decisions_changed"] += m["corrections"]["decisions_changed"]
        totals["remediation_failures"] += m["corrections"]["remediation_failures"]
    cycles = [m["cycle_hours"] for m in per_campaign if m["cycle_hours"] is not None]
    return {"campaigns": len(campaigns), "open": sum(1 for c in campaigns if c.status == "open"),
            **totals, "median_cycle_hours": statistics.median(cycles) if cycles else None,
            "per_campaign": per_campaign}
