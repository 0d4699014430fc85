"""Pages of the two logs, as the API and the pages read them: the audit trail's filter, and the
decision log's filter and pages (complete, by keyset cursor)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import current_app
from pydantic import BaseModel

from .authz.decisions import decision_page
from .clock import as_utc
from .db import get_session
from .guard import page_limit
from .models import AuditEvent, Decision
from .pagination import Cursor, decode_cursor, encode_cursor, invalid_cursor
from .validation import Moment, column_text


class AuditQuery(BaseModel):
    target: column_text(AuditEvent.target) | None = None  # type: ignore[valid-type]
    actor: column_text(AuditEvent.actor) | None = None  # type: ignore[valid-type]
    action: column_text(AuditEvent.action) | None = None  # type: ignore[valid-type]
    since: Moment | None = None
    until: Moment | None = None
    cursor: Cursor | None = None
    limit: int | None = None


class DecisionQuery(BaseModel):
    actor: column_text(Decision.actor) | None = None  # type: ignore[valid-type]
    resource: column_text(Decision.resource) | None = None  # type: ignore[valid-type]
    allowed: bool | None = None
    since: Moment | None = None
    until: Moment | None = None
    cursor: Cursor | None = None
    limit: int | None = None


def decision_log_page(q: DecisionQuery) -> dict[str, Any]:
    """One page of the decision log (the caller may read decisions)."""
    current_app.extensions["decisions"].catch_up()
    after = None
    if q.cursor:
        after_time, after_id = decode_cursor(q.cursor, (str, str))
        try:
            after = (as_utc(datetime.fromisoformat(after_time)), after_id)
        except ValueError:
            raise invalid_cursor() from None
    rows, last = decision_page(get_session(), since=q.since, until=q.until, after=after, limit=page_limit(q.limit),
                               actor=q.actor, resource=q.resource, allowed=q.allowed)
    next_cursor = encode_cursor([as_utc(last[0]).isoformat(), last[1]]) if last else None
    return {"items": [_decision(d) for d in rows], "next_cursor": next_cursor}


def _decision(d: Decision) -> dict[str, Any]:
    return {"id": d.id, "decided_at": as_utc(d.decided_at).isoformat(), "caller": d.caller, "actor": d.actor,
            "action": d.action, "resource": d.resource, "allowed": d.allowed, "policy_version": d.policy_version,
            "revision": d.revision, "latency_us": d.latency_us, "grant_ids": d.grant_ids or [],
            "properties_sha256": d.properties_sha256}
