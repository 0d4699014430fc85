"""/v1/jobs: where long work stands (launch, close, remediation and reports, imports)."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint
from pydantic import BaseModel

from .. import jobs
from ..db import get_or_404, get_session
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
    kind: Literal["launch", "close", "remediation"] | None = None
    subject: column_text(Job.subject) | None = None  # type: ignore[valid-type]
    cursor: Cursor | None = None
    limit: int | None = None


@bp.get("/jobs")
@documented("Jobs, oldest first, filtered by state, kind or subject (campaign:7)", query=JobQuery, tag="jobs",
            responses={200: shapes.JobPage, **ERRORS})
def list_jobs():
    authorize("view_campaigns")
    q = query(JobQuery)
    page = jobs.list_jobs(get_session(), state=q.state, kind_=q.kind, subject=q.subject, cursor=q.cursor,
                          limit=page_limit(q.limit))
    return json_response(page.to_dict())


@bp.get("/jobs/<int:job_id>")
@documented("One job: kind, state, progress, error, and links to what it made", tag="jobs",
            responses={200: shapes.JobOut, 404: shapes.ErrorOut, **ERRORS})
def get_job(job_id: int):
    authorize("view_campaigns")
    return json_response(jobs.job_state(get_or_404(get_session(), Job, job_id, "job")))
