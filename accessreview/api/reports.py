"""/v1 reports: signed workbooks for auditors, their signatures, verification, ad-hoc evidence."""

from __future__ import annotations

from flask import Blueprint, request
from pydantic import BaseModel

from ..db import get_session
from ..errors import BadRequest
from ..guard import authorize, body, query
from ..reports import get_signer, service
from ..reports.handling import (XLSX, AccessReportBody, DecisionsReportBody, make_access_report,
                                make_decisions_report, send_report, verify_against_published_keys)
from ..validation import RowId
from . import shapes
from .common import answer, documented
from .openapi import Media

bp = Blueprint("reports", __name__, url_prefix="/v1")
ERRORS = {400: shapes.ErrorOut, 401: shapes.ErrorOut, 403: shapes.ErrorOut, 404: shapes.ErrorOut}
DOWNLOAD_ERRORS = {**ERRORS, 409: shapes.ErrorOut}


class ReportQuery(BaseModel):
    campaign: RowId | None = None


@bp.get("/reports")
@documented("Signed reports: campaign, version, created, SHA-256", query=ReportQuery, tag="reports",
            responses={200: shapes.ReportList, **ERRORS})
def list_reports():
    authorize("read_reports")
    return answer({"items": service.list_reports(get_session(), query(ReportQuery).campaign)})


@bp.get("/reports/<int:report_id>")
@documented("Download a report's workbook (audited; 409 report_file_changed if the stored file no longer "
            "matches its record)", tag="reports",
            responses={200: Media(XLSX, {"type": "string", "format": "binary"}), **DOWNLOAD_ERRORS})
def download_report(report_id: int):
    return send_report(authorize("read_reports"), report_id, "workbook")


@bp.get("/reports/<int:report_id>/signature")
@documented("Download a report's detached signature of its claims (audited)", tag="reports",
            responses={200: shapes.SignatureDocument, **DOWNLOAD_ERRORS})
def download_signature(report_id: int):
    return send_report(authorize("read_reports"), report_id, "signature")


@bp.get("/reports/<int:report_id>/signature.bin")
@documented("Download a report's raw Ed25519 signature over the workbook's bytes, 64 bytes (audited): "
            "openssl pkeyutl -verify -pubin -inkey key.pem -rawin -in report.xlsx -sigfile report.xlsx.sig",
            tag="reports", responses={200: Media("application/octet-stream", {"type": "string", "format": "binary"}),
                                      **DOWNLOAD_ERRORS})
def download_raw_signature(report_id: int):
    return send_report(authorize("read_reports"), report_id, "raw_signature")


@bp.post("/reports/verify")
@documented("Verify an uploaded workbook against its signature, and its raw signature if given, with this "
            "service's keys (multipart: workbook, signature, raw_signature)", tag="reports",
            body=Media("multipart/form-data", {
                "type": "object", "required": ["workbook", "signature"],
                "properties": {"workbook": {"type": "string", "format": "binary"},
                               "signature": {"type": "string", "format": "binary"},
                               "raw_signature": {"type": "string", "format": "binary"}}}),
            responses={200: shapes.VerificationOut, **ERRORS})
def verify_report():
    authorize("read_reports")
    workbook, signature = request.files.get("workbook"), request.files.get("signature")
    if workbook is None or signature is None:
        raise BadRequest("upload the workbook and its signature as multipart fields 'workbook' and 'signature'",
                         field="workbook" if workbook is None else "signature", code="missing_field")
    raw = request.files.get("raw_signature")
    verdict = verify_against_published_keys(workbook.read(), signature.read(), raw.read() if raw else None)
    return answer(verdict.to_dict())


@bp.get("/signing-keys")
@documented("Every public key that has signed reports, with its SHA-256 fingerprint (old keys stay after a "
            "rotation)", tag="reports", responses={200: shapes.SigningKeys, **ERRORS})
def signing_keys():
    authorize("read_reports")
    signer = get_signer()
    return answer({"items": service.published_keys(get_session(), signer), "current": signer.key_id,
                          "current_fingerprint": signer.fingerprint})


@bp.post("/reports/access")
@documented("A signed report of who has what now under some resources", body=AccessReportBody, tag="reports",
            responses={201: shapes.ReportOut, **ERRORS})
def access_report():
    actor = authorize("read_reports")
    return answer(make_access_report(actor, body(AccessReportBody)), 201)


@bp.post("/reports/decisions")
@documented("A signed report of the decision log for a period", body=DecisionsReportBody, tag="reports",
            responses={201: shapes.ReportOut, **ERRORS})
def decisions_report():
    actor = authorize("read_reports")
    return answer(make_decisions_report(actor, body(DecisionsReportBody)), 201)
