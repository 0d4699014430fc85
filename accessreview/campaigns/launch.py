"""Launching a campaign: freeze the population at one revision, advise, assign reviewers.

All in one transaction: a launch that fails part-way leaves nothing behind, and a campaign is keyed
by (definition, period), so a repeated or doubled trigger finds the first one instead of making a
second.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from ..audit import WriteContext, append_event, lock_state
from ..authz.engine import AuthzEngine
from ..clock import as_utc
from ..errors import Conflict
from ..models import Campaign, CampaignDefinition, Grant, GrantUsage, Principal, Resource, ReviewItem, SourceSync
from .definitions import definition_state
from .population import Candidate, effective, in_scope, population_hash, recommend


INSERT_BATCH = 5000


class StaleDirectory(Conflict):
    code = "stale_directory"


def freshness(session: Session, now: datetime, max_age_hours: float) -> dict[str, Any]:
    """Each source's last sync and age at launch, and the sources older than allowed."""
    sources, stale = {}, []
    for sync in session.scalars(select(SourceSync).order_by(SourceSync.source)):
        age = (now - as_utc(sync.last_sync_at)).total_seconds() / 3600
        sources[sync.source] = {"last_sync_at": as_utc(sync.last_sync_at).isoformat(), "age_hours": round(age, 2),
                                "mode": sync.mode}
        if age > max_age_hours:
            stale.append(sync.source)
    return {"sources": sources, "stale_sources": stale, "max_age_hours": max_age_hours}


class Directory:
    """The rows a launch needs beside the index: names, owners, managers, grant provenance.

    Plain rows (not ORM objects): a launch over 200,000 grants reads them all."""

    def __init__(self, session: Session) -> None:
        self.principals = {row.key: row for row in session.execute(select(
            Principal.key, Principal.kind, Principal.name, Principal.email, Principal.department,
            Principal.status, Principal.manager_key))}
        self.resources = {row.key: row for row in session.execute(select(
            Resource.key, Resource.name, Resource.parent_key, Resource.owner_key))}
        self._grants: dict[int, Any] | None = None
        self._session = session
        self._owners: dict[str, str | None] = {}

    @property
    def grants(self) -> dict[int, Any]:
        if self._grants is None:
            self._grants = {row.id: row for row in self._session.execute(select(
                Grant.id, Grant.granted_by, Grant.granted_at, Grant.reason, Grant.expires_at, Grant.source))}
        return self._grants

    def owner(self, resource_key: str) -> str | None:
        """The resource's owner, or its nearest ancestor's."""
        if resource_key not in self._owners:
            node = self.resources.get(resource_key)
            if node is None:
                self._owners[resource_key] = None
            elif node.owner_key or not node.parent_key:
                self._owners[resource_key] = node.owner_key
            else:
                self._owners[resource_key] = self.owner(node.parent_key)
        return self._owners[resource_key]

    def frozen(self, candidate: Candidate) -> dict[str, Any]:
        """The principal, resource and grant as they are at launch, for the item and the report."""
        p = self.principals[candidate.principal]
        r = self.resources.get(candidate.resource)
        out: dict[str, Any] = {
            "principal": {"id": p.key, "kind": p.kind, "name": p.name, "email": p.email,
                          "department": p.department, "status": p.status, "manager": p.manager_key},
            "resource": {"id": candidate.resource, "type": candidate.resource.split(":", 1)[0],
                         "name": (r.name if r else self.principals[candidate.resource].name),
                         "owner": self.owner(candidate.resource) if r else None},
        }
        if candidate.grant is not None:
            g = self.grants[candidate.grant.id]
            out["grant"] = {"id": g.id, "granted_by": g.granted_by, "granted_at": as_utc(g.granted_at).isoformat(),
                            "reason": g.reason, "expires_at": g.expires_at and as_utc(g.expires_at).isoformat(),
                            "source": g.source}
        if candidate.members:
            out["members"] = [{"id": m, "name": self.principals[m].name, "status": self.principals[m].status}
                              for m in candidate.members if m in self.principals]
        return out


def resolve_reviewer(directory: Directory, rule: dict[str, Any], candidate: Candidate, fallback: str,
                     members: set[str]) -> tuple[str | None, str | None]:
    """(reviewer, note): the rule's reviewer, or the fallback when the rule finds none or the subject."""
    if rule["rule"] == "principal":
        chosen = rule["principal"]
    elif rule["rule"] == "manager":
        subject = directory.principals.get(candidate.principal)
        chosen = subject.manager_key if subject else None
    else:
        chosen = directory.owner(candidate.resource) if candidate.kind == "grant" else None
    note = None
    if chosen is None:
        chosen, note = fallback, f"no {rule['rule'].replace('_', ' ')} found; assigned to the fallback reviewer"
    if chosen == candidate.principal or chosen in members:
        note = f"{chosen} would review their own access; assigned to the fallback reviewer {fallback}"
        chosen = fallback
        if chosen == candidate.principal or chosen in members:
            return None, f"{note}, who is the subject too: a security lead must reassign this item"
    return chosen, note


def period_key(moment: datetime) -> str:
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def launch(session: Session, ctx: WriteContext, engine: AuthzEngine, definition: CampaignDefinition, period: str,
           *, max_sync_age_hours: float, stale_action: str, fail_after: int | None = None) -> tuple[Campaign, bool]:
    """Launch ``definition`` for ``period``; returns (campaign, launched_now). Never launches twice."""
    state = lock_state(session)  # directory writes wait: the population is read at one revision
    existing = session.scalar(select(Campaign).where(Campaign.definition_id == definition.id,
                                                     Campaign.period == period))
    if existing is not None:
        return existing, False
    fresh = freshness(session, ctx.now, max_sync_age_hours)
    if fresh["stale_sources"]:
        fresh["flagged"] = stale_action == "flag"
        if stale_action != "flag":
            raise StaleDirectory(
                f"source(s) {', '.join(fresh['stale_sources'])} last synced more than {max_sync_age_hours} h ago; "
                "sync them or set ACCESSREVIEW_STALE_SYNC_ACTION=flag", field="source", **fresh)
    snapshot = engine.wait_for(state.revision)
    settings = definition_state(definition)
    candidates = in_scope(snapshot, settings["scope"])
    grant_ids = [c.grant.id for c in candidates if c.grant]
    last_used = dict(session.execute(select(GrantUsage.grant_id, GrantUsage.last_used_at)
                                     .where(GrantUsage.grant_id.in_(grant_ids))).all()) if grant_ids else {}
    last_used = {k: as_utc(v) for k, v in last_used.items()}
    directory = Directory(session)
    campaign = Campaign(
        definition_id=definition.id, period=period, name=f"{definition.name} — {ctx.now:%Y-%m-%d}", settings=settings,
        status="open", launched_by=ctx.actor, launched_at=ctx.now,
        due_at=ctx.now + timedelta(days=definition.duration_days), revision=snapshot.revision,
        policy_version=snapshot.policy.version, population_count=len(candidates),
        population_hash=population_hash(snapshot.revision, candidates), freshness=fresh)
    session.add(campaign)
    session.flush()
    rows, reviewers = [], Counter()
    first_rule = settings["reviewer"]
    for number, candidate in enumerate(candidates):
        if fail_after is not None and number == fail_after:
            raise RuntimeError(f"injected failure after {number} items")
        effective(snapshot, candidate)
        recommend(snapshot, candidate, ctx.now, settings["recommendation"]["unused_days"], last_used)
        members = set(candidate.members)
        reviewer, note = resolve_reviewer(directory, first_rule, candidate, definition.fallback_reviewer, members)
        reviewers[reviewer] += 1
        if len(rows) == INSERT_BATCH:  # written as they are made: memory stays flat however large
            session.execute(insert(ReviewItem), rows)
            rows = []
        rows.append({
            "campaign_id": campaign.id, "kind": candidate.kind, "grant_id": candidate.grant.id if candidate.grant else None,
            "principal_key": candidate.principal, "role": candidate.role, "resource_key": candidate.resource,
            "frozen": directory.frozen(candidate), "effective_permissions": candidate.effective,
            "explanation": candidate.explanation, "last_used_at": candidate.last_used_at,
            "recommendation": candidate.recommendation, "recommendation_reason": candidate.reason, "stage": 0,
            "reviewer_of_record": reviewer, "reviewer": reviewer, "assignment_note": note, "status": "pending",
            "overridden": False, "remediation_attempts": 0})
    if rows:
        session.execute(insert(ReviewItem), rows)
    append_event(session, ctx, "campaign.launched", f"campaign:{campaign.id}", None, {
        "definition": definition.id, "period": period, "revision": campaign.revision,
        "population_count": campaign.population_count, "population_hash": campaign.population_hash,
        "policy_version": campaign.policy_version, "due_at": campaign.due_at, "freshness": fresh}, state=state)
    for reviewer, count in sorted(reviewers.items(), key=lambda kv: str(kv[0])):
        append_event(session, ctx, "campaign.assigned", f"campaign:{campaign.id}", None,
                     {"reviewer": reviewer, "items": count, "stage": 0}, state=state)
    session.flush()
    return campaign, True
