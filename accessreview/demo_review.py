"""The demo's access review: one campaign of Acme's subtree, launched at once, so a newcomer's web
pages have a reviewer's queue, a campaign to follow and, once signed off, a report to download."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .audit import WriteContext
from .authz.engine import SERVICE_RESOURCE, AuthzEngine
from .campaigns import flows
from .campaigns.definitions import create_definition
from .jobs import runner
from .campaigns.schemas import DefinitionBody
from .models import Campaign, CampaignDefinition, Grant, Principal, ReviewItem

NAME = "Acme Logistics: access review"


@dataclass(frozen=True)
class DemoReview:
    campaign_id: int
    items: int
    reviewer: str  # the reviewer with the most items, and their address, to sign in with
    reviewer_email: str | None
    reviewer_items: int


def define_demo_review(session: Session, ctx: WriteContext, engine: AuthzEngine) -> int | None:
    """Define the demo campaign (its id), unless a definition of that name exists already."""
    if session.scalar(select(CampaignDefinition.id).where(CampaignDefinition.name == NAME)) is not None:
        return None
    lead = session.scalar(select(Grant.principal_key).where(
        Grant.role == "security_lead", Grant.resource_key == SERVICE_RESOURCE, Grant.expires_at.is_(None))
        .order_by(Grant.id))
    if lead is None:
        return None
    state = create_definition(session, ctx, DefinitionBody.model_validate({
        "name": NAME, "description": "Everyone's access to Acme's projects and documents, by their owners",
        "scope": {"subtrees": ["organization:acme"]}, "reviewer": {"rule": "resource_owner"},
        "fallback_reviewer": lead, "duration_days": 14, "on_no_response": "recommendation",
        "escalation": {"after_days_overdue": 3, "to": "manager"}}),
        set(engine.policy.declarations.resource_types))
    return state["id"]


def launch_demo_review(app: Flask, ctx: WriteContext, definition_id: int) -> DemoReview:
    """Launch the demo campaign through the one launch flow, and wait for it."""
    outcome = flows.launch(app, ctx, definition_id)
    if not outcome.done:
        runner(app).run(outcome.job["id"])
    session = app.extensions["db"].sessionmaker()
    try:
        campaign = session.scalar(select(Campaign).where(Campaign.definition_id == definition_id))
        reviewer, count = session.execute(
            select(ReviewItem.reviewer, func.count()).where(ReviewItem.campaign_id == campaign.id,
                                                            ReviewItem.reviewer.is_not(None))
            .group_by(ReviewItem.reviewer).order_by(func.count().desc(), ReviewItem.reviewer).limit(1)).one()
        person = session.get(Principal, reviewer)
        return DemoReview(campaign.id, campaign.population_count, reviewer, person.email if person else None, count)
    finally:
        session.close()
