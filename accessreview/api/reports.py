"""/v1 reports: signed workbooks for auditors, their signatures, verification, ad-hoc evidence."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, current_app, request, send_file
from pydantic import BaseModel, Field, ValidationInfo, field_validator

from ..audit import append_event
from ..authz.engine import get_engine
from ..clock import as_utc
from ..db import get_session
from ..directory.schemas import ResourceKey
from ..errors import BadRequest
from ..reports import get_signer, service
from ..reports.signing import verify
from ..validation import Moment, RowId, Strict
from . import shapes
from .common import authorize, body, documented, json_response, query, unit_of_work
from .openapi import Media

bp = Blueprint("reports", __name__, url_prefix="/v1")
ERRORS = {400: shapes.ErrorOut, 401: shapes.ErrorOut, 403: shapes.ErrorOut, 404: shapes.ErrorOut}
OBJECT = {"type": "object"}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class ReportQuery(BaseModel):
    campaign: RowId | None = None


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


def _audit_download(actor: str, report, what: str) -> None:
    with unit_of_work(actor) as (session, ctx):
        append_event(session, ctx, "report.downloaded", f"report:{report.id}", None,
                     {"file": report.file_name, "what": what, "sha256": report.sha256})


@bp.get("/reports")
@documented("Signed reports: campaign, version, created, SHA-256", query=ReportQuery, tag="reports",
            responses={200: OBJECT, **ERRORS})
def list_reports():
    authorize("read_reports")
    return json_response({"items": service.list_reports(get_session(), query(ReportQuery).campaign)})


@bp.get("/reports/<int:report_id>")
@documented("Download a report's workbook (audited)", tag="reports",
            responses={200: Media(XLSX, {"type": "string", "format": "binary"}), **ERRORS})
def download_report(report_id: int):
    actor = authorize("read_reports")
    report = service.get_report(get_session(), report_id)
    path = service.store_path(_reports_dir(), report.file_name)
    _audit_download(actor, report, "workbook")
    return send_file(path, mimetype=XLSX, as_attachment=True, download_name=report.file_name)


@bp.get("/reports/<int:report_id>/signature")
@documented("Download a report's detached signature (audited)", tag="reports", responses={200: OBJECT, **ERRORS})
def download_signature(report_id: int):
    actor = authorize("read_reports")
    report = service.get_report(get_session(), report_id)
    path = service.store_path(_reports_dir(), f"{report.file_name}.sig.json")
    _audit_download(actor, report, "signature")
    return send_file(path, mimetype="application/json", as_attachment=True, download_name=path.name)


@bp.post("/reports/verify")
@documented("Verify an uploaded workbook against its signature (multipart: workbook, signature)", tag="reports",
            body=Media("multipart/form-data", {
                "type": "object", "required": ["workbook", "signature"],
                "properties": {"workbook": {"type": "string", "format": "binary"},
                               "signature": {"type": "string", "format": "binary"}}}),
            responses={200: OBJECT, **ERRORS})
def verify_report():
    authorize("read_reports")
    workbook, signature = request.files.get("workbook"), request.files.get("signature")
    if workbook is None or signature is None:
        raise BadRequest("upload the workbook and its signature as multipart fields 'workbook' and 'signature'",
                         field="workbook" if workbook is None else "signature", code="missing_field")
    keys = {k["key_id"]: k["public_key"] for k in service.signing_keys(get_session())}
    return json_response(verify(workbook.read(), signature.read(), keys).to_dict())


@bp.get("/signing-keys")
@documented("Every public key that has signed reports (old keys stay after a rotation)", tag="reports",
            responses={200: OBJECT, **ERRORS})
def signing_keys():
    authorize("read_reports")
    signer = get_signer()
    keys = service.signing_keys(get_session())
    if signer.key_id not in {k["key_id"] for k in keys}:  # the current key, before it has signed anything
        keys.append({"key_id": signer.key_id, "algorithm": "Ed25519", "public_key": signer.public_key_pem,
                     "first_used_at": None})
    return json_response({"items": keys, "current": signer.key_id})


@bp.post("/reports/access")
@documented("A signed report of who has what now under some resources", body=AccessReportBody, tag="reports",
            responses={201: OBJECT, **ERRORS})
def access_report():
    actor = authorize("read_reports")
    return json_response(make_access_report(actor, body(AccessReportBody)), 201)


def make_access_report(actor: str, data: AccessReportBody) -> dict[str, Any]:
    """Sign a report of who has what now under ``data.resources`` (the caller may read reports)."""
    snapshot = get_engine().snapshot()
    unknown = sorted({r for r in data.resources if r not in snapshot.index.resources})
    if unknown:
        raise BadRequest(f"unknown resources: {', '.join(unknown)}", field="resources", code="unknown_reference")
    with unit_of_work(actor) as (session, ctx):
        return service.access_report(session, ctx, get_signer(), _reports_dir(), snapshot, data.resources)


@bp.post("/reports/decisions")
@documented("A signed report of the decision log for a period", body=DecisionsReportBody, tag="reports",
            responses={201: OBJECT, **ERRORS})
def decisions_report():
    actor = authorize("read_reports")
    return json_response(make_decisions_report(actor, body(DecisionsReportBody)), 201)


def make_decisions_report(actor: str, data: DecisionsReportBody) -> dict[str, Any]:
    """Sign a report of the decision log from ``since`` to ``until`` (the caller may read reports)."""
    current_app.extensions["decisions"].flush()
    with unit_of_work(actor) as (session, ctx):
        return service.decisions_report(session, ctx, get_signer(), _reports_dir(), data.since, data.until)
