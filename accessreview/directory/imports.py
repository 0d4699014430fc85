"""Directory imports (``POST /v1/directory/import``, ``accessreview directory import``), as a job.

An import of up to ``IMPORT_BATCH`` rows is checked and applied in one transaction: all or nothing,
one revision, as it always was. A larger one would hold the directory's write lock for minutes, so
its rows are staged (without the lock) and a job applies them a batch a step:

1. ``validate``: every row is checked against the directory as it stands, without the write lock, a
   chunk a step (``import_check``); one invalid row fails the job and nothing is written. A
   replace's removals are worked out here.
2. ``apply``: one batch a step, each its own revision: a replace's removals first (the directory
   never grants more during an import than before it or after it), then principals (a manager or a
   member before whoever names them), resources (parents first), grants. Each batch is planned
   again against the directory as it is then, so a step run twice after a crash changes nothing
   the second time, and a write made meanwhile by someone else is not undone blindly.
3. ``finish``: the source's sync is recorded, with one ``directory.imported`` event for the whole.

Checks see a large import arrive batch by batch; ``at_least_revision`` of the job's last revision
sees all of it. Only one large import of a source runs at a time.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterable

from flask import Flask
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from .. import jobs
from ..audit import WriteContext, append_event, lock_state
from ..db import analyze, bulk_insert
from ..errors import Conflict
from ..models import Grant, Job, StagedImportRow
from ..work import own_unit_of_work
from . import import_check, service
from .planner import Change, Plan, Planner, RowError, grant_identity, grant_state
from .schemas import GrantRow, ImportPayload, PrincipalRow, ResourceRow

IMPORT_BATCH = 1000  # rows a step: under a second of work under the write lock (docs/performance.md)
DIFF_AT_MOST = 10_000  # changes listed in an import's answer; beyond, counts only
ERRORS_AT_MOST = 1000  # invalid rows listed when an import is refused
STAGED_FOR_AT_MOST = timedelta(days=1)  # staged rows older than this belong to no live import
STAGE_AT_ONCE = 10_000  # staged rows written a statement
ANALYZE_EVERY = 25  # batches between two refreshes of the grants' statistics (PostgreSQL)

SECTIONS = ("principals", "resources", "grants")
ROW_MODELS = {"principals": PrincipalRow, "resources": ResourceRow, "grants": GrantRow}


@dataclass(frozen=True)
class ImportOutcome:
    job: dict[str, Any] | None
    done: bool
    result: dict[str, Any]  # the import's answer when done: mode, source, counts, revision, diff


def run_import(app: Flask, ctx: WriteContext, payload: ImportPayload) -> ImportOutcome:
    """The one way an import is made: a dry run answers the plan; otherwise the import's job is started,
    run within the caller's budget, and its result given when it finished."""
    declarations = app.extensions["authz"].policy.declarations
    sessions = app.extensions["db"].sessionmaker
    if payload.dry_run:
        session = sessions()
        try:
            return ImportOutcome(None, True, preview(session, ctx, declarations, payload))
        finally:
            session.close()
    rows = sum(len(getattr(payload, section)) for section in SECTIONS)
    if rows <= IMPORT_BATCH:
        with own_unit_of_work(sessions, ctx, app.extensions["authz"]) as (session, ctx):
            return ImportOutcome(None, True, apply_whole(session, ctx, declarations, payload))
    staging_key = uuid.uuid4().hex
    _stage(sessions, ctx, staging_key, payload)
    params = {"source": payload.source, "mode": payload.mode, "rows": rows, "staging": staging_key}
    with own_unit_of_work(sessions, ctx, app.extensions["authz"]) as (session, ctx):
        job = jobs.start(session, ctx, "import", f"source:{payload.source}", params)
    job = jobs.run_for(app, job)
    if job.state == "failed":
        raise jobs.job_error(job)
    return ImportOutcome(jobs.job_state(job), job.state == "done", import_result(job) if job.state == "done" else {})


def apply_whole(session: Session, ctx: WriteContext, declarations, payload: ImportPayload) -> dict[str, Any]:
    """A small import: checked and applied in the caller's transaction, all or nothing, one revision."""
    lock_state(session)
    plan = _plan_all(session, ctx, declarations, payload.principals, payload.resources, payload.grants,
                     source=payload.source, replace=payload.mode == "replace")
    revision = service.apply_plan(session, ctx, plan)
    counts = plan.counts()
    _record(session, ctx, payload.source, payload.mode, counts, revision, revision)
    return {"dry_run": False, "mode": payload.mode, "source": payload.source, "revision": revision,
            "first_revision": revision, "counts": counts, "held": plan.held,
            "diff": plan.diff() if _changes(counts) <= DIFF_AT_MOST else None}


def import_result(job: Job) -> dict[str, Any]:
    result = job.result
    return {"dry_run": False, "mode": job.params["mode"], "source": job.params["source"],
            "revision": result["revision"], "first_revision": result.get("first_revision", result["revision"]),
            "counts": result["counts"], "held": result.get("held", []), "diff": result.get("diff")}


def preview(session: Session, ctx: WriteContext, declarations, payload: ImportPayload) -> dict[str, Any]:
    """A dry run: the plan against the directory as it stands; nothing written, no lock taken."""
    plan = _plan_all(session, ctx, declarations, payload.principals, payload.resources, payload.grants,
                     source=payload.source, replace=payload.mode == "replace")
    return {"dry_run": True, "mode": payload.mode, "source": payload.source, "counts": plan.counts(),
            "diff": plan.diff(), "held": plan.held, "revision": service.current_revision(session)}


def _plan_all(session: Session, ctx: WriteContext, declarations, principals, resources, grants, *, source: str,
              replace: bool = False, positions: dict[str, list[int]] | None = None) -> Plan:
    planner = Planner(session, declarations, ctx.now, ctx.actor)
    plan = planner.plan(list(principals), list(resources), list(grants), source=source, replace=replace)
    if planner.errors:
        raise _refusal(planner.errors, positions)
    return plan


def _refusal(errors: list[RowError], positions: dict[str, list[int]] | None,
             invalid: int | None = None) -> service.InvalidRows:
    """The import's refusal, naming rows by their index in the request (a batch holds some of them)."""
    if positions:
        errors = [RowError(e.section, positions[e.section][e.index], e.field, e.code, e.message) for e in errors]
    invalid = len(errors) if invalid is None else invalid
    refusal = service.InvalidRows(errors[:ERRORS_AT_MOST])
    # A batch found wrong after validation (a write made meanwhile, such as a group cycle) stops the
    # job where it stands: what earlier batches applied stays, and says so.
    refusal.message = (f"{invalid} invalid row(s) in a batch; earlier batches were applied, this one and "
                       "the rest were not" if positions else f"{invalid} invalid row(s); nothing was written")
    refusal.details["invalid_rows"] = invalid
    return refusal


# -- staging ------------------------------------------------------------------------------------------

def _stage(sessions, ctx: WriteContext, staging_key: str, payload: ImportPayload) -> None:
    """Write the rows, in the order the job applies them, in a transaction of their own: no lock is
    taken, and rows staged for an import that never started are swept by a later one."""
    session = sessions()
    try:
        session.execute(delete(StagedImportRow).where(StagedImportRow.staged_at < ctx.now - STAGED_FOR_AT_MOST))
        rows: list[dict[str, Any]] = []
        seq, batch = 0, 0
        for section, ordered in (("principals", _principal_order(payload.principals)),
                                 ("resources", _resource_order(payload.resources)),
                                 ("grants", [[i] for i in range(len(payload.grants))])):
            source_rows = getattr(payload, section)
            size = 0
            for group in ordered:  # a group of rows that name each other goes in one batch
                if size and size + len(group) > IMPORT_BATCH:
                    batch, size = batch + 1, 0
                for position in group:
                    rows.append({"staging_key": staging_key, "seq": seq, "batch": batch, "section": section,
                                 "position": position, "staged_at": ctx.now,
                                 "body": source_rows[position].model_dump(mode="json", exclude_unset=True)})
                    seq += 1
                size += len(group)
                if len(rows) >= STAGE_AT_ONCE:  # the rows dumped, a slice at a time, not all twice over
                    bulk_insert(session, StagedImportRow, rows)
                    rows = []
            if size:
                batch += 1
        bulk_insert(session, StagedImportRow, rows)
        session.commit()
    finally:
        session.close()


def _principal_order(rows: list[PrincipalRow]) -> list[list[int]]:
    """Row indexes, each after the rows it names (its manager, its members) when they are imported too;
    rows that name each other round a circle (managers of each other) come last, together."""
    index = {row.id: i for i, row in enumerate(rows)}
    needs = {i: {index[k] for k in [row.manager, *(row.members or [])] if k in index and index[k] != i}
             for i, row in enumerate(rows)}
    return _layers(needs)


def _resource_order(rows: list[ResourceRow]) -> list[list[int]]:
    index = {row.id: i for i, row in enumerate(rows)}
    needs = {i: ({index[row.parent]} if row.parent in index and index[row.parent] != i else set())
             for i, row in enumerate(rows)}
    return _layers(needs)


def _layers(needs: dict[int, set[int]]) -> list[list[int]]:
    """Each index as its own group once everything it needs came before; what is left (a cycle, which
    validation refuses unless it is a circle of managers) as one group at the end."""
    waiting_on = {i: len(n) for i, n in needs.items()}
    needed_by: dict[int, list[int]] = {}
    for i, wanted in needs.items():
        for j in wanted:
            needed_by.setdefault(j, []).append(i)
    ready = [i for i, count in waiting_on.items() if count == 0]
    order: list[list[int]] = []
    while ready:
        i = ready.pop()
        order.append([i])
        for k in needed_by.get(i, ()):
            waiting_on[k] -= 1
            if waiting_on[k] == 0:
                ready.append(k)
    placed = {group[0] for group in order}
    rest = sorted(set(needs) - placed)
    return order + ([rest] if rest else [])


def _staged(session: Session, staging_key: str, where=()) -> dict[str, list[Any]]:
    """The staged rows by section, in the order they apply, as plain rows (position, batch, body)."""
    found: dict[str, list[Any]] = {section: [] for section in (*SECTIONS, "removals")}
    for row in session.execute(select(StagedImportRow.section, StagedImportRow.position, StagedImportRow.batch,
                                      StagedImportRow.body)
                               .where(StagedImportRow.staging_key == staging_key, *where)
                               .order_by(StagedImportRow.seq)):
        found[row.section].append(row)
    return found


def _parsed(rows: Iterable[Any], section: str) -> list[Any]:
    model = ROW_MODELS[section]
    return [model.model_validate(row.body) for row in rows]


# -- the job ------------------------------------------------------------------------------------------

@jobs.kind("import", cleanup=lambda session, job: _discard_staged(session, job))
def import_step(run: jobs.JobRun) -> None:
    job = run.job
    if job.phase in ("start", "validate"):
        _validate(run)
    elif job.phase == "apply":
        _apply_batch(run)
    elif job.phase == "finish":
        _finish(run)
    elif job.phase == "discard":
        _discard_staged(run.session, job)
        run.finish()


def _declarations(run: jobs.JobRun):
    return run.engine.policy.declarations


def _validate(run: jobs.JobRun) -> None:
    """One chunk of the validation a step; the memory of the steps before stays in this process."""
    session, ctx, job = run.session, run.ctx, run.job
    check: import_check.Check | None = run.memory.get("check")
    if check is None:  # a new validation, or one whose memory went with a dead process: from the start
        staged = session.scalar(select(func.count()).select_from(StagedImportRow)
                                .where(StagedImportRow.staging_key == job.params["staging"]))
        if staged != job.params["rows"]:
            raise Conflict("the import's staged rows are gone (staged over a day ago); send the import again",
                           code="import_rows_missing", field=None)
        analyze(session, Grant)  # the check's lookups are the same as a batch's
        check = run.memory["check"] = import_check.begin(
            session, job.params["staging"], job.params["source"], job.params["mode"] == "replace",
            diff_at_most=DIFF_AT_MOST, errors_at_most=ERRORS_AT_MOST)
    planner = Planner(session, _declarations(run), ctx.now, ctx.actor)
    import_check.check_chunk(session, planner, check)
    if not check.done:
        run.advance("validate", done=check.checked, total=job.params["rows"])
        return
    if check.replace:
        import_check.find_removals(session, check)
    if check.invalid:
        raise _refusal(check.sorted_errors(), None, check.invalid)
    run.memory.pop("check")
    _stage_removals(session, ctx, job, check.removals)
    first_batch = -((len(check.removals) + IMPORT_BATCH - 1) // IMPORT_BATCH)
    last_batch = session.scalar(select(func.max(StagedImportRow.batch))
                                .where(StagedImportRow.staging_key == job.params["staging"]))
    job.result = {**job.result, "planned": check.counts}
    diff = check.result_diff()
    if diff is not None:
        job.result["diff"] = diff
    run.advance("apply", done=0, total=job.params["rows"] + len(check.removals), batch=first_batch,
                first_batch=first_batch,
                last_batch=-1 if last_batch is None else last_batch,
                counts={section: {"added": 0, "changed": 0, "removed": 0} for section in SECTIONS})


def _stage_removals(session: Session, ctx: WriteContext, job: Job, removals) -> None:
    """A replace's removals, staged to apply first: batches numbered below zero, in grant id order."""
    first_batch = -((len(removals) + IMPORT_BATCH - 1) // IMPORT_BATCH)
    for start in range(0, len(removals), STAGE_AT_ONCE):
        bulk_insert(session, StagedImportRow, [
            {"staging_key": job.params["staging"], "seq": -1 - n, "batch": first_batch + n // IMPORT_BATCH,
             "section": "removals", "position": n, "body": {"id": removals[n]}, "staged_at": ctx.now}
            for n in range(start, min(start + STAGE_AT_ONCE, len(removals)))])


def _apply_batch(run: jobs.JobRun) -> None:
    session, ctx, job = run.session, run.ctx, run.job
    batch = job.cursor["batch"]
    # The staged rows never change: read and parse them before taking the lock, then plan under it.
    staged = _staged(session, job.params["staging"], (StagedImportRow.batch == batch,))
    parsed = {section: _parsed(staged[section], section) for section in SECTIONS}
    if (batch - job.cursor.get("first_batch", 0)) % ANALYZE_EVERY == 0:
        # A batch's lookups stay index probes only while the planner knows the grants table is large.
        analyze(session, Grant)
    lock_state(session)
    if staged["removals"]:
        plan = _removals(session, job.params["source"], [row.body["id"] for row in staged["removals"]])
    else:
        positions = {section: [row.position for row in staged[section]] for section in SECTIONS}
        plan = _plan_all(session, ctx, _declarations(run), *(parsed[s] for s in SECTIONS),
                         source=job.params["source"], positions=positions)
    revision = None if plan.empty else service.apply_plan(session, ctx, plan)
    if plan.empty and plan.held:
        service.apply_plan(session, ctx, plan)  # no revision; the held rows' events only
    before, now = job.cursor["counts"], plan.counts()
    counts = {section: {kind: before[section][kind] + now[section][kind] for kind in before[section]}
              for section in SECTIONS}
    seen = sum(len(rows) for rows in staged.values())
    cursor = {"counts": counts, "batch": batch + 1, "held": (job.cursor.get("held", []) + plan.held)[:DIFF_AT_MOST],
              "held_count": job.cursor.get("held_count", 0) + len(plan.held)}
    if revision is not None:
        cursor["last_revision"] = revision
        cursor.setdefault("first_revision", job.cursor.get("first_revision", revision))
    run.advance("apply" if batch < job.cursor["last_batch"] else "finish", done=job.progress_done + seen, **cursor)


def _removals(session: Session, source: str, grant_ids: list[int]) -> Plan:
    """A replace's removals, as the directory stands now: a grant gone meanwhile, or claimed by another
    source, is left alone."""
    plan = Plan()
    for grant in session.scalars(select(Grant).where(Grant.id.in_(grant_ids), Grant.source == source)
                                 .order_by(Grant.id)):
        identity = grant_identity(grant.principal_key, grant.role, grant.resource_key)
        plan.grants.append(Change("removed", identity, grant_state(grant), None))
        plan.grant_rows[identity] = grant
    return plan


def _finish(run: jobs.JobRun) -> None:
    session, job = run.session, run.job
    lock_state(session)
    counts = job.cursor["counts"]
    revision = job.cursor.get("last_revision") or service.current_revision(session)
    first = job.cursor.get("first_revision", revision)
    _record(session, run.ctx, job.params["source"], job.params["mode"], counts, revision, first, job.id)
    job.result = {**job.result, "counts": counts, "revision": revision, "first_revision": first,
                  "held": job.cursor.get("held", []), "held_count": job.cursor.get("held_count", 0),
                  "diff": job.result.get("diff") if counts == job.result.get("planned") else None}
    run.advance("discard")  # the staged rows go in a step of their own, without the lock


def _record(session: Session, ctx: WriteContext, source: str, mode: str, counts: dict[str, Any], revision: int,
            first_revision: int, job_id: int | None = None) -> None:
    service.record_sync(session, source, mode, ctx.now, revision)
    summary = {"mode": mode, "counts": counts, "revision": revision}
    if job_id is not None:
        summary.update(first_revision=first_revision, job=job_id)
    append_event(session, ctx, "directory.imported", f"source:{source}", None, summary)


def _discard_staged(session: Session, job: Job) -> None:
    staging_key = job.params.get("staging")
    if staging_key:
        session.execute(delete(StagedImportRow).where(StagedImportRow.staging_key == staging_key))


def _changes(counts: dict[str, dict[str, int]]) -> int:
    return sum(n for kinds in counts.values() for n in kinds.values())


def staged_rows(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(StagedImportRow)) or 0
