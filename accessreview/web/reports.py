"""An auditor's page: the signed reports, their downloads (audited, as through the API), the public
keys that signed them, and a form that verifies a workbook against its signature."""

from __future__ import annotations

from flask import render_template, request

from ..api import reports as reports_api
from ..api.common import authorize
from ..db import get_session
from ..reports import get_signer, service
from ..reports.signing import verify
from .blueprint import bp


@bp.get("/reports")
def reports():
    authorize("read_reports")
    return _render_reports()


def _render_reports(verdict=None, problem: str | None = None, status: int = 200):
    session = get_session()
    return render_template("reports.html", reports=list(reversed(service.list_reports(session))),
                           keys=service.signing_keys(session), current_key=get_signer().key_id,
                           verdict=verdict, problem=problem), status


@bp.get("/reports/<int:report_id>/workbook")
def workbook(report_id: int):
    return reports_api.download_report(report_id)


@bp.get("/reports/<int:report_id>/signature")
def signature(report_id: int):
    return reports_api.download_signature(report_id)


@bp.post("/reports/verify")
def verify_upload():
    authorize("read_reports")
    workbook_file, signature_file = request.files.get("workbook"), request.files.get("signature")
    if not workbook_file or not workbook_file.filename or not signature_file or not signature_file.filename:
        return _render_reports(problem="Choose both files: the workbook (.xlsx) and its signature (.sig.json).",
                               status=400)
    keys = {k["key_id"]: k["public_key"] for k in service.signing_keys(get_session())}
    return _render_reports(verdict=verify(workbook_file.read(), signature_file.read(), keys))
