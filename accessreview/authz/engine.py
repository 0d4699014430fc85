"""The app's authorization engine: the loaded policy, its compiled table, and the directory index.

Checks read one immutable :class:`Snapshot` from memory. A background thread per process (and
every local write, at once) moves the snapshot forward by reading the directory's change notes,
so a write through any process is seen by every process within the refresh interval; a check that
asks for ``at_least_revision`` catches up first or fails as stale. A new policy version recorded in
the database (``accessreview policy reload``) is loaded from disk by every process the same way.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from flask import Flask, current_app
from sqlalchemy import select
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session, sessionmaker

from ..audit import WriteContext, append_event, lock_state
from ..models import DirectoryChange, DirectoryState
from .compiled import CompiledModel, compile_model
from .decisions import DecisionLog
from .deadline import limit_oso_queries
from .evaluator import Evaluator
from .index import DirectoryIndex, ResourceRecord
from .policy import Policy, PolicyLoadError

SERVICE_RESOURCE = "system:accessreview"
# How often a token this process does not know may send it to the database: at first every 5 ms;
# each look that finds nothing new doubles the wait, up to 0.1 s, and a second without one starts over.
RECHECK_FIRST, RECHECK_LONGEST, RECHECK_FORGET = 0.005, 0.1, 1.0
REBUILD_FRACTION = 0.05  # past this share of grants and resources changed, a snapshot is loaded whole

log = logging.getLogger(__name__)


class StaleError(Exception):
    """This process could not reach the asked-for revision in time."""


@dataclass(frozen=True)
class Snapshot:
    policy: Policy
    model: CompiledModel
    index: DirectoryIndex
    evaluator: Evaluator
    # (Authorization header, permission) -> (caller, good until, token hash): see guard.permitted_caller.
    callers: dict[tuple[str, str], tuple[str, datetime | None, str]] = field(
        default_factory=dict, compare=False, repr=False)

    @property
    def revision(self) -> int:
        return self.index.revision


class AuthzEngine:
    def __init__(self, policy_dir: Path, clock, sessions: sessionmaker, *, force_oso: bool = False,
                 refresh_interval: float = 0.5, stale_wait: float = 2.0) -> None:
        self.policy_dir = policy_dir
        self.clock = clock
        self.sessions = sessions
        self.force_oso = force_oso
        self.refresh_interval = refresh_interval
        self.stale_wait = stale_wait
        self.policy = Policy.load(policy_dir)  # a policy that does not load stops start-up
        self.model = compile_model(self.policy)
        self.last_reload_error: str | None = None
        self._failed_version: str | None = None  # a recorded version that did not load here
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()
        self._refreshing = False  # is this process's refresher running? (reset in forked children)
        self._inherited = False  # answering from the parent process's snapshot while the refresher catches up
        self._read_at = float("-inf")  # when this process last asked the database for its revision
        self._recheck_at, self._recheck_wait = float("-inf"), RECHECK_FIRST  # see recheck()
        os.register_at_fork(after_in_child=self._forked)

    # -- the snapshot -------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The current snapshot; loads the first one, and starts this process's refresher."""
        if not self._refreshing and self.refresh_interval > 0:
            self._start_refresher()
        snapshot = self._snapshot
        if snapshot is None:
            return self.refresh()
        if self._inherited and not self._refreshing:
            snapshot = self.refresh()  # only the changes since the parent's revision
            self._inherited = False
        # With a refresher, a snapshot from the parent process answers while the refresher catches up
        # (a check that names at_least_revision waits for it through wait_for).
        return snapshot

    @property
    def catching_up(self) -> bool:
        """Is this process still answering from the snapshot its parent loaded, its refresher at work?"""
        return self._inherited

    def refresh(self, timeout: float = -1) -> Snapshot:
        """Bring the snapshot up to the database's revision and policy version. With ``timeout``,
        give up after that many seconds waiting for a refresh already under way (and return the
        snapshot as it is)."""
        if not self._lock.acquire(timeout=timeout):
            return self._snapshot
        try:
            asked_at = time.monotonic()
            session = self.sessions()
            try:
                snapshot = self._advance(session, self._snapshot)
            finally:
                session.close()
            self._read_at = asked_at
            if snapshot is not self._snapshot:
                self._snapshot = snapshot
                # The index is hundreds of thousands of long-lived objects; leave them out of the
                # cyclic collector's full passes, which would otherwise stall checks for 100 ms+.
                gc.freeze()
            return snapshot
        finally:
            self._lock.release()

    def recheck(self) -> Snapshot:
        """The snapshot after asking the database for anything newer: for a caller naming something
        (a token) this process has not seen, which may have been made a moment ago in another one.
        Not more often than every RECHECK_FIRST seconds, backing off to RECHECK_LONGEST while looks
        find nothing new: a flood of made-up tokens costs a process ten small reads a second."""
        now = time.monotonic()
        # catching_up is read first: once it is False, self._snapshot is already the caught-up one.
        if not self.catching_up:
            if now - self._recheck_at > RECHECK_FORGET:
                self._recheck_wait = RECHECK_FIRST
            if now - self._read_at < self._recheck_wait:
                return self._snapshot
        before = self._snapshot
        snapshot = self.refresh(timeout=self.stale_wait)
        self._recheck_at = now
        self._recheck_wait = RECHECK_FIRST if snapshot is not before else min(2 * self._recheck_wait, RECHECK_LONGEST)
        return snapshot

    def preload(self) -> None:
        """Load the snapshot now, without starting a refresher: for a server's master process, so
        the workers it forks share one loaded index (each catches up from the change notes before
        its first check) instead of each loading the whole directory while checks wait. A
        database that is not migrated yet is left to /readyz to report."""
        try:
            self.refresh()
        except DatabaseError as exc:
            log.warning("directory not preloaded (is the database migrated? `accessreview db upgrade` migrates it; "
                        "/readyz reports what is missing): %s", exc)

    def refresh_if_loaded(self) -> None:
        """After a write in this process: move the snapshot on now, if this process keeps one."""
        if self._snapshot is not None:
            self.refresh()

    def _advance(self, session: Session, current: Snapshot | None) -> Snapshot:
        revision, policy_version = session.execute(
            select(DirectoryState.revision, DirectoryState.policy_version).where(DirectoryState.id == 1)).one()
        policy_changed = policy_version not in (None, self.policy.version) and policy_version != self._failed_version
        if policy_changed:
            self._load_policy_version(policy_version)
        if current is not None and current.revision == revision and current.policy is self.policy:
            return current
        attribute_types = self.model.attribute_types
        if current is None or current.index.attribute_types != attribute_types:
            # A policy whose rules read other types' attributes: those are read whole, once.
            index = DirectoryIndex.load(session, revision, attribute_types)
        elif current.revision == revision:
            index = current.index
        else:
            index = self._updated_index(session, current.index, revision)
        return Snapshot(self.policy, self.model, index,
                        Evaluator(self.policy, self.model, index, force_oso=self.force_oso))

    def _updated_index(self, session: Session, index: DirectoryIndex, revision: int) -> DirectoryIndex:
        rows = session.execute(select(DirectoryChange.revision, DirectoryChange.kind, DirectoryChange.key)
                               .where(DirectoryChange.revision > index.revision,
                                      DirectoryChange.revision <= revision)).all()
        seen_revisions = {row[0] for row in rows}
        if seen_revisions != set(range(index.revision + 1, revision + 1)):
            # Change notes were pruned while this process was away: read everything again.
            return DirectoryIndex.load(session, revision, index.attribute_types)
        if len(rows) > REBUILD_FRACTION * (len(index.grants_by_id) + len(index.resources)):
            # A large import: reading the tables whole and building once beats reading each changed
            # row by key and moving its entries.
            return DirectoryIndex.load(session, revision, index.attribute_types)
        changed: dict[str, set] = {}
        for _, kind, key in rows:
            changed.setdefault(kind, set()).add(key)
        return index.updated(session, revision, changed)

    def _load_policy_version(self, wanted: str) -> None:
        try:
            policy = Policy.load(self.policy_dir)
        except PolicyLoadError as exc:
            self._failed_version, self.last_reload_error = wanted, str(exc)
            log.error("policy %s recorded in the database does not load here; keeping %s: %s",
                      wanted, self.policy.version, exc)
            return
        if policy.version != wanted:
            self._failed_version = wanted
            self.last_reload_error = f"files on disk are version {policy.version}, the database names {wanted}"
            log.error("policy reload: %s; keeping %s", self.last_reload_error, self.policy.version)
            return
        self.policy, self.model = policy, compile_model(policy)
        self.last_reload_error = None
        log.info("policy %s loaded", policy.version)

    def wait_for(self, revision: int) -> Snapshot:
        """A snapshot at ``revision`` or later. Behind it, this process catches up from the database
        at once, after waiting at most ``stale_wait`` seconds for a refresh already under way. A
        revision the database itself has not reached is stale at once: revisions are numbered by
        committed writes, so waiting for one would hold a worker without bringing it."""
        snapshot = self.snapshot()
        if snapshot.revision >= revision:
            return snapshot
        snapshot = self.refresh(timeout=self.stale_wait)
        if snapshot.revision < revision:
            raise StaleError(f"this process is at revision {snapshot.revision}, below {revision}")
        return snapshot

    def _forked(self) -> None:
        self._refreshing = False  # threads do not survive a fork: the child starts its own
        self._inherited = self._snapshot is not None

    def _start_refresher(self) -> None:
        with self._lock:
            if self._refreshing:
                return
            self._refreshing = True
        thread = threading.Thread(target=self._refresh_forever, name="authz-refresher", daemon=True)
        thread.start()

    def _refresh_forever(self) -> None:
        while True:
            if not self._inherited:
                time.sleep(self.refresh_interval)
            try:
                self.refresh()
                self._inherited = False
            except Exception:  # keep serving the last good snapshot; the next round tries again
                log.exception("directory refresh failed")
                time.sleep(self.refresh_interval)

    # -- questions the API asks ---------------------------------------------------------------

    def is_allowed(self, actor: str, action: str, resource: str) -> bool:
        return self.snapshot().evaluator.check(actor, action, resource, self.clock.now()).allowed

    def is_allowed_on_object(self, actor: str, action: str, key: str, attributes: dict) -> bool:
        """A check on one of the service's own objects (a review item), which the directory does not
        hold; oso decides, with the object's attributes."""
        snapshot = self.snapshot()
        record = ResourceRecord(key, key.split(":", 1)[0], SERVICE_RESOURCE)
        return snapshot.policy.is_allowed(snapshot.index, self.clock.now(), actor, action, key,
                                          {key: (record, attributes)})

    # -- policy reload ------------------------------------------------------------------------

    def reload_policy(self, session: Session, ctx: WriteContext) -> Policy:
        """Validate the files on disk and make them the policy of every process (audited)."""
        policy = Policy.load(self.policy_dir)  # raises PolicyLoadError; the old policy stays
        compile_model(policy)
        record_policy_load(session, ctx, policy)
        return policy


def record_policy_load(session: Session, ctx: WriteContext, policy: Policy) -> bool:
    """Audit a policy version the first time any process loads it. True if this call recorded it."""
    state = lock_state(session)
    if state.policy_version == policy.version:
        return False
    append_event(session, ctx, "policy.loaded", f"policy:{policy.version}",
                 {"version": state.policy_version}, {"version": policy.version, "files": [f.name for f in policy.files]},
                 state=state)
    state.policy_version = policy.version
    session.flush()
    return True


def init_app(app: Flask) -> None:
    config = app.config
    limit_oso_queries(config["EVALUATION_TIMEOUT"])
    engine = AuthzEngine(config["POLICY_DIR"], config["CLOCK"], app.extensions["db"].sessionmaker,
                         force_oso=config["EVALUATION"] == "oso", refresh_interval=config["REFRESH_INTERVAL"],
                         stale_wait=config["STALE_WAIT"])
    app.extensions["authz"] = engine
    app.extensions["decisions"] = DecisionLog(
        app.extensions["db"].sessionmaker, config["CLOCK"], capacity=config["DECISION_BUFFER"],
        flush_interval=config["DECISION_FLUSH_INTERVAL"], retention_days=config["DECISION_RETENTION_DAYS"],
        spool_dir=config["DECISION_SPOOL_DIR"], spool_fsync=config["DECISION_SPOOL_FSYNC"])
    session = app.extensions["db"].session()
    try:
        record_policy_load(session, WriteContext("system:accessreview", engine.clock.now()), engine.policy)
        session.commit()
    except DatabaseError:  # not migrated yet: `db upgrade` records it; /readyz says what is missing
        session.rollback()
        # Not a warning: the app is made for `accessreview db upgrade` too, just before it migrates
        # (a newcomer's first start printed this). A server says so as it preloads, and /readyz.
        log.debug("the database is not migrated yet: `accessreview db upgrade` migrates it and records "
                  "this policy version's load; /readyz reports what is missing")
    finally:
        session.close()


def get_engine() -> AuthzEngine:
    return current_app.extensions["authz"]

