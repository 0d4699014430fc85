"""The outbox: mails and webhooks recorded in the transaction of the event that causes them, and sent
after commit by the worker, with retries and back-off.

A message is claimed (``sending``, with a lease) in one short transaction, sent with no transaction
open, and marked ``sent`` in another. A crash after the peer took it and before the mark leaves the
lease to run out and the message to go again with the same Message-ID (Idempotency-Key for a
webhook), which mail systems and receivers use to drop the repeat: that one message, and only that
window, is the exception to "each once". A failed send is retried with growing delays, then left
``failed`` for an operator to see (``GET /v1/outbox``, ``/metrics``).
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from .models import OutboxMessage
from .notify import DeliveryError, Message, NotDeliverable, send_email, send_webhook

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=120)  # longer than a send's deadline
BACKOFF = (60, 300, 900, 3600, 3600 * 3, 3600 * 6)  # seconds before attempt 2, 3, ...
MAX_ATTEMPTS = len(BACKOFF) + 1
REDACTED = "(sent; the text is not kept)"


def enqueue(session: Session, now: datetime, config: Mapping[str, Any], message: Message, *,
            keep_text: bool = True) -> dict[str, Any]:
    """Record ``message`` for sending after commit; returns what was queued, for the audit trail.

    ``keep_text=False`` drops the text once sent (a sign-in link must not outlive its use)."""
    queued: dict[str, Any] = {"to": message.to, "address": message.address, "subject": message.subject}
    if message.address:
        row = _row(now, "email", message.address, message, {"text": message.text, "keep_text": keep_text})
        session.add(row)
        queued["email"] = f"queued as {row.message_id}"
    else:
        queued["email"] = f"not sent: {message.to} has no e-mail address"
    if config.get("WEBHOOK_URL"):
        row = _row(now, "webhook", config["WEBHOOK_URL"], message, {"event": message.event})
        session.add(row)
        queued["webhook"] = f"queued as {row.message_id}"
    session.flush()
    return queued


def _row(now: datetime, channel: str, recipient: str, message: Message, body: dict[str, Any]) -> OutboxMessage:
    return OutboxMessage(message_id=f"<{uuid.uuid4()}@accessreview>", channel=channel, recipient=recipient,
                         principal=message.to, subject=message.subject, body=body, state="pending", attempts=0,
                         next_attempt_at=now, created_at=now)


def claim(sessions: Callable[[], Session], now: datetime) -> OutboxMessage | None:
    """Take the next due message (pending, or left ``sending`` by a process that died) for one send."""
    session = sessions()
    try:
        if session.get_bind().dialect.name == "sqlite":  # take SQLite's write lock first (see jobs.Runner.step)
            session.execute(update(OutboxMessage).where(OutboxMessage.id == -1).values(attempts=0))
        due = (select(OutboxMessage).where(
            ((OutboxMessage.state == "pending") & (OutboxMessage.next_attempt_at <= now))
            | ((OutboxMessage.state == "sending") & (OutboxMessage.lease_until < now)))
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id).limit(1))
        if session.get_bind().dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        row = session.scalar(due)
        if row is None:
            session.rollback()
            return None
        # Only one claimer wins a row that two read (SQLite has no SKIP LOCKED): the update says so.
        taken = session.execute(update(OutboxMessage).where(
            OutboxMessage.id == row.id, OutboxMessage.state == row.state, OutboxMessage.attempts == row.attempts)
            .values(state="sending", lease_until=now + LEASE, attempts=row.attempts + 1)).rowcount
        session.commit()
        if not taken:
            return None
        session.refresh(row)
        return row
    finally:
        session.close()


def send(config: Mapping[str, Any], row: OutboxMessage) -> None:
    if row.channel == "email":
        send_email(config, row.recipient, row.subject or "", row.body["text"], row.message_id)
    else:
        send_webhook(row.recipient, row.body["event"], row.message_id)


def settle(sessions: Callable[[], Session], now: datetime, row: OutboxMessage, error: DeliveryError | None) -> str:
    """Record how the send went: sent, to be retried after a back-off, or failed for good."""
    session = sessions()
    try:
        values: dict[str, Any]
        if error is None:
            values = {"state": "sent", "sent_at": now, "lease_until": None, "last_error": None}
            if row.channel == "email" and not row.body.get("keep_text", True):
                values["body"] = {"text": REDACTED, "keep_text": False}
        elif isinstance(error, NotDeliverable) or row.attempts >= MAX_ATTEMPTS:
            values = {"state": "failed", "lease_until": None, "last_error": str(error)}
        else:
            delay = BACKOFF[min(row.attempts - 1, len(BACKOFF) - 1)]
            values = {"state": "pending", "lease_until": None, "last_error": str(error),
                      "next_attempt_at": now + timedelta(seconds=delay)}
        session.execute(update(OutboxMessage).where(OutboxMessage.id == row.id).values(**values))
        session.commit()
        return values["state"]
    finally:
        session.close()


def deliver_due(sessions: Callable[[], Session], config: Mapping[str, Any], clock, limit: int = 100) -> dict[str, int]:
    """Send up to ``limit`` due messages, one at a time, with no transaction open during a send."""
    outcome: Counter[str] = Counter()
    for _ in range(limit):
        row = claim(sessions, clock.now())
        if row is None:
            break
        error: DeliveryError | None = None
        try:
            send(config, row)
        except DeliveryError as exc:
            error = exc
            log.warning("%s to %s not delivered (attempt %s): %s", row.channel, row.recipient, row.attempts, exc)
        outcome[settle(sessions, clock.now(), row, error)] += 1
    return dict(outcome)


def counts(session: Session) -> dict[str, int]:
    return {state: count for state, count in session.execute(
        select(OutboxMessage.state, func.count()).group_by(OutboxMessage.state))}


def outbox_state(row: OutboxMessage) -> dict[str, Any]:
    return {"id": row.id, "message_id": row.message_id, "channel": row.channel, "recipient": row.recipient,
            "principal": row.principal, "subject": row.subject, "state": row.state, "attempts": row.attempts,
            "next_attempt_at": row.next_attempt_at.isoformat(), "last_error": row.last_error,
            "created_at": row.created_at.isoformat(), "sent_at": row.sent_at and row.sent_at.isoformat()}
