"""How reviews are going, measured from the review items and their history."""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..clock import as_utc
from ..models import Campaign, ReviewEvent, ReviewItem


def campaign_measures(session: Session, campaign: Campaign, now: datetime) -> dict[str, Any]:
    """One pass over the items (streamed: a campaign may hold hundreds of thousands)."""
    changes = session.scalar(select(func.count()).select_from(ReviewEvent).join(ReviewItem).where(
        ReviewItem.campaign_id == campaign.id, ReviewEvent.kind.in_(("changed", "overridden")))) or 0
    launched, due = as_utc(campaign.launched_at), as_utc(campaign.due_at)
    late_now = now > due and campaign.status == "open"
    counts: Counter[str] = Counter()
    remediation: Counter[str] = Counter()
    reviewers: dict[str | None, bool] = {}  # reviewer of record -> decided all of theirs by hand
    hours: list[float] = []
    session.flush()  # Core reads below do not autoflush; the ORM's row handling would double their time
    for status, decision, automated, reviewer, decided_at, escalated_at, remediation_state, overridden in \
            session.connection().execute(select(
                ReviewItem.status, ReviewItem.decision, ReviewItem.automated_rule, ReviewItem.reviewer_of_record,
                ReviewItem.decided_at, ReviewItem.escalated_at, ReviewItem.remediation_state, ReviewItem.overridden)
                .where(ReviewItem.campaign_id == campaign.id).execution_options(yield_per=5000)):
        counts["items"] += 1
        human = status == "decided" and automated is None
        counts["decided"] += status == "decided"
        counts["automated"] += automated is not None
        counts["keep"] += human and decision == "keep"
        counts["revoke"] += human and decision == "revoke"
        counts["overridden"] += bool(overridden)
        counts["escalated"] += escalated_at is not None
        counts["pending"] += status == "pending"
        if human:
            hours.append((as_utc(decided_at) - launched).total_seconds() / 3600)
            counts["late"] += as_utc(decided_at) > due
        reviewers[reviewer] = reviewers.get(reviewer, True) and human
        if remediation_state:
            remediation[remediation_state] += 1
    total = counts["items"]
    return {
        "campaign": campaign.id,
        "status": campaign.status,
        "items": total,
        "decided": counts["decided"],
        "decided_percent": round(100 * counts["decided"] / total, 1) if total else 100.0,
        "keep": counts["keep"],
        "revoke": counts["revoke"],
        "automated": counts["automated"],
        "overridden": counts["overridden"],
        "overdue": counts["pending"] if late_now else counts["late"],
        "escalated": counts["escalated"],
        "median_hours_to_decision": round(statistics.median(hours), 2) if hours else None,
        "cycle_hours": round((as_utc(campaign.signed_off_at) - launched).total_seconds() / 3600, 2)
        if campaign.signed_off_at else None,
        "reviewers": len(reviewers),
        "reviewer_completion_percent": round(100 * sum(reviewers.values()) / len(reviewers), 1)
        if reviewers else 100.0,
        "corrections": {"decisions_changed": changes, "remediation_failures": remediation.get("failed", 0)},
        "remediation": dict(remediation),
        "access_removed": remediation.get("verified", 0),
    }


def review_measures(session: Session, now: datetime) -> dict[str, Any]:
    campaigns = list(session.scalars(select(Campaign).order_by(Campaign.id)))
    per_campaign = [campaign_measures(session, c, now) for c in campaigns]
    totals = Counter()
    for m in per_campaign:
        for key in ("items", "decided", "keep", "revoke", "automated", "overdue", "escalated", "access_removed"):
            totals[key] += m[key]
        totals["decisions_changed"] += m["corrections"]["decisions_changed"]
        totals["remediation_failures"] += m["corrections"]["remediation_failures"]
    cycles = [m["cycle_hours"] for m in per_campaign if m["cycle_hours"] is not None]
    return {"campaigns": len(campaigns), "open": sum(1 for c in campaigns if c.status == "open"),
            **totals, "median_cycle_hours": statistics.median(cycles) if cycles else None,
            "per_campaign": per_campaign}
