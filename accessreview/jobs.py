"""Durable jobs: long work kept in the ``jobs`` table and run in steps, each step one transaction.

A kind of job is a function that does one bounded step (a chunk of items, one report, one phase)
and moves the job's ``cursor``, ``phase`` and progress in the same transaction as the work, or
marks it done. Whoever runs a step holds a lease on the job; a runner that dies (kill -9, a lost
host) loses it when it runs out, and the next runner carries on from the last committed step.

A step may keep what it computed for the next steps in ``run.memory`` (a launch's population, read
once): memory belongs to one process and one step sequence, so a step must rebuild it, or start
over, when it is missing.

:func:`start` records a job (409 naming the running one when the same kind is already at work on
the same subject); the request, page or command that started it may run its first steps at once
(:func:`run_for`), within about a second, and answers 200 when that finished it, 202 otherwise.
The worker (``accessreview worker``) runs the rest.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from flask import Flask
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from .audit import WriteContext, append_event, lock_state
from .clock import as_utc
from .errors import ApiError, Conflict
from .models import Job
from .pagination import Page, paginate

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)  # the default of ACCESSREVIEW_JOB_LEASE_SECONDS
MAX_TRANSIENT_RETRIES = 5  # database hiccups (a lost connection, a deadlock victim) before failing


class JobConflict(Conflict):
    code = "job_running"


@dataclass
class JobRun:
    """What one step of a job sees: its session (the step's transaction), context, row and app."""

    session: Session
    ctx: WriteContext
    job: Job
    app: Flask
    memory: dict[str, Any]

    @property
    def engine(self):
        return self.app.extensions["authz"]

    @property
    def config(self):
        return self.app.config

    def advance(self, phase: str, done: int | None = None, total: int | None = None, **cursor: Any) -> None:
        """Move to ``phase`` with ``cursor``; progress as given (kept otherwise)."""
        self.job.phase = phase
        self.job.cursor = {**self.job.cursor, **cursor}
        if done is not None:
            self.job.progress_done = done
        if total is not None:
            self.job.progress_total = total

    def finish(self, **result: Any) -> None:
        self.job.state = "done"
        self.job.phase = "done"
        self.job.result = {**self.job.result, **result}
        if self.job.progress_total is not None:
            self.job.progress_done = self.job.progress_total


# Whoever may start a kind of job may follow it: the portal its imports; who follows campaigns (security
# leads, and auditors, who look) the campaigns' work. The API and the job page ask the policy for it.
FOLLOWED_WITH = {"import": "sync_directory"}
CAMPAIGN_WORK = "view_campaigns"


def follow_permission(kind: str) -> str:
    """The service permission that lets a caller see jobs of ``kind``."""
    return FOLLOWED_WITH.get(kind, CAMPAIGN_WORK)


Step = Callable[[JobRun], None]
Cleanup = Callable[[Session, Job], None]
KINDS: dict[str, Step] = {}
CLEANUPS: dict[str, Cleanup] = {}


def kind(name: str, cleanup: Cleanup | None = None) -> Callable[[Step], Step]:
    """Register a kind's step; ``cleanup`` removes what a failed job of the kind leaves behind (it runs
    in a transaction of its own once the failure is recorded)."""
    def register(step: Step) -> Step:
        KINDS[name] = step
        if cleanup is not None:
            CLEANUPS[name] = cleanup
        return step

    return register


# -- starting and reading ---------------------------------------------------------------------------

def start(session: Session, ctx: WriteContext, kind_: str, subject: str | None, params: dict[str, Any] | None = None,
          *, phase: str = "start", exclusive: bool = True) -> Job:
    """Record a new job in the caller's transaction (so it exists exactly when the change that needs
    it is committed). With ``exclusive``, one job of a kind per subject at a time: 409 names it."""
    if kind_ not in KINDS:
        raise ValueError(f"no job kind {kind_!r}")
    active_key = f"{kind_}:{subject}" if exclusive and subject else None
    if active_key:
        running = session.scalar(select(Job).where(Job.active_key == active_key))
        if running is not None:
            raise _conflict(running)
    job = Job(kind=kind_, subject=subject, active_key=active_key, state="queued", phase=phase, params=params or {},
              cursor={"step": 0}, progress_done=0, result={}, attempts=0, created_by=ctx.actor, created_at=ctx.now,
              updated_at=ctx.now)
    try:
        with session.begin_nested():
            session.add(job)
            session.flush()
    except IntegrityError:  # started by someone else since we looked
        raise _conflict(session.scalar(select(Job).where(Job.active_key == active_key))) from None
    append_event(session, ctx, "job.started", f"job:{job.id}", None,
                 {"kind": kind_, "subject": subject, "params": params or {}})
    return job


def _conflict(running: Job | None) -> JobConflict:
    if running is None:
        return JobConflict("the same job is already running", field=None)
    return JobConflict(f"job {running.id} ({running.kind} of {running.subject}) is already {running.state}",
                       field=None, job=job_state(running))


def job_state(job: Job) -> dict[str, Any]:
    return {
        "id": job.id, "kind": job.kind, "subject": job.subject, "state": job.state, "phase": job.phase,
        "progress": {"done": job.progress_done, "total": job.progress_total}, "params": job.params,
        "result": job.result, "error": job.error, "attempts": job.attempts, "created_by": job.created_by,
        "created_at": as_utc(job.created_at).isoformat(), "updated_at": as_utc(job.updated_at).isoformat(),
        "started_at": job.started_at and as_utc(job.started_at).isoformat(),
        "finished_at": job.finished_at and as_utc(job.finished_at).isoformat(),
        "links": _links(job),
    }


def _links(job: Job) -> dict[str, str]:
    links = {"self": f"/v1/jobs/{job.id}"}
    if job.result.get("campaign"):
        links["campaign"] = f"/v1/campaigns/{job.result['campaign']}"
    for number, report in enumerate(job.result.get("reports", []), 1):
        links[f"report_{number}"] = f"/v1/reports/{report}"
    return links


def list_jobs(session: Session, *, state: str | None, kinds: list[str] | None, subject: str | None,
              cursor: str | None, limit: int) -> Page:
    query = select(Job)
    for column, value in ((Job.state, state), (Job.subject, subject)):
        if value is not None:
            query = query.where(column == value)
    if kinds is not None:
        query = query.where(Job.kind.in_(kinds))
    return paginate(session, query, Job.id, cursor, limit).map(job_state)


def job_error(job: Job) -> ApiError:
    """The error a failed job ended with, as the request's own (its status and code kept)."""
    details = dict(job.result.get("error") or {})
    code, status = details.pop("code", "job_failed"), details.pop("status", 500)
    return ApiError(job.error or "the job failed", code=code, status=status, field=details.pop("field", None),
                    job=job_state(job), **details)


def active_job(session: Session, kind_: str, subject: str) -> Job | None:
    return session.scalar(select(Job).where(Job.active_key == f"{kind_}:{subject}"))


# -- running ------------------------------------------------------------------------------------------

@dataclass
class Runner:
    """Runs steps of jobs in this process, under its own name; keeps each job's memory between steps."""

    app: Flask
    name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")
    memory: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def sessions(self):
        return self.app.extensions["db"].sessionmaker

    def now(self) -> datetime:
        return self.app.config["CLOCK"].now()

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.app.config.get("JOB_LEASE_SECONDS") or LEASE.total_seconds())

    def next_job(self) -> int | None:
        """The oldest job that is queued, or running under a lease that ran out."""
        session = self.sessions()
        try:
            return session.scalar(select(Job.id).where(
                Job.state.in_(("queued", "running")),
                or_(Job.lease_until.is_(None), Job.lease_until < self.now(), Job.lease_owner == self.name))
                .order_by(Job.id).limit(1))
        finally:
            session.close()

    def claim(self, job_id: int) -> bool:
        session = self.sessions()
        try:
            now = self.now()
            taken = session.execute(update(Job).where(
                Job.id == job_id, Job.state.in_(("queued", "running")),
                or_(Job.lease_until.is_(None), Job.lease_until < now, Job.lease_owner == self.name))
                .values(state="running", lease_owner=self.name, lease_until=now + self.lease)).rowcount
            session.commit()
            return bool(taken)
        finally:
            session.close()

    def step(self, job_id: int) -> str | None:
        """Run one step of the job if this runner can take it; returns the job's state after it."""
        if not self.claim(job_id):
            return None
        session = self.sessions()
        try:
            # The step's first statement writes: it takes the job's row lock (PostgreSQL), or SQLite's one
            # write lock at once, since a SQLite transaction that has read cannot always start writing.
            # It also renews the lease from now; on PostgreSQL the row lock it takes keeps another runner
            # out of this step even past the lease, and that runner carries on only from what committed.
            session.execute(update(Job).where(Job.id == job_id).values(attempts=Job.attempts + 1,
                                                                      lease_until=self.now() + self.lease))
            job = session.get(Job, job_id, populate_existing=True)
            if job is None or job.lease_owner != self.name or job.state != "running":
                session.rollback()
                return None
            ctx = WriteContext(job.created_by, self.now(), request_id=f"job-{job.id}")
            memory = self.memory.get(job.id)
            if memory is None or memory.get("_step") != job.cursor.get("step"):
                memory = {}  # another runner moved the job on (or this process is new): start afresh
            job.started_at = job.started_at or ctx.now
            KINDS[job.kind](JobRun(session, ctx, job, self.app, memory))
            job.cursor = {**job.cursor, "step": job.cursor.get("step", 0) + 1, "transient_failures": 0}
            job.updated_at = ctx.now
            if job.state == "done":
                job.active_key, job.finished_at, job.lease_until = None, ctx.now, None
                append_event(session, ctx, "job.finished", f"job:{job.id}", None,
                             {"kind": job.kind, "subject": job.subject, "result": job.result})
            session.commit()
            state = job.state
        except ApiError as error:
            session.rollback()
            self.memory.pop(job_id, None)
            return self._fail(job_id, error.message, {"code": error.code, "status": error.status,
                                                      "field": error.field, **error.details})
        except OperationalError as error:  # the database went away or chose us as a deadlock victim
            session.rollback()
            self.memory.pop(job_id, None)
            log.warning("job %s: step failed on the database (%s); it will be tried again", job_id, error.orig)
            return self._release(job_id)
        except Exception as error:
            session.rollback()
            self.memory.pop(job_id, None)
            log.exception("job %s failed", job_id)
            return self._fail(job_id, f"{type(error).__name__}: {error}", {})
        finally:
            session.close()
        if state == "done":
            self.memory.pop(job_id, None)
        else:
            memory["_step"] = job.cursor["step"]
            self.memory[job_id] = memory
        if state != "running":
            self._catch_up()
        return state

    def _catch_up(self) -> None:
        """Move this process's snapshot on to what the job wrote. Not after every step: each catch-up
        copies the index's lookups and frees the old ones (at 200,000 grants, ~0.1 s of CPU a step of a
        remediation), and the steps that read the directory catch up themselves (``engine.refresh``,
        ``wait_for``)."""
        self.app.extensions["authz"].refresh_if_loaded()

    def _release(self, job_id: int) -> str:
        """Give the job back after a transient failure, for any runner to try again; fail it after
        MAX_TRANSIENT_RETRIES in a row."""
        session = self.sessions()
        try:
            job = session.get(Job, job_id)
            retries = job.cursor.get("transient_failures", 0) + 1
            if retries > MAX_TRANSIENT_RETRIES:
                session.rollback()
                return self._fail(job_id, f"{retries - 1} database failures in a row; see the log", {})
            job.cursor = {**job.cursor, "transient_failures": retries}
            job.lease_owner, job.lease_until = None, None
            session.commit()
            return "running"
        finally:
            session.close()

    def release(self, job_id: int) -> None:
        """Let any runner take the job at once (this one stops working on it)."""
        session = self.sessions()
        try:
            session.execute(update(Job).where(Job.id == job_id, Job.lease_owner == self.name)
                            .values(lease_owner=None, lease_until=None))
            session.commit()
        finally:
            session.close()
        self.memory.pop(job_id, None)

    def _fail(self, job_id: int, message: str, details: dict[str, Any]) -> str:
        session = self.sessions()
        try:
            lock_state(session)
            job = session.get(Job, job_id, populate_existing=True)
            ctx = WriteContext(job.created_by, self.now(), request_id=f"job-{job.id}")
            job.state, job.error, job.active_key = "failed", message, None
            job.finished_at, job.updated_at, job.lease_owner, job.lease_until = ctx.now, ctx.now, None, None
            job.result = {**job.result, "error": details} if details else job.result
            append_event(session, ctx, "job.failed", f"job:{job.id}", None,
                         {"kind": job.kind, "subject": job.subject, "error": message, **details})
            session.commit()
            cleanup = CLEANUPS.get(job.kind)
            if cleanup is not None:
                cleanup(session, job)
                session.commit()
            return "failed"
        finally:
            session.close()

    def run(self, job_id: int, *, seconds: float | None = None) -> str | None:
        """Run the job's steps until it ends, or ``seconds`` have passed (None: no limit)."""
        deadline = None if seconds is None else time.monotonic() + seconds
        state = None
        while deadline is None or time.monotonic() < deadline:
            state = self.step(job_id)
            if state in (None, "done", "failed"):
                break
        if state == "running":
            self._catch_up()
        return state

    def run_pending(self, *, seconds: float) -> int:
        """Steps of any jobs that are waiting, for up to ``seconds``; returns the steps run."""
        deadline, steps = time.monotonic() + seconds, 0
        while time.monotonic() < deadline:
            job_id = self.next_job()
            if job_id is None or self.step(job_id) is None:
                break
            steps += 1
        if steps:
            self._catch_up()
        return steps


def run_in_background(app: Flask) -> None:
    """Lower this process's CPU priority by BACKGROUND_NICE, once: a process that runs jobs (the worker,
    a CLI command running one to its end) yields the cores to the portal's checks, which must not wait
    behind a launch, an import or a remediation on the same host. The server processes never call it."""
    wanted = app.config["BACKGROUND_NICE"]
    if wanted and not app.extensions.get("background_nice"):
        app.extensions["background_nice"] = True
        try:
            os.nice(wanted)
            if os.getsid(0) == os.getpid() and os.path.exists(AUTOGROUP):
                # A session of its own (started by a supervisor, or setsid) is its own scheduling
                # group on Linux, weighed against the servers' groups as a whole, whatever its
                # processes' nice values: the group's own value is what yields to them. Only a
                # session leader sets it, so a shell that started the servers too is never lowered.
                with open(AUTOGROUP, "w") as group:
                    group.write(str(wanted))
        except OSError as exc:  # not allowed here (a container's policy): run as we are
            log.warning("could not lower this process's priority by %d: %s", wanted, exc)


AUTOGROUP = "/proc/self/autogroup"  # Linux's scheduling group of this session (sched(7), "autogroup")


def runner(app: Flask) -> Runner:
    """This process's runner (one per app: its memory of running jobs is per process)."""
    app = app._get_current_object() if hasattr(app, "_get_current_object") else app  # not a request's proxy
    found = app.extensions.get("job_runner")
    if found is None:
        found = app.extensions["job_runner"] = Runner(app)
    return found


def run_for(app: Flask, job: Job, seconds: float | None = None) -> Job:
    """Run the first steps of a job just started, within the request's budget; the job as it stands."""
    budget = app.config["JOB_INLINE_SECONDS"] if seconds is None else seconds
    if budget > 0:
        state = runner(app).run(job.id, seconds=budget)
        if state == "running":  # the worker carries on from here, without waiting for a lease to run out
            runner(app).release(job.id)
    session = app.extensions["db"].sessionmaker()
    try:
        return session.get(Job, job.id)
    finally:
        session.close()
