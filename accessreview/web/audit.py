"""An auditor's views: the audit trail (every state change in chain order, filtered, and a button
that walks the whole hash chain as `accessreview audit verify` does) and the decision log."""

from __future__ import annotations

from flask import render_template, request

from ..audit import events_page, verify_chain
from ..db import get_session
from ..errors import BadRequest
from ..guard import authorize, page_limit
from ..log_pages import AuditQuery, DecisionQuery, decision_log_page
from ..pagination import Page
from ..validation import parse_query
from .blueprint import bp, page_query


@bp.get("/audit")
def audit_trail():
    authorize("read_audit")
    return _render_trail()


@bp.post("/audit/verify")
def verify_trail():
    authorize("read_audit")
    return _render_trail(verify_chain(get_session()))


def _render_trail(report=None):
    try:
        q = parse_query(AuditQuery, request.args)
        page = events_page(get_session(), target=q.target, actor=q.actor, action=q.action, since=q.since,
                           until=q.until, cursor=q.cursor, limit=page_limit(q.limit))
    except BadRequest as error:  # a filter the API would refuse too: said above the form, nothing listed
        return render_template("audit.html", page=Page([], None), query=AuditQuery(), report=report,
                               error=error), error.status
    return render_template("audit.html", page=page, query=q, report=report, error=None)


@bp.get("/decisions")
def decision_log():
    """The portal's authorization decisions, filtered; a filtered page may come back short (its scan
    is bounded in time), with a link to read on."""
    authorize("read_decisions")
    try:
        q = page_query(DecisionQuery)
        page = decision_log_page(q)
    except BadRequest as error:
        return render_template("decisions.html", page=Page([], None).to_dict(), query=DecisionQuery(),
                               error=error), error.status
    return render_template("decisions.html", page=page, query=q, error=None)
