"""The app's authorization engine: the loaded policy, the directory index it runs over, and the clock."""

from __future__ import annotations

import threading
from pathlib import Path

from flask import Flask, current_app
from sqlalchemy.orm import Session

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


def init_app(app: Flask) -> None:
    app.extensions["authz"] = AuthzEngine(app.config["POLICY_DIR"], app.config["CLOCK"])


def get_engine() -> AuthzEngine:
    return current_app.extensions["authz"]
