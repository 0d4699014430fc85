"""The audit trail: append-only events, each chained to the previous one by a SHA-256 hash.

Events are appended in the transaction of the change they record. The chain head lives in the
``directory_state`` row, which every writer locks first, so concurrent writers queue up instead of
forking the chain.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from json.encoder import encode_basestring
from typing import Any, Iterable

from sqlalchemy import event as orm_events, select, update
from sqlalchemy.orm import Session

from .clock import as_utc
from .db import JsonText, bulk_insert
from .models import AuditEvent, DirectoryState
from .pagination import Page, paginate

GENESIS_HASH = "0" * 64
STATE_ROW_ID = 1
# The service acting on its own account: automated decisions, and revocations applied on a sign-off.
SERVICE_ACTOR = "system:accessreview"


@dataclass(frozen=True)
class WriteContext:
    """Who is writing, and under which request; every service function that writes takes one."""

    actor: str
    now: datetime
    request_id: str | None = None


_LOCKED = "accessreview.locked_state"


def lock_state(session: Session) -> DirectoryState:
    """Lock and return the single state row; the first statement of every write transaction.

    Once locked, the row stays locked (and current) until the transaction ends: later calls in the
    same transaction return it without asking the database again."""
    locked = session.info.get(_LOCKED)
    if locked is not None:
        return locked
    if session.get_bind().dialect.name == "sqlite":
        # SQLite has no row locks, and a transaction that has read cannot always upgrade to writing
        # (SQLITE_BUSY_SNAPSHOT). A no-op write as the first statement takes the database's write
        # lock at once, so writers queue on the busy timeout instead of failing.
        session.execute(update(DirectoryState).where(DirectoryState.id == STATE_ROW_ID)
                        .values(revision=DirectoryState.revision))
    state = session.get(DirectoryState, STATE_ROW_ID, with_for_update=True, populate_existing=True)
    if state is None:
        raise RuntimeError("directory_state row is missing: run `accessreview db upgrade`")
    session.info[_LOCKED] = state
    return state


@orm_events.listens_for(Session, "after_transaction_end")
def _unlocked(session: Session, transaction) -> None:
    if transaction.parent is None:  # the transaction itself, not a savepoint inside it
        session.info.pop(_LOCKED, None)


_PLAIN = (str, int, float, bool, type(None))


def jsonable(value: Any) -> Any:
    """Turn datetimes into ISO strings (recursively) so content hashes the same before and after storage."""
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, dict):
        return {k if type(k) is str else str(k): v if type(v) in _PLAIN else jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [v if type(v) in _PLAIN else jsonable(v) for v in value]
    return value


_HASHED = ("seq", "id", "occurred_at", "actor", "action", "target", "before", "after", "request_id", "prev_hash")
# The JSON an event's hash covers: keys sorted, no spaces, non-ASCII as it is.
canonical_json = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def event_hash(event: AuditEvent) -> str:
    return _content_hash({name: getattr(event, name) for name in _HASHED})


def _content_hash(fields: dict[str, Any]) -> str:
    """The hash of an event's fields: SHA-256 of their canonical JSON (keys sorted, no spaces)."""
    content = {name: fields[name] for name in _HASHED}
    content["occurred_at"] = as_utc(content["occurred_at"]).isoformat(timespec="microseconds")
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


def _chained(seq: int, head: str, ctx: WriteContext, events: Iterable[tuple[str, str | None, Any, Any]]
             ) -> list[dict[str, Any]]:
    """The events' fields, each chained to the one before, the first to ``seq`` and ``head``; ``before``
    and ``after`` already serialized (:class:`JsonText`), as their hash serialized them.

    The canonical JSON is put together from its fields' own JSON (:func:`event_text`) rather than made
    from a dict: the same text as :func:`_content_hash` makes (tests hold them equal), with each
    ``before`` and ``after`` serialized once for both the hash and the row."""
    rows, now = [], as_utc(ctx.now)
    stamp = now.isoformat(timespec="microseconds")  # every event of a write has the same time
    for action, target, before, after in events:
        seq += 1
        event_id = str(uuid.uuid4())
        before, after = _serialized(before), _serialized(after)
        canonical = event_text(seq, event_id, stamp, ctx.actor, action, target, before or "null", after or "null",
                               ctx.request_id, head)
        prev, head = head, hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        rows.append({"seq": seq, "id": event_id, "occurred_at": now, "actor": ctx.actor, "action": action,
                     "target": target, "before": before, "after": after, "request_id": ctx.request_id,
                     "prev_hash": prev, "hash": head})
    return rows


def event_text(seq: int, event_id: str, occurred_at: str, actor: str, action: str, target: str | None,
               before: str, after: str, request_id: str | None, prev_hash: str) -> str:
    """The canonical JSON an event's hash covers, put together from its fields, with ``occurred_at`` as
    its ISO text (microseconds, UTC offset) and ``before`` and ``after`` as their canonical JSON text
    (``null`` for none): the text :func:`_content_hash` makes from the parsed fields."""
    text = encode_basestring
    return (f'{{"action":{text(action)},"actor":{text(actor)},"after":{after},"before":{before},'
            f'"id":{text(event_id)},"occurred_at":{text(occurred_at)},"prev_hash":{text(prev_hash)},'
            f'"request_id":{_string(request_id)},"seq":{seq},"target":{_string(target)}}}')


def _string(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


def _serialized(value: Any) -> JsonText | None:
    if value is None:
        return None
    value = jsonable(value)
    return JsonText(canonical_json(value), value)


def append_event(session: Session, ctx: WriteContext, action: str, target: str | None,
                 before: Any = None, after: Any = None, *, state: DirectoryState | None = None) -> None:
    """Append one event; pass the already-locked ``state`` to skip re-reading it (bulk writes). Written
    as a plain row, as :func:`append_events` writes them, so its states are stored as the text their
    hash covers."""
    append_events(session, ctx, [(action, target, before, after)], state=state)


def append_events(session: Session, ctx: WriteContext, events: Iterable[tuple[str, str | None, Any, Any]], *,
                  state: DirectoryState | None = None) -> int:
    """Append many events (action, target, before, after) as plain rows in one statement, chained
    exactly as :func:`append_event` chains them. Returns how many."""
    state = state or lock_state(session)
    rows = _chained(state.audit_seq, state.audit_head, ctx, events)
    if rows:
        state.audit_seq, state.audit_head = rows[-1]["seq"], rows[-1]["hash"]
    bulk_insert(session, AuditEvent, rows)
    return len(rows)


@dataclass(frozen=True)
class ChainProblem:
    seq: int | None
    event_id: str | None
    reason: str

    def __str__(self) -> str:
        where = f"event {self.event_id} (seq {self.seq})" if self.event_id else f"seq {self.seq}"
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class ChainReport:
    events: int
    head: str
    problem: ChainProblem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify_chain(session: Session) -> ChainReport:
    """Walk the chain from the start; report the first event edited, removed or reordered."""
    events = session.scalars(select(AuditEvent).order_by(AuditEvent.seq).execution_options(yield_per=2000))
    try:
        report = _walk(events)
    finally:
        events.close()  # an early return must not leave a server-side cursor open
    if report.problem is not None:
        return report
    state = session.get(DirectoryState, STATE_ROW_ID)
    if state is not None and (state.audit_seq != report.events or state.audit_head != report.head):
        return ChainReport(report.events, report.head, ChainProblem(
            report.events + 1, None, f"the chain ends at seq {report.events} but {state.audit_seq} events were"
                                     " written; events were removed from the end"))
    return report


def _walk(events: Iterable[AuditEvent]) -> ChainReport:
    previous_hash, expected_seq, count = GENESIS_HASH, 1, 0
    for event in events:
        if event.seq != expected_seq:
            return ChainReport(count, previous_hash, ChainProblem(
                expected_seq, None, f"missing: the chain jumps from seq {expected_seq - 1} to {event.seq}"
                                    f" (event {event.id}); an event was removed"))
        if event.prev_hash != previous_hash:
            return ChainReport(count, previous_hash, ChainProblem(
                event.seq, event.id, "does not follow the event before it (removed or reordered)"))
        if event_hash(event) != event.hash:
            return ChainReport(count, previous_hash, ChainProblem(
                event.seq, event.id, "content does not match its hash (edited)"))
        previous_hash, expected_seq, count = event.hash, expected_seq + 1, count + 1
    return ChainReport(count, previous_hash, None)


def event_to_dict(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "seq": event.seq,
        "occurred_at": as_utc(event.occurred_at).isoformat(),
        "actor": event.actor,
        "action": event.action,
        "target": event.target,
        "before": event.before,
        "after": event.after,
        "request_id": event.request_id,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def events_page(session: Session, *, target: str | None = None, actor: str | None = None, action: str | None = None,
                since: datetime | None = None, until: datetime | None = None, cursor: str | None = None,
                limit: int) -> Page:
    """Audit events in chain order, filtered by target, actor, action and time (``until`` excluded)."""
    statement = select(AuditEvent)
    for column, value in ((AuditEvent.target, target), (AuditEvent.actor, actor), (AuditEvent.action, action)):
        if value:
            statement = statement.where(column == value)
    if since:
        statement = statement.where(AuditEvent.occurred_at >= since)
    if until:
        statement = statement.where(AuditEvent.occurred_at < until)
    return paginate(session, statement, AuditEvent.seq, cursor, limit).map(event_to_dict)
