"""Campaign definitions: create, read, change. Service functions: a session in, data out, no commit."""

from __future__ import annotations

from typing import Any, Callable

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..audit import WriteContext, append_event
from ..clock import as_utc
from ..db import get_or_404
from ..errors import Unprocessable
from ..models import Campaign, CampaignDefinition, Principal, Resource, ReviewItem
from ..validation import refusal
from .schemas import DefinitionBody, DefinitionPatch, HoldSettings, SignOffSettings

FIELDS = ("name", "description", "scope", "reviewer", "stages", "fallback_reviewer", "duration_days", "reminders",
          "escalation", "on_no_response", "on_no_response_fallback", "justification", "recommendation", "schedule",
          "holds", "sign_off", "enabled")


def definition_state(d: CampaignDefinition) -> dict[str, Any]:
    return {
        "id": d.id, "name": d.name, "description": d.description, "scope": d.scope,
        "reviewer": d.reviewer_rule, "stages": d.stages, "fallback_reviewer": d.fallback_reviewer,
        "duration_days": d.duration_days, "reminders": d.reminders, "escalation": d.escalation,
        "on_no_response": d.on_no_response, "on_no_response_fallback": d.on_no_response_fallback,
        "justification": d.justification, "recommendation": d.recommendation,
        "schedule": d.schedule, "holds": d.holds or HoldSettings().model_dump(),
        "sign_off": d.sign_off or SignOffSettings().model_dump(), "enabled": d.enabled,
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
    for part in ("subtrees", "resources"):
        named = sorted(set((values.get("scope") or {}).get(part) or ()))
        missing = _not_in_directory(session, named)
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise Unprocessable(f"{shown} {'is' if len(missing) == 1 else 'are'} not in the directory",
                                field=f"scope.{part}", code="unknown_reference", missing=missing[:100])


def _not_in_directory(session: Session, keys: list[str], chunk: int = 500) -> list[str]:
    """The keys no resource has, looked up a bounded chunk at a time."""
    found: set[str] = set()
    for start in range(0, len(keys), chunk):
        found.update(session.scalars(select(Resource.key).where(Resource.key.in_(keys[start:start + chunk]))))
    return [key for key in keys if key not in found]


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


def open_campaigns_over(session: Session, definition: CampaignDefinition,
                        ancestors: Callable[[str], list[str]]) -> list[dict[str, Any]]:
    """The open campaigns a launch of ``definition`` would review the same grants as: those of the
    same definition, and those whose scope shares a part of the resource tree with its scope (a
    scope naming no resource covers the whole tree), each with its items still to decide."""
    def roots(scope: dict[str, Any] | None) -> set[str]:
        return set((scope or {}).get("subtrees") or ()) | set((scope or {}).get("resources") or ())

    def meet(a: set[str], b: set[str]) -> bool:
        return not a or not b or any(x in ancestors(y) or y in ancestors(x) for x in a for y in b)

    mine = roots(definition.scope)
    found = []
    for campaign in session.scalars(select(Campaign).where(Campaign.status == "open").order_by(Campaign.id)):
        other = session.get(CampaignDefinition, campaign.definition_id) if campaign.definition_id else None
        if campaign.definition_id == definition.id or meet(mine, roots(other.scope if other else None)):
            pending = session.scalar(select(func.count()).select_from(ReviewItem).where(
                ReviewItem.campaign_id == campaign.id, ReviewItem.status == "pending")) or 0
            found.append({"id": campaign.id, "name": campaign.name, "due_at": campaign.due_at, "pending": pending,
                          "same_definition": campaign.definition_id == definition.id})
    return found
