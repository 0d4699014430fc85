"""/v1/jobs: where long work stands (launch, close, remediation and reports, imports)."""

from __future__ import annotations

from typing import Literal, get_args

from flask import Blueprint
from pydantic import BaseModel

from .. import jobs
from ..db import get_or_404, get_session
from ..authz.engine import SERVICE_RESOURCE, get_engine
from ..guard import authorize, caller, page_limit, query
from ..models import Job
from ..pagination import Cursor
from ..validation import column_text
from . import shapes
from .common import answer, documented

bp = Blueprint("jobs", __name__, url_prefix="/v1")
ERRORS = {400: shapes.ErrorOut, 401: shapes.ErrorOut, 403: shapes.ErrorOut}


Kind = Literal["launch", "close", "remediation", "follow_up", "import"]


class JobQuery(BaseModel):
    state: Literal["queued", "running", "done", "failed"] | None = None
    kind: Kind | None = None
    subject: column_text(Job.subject) | None = None  # type: ignore[valid-type]
    cursor: Cursor | None = None
    limit: int | None = None


def _authorize_kind(kind: str) -> str:
    return authorize(jobs.follow_permission(kind))


@bp.get("/jobs")
@documented("Jobs, oldest first, filtered by state, kind or subject (campaign:7): the kinds the caller may "
            "follow (campaigns' work with view_campaigns, imports with sync_directory)", query=JobQuery,
            tag="jobs", responses={200: shapes.JobPage, **ERRORS})
def list_jobs():
    principal = caller()
    q = query(JobQuery)
    if q.kind:
        _authorize_kind(q.kind)
        kinds = [q.kind]
    else:
        kinds = _followed_kinds(principal)
    page = jobs.list_jobs(get_session(), state=q.state, kinds=kinds, subject=q.subject, cursor=q.cursor,
                          limit=page_limit(q.limit))
    return answer(page.to_dict())


def _followed_kinds(principal: str) -> list[str]:
    """Every kind the caller may follow (403 if none): a security lead lists no import, the portal no launch."""
    engine = get_engine()
    permissions = sorted({jobs.follow_permission(kind) for kind in get_args(Kind)})
    held = [permission for permission in permissions if engine.is_allowed(principal, permission, SERVICE_RESOURCE)]
    authorize(held[0] if held else jobs.CAMPAIGN_WORK)  # the guard's record of the answer; 403 without any
    return [kind for kind in get_args(Kind) if jobs.follow_permission(kind) in held]


@bp.get("/jobs/<int:job_id>")
@documented("One job: kind, state, progress, error, and links to what it made", tag="jobs",
            responses={200: shapes.JobOut, 404: shapes.ErrorOut, **ERRORS})
def get_job(job_id: int):
    caller()  # who asks, before anything is read
    job = get_session().get(Job, job_id)
    _authorize_kind(job.kind if job is not None else "launch")
    return answer(jobs.job_state(get_or_404(get_session(), Job, job_id, "job")))
