"""/v1/audit-events: the audit trail, read-only. Nothing in the service edits or deletes an event."""

from __future__ import annotations

from flask import Blueprint
from pydantic import BaseModel
from ..audit import events_page
from ..db import get_session
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
    page = events_page(get_session(), target=q.target, actor=q.actor, action=q.action, since=q.since, until=q.until,
                       cursor=q.cursor, limit=page_limit(q.limit))
    return json_response(page.to_dict())
