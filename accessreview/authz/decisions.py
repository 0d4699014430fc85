"""The decision log: every decision is kept, written in batches away from the request path.

Checks append to a bounded in-memory buffer; a background thread per process writes the buffer
every ``DECISION_FLUSH_INTERVAL`` seconds (and at exit), records when each grant was last used, and
prunes old decisions and change notes. What does not fit in the buffer is counted in
``accessreview_decisions_dropped_total``, never dropped silently.
"""

from __future__ import annotations

import atexit
import json
import itertools
import logging
import os
import secrets
import threading
import time
from collections import deque
from datetime import datetime, timedelta, timezone
from typing import Any

from prometheus_client import Counter, Gauge
from sqlalchemy import delete, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import sessionmaker

from ..models import Decision, DirectoryChange, GrantUsage

log = logging.getLogger(__name__)

DECISIONS = Counter("accessreview_decisions_total", "Authorization decisions taken", ["allowed"])
DROPPED = Counter("accessreview_decisions_dropped_total",
                  "Decisions not kept because the buffer was full or the database refused them")
WRITTEN = Counter("accessreview_decisions_written_total", "Decisions written to the decision log")
BUFFERED = Gauge("accessreview_decisions_buffered", "Decisions waiting to be written", multiprocess_mode="livesum")

CHANGE_NOTES_KEPT = timedelta(days=1)


class DecisionLog:
    def __init__(self, sessions: sessionmaker, clock, *, capacity: int, flush_interval: float,
                 retention_days: int) -> None:
        self.sessions = sessions
        self.clock = clock
        self.capacity = capacity
        self.flush_interval = flush_interval
        self.retention = timedelta(days=retention_days)
        self._buffer: deque[tuple] = deque()
        self._flush_lock = threading.Lock()
        self._started = False
        self._hooks = False
        self._ids = itertools.count()
        self._prefix = ""
        self._last_prune = 0.0

    def new_id(self) -> str:
        if not self._started:
            self._start()
        return f"{self._prefix}{next(self._ids):010x}"

    def record(self, row: tuple) -> None:
        """Keep one decision (memory only); counts it as dropped when the buffer is full.

        ``row`` is (id, decided_at, caller, actor, action, resource, allowed, policy_version,
        revision, latency_us, grant_ids), built by the caller: this is on every check's path.
        """
        if len(self._buffer) >= self.capacity:
            DROPPED.inc()
            return
        self._buffer.append(row)

    def _start(self) -> None:
        """Per process: a fresh id prefix and buffer, and a flusher thread. Runs again in every
        process forked from this one (gunicorn forks its workers after the app is made)."""
        self._started = True
        self._prefix = secrets.token_hex(5)
        self._ids = itertools.count()
        self._buffer = deque()
        if self.flush_interval > 0:
            threading.Thread(target=self._flush_forever, name="decision-log", daemon=True).start()
            if not self._hooks:
                atexit.register(self.flush)
                os.register_at_fork(after_in_child=self._forked)
                self._hooks = True

    def _forked(self) -> None:
        self._started = False  # the next decision starts this process's own flusher

    def _flush_forever(self) -> None:
        while True:
            time.sleep(self.flush_interval)
            try:
                self.flush()
                if time.monotonic() - self._last_prune > 3600:
                    self.prune()
                    self._last_prune = time.monotonic()
            except Exception:
                log.exception("decision log flush failed")

    def flush(self) -> int:
        """Write what is buffered; returns how many decisions were written."""
        with self._flush_lock:
            batch = []
            while self._buffer:
                batch.append(self._buffer.popleft())
            BUFFERED.set(0)
            if not batch:
                return 0
            try:
                self._write(batch)
            except Exception:
                DROPPED.inc(len(batch))
                log.exception("could not write %d decisions; counted as dropped", len(batch))
                return 0
            WRITTEN.inc(len(batch))
            return len(batch)

    def _write(self, batch: list[tuple]) -> None:
        usage: dict[int, list[Any]] = {}
        allowed = 0
        for row in batch:
            if row[6]:
                allowed += 1
                for grant_id in row[10]:
                    seen = usage.setdefault(grant_id, [row[1], 0])
                    seen[0] = max(seen[0], row[1])
                    seen[1] += 1
        session = self.sessions()
        try:
            connection = session.connection()
            _insert_decisions(connection, batch)
            if usage:
                dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
                statement = dialect.insert(GrantUsage)
                statement = statement.on_conflict_do_update(index_elements=["grant_id"], set_={
                    "last_used_at": _greatest(statement.excluded.last_used_at, GrantUsage.last_used_at, dialect),
                    "uses": GrantUsage.uses + statement.excluded.uses})
                session.execute(statement, [{"grant_id": g, "last_used_at": t, "uses": n}
                                            for g, (t, n) in sorted(usage.items())])
            session.commit()
        except Exception:
            session.rollback()
            raise
        finally:
            session.close()
        # Counted here, in bulk, rather than on each check's path.
        DECISIONS.labels("true").inc(allowed)
        DECISIONS.labels("false").inc(len(batch) - allowed)

    def prune(self) -> None:
        now = self.clock.now()
        session = self.sessions()
        try:
            session.execute(delete(Decision).where(Decision.decided_at < now - self.retention))
            session.execute(delete(DirectoryChange).where(DirectoryChange.created_at < now - CHANGE_NOTES_KEPT))
            session.commit()
        finally:
            session.close()

    def buffered(self) -> int:
        BUFFERED.set(len(self._buffer))
        return len(self._buffer)


_COLUMNS = ("id", "decided_at", "caller", "actor", "action", "resource", "allowed", "policy_version", "revision",
            "latency_us", "grant_ids")


def _insert_decisions(connection, batch: list[tuple]) -> None:
    """One executemany straight to the driver: tens of thousands of rows a second, cheaply.

    The values are made as SQLAlchemy's column types would make them (UTC times; JSON text).
    """
    sqlite_dialect = connection.dialect.name == "sqlite"
    placeholder = "?" if sqlite_dialect else "%s"
    rows = []
    moments: dict[datetime, Any] = {}  # the checks of one request share one time: format it once
    for r in batch:
        moment = moments.get(r[1])
        if moment is None:
            utc = r[1].astimezone(timezone.utc)
            moment = moments[r[1]] = utc.replace(tzinfo=None).isoformat(" ", "microseconds") if sqlite_dialect \
                else utc
        rows.append((r[0], moment, r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
                     json.dumps(list(r[10])) if r[10] else None))
    connection.exec_driver_sql(
        f"INSERT INTO decisions ({', '.join(_COLUMNS)}) VALUES ({', '.join([placeholder] * len(_COLUMNS))})", rows)


def _greatest(a, b, dialect):
    return func.greatest(a, b) if dialect is postgresql else func.max(a, b)
