"""The steps that start long work on a campaign — launch, close, sign off, remediate — as the API, the
pages and the CLI all take them: record the change and its job in one unit of work, run the job's
first steps within the caller's budget, and say where it stands.

The caller is already authorized. A job that finished gives what it made (the campaign, its
reports); one that failed within the budget raises its error as the request's; one still at work is
left to the worker, and the caller answers 202 with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask

from .. import jobs
from ..audit import WriteContext
from ..models import Job, Report
from ..reports.service import report_state
from ..work import own_unit_of_work
from . import definitions, remediation, review
from .follow_up import start_follow_up
from .launch import period_key, start_launch


@dataclass(frozen=True)
class Outcome:
    job: dict[str, Any] | None
    done: bool
    state: dict[str, Any]  # the campaign as it stands, with what the job made when it is done


def launch(app: Flask, ctx: WriteContext, definition_id: int) -> Outcome:
    config = app.config
    with _unit(app, ctx) as (session, ctx):
        definition = definitions.get_definition(session, definition_id)
        campaign, job = start_launch(session, ctx, definition, f"manual-{period_key(ctx.now)}",
                                     max_sync_age_hours=config["MAX_SYNC_AGE_HOURS"],
                                     stale_action=config["STALE_SYNC_ACTION"])
        if job is None:
            return Outcome(None, True, review.campaign_state(campaign, review.item_counts(session, campaign.id)))
    return _follow(app, job)


def close(app: Flask, ctx: WriteContext, campaign_id: int) -> Outcome:
    with _unit(app, ctx) as (session, ctx):
        job = review.start_close(session, ctx, review.get_campaign(session, campaign_id), f"closed by {ctx.actor}")
    return _follow(app, job)


def sign_off(app: Flask, ctx: WriteContext, campaign_id: int, statement: str) -> Outcome:
    with _unit(app, ctx) as (session, ctx):
        _state, job = remediation.sign_off(session, ctx, review.get_campaign(session, campaign_id), statement)
    return _follow(app, job)


def remediate(app: Flask, ctx: WriteContext, campaign_id: int) -> Outcome:
    with _unit(app, ctx) as (session, ctx):
        job = remediation.start_remediation(session, ctx, review.get_campaign(session, campaign_id))
    return _follow(app, job)


def follow_up(app: Flask, ctx: WriteContext, campaign_id: int) -> Outcome:
    """Check now, rather than when it is due, whether revoked access came back."""
    with _unit(app, ctx) as (session, ctx):
        job = start_follow_up(session, ctx, review.get_campaign(session, campaign_id))
    return _follow(app, job)


def _unit(app: Flask, ctx: WriteContext):
    return own_unit_of_work(app.extensions["db"].sessionmaker, ctx, app.extensions["authz"])


def _follow(app: Flask, job: Job) -> Outcome:
    job = jobs.run_for(app, job)
    if job.state == "failed":
        raise jobs.job_error(job)
    session = app.extensions["db"].sessionmaker()
    try:
        state: dict[str, Any] = {}
        campaign_id = job.result.get("campaign") or job.params.get("campaign")
        if campaign_id is not None:
            campaign = review.get_campaign(session, campaign_id)
            state = review.campaign_state(campaign, review.item_counts(session, campaign.id))
        if job.state == "done":
            for made in ("remediation", "follow_up"):
                if made in job.result:
                    state[made] = job.result[made]
            if job.result.get("reports"):
                state["reports"] = [report_state(session.get(Report, r)) for r in job.result["reports"]]
        return Outcome(jobs.job_state(job), job.state == "done", state)
    finally:
        session.close()
