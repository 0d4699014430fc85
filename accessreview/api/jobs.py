"""/v1/jobs: where long work stands (launch, close, remediation and reports, imports)."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint
from pydantic import BaseModel

from .. import jobs
from ..db import get_or_404, get_session
from ..errors import Forbidden
from ..guard import authorize, page_limit, query
from ..models import Job
from ..pagination import Cursor
from ..validation import column_text
from . import shapes
from .common import documented, json_response

bp = Blueprint("jobs", __name__, url_prefix="/v1")
ERRORS = {400: shapes.ErrorOut, 401: shapes.ErrorOut, 403: shapes.ErrorOut}


class JobQuery(BaseModel):
    state: Literal["queued", "running", "done", "failed"] | None = None
    kind: Literal["launch", "close", "remediation", "import"] | None = None
    subject: column_text(Job.subject) | None = None  # type: ignore[valid-type]
    cursor: Cursor | None = None
    limit: int | None = None


# Whoever may start a kind of job may follow it: the portal its imports, security leads campaigns' work.
JOB_PERMISSIONS = {"import": "sync_directory"}
CAMPAIGN_WORK = "view_campaigns"


def _authorize_kind(kind: str) -> str:
    return authorize(JOB_PERMISSIONS.get(kind, CAMPAIGN_WORK))


@bp.get("/jobs")
@documented("Jobs, oldest first, filtered by state, kind or subject (campaign:7): the kinds the caller may "
            "follow (campaigns' work with view_campaigns, imports with sync_directory)", query=JobQuery,
            tag="jobs", responses={200: shapes.JobPage, **ERRORS})
def list_jobs():
    q = query(JobQuery)
    kinds = [q.kind] if q.kind else None
    if q.kind:
        _authorize_kind(q.kind)
    else:
        try:
            authorize(CAMPAIGN_WORK)
        except Forbidden:
            authorize(JOB_PERMISSIONS["import"])
            kinds = list(JOB_PERMISSIONS)
    page = jobs.list_jobs(get_session(), state=q.state, kinds=kinds, subject=q.subject, cursor=q.cursor,
                          limit=page_limit(q.limit))
    return json_response(page.to_dict())


@bp.get("/jobs/<int:job_id>")
@documented("One job: kind, state, progress, error, and links to what it made", tag="jobs",
            responses={200: shapes.JobOut, 404: shapes.ErrorOut, **ERRORS})
def get_job(job_id: int):
    job = get_session().get(Job, job_id)
    _authorize_kind(job.kind if job is not None else "launch")
    return json_response(jobs.job_state(get_or_404(get_session(), Job, job_id, "job")))
