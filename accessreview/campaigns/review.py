"""Reviewing: decisions (single and bulk), changes, overrides, reassignment, close and sign-off."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterable

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from .. import jobs
from ..audit import SERVICE_ACTOR, WriteContext, append_event, append_events
from ..clock import as_utc
from ..db import among, bulk_insert, get_or_404, key_batches
from ..errors import ApiError, Conflict, Forbidden, NotFound, Unprocessable
from ..models import Campaign, Job, Principal, ReviewEvent, ReviewItem
from ..pagination import Page, paginate
from .launch import Directory, resolve_reviewer
from .measures import decided_by_hand
from .population import Candidate


def campaign_state(c: Campaign, counts: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "id": c.id, "definition_id": c.definition_id, "period": c.period, "name": c.name, "status": c.status,
        "launched_by": c.launched_by, "launched_at": as_utc(c.launched_at).isoformat(),
        "due_at": as_utc(c.due_at).isoformat(), "closed_at": c.closed_at and as_utc(c.closed_at).isoformat(),
        "revision": c.revision, "policy_version": c.policy_version, "population_count": c.population_count,
        "population_hash": c.population_hash, "freshness": c.freshness, "signed_off_by": c.signed_off_by,
        "signed_off_at": c.signed_off_at and as_utc(c.signed_off_at).isoformat(),
        "sign_off_statement": c.sign_off_statement, "settings": c.settings, "items": counts,
        "follow_up": c.follow_up,
    }


def item_state(i: ReviewItem) -> dict[str, Any]:
    return {
        "id": i.id, "campaign_id": i.campaign_id, "kind": i.kind, "grant_id": i.grant_id,
        "principal": i.frozen["principal"], "role": i.role, "resource": i.frozen["resource"],
        "grant": i.frozen.get("grant"), "members": i.frozen.get("members"),
        "effective_permissions": i.effective_permissions, "explanation": i.explanation,
        "last_used_at": i.last_used_at and as_utc(i.last_used_at).isoformat(),
        "recommendation": i.recommendation, "recommendation_reason": i.recommendation_reason,
        "recommendation_confidence": i.recommendation_confidence or "incomplete",
        "stage": i.stage, "reviewer_of_record": i.reviewer_of_record, "reviewer": i.reviewer,
        "assignment_note": i.assignment_note, "status": i.status, "decision": i.decision,
        "justification": i.justification, "decided_by": i.decided_by,
        "decided_at": i.decided_at and as_utc(i.decided_at).isoformat(), "automated_rule": i.automated_rule,
        "overridden": i.overridden, "escalated_at": i.escalated_at and as_utc(i.escalated_at).isoformat(),
        "remediation_state": i.remediation_state, "remediation_detail": i.remediation_detail,
        "applied_at": i.applied_at and as_utc(i.applied_at).isoformat(),
        "verified_at": i.verified_at and as_utc(i.verified_at).isoformat(), "version": i.version,
    }


def get_campaign(session: Session, campaign_id: int) -> Campaign:
    return get_or_404(session, Campaign, campaign_id, "campaign")


def item_counts(session: Session, campaign_id: int) -> dict[str, int]:
    rows = session.execute(select(ReviewItem.status, func.count()).where(ReviewItem.campaign_id == campaign_id)
                           .group_by(ReviewItem.status)).all()
    return {status: count for status, count in rows}


def list_campaigns(session: Session) -> list[dict[str, Any]]:
    return [campaign_state(c) for c in session.scalars(select(Campaign).order_by(Campaign.id))]


def _status_counts(session: Session, key, *where) -> dict[Any, Counter[str]]:
    """Items per value of ``key`` and status."""
    counts: dict[Any, Counter[str]] = {}
    for value, status, count in session.execute(select(key, ReviewItem.status, func.count()).where(*where)
                                                .group_by(key, ReviewItem.status)):
        counts.setdefault(value, Counter())[status] = count
    return counts


def queue_summary(session: Session, reviewer: str) -> list[dict[str, Any]]:
    """A reviewer's items per campaign, pending and decided, newest campaign first."""
    counts = _status_counts(session, ReviewItem.campaign_id, ReviewItem.reviewer == reviewer)
    campaigns = session.scalars(select(Campaign).where(Campaign.id.in_(counts)).order_by(Campaign.id.desc()))
    return [{"campaign": campaign_state(c), "pending": counts[c.id]["pending"], "decided": counts[c.id]["decided"]}
            for c in campaigns]


def reviewer_progress(session: Session, campaign_id: int) -> list[dict[str, Any]]:
    """Per current reviewer of a campaign: items pending and decided, when they last decided one of
    them and when they were last reminded (one pass over the campaign's items); most pending first."""
    found: dict[str | None, dict[str, Any]] = {}
    for reviewer, status, count, decided_at, reminded_at in session.execute(
            select(ReviewItem.reviewer, ReviewItem.status, func.count(),
                   func.max(case((ReviewItem.decided_by == ReviewItem.reviewer, ReviewItem.decided_at))),
                   func.max(ReviewItem.last_reminded_at))
            .where(ReviewItem.campaign_id == campaign_id).group_by(ReviewItem.reviewer, ReviewItem.status)):
        row = found.setdefault(reviewer, {"reviewer": reviewer, "pending": 0, "decided": 0, "last_activity": None,
                                          "last_reminded": None})
        row[status] = count
        for key, moment in (("last_activity", decided_at), ("last_reminded", reminded_at)):
            if moment is not None and (row[key] is None or _iso(moment) > row[key]):
                row[key] = _iso(moment)
    return sorted(found.values(), key=lambda r: (-r["pending"], r["reviewer"] or ""))


def _iso(moment: datetime | None) -> str | None:
    return as_utc(moment).isoformat() if moment else None


def list_items(session: Session, *, campaign: int | None, reviewer: str | None, status: str | None,
               cursor: str | None, limit: int) -> Page:
    query = select(ReviewItem)
    for column, value in ((ReviewItem.campaign_id, campaign), (ReviewItem.reviewer, reviewer),
                          (ReviewItem.status, status)):
        if value is not None:
            query = query.where(column == value)
    return paginate(session, query, ReviewItem.id, cursor, limit).map(item_state)


def record(session: Session, ctx: WriteContext, item: ReviewItem, kind: str, **detail: Any) -> None:
    """The item's own history, and the audit trail, for one review event."""
    session.add(ReviewEvent(item_id=item.id, occurred_at=ctx.now, actor=ctx.actor, kind=kind, stage=item.stage,
                            detail=detail))
    append_event(session, ctx, f"review.{kind}", f"review_item:{item.id}", None,
                 {"campaign": item.campaign_id, "stage": item.stage, **detail})


def record_many(session: Session, ctx: WriteContext, entries: list[tuple[Any, str, dict[str, Any]]],
                state=None, *, audited: bool = True) -> None:
    """:func:`record` for many items at once, as plain rows: ``entries`` are (item, kind, detail), where an
    item is anything with ``id``, ``campaign_id`` and ``stage``. ``audited=False`` writes the items'
    history only, for acts the audit trail already holds item by item in an event of their own (a
    revocation is the directory change that carried it out, which names its item)."""
    if not entries:
        return
    bulk_insert(session, ReviewEvent, [
        {"item_id": item.id, "occurred_at": ctx.now, "actor": ctx.actor, "kind": kind, "stage": item.stage,
         "detail": detail} for item, kind, detail in entries])
    if audited:
        append_events(session, ctx, ((f"review.{kind}", f"review_item:{item.id}", None,
                                  {"campaign": item.campaign_id, "stage": item.stage, **detail})
                                 for item, kind, detail in entries), state=state)


def item_history(session: Session, item: ReviewItem) -> list[dict[str, Any]]:
    """The item's review events, oldest first. A revocation's verification is kept on the item
    (``verified_at``) and in its chunk's audit event rather than an event of the item's own (200,000
    of them would double remediation's writes), so it is told here from the item."""
    history = [{"occurred_at": as_utc(e.occurred_at).isoformat(), "actor": e.actor, "kind": e.kind,
                "stage": e.stage, **e.detail}
               for e in session.scalars(select(ReviewEvent).where(ReviewEvent.item_id == item.id)
                                        .order_by(ReviewEvent.id))]
    if item.verified_at is not None and not any(entry["kind"] == "verified" for entry in history):
        history.append({"occurred_at": as_utc(item.verified_at).isoformat(), "actor": SERVICE_ACTOR,
                        "kind": "verified", "stage": item.stage, "detail": item.remediation_detail})
    return history


def _require_open(campaign: Campaign) -> None:
    if campaign.status != "open":
        raise Conflict(f"campaign {campaign.id} is {campaign.status.replace('_', ' ')}; its decisions can no longer "
                       "change", code="campaign_closed", field="campaign")


# How changes to one item are serialized. Every unit of work of a request or a scheduler pass first
# locks the directory's state row (audit.lock_state), but what a request authorized was read before
# that lock, and job steps (a close) take it only at their end; so a decision, override, hand-on or
# stage advance re-reads its items under a row lock (SELECT ... FOR UPDATE, populate_existing) and
# decides on what is committed now: the history's ``previous`` is the true one, and nothing written
# since is overwritten. A lock rather than a compare-and-set on ``version``: the writers here (bulk
# decisions, the close job) have nobody to retry for them, and the lock costs one short wait behind
# a write that is queued on the state row anyway. ``version`` is what a client saw, so that a
# decision made on a stale view is refused (409 stale_item) instead of applied.

def lock_for_change(session: Session, campaign_id: int, item_ids: list[int]) -> tuple[Campaign, dict[int, ReviewItem]]:
    """The campaign, open, as committed now (409 campaign_closed otherwise), and its items ``item_ids``
    locked until the unit of work ends, in id order (so two writers never wait on each other in a
    circle). The campaign is read first: a close step holds the locks of the items it closes, and
    while the campaign is open (read under the state row's lock) no close step can be at work."""
    campaign = session.get(Campaign, campaign_id, populate_existing=True)
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} does not exist", field="campaign")
    _require_open(campaign)
    items: dict[int, ReviewItem] = {}
    ordered = sorted(set(item_ids))
    for chunk in key_batches(session, ordered):
        items.update({item.id: item for item in session.scalars(
            select(ReviewItem).where(among(session, ReviewItem.id, chunk), ReviewItem.campaign_id == campaign_id)
            .order_by(ReviewItem.id).with_for_update().execution_options(populate_existing=True))})
    return campaign, items


def stale(item: ReviewItem, seen_version: int | None, why: str | None = None) -> Conflict | None:
    """A 409 for a change asked on a view of ``item`` that is no longer true: the version the client
    saw is not the item's, or (``why``) it was handed on since. None when the view holds."""
    if why is None and (seen_version is None or seen_version == item.version):
        return None
    now = f"{item.decision} by {item.decided_by}" if item.status == "decided" else f"pending with {item.reviewer}"
    because = why or f"it is at version {item.version}, not {seen_version}"
    return Conflict(f"review item {item.id} changed since you saw it ({because}; now {now}, stage {item.stage + 1}); "
                    "look at it again before deciding", code="stale_item", field="version", item=item.id,
                    version=item.version)


@dataclass
class DecisionRequest:
    item: ReviewItem  # locked by lock_for_change
    decision: str
    justification: str | None
    override: bool  # decided by a security lead or admin instead of the assigned reviewer
    seen_version: int | None = None  # the item's version the client decided on, if it said
    handed_on: str | None = None  # why the decider may no longer decide the item as it is now


def check_decision(campaign: Campaign, request: DecisionRequest) -> ApiError | None:
    """What is wrong with a decision, if anything (so bulk decisions can report every problem)."""
    if campaign.status != "open":
        return Conflict(f"campaign {campaign.id} is {campaign.status}", code="campaign_closed", field="campaign")
    item = request.item
    problem = stale(item, request.seen_version, request.handed_on)
    if problem:
        return problem
    if item.overridden and item.status == "decided" and not request.override:
        return Conflict(f"review item {item.id} was decided by {item.decided_by}, overriding its reviewer; only a "
                        "security lead can change it now", code="overridden", field="decision")
    rules = campaign.settings["justification"]
    against = (request.decision == "keep" and item.recommendation == "revoke"
               and rules.get("keep_against_revoke_advice", False))
    if (rules[request.decision] or against) and not (request.justification or "").strip():
        why = " against the advice to revoke" if against and not rules[request.decision] else ""
        return Unprocessable(f"a justification is required to {request.decision}{why}", field="justification",
                             code="justification_required")
    return None


def apply_decision(session: Session, ctx: WriteContext, campaign: Campaign, request: DecisionRequest,
                   directory: Directory | None = None) -> None:
    item = request.item
    previous = item.decision if item.status == "decided" else None
    kind = "overridden" if request.override else ("changed" if previous else "decided")
    stages = [campaign.settings["reviewer"], *campaign.settings.get("stages", [])]
    if request.decision == "keep" and item.stage + 1 < len(stages) and previous is None:
        # Kept at this stage: the next stage's reviewer decides next.
        record(session, ctx, item, "stage_passed", decision="keep", justification=request.justification,
               reviewer=item.reviewer, override=request.override)
        item.stage += 1
        item.version += 1
        directory = directory or Directory(session)
        candidate = Candidate(item.kind, item.principal_key, item.resource_key, item.role,
                              members=[m["id"] for m in item.frozen.get("members", [])])
        item.reviewer, item.assignment_note = resolve_reviewer(
            directory, stages[item.stage], candidate, campaign.settings["fallback_reviewer"],
            set(candidate.members))
        record(session, ctx, item, "assigned", reviewer=item.reviewer, note=item.assignment_note)
        return
    item.status, item.decision, item.justification = "decided", request.decision, request.justification
    item.decided_by, item.decided_at, item.automated_rule = ctx.actor, ctx.now, None
    item.overridden = item.overridden or request.override
    item.version += 1
    record(session, ctx, item, kind, decision=request.decision, previous=previous,
           justification=request.justification, override=request.override)


def decide(session: Session, ctx: WriteContext, campaign: Campaign, request: DecisionRequest) -> dict[str, Any]:
    """One decision on an item locked with its open campaign by :func:`lock_for_change`."""
    item = request.item
    problem = check_decision(campaign, request)
    if problem:
        raise problem
    apply_decision(session, ctx, campaign, request)
    session.flush()
    close_if_complete(session, ctx, campaign)
    return item_state(item)


def decide_many(session: Session, ctx: WriteContext, campaign: Campaign,
                requests: list[DecisionRequest]) -> dict[str, Any]:
    """All or nothing: every decision is checked first; one bad one and nothing is written."""
    errors = []
    changed_since = False
    seen: set[int] = set()
    for index, request in enumerate(requests):
        problem = check_decision(campaign, request)
        if request.item.campaign_id != campaign.id:
            problem = NotFound(f"review item {request.item.id} is not in campaign {campaign.id}", field="item")
        elif request.item.id in seen:
            problem = Unprocessable(f"review item {request.item.id} appears twice", field="item", code="duplicate_row")
        seen.add(request.item.id)
        if problem:
            errors.append({"index": index, "item": request.item.id, "code": problem.code, "field": problem.field,
                           "message": problem.message})
            changed_since = changed_since or isinstance(problem, Conflict)
    if errors:
        message = f"{len(errors)} decision(s) refused; nothing was written"
        if changed_since:  # items changed since the client saw them: a conflict, not a bad request
            raise Conflict(message, field="decisions", code="stale_items", errors=errors)
        raise Unprocessable(message, field="decisions", code="invalid_decisions", errors=errors)
    directory = Directory(session) if any(r.decision == "keep" for r in requests) and campaign.settings.get("stages") \
        else None
    for request in requests:
        apply_decision(session, ctx, campaign, request, directory)
    session.flush()
    close_if_complete(session, ctx, campaign)
    return {"decided": len(requests), "campaign": campaign_state(campaign, item_counts(session, campaign.id))}


def reassign(session: Session, ctx: WriteContext, item: ReviewItem, to: str, reason: str, *,
             delegated: bool, may_review: Callable[[str], bool], members: Iterable[str] = (),
             seen_version: int | None = None) -> dict[str, Any]:
    """Hand on an item locked (with its open campaign) by :func:`lock_for_change` to ``to``;
    ``may_review`` is the policy's word on whether ``to`` could decide it, and ``members`` the
    reviewed group's members now (those it had at launch are on the item)."""
    problem = stale(item, seen_version)
    if problem:
        raise problem
    if item.status != "pending":
        raise Conflict(f"review item {item.id} is already decided", code="already_decided", field="id")
    _require_reviewer(session, item, to, may_review, set(members))
    previous = item.reviewer
    item.reviewer = to
    item.assignment_note = reason
    item.version += 1
    record(session, ctx, item, "delegated" if delegated else "reassigned", from_reviewer=previous, to_reviewer=to,
           reason=reason)
    session.flush()
    return item_state(item)


def _require_reviewer(session: Session, item: ReviewItem, to: str, may_review: Callable[[str], bool],
                      members: set[str]) -> None:
    """An item goes only to someone who can then decide it, and not on their own access: otherwise
    nobody could decide it (a group, a service, a disabled or unknown principal), or the access
    would be its own holder's to keep."""
    if to == item.principal_key or to in members or to in {m["id"] for m in item.frozen.get("members", [])}:
        raise Unprocessable(f"{to} cannot review their own access", field="to", code="self_review")
    person = session.get(Principal, to)
    if person is None:
        raise Unprocessable(f"{to} is not in the directory", field="to", code="unknown_reference")
    if person.kind != "user":
        raise Unprocessable(f"{to} is a {person.kind}; only a user can review", field="to", code="not_a_user")
    if person.status != "active":
        raise Unprocessable(f"{to} is {person.status}; only an active user can review", field="to",
                            code="inactive_reviewer")
    if not may_review(to):
        raise Unprocessable(f"the policy does not let {to} decide this item", field="to", code="may_not_review")


def close_if_complete(session: Session, ctx: WriteContext, campaign: Campaign) -> bool:
    pending = session.scalar(select(func.count()).select_from(ReviewItem).where(
        ReviewItem.campaign_id == campaign.id, ReviewItem.status == "pending"))
    if campaign.status == "open" and not pending:
        close(session, ctx, campaign, reason="every item decided")
        return True
    return False


CLOSE_CHUNK = 5000  # undecided items a step gives their no-response outcome


def start_close(session: Session, ctx: WriteContext, campaign: Campaign, reason: str) -> Job:
    """Stop decisions at once (the campaign is ``closing``) and record the job that applies the
    no-response rule a chunk a step, then closes it."""
    if campaign.status != "closing":  # a close whose job failed is started again from where it stood
        _require_open(campaign)
        campaign.status = "closing"
        append_event(session, ctx, "campaign.closing", f"campaign:{campaign.id}", None,
                     {"reason": reason, "rule": campaign.settings["on_no_response"]})
    return jobs.start(session, ctx, "close", f"campaign:{campaign.id}",
                      {"campaign": campaign.id, "reason": reason, "by": ctx.actor, "at": as_utc(ctx.now).isoformat()})


def close(session: Session, ctx: WriteContext, campaign: Campaign, reason: str) -> dict[str, Any]:
    """Close in this transaction: for a campaign with nothing (or little) left undecided."""
    _require_open(campaign)
    outcomes = apply_no_response(session, ctx, campaign, limit=None,
                                 why=no_response_reason(campaign, reason, ctx.actor, ctx.now))
    return finish_close(session, ctx, campaign, reason, outcomes)


@jobs.kind("close")
def close_step(run: jobs.JobRun) -> None:
    session, ctx, job = run.session, run.ctx, run.job
    campaign = session.get(Campaign, job.params["campaign"])
    if campaign.status != "closing":  # closed by another way in meanwhile
        run.finish(campaign=campaign.id)
        return
    if job.progress_total is None:
        job.progress_total = session.scalar(select(func.count()).select_from(ReviewItem).where(
            ReviewItem.campaign_id == campaign.id, ReviewItem.status == "pending"))
    outcomes = Counter(job.cursor.get("outcomes", {}))
    params = job.params
    closed_at = datetime.fromisoformat(params["at"]) if "at" in params else job.created_at
    why = no_response_reason(campaign, params["reason"], params.get("by", job.created_by), closed_at)
    applied = apply_no_response(session, ctx, campaign, limit=CLOSE_CHUNK, why=why)
    outcomes.update(applied)
    run.advance("apply", done=sum(outcomes.values()), outcomes=dict(outcomes))
    left = session.scalar(select(ReviewItem.id).where(ReviewItem.campaign_id == campaign.id,
                                                      ReviewItem.status == "pending").limit(1))
    if left is None:
        finish_close(session, ctx, campaign, job.params["reason"], outcomes)
        run.finish(campaign=campaign.id, automated=dict(outcomes))


def no_response_reason(campaign: Campaign, reason: str, by: str, at: datetime) -> str:
    """What happened to an item left undecided, in words: closed early by someone, or the due date passed."""
    due, at = as_utc(campaign.due_at), as_utc(at)
    if at < due:
        return (f"no decision when the campaign was closed early by {by} at {at:%Y-%m-%d %H:%M} UTC "
                f"(due {due:%Y-%m-%d %H:%M} UTC)")
    return f"no decision by the due date {due:%Y-%m-%d %H:%M} UTC ({reason})"


@dataclass(frozen=True)
class NoResponse:
    """What an undecided item gets at the close, by which rule, and why."""

    decision: str  # keep | revoke
    rule: str  # as the item's automated_rule
    why: str


def no_response_outcome(settings: dict[str, Any], recommendation: str, confidence: str | None) -> NoResponse:
    """The one answer to "what does the close give this undecided item?", which the close and its
    preview both ask: a recommendation is followed only when it rests on complete data."""
    rule = settings["on_no_response"]
    if rule != "recommendation":
        return NoResponse(rule, f"on_no_response:{rule}", f"on_no_response={rule}")
    if confidence == "complete" and recommendation in ("keep", "revoke"):
        return NoResponse(recommendation, "on_no_response:recommendation",
                          f"on_no_response=recommendation: {recommendation}, recommended on complete data")
    fallback = settings.get("on_no_response_fallback", "keep")
    return NoResponse(fallback, f"on_no_response_fallback:{fallback}",
                      f"on_no_response_fallback={fallback}: the recommendation ({recommendation}) does not rest on "
                      "complete data")


def _pending(campaign: Campaign) -> tuple:
    return ReviewItem.campaign_id == campaign.id, ReviewItem.status == "pending"


def apply_no_response(session: Session, ctx: WriteContext, campaign: Campaign, limit: int | None,
                      why: str) -> Counter[str]:
    """Give up to ``limit`` undecided items their no-response outcome, as automated decisions, each with
    its own history entry and audit event; ``why`` says what happened (closed early, or the due date).

    The items are locked as they are chosen (in id order, as decisions lock them): one that a decision
    is changing is waited for and, decided by then, left out; and each UPDATE still asks that the
    item be pending, so an automated outcome never replaces a person's decision."""
    pending = select(ReviewItem.id, ReviewItem.recommendation, ReviewItem.recommendation_confidence).where(
        *_pending(campaign)).order_by(ReviewItem.id).with_for_update(of=ReviewItem)
    if limit is not None:
        pending = pending.limit(limit)
    chosen_ids: dict[NoResponse, list[int]] = {}
    for item_id, recommendation, confidence in session.execute(pending):
        chosen_ids.setdefault(no_response_outcome(campaign.settings, recommendation, confidence), []).append(item_id)
    outcomes: Counter[str] = Counter()
    for chosen, ids in chosen_ids.items():
        justification = f"{why}; {chosen.why}"
        for start in range(0, len(ids), 1000):
            chunk = ids[start:start + 1000]
            updated = session.execute(
                update(ReviewItem).where(ReviewItem.id.in_(chunk), ReviewItem.status == "pending")
                .values(status="decided", decision=chosen.decision, decided_by="system:accessreview",
                        decided_at=ctx.now, automated_rule=chosen.rule, version=ReviewItem.version + 1,
                        justification=justification)
                .returning(ReviewItem.id, ReviewItem.campaign_id, ReviewItem.stage),
                execution_options={"synchronize_session": False}).all()
            record_many(session, ctx, [(row, "automated", {"decision": chosen.decision, "rule": chosen.rule,
                                                            "justification": justification})
                                       for row in sorted(updated, key=lambda r: r.id)])
            outcomes[chosen.decision] += len(updated)
    return outcomes


def close_preview(session: Session, campaign: Campaign, cursor: str | None, limit: int) -> dict[str, Any]:
    """What closing now would do, changing nothing: per rule, how many undecided items it would keep
    and revoke, and a page of those items with their outcome and why (from :func:`no_response_outcome`,
    as the close's own)."""
    if campaign.status != "closing":
        _require_open(campaign)
    rules: dict[str, dict[str, Any]] = {}
    for recommendation, confidence, count in session.execute(
            select(ReviewItem.recommendation, ReviewItem.recommendation_confidence, func.count())
            .where(*_pending(campaign)).group_by(ReviewItem.recommendation, ReviewItem.recommendation_confidence)):
        outcome = no_response_outcome(campaign.settings, recommendation, confidence)
        counted = rules.setdefault(outcome.rule, {"rule": outcome.rule, "keep": 0, "revoke": 0})
        counted[outcome.decision] += count
    decided = dict(session.execute(select(ReviewItem.decision, func.count()).where(
        ReviewItem.campaign_id == campaign.id, ReviewItem.status == "decided").group_by(ReviewItem.decision)).all())

    def listed(item: ReviewItem) -> dict[str, Any]:
        outcome = no_response_outcome(campaign.settings, item.recommendation, item.recommendation_confidence)
        return {"id": item.id, "principal": item.principal_key, "role": item.role, "resource": item.resource_key,
                "reviewer": item.reviewer, "recommendation": item.recommendation,
                "recommendation_reason": item.recommendation_reason,
                "recommendation_confidence": item.recommendation_confidence or "incomplete",
                "decision": outcome.decision, "rule": outcome.rule, "why": outcome.why}

    page = paginate(session, select(ReviewItem).where(*_pending(campaign)), ReviewItem.id, cursor, limit)
    ordered = sorted(rules.values(), key=lambda r: r["rule"])
    return {"campaign": campaign.id, "dry_run": True, "status": campaign.status,
            "on_no_response": campaign.settings["on_no_response"],
            "on_no_response_fallback": campaign.settings.get("on_no_response_fallback", "keep"),
            "pending": sum(r["keep"] + r["revoke"] for r in ordered),
            "keep": sum(r["keep"] for r in ordered), "revoke": sum(r["revoke"] for r in ordered),
            "rules": ordered, "already_decided": {"keep": decided.get("keep", 0), "revoke": decided.get("revoke", 0)},
            **page.map(listed).to_dict()}


def finish_close(session: Session, ctx: WriteContext, campaign: Campaign, reason: str,
                 outcomes: Counter[str]) -> dict[str, Any]:
    rule = campaign.settings["on_no_response"]
    campaign.status, campaign.closed_at = "closed", ctx.now
    session.flush()
    append_event(session, ctx, "campaign.closed", f"campaign:{campaign.id}", None,
                 {"reason": reason, "automated": dict(outcomes), "rule": rule})
    return campaign_state(campaign, item_counts(session, campaign.id))


def sign_off(session: Session, ctx: WriteContext, campaign: Campaign, statement: str) -> dict[str, Any]:
    if campaign.status in ("launching", "open", "closing"):
        raise Conflict(f"the campaign is still {campaign.status}: close it (or let it reach its due date) and let the "
                       "close finish before signing off", code="campaign_open", field="campaign")
    if campaign.status != "closed":
        raise Conflict(f"campaign {campaign.id} is already signed off", code="already_signed_off", field="campaign")
    _check_independence(session, ctx, campaign)
    campaign.status, campaign.signed_off_by, campaign.signed_off_at = "signed_off", ctx.actor, ctx.now
    campaign.sign_off_statement = statement
    session.execute(update(ReviewItem).where(ReviewItem.campaign_id == campaign.id, ReviewItem.decision == "revoke")
                    .values(remediation_state="pending"))
    session.flush()
    append_event(session, ctx, "campaign.signed_off", f"campaign:{campaign.id}", None,
                 {"statement": statement, "by": ctx.actor})
    return campaign_state(campaign, item_counts(session, campaign.id))


def _check_independence(session: Session, ctx: WriteContext, campaign: Campaign) -> None:
    """With the definition's ``sign_off.refuse_signer_who_decided``, someone who decided items of the
    campaign by hand (as its reviewer, or overriding one) cannot also sign it off."""
    if not ((campaign.settings or {}).get("sign_off") or {}).get("refuse_signer_who_decided"):
        return
    decided, _ = decided_by_hand(session, campaign.id, ctx.actor)
    if decided:
        raise Forbidden(f"{ctx.actor} decided {decided} item{'s' if decided != 1 else ''} of this campaign, and its "
                        "definition asks that the sign-off come from someone who decided none",
                        code="signer_decided", field="campaign")


def due_campaigns(session: Session, now: datetime) -> Iterable[Campaign]:
    return session.scalars(select(Campaign).where(Campaign.status == "open", Campaign.due_at <= now)
                           .order_by(Campaign.id))
