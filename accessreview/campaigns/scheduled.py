"""The scheduled work of access reviews: launch what is due, remind, escalate, close.

Each pass opens its own sessions and commits per campaign, reads the one injected clock, and is
idempotent: launches are keyed by (definition, period), reminders by the day they are for, and
escalation and closing by the item's and campaign's state. Running a pass twice, or in two
scheduler processes at once, does the work once. Launching and closing are durable jobs that the
passes start and the worker runs; mail goes to the outbox.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Callable
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import jobs
from ..audit import WriteContext, append_event
from ..clock import as_utc
from ..errors import ApiError, Conflict
from ..models import Campaign, CampaignDefinition, Principal, ReviewItem
from ..notify import Message
from ..outbox import enqueue
from ..work import own_unit_of_work
from . import follow_up
from .launch import period_key, start_launch
from .review import record, start_close

log = logging.getLogger(__name__)
SCHEDULER = "system:scheduler"


def latest_period(schedule: dict[str, Any], since: datetime, now: datetime) -> datetime | None:
    """The most recent scheduled time in (since, now], or None: one launch per period, and after
    downtime only the latest missed period is launched."""
    zone = ZoneInfo(schedule.get("timezone") or "UTC")
    if schedule.get("cron"):
        trigger = CronTrigger.from_crontab(schedule["cron"], timezone=zone)
    else:
        # Without a start, the first period ends one interval after the definition was made.
        start = as_utc(datetime.fromisoformat(schedule["start"])) if schedule.get("start") \
            else since + timedelta(days=schedule["interval_days"])
        trigger = IntervalTrigger(days=schedule["interval_days"], start_date=start, timezone=zone)
    latest, fire = None, trigger.get_next_fire_time(None, since)
    while fire is not None and fire <= now:
        latest = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return latest


def _read(sessions: Callable[[], Session], statement) -> list:
    session = sessions()
    try:
        return list(session.scalars(statement))
    finally:
        session.close()


@contextmanager
def _each(sessions: Callable[[], Session], clock, what: str):
    """One committed unit of work per campaign; a failure is logged and rolled back, and the pass
    goes on with the next campaign."""
    try:
        with own_unit_of_work(sessions, WriteContext(SCHEDULER, clock.now())) as unit:
            yield unit
    except Exception:
        log.exception("%s failed", what)


def launch_due(sessions, clock, config) -> list[int]:
    """Start the launch of every scheduled definition whose latest period has no campaign yet;
    returns the jobs started (the worker runs them)."""
    started = []
    definitions = _read(sessions, select(CampaignDefinition).where(CampaignDefinition.enabled.is_(True)))
    for definition in definitions:
        if not definition.schedule:  # launched by hand only (a JSON null, so filtered here)
            continue
        since = as_utc(definition.created_at)
        period = latest_period(definition.schedule, since, clock.now())
        if period is None:
            continue
        try:
            with own_unit_of_work(sessions, WriteContext(SCHEDULER, clock.now())) as (session, ctx):
                if jobs.active_job(session, "launch", f"campaign_definition:{definition.id}") is not None:
                    continue  # launching already
                _campaign, job = start_launch(session, ctx, session.merge(definition), period_key(period),
                                              max_sync_age_hours=config["MAX_SYNC_AGE_HOURS"],
                                              stale_action=config["STALE_SYNC_ACTION"])
                if job is not None:
                    started.append(job.id)
        except ApiError as error:  # stale directory: say so in the audit trail, try again next tick
            with own_unit_of_work(sessions, WriteContext(SCHEDULER, clock.now())) as (session, ctx):
                append_event(session, ctx, "campaign.launch_refused", f"campaign_definition:{definition.id}", None,
                             {"period": period_key(period), "code": error.code, "message": error.message})
            log.warning("launch of definition %s refused: %s", definition.id, error.message)
        except Exception:
            log.exception("launch of definition %s failed; nothing was kept", definition.id)
    return started


def reminder_due(reminders: dict[str, Any], due: datetime, now: datetime) -> str | None:
    """Which reminder, if any, is for today (in UTC days relative to the due date)."""
    days_left = (due.date() - now.date()).days
    if days_left in set(reminders.get("days_before_due") or ()):
        return f"due in {days_left} day(s)"
    if days_left == 0 and reminders.get("on_due_day"):
        return "due today"
    if days_left < 0 and reminders.get("daily_overdue"):
        return f"overdue by {-days_left} day(s)"
    return None


def remind_and_escalate(sessions, clock, config) -> dict[str, int]:
    """Record the reminders and escalations that are due in the outbox (sent after commit)."""
    counts = defaultdict(int)
    campaign_ids = _read(sessions, select(Campaign.id).where(Campaign.status == "open"))
    for campaign_id in campaign_ids:
        with _each(sessions, clock, f"reminders of campaign {campaign_id}") as (session, ctx):
            campaign = session.get(Campaign, campaign_id)
            counts["escalated"] += _escalate(session, ctx, campaign, config)
            counts["reminded"] += _remind(session, ctx, campaign, config)
    return dict(counts)


def _pending_by_reviewer(session: Session, campaign: Campaign) -> dict[str, list[ReviewItem]]:
    pending: dict[str, list[ReviewItem]] = defaultdict(list)
    for item in session.scalars(select(ReviewItem).where(ReviewItem.campaign_id == campaign.id,
                                                         ReviewItem.status == "pending").order_by(ReviewItem.id)):
        if item.reviewer:
            pending[item.reviewer].append(item)
    return pending


def _remind(session: Session, ctx: WriteContext, campaign: Campaign, config) -> int:
    which = reminder_due(campaign.settings["reminders"], as_utc(campaign.due_at), ctx.now)
    if which is None:
        return 0
    sent = 0
    # Only reviewers with something left to decide: a reviewer who has finished hears nothing.
    for reviewer, items in sorted(_pending_by_reviewer(session, campaign).items()):
        if all(i.last_reminded_at and as_utc(i.last_reminded_at).date() == ctx.now.date() for i in items):
            continue  # already reminded today
        remind(session, ctx, campaign, config, reviewer, items, which)
        sent += 1
    session.flush()
    return sent


def due_phrase(due: datetime, now: datetime) -> str:
    """How a reminder sent now puts the due date: due in N days, due today, overdue by N days."""
    days_left = (due.date() - now.date()).days
    if days_left > 0:
        return f"due in {days_left} day(s)"
    return "due today" if days_left == 0 else f"overdue by {-days_left} day(s)"


def remind_now(session: Session, ctx: WriteContext, campaign: Campaign, config, reviewer: str) -> dict[str, Any]:
    """A security lead's reminder to one reviewer, whatever the schedule: their items still to decide,
    put into the outbox like the scheduled ones (409 if the campaign is not open or nothing is left)."""
    if campaign.status != "open":
        raise Conflict(f"campaign {campaign.id} is {campaign.status}; nobody is reminded", field="campaign",
                       code="campaign_closed")
    items = list(session.scalars(select(ReviewItem).where(
        ReviewItem.campaign_id == campaign.id, ReviewItem.reviewer == reviewer, ReviewItem.status == "pending")
        .order_by(ReviewItem.id)))
    if not items:
        raise Conflict(f"{reviewer} has nothing left to decide in campaign {campaign.id}", field="reviewer",
                       code="nothing_pending")
    outcome = remind(session, ctx, campaign, config, reviewer, items, due_phrase(as_utc(campaign.due_at), ctx.now))
    session.flush()
    return {"reviewer": reviewer, "pending": len(items), **outcome}


def remind(session: Session, ctx: WriteContext, campaign: Campaign, config, reviewer: str,
           items: list[ReviewItem], which: str) -> dict[str, Any]:
    """One reviewer's reminder of their ``items``, into the outbox (sent after commit) and the trail."""
    person = session.get(Principal, reviewer)
    link = queue_link(config, campaign)
    outcome = enqueue(session, ctx.now, config, Message(
        to=reviewer, address=person.email if person else None,
        subject=f"[access review] {campaign.name}: {len(items)} item(s) to decide, {which}",
        text=(f"You have {len(items)} access review item(s) to decide in \"{campaign.name}\", {which} "
              f"(due {as_utc(campaign.due_at):%Y-%m-%d %H:%M} UTC).\n\nYour queue: {link}\n"
              f"(Sign in there with this e-mail address; the JSON API has the same queue at "
              f"{config['PUBLIC_URL']}/v1/review-items?campaign={campaign.id}&reviewer=me&status=pending)\n"),
        event={"event": "reminder", "campaign": campaign.id, "reviewer": reviewer, "pending": len(items),
               "when": which}))
    for item in items:
        item.last_reminded_at = ctx.now
    append_event(session, ctx, "campaign.reminded", f"campaign:{campaign.id}", None,
                 {"reviewer": reviewer, "pending": len(items), "when": which, **outcome})
    return outcome


def queue_link(config, campaign: Campaign) -> str:
    """The reviewer's page of the campaign's items (it asks them to sign in first if need be)."""
    return f"{config['PUBLIC_URL']}/ui/reviews?campaign={campaign.id}"


def _escalate(session: Session, ctx: WriteContext, campaign: Campaign, config) -> int:
    rule = campaign.settings.get("escalation")
    if not rule or ctx.now < as_utc(campaign.due_at) + timedelta(days=rule["after_days_overdue"]):
        return 0
    moved = 0
    for reviewer, items in sorted(_pending_by_reviewer(session, campaign).items()):
        waiting = [i for i in items if i.escalated_at is None]
        if not waiting:
            continue
        person = session.get(Principal, reviewer)
        target = person.manager_key if rule["to"] == "manager" and person is not None else None
        target = target or campaign.settings["fallback_reviewer"]
        for item in waiting:
            subjects = {item.principal_key, *(m["id"] for m in item.frozen.get("members", []))}
            chosen = target if target not in subjects else campaign.settings["fallback_reviewer"]
            item.reviewer, item.escalated_at = chosen, ctx.now
            item.version += 1
            record(session, ctx, item, "escalated", from_reviewer=reviewer, to_reviewer=chosen,
                   reason=f"overdue by {rule['after_days_overdue']}+ day(s)")
            moved += 1
        new_reviewer = session.get(Principal, target)
        queued = enqueue(session, ctx.now, config, Message(
            to=target, address=new_reviewer.email if new_reviewer else None,
            subject=f"[access review] escalated to you: {len(waiting)} overdue item(s) of {campaign.name}",
            text=(f"{len(waiting)} item(s) assigned to {reviewer} in \"{campaign.name}\" are overdue and now "
                  f"yours to decide.\n\nYour queue: {queue_link(config, campaign)}\n"),
            event={"event": "escalation", "campaign": campaign.id, "from": reviewer, "to": target,
                   "items": len(waiting)}))
        append_event(session, ctx, "campaign.escalation_notice", f"campaign:{campaign.id}", None,
                     {"from": reviewer, "items": len(waiting), **queued})
    session.flush()
    return moved


def close_due(sessions, clock) -> list[int]:
    """Start closing every open campaign past its due date; returns the campaigns."""
    closing = []
    due = _read(sessions, select(Campaign.id).where(Campaign.status == "open", Campaign.due_at <= clock.now()))
    for campaign_id in due:
        with _each(sessions, clock, f"closing campaign {campaign_id}") as (session, ctx):
            campaign = session.get(Campaign, campaign_id)
            if campaign.status == "open":
                start_close(session, ctx, campaign, reason="due date reached")
                closing.append(campaign_id)
    return closing


def follow_up_due(sessions, clock) -> list[int]:
    """Start the follow-up of every remediated campaign whose follow-up is due; returns the jobs started."""
    started = []
    session = sessions()
    try:
        due = follow_up.due_campaigns(session, clock.now())
    finally:
        session.close()
    for campaign_id in due:
        with _each(sessions, clock, f"the follow-up of campaign {campaign_id}") as (session, ctx):
            if jobs.active_job(session, "follow_up", f"campaign:{campaign_id}") is None:
                started.append(follow_up.start_follow_up(session, ctx, session.get(Campaign, campaign_id)).id)
    return started
