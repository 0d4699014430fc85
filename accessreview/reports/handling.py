"""The report steps the API and the pages share (the caller is authorized to read reports): an audited
download of a workbook or its signature, and signing ad-hoc evidence."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import current_app, send_file
from pydantic import Field, ValidationInfo, field_validator

from ..audit import append_event
from ..authz.engine import get_engine
from ..clock import as_utc
from ..db import get_session
from ..directory.schemas import ResourceKey
from ..errors import BadRequest
from ..guard import unit_of_work
from ..validation import Moment, Strict
from . import get_signer, service

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class AccessReportBody(Strict):
    resources: list[ResourceKey] = Field(min_length=1, max_length=100)


class DecisionsReportBody(Strict):
    since: Moment
    until: Moment

    @field_validator("until")
    @classmethod
    def _after_since(cls, until: datetime, info: ValidationInfo) -> datetime:
        since = info.data.get("since")
        if since is not None and as_utc(until) <= as_utc(since):
            raise ValueError("must be later than since")
        return until


def _reports_dir():
    return current_app.config["REPORTS_DIR"]


def send_report(actor: str, report_id: int, what: str):
    """The workbook (``what="workbook"``) or its signature as a download, recorded in the audit trail."""
    report = service.get_report(get_session(), report_id)
    name = report.file_name if what == "workbook" else f"{report.file_name}.sig.json"
    path = service.store_path(_reports_dir(), name)
    with unit_of_work(actor) as (session, ctx):
        append_event(session, ctx, "report.downloaded", f"report:{report.id}", None,
                     {"file": report.file_name, "what": what, "sha256": report.sha256})
    return send_file(path, mimetype=XLSX if what == "workbook" else "application/json", as_attachment=True,
                     download_name=path.name)


def make_access_report(actor: str, data: AccessReportBody) -> dict[str, Any]:
    """Sign a report of who has what now under ``data.resources``."""
    snapshot = get_engine().snapshot()
    unknown = sorted({r for r in data.resources if r not in snapshot.index.resources})
    if unknown:
        raise BadRequest(f"unknown resources: {', '.join(unknown)}", field="resources", code="unknown_reference")
    with unit_of_work(actor) as (session, ctx):
        return service.access_report(session, ctx, get_signer(), _reports_dir(), snapshot, data.resources)


def make_decisions_report(actor: str, data: DecisionsReportBody) -> dict[str, Any]:
    """Sign a report of the decision log from ``since`` to ``until``."""
    current_app.extensions["decisions"].catch_up()
    with unit_of_work(actor) as (session, ctx):
        return service.decisions_report(session, ctx, get_signer(), _reports_dir(), data.since, data.until)
