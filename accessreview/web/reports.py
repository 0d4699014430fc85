"""An auditor's page: the signed reports, their downloads (audited, as through the API), the public
keys that signed them with their fingerprints, how to verify a report with a trusted key (the
standalone verifier, openssl), a form that verifies a workbook against its signature, and forms that
sign ad-hoc evidence (who has what now; the decision log over some days)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from pathlib import Path

from flask import Response, redirect, render_template, request, url_for

from ..guard import authorize
from ..reports.handling import (AccessReportBody, DecisionsReportBody, make_access_report, make_decisions_report,
                               send_report, verify_against_published_keys)
from ..db import get_session
from ..errors import ApiError, BadRequest, NotFound
from ..reports import get_signer, service, verify_report
from ..validation import parse_query
from .blueprint import bp


@bp.get("/reports")
def reports():
    authorize("read_reports")
    return _render_reports()


def _render_reports(verdict=None, problem: str | None = None, status: int = 200, error: ApiError | None = None):
    session = get_session()
    signer = get_signer()
    return render_template("reports.html", reports=list(reversed(service.list_reports(session))),
                           keys=service.published_keys(session, signer), current_key=signer.key_id,
                           current_fingerprint=signer.fingerprint, verdict=verdict, problem=problem, error=error,
                           form=request.form), status


@bp.get("/reports/<int:report_id>/workbook")
def workbook(report_id: int):
    return send_report(authorize("read_reports"), report_id, "workbook")


@bp.get("/reports/<int:report_id>/signature")
def signature(report_id: int):
    return send_report(authorize("read_reports"), report_id, "signature")


@bp.get("/reports/<int:report_id>/signature.bin")
def raw_signature(report_id: int):
    return send_report(authorize("read_reports"), report_id, "raw_signature")


@bp.get("/reports/keys/<key_id>.pem")
def public_key(key_id: str):
    """A signing key's public half, as a file for openssl or the verifier (check its fingerprint first)."""
    authorize("read_reports")
    key = next((k for k in service.published_keys(get_session(), get_signer()) if k["key_id"] == key_id), None)
    if key is None:
        raise NotFound(f"no signing key {key_id!r}", field="key_id")
    return Response(key["public_key"], mimetype="application/x-pem-file",
                    headers={"Content-Disposition": f"attachment; filename=accessreview-{key_id}.pem"})


@bp.get("/reports/verify_report.py")
def verifier():
    """The standalone verifier (the standard library and cryptography only), to run where the auditor works."""
    authorize("read_reports")
    return Response(Path(verify_report.__file__).read_bytes(), mimetype="text/x-python",
                    headers={"Content-Disposition": "attachment; filename=verify_report.py"})


@bp.post("/reports/verify")
def verify_upload():
    authorize("read_reports")
    workbook_file, signature_file = request.files.get("workbook"), request.files.get("signature")
    if not workbook_file or not workbook_file.filename or not signature_file or not signature_file.filename:
        return _render_reports(problem="Choose both files: the workbook (.xlsx) and its signature (.sig.json).",
                               status=400)
    raw_file = request.files.get("raw_signature")
    raw = raw_file.read() if raw_file and raw_file.filename else None
    return _render_reports(verdict=verify_against_published_keys(workbook_file.read(), signature_file.read(), raw))


@bp.post("/reports/access")
def access_report():
    """Sign a report of who has what now under the resources given, one a line."""
    actor = authorize("read_reports")
    try:
        data = parse_query(AccessReportBody, {"resources": request.form.get("resources", "").split()})
        make_access_report(actor, data)
    except ApiError as error:
        return _render_reports(error=error, status=error.status)
    return redirect(url_for("web.reports"))


@bp.post("/reports/decisions")
def decisions_report():
    """Sign a report of the decision log over whole days, UTC: from the first through the last."""
    actor = authorize("read_reports")
    try:
        first, last = _day(request.form.get("first_day"), "first_day"), _day(request.form.get("last_day"), "last_day")
        data = parse_query(DecisionsReportBody, {
            "since": datetime.combine(first, time(), timezone.utc).isoformat(),
            "until": datetime.combine(last + timedelta(days=1), time(), timezone.utc).isoformat()})
        make_decisions_report(actor, data)
    except ApiError as error:
        return _render_reports(error=error, status=error.status)
    return redirect(url_for("web.reports"))


def _day(text: str | None, field: str) -> date:
    try:
        day = date.fromisoformat((text or "").strip())
    except ValueError:
        day = None
    if day is None or day == date.max:  # the day after it would not fit
        raise BadRequest("give a day as YYYY-MM-DD", field=field, code="invalid_value")
    return day
