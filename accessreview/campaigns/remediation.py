"""Remediation after sign-off: revoke what was decided revoke, then prove through checks it is gone."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..audit import WriteContext, append_event
from ..authz.declarations import Declarations
from ..authz.engine import AuthzEngine
from ..errors import Conflict
from ..directory import service as directory
from ..directory.planner import Change, Plan, grant_identity, grant_state
from ..directory.schemas import PrincipalBody
from ..models import Campaign, Grant, GroupMembership, Principal, ReviewItem
from .population import in_scope, population_hash
from .review import record

VERIFY_SAMPLE = 50  # descendants checked per resource type when verifying a revocation


def apply_revocations(session: Session, ctx: WriteContext, campaign: Campaign,
                      declarations: Declarations) -> dict[str, int]:
    """Remove the grants (or memberships) decided revoke that are pending or failed; one revision."""
    items = list(session.scalars(select(ReviewItem).where(
        ReviewItem.campaign_id == campaign.id, ReviewItem.remediation_state.in_(("pending", "failed")),
        ReviewItem.decision == "revoke").order_by(ReviewItem.id)))
    plan, outcome = Plan(), Counter()
    membership_items: dict[str, list[ReviewItem]] = {}
    for item in items:
        item.remediation_attempts += 1
        if item.applied_at is not None:  # applied before; only the verification failed
            continue
        if item.kind == "membership":
            membership_items.setdefault(item.resource_key, []).append(item)
            continue
        grant = session.get(Grant, item.grant_id)
        if grant is None:
            item.remediation_detail = "the grant was already removed"
        else:
            identity = grant_identity(grant.principal_key, grant.role, grant.resource_key)
            plan.grants.append(Change("removed", identity, {**grant_state(grant), "removed_by_review": campaign.id},
                                      None))
            plan.grant_rows[identity] = grant
        item.remediation_state, item.applied_at = "applied", ctx.now
        outcome["applied"] += 1
    directory.apply_plan(session, ctx, plan)
    for group, group_items in membership_items.items():
        _remove_members(session, ctx, declarations, group, {i.principal_key for i in group_items})
        for item in group_items:
            item.remediation_state, item.applied_at = "applied", ctx.now
            outcome["applied"] += 1
    for item in items:
        if item.remediation_state == "applied":
            record(session, ctx, item, "revoked", grant_id=item.grant_id, detail=item.remediation_detail)
    session.flush()
    return dict(outcome)


def _remove_members(session: Session, ctx: WriteContext, declarations: Declarations, group: str,
                    members: set[str]) -> None:
    current = session.scalars(select(GroupMembership.member_key).where(GroupMembership.group_key == group)).all()
    principal = session.get(Principal, group)
    body = PrincipalBody(name=principal.name if principal else None, members=[m for m in current if m not in members])
    directory.put_principal(session, ctx, declarations, group, body)


def verify(session: Session, ctx: WriteContext, engine: AuthzEngine, campaign: Campaign) -> dict[str, int]:
    """Through the authorization engine: does anyone still have what a revoked item gave?"""
    snapshot = engine.refresh()
    evaluator, index, now = snapshot.evaluator, snapshot.index, engine.clock.now()
    outcome = Counter()
    for item in session.scalars(select(ReviewItem).where(ReviewItem.campaign_id == campaign.id,
                                                         ReviewItem.remediation_state.in_(("applied", "failed")),
                                                         ReviewItem.applied_at.is_not(None))):
        actors = [m["id"] for m in item.frozen.get("members", [])] or [item.principal_key]
        survivors = []
        targets = _targets(index, item)
        for actor in actors:
            for resource, permissions in targets:
                for permission in permissions:
                    decision = evaluator.check(actor, permission, resource, now)
                    if decision.allowed:
                        via = ", ".join(_describe(index, g) for g in decision.grants)
                        survivors.append(f"{actor} still has {permission} on {resource} via {via}")
                        break
        if survivors:
            item.remediation_state = "failed"
            item.remediation_detail = "; ".join(survivors[:5]) + (f" (+{len(survivors) - 5} more)"
                                                                  if len(survivors) > 5 else "")
            outcome["still_has_access"] += 1
        else:
            item.remediation_state, item.verified_at = "verified", now
            outcome["verified"] += 1
        record(session, ctx, item, "verified" if not survivors else "verify_failed", detail=item.remediation_detail)
    session.flush()
    return dict(outcome)


def _targets(index, item: ReviewItem) -> list[tuple[str, list[str]]]:
    """The resources to check: the item's resource and a sample of its descendants of each type."""
    if item.kind == "membership":
        found = []
        for grant in index.grants_of.get(item.resource_key, ()):
            found.append((grant.resource, [p for perms in item.effective_permissions.values() for p in perms]))
        return found
    targets = []
    by_type: dict[str, list[str]] = {}
    frontier = [item.resource_key]
    while frontier:
        key = frontier.pop()
        resource = index.resources.get(key)
        if resource is None:
            continue
        bucket = by_type.setdefault(resource.type, [])
        if len(bucket) < VERIFY_SAMPLE:
            bucket.append(key)
            frontier.extend(index.children.get(key, ()))
    for type_key, permissions in item.effective_permissions.items():
        targets += [(key, permissions) for key in by_type.get(type_key, [])]
    return targets


def _describe(index, grant_id: int) -> str:
    grant = index.grants_by_id.get(grant_id)
    return f"grant {grant_id} ({grant.role} on {grant.resource} to {grant.principal})" if grant else f"grant {grant_id}"


def snapshot_scope(session: Session, engine: AuthzEngine, campaign: Campaign) -> dict[str, Any]:
    """The scope as it stands after remediation: what is left, for the record."""
    snapshot = engine.refresh()
    candidates = in_scope(snapshot, campaign.settings["scope"])
    return {"revision": snapshot.revision, "count": len(candidates),
            "hash": population_hash(snapshot.revision, candidates), "taken_at": engine.clock.now().isoformat()}


def remediate(session: Session, ctx: WriteContext, engine: AuthzEngine, campaign: Campaign) -> dict[str, Any]:
    """Apply the revocations; the caller commits, then calls :func:`finish_remediation` to verify."""
    if campaign.status != "signed_off":
        raise Conflict("remediation starts after sign-off", code="not_signed_off", field="campaign")
    return apply_revocations(session, ctx, campaign, engine.policy.declarations)


def finish_remediation(session: Session, ctx: WriteContext, engine: AuthzEngine, campaign: Campaign) -> dict[str, Any]:
    verified = verify(session, ctx, engine, campaign)
    campaign.remediation_snapshot = snapshot_scope(session, engine, campaign)
    append_event(session, ctx, "campaign.remediated", f"campaign:{campaign.id}", None,
                 {"verification": verified, "scope_after": campaign.remediation_snapshot})
    session.flush()
    return {"verification": verified, "scope_after": campaign.remediation_snapshot}
