"""The app's authorization engine: the loaded policy, the directory index it runs over, and the clock."""

from __future__ import annotations

import threading
from pathlib import Path

import logging

from flask import Flask, current_app
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session

from ..audit import WriteContext, append_event, lock_state
from ..directory.service import current_revision
from .index import DirectoryIndex
from .policy import Policy

SERVICE_RESOURCE = "system:accessreview"


class AuthzEngine:
    def __init__(self, policy_dir: Path, clock) -> None:
        self.policy_dir = policy_dir
        self.clock = clock
        self.policy = Policy.load(policy_dir)  # a policy that does not load stops start-up
        self._index: DirectoryIndex | None = None
        self._lock = threading.Lock()

    def index(self, session: Session) -> DirectoryIndex:
        """The index at the database's current revision, rebuilt when the revision has moved."""
        revision = current_revision(session)
        index = self._index
        if index is None or index.revision != revision:
            with self._lock:
                if self._index is None or self._index.revision != revision:
                    self._index = DirectoryIndex.load(session, revision)
                index = self._index
        return index

    def is_allowed(self, session: Session, actor: str, action: str, resource: str) -> bool:
        return self.policy.is_allowed(self.index(session), self.clock.now(), actor, action, resource)


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
    engine = AuthzEngine(app.config["POLICY_DIR"], app.config["CLOCK"])
    app.extensions["authz"] = engine
    session = app.extensions["db"].session()
    try:
        record_policy_load(session, WriteContext("system:accessreview", engine.clock.now()), engine.policy)
        session.commit()
    except DatabaseError:  # not migrated yet: `db upgrade` records it; /readyz says what is missing
        session.rollback()
        logging.getLogger(__name__).warning("policy load not recorded: the database is not migrated")
    finally:
        session.close()


def get_engine() -> AuthzEngine:
    return current_app.extensions["authz"]
