"""/v1/audit-events: the audit trail, read-only. Nothing in the service edits or deletes an event."""

from __future__ import annotations

from flask import Blueprint

from ..audit import events_page
from ..db import get_session
from ..guard import authorize, page_limit, query
from ..log_pages import AuditQuery
from . import shapes
from .common import answer, documented

bp = Blueprint("audit", __name__, url_prefix="/v1")


@bp.get("/audit-events")
@documented("Audit events in chain order, filtered by target, actor, action and time", query=AuditQuery,
            tag="audit", responses={200: shapes.AuditEventPage, 400: shapes.ErrorOut, 401: shapes.ErrorOut,
                                    403: shapes.ErrorOut})
def list_audit_events():
    authorize("read_audit")
    q = query(AuditQuery)
    page = events_page(get_session(), target=q.target, actor=q.actor, action=q.action, since=q.since, until=q.until,
                       cursor=q.cursor, limit=page_limit(q.limit))
    return answer(page.to_dict())
