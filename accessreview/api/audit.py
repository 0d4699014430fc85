"""/v1/audit-events: the audit trail, read-only. Nothing in the service edits or deletes an event."""

from __future__ import annotations

from flask import Blueprint
from pydantic import BaseModel
from sqlalchemy import select

from ..audit import event_to_dict
from ..db import get_session
from ..models import AuditEvent
from ..pagination import paginate
from ..validation import Moment
from . import shapes
from .common import authorize, documented, json_response, page_limit, query

bp = Blueprint("audit", __name__, url_prefix="/v1")


class AuditQuery(BaseModel):
    target: str | None = None
    actor: str | None = None
    action: str | None = None
    since: Moment | None = None
    until: Moment | None = None
    cursor: str | None = None
    limit: int | None = None


@bp.get("/audit-events")
@documented("Audit events in chain order, filtered by target, actor, action and time", query=AuditQuery,
            tag="audit", responses={200: shapes.AuditEventPage, 400: shapes.ErrorOut, 401: shapes.ErrorOut,
                                    403: shapes.ErrorOut})
def list_audit_events():
    authorize("read_audit")
    q = query(AuditQuery)
    statement = select(AuditEvent)
    if q.target:
        statement = statement.where(AuditEvent.target == q.target)
    if q.actor:
        statement = statement.where(AuditEvent.actor == q.actor)
    if q.action:
        statement = statement.where(AuditEvent.action == q.action)
    if q.since:
        statement = statement.where(AuditEvent.occurred_at >= q.since)
    if q.until:
        statement = statement.where(AuditEvent.occurred_at < q.until)
    page = paginate(get_session(), statement, AuditEvent.seq, q.cursor, page_limit(q.limit))
    return json_response(page.map(event_to_dict).to_dict())
