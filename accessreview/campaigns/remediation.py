"""Remediation after sign-off: revoke what was decided revoke, then prove through checks it is gone.

It is a job (``remediation``), started in the sign-off's own transaction: the sign-off report, the
revocations a chunk a step (each chunk one directory revision), their verification a chunk a step,
the scope as it stands after, and the post-remediation report. A retry (``start_remediation``)
runs the same job, which picks up what is still pending or failed.

The job acts as the service (``SERVICE_ACTOR``), not as the person who signed off: every event it
writes names the sign-off it carries out (who, when, its audit event). Each revoked item ends in one
of three outcomes: removed; removed, but access remains through another grant (a finding, with
every grant that still gives it); or not removed (an error, with why)."""

from __future__ import annotations

import re
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, case, func, null, select, type_coerce, update
from sqlalchemy.orm import Session

from .. import jobs
from ..audit import SERVICE_ACTOR, WriteContext, append_event, lock_state
from ..authz.declarations import Declarations
from ..authz.engine import AuthzEngine
from ..errors import Conflict
from ..clock import as_utc
from ..db import among, key_batches
from ..directory import holds, service as directory
from ..directory.planner import Change, Plan, Planner, grant_identity, grant_state
from ..directory.schemas import PrincipalRow
from ..models import AuditEvent, Campaign, Grant, GroupMembership, Job, Principal, Report, ReviewItem
from .population import PopulationHash, directory_as_it_stands, scope_candidates
from . import review
from .review import record_many



REMEDIATION_CHUNK = 1000  # revocations applied, or verified, in one step


@dataclass
class _Item:
    """What remediation reads of a review item and writes back, as a plain row: 200,000 ORM objects
    with their JSON columns cost more than the work itself."""

    id: int
    campaign_id: int
    stage: int
    kind: str
    grant_id: int | None
    principal_key: str
    resource_key: str
    applied_at: Any
    role: str | None = None
    decided_by: str | None = None
    decided_at: Any = None
    justification: str | None = None
    automated_rule: str | None = None
    frozen: dict[str, Any] | None = None
    effective_permissions: dict[str, Any] | None = None
    remediation_detail: str | None = None
    changes: dict[str, Any] = field(default_factory=dict)


_COLUMNS = (ReviewItem.id, ReviewItem.campaign_id, ReviewItem.stage, ReviewItem.kind, ReviewItem.grant_id,
            ReviewItem.principal_key, ReviewItem.resource_key, ReviewItem.applied_at)


def item_rows(session: Session, campaign: Campaign, states: tuple[str, ...], after: int, limit: int | None,
              *where, extra=()) -> list[_Item]:
    """Up to ``limit`` of the campaign's items in ``states`` with ids above ``after``, in id order.

    Read a window of ids at a time: a bounded range of the (campaign, id) index, whatever the
    planner believes of the states' counts (its statistics lag a bulk change by minutes, and on a
    stale count PostgreSQL read every item of the campaign and sorted them, for every chunk)."""
    query = select(*_COLUMNS, *extra).where(
        ReviewItem.campaign_id == campaign.id, ReviewItem.remediation_state.in_(states), *where).order_by(ReviewItem.id)
    if limit is None:
        return [_Item(**row._mapping) for row in session.execute(query.where(ReviewItem.id > after))]
    last = session.scalar(select(func.max(ReviewItem.id)).where(ReviewItem.campaign_id == campaign.id)) or 0
    found: list[_Item] = []
    while len(found) < limit and after < last:
        window = query.where(ReviewItem.id > after, ReviewItem.id <= after + limit).limit(limit - len(found))
        found += [_Item(**row._mapping) for row in session.execute(window)]
        after = found[-1].id if len(found) == limit else after + limit
    return found


def _write_back(session: Session, items: list[_Item], *, attempted: bool = False) -> None:
    """One UPDATE for each set of items changed alike (most of a chunk is), not one per item; with
    ``attempted``, every item's attempts counted in the same statements."""
    alike: dict[tuple, list[int]] = {}
    for item in items:
        if item.changes or attempted:
            alike.setdefault(tuple(sorted(item.changes.items())), []).append(item.id)
    counted = {"remediation_attempts": ReviewItem.remediation_attempts + 1} if attempted else {}
    for changes, ids in alike.items():
        for batch in key_batches(session, ids):
            session.execute(update(ReviewItem).where(among(session, ReviewItem.id, batch))
                            .values({**dict(changes), **counted}).execution_options(synchronize_session=False))


def sign_off_reference(session: Session, campaign: Campaign) -> dict[str, Any]:
    """The sign-off that remediation carries out, as its events name it: who signed, when, and the
    audit event that records it."""
    event = session.execute(select(AuditEvent.id, AuditEvent.seq).where(
        AuditEvent.target == f"campaign:{campaign.id}", AuditEvent.action == "campaign.signed_off")
        .order_by(AuditEvent.seq.desc()).limit(1)).first()
    return {"campaign": campaign.id, "signed_off_by": campaign.signed_off_by,
            "signed_off_at": campaign.signed_off_at and as_utc(campaign.signed_off_at).isoformat(),
            "event": event.id if event else None, "event_seq": event.seq if event else None}


def service_context(ctx: WriteContext) -> WriteContext:
    """Remediation's writes are the service's acts, not the signer's: the signer attested, the service applies."""
    return WriteContext(SERVICE_ACTOR, ctx.now, ctx.request_id)


def apply_revocations(session: Session, ctx: WriteContext, campaign: Campaign, declarations: Declarations, *,
                      after: int = 0, limit: int | None = None, on_sign_off: dict[str, Any] | None = None
                      ) -> tuple[dict[str, int], int | None, int]:
    """Remove the grants (or memberships) decided revoke that are pending or failed, with item ids
    above ``after``, up to ``limit`` items; one revision. Every event names ``on_sign_off``, the
    sign-off carried out. Returns (counts, the last item id seen, items seen)."""
    state = lock_state(session)
    on_sign_off = on_sign_off or sign_off_reference(session, campaign)
    items = item_rows(session, campaign, ("pending", "failed"), after, limit, ReviewItem.decision == "revoke",
                   extra=(ReviewItem.role, ReviewItem.decided_by, ReviewItem.decided_at, ReviewItem.justification,
                          ReviewItem.automated_rule))
    grant_ids = [item.grant_id for item in items if item.kind == "grant" and item.applied_at is None]
    grants = {grant.id: grant for batch in key_batches(session, grant_ids)  # one query, not one per item
              for grant in session.scalars(select(Grant).where(among(session, Grant.id, batch)))}
    plan, outcome = Plan(), Counter()
    membership_items: dict[str, list[_Item]] = {}
    for item in items:
        if item.applied_at is not None:  # applied before; only the verification failed
            continue
        if item.kind == "membership":
            membership_items.setdefault(item.resource_key, []).append(item)
            continue
        grant = grants.get(item.grant_id)
        if grant is None:
            item.changes["remediation_detail"] = "the grant was already removed"
        else:
            identity = grant_identity(grant.principal_key, grant.role, grant.resource_key)
            plan.grants.append(Change("removed", identity, {**grant_state(grant), "removed_by_review": campaign.id,
                                                            "review_item": item.id, "on_sign_off": on_sign_off},
                                      None))
            plan.grant_rows[identity] = grant
        item.changes.update(remediation_state="applied", applied_at=ctx.now)
    if plan.grants:
        directory.apply_plan(session, ctx, plan)
    for group, group_items in membership_items.items():
        error = _remove_members(session, ctx, declarations, campaign, on_sign_off, group,
                                {i.principal_key: i.id for i in group_items})
        for item in group_items:
            if error is None:
                item.changes.update(remediation_state="applied", applied_at=ctx.now)
            else:  # left as it was, for a retry to take up again
                item.changes.update(remediation_state="failed", remediation_detail=f"{NOT_REMOVED}: {error}")
    applied = [item for item in items if item.changes.get("remediation_state") == "applied"]
    not_removed = [item for item in items if item.changes.get("remediation_state") == "failed"]
    outcome["applied"], outcome["not_removed"] = len(applied), len(not_removed)
    holds.place(session, ctx, campaign, [_hold_entry(campaign, item) for item in applied])
    _write_back(session, items, attempted=True)
    # A grant's deletion event names its item: that is the revocation's audit event, and the item's
    # history records it too. Anything else (a grant already gone, a membership) gets an event of its own.
    in_deletions, own_events = [], []
    for item in applied:
        entry = (item, "revoked", {"grant_id": item.grant_id, "on_sign_off": on_sign_off,
                                   "detail": item.changes.get("remediation_detail")})
        (in_deletions if item.kind == "grant" and item.grant_id in grants else own_events).append(entry)
    own_events += [(item, "not_removed", {"grant_id": item.grant_id, "on_sign_off": on_sign_off,
                                          "detail": item.changes["remediation_detail"]}) for item in not_removed]
    record_many(session, ctx, in_deletions, state=state, audited=False)
    record_many(session, ctx, own_events, state=state)
    return dict(outcome), (items[-1].id if items else None), len(items)


def _hold_entry(campaign: Campaign, item: _Item) -> dict[str, Any]:
    membership = item.kind == "membership"
    return {"kind": item.kind, "principal": item.principal_key, "role": "member" if membership else item.role,
            "resource": item.resource_key, "item": item.id,
            "decision": {"decision": "revoke", "by": item.decided_by, "rule": item.automated_rule,
                         "at": item.decided_at and as_utc(item.decided_at).isoformat(),
                         "justification": item.justification, "signed_off_by": campaign.signed_off_by}}


def _remove_members(session: Session, ctx: WriteContext, declarations: Declarations, campaign: Campaign,
                    on_sign_off: dict[str, Any], group: str, members: dict[str, int]) -> str | None:
    """Take ``members`` (member -> review item) out of ``group``, the change's event naming the review,
    its items and the sign-off; returns why it could not be done, or None. A group already gone
    holds nobody: nothing to do."""
    principal = session.get(Principal, group)
    if principal is None:
        return None
    current = session.scalars(select(GroupMembership.member_key).where(GroupMembership.group_key == group)).all()
    row = PrincipalRow(id=group, name=principal.name, members=[m for m in current if m not in members])
    planner = Planner(session, declarations, ctx.now, ctx.actor)
    plan = planner.plan([row], [], [], source="manual")
    if planner.errors:
        return "; ".join(error.message for error in planner.errors)
    for change in plan.principals:
        change.before = {**(change.before or {}), "removed_by_review": campaign.id,
                         "review_items": sorted(members.values()), "on_sign_off": on_sign_off}
    directory.apply_plan(session, ctx, plan)
    return None


def verify(session: Session, ctx: WriteContext, engine: AuthzEngine, campaign: Campaign, *, after: int = 0,
           limit: int | None = None) -> tuple[dict[str, int], int | None, int]:
    """Through the authorization engine: does anyone still have what a revoked item gave? Items with
    ids above ``after``, up to ``limit``; returns (counts, the last item id seen, items seen)."""
    state = lock_state(session)
    snapshot = engine.refresh()
    evaluator, index, now = snapshot.evaluator, snapshot.index, ctx.now
    outcome = Counter()
    items = item_rows(session, campaign, ("applied", "failed"), after, limit, ReviewItem.applied_at.is_not(None),
                   extra=(GROUPS_FROZEN, ReviewItem.effective_permissions, ReviewItem.remediation_detail))
    representatives: dict[tuple[str, frozenset[str]], list[tuple[str, str]]] = {}
    verified: list[int] = []
    failed = []
    for item in items:
        survivors = remaining_access(index, evaluator, item, now, representatives)
        if not survivors:
            item.changes.update(remediation_state="verified", verified_at=now)
            outcome["verified"] += 1
            verified.append(item.id)
            continue
        remaining = [{"actor": a.actor, "permission": a.permission, "resource": a.resource, "grants": list(a.grants),
                      "via": a.via} for a in survivors]
        still_there = _still_there(index, item)
        if still_there:  # the removal did not take: a retry applies it again
            detail = f"{NOT_REMOVED}: {still_there}; " + "; ".join(a.text for a in survivors)
            item.changes.update(remediation_state="failed", remediation_detail=detail, applied_at=None)
            outcome["not_removed"] += 1
        else:
            grants = sorted({g for a in survivors for g in a.grants})
            detail = f"{REMAINS} {_grant_list(grants)}: " + "; ".join(a.text for a in survivors)
            item.changes.update(remediation_state="failed", remediation_detail=detail)
            outcome["still_has_access"] += 1
        failed.append((item, "verify_failed", {"detail": detail, "finding": not still_there,
                                               "remaining": remaining}))
    _write_back(session, items)
    record_many(session, ctx, failed, state=state)
    if verified:  # their record: the item's verified_at, and one audit event a chunk naming every item
        append_event(session, ctx, "campaign.revocations_verified", f"campaign:{campaign.id}", None,
                     {"revision": snapshot.revision, "items": verified}, state=state)
    return dict(outcome), (items[-1].id if items else None), len(items)


NOT_REMOVED = "not removed"
REMAINS = "access remains via"
_REMAINING_GRANTS = re.compile(r"access remains via (grants? [0-9, and]+):")


def _grant_list(ids: list[int]) -> str:
    return ("grant " if len(ids) == 1 else "grants ") + ", ".join(map(str, ids))


def _still_there(index, item: _Item) -> str | None:
    """Why the item's own grant or membership is still in the directory after it was removed, or None."""
    if item.kind == "membership":
        if (item.resource_key, item.principal_key) in index.memberships:
            return f"{item.principal_key} is still a member of {item.resource_key}"
        return None
    grant = index.grants_by_id.get(item.grant_id)
    if grant is not None and (grant.principal, grant.resource) == (item.principal_key, item.resource_key):
        return f"grant {item.grant_id} is still in the directory"
    return None


def outcome_words(state: str | None, applied_at: Any, detail: str | None) -> str | None:
    """A revoked item's remediation outcome in words: not removed yet; removed, not yet verified; removed;
    removed, access remains via grant N (finding); not removed (error)."""
    if state == "failed":
        found = _REMAINING_GRANTS.match(detail or "")
        if applied_at is not None and found:
            return f"removed, access remains via {found.group(1)} (finding)"
        if applied_at is not None:  # recorded before outcomes named their grants
            return "removed, access remains (finding)"
        return "not removed (error)"
    return {"pending": "not removed yet", "applied": "removed, not yet verified", "verified": "removed"}.get(
        state or "")


@dataclass(frozen=True)
class Access:
    """Access a revoked item gave that someone still has, and the grants it rests on."""

    actor: str
    permission: str
    resource: str
    grants: tuple[int, ...]
    via: str

    @property
    def text(self) -> str:
        return f"{self.actor} still has {self.permission} on {self.resource} via {self.via}"


# What remediation reads of an item's frozen facts is a group's members: the rest of them (grant,
# last use, recommendation) is not parsed for the other 99 items in 100.
GROUPS_FROZEN = type_coerce(case((ReviewItem.principal_key.startswith("group:"), ReviewItem.frozen), else_=null()),
                            ReviewItem.frozen.type).label("frozen")


def remaining_access(index, evaluator, item: _Item, now, representatives: dict) -> list[Access]:
    """Through the engine: what of the item's access its principal (each member, for a group) still has."""
    found = []
    for actor in [m["id"] for m in (item.frozen or {}).get("members", [])] or [item.principal_key]:
        for resource, permissions in _targets(index, item, actor, representatives):
            for permission in permissions:
                decision = evaluator.check(actor, permission, resource, now)
                if decision.allowed:
                    found.append(Access(actor, permission, resource, tuple(decision.grants),
                                        ", ".join(_describe(index, g) for g in decision.grants)))
                    break
    return found


def _targets(index, item: _Item, actor: str, representatives: dict) -> list[tuple[str, list[str]]]:
    """The resources to check for ``actor``: the item's resource and one resource of each type below
    it, and the same below every resource under it where the actor (or a group of theirs) holds a
    grant of its own. Access at a resource rests on grants on it and its ancestors: two resources
    of a type below the item's with no grant of the actor's between them and it are answered alike,
    so one stands for all; a grant further down may give more, so its subtree is checked too."""
    if item.kind == "membership":
        return [(grant.resource, [p for perms in item.effective_permissions.values() for p in perms])
                for grant in index.grants_of.get(item.resource_key, ())]
    roots = [item.resource_key]
    for holder in index.holders(actor):
        for grant in index.grants_of.get(holder, ()):
            if grant.resource != item.resource_key and any(
                    node.key == item.resource_key for node in index.ancestors(grant.resource)[1:]):
                roots.append(grant.resource)
    targets: dict[str, list[str]] = {}
    wanted = frozenset(item.effective_permissions)
    for root in roots:
        if (root, wanted) not in representatives:
            representatives[(root, wanted)] = _one_of_each_type(index, root, wanted)
        for key, type_key in representatives[(root, wanted)]:
            if type_key in item.effective_permissions:
                targets[key] = item.effective_permissions[type_key]
    return list(targets.items())


def _one_of_each_type(index, root: str, wanted: frozenset[str], most: int = 10_000) -> list[tuple[str, str]]:
    """``root`` and the first resource of each ``wanted`` type met below it, breadth first (at most
    ``most`` visited)."""
    found: dict[str, str] = {}
    queue, visited = deque([root]), 0
    while queue and visited < most and not wanted <= found.keys():
        key = queue.popleft()
        visited += 1
        resource = index.resources.get(key)
        if resource is not None:
            found.setdefault(resource.type, key)
            queue.extend(index.children.get(key, ()))
    return [(key, type_key) for type_key, key in found.items()]


def _describe(index, grant_id: int) -> str:
    grant = index.grants_by_id.get(grant_id)
    return f"grant {grant_id} ({grant.role} on {grant.resource} to {grant.principal})" if grant else f"grant {grant_id}"


def scope_as_it_stands(bind: Engine, campaign: Campaign, now) -> dict[str, Any]:
    """The scope as it stands after remediation: what is left, for the record."""
    digest = PopulationHash()
    with directory_as_it_stands(bind) as (index, grants):
        for candidate in scope_candidates(index, campaign.settings["scope"], grants=grants):
            digest.add(candidate)
    return {"revision": index.revision, "count": digest.count, "hash": digest.hexdigest(index.revision),
            "taken_at": now.isoformat()}


def start_remediation(session: Session, ctx: WriteContext, campaign: Campaign) -> Job:
    """Record the job that makes the sign-off report (if it is missing), applies and verifies the
    revocations a chunk a step, and makes the post-remediation report. 409 while one runs."""
    if campaign.status != "signed_off":
        raise Conflict("remediation starts after sign-off", code="not_signed_off", field="campaign")
    return jobs.start(session, ctx, "remediation", f"campaign:{campaign.id}",
                      {"campaign": campaign.id, "sign_off": sign_off_reference(session, campaign)})


def sign_off(session: Session, ctx: WriteContext, campaign: Campaign, statement: str) -> tuple[dict[str, Any], Job]:
    """The security lead's attestation and the job that acts on it, in one transaction: a campaign is
    never signed off without the job that makes its report and applies its revocations."""
    state = review.sign_off(session, ctx, campaign, statement)
    return state, start_remediation(session, ctx, campaign)


PHASES = ("report_sign_off", "apply", "verify", "scope", "report_remediation")


@jobs.kind("remediation")
def remediation_step(run: jobs.JobRun) -> None:
    session, job = run.session, run.job
    ctx = run.ctx = service_context(run.ctx)
    campaign = session.get(Campaign, job.params["campaign"])
    on_sign_off = job.params.get("sign_off") or sign_off_reference(session, campaign)
    phase = PHASES[0] if job.phase == "start" else job.phase
    if job.progress_total is None:
        # each revocation is counted twice: applied, then verified
        job.progress_total = 2 * session.scalar(select(func.count()).select_from(ReviewItem).where(
            ReviewItem.campaign_id == campaign.id, ReviewItem.decision == "revoke",
            ReviewItem.remediation_state.in_(("pending", "failed"))))
    if phase == "report_sign_off":
        if session.scalar(select(Report.id).where(Report.campaign_id == campaign.id, Report.stage == "sign_off")
                          .limit(1)) is None:
            signed_report(run, campaign, "sign_off")
        run.advance("apply", last=0)
    elif phase == "apply":
        counts, last, seen = apply_revocations(session, ctx, campaign, run.engine.policy.declarations,
                                               after=job.cursor["last"], limit=REMEDIATION_CHUNK,
                                               on_sign_off=on_sign_off)
        applied = job.cursor.get("applied", 0) + counts.get("applied", 0)
        run.advance("apply" if last else "verify", done=job.progress_done + seen, last=last or 0, applied=applied)
    elif phase == "verify":
        counts, last, seen = verify(session, ctx, run.engine, campaign, after=job.cursor["last"],
                                    limit=REMEDIATION_CHUNK)
        verified = Counter(job.cursor.get("verification", {}))
        verified.update(counts)
        run.advance("verify" if last else "scope", done=job.progress_done + seen, last=last or 0,
                    verification=dict(verified))
    elif phase == "scope":
        campaign.remediation_snapshot = {**scope_as_it_stands(session.get_bind(), campaign, ctx.now),
                                         "applied_by": ctx.actor, "on_sign_off": on_sign_off}
        summary = {"applied": {"applied": job.cursor.get("applied", 0)},
                   "verification": job.cursor.get("verification", {}), "scope_after": campaign.remediation_snapshot}
        append_event(session, ctx, "campaign.remediated", f"campaign:{campaign.id}", None,
                     {"verification": summary["verification"], "scope_after": campaign.remediation_snapshot,
                      "on_sign_off": on_sign_off})
        job.result = {**job.result, "campaign": campaign.id, "remediation": summary}
        run.advance("report_remediation")
    elif phase == "report_remediation":
        signed_report(run, campaign, "remediation")
        run.finish(campaign=campaign.id)


def signed_report(run: jobs.JobRun, campaign: Campaign, stage: str) -> None:
    """One signed workbook, made without holding the write lock (its record takes it at the end)."""
    from ..reports import signer_of
    from ..reports.service import campaign_report, campaign_report_stem, discard_unrecorded

    reports_dir = Path(run.config["REPORTS_DIR"])
    partial = f".partial-job{run.job.id}-"
    discard_unrecorded(run.session, reports_dir, campaign_report_stem(campaign, stage, run.ctx.now), partial)
    report = campaign_report(run.session, run.ctx, signer_of(run.app), reports_dir, campaign, stage, partial=partial)
    run.job.result = {**run.job.result, "reports": [*run.job.result.get("reports", []), report["id"]]}
