"""The report steps the API and the pages share (the caller is authorized to read reports): an audited
download of a workbook or its signature, and signing ad-hoc evidence."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import current_app, send_file
from pydantic import Field, ValidationInfo, field_validator

from ..authz.engine import get_engine
from ..clock import as_utc
from ..db import get_session
from ..directory.schemas import ResourceKey
from ..errors import BadRequest
from ..guard import unit_of_work
from ..validation import Moment, Strict
from . import get_signer, service
from .verify_report import Verification, load_public_key, verify

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


MIMETYPES = {"workbook": XLSX, "signature": "application/json", "raw_signature": "application/octet-stream"}


def send_report(actor: str, report_id: int, what: str):
    """The workbook, its signature document or its raw signature (``what``) as a download, recorded in the
    audit trail with the hash of the bytes sent; a stored file that no longer matches the record is refused
    (and that is recorded too)."""
    session = get_session()
    report = service.get_report(session, report_id)
    try:
        download = service.open_download(_reports_dir(), session, get_signer(), report, what)
    except service.StoredReportChanged as refused:
        with unit_of_work(actor) as (session, ctx):
            service.record_refusal(session, ctx, refused)
        raise
    try:
        with unit_of_work(actor) as (session, ctx):
            service.record_download(session, ctx, report_id, what, download)
    except BaseException:
        download.file.close()
        raise
    response = send_file(download.file, mimetype=MIMETYPES[what], as_attachment=True,
                         download_name=download.name, etag=download.sha256, conditional=False)
    response.content_length = download.size
    return response


def verify_against_published_keys(workbook: bytes, signature: bytes, raw_signature: bytes | None) -> Verification:
    """Check an uploaded report with this service's own keys as the trusted ones (a convenience for people
    who trust the service; auditors verify offline with the fingerprint published out of band)."""
    keys = [load_public_key(k["public_key"]) for k in service.published_keys(get_session(), get_signer())]
    return verify(workbook, signature, public_keys=keys, raw_signature=raw_signature)


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
