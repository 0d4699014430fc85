"""A security lead's pages: campaigns and their progress, who is behind, every item, and the steps
that end a campaign (close, sign off, retry remediation); definitions with a launch button. Auditors
may look; only those who may manage campaigns see the buttons, and the policy is asked again on
every press."""

from __future__ import annotations

from typing import Literal

from flask import redirect, render_template, request, url_for
from pydantic import BaseModel

from ..api.campaigns import close_now, launch_definition, remediate_and_report, sign_off_and_remediate
from ..api.common import authorize, clock_now, page_limit
from ..campaigns import definitions, review
from ..campaigns.measures import campaign_measures
from ..campaigns.schemas import SignOffBody
from ..db import get_session
from ..errors import ApiError
from ..reports import service as reports
from ..validation import parse_query
from .blueprint import bp


class ItemsQuery(BaseModel):
    status: Literal["pending", "decided", "all"] = "all"
    cursor: str | None = None


@bp.get("/campaigns")
def campaigns():
    authorize("view_campaigns")
    return _render_campaigns()


def _render_campaigns(error: ApiError | None = None, status: int = 200):
    """Newest campaign first, each with its item counts; then the definitions."""
    session = get_session()
    listed = [{**c, "items": review.item_counts(session, c["id"])} for c in reversed(review.list_campaigns(session))]
    return render_template("campaigns.html", campaigns=listed, definitions=definitions.list_definitions(session),
                           error=error), status


@bp.get("/campaigns/<int:campaign_id>")
def campaign_page(campaign_id: int):
    authorize("view_campaigns")
    return _render_campaign(campaign_id)


def _render_campaign(campaign_id: int, error: ApiError | None = None, statement: str = "", status: int = 200):
    session = get_session()
    campaign = review.get_campaign(session, campaign_id)
    q = parse_query(ItemsQuery, request.args)
    items = review.list_items(session, campaign=campaign_id, reviewer=None,
                              status=None if q.status == "all" else q.status, cursor=q.cursor, limit=page_limit(None))
    return render_template("campaign.html", campaign=review.campaign_state(campaign),
                           measures=campaign_measures(session, campaign, clock_now()),
                           reviewers=review.reviewer_progress(session, campaign_id), items=items, query=q,
                           reports=reports.list_reports(session, campaign_id), error=error,
                           statement=statement), status


def _act(campaign_id: int, action) -> object:
    """Run one of the closing steps; a refusal (still open, already signed off) is shown on the page."""
    actor = authorize("manage_campaigns")
    try:
        action(actor)
    except ApiError as error:
        return _render_campaign(campaign_id, error, request.form.get("statement", ""), error.status)
    return redirect(url_for("web.campaign_page", campaign_id=campaign_id))


@bp.post("/campaigns/<int:campaign_id>/close")
def close(campaign_id: int):
    return _act(campaign_id, lambda actor: close_now(campaign_id, actor))


@bp.post("/campaigns/<int:campaign_id>/sign-off")
def sign_off(campaign_id: int):
    def sign(actor: str) -> None:
        statement = parse_query(SignOffBody, {"statement": request.form.get("statement", "").strip()}).statement
        sign_off_and_remediate(campaign_id, actor, statement)

    return _act(campaign_id, sign)


@bp.post("/campaigns/<int:campaign_id>/remediate")
def remediate(campaign_id: int):
    return _act(campaign_id, lambda actor: remediate_and_report(campaign_id, actor))


@bp.post("/campaign-definitions/<int:definition_id>/launch")
def launch(definition_id: int):
    actor = authorize("manage_campaigns")
    try:
        state = launch_definition(definition_id, actor)
    except ApiError as error:
        return _render_campaigns(error, error.status)
    return redirect(url_for("web.campaign_page", campaign_id=state["id"]))
