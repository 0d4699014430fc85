"""/v1 access reviews: campaign definitions, campaigns, review items, decisions, sign-off, measures."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, current_app, request
from pydantic import BaseModel

from ..campaigns import definitions, flows, review
from ..campaigns.deciding import (decide_many, decision_target, declared_types, item_or_404, reassign_item,
                                  record_decision)
from ..campaigns.measures import campaign_measures, review_measures
from ..campaigns.schemas import (BulkDecisions, CloseBody, DecisionBody, DefinitionBody, DefinitionPatch,
                                 ReassignBody, SignOffBody)
from ..db import get_session
from ..guard import (authorize, authorize_object, body, caller, clock_now, page_limit, query, unit_of_work,
                     write_context)
from ..models import ReviewItem
from ..pagination import Cursor
from ..validation import RowId, column_text
from . import shapes
from .common import answer, documented

bp = Blueprint("campaigns", __name__, url_prefix="/v1")
ERRORS = {400: shapes.ErrorOut, 401: shapes.ErrorOut, 403: shapes.ErrorOut, 404: shapes.ErrorOut}
# Work done as a job: 409 when the same work is already running; a job that failed within the request
# answers with its error (job_failed, 500, unless the error has a status of its own) and the job.
JOB_ERRORS = {409: shapes.ErrorOut, 500: shapes.ErrorOut, **ERRORS}


# -- definitions -----------------------------------------------------------------------------------

@bp.post("/campaign-definitions")
@documented("Define a recurring (or one-off) access review", body=DefinitionBody, tag="campaigns",
            responses={201: shapes.DefinitionOut, 422: shapes.ErrorOut, **ERRORS})
def create_definition():
    actor = authorize("manage_campaigns")
    data = body(DefinitionBody)
    with unit_of_work(actor) as (session, ctx):
        state = definitions.create_definition(session, ctx, data, declared_types())
    return answer(state, 201)


@bp.get("/campaign-definitions")
@documented("Campaign definitions", tag="campaigns", responses={200: shapes.DefinitionList, **ERRORS})
def list_definitions():
    authorize("view_campaigns")
    return answer({"items": definitions.list_definitions(get_session())})


@bp.get("/campaign-definitions/<int:definition_id>")
@documented("One campaign definition", tag="campaigns", responses={200: shapes.DefinitionOut, **ERRORS})
def get_definition(definition_id: int):
    authorize("view_campaigns")
    return answer(definitions.definition_state(definitions.get_definition(get_session(), definition_id)))


@bp.patch("/campaign-definitions/<int:definition_id>")
@documented("Change a campaign definition (running campaigns keep the settings they launched with)",
            body=DefinitionPatch, tag="campaigns",
            responses={200: shapes.DefinitionOut, 422: shapes.ErrorOut, **ERRORS})
def patch_definition(definition_id: int):
    actor = authorize("manage_campaigns")
    data = body(DefinitionPatch)
    with unit_of_work(actor) as (session, ctx):
        state = definitions.patch_definition(session, ctx, definition_id, data, declared_types())
    return answer(state)


@bp.post("/campaign-definitions/<int:definition_id>/launch")
@documented("Launch a campaign of this definition now: 201 when it is ready within the request, else 202 with "
            "the launch job", tag="campaigns",
            responses={201: shapes.CampaignWorked, 202: shapes.CampaignAccepted, **JOB_ERRORS})
def launch_now(definition_id: int):
    actor = authorize("manage_campaigns")
    return flow_response(flows.launch(current_app, write_context(actor), definition_id), done_status=201)


def flow_response(outcome: flows.Outcome, done_status: int = 200):
    """200 (or ``done_status``) with the campaign when the work finished in the request; otherwise
    202 with the job, and its address in Location."""
    if outcome.done:
        return answer({**outcome.state, "job": outcome.job}, done_status)
    response = answer({"job": outcome.job, "campaign": outcome.state or None}, 202)
    response.headers["Location"] = outcome.job["links"]["self"]
    return response


# -- campaigns -------------------------------------------------------------------------------------

@bp.get("/campaigns")
@documented("Campaigns", tag="campaigns", responses={200: shapes.CampaignList, **ERRORS})
def list_campaigns():
    authorize("view_campaigns")
    return answer({"items": review.list_campaigns(get_session())})


@bp.get("/campaigns/<int:campaign_id>")
@documented("One campaign, with its item counts", tag="campaigns", responses={200: shapes.CampaignOut, **ERRORS})
def get_campaign(campaign_id: int):
    authorize("view_campaigns")
    session = get_session()
    campaign = review.get_campaign(session, campaign_id)
    return answer(review.campaign_state(campaign, review.item_counts(session, campaign_id)))


@bp.post("/campaigns/<int:campaign_id>/decisions")
@documented("Up to 1000 decisions at once, all or nothing", body=BulkDecisions, tag="reviews",
            responses={200: shapes.BulkDecided, 409: shapes.ErrorOut, 422: shapes.ErrorOut, **ERRORS})
def bulk_decisions(campaign_id: int):
    principal = caller()
    return answer(decide_many(principal, campaign_id, body(BulkDecisions)))


@bp.post("/campaigns/<int:campaign_id>/close")
@documented("Close now: undecided items get the on_no_response outcome (202 with the job when it takes longer). "
            "With dry_run: what the close would do, per rule and item, and nothing changes",
            body=CloseBody, body_optional=True, tag="campaigns",
            responses={200: shapes.CloseAnswer, 202: shapes.CampaignAccepted, **JOB_ERRORS})
def close_campaign(campaign_id: int):
    actor = authorize("manage_campaigns")
    options = body(CloseBody) if request.get_data(cache=True).strip() else CloseBody()
    if options.dry_run:
        session = get_session()
        return answer(review.close_preview(session, review.get_campaign(session, campaign_id),
                                                  options.cursor, page_limit(options.limit)))
    return flow_response(flows.close(current_app, write_context(actor), campaign_id))


@bp.post("/campaigns/<int:campaign_id>/sign-off")
@documented("A security lead's attestation; a job then makes the signed reports and applies and verifies the "
            "revocations (200 when done within the request, 202 with the job otherwise)", body=SignOffBody,
            tag="campaigns", responses={200: shapes.CampaignWorked, 202: shapes.CampaignAccepted, **JOB_ERRORS})
def sign_off(campaign_id: int):
    actor = authorize("manage_campaigns")
    statement = body(SignOffBody).statement
    return flow_response(flows.sign_off(current_app, write_context(actor), campaign_id, statement))


@bp.post("/campaigns/<int:campaign_id>/remediate")
@documented("Apply (or retry) the revocations of a signed-off campaign and verify them, as a job", tag="campaigns",
            responses={200: shapes.CampaignWorked, 202: shapes.CampaignAccepted, **JOB_ERRORS})
def retry_remediation(campaign_id: int):
    actor = authorize("manage_campaigns")
    return flow_response(flows.remediate(current_app, write_context(actor), campaign_id))


@bp.post("/campaigns/<int:campaign_id>/follow-up")
@documented("Check now (it runs by itself holds.follow_up_days after remediation) whether revoked access came "
            "back by another road; the findings go on the campaign and into a new signed report", tag="campaigns",
            responses={200: shapes.CampaignWorked, 202: shapes.CampaignAccepted, **JOB_ERRORS})
def follow_up(campaign_id: int):
    actor = authorize("manage_campaigns")
    return flow_response(flows.follow_up(current_app, write_context(actor), campaign_id))


@bp.get("/campaigns/<int:campaign_id>/metrics")
@documented("How this campaign is going", tag="campaigns", responses={200: shapes.CampaignMeasures, **ERRORS})
def metrics_of_campaign(campaign_id: int):
    authorize("view_campaigns")
    session = get_session()
    return answer(campaign_measures(session, review.get_campaign(session, campaign_id), clock_now()))


@bp.get("/metrics/reviews")
@documented("How reviews are going, across campaigns", tag="campaigns",
            responses={200: shapes.ReviewMeasures, **ERRORS})
def metrics_of_reviews():
    authorize("view_campaigns")
    return answer(review_measures(get_session(), clock_now()))


# -- review items ----------------------------------------------------------------------------------

class ItemQuery(BaseModel):
    campaign: RowId | None = None
    reviewer: column_text(ReviewItem.reviewer) | None = None  # type: ignore[valid-type]  # a principal, or "me"
    status: Literal["pending", "decided"] | None = None
    cursor: Cursor | None = None
    limit: int | None = None


@bp.get("/review-items")
@documented("Review items: your queue with reviewer=me, or anyone's for security leads and auditors",
            query=ItemQuery, tag="reviews", responses={200: shapes.ReviewItemPage, **ERRORS})
def list_items():
    principal = caller()
    q = query(ItemQuery)
    reviewer = principal if q.reviewer == "me" else q.reviewer
    if reviewer is not None:
        authorize_object("view", f"review_queue:{reviewer}", {"reviewer": reviewer})
    else:
        authorize("view_campaigns")
    page = review.list_items(get_session(), campaign=q.campaign, reviewer=reviewer, status=q.status,
                             cursor=q.cursor, limit=page_limit(q.limit))
    return answer(page.to_dict())


@bp.get("/review-items/<int:item_id>")
@documented("One review item, with its history", tag="reviews", responses={200: shapes.ReviewItemWithHistory, **ERRORS})
def get_item(item_id: int):
    item, _ = item_or_404(item_id, "view")
    return answer({**review.item_state(item), "history": review.item_history(get_session(), item)})


@bp.post("/review-items/<int:item_id>/decision")
@documented("Keep or revoke, with a justification; may be changed until the campaign closes", body=DecisionBody,
            tag="reviews", responses={200: shapes.ReviewItemOut, 409: shapes.ErrorOut, 422: shapes.ErrorOut, **ERRORS})
def decide(item_id: int):
    target = decision_target(item_id)
    return answer(record_decision(target, body(DecisionBody)))


@bp.post("/review-items/<int:item_id>/reassign")
@documented("Hand an item to another reviewer, with a reason (its reviewer delegates; a security lead reassigns)",
            body=ReassignBody, tag="reviews",
            responses={200: shapes.ReviewItemOut, 409: shapes.ErrorOut, 422: shapes.ErrorOut, **ERRORS})
def reassign(item_id: int):
    item, principal = item_or_404(item_id, "reassign")
    return answer(reassign_item(item, principal, body(ReassignBody)))
