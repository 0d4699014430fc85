"""Campaign definitions: create, read, change. Service functions: a session in, data out, no commit."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..audit import WriteContext, append_event
from ..clock import as_utc
from ..db import get_or_404
from ..errors import Unprocessable
from ..models import CampaignDefinition, Principal
from ..validation import refusal
from .schemas import DefinitionBody, DefinitionPatch, HoldSettings

FIELDS = ("name", "description", "scope", "reviewer", "stages", "fallback_reviewer", "duration_days", "reminders",
          "escalation", "on_no_response", "on_no_response_fallback", "justification", "recommendation", "schedule",
          "holds", "enabled")


def definition_state(d: CampaignDefinition) -> dict[str, Any]:
    return {
        "id": d.id, "name": d.name, "description": d.description, "scope": d.scope,
        "reviewer": d.reviewer_rule, "stages": d.stages, "fallback_reviewer": d.fallback_reviewer,
        "duration_days": d.duration_days, "reminders": d.reminders, "escalation": d.escalation,
        "on_no_response": d.on_no_response, "on_no_response_fallback": d.on_no_response_fallback,
        "justification": d.justification, "recommendation": d.recommendation,
        "schedule": d.schedule, "holds": d.holds or HoldSettings().model_dump(), "enabled": d.enabled,
        "created_by": d.created_by,
        "created_at": as_utc(d.created_at).isoformat(), "updated_at": as_utc(d.updated_at).isoformat(),
    }


def _check_references(session: Session, values: dict[str, Any], declared_types: set[str]) -> None:
    people = [values.get("fallback_reviewer")]
    people += [rule.get("principal") for rule in [values.get("reviewer") or {}, *(values.get("stages") or [])]]
    for key in filter(None, people):
        if session.get(Principal, key) is None:
            raise Unprocessable(f"reviewer {key} is not a known principal", field="fallback_reviewer"
                                if key == values.get("fallback_reviewer") else "reviewer", code="unknown_reference")
    unknown = set((values.get("scope") or {}).get("resource_types") or ()) - declared_types
    if unknown:
        raise Unprocessable(f"resource types {sorted(unknown)} are not declared by the policy",
                            field="scope.resource_types", code="unknown_type")


def _columns(values: dict[str, Any]) -> dict[str, Any]:
    renamed = dict(values)
    if "reviewer" in renamed:
        renamed["reviewer_rule"] = renamed.pop("reviewer")
    return renamed


def create_definition(session: Session, ctx: WriteContext, body: DefinitionBody,
                      declared_types: set[str]) -> dict[str, Any]:
    values = body.model_dump(mode="json")
    _check_references(session, values, declared_types)
    definition = CampaignDefinition(**_columns(values), created_by=ctx.actor, created_at=ctx.now, updated_at=ctx.now)
    session.add(definition)
    session.flush()
    state = definition_state(definition)
    append_event(session, ctx, "campaign_definition.created", f"campaign_definition:{definition.id}", None, state)
    return state


def get_definition(session: Session, definition_id: int) -> CampaignDefinition:
    return get_or_404(session, CampaignDefinition, definition_id, "campaign definition")


def list_definitions(session: Session) -> list[dict[str, Any]]:
    return [definition_state(d) for d in session.scalars(select(CampaignDefinition).order_by(CampaignDefinition.id))]


def patch_definition(session: Session, ctx: WriteContext, definition_id: int, body: DefinitionPatch,
                     declared_types: set[str]) -> dict[str, Any]:
    definition = get_definition(session, definition_id)
    before = definition_state(definition)
    changes = body.model_dump(mode="json", include=body.model_fields_set)
    merged = {**before, **changes}
    if merged.get("fallback_reviewer") is None:
        raise Unprocessable("fallback_reviewer cannot be removed", field="fallback_reviewer", code="invalid_value")
    try:  # the result must still be a valid definition: a field it needs cannot be set to null
        DefinitionBody.model_validate({k: merged[k] for k in FIELDS})
    except ValidationError as exc:
        raise refusal(exc) from None
    _check_references(session, merged, declared_types)
    for column, value in _columns(changes).items():
        setattr(definition, column, value)
    definition.updated_at = ctx.now
    session.flush()
    after = definition_state(definition)
    append_event(session, ctx, "campaign_definition.updated", f"campaign_definition:{definition.id}", before, after)
    return after
