"""How reviews are going, measured from the review items and their history."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..clock import as_utc
from ..models import Campaign, ReviewEvent, ReviewItem


def campaign_measures(session: Session, campaign: Campaign, now: datetime) -> dict[str, Any]:
    items = session.execute(select(
        ReviewItem.status, ReviewItem.decision, ReviewItem.automated_rule, ReviewItem.reviewer_of_record,
        ReviewItem.decided_at, ReviewItem.escalated_at, ReviewItem.remediation_state, ReviewItem.overridden)
        .where(ReviewItem.campaign_id == campaign.id)).all()
    changes = session.scalar(select(func.count()).select_from(ReviewEvent).join(ReviewItem).where(
        ReviewItem.campaign_id == campaign.id, ReviewEvent.kind.in_(("changed", "overridden")))) or 0
    launched, due = as_utc(campaign.launched_at), as_utc(campaign.due_at)
    total = len(items)
    decided = [i for i in items if i.status == "decided"]
    human = [i for i in decided if i.automated_rule is None]
    late_now = now > due and campaign.status == "open"
    per_reviewer: dict[str | None, list] = defaultdict(list)
    for item in items:
        per_reviewer[item.reviewer_of_record].append(item)
    finished = sum(1 for rows in per_reviewer.values() if all(r.status == "decided" and r.automated_rule is None
                                                              for r in rows))
    times = [(as_utc(i.decided_at) - launched).total_seconds() / 3600 for i in human]
    remediation = Counter(i.remediation_state for i in items if i.remediation_state)
    return {
        "campaign": campaign.id,
        "status": campaign.status,
        "items": total,
        "decided": len(decided),
        "decided_percent": round(100 * len(decided) / total, 1) if total else 100.0,
        "keep": sum(1 for i in human if i.decision == "keep"),
        "revoke": sum(1 for i in human if i.decision == "revoke"),
        "automated": sum(1 for i in decided if i.automated_rule),
        "overridden": sum(1 for i in items if i.overridden),
        "overdue": sum(1 for i in items if i.status == "pending") if late_now else
        sum(1 for i in human if as_utc(i.decided_at) > due),
        "escalated": sum(1 for i in items if i.escalated_at),
        "median_hours_to_decision": round(statistics.median(times), 2) if times else None,
        "cycle_hours": round((as_utc(campaign.signed_off_at) - launched).total_seconds() / 3600, 2)
        if campaign.signed_off_at else None,
        "reviewers": len(per_reviewer),
        "reviewer_completion_percent": round(100 * finished / len(per_reviewer), 1) if per_reviewer else 100.0,
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
