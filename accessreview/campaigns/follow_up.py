"""The follow-up: some days after remediation, did revoked access come back by another road?

A hold keeps the revoked grant itself out of the directory, but access can return another way: a
new group membership, a grant on a parent. The definition's ``holds.follow_up_days`` (7 by default)
after remediation, a job (``follow_up``) checks every verified revocation through the engine again,
a chunk a step, records what came back (with the grants that give it) as findings on the campaign,
and makes a new signed report. The scheduler starts it; ``start_follow_up`` runs it at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import jobs
from ..audit import WriteContext, append_event
from ..clock import as_utc
from ..errors import Conflict
from ..models import Campaign, Job, ReviewItem
from .remediation import GROUPS_FROZEN, item_rows, remaining_access, signed_report

FOLLOW_UP_CHUNK = 1000
FINDINGS_AT_MOST = 10_000  # listed on the campaign; beyond, counted


def due_at(campaign: Campaign) -> datetime | None:
    """When the campaign's follow-up is due: its definition's days after remediation (None: not yet remediated)."""
    snapshot = campaign.remediation_snapshot
    if not snapshot or campaign.status != "signed_off":
        return None
    days = ((campaign.settings or {}).get("holds") or {}).get("follow_up_days", 7)
    return as_utc(datetime.fromisoformat(snapshot["taken_at"])) + timedelta(days=days)


def start_follow_up(session: Session, ctx: WriteContext, campaign: Campaign) -> Job:
    if campaign.remediation_snapshot is None:
        raise Conflict("a follow-up comes after remediation", code="not_remediated", field="campaign")
    return jobs.start(session, ctx, "follow_up", f"campaign:{campaign.id}", {"campaign": campaign.id})


def due_campaigns(session: Session, now: datetime) -> list[int]:
    candidates = session.scalars(select(Campaign).where(Campaign.status == "signed_off",
                                                        Campaign.follow_up.is_(None)))
    return [c.id for c in candidates if (due := due_at(c)) is not None and due <= now]


@jobs.kind("follow_up")
def follow_up_step(run: jobs.JobRun) -> None:
    session, ctx, job = run.session, run.ctx, run.job
    campaign = session.get(Campaign, job.params["campaign"])
    if job.progress_total is None:
        job.progress_total = session.scalar(select(func.count()).select_from(ReviewItem).where(
            ReviewItem.campaign_id == campaign.id, ReviewItem.decision == "revoke",
            ReviewItem.remediation_state == "verified"))
    if job.phase in ("start", "check"):
        findings, last, seen = check(session, run.engine, campaign, ctx.now, after=job.cursor.get("last", 0),
                                     limit=FOLLOW_UP_CHUNK)
        kept = job.cursor.get("findings", [])
        run.advance("check" if last else "record", done=job.progress_done + seen, last=last or 0,
                    findings=(kept + findings)[:FINDINGS_AT_MOST],
                    found=job.cursor.get("found", 0) + len(findings))
    elif job.phase == "record":
        campaign.follow_up = {"checked_at": ctx.now.isoformat(), "checked": job.progress_done,
                              "found": job.cursor.get("found", 0), "findings": job.cursor.get("findings", [])}
        append_event(session, ctx, "campaign.followed_up", f"campaign:{campaign.id}", None,
                     {"checked": job.progress_done, "found": campaign.follow_up["found"],
                      "findings": campaign.follow_up["findings"][:100]})
        job.result = {**job.result, "campaign": campaign.id, "follow_up": {"checked": job.progress_done,
                                                                            "found": campaign.follow_up["found"]}}
        run.advance("report")
    elif job.phase == "report":
        signed_report(run, campaign, "follow_up")
        run.finish(campaign=campaign.id)


def check(session: Session, engine, campaign: Campaign, now: datetime, *, after: int, limit: int
          ) -> tuple[list[dict[str, Any]], int | None, int]:
    """Verified revocations with ids above ``after``, up to ``limit``: what of their access is back."""
    snapshot = engine.refresh()
    items = item_rows(session, campaign, ("verified",), after, limit, ReviewItem.decision == "revoke",
                   extra=(ReviewItem.role, GROUPS_FROZEN, ReviewItem.effective_permissions))
    representatives: dict = {}
    findings = []
    for item in items:
        for access in remaining_access(snapshot.index, snapshot.evaluator, item, now, representatives):
            findings.append({"item": item.id, "principal": item.principal_key, "role": item.role,
                             "resource": item.resource_key, "actor": access.actor, "permission": access.permission,
                             "on": access.resource, "grants": list(access.grants), "detail": access.text})
    return findings, (items[-1].id if items else None), len(items)
