"""The decision log: every decision is kept, written in batches away from the request path.

Checks append to a bounded in-memory buffer; a background thread per process writes the buffer
every ``DECISION_FLUSH_INTERVAL`` seconds, or sooner once it is half full (and at exit), records
when each grant and each token was last used, and prunes old decisions and change notes. What does not fit in the
buffer is counted in ``accessreview_decisions_dropped_total``, never dropped silently.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections import deque
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator, NamedTuple

from prometheus_client import Counter, Gauge
from sqlalchemy import bindparam, delete, or_, select, tuple_, update
from sqlalchemy.orm import Session, sessionmaker

from ..models import Decision, DirectoryChange, ServiceToken

log = logging.getLogger(__name__)

DECISIONS = Counter("accessreview_decisions_total", "Authorization decisions taken", ["allowed"])
DROPPED = Counter("accessreview_decisions_dropped_total",
                  "Decisions not kept because the buffer was full or the database refused them")
WRITTEN = Counter("accessreview_decisions_written_total", "Decisions written to the decision log")
BUFFERED = Gauge("accessreview_decisions_buffered", "Decisions waiting to be written", multiprocess_mode="livesum")

CHANGE_NOTES_KEPT = timedelta(days=1)
# A token's use is noted at most this often per process: its last use is advice for reviews (a
# service's grants on the service itself), where a minute is exact enough, and the portal sends the
# same token with thousands of checks a second.
TOKEN_USE_EVERY = timedelta(minutes=1)


class DecisionLog:
    def __init__(self, sessions: sessionmaker, clock, *, capacity: int, flush_interval: float,
                 retention_days: int) -> None:
        self.sessions = sessions
        self.clock = clock
        self.capacity = capacity
        self.flush_interval = flush_interval
        self._wanted = threading.Event()  # set when the buffer passes half its capacity
        self.retention = timedelta(days=retention_days)
        self._buffer: deque[tuple] = deque()
        self._used: deque[tuple[Any, list[int]]] = deque()  # (stamp, grants) of each request's allows
        self._token_due: dict[str, datetime] = {}  # token hash -> when its use is next noted
        self._token_used: dict[str, datetime] = {}  # token hash -> its last use not yet written
        self._flush_lock = threading.Lock()
        bind = sessions.kw.get("bind")
        self._sqlite = bind is not None and bind.dialect.name == "sqlite"
        # How rows carry the `allowed` and `grant_ids` columns (see :meth:`record`). pysqlite binds
        # an int or a str as it is, but looks a bool or None up among its adapters first, which
        # cost a third of each row's insert: on SQLite, 0/1 and '' (made NULL by the INSERT).
        self.allowed_values: tuple[Any, Any] = (0, 1) if self._sqlite else (False, True)
        self.no_grants: str | None = "" if self._sqlite else None
        self._started = False
        self._hooks = False
        self._ids = itertools.count()
        self._prefix = ""
        self._last_prune = 0.0
        self._stamped: tuple[tuple[int, ...], str] = ((), "")  # a second and its text

    def id_source(self) -> tuple[str, Iterator[int]]:
        """Where decision ids come from: ``f"{prefix}{next(numbers):010x}"`` is unique across
        processes (the prefix is per process) and threads (``next`` on a count is atomic)."""
        if not self._started:
            self._start()
        return self._prefix, self._ids

    def stamp(self, moment: datetime) -> Any:
        """A decision time as the decisions table takes it (once per request, not per decision).

        SQLite takes the text ``2026-11-25 03:18:40.123456``; formatting it whole costs more than the
        rest of recording a decision, so the part up to the second is formatted once a second.
        """
        utc = moment if moment.tzinfo is timezone.utc else moment.astimezone(timezone.utc)
        if not self._sqlite:
            return utc
        # The second as a key: attribute reads cost a tenth of `replace` or `timestamp()`.
        second = (utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second)
        stamped = self._stamped  # one tuple, so that threads never see one second's text for another
        if stamped[0] != second:
            stamped = self._stamped = (second, utc.strftime("%Y-%m-%d %H:%M:%S"))
        return f"{stamped[1]}.{utc.microsecond:06d}"

    def record(self, rows: list[tuple], stamp: Any, used: list[int]) -> None:
        """Keep one request's decisions (memory only), or, when the buffer has no room for them all,
        count them all as dropped.

        ``rows`` hold the decisions table's columns (see ``_COLUMNS``), ready to insert: the time
        from :meth:`stamp`, ``allowed`` from :attr:`allowed_values` and the grants as JSON text, or
        :attr:`no_grants`. They are made on the checks' path, where a request's checks share their
        time, so that writing them takes no Python work per row.
        ``used`` are the ids of the grants that the request's allows rested on, used at ``stamp``.
        """
        buffer = self._buffer
        if len(buffer) + len(rows) > self.capacity:
            DROPPED.inc(len(rows))
            return
        buffer.extend(rows)
        if len(buffer) > self.capacity >> 1:
            self._wanted.set()
        if used:
            self._used.append((stamp, used))

    def token_used(self, token_hash: str, now: datetime) -> None:
        """Note a token's use (memory only; at most once a ``TOKEN_USE_EVERY`` per token): the next
        flush records it as the token's ``last_used_at``."""
        due = self._token_due.get(token_hash)
        if due is not None and now < due:
            return
        if not self._started:
            self._start()
        self._token_due[token_hash] = now + TOKEN_USE_EVERY
        self._token_used[token_hash] = now

    def _forget_passed_dues(self) -> None:
        """Keep the per-token memory to the tokens used this last minute (sign-ins make new ones)."""
        now = self.clock.now()
        for token_hash, due in list(self._token_due.items()):
            if due <= now:
                self._token_due.pop(token_hash, None)

    def _start(self) -> None:
        """Per process: a fresh id prefix and buffer, and a flusher thread. Runs again in every
        process forked from this one (gunicorn forks its workers after the app is made)."""
        self._started = True
        self._prefix = secrets.token_hex(5)
        self._ids = itertools.count()
        self._buffer = deque()
        self._used = deque()
        self._token_due, self._token_used = {}, {}
        self._wanted = threading.Event()
        if self.flush_interval > 0:
            threading.Thread(target=self._flush_forever, name="decision-log", daemon=True).start()
            if not self._hooks:
                atexit.register(self.flush)
                os.register_at_fork(after_in_child=self._forked)
                self._hooks = True

    def _forked(self) -> None:
        self._started = False  # the next decision starts this process's own flusher

    def _flush_forever(self) -> None:
        """Flush every interval, counted from the start of the last flush, or as soon as the buffer
        is half full. Under a heavy load a flush takes a good part of the interval; were the interval
        counted from its end, the buffer would fill for both and overflow."""
        started = time.monotonic()
        while True:
            self._wanted.wait(max(0.0, started + self.flush_interval - time.monotonic()))
            self._wanted.clear()
            started = time.monotonic()
            try:
                self.flush(paced=True)
                if time.monotonic() - self._last_prune > 3600:
                    self.prune()
                    self._last_prune = time.monotonic()
            except Exception:
                log.exception("decision log flush failed")

    def flush(self, paced: bool = False) -> int:
        """Write what is buffered; returns how many decisions were written.

        ``paced`` (the background writer's flushes): the inserts of a light flush are spread over
        up to ``PACE_SPREAD`` seconds, in slices of ``PACE_ROWS``. A flush is a burst of work on cores that
        serve checks; in slices with pauses between them, checks answered meanwhile wait less (side
        by side at ~10,000 single checks a second, 8 rounds: p99 1.92 against 2.06 ms, the same
        throughput). Committing each slice on its own lost the gain (2.20 against 2.06 ms), so a
        flush stays one transaction, holding the write lock up to ``PACE_SPREAD`` longer.
        """
        with self._flush_lock:
            # popleft, not a swap of the deques: a check appending meanwhile is never lost.
            batch = [self._buffer.popleft() for _ in range(len(self._buffer))]
            used = [self._used.popleft() for _ in range(len(self._used))]
            tokens = _take_all(self._token_used)
            self._forget_passed_dues()
            BUFFERED.set(0)
            if not batch and not tokens:
                return 0
            try:
                self._write(batch, used, paced, tokens)
            except Exception:
                DROPPED.inc(len(batch))
                log.exception("could not write %d decisions; counted as dropped", len(batch))
                return 0
            WRITTEN.inc(len(batch))
            return len(batch)

    def _write(self, batch: list[tuple], used: list[tuple[Any, list[int]]], paced: bool,
               tokens: dict[str, datetime]) -> None:
        usage: dict[int, list[Any]] = {}  # grant -> [last stamp, uses]; stamps of one kind order as times
        for stamp, grants in used:
            for grant_id in grants:
                seen = usage.get(grant_id)
                if seen is None:
                    usage[grant_id] = [stamp, 1]
                else:
                    seen[0] = max(seen[0], stamp)
                    seen[1] += 1
        allowed = sum(1 for row in batch if row[6])
        session = self.sessions()
        try:
            connection = session.connection()
            if paced and 0 < len(batch) <= PACE_MOST_ROWS:
                _insert_paced(connection, batch)
            elif batch:  # (none: a flush of tokens' uses alone)
                _insert_rows(connection, _INSERT_DECISION, batch)
            if usage:
                _insert_rows(connection, _UPSERT_USAGE, [(g, t, n) for g, (t, n) in sorted(usage.items())])
            if tokens:
                connection.execute(_TOKEN_LAST_USED, [{"hash": h, "at": t} for h, t in sorted(tokens.items())])
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


# One token's last use, never moved back (another process may have written a later one).
_TOKEN_LAST_USED = (update(ServiceToken.__table__)
                    .where(ServiceToken.__table__.c.token_hash == bindparam("hash"),
                           or_(ServiceToken.__table__.c.last_used_at.is_(None),
                               ServiceToken.__table__.c.last_used_at < bindparam("at")))
                    .values(last_used_at=bindparam("at")))


def _take_all(noted: dict[str, datetime]) -> dict[str, datetime]:
    """Empty ``noted`` item by item (``popitem`` is atomic: a use noted meanwhile is never lost)."""
    taken = {}
    while True:
        try:
            key, value = noted.popitem()
        except KeyError:
            return taken
        taken[key] = value


# How the background writer paces a flush (see DecisionLog.flush): slices of PACE_ROWS decisions
# (~0.3 ms of inserting each), at most PACE_PAUSE apart and PACE_SPREAD in all. Only a flush of up to
# PACE_MOST_ROWS (a second of single checks is ~5,000 a process), and only while it keeps to twice
# its spread: the writer wakes from each pause to wait for the GIL, up to 5 ms behind a busy request
# thread, and at batch loads (~75,000 decisions a second a process) paced flushes fell behind and
# the buffer overflowed.
PACE_ROWS = 256
PACE_PAUSE = 0.003
PACE_SPREAD = 0.1
PACE_MOST_ROWS = 20_000


def _insert_paced(connection, batch: list[tuple]) -> None:
    pause = min(PACE_PAUSE, PACE_SPREAD * PACE_ROWS / len(batch))
    deadline = time.monotonic() + 2 * PACE_SPREAD
    done = 0
    while done < len(batch) and (done == 0 or time.monotonic() < deadline):
        if done:
            time.sleep(pause)
        _insert_rows(connection, _INSERT_DECISION, batch[done:done + PACE_ROWS])
        done += PACE_ROWS
    if done < len(batch):  # out of time: the rest at once
        _insert_rows(connection, _INSERT_DECISION, batch[done:])

# Rows per INSERT on SQLite, largest first: a flush of n rows takes about n/1024 statements plus a
# few for the rest, each text parsed once by pysqlite. Their parameters stay within SQLite's limit
# (999 before 3.32, 32766 since).
_SQLITE_ROW_GROUPS = (1024, 128, 16, 1) if sqlite3.sqlite_version_info >= (3, 32) else (64, 8, 1)
_COLUMNS = ("id", "decided_at", "caller", "actor", "action", "resource", "allowed", "policy_version", "revision",
            "latency_us", "grant_ids")


class _Insert(NamedTuple):
    """An INSERT as its parts: the head, one row's values with ``?`` for its parameters, the tail."""
    head: str
    row: str
    tail: str = ""


_INSERT_DECISION = _Insert(f"INSERT INTO decisions ({', '.join(_COLUMNS)}) VALUES ",
                           f"({', '.join(['?'] * (len(_COLUMNS) - 1))}, NULLIF(?, ''))")  # grant_ids: '' for none
# Rows of one flush name each grant once, as an upsert's rows must. Its stamps are SQLite's text or
# PostgreSQL's timestamps, so `max` orders them as times on either.
_UPSERT_USAGE = _Insert("INSERT INTO grant_usage (grant_id, last_used_at, uses) VALUES ", "(?, ?, ?)",
                        " ON CONFLICT (grant_id) DO UPDATE SET"
                        " last_used_at = {greatest}(excluded.last_used_at, grant_usage.last_used_at),"
                        " uses = grant_usage.uses + excluded.uses")


def _insert_rows(connection, insert: _Insert, rows: list[tuple]) -> None:
    """Straight to the driver, the rows as they are: SQLAlchemy's own handling of each row's
    parameters cost as much as the insert (the grant usage upsert, ~9 µs a grant). On SQLite, many
    rows per statement: pysqlite lets go of the GIL for each statement it steps, and getting it back
    from a busy request thread takes up to the switch interval (5 ms), so a row or a few at a time
    could not keep up with the checks."""
    if connection.dialect.name != "sqlite":  # psycopg: one row's parameters at a time, pipelined
        row = f"({', '.join(['%s'] * insert.row.count('?'))})"  # PostgreSQL's rows carry None as it is
        connection.exec_driver_sql(insert.head + row + insert.tail.format(greatest="GREATEST"), rows)
        return
    tail = insert.tail.format(greatest="max")
    flat, start = itertools.chain.from_iterable, 0
    for size in _SQLITE_ROW_GROUPS:
        end = start + (len(rows) - start) // size * size
        if end > start:
            connection.exec_driver_sql(insert.head + ", ".join([insert.row] * size) + tail,
                                       [tuple(flat(rows[i:i + size])) for i in range(start, end, size)])
            start = end


# A filtered page of the log reads it in slices of SCAN_SLICE decisions, in time order, and after
# SCAN_SECONDS answers with what it found and a cursor to go on from. Actor and resource have no
# index (one would cost several times each insert), and a scan of the whole log for a rare actor
# would hold a worker, which should be answering checks, and a read transaction, which keeps
# SQLite's WAL from being checkpointed, for as long as the log is long. Slices are counted in
# decisions, not in time, because the log's density varies: a quiet weekend, then a busy Monday.
SCAN_SLICE = 100_000
SCAN_SECONDS = 1.0

Key = tuple[datetime, str]  # (decided_at, id): the log's order, and a page's cursor


def decision_page(session: Session, *, since: datetime | None, until: datetime | None, after: Key | None,
                  limit: int, **equal: Any) -> tuple[list[Decision], Key | None]:
    """Decisions in time order after ``after``, within [since, until), whose columns named in
    ``equal`` have those values (None: any); and the key to go on from, None at the end.

    Unfiltered, a page is the next ``limit`` decisions. Filtered, it may hold fewer, even none,
    when its scan ran out of time: the key then says how far it got, never past a decision it
    did not look at.
    """
    conditions = [getattr(Decision, column) == value for column, value in equal.items() if value is not None]
    order = (Decision.decided_at, Decision.id)
    # Compared as a row value, which both databases answer from the key. Spelled as
    # `t > a OR (t = a AND id > b)`, SQLite reads both branches and sorts them: 0.8 s instead of
    # 3 ms for a page in the middle of 6 million decisions.
    key = tuple_(*order)
    keys = select(*order).order_by(*order)  # of any decision in the range: where a slice ends
    if since is not None:
        keys = keys.where(Decision.decided_at >= since)
    if until is not None:
        keys = keys.where(Decision.decided_at < until)
    statement = keys.with_only_columns(Decision).where(*conditions)

    found: list[Decision] = []
    deadline = time.monotonic() + SCAN_SECONDS
    while True:
        lower = [] if after is None else [key > tuple_(*after)]
        boundary = None  # the slice's last decision; unfiltered, the page's limit bounds the scan
        if conditions:
            boundary = session.execute(keys.where(*lower).offset(SCAN_SLICE - 1).limit(1)).first()
        upper = [] if boundary is None else [key <= tuple_(*boundary)]
        found += session.scalars(statement.where(*lower, *upper).limit(limit + 1 - len(found)))
        if len(found) > limit:
            return found[:limit], (found[limit - 1].decided_at, found[limit - 1].id)
        if boundary is None:
            return found, None
        after = (boundary[0], boundary[1])
        if time.monotonic() >= deadline:
            return found, after


def grant_ids_json(grants: tuple[int, ...]) -> str:
    """The grant_ids column's JSON text for an allow's grants (grant ids are integers)."""
    return f"[{','.join(map(str, grants))}]"

