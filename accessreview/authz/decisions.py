"""The decision log: every decision is kept, written in batches away from the request path.

Checks append to a bounded in-memory buffer and to their process's spool on local disk (see
:mod:`.spool`) before they answer; a background thread per process writes the buffer every
``DECISION_FLUSH_INTERVAL`` seconds, or sooner once it is half full (and at exit), records when
each grant and each token was last used, and prunes old decisions and change notes. A process that dies leaves its
spool, which the next sweep writes. A row the database refuses is set aside alone, the rest of its
batch is kept. What does not fit in the buffer, or is refused, is counted in
``accessreview_decisions_dropped_total`` and logged, never dropped silently.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import marshal
import os
import secrets
import sqlite3
import threading
import time
from collections import deque
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple

from prometheus_client import Counter, Gauge
from sqlalchemy import bindparam, delete, or_, select, tuple_, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ..models import Decision, DirectoryChange, ServiceToken
from . import spool as spooling

log = logging.getLogger(__name__)

DECISIONS = Counter("accessreview_decisions_total", "Authorization decisions taken", ["allowed"])
DROPPED = Counter("accessreview_decisions_dropped_total",
                  "Decisions not kept: the buffer was full, the database refused the row, or the database "
                  "could not be reached and they were in memory only")
WRITTEN = Counter("accessreview_decisions_written_total", "Decisions written to the decision log")
BUFFERED = Gauge("accessreview_decisions_buffered", "Decisions waiting to be written", multiprocess_mode="livesum")

CHANGE_NOTES_KEPT = timedelta(days=1)
# Decision ids end with the decision's place in its request (see DecisionLog.decision_ids): three hex
# digits, made once, so that an id costs a concatenation rather than a formatting.
PLACES = 0x1000
_PLACES = [f"{place:03x}" for place in range(PLACES)]
# A token's use is noted at most this often per process: its last use is advice for reviews (a
# service's grants on the service itself), where a minute is exact enough, and the portal sends the
# same token with thousands of checks a second.
TOKEN_USE_EVERY = timedelta(minutes=1)


class DatabaseUnavailable(Exception):
    """The database could not take a write at all (unreachable, locked): nothing is wrong with the rows."""


def _unavailable(exc: Exception) -> bool:
    return isinstance(exc, (OperationalError, InterfaceError)) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated)


class DecisionLog:
    def __init__(self, sessions: sessionmaker, clock, *, capacity: int, flush_interval: float,
                 retention_days: int, spool_dir: Path | None = None, spool_fsync: bool = False) -> None:
        self.sessions = sessions
        self.clock = clock
        self.capacity = capacity
        self.flush_interval = flush_interval
        self._wanted = threading.Event()  # set when the buffer passes half its capacity
        self.retention = timedelta(days=retention_days)
        self._buffer: deque[tuple] = deque()
        self._used: deque[tuple[Any, list[int]]] = deque()  # (stamp, grants) of each request's allows
        self._unspooled = 0  # decisions in the buffer that are not in the spool
        self._token_due: dict[str, datetime] = {}  # token hash -> when its use is next noted
        self._token_used: dict[str, datetime] = {}  # token hash -> its last use not yet written
        # Serializes a request's spool record and buffer entry against the writer's swap of both, so
        # that a segment holds exactly the decisions of the buffer it was swapped with.
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self.spool_dir = spool_dir
        self.spool = spooling.Spool(spool_dir, spool_fsync) if spool_dir is not None else None
        self._pending: list[spooling.Segment] = []  # segments whose flush found the database unavailable
        bind = sessions.kw.get("bind")
        self._sqlite = bind is not None and bind.dialect.name == "sqlite"
        # How rows carry the `allowed` and `grant_ids` columns (see :meth:`record`). pysqlite binds
        # an int or a str as it is, but looks a bool or None up among its adapters first, which
        # cost a third of each row's insert: on SQLite, 0/1 and '' (made NULL by the INSERT).
        self.allowed_values: tuple[Any, Any] = (0, 1) if self._sqlite else (False, True)
        self.no_grants: str | None = "" if self._sqlite else None  # and no properties digest
        self._started = False
        self._hooks = False
        self._ids = itertools.count()
        self._prefix = ""
        self._last_prune = 0.0
        self._last_sweep = 0.0
        self._stamped: tuple[tuple[int, ...], str] = ((), "")  # a second and its text

    def decision_ids(self, count: int) -> list[str]:
        """``count`` new decision ids, for one request's decisions: this process's prefix (random,
        per process), the request's number in this process (``next`` on a count is atomic, so
        threads never share one), then each decision's place in it. Unique across processes by the
        prefix (40 random bits) and within a process by the two numbers, whose text cannot run
        together: the request number is at least seven hex digits and never has a leading zero past
        them, the place always three (20 characters in all, as before, for the first 268 million
        requests of a process). An id is a reference into the decision log, which only its
        readers (``audit``) can follow, not a secret: like the counter before it, it needs to be
        unique, not unguessable. A request of more than ``PLACES`` decisions takes several numbers."""
        if not self._started:
            self._start()
        ids: list[str] = []
        for start in range(0, count, PLACES):
            head = f"{self._prefix}{next(self._ids):07x}"
            ids += [head + place for place in _PLACES[:min(PLACES, count - start)]]
        return ids

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
        """Keep one request's decisions, in memory and in this process's spool (before the request
        answers), or, when the buffer has no room for them all, count them all as dropped.

        ``rows`` hold the decisions table's columns (see ``_COLUMNS``), ready to insert: the time
        from :meth:`stamp`, ``allowed`` from :attr:`allowed_values`, the grants as JSON text, or
        :attr:`no_grants`, and the properties' digest, or :attr:`no_grants` too. They are made on the checks' path, where a request's checks share their
        time, so that writing them takes no Python work per row.
        ``used`` are the ids of the grants that the request's allows rested on, used at ``stamp``.
        """
        spool = self.spool
        record = self.spooled(rows, stamp, used) if spool is not None else b""
        with self._lock:
            buffer = self._buffer
            if len(buffer) + len(rows) > self.capacity:
                DROPPED.inc(len(rows))
                return
            if spool is None or not spool.append(record):
                self._unspooled += len(rows)
                if spool is not None:
                    spooling.UNSPOOLED.inc(len(rows))
            buffer.extend(rows)
            if used:
                self._used.append((stamp, used))
            if len(buffer) > self.capacity >> 1:
                self._wanted.set()

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

    def _write_token_uses(self, tokens: dict[str, datetime]) -> None:
        """Advice for reviews, not evidence: written apart from the decisions, and on a failure kept
        for the next flush (the latest use of each token wins)."""
        session = self.sessions()
        try:
            session.connection().execute(_TOKEN_LAST_USED, [{"hash": h, "at": t} for h, t in sorted(tokens.items())])
            session.commit()
        except Exception:
            session.rollback()
            for token_hash, at in tokens.items():
                kept = self._token_used.get(token_hash)
                self._token_used[token_hash] = at if kept is None else max(kept, at)
            log.exception("could not note the last use of %d tokens; tried again at the next flush", len(tokens))
        finally:
            session.close()

    def spooled(self, rows: list[tuple], stamp: Any, used: list[int]) -> bytes:
        """One request's spool record. marshal takes text, numbers and None, not datetimes, so
        PostgreSQL's stamp is carried as ISO text (see :meth:`unspooled`)."""
        if not self._sqlite:
            stamp = stamp.isoformat()
            rows = [(row[0], stamp, *row[2:]) for row in rows]
        return spooling.frame(marshal.dumps((stamp, rows, used)))

    def unspooled(self, payload: bytes) -> tuple[list[tuple], tuple[Any, list[int]]]:
        """A record's rows, and its (stamp, grants used), as :meth:`record` was given them."""
        stamp, rows, used = marshal.loads(payload)
        if not (isinstance(rows, list) and all(isinstance(r, tuple) and len(r) in _SPOOLED_LENGTHS for r in rows)):
            raise ValueError("not a spool record of decisions")
        if any(len(r) < len(_COLUMNS) for r in rows):  # spooled by a version that had no properties digest
            rows = [(*r, self.no_grants) if len(r) < len(_COLUMNS) else r for r in rows]
        if not self._sqlite:
            stamp = datetime.fromisoformat(stamp)
            rows = [(row[0], stamp, *row[2:]) for row in rows]
        return rows, (stamp, used)

    def _start(self) -> None:
        """Per process: a fresh id prefix, buffer and spool, and a flusher thread. Runs again in every
        process forked from this one (gunicorn forks its workers after the app is made)."""
        self._started = True
        self._prefix = secrets.token_hex(5)
        self._ids = itertools.count()
        self._buffer = deque()
        self._used = deque()
        self._unspooled = 0
        self._pending = []
        self._lock = threading.Lock()
        self._token_due, self._token_used = {}, {}
        if self.spool is not None:
            self.spool.fresh()
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
        counted from its end, the buffer would fill for both and overflow. Every ``SWEEP_SECONDS``,
        and first of all, it also writes what dead processes left in the spool."""
        started = time.monotonic()
        while True:
            try:
                if time.monotonic() - self._last_sweep > spooling.SWEEP_SECONDS:
                    self._last_sweep = time.monotonic()
                    self.recover()
            except Exception:
                log.exception("decision spool sweep failed")
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

        When the database cannot be reached, the spooled segment waits on disk for the next flush;
        only decisions that were in memory alone are dropped (and counted).
        """
        with self._flush_lock:
            written = self._retry_pending()
            with self._lock:
                batch, self._buffer = list(self._buffer), deque()
                used, self._used = list(self._used), deque()
                unspooled, self._unspooled = self._unspooled, 0
                segment = self.spool.rotate() if self.spool is not None else None
            BUFFERED.set(0)
            tokens = _take_all(self._token_used)
            self._forget_passed_dues()
            if tokens:
                self._write_token_uses(tokens)
            if not batch:
                if segment is not None:
                    segment.discard()
                return written
            try:
                written += self._store(batch, used, paced)
            except DatabaseUnavailable as exc:
                self._set_aside(segment, len(batch), unspooled, exc)
                return written
            if segment is not None:
                segment.discard()
            return written

    def _set_aside(self, segment: spooling.Segment | None, size: int, unspooled: int, exc: Exception) -> None:
        if segment is None:
            DROPPED.inc(size)
            log.error("could not write %d decisions (%s); counted as dropped", size, exc)
            return
        self._pending.append(segment)
        if unspooled:
            DROPPED.inc(unspooled)
        log.warning("could not write %d decisions (%s); %d wait in %s for the next flush, %d that were in "
                    "memory only are counted as dropped", size, exc, size - unspooled, segment.path, unspooled)

    def _retry_pending(self) -> int:
        written = 0
        while self._pending:
            segment = self._pending[0]
            written += self._replay(segment)  # raises nothing: DatabaseUnavailable leaves it pending
            if self._pending and self._pending[0] is segment:
                return written
        return written

    def _replay(self, segment: spooling.Segment, recovered: bool = False) -> int:
        """Write a segment's decisions (again: the insert skips ids already in the log), then discard it.
        Left as it is when the database is unavailable."""
        try:
            data = segment.read()
        except OSError as exc:  # removed or unreadable behind our back: nothing to write, nothing to retry
            log.error("cannot read the decision spool %s (%s); its decisions are lost", segment.path, exc)
            if segment in self._pending:
                self._pending.remove(segment)
            os.close(segment.fd)
            return 0
        payloads, bad = spooling.unframe(data)
        batch: list[tuple] = []
        used: list[tuple[Any, list[int]]] = []
        for payload in payloads:
            try:
                rows, (stamp, grants) = self.unspooled(payload)
            except (ValueError, TypeError, EOFError):
                bad += len(payload)
                continue
            batch += rows
            if grants:
                used.append((stamp, grants))
        try:
            written = self._store(batch, used, False) if batch else 0
        except DatabaseUnavailable as exc:
            log.warning("could not write the %d decisions of %s (%s); they wait for the next try",
                        len(batch), segment.path, exc)
            if recovered:
                os.close(segment.fd)
            return 0
        if segment in self._pending:
            self._pending.remove(segment)
        if recovered:
            spooling.RECOVERED.inc(written)
            log.warning("wrote %d decisions from %s, left by a process that died", written, segment.path)
        if bad:
            spooling.set_aside(segment, bad)
        else:
            segment.discard()
        return written

    def recover(self) -> int:
        """Write the spooled decisions of processes that died; returns how many were written."""
        if self.spool_dir is None:
            return 0
        return sum(self._replay(segment, recovered=True) for segment in spooling.orphans(self.spool_dir))

    def catch_up(self) -> None:
        """Before reading the log: what dead processes spooled, and what this one has buffered."""
        self.recover()
        self.flush()

    def _store(self, batch: list[tuple], used: list[tuple[Any, list[int]]], paced: bool) -> int:
        """Write a batch; a row the database refuses is set aside alone (counted, logged), and the
        rest are kept. Raises :class:`DatabaseUnavailable` when nothing could be written."""
        try:
            self._write(batch, used, paced)
            return len(batch)
        except Exception as exc:
            if _unavailable(exc):
                raise DatabaseUnavailable(str(exc).splitlines()[0]) from exc
            log.warning("the database refused a batch of %d decisions (%s); writing it in parts to set "
                        "the bad rows aside", len(batch), str(exc).splitlines()[0])
        written = self._isolate(batch)
        if used:
            try:
                self._write([], used, False)
            except Exception:
                log.exception("could not record the use of grants of %d decisions", written)
        return written

    def _isolate(self, rows: list[tuple]) -> int:
        """Write ``rows`` in halves, each in a transaction of its own, down to the rows that fail alone."""
        try:
            self._write(rows, [], False)
            return len(rows)
        except Exception as exc:
            if _unavailable(exc):
                raise DatabaseUnavailable(str(exc).splitlines()[0]) from exc
            if len(rows) == 1:
                DROPPED.inc()
                row = rows[0]
                log.error("decision %s was refused by the database and is dropped: %s (caller %.80r, actor %.80r, "
                          "action %.80r, resource %.80r)", row[0], str(exc).splitlines()[0], row[2], row[3],
                          row[4], row[5])
                return 0
        half = len(rows) // 2
        return self._isolate(rows[:half]) + self._isolate(rows[half:])

    def _write(self, batch: list[tuple], used: list[tuple[Any, list[int]]], paced: bool) -> None:
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
            if paced and len(batch) <= PACE_MOST_ROWS:
                _insert_paced(connection, batch)
            elif batch:
                _insert_rows(connection, _INSERT_DECISION, batch)
            if usage:
                _insert_rows(connection, _UPSERT_USAGE, [(g, t, n) for g, (t, n) in sorted(usage.items())])
            session.commit()
        except Exception:
            session.rollback()
            raise
        finally:
            session.close()
        # Counted here, in bulk, rather than on each check's path.
        WRITTEN.inc(len(batch))
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

    def spool_state(self) -> dict[str, object]:
        state = spooling.state(self.spool_dir, self.spool) if self.spool is not None else {"status": "off"}
        if self._pending:
            state["waiting_for_database"] = len(self._pending)
        return state


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
            "latency_us", "grant_ids", "properties_sha256")


_SPOOLED_LENGTHS = (len(_COLUMNS) - 1, len(_COLUMNS))  # rows spooled before properties_sha256, and now


class _Insert(NamedTuple):
    """An INSERT as its parts: the head, one row's values with ``?`` for its parameters, the tail."""
    head: str
    row: str
    tail: str = ""


# A decision whose id is in the log already is one written before, by a flush retried or a spool
# recovered after its process died between its commit and deleting its segment: it is skipped.
_INSERT_DECISION = _Insert(f"INSERT INTO decisions ({', '.join(_COLUMNS)}) VALUES ",
                           # grant_ids and properties_sha256: '' for none
                           f"({', '.join(['?'] * (len(_COLUMNS) - 2))}, NULLIF(?, ''), NULLIF(?, ''))",
                           " ON CONFLICT DO NOTHING")
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

