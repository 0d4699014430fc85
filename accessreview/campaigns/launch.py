"""Launching a campaign: freeze the population at one revision, advise, assign reviewers.

A launch is a job (``launch``): it freezes the population once, writes the items a chunk a step, and
opens the campaign in its last step; until then the campaign is ``launching`` and nobody reviews
it. A campaign is keyed by (definition, period), so a repeated or doubled trigger finds the first
one instead of making a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from .. import jobs

from ..audit import WriteContext, append_event, lock_state
from ..authz.engine import AuthzEngine
from ..clock import as_utc
from ..db import settle
from ..directory.service import current_revision
from ..errors import Conflict
from ..models import (Campaign, CampaignDefinition, Decision, Grant, GrantUsage, Job, Principal, Resource,
                      ReviewItem, ServiceToken, SourceSync)
from .definitions import definition_state
from .population import Candidate, UsageData, effective, in_scope, population_hash, recommend, usage_since


INSERT_BATCH = 1000  # rows a statement: well under PostgreSQL's 65,535 parameters
LAUNCH_CHUNK = 5000  # items a step writes (about a second on PostgreSQL)
IN_CHUNK = 1000  # keys in one IN (…)


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


def start_launch(session: Session, ctx: WriteContext, definition: CampaignDefinition, period: str, *,
                 max_sync_age_hours: float, stale_action: str) -> tuple[Campaign | None, Job | None]:
    """(the campaign already launched for ``period``, None) or (None, the launch job just recorded).

    A stale source is refused here, before any work starts; one launch per definition runs at once."""
    existing = session.scalar(select(Campaign).where(Campaign.definition_id == definition.id,
                                                     Campaign.period == period))
    if existing is not None and existing.status != "launching":
        return existing, None
    fresh = freshness(session, ctx.now, max_sync_age_hours)
    if fresh["stale_sources"]:
        fresh["flagged"] = stale_action == "flag"
        if stale_action != "flag":
            raise StaleDirectory(
                f"source(s) {', '.join(fresh['stale_sources'])} last synced more than {max_sync_age_hours} h ago; "
                "sync them or set ACCESSREVIEW_STALE_SYNC_ACTION=flag", field="source", **fresh)
    job = jobs.start(session, ctx, "launch", f"campaign_definition:{definition.id}",
                     {"definition": definition.id, "period": period, "freshness": fresh})
    if existing is not None:  # a launch that failed part-way: its job clears what it wrote, then launches
        job.phase, job.cursor = "discard", {**job.cursor, "campaign": existing.id, "revision": existing.revision}
    return None, job


@dataclass
class Population:
    """What a launch computes once and writes in chunks: the candidates at one revision, and the rows
    of the directory and of grant usage as they were at that revision."""

    snapshot: Any
    candidates: list[Candidate]
    directory: Directory
    last_used: dict[int, datetime]
    token_used: dict[str, datetime]  # principal -> the last use of any of its tokens
    reconciliation: dict[str, Any] = field(default_factory=dict)  # the directory's counts, in and out of scope


def freeze(session: Session, engine: AuthzEngine, scope: dict[str, Any], attempts: int = 5) -> Population:
    """The population at the directory's current revision, read without the write lock: the rows are
    read between two looks at the revision, and read again if a write committed in between."""
    for _ in range(attempts):
        revision = current_revision(session)
        snapshot = engine.wait_for(revision)
        if snapshot.revision != revision:
            continue
        reconciliation: dict[str, Any] = {}
        candidates = in_scope(snapshot, scope, reconciliation)
        directory = Directory(session)
        directory.grants  # noqa: B018 - read now, at this revision
        last_used = _last_used(session, [c.grant.id for c in candidates if c.grant])
        token_used = {principal: as_utc(at) for principal, at in session.execute(
            select(ServiceToken.principal_key, func.max(ServiceToken.last_used_at))
            .where(ServiceToken.last_used_at.is_not(None)).group_by(ServiceToken.principal_key))}
        if current_revision(session) == revision:
            return Population(snapshot, candidates, directory, last_used, token_used, reconciliation)
        session.rollback()
    lock_state(session)  # writes keep coming: read under the lock this once
    return freeze(session, engine, scope, attempts=1)


def usage_window(session: Session, now: datetime, window_days: int, retention_days: int) -> dict[str, Any]:
    """What the advice of a launch rests on, fixed once for all its chunks: the time it is given at,
    the look-back window, and from when the decision log is complete (see UsageData)."""
    first = session.scalar(select(Decision.decided_at).order_by(Decision.decided_at).limit(1))
    since = usage_since(first and as_utc(first), now, retention_days)
    return {"at": now.isoformat(), "window_days": window_days, "since": since and since.isoformat()}


def _usage(advice: dict[str, Any], population: "Population") -> UsageData:
    return UsageData(datetime.fromisoformat(advice["at"]), advice["window_days"],
                     advice["since"] and datetime.fromisoformat(advice["since"]), population.last_used,
                     population.token_used)


def _last_used(session: Session, grant_ids: list[int]) -> dict[int, datetime]:
    found = {}
    for start in range(0, len(grant_ids), IN_CHUNK):
        chunk = grant_ids[start:start + IN_CHUNK]
        found.update((k, as_utc(v)) for k, v in session.execute(
            select(GrantUsage.grant_id, GrantUsage.last_used_at).where(GrantUsage.grant_id.in_(chunk))))
    return found


@jobs.kind("launch")
def launch_step(run: jobs.JobRun) -> None:
    """prepare (freeze, make the campaign ``launching``) → items (a chunk a step) → settle (the
    database's statistics brought up to date with them) → finish (open it).
    A runner that takes the job over without its predecessor's population carries on when the
    directory is still at the frozen revision; otherwise it discards what was written and starts over."""
    session, job = run.session, run.job
    definition = session.get(CampaignDefinition, job.params["definition"])
    if job.phase == "items" and "population" not in run.memory:
        population = freeze(session, run.engine, job.cursor["settings"]["scope"])
        if population.snapshot.revision == job.cursor["revision"]:
            run.memory["population"] = population
        else:
            run.advance("discard")
    if job.phase == "discard":
        _discard(run)
    elif job.phase in ("start", "prepare"):
        _prepare(run, definition)
    elif job.phase == "items":
        _write_items(run, definition)
    elif job.phase == "settle":
        settle(session, ReviewItem)  # holds no lock: the items are committed, the campaign not yet open
        run.advance("finish")
    elif job.phase == "finish":
        _open(run)


def _prepare(run: jobs.JobRun, definition: CampaignDefinition) -> None:
    session, ctx, job = run.session, run.ctx, run.job
    settings = definition_state(definition)
    population = freeze(session, run.engine, settings["scope"])
    state = lock_state(session)
    existing = session.scalar(select(Campaign).where(Campaign.definition_id == definition.id,
                                                     Campaign.period == job.params["period"]))
    if existing is not None:  # launched meanwhile by another way in: nothing to do
        run.finish(campaign=existing.id)
        return
    snapshot, candidates = population.snapshot, population.candidates
    campaign = Campaign(
        definition_id=definition.id, period=job.params["period"], name=f"{definition.name} — {ctx.now:%Y-%m-%d}",
        settings=settings, status="launching", launched_by=ctx.actor, launched_at=ctx.now,
        due_at=ctx.now + timedelta(days=definition.duration_days), revision=snapshot.revision,
        policy_version=snapshot.policy.version, population_count=len(candidates),
        population_hash=population_hash(snapshot.revision, candidates), freshness=job.params["freshness"],
        reconciliation=population.reconciliation)
    session.add(campaign)
    session.flush()
    append_event(session, ctx, "campaign.launch_started", f"campaign:{campaign.id}", None,
                 {"definition": definition.id, "period": campaign.period, "revision": campaign.revision,
                  "population_count": campaign.population_count, "job": job.id}, state=state)
    run.memory["population"] = population
    advice = usage_window(session, ctx.now, settings["recommendation"]["unused_days"],
                          run.config["DECISION_RETENTION_DAYS"])
    run.advance("items", done=0, total=len(candidates), campaign=campaign.id, revision=snapshot.revision,
                settings=settings, next=0, advice=advice)
    job.result = {"campaign": campaign.id}


def _write_items(run: jobs.JobRun, definition: CampaignDefinition) -> None:
    session, ctx, job = run.session, run.ctx, run.job
    population: Population = run.memory["population"]
    settings, start = job.cursor["settings"], job.cursor["next"]
    chunk = population.candidates[start:start + LAUNCH_CHUNK]
    if "advice" not in job.cursor:  # a launch recorded before advice was fixed at its start
        run.advance("items", advice=usage_window(session, ctx.now, settings["recommendation"]["unused_days"],
                                                 run.config["DECISION_RETENTION_DAYS"]))
    usage = _usage(job.cursor["advice"], population)
    rows = []
    for candidate in chunk:
        effective(population.snapshot, candidate)
        granted = population.directory.grants[candidate.grant.id].granted_at if candidate.grant else None
        recommend(population.snapshot, candidate, usage, granted and as_utc(granted))
        members = set(candidate.members)
        reviewer, note = resolve_reviewer(population.directory, settings["reviewer"], candidate,
                                          settings["fallback_reviewer"], members)
        rows.append({
            "campaign_id": job.cursor["campaign"], "kind": candidate.kind,
            "grant_id": candidate.grant.id if candidate.grant else None, "principal_key": candidate.principal,
            "role": candidate.role, "resource_key": candidate.resource,
            "frozen": population.directory.frozen(candidate), "effective_permissions": candidate.effective,
            "explanation": candidate.explanation, "last_used_at": candidate.last_used_at,
            "recommendation": candidate.recommendation, "recommendation_reason": candidate.reason,
            "recommendation_confidence": candidate.confidence, "stage": 0,
            "reviewer_of_record": reviewer, "reviewer": reviewer, "assignment_note": note, "status": "pending",
            "overridden": False, "remediation_attempts": 0})
    for offset in range(0, len(rows), INSERT_BATCH):
        session.execute(insert(ReviewItem), rows[offset:offset + INSERT_BATCH])
    done = start + len(chunk)
    run.advance("items" if done < len(population.candidates) else "settle", done=done, next=done)


def _open(run: jobs.JobRun) -> None:
    session, ctx, job = run.session, run.ctx, run.job
    state = lock_state(session)
    campaign = session.get(Campaign, job.cursor["campaign"])
    campaign.status = "open"
    append_event(session, ctx, "campaign.launched", f"campaign:{campaign.id}", None, {
        "definition": campaign.definition_id, "period": campaign.period, "revision": campaign.revision,
        "population_count": campaign.population_count, "population_hash": campaign.population_hash,
        "policy_version": campaign.policy_version, "due_at": campaign.due_at, "freshness": campaign.freshness},
        state=state)
    reviewers = session.execute(select(ReviewItem.reviewer, func.count()).where(
        ReviewItem.campaign_id == campaign.id).group_by(ReviewItem.reviewer)).all()
    for reviewer, count in sorted(reviewers, key=lambda kv: str(kv[0])):
        append_event(session, ctx, "campaign.assigned", f"campaign:{campaign.id}", None,
                     {"reviewer": reviewer, "items": count, "stage": 0}, state=state)
    run.finish(campaign=campaign.id)


def _discard(run: jobs.JobRun) -> None:
    """Remove a launch that can no longer be finished at its revision, a chunk a step; then start over."""
    session, ctx, job = run.session, run.ctx, run.job
    campaign_id = job.cursor["campaign"]
    ids = list(session.scalars(select(ReviewItem.id).where(ReviewItem.campaign_id == campaign_id)
                               .order_by(ReviewItem.id).limit(LAUNCH_CHUNK)))
    if ids:
        session.execute(delete(ReviewItem).where(ReviewItem.id.in_(ids)))
        return
    state = lock_state(session)
    session.execute(delete(Campaign).where(Campaign.id == campaign_id, Campaign.status == "launching"))
    append_event(session, ctx, "campaign.launch_restarted", f"campaign:{campaign_id}", None,
                 {"job": job.id, "reason": f"the directory moved past revision {job.cursor['revision']} while the "
                  "launch was interrupted; launching again at the current revision"}, state=state)
    run.advance("prepare", done=0)
    job.result = {}
