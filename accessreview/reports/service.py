"""Signed evidence: campaign workbooks (at sign-off and after remediation), and ad-hoc reports of
current access and of the decision log. Stored under REPORTS_DIR, never overwritten."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import statistics
import tempfile
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Callable

from cryptography.exceptions import InvalidSignature
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..audit import WriteContext, append_event
from ..authz.engine import Snapshot
from ..campaigns.measures import campaign_measures
from ..clock import as_utc
from ..db import get_or_404
from ..directory import holds
from ..errors import Conflict, NotFound
from ..models import AuditEvent, Campaign, Decision, Hold, Report, ReviewItem, SigningKey
from .signing import Ed25519PrivateKey, public_pem, sign
from .verify_report import fingerprint, key_id, load_public_key, parse_document, signed_bytes
from .workbook import MAX_ROWS, Book, key_value_sheet

REPORT_FORMAT = "accessreview-report/1"
ITEM_COLUMNS = [
    ("Item", 8), ("Principal", 28), ("Principal name", 22), ("Email", 28), ("Department", 16),
    ("Principal status", 10), ("Kind", 11), ("Role", 14), ("Resource type", 13), ("Resource", 30),
    ("Resource name", 24), ("Resource owner", 24), ("Effective permissions", 40), ("Granted by", 22),
    ("Granted at (UTC)", 19), ("Reason", 30), ("Expires at (UTC)", 19), ("Last used (UTC)", 19),
    ("Recommendation", 14), ("Why", 45), ("Reviewer of record", 24), ("Actual reviewer", 24),
    ("Decision", 10), ("Justification", 40), ("Decided at (UTC)", 19), ("Automated", 10),
    ("Automated rule", 26), ("Override", 9), ("Escalated at (UTC)", 19), ("Remediation", 12),
    ("Applied at (UTC)", 19), ("Verified at (UTC)", 19), ("Remediation detail", 50),
]


class Signer:
    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self.private_key = private_key
        self.key_id = key_id(private_key.public_key())
        self.fingerprint = fingerprint(private_key.public_key())
        self.public_key_pem = public_pem(private_key.public_key())

    def register(self, session: Session, now: datetime) -> None:
        if session.get(SigningKey, self.key_id) is None:
            session.add(SigningKey(key_id=self.key_id, public_key_pem=self.public_key_pem, first_used_at=now))
            session.flush()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:60] or "report"


def store_path(reports_dir: Path, file_name: str) -> Path:
    """The file's place in the store; a name that would lead outside it is refused."""
    root = reports_dir.resolve()
    path = (root / file_name).resolve()
    if path.parent != root or not path.name or file_name != path.name:
        raise NotFound("that report is not in the store", field="id")
    return path


def _publish(reports_dir: Path, stem: str, write: Callable[[Path], None], partial: str = ".partial-") -> tuple[str, int]:
    """Write to a temporary file, then link it in under the first free version: never overwrites."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=reports_dir, prefix=partial, suffix=".xlsx")
    os.close(handle)
    try:
        write(Path(temporary))
        version = 1
        while True:
            name = f"{stem}-v{version}.xlsx"
            try:
                os.link(temporary, reports_dir / name)
                return name, version
            except FileExistsError:
                version += 1
    finally:
        os.unlink(temporary)


def _record(session: Session, ctx: WriteContext, signer: Signer, reports_dir: Path, name: str, version: int, *,
            kind: str, campaign_id: int | None, stage: str, parameters: dict[str, Any]) -> dict[str, Any]:
    signer.register(session, ctx.now)
    workbook = (reports_dir / name).read_bytes()
    document, raw_signature = sign(signer.private_key, workbook, report=name, campaign=campaign_id,
                                   signed_at=ctx.now, kind=kind)
    (reports_dir / f"{name}.sig.json").write_text(json.dumps(document, indent=2))
    report = Report(kind=kind, campaign_id=campaign_id, stage=stage, version=version, file_name=name,
                    sha256=document["sha256"], size=len(workbook), key_id=signer.key_id, signed_at=ctx.now,
                    created_by=ctx.actor, parameters=parameters, raw_signature=raw_signature)
    session.add(report)
    session.flush()
    state = report_state(report)
    append_event(session, ctx, "report.created", f"report:{report.id}", None, state)
    return state


def report_state(r: Report) -> dict[str, Any]:
    return {"id": r.id, "kind": r.kind, "campaign": r.campaign_id, "stage": r.stage, "version": r.version,
            "file_name": r.file_name, "sha256": r.sha256, "size": r.size, "key_id": r.key_id,
            "created_at": as_utc(r.signed_at).isoformat(), "created_by": r.created_by, "parameters": r.parameters,
            "raw_signature": r.raw_signature is not None}


def signing_rows(signer: Signer) -> list[tuple[str, Any]]:
    """The Summary's rows naming the key that signs the workbook, to compare with the published one."""
    return [("Signing key id", signer.key_id), ("Signing key fingerprint (SHA-256)", signer.fingerprint)]


# -- campaign workbooks ------------------------------------------------------------------------------

def campaign_report_stem(campaign: Campaign, stage: str, now: datetime) -> str:
    return f"{_slug(campaign.name)}-campaign-{campaign.id}-{now:%Y%m%d}-{stage.replace('_', '-')}"


def discard_unrecorded(session: Session, reports_dir: Path, stem: str, partial: str) -> list[str]:
    """Remove what an interrupted report left: its temporary file, and any version linked in whose
    record never committed (nobody can have been given it). Returns the names removed."""
    recorded = set(session.scalars(select(Report.file_name).where(Report.file_name.like(f"{stem}-v%"))))
    removed = []
    for path in list(reports_dir.glob(f"{partial}*")) + list(reports_dir.glob(f"{stem}-v*.xlsx")):
        if path.name.startswith(partial) or path.name not in recorded:
            for leftover in (path, path.with_name(path.name + ".sig.json")):
                leftover.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


def campaign_report(session: Session, ctx: WriteContext, signer: Signer, reports_dir: Path, campaign: Campaign,
                    stage: str, *, max_rows: int = MAX_ROWS, partial: str = ".partial-") -> dict[str, Any]:
    stem = campaign_report_stem(campaign, stage, ctx.now)

    def write(path: Path) -> None:
        book = Book()
        _summary(session, book, campaign, ctx, signer)
        _items_and_exceptions(session, book, campaign, max_rows)
        _reviewers(session, book, campaign, ctx.now)
        _audit_trail(session, book, campaign)
        if campaign.status == "signed_off":
            _holds_and_follow_up(session, book, campaign, ctx.now)
        book.save(path)

    name, version = _publish(reports_dir, stem, write, partial)
    return _record(session, ctx, signer, reports_dir, name, version, kind="campaign", campaign_id=campaign.id,
                   stage=stage, parameters={"campaign": campaign.id, "stage": stage})


def _summary(session: Session, book: Book, campaign: Campaign, ctx: WriteContext, signer: Signer) -> None:
    measures = campaign_measures(session, campaign, ctx.now)
    settings = campaign.settings
    freshness = campaign.freshness or {}
    rows: list[tuple[str, Any]] = [
        ("Report format", REPORT_FORMAT),
        ("Campaign", f"{campaign.name} (id {campaign.id})"),
        ("Definition", f"{settings['name']} (id {campaign.definition_id})"),
        ("Description", settings.get("description") or ""),
        ("Scope", json.dumps(settings["scope"], sort_keys=True)),
        ("Reviewer rule", json.dumps([settings["reviewer"], *settings.get("stages", [])])),
        ("Fallback reviewer", settings["fallback_reviewer"]),
        ("No-response rule", settings["on_no_response"]),
        ("Period", campaign.period),
        ("Launched at (UTC)", as_utc(campaign.launched_at)), ("Launched by", campaign.launched_by),
        ("Due at (UTC)", as_utc(campaign.due_at)),
        ("Closed at (UTC)", campaign.closed_at and as_utc(campaign.closed_at)),
        ("Population: directory revision", campaign.revision),
        ("Population: count", campaign.population_count),
        ("Population: SHA-256", campaign.population_hash),
        ("Policy version", campaign.policy_version),
    ]
    for source, info in sorted((freshness.get("sources") or {}).items()):
        rows.append((f"Data freshness at launch: {source}",
                     f"last sync {info['last_sync_at']} ({info['age_hours']} h before launch, {info['mode']})"))
    if freshness.get("stale_sources"):
        rows.append(("Stale sources at launch (flagged)", ", ".join(freshness["stale_sources"])))
    rows += [
        ("Reviewers", measures["reviewers"]), ("Completion (%)", measures["decided_percent"]),
        ("Kept", measures["keep"]), ("Revoked", measures["revoke"]), ("Automated decisions", measures["automated"]),
        ("Overdue", measures["overdue"]), ("Escalated", measures["escalated"]), ("Overridden", measures["overridden"]),
        ("Signed off by", campaign.signed_off_by or ""),
        ("Signed off at (UTC)", campaign.signed_off_at and as_utc(campaign.signed_off_at)),
        ("Sign-off statement", campaign.sign_off_statement or ""),
        ("Remediation", json.dumps(measures["remediation"], sort_keys=True)),
        ("Access removed (verified)", measures["access_removed"]),
        ("Scope after remediation", json.dumps(campaign.remediation_snapshot or {}, sort_keys=True)),
        ("Generated at (UTC)", ctx.now), ("Generated by", ctx.actor), *signing_rows(signer),
    ]
    key_value_sheet(book, "Summary", rows)


_ITEM_FIELDS = ("id", "frozen", "kind", "role", "effective_permissions", "last_used_at", "recommendation",
                "recommendation_reason", "reviewer_of_record", "reviewer", "decided_by", "decision", "justification",
                "decided_at", "automated_rule", "overridden", "escalated_at", "remediation_state", "applied_at",
                "verified_at", "remediation_detail")


def _items_and_exceptions(session: Session, book: Book, campaign: Campaign, max_rows: int) -> None:
    # Both sheets are written side by side, row by row: nothing is held back in memory.
    items = book.sheet("Items", ITEM_COLUMNS, max_rows)
    exceptions = book.sheet("Exceptions", [("Exception", 18), ("Item", 8), ("Principal", 28), ("Role", 14),
                                        ("Resource", 30), ("Detail", 80)], max_rows)
    due = as_utc(campaign.due_at)
    # Plain rows of the columns the sheets show, through Core (the ORM's row handling would more
    # than double the read), and not the explanation chains.
    columns = [getattr(ReviewItem, name) for name in _ITEM_FIELDS]
    session.flush()
    for item in session.connection().execute(select(*columns).where(ReviewItem.campaign_id == campaign.id)
                                .order_by(ReviewItem.id).execution_options(yield_per=5000)):
        frozen = item.frozen
        principal, resource, grant = frozen["principal"], frozen["resource"], frozen.get("grant") or {}
        items.append([
            item.id, principal["id"], principal.get("name"), principal.get("email"), principal.get("department"),
            principal.get("status"), item.kind, item.role or "member", resource["type"], resource["id"],
            resource.get("name"), resource.get("owner"), item.effective_permissions, grant.get("granted_by"),
            _time(grant.get("granted_at")), grant.get("reason"), _time(grant.get("expires_at")),
            item.last_used_at, item.recommendation, item.recommendation_reason, item.reviewer_of_record,
            item.decided_by, item.decision, item.justification, item.decided_at,
            "yes" if item.automated_rule else "no", item.automated_rule, "yes" if item.overridden else "no",
            item.escalated_at, item.remediation_state, item.applied_at, item.verified_at, item.remediation_detail])
        base = [item.id, principal["id"], item.role or "member", resource["id"]]
        if item.decided_at is not None and item.automated_rule is None and as_utc(item.decided_at) > due:
            exceptions.append(["overdue", *base, f"decided {as_utc(item.decided_at):%Y-%m-%d}, due {due:%Y-%m-%d}"])
        if item.escalated_at:
            exceptions.append(["escalated", *base, f"to {item.reviewer}"])
        if item.overridden:
            exceptions.append(["overridden", *base, f"decided by {item.decided_by}"])
        if item.automated_rule:
            exceptions.append(["automated", *base, item.automated_rule])
        if item.remediation_state == "failed":
            kind = "still has access" if "still has" in (item.remediation_detail or "") else "remediation failed"
            exceptions.append([kind, *base, item.remediation_detail])


def _time(value: str | None) -> datetime | None:
    return as_utc(datetime.fromisoformat(value)) if value else None


def _reviewers(session: Session, book: Book, campaign: Campaign, now: datetime) -> None:
    stats: dict[str, dict[str, Any]] = defaultdict(lambda: {"assigned": 0, "decided": 0, "overdue": 0, "hours": []})
    due, launched = as_utc(campaign.due_at), as_utc(campaign.launched_at)
    session.flush()
    for reviewer, decided_at, automated in session.connection().execute(select(
            ReviewItem.reviewer_of_record, ReviewItem.decided_at, ReviewItem.automated_rule)
            .where(ReviewItem.campaign_id == campaign.id)):
        entry = stats[reviewer or "(unassigned)"]
        entry["assigned"] += 1
        if decided_at is not None and automated is None:
            entry["decided"] += 1
            entry["hours"].append((as_utc(decided_at) - launched).total_seconds() / 3600)
            entry["overdue"] += as_utc(decided_at) > due
        elif automated is not None or (campaign.status == "open" and now > due):
            entry["overdue"] += 1
    sheet = book.sheet("Reviewers", [("Reviewer", 28), ("Assigned", 10), ("Decided", 10), ("Overdue", 10),
                                          ("Median hours to decide", 22)])
    for reviewer, entry in sorted(stats.items()):
        sheet.append([reviewer, entry["assigned"], entry["decided"], entry["overdue"],
                      round(statistics.median(entry["hours"]), 2) if entry["hours"] else None])


def _audit_trail(session: Session, book: Book, campaign: Campaign) -> None:
    sheet = book.sheet("Audit trail", [("Seq", 8), ("Time (UTC)", 19), ("Actor", 24), ("Action", 22),
                                            ("Target", 26), ("Details", 90), ("Hash", 66)])
    # Nothing about the campaign comes before its launch began: read from there, as plain rows.
    first = session.scalar(select(func.min(AuditEvent.seq)).where(
        AuditEvent.target == f"campaign:{campaign.id}")) or 0
    rows = session.execute(select(AuditEvent.seq, AuditEvent.occurred_at, AuditEvent.actor, AuditEvent.action,
                                  AuditEvent.target, AuditEvent.before, AuditEvent.after, AuditEvent.hash)
                           .where(AuditEvent.seq >= first).order_by(AuditEvent.seq)
                           .execution_options(yield_per=5000))
    for seq, occurred_at, actor, action, target, before, after, hash_ in rows:
        before_ = before if isinstance(before, dict) else {}
        after_ = after if isinstance(after, dict) else {}
        # Review events name their campaign; revocations carry it in the grant's last state.
        ours = (target == f"campaign:{campaign.id}"
                or ((target or "").startswith("review_item:") and after_.get("campaign") == campaign.id)
                or before_.get("removed_by_review") == campaign.id
                or ((target or "").startswith("hold:")
                    and campaign.id in (after_.get("campaign"), (after_.get("hold") or {}).get("campaign"))))
        if ours:
            sheet.append([seq, occurred_at, actor, action, target,
                          json.dumps(after if after is not None else before, sort_keys=True, default=str), hash_])


def _holds_and_follow_up(session: Session, book: Book, campaign: Campaign, now: datetime) -> None:
    """The revocations held against the portal's sync, and what the follow-up found had come back."""
    held = book.sheet("Holds", [("Hold", 8), ("Item", 8), ("Principal", 28), ("Role", 14), ("Resource", 30),
                                ("Since (UTC)", 19), ("Until (UTC)", 19), ("State", 10), ("Lifted by", 24),
                                ("Lift justification", 50)])
    for hold in session.scalars(select(Hold).where(Hold.campaign_id == campaign.id).order_by(Hold.id)):
        state = "active" if holds.is_active(hold, now) else ("lifted" if hold.lifted_at else "expired")
        held.append([hold.id, hold.item_id, hold.principal_key, hold.role, hold.resource_key,
                     as_utc(hold.created_at), hold.expires_at and as_utc(hold.expires_at), state,
                     hold.lifted_by or "", hold.lift_justification or ""])
    follow = campaign.follow_up
    if follow is not None:
        found = book.sheet("Follow-up", [("Item", 8), ("Principal", 28), ("Role", 14), ("Resource", 30),
                                         ("Who has it again", 28), ("Permission", 14), ("On", 30),
                                         ("Through grants", 16), ("Detail", 80)])
        found.append(["checked at", follow["checked_at"], "revocations checked", follow["checked"],
                      "access found again", follow["found"], "", "", ""])
        for finding in follow["findings"]:
            found.append([finding["item"], finding["principal"], finding["role"] or "member", finding["resource"],
                          finding["actor"], finding["permission"], finding["on"],
                          ", ".join(map(str, finding["grants"])), finding["detail"]])


# -- ad-hoc evidence ----------------------------------------------------------------------------------

def access_report(session: Session, ctx: WriteContext, signer: Signer, reports_dir: Path, snapshot: Snapshot,
                  resources: list[str]) -> dict[str, Any]:
    """Who has what now on ``resources`` (and everything under them), with effective permissions."""
    def write(path: Path) -> None:
        book = Book()
        key_value_sheet(book, "Summary", [
            ("Report format", REPORT_FORMAT), ("Report", "current access"), ("Scope", ", ".join(resources)),
            ("Directory revision", snapshot.revision), ("Policy version", snapshot.policy.version),
            ("Generated at (UTC)", ctx.now), ("Generated by", ctx.actor), *signing_rows(signer)])
        sheet = book.sheet("Access", [("Resource", 32), ("Principal", 28), ("Permissions", 40), ("Via", 90)])
        queue = deque(resources)
        while queue:
            key = queue.popleft()
            for entry in snapshot.evaluator.access(key, ctx.now):
                sheet.append([key, entry["principal"], entry["permissions"],
                              "; ".join(f"grant {v['grant_id']}: {v['role']} on {v['resource']} to {v['principal']}"
                                        for v in entry["via"])])
            queue.extend(sorted(snapshot.index.children.get(key, ())))
        book.save(path)

    stem = f"access-{_slug('-'.join(resources))}-{ctx.now:%Y%m%d}"
    name, version = _publish(reports_dir, stem, write)
    return _record(session, ctx, signer, reports_dir, name, version, kind="access", campaign_id=None,
                   stage="ad_hoc", parameters={"resources": resources, "revision": snapshot.revision})


def decisions_report(session: Session, ctx: WriteContext, signer: Signer, reports_dir: Path, since: datetime,
                     until: datetime) -> dict[str, Any]:
    def write(path: Path) -> None:
        book = Book()
        key_value_sheet(book, "Summary", [
            ("Report format", REPORT_FORMAT), ("Report", "decision log"), ("From (UTC)", since), ("Until (UTC)", until),
            ("Generated at (UTC)", ctx.now), ("Generated by", ctx.actor), *signing_rows(signer)])
        sheet = book.sheet("Decisions", [("Decision", 18), ("Time (UTC)", 19), ("Caller", 24), ("Actor", 28),
                                              ("Action", 14), ("Resource", 30), ("Allowed", 8), ("Policy", 18),
                                              ("Revision", 10), ("Latency (µs)", 12), ("Grants", 20)])
        for d in session.scalars(select(Decision).where(Decision.decided_at >= since, Decision.decided_at < until)
                                 .order_by(Decision.decided_at, Decision.id).execution_options(yield_per=5000)):
            sheet.append([d.id, d.decided_at, d.caller, d.actor, d.action, d.resource, "yes" if d.allowed else "no",
                          d.policy_version, d.revision, d.latency_us, d.grant_ids or []])
        book.save(path)

    stem = f"decisions-{since:%Y%m%d}-{until:%Y%m%d}"
    name, version = _publish(reports_dir, stem, write)
    return _record(session, ctx, signer, reports_dir, name, version, kind="decisions", campaign_id=None,
                   stage="ad_hoc", parameters={"since": since.isoformat(), "until": until.isoformat()})


def get_report(session: Session, report_id: int) -> Report:
    return get_or_404(session, Report, report_id, "report")


def list_reports(session: Session, campaign: int | None = None) -> list[dict[str, Any]]:
    query = select(Report).order_by(Report.id)
    if campaign is not None:
        query = query.where(Report.campaign_id == campaign)
    return [report_state(r) for r in session.scalars(query)]


def signing_keys(session: Session) -> list[dict[str, Any]]:
    return [{"key_id": k.key_id, "algorithm": "Ed25519", "public_key": k.public_key_pem,
             "fingerprint": fingerprint(load_public_key(k.public_key_pem)),
             "first_used_at": as_utc(k.first_used_at).isoformat()}
            for k in session.scalars(select(SigningKey).order_by(SigningKey.first_used_at))]


def published_keys(session: Session, signer: Signer) -> list[dict[str, Any]]:
    """Every key that has signed, and the current one even before it has signed anything."""
    keys = signing_keys(session)
    if signer.key_id not in {k["key_id"] for k in keys}:
        keys.append({"key_id": signer.key_id, "algorithm": "Ed25519", "public_key": signer.public_key_pem,
                     "fingerprint": signer.fingerprint, "first_used_at": None})
    return keys


# -- serving stored reports ---------------------------------------------------------------------------

DOWNLOADS = {"workbook": "", "signature": ".sig.json", "raw_signature": ".sig"}


class StoredReportChanged(Conflict):
    """A stored file no longer matches the report's record: it is not served."""

    code = "report_file_changed"


@dataclass
class Download:
    """What is sent for a download, checked first: a private copy, so the bytes sent are the bytes checked."""

    file: IO[bytes]
    name: str
    sha256: str
    size: int
    made_raw_signature: bytes | None = field(default=None, repr=False)


def open_download(reports_dir: Path, session: Session, signer: Signer, report: Report, what: str) -> Download:
    """The workbook, its signature document or its raw signature, once checked against the record."""
    name = report.file_name + DOWNLOADS[what]
    if what == "workbook":
        return _copy_workbook(reports_dir, report)
    if what == "signature":
        return _checked_signature_document(reports_dir, session, report)
    if report.raw_signature is not None:
        return _in_memory(name, report.raw_signature)
    return _raw_signature_on_demand(reports_dir, signer, report)


def _in_memory(name: str, data: bytes, made: bytes | None = None) -> Download:
    return Download(io.BytesIO(data), name, hashlib.sha256(data).hexdigest(), len(data), made)


def _copy_workbook(reports_dir: Path, report: Report) -> Download:
    path = store_path(reports_dir, report.file_name)
    copy = tempfile.TemporaryFile()
    digest, size = hashlib.sha256(), 0
    try:
        with path.open("rb") as stored:
            for block in iter(lambda: stored.read(1 << 20), b""):
                digest.update(block)
                size += len(block)
                copy.write(block)
    except FileNotFoundError:
        copy.close()
        raise _changed(report, "workbook", None, f"report {report.id}'s workbook {report.file_name} is missing "
                                                 "from the report store") from None
    except BaseException:
        copy.close()
        raise
    if digest.hexdigest() != report.sha256:
        copy.close()
        raise _changed(report, "workbook", digest.hexdigest(),
                       f"report {report.id}'s stored workbook was changed: its SHA-256 is {digest.hexdigest()}, "
                       f"the record says {report.sha256}; it is not served")
    copy.seek(0)
    return Download(copy, report.file_name, report.sha256, size)


def _checked_signature_document(reports_dir: Path, session: Session, report: Report) -> Download:
    """The stored signature file, served only while it still signs the recorded hash with the recorded key."""
    name = report.file_name + DOWNLOADS["signature"]
    try:
        data = store_path(reports_dir, name).read_bytes()
    except FileNotFoundError:
        raise _changed(report, "signature", None, f"report {report.id}'s signature file {name} is missing from "
                                                  "the report store") from None
    actual = hashlib.sha256(data).hexdigest()
    key = session.get(SigningKey, report.key_id)
    try:
        claims, signature, _ = parse_document(data)
        if (claims["sha256"], claims["key_id"], claims["file"]) != (report.sha256, report.key_id, report.file_name):
            raise ValueError("its claims are not the record's")
        load_public_key(key.public_key_pem).verify(signature, signed_bytes(claims))
    except (ValueError, InvalidSignature) as exc:
        why = str(exc) or "its signature does not verify"
        raise _changed(report, "signature", actual, f"report {report.id}'s stored signature file was changed "
                                                    f"({why}); it is not served") from None
    return _in_memory(name, data)


def _raw_signature_on_demand(reports_dir: Path, signer: Signer, report: Report) -> Download:
    """A report stored before raw signatures were made gets one now, but only where that claims nothing new:
    its workbook still hashes to the recorded SHA-256, which the same key already signed. Ed25519 is
    deterministic, so the signature is byte for byte the one that would have been made with the report."""
    if report.key_id != signer.key_id:
        raise NotFound(f"report {report.id} was stored before raw signatures were made, by key {report.key_id}, "
                       f"which this service no longer holds; verify it with its signature file "
                       f"({report.file_name}.sig.json)", field="id", code="raw_signature_unavailable")
    workbook = _copy_workbook(reports_dir, report)
    with workbook.file:
        signature = signer.private_key.sign(workbook.file.read())
    return _in_memory(report.file_name + DOWNLOADS["raw_signature"], signature, made=signature)


def _changed(report: Report, what: str, actual: str | None, message: str) -> StoredReportChanged:
    return StoredReportChanged(message, field="id", report=report.id, file=report.file_name + DOWNLOADS[what],
                               what=what, recorded_sha256=report.sha256 if what == "workbook" else None,
                               actual_sha256=actual)


def record_download(session: Session, ctx: WriteContext, report_id: int, what: str, download: Download) -> None:
    """The download's audit event, with the hash of the bytes sent (and a raw signature made on demand)."""
    report = get_report(session, report_id)
    if download.made_raw_signature is not None:
        session.refresh(report)  # another download may have stored it since this one read the row
    if download.made_raw_signature is not None and report.raw_signature is None:
        report.raw_signature = download.made_raw_signature
        session.flush()
        append_event(session, ctx, "report.raw_signature_made", f"report:{report.id}", None,
                     {"file": report.file_name, "sha256": report.sha256, "key_id": report.key_id})
    append_event(session, ctx, "report.downloaded", f"report:{report.id}", None,
                 {"file": download.name, "what": what, "sha256": download.sha256, "size": download.size})


def record_refusal(session: Session, ctx: WriteContext, refused: StoredReportChanged) -> None:
    append_event(session, ctx, "report.refused", f"report:{refused.details['report']}", None,
                 {"code": refused.code, "message": refused.message, **refused.details})

