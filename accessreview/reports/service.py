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
from collections import defaultdict, deque, namedtuple
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Callable

from cryptography.exceptions import InvalidSignature
from flask import current_app, has_app_context
from sqlalchemy import ColumnElement, Engine, Text, and_, cast, func, or_, select
from sqlalchemy.orm import Session

from ..audit import STATE_ROW_ID, WriteContext, append_event, canonical_json, event_text
from ..authz.engine import Snapshot
from ..campaigns.measures import OVERDUE_DEFINITION, campaign_measures, decided_by_hand, is_overdue
from ..campaigns.population import PopulationHash, directory_as_it_stands, scope_candidates
from ..campaigns.remediation import outcome_words
from ..clock import as_utc
from ..db import get_or_404
from ..directory import holds
from ..errors import Conflict, NotFound
from ..models import (AuditEvent, Campaign, Decision, DirectoryState, Hold, Report, ReviewEvent, ReviewItem,
                      SigningKey)
from .signing import Ed25519PrivateKey, public_pem, sign
from .verify_report import STAGES, fingerprint, key_id, load_public_key, parse_document, signed_bytes
from .workbook import MAX_CELL_CHARS, MAX_ROWS, Book, Sheet, joined, key_value_sheet, summary_sheet

REPORT_FORMAT = "accessreview-report/1"
ITEM_COLUMNS = [
    ("Item", 8), ("Principal", 22), ("Principal name", 18), ("Email", 24), ("Department", 14),
    ("Principal status", 10), ("Kind", 11), ("Grant", 9), ("Role", 12), ("Resource type", 12), ("Resource", 24),
    ("Resource name", 20), ("Resource owner", 20), ("Group members", 30), ("Effective permissions", 32),
    ("Granted by", 20), ("Granted at (UTC)", 18), ("Reason", 24), ("Expires at (UTC)", 18), ("Last used (UTC)", 18),
    ("Recommendation", 14), ("Recommendation confidence", 14), ("Why", 32), ("Reviewer of record", 20), ("Assigned at close", 20),
    ("Assignment note", 30), ("Handed on", 36), ("Decided by", 20), ("Signer decided", 9),
    ("Decision", 10), ("Justification", 30), ("Decided at (UTC)", 18), ("Decision changes", 36), ("Automated", 10),
    ("Overdue", 9),
    ("Automated rule", 22), ("Override", 9), ("Escalated at (UTC)", 18), ("Remediation", 12), ("Remediation outcome", 30),
    ("Applied at (UTC)", 18), ("Applied by", 40), ("Verified at (UTC)", 18), ("Remediation detail", 40),
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
                                   signed_at=ctx.now, kind=kind, stage=stage)
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
    """The campaign's workbook at ``stage``; after remediation, with the listing of the access left in
    the campaign's scope, read from the directory as it stands."""
    stem = campaign_report_stem(campaign, stage, ctx.now)

    def write(path: Path) -> None:
        book = Book()
        summary = summary_sheet(book)  # the first sheet; filled last, as it counts what the listings hold
        _items_and_exceptions(session, book, campaign, max_rows, ctx.now).write(book)  # then Reviewers
        _audit_trail(session, book, campaign)
        _how_to_verify(book, signer)
        if campaign.status == "signed_off":
            _holds_and_follow_up(session, book, campaign, ctx.now)
        scope_after = None
        if stage != "sign_off":
            _remaining_access(session, book, campaign, max_rows)
            scope_after = _access_after(book, session.get_bind(), campaign, max_rows)
        _summary(session, summary, campaign, ctx, signer, stage, scope_after)
        book.save(path)

    name, version = _publish(reports_dir, stem, write, partial)
    return _record(session, ctx, signer, reports_dir, name, version, kind="campaign", campaign_id=campaign.id,
                   stage=stage, parameters={"campaign": campaign.id, "stage": stage})


def _summary(session: Session, sheet: Sheet, campaign: Campaign, ctx: WriteContext, signer: Signer, stage: str,
             scope_after: ScopeAfter | None) -> None:
    measures = campaign_measures(session, campaign, ctx.now)
    settings = campaign.settings
    freshness = campaign.freshness or {}
    rows: list[tuple[str, Any]] = [
        ("Report format", REPORT_FORMAT),
        ("Stage", f"{stage}: {STAGES.get(stage, stage)} (also in the signed claims)"),
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
        ("Population: how to recompute", "see the sheet 'How to verify'"),
        *_reconciliation_rows(campaign),
        ("Policy version", campaign.policy_version),
    ]
    for source, info in sorted((freshness.get("sources") or {}).items()):
        rows.append((f"Data freshness at launch: {source}",
                     f"last sync {info['last_sync_at']} ({info['age_hours']} h before launch, {info['mode']})"))
    if freshness.get("stale_sources"):
        rows.append(("Stale sources at launch (flagged)", ", ".join(freshness["stale_sources"])))
    rows += [
        *_close_rows(session, campaign),
        ("Reviewers", measures["reviewers"]), ("Completion (%)", measures["decided_percent"]),
        ("Kept (all)", measures["kept_total"]), ("Kept by hand", measures["keep"]),
        ("Kept by the no-response rule", measures["automated_keep"]),
        ("Revoked (all)", measures["revoked_total"]), ("Revoked by hand", measures["revoke"]),
        ("Revoked by the no-response rule", measures["automated_revoke"]),
        ("Automated decisions (no-response rule)", measures["automated"]),
        ("Overdue", measures["overdue"]), ("Overdue: definition", OVERDUE_DEFINITION),
        ("Escalated", measures["escalated"]), ("Overridden", measures["overridden"]),
        *_recommendation_rows(session, campaign),
        ("Signed off by", campaign.signed_off_by or ""),
        *_signer_rows(session, campaign),
        ("Signed off at (UTC)", campaign.signed_off_at and as_utc(campaign.signed_off_at)),
        ("Sign-off statement", campaign.sign_off_statement or ""),
        ("Remediation", json.dumps(measures["remediation"], sort_keys=True)),
        ("Access removed (verified)", measures["access_removed"]),
        *_remediation_rows(session, campaign, stage),
        *_scope_after_rows(campaign, scope_after),
        ("Generated at (UTC)", ctx.now), ("Generated by", ctx.actor), *signing_rows(signer),
        *chain_head_rows(session),
    ]
    for row in rows:
        sheet.append(row)


def _remediation_rows(session: Session, campaign: Campaign, stage: str) -> list[tuple[str, Any]]:
    """Each revocation's outcome, counted by kind, and who applied them on whose sign-off."""
    if not campaign.signed_off_by:
        return []
    counts: dict[str, int] = defaultdict(int)
    for state, applied, count in session.execute(
            select(ReviewItem.remediation_state, ReviewItem.applied_at.is_not(None), func.count())
            .where(ReviewItem.campaign_id == campaign.id, ReviewItem.decision == "revoke")
            .group_by(ReviewItem.remediation_state, ReviewItem.applied_at.is_not(None))):
        counts[_OUTCOME_KIND.get((state, bool(applied)), state or "none")] += int(count)
    rows: list[tuple[str, Any]] = [(f"Remediation outcome: {words}", counts.get(kind, 0))
                                   for kind, words in _OUTCOME_COUNTED]
    if stage != "sign_off":
        rows.append(("Remediation applied by", _applied_by(session, campaign).summary))
    return rows


# (state, applied) -> kind of outcome, as counted in the Summary
_OUTCOME_KIND = {("pending", False): "pending", ("applied", True): "applied", ("verified", True): "removed",
                 ("failed", True): "finding", ("failed", False): "error"}
_OUTCOME_COUNTED = [("removed", "removed"), ("finding", "removed, access remains via another grant (finding)"),
                    ("error", "not removed (error)"), ("applied", "removed, not yet verified"),
                    ("pending", "not removed yet")]


@dataclass
class AppliedBy:
    """Who applied a campaign's revocations, from the items' own events, and the sign-off they carried out."""

    summary: str
    single: str | None  # the one text for every applied item, when one actor applied them all
    by_item: dict[int, str]


def _applied_by(session: Session, campaign: Campaign) -> AppliedBy:
    from ..campaigns.remediation import sign_off_reference

    ref = sign_off_reference(session, campaign)
    carrying = (f"carrying out the sign-off by {ref['signed_off_by']} at {ref['signed_off_at']} "
                f"(audit event {ref['event']}, seq {ref['event_seq']})")
    revoked = (ReviewEvent.kind == "revoked", ReviewItem.campaign_id == campaign.id)
    actors = dict(session.execute(select(ReviewEvent.actor, func.count()).join(
        ReviewItem, ReviewItem.id == ReviewEvent.item_id).where(*revoked).group_by(ReviewEvent.actor)).all())
    if not actors:
        return AppliedBy(f"nothing applied yet; remediation carries out the sign-off by {ref['signed_off_by']}",
                         None, {})
    summary = "; ".join(f"{actor} ({count} items)" for actor, count in sorted(actors.items())) + f", {carrying}"
    if len(actors) == 1:
        return AppliedBy(summary, f"{next(iter(actors))}, {carrying}", {})
    by_item = {item: f"{actor}, {carrying}" for item, actor in session.execute(
        select(ReviewEvent.item_id, ReviewEvent.actor).join(ReviewItem, ReviewItem.id == ReviewEvent.item_id)
        .where(*revoked).order_by(ReviewEvent.id))}
    return AppliedBy(summary, None, by_item)


@dataclass
class ScopeAfter:
    """The access the campaign's scope covers once remediation is done, as the directory stands: how much,
    and its hash (the listing itself is written as it is read)."""

    revision: int
    count: int
    sha256: str


def _scope_after_rows(campaign: Campaign, scope_after: ScopeAfter | None) -> list[tuple[str, Any]]:
    recorded = campaign.remediation_snapshot or {}
    if scope_after is None:
        return [("Access after remediation", "not in this workbook: it is listed in the post-remediation workbook"
                 if campaign.signed_off_by else "the campaign is not signed off")]
    rows: list[tuple[str, Any]] = [
        ("Access after remediation: directory revision", scope_after.revision),
        ("Access after remediation: count", scope_after.count),
        ("Access after remediation: SHA-256", scope_after.sha256),
        ("Access after remediation: listing", "sheet 'Access after remediation' (its hash is recomputed as the "
                                              "population's: see 'How to verify')")]
    if recorded:
        same = recorded.get("hash") == scope_after.sha256
        rows.append(("Access after remediation: as recorded at remediation",
                     f"revision {recorded.get('revision')}, {recorded.get('count')} grants, SHA-256 "
                     f"{recorded.get('hash')} at {recorded.get('taken_at')}: "
                     + ("the same as this listing" if same else
                        "the directory changed between remediation and this workbook; the listing is as of "
                        f"revision {scope_after.revision}")))
    return rows


def _reconciliation_rows(campaign: Campaign) -> list[tuple[str, Any]]:
    """The directory at the launch revision against the population: what the scope took and left out."""
    counts = campaign.reconciliation
    if not counts:
        return [("Directory at launch", "not recorded (the campaign was launched before launches recorded it)")]
    rows: list[tuple[str, Any]] = [
        ("Directory at launch: grants", counts["grants_in_directory"]),
        ("Directory at launch: grants in scope", counts["grants_in_scope"]),
        ("Directory at launch: grants out of scope", counts["grants_out_of_scope"])]
    rows += [(f"Out of scope: {reason}", count) for reason, count in counts["out_of_scope_by_reason"].items()]
    rows += [("Directory at launch: group memberships", counts["memberships_in_directory"]),
             ("Directory at launch: memberships in scope", counts["memberships_in_scope"])]
    return rows


def _signer_rows(session: Session, campaign: Campaign) -> list[tuple[str, Any]]:
    """Independence: whether the person who signed off also decided items, or overrode a reviewer."""
    if not campaign.signed_off_by:
        return []
    decided, overrode = decided_by_hand(session, campaign.id, campaign.signed_off_by)
    flag = " (flagged: listed in Exceptions as 'signer decided')" if decided else ""
    return [("Signer also decided items", f"{decided}{flag}"), ("Signer overrode a reviewer", overrode)]


def _close_rows(session: Session, campaign: Campaign) -> list[tuple[str, Any]]:
    """How the campaign closed, as its audit events record it, and why undecided items got their outcome."""
    rows: list[tuple[str, Any]] = []
    closing = session.execute(select(AuditEvent.actor, AuditEvent.occurred_at, AuditEvent.after).where(
        AuditEvent.target == f"campaign:{campaign.id}", AuditEvent.action.in_(("campaign.closing", "campaign.closed")))
        .order_by(AuditEvent.seq).limit(1)).first()
    if closing is not None:
        at, due = as_utc(closing.occurred_at), as_utc(campaign.due_at)
        when = "before the due date (closed early)" if at < due else "at or after the due date"
        rows.append(("Close", f"{(closing.after or {}).get('reason')}: started by {closing.actor} at "
                              f"{at:%Y-%m-%d %H:%M:%S} UTC, {when}"))
    why = session.scalars(select(ReviewItem.justification).where(
        ReviewItem.campaign_id == campaign.id, ReviewItem.automated_rule.is_not(None)).distinct().limit(5)).all()
    if why:
        rows.append(("No-response outcome: why", "; ".join(sorted(w for w in why if w))))
    return rows


def _recommendation_rows(session: Session, campaign: Campaign) -> list[tuple[str, Any]]:
    """How far back the decision log reached, which the recommendations are read from."""
    first = session.scalar(select(func.min(Decision.decided_at)))
    retention = current_app.config.get("DECISION_RETENTION_DAYS") if has_app_context() else None
    unused_days = (campaign.settings.get("recommendation") or {}).get("unused_days")
    launched = as_utc(campaign.launched_at)
    if first is None:
        coverage = "the decision log held no decisions when this report was made"
    else:
        first = as_utc(first)
        coverage = (f"the decision log reaches back to {first:%Y-%m-%d %H:%M:%S} UTC "
                    f"({(launched - first).days} days before launch)" if first <= launched else
                    f"the decision log's oldest decision ({first:%Y-%m-%d %H:%M:%S} UTC) is after the launch")
    rows = [("Recommendations: decision log coverage",
             f"'revoke' means no allowed decision used the grant within {unused_days} days before launch; {coverage}; "
             f"decisions are kept {retention} days (DECISION_RETENTION_DAYS). A grant whose use falls outside "
             "the log reads as unused.")]
    confidence = dict(session.execute(select(ReviewItem.recommendation_confidence, func.count())
                                      .where(ReviewItem.campaign_id == campaign.id)
                                      .group_by(ReviewItem.recommendation_confidence)).all())
    complete = int(confidence.pop("complete", 0))
    rows.append(("Recommendations on complete data", complete))
    rows.append(("Recommendations on incomplete data", int(sum(confidence.values()))))
    if first is not None:
        rows.append(("Decision log: oldest decision (UTC)", first))
    if retention is not None:
        rows.append(("Decision log: retention (days)", retention))
    return rows


_ITEM_FIELDS = ("id", "frozen", "kind", "role", "effective_permissions", "last_used_at", "recommendation",
                "recommendation_reason", "recommendation_confidence", "reviewer_of_record", "reviewer", "assignment_note", "decided_by", "decision", "justification",
                "decided_at", "automated_rule", "overridden", "escalated_at", "remediation_state", "applied_at",
                "verified_at", "remediation_detail")
# A review item's row as a plain named tuple: a field of SQLAlchemy's Row costs ten times more to read by
# name, and an item's row is read some seventy times.
_ItemRow = namedtuple("_ItemRow", _ITEM_FIELDS)


REMAINING_SHEET = "Remaining access"


def _fit(text: str | None, item_id: int) -> str | None:
    """A remediation detail whole when a cell holds it; otherwise as much as fits, whole entries only, and
    where the rest is: the listing of remaining access has every entry of it."""
    if text is None or len(text) <= MAX_CELL_CHARS:
        return text
    suffix = (f" … (too long for one cell: every entry is in the sheet '{REMAINING_SHEET}', "
              f"item {item_id})")
    cut = text.rfind("; ", 0, MAX_CELL_CHARS - len(suffix))
    return text[:cut if cut > 0 else MAX_CELL_CHARS - len(suffix)] + suffix


_HANDED_ON = ("delegated", "reassigned")
_CHANGED = ("changed", "overridden")


def _item_history(session: Session, campaign: Campaign) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """Per item, its hand-ons and its changed decisions as readable text (from, to, why, who, when): few
    items have any, so only those events are read."""
    handed_on: dict[int, list[str]] = defaultdict(list)
    changes: dict[int, list[str]] = defaultdict(list)
    for item_id, at, actor, kind, detail in session.execute(
            select(ReviewEvent.item_id, ReviewEvent.occurred_at, ReviewEvent.actor, ReviewEvent.kind,
                   ReviewEvent.detail).join(ReviewItem, ReviewItem.id == ReviewEvent.item_id)
            .where(ReviewItem.campaign_id == campaign.id, ReviewEvent.kind.in_(_HANDED_ON + _CHANGED))
            .order_by(ReviewEvent.id)):
        when = f"{as_utc(at):%Y-%m-%d %H:%M} UTC"
        if kind in _HANDED_ON:
            handed_on[item_id].append(f"{kind} from {detail.get('from_reviewer')} to {detail.get('to_reviewer')} "
                                      f"by {actor} at {when}: {detail.get('reason')}")
        else:
            justification = detail.get("justification")
            changes[item_id].append(f"{kind} from {detail.get('previous')} to {detail.get('decision')} by {actor} "
                                    f"at {when}" + (f": {justification}" if justification else ""))
    return handed_on, changes


MEMBERS_SHEET = "Group members"
MEMBERS_AFTER_SHEET = "Members after remediation"
MEMBER_COLUMNS = [("Group", 26), ("Member", 72)]


class MemberLists:
    """A group's members for a listing's cell, as the hashes list them (ids, in order): joined when they fit
    in one cell (Excel holds 32,767 characters); otherwise one member a row on a sheet of their own, keyed
    as the listing's row, and the cell says where. No id is left out, so the hashes are recomputed from the
    workbook alone."""

    def __init__(self, book: Book, title: str, key: list[tuple[str, int]], max_rows: int) -> None:
        self.book, self.title, self.key, self.max_rows = book, title, key, max_rows
        self.sheet: Sheet | None = None  # made when a list first needs it

    def cell(self, key: list[Any], group: str, members: list[str]) -> str | None:
        text = ", ".join(members)
        if len(text) <= MAX_CELL_CHARS:
            return text or None
        if self.sheet is None:
            self.sheet = self.book.sheet(self.title, [*self.key, *MEMBER_COLUMNS], self.max_rows)
        for member in members:
            self.sheet.append([*key, group, member])
        return f"{len(members)} members: more than one cell holds, listed one a row in the sheet '{self.title}'"


def _items_and_exceptions(session: Session, book: Book, campaign: Campaign, max_rows: int,
                          now: datetime) -> _ReviewerTally:
    """The Items and Exceptions sheets, written side by side, row by row (nothing is held back in
    memory); returns the reviewers' tally, counted on the way."""
    items = book.sheet("Items", ITEM_COLUMNS, max_rows)
    exceptions = book.sheet("Exceptions", [("Exception", 18), ("Item", 8), ("Principal", 28), ("Role", 14),
                                        ("Resource", 30), ("Detail", 80)], max_rows)
    members = MemberLists(book, MEMBERS_SHEET, [("Item", 8), ("Grant", 9)], max_rows)
    minutes = _Remembered(lambda moment: f"{as_utc(moment):%Y-%m-%d %H:%M}")  # a rule's decisions share one
    due_minute = minutes(campaign.due_at)
    signer = campaign.signed_off_by
    handed_on, changes = _item_history(session, campaign)
    reviewers = _ReviewerTally(campaign)
    applied_by = _applied_by(session, campaign) if campaign.signed_off_by else AppliedBy("", None, {})
    # Plain rows of the columns the sheets show, through Core (the ORM's row handling would more
    # than double the read), and not the explanation chains.
    columns = [getattr(ReviewItem, name) for name in _ITEM_FIELDS]
    # Items share a few sets of effective permissions: each stored text is parsed and joined once.
    columns[_ITEM_FIELDS.index("effective_permissions")] = cast(ReviewItem.effective_permissions, Text)
    permissions = _Remembered(lambda text: joined(json.loads(text or "null") or ()))
    session.flush()
    for item in map(_ItemRow._make, session.connection().execute(
            select(*columns).where(ReviewItem.campaign_id == campaign.id).order_by(ReviewItem.id)
            .execution_options(yield_per=5000))):
        frozen = item.frozen
        late = is_overdue(campaign, now, item.decided_at)
        reviewers.add(item.reviewer_of_record, item.reviewer, item.decided_by, item.decided_at, item.automated_rule,
                      late)
        outcome = outcome_words(item.remediation_state, item.applied_at, item.remediation_detail)
        by_signer = signer is not None and item.decided_by == signer and item.automated_rule is None
        principal, resource, grant = frozen["principal"], frozen["resource"], frozen.get("grant") or {}
        effective = permissions(item.effective_permissions)
        group_members = members.cell([item.id, grant.get("id")], principal["id"],
                                     [m["id"] for m in frozen["members"]]) if frozen.get("members") else None
        items.append([
            item.id, principal["id"], principal.get("name"), principal.get("email"), principal.get("department"),
            principal.get("status"), item.kind, grant.get("id"), item.role or "member", resource["type"],
            resource["id"], resource.get("name"), resource.get("owner"), group_members,
            effective, grant.get("granted_by"),
            _time(grant.get("granted_at")), grant.get("reason"), _time(grant.get("expires_at")),
            item.last_used_at, item.recommendation, item.recommendation_confidence or "incomplete",
            item.recommendation_reason, item.reviewer_of_record,
            item.reviewer, item.assignment_note, "; ".join(handed_on.get(item.id, ())), item.decided_by,
            "yes" if by_signer else "no", item.decision, item.justification, item.decided_at,
            "; ".join(changes.get(item.id, ())), "yes" if item.automated_rule else "no", "yes" if late else "no",
            item.automated_rule, "yes" if item.overridden else "no",
            item.escalated_at, item.remediation_state, outcome,
            item.applied_at, item.applied_at and (applied_by.single or applied_by.by_item.get(item.id)),
            item.verified_at, _fit(item.remediation_detail, item.id)])
        base = [item.id, principal["id"], item.role or "member", resource["id"]]
        if late:
            exceptions.append(["overdue", *base, (f"decided {minutes(item.decided_at)}"
                                                  f"{' by the no-response rule' if item.automated_rule else ''}"
                                                  if item.decided_at is not None else "still undecided")
                               + f", due {due_minute}"])
        if item.escalated_at:
            exceptions.append(["escalated", *base, f"to {item.reviewer}"])
        if item.overridden:
            exceptions.append(["overridden", *base, f"decided by {item.decided_by}"])
        if by_signer:
            exceptions.append(["signer decided", *base, f"{signer}, who signed the campaign off, decided this item "
                                                        f"({item.decision}{', overriding' if item.overridden else ''})"])
        if (item.automated_rule is None and item.decision == "keep" and item.recommendation == "revoke"
                and not (item.justification or "").strip()):
            exceptions.append(["kept against advice", *base, f"kept by {item.decided_by} without a justification "
                                                              f"against the advice to revoke: "
                                                              f"{item.recommendation_reason}"])
        if item.remediation_state == "failed":
            exceptions.append(["access remains" if item.applied_at else "not removed", *base,
                               _fit(f"{outcome}: {item.remediation_detail}", item.id)])
        if item.assignment_note:
            exceptions.append(["reassigned", *base, f"to {item.reviewer}: {item.assignment_note}"])
        if item.automated_rule:
            exceptions.append(["automated", *base, item.automated_rule])
    return reviewers


class _Remembered:
    """``make``'s answer for each argument, made once: for values many rows repeat (a write's time, a set
    of permissions). Forgets them all when it holds ``limit``, as rows come roughly in time order."""

    def __init__(self, make: Callable[[Any], str], limit: int = 10_000) -> None:
        self.make, self.limit = make, limit
        self.made: dict[Any, str] = {}

    def __call__(self, value: Any) -> str:
        text = self.made.get(value)
        if text is None:
            if len(self.made) >= self.limit:
                self.made.clear()
            text = self.made[value] = self.make(value)
        return text


def _time(value: str | None) -> datetime | None:
    return as_utc(datetime.fromisoformat(value)) if value else None


REVIEWER_COLUMNS = [("Reviewer", 28), ("Assigned (of record)", 12), ("Assigned at close", 12),
                    ("Decided by hand", 12), ("of which assigned to others", 14),
                    ("Their items decided by others", 14), ("Their items automated", 12), ("Overdue", 10),
                    ("Median hours to decide", 14)]


class _ReviewerTally:
    """Per person: what they were assigned, and what they decided themselves (delegates and fallback
    reviewers included), with overdue counted against the reviewer of record (OVERDUE_DEFINITION);
    counted from the items as the Items sheet reads them."""

    def __init__(self, campaign: Campaign) -> None:
        self.launched = as_utc(campaign.launched_at)
        self.stats: dict[str, dict[str, Any]] = defaultdict(lambda: {
            "assigned": 0, "current": 0, "decided": 0, "for_others": 0, "by_others": 0, "automated": 0,
            "overdue": 0, "hours": []})

    def add(self, of_record: str | None, current: str | None, decided_by: str | None, decided_at: datetime | None,
            automated: str | None, overdue: bool) -> None:
        stats = self.stats
        assigned = stats[of_record or "(unassigned)"]
        assigned["assigned"] += 1
        stats[current or "(unassigned)"]["current"] += 1
        assigned["overdue"] += overdue
        if automated is not None:
            assigned["automated"] += 1
        elif decided_by is not None:
            decider = stats[decided_by]
            decider["decided"] += 1
            decider["hours"].append((as_utc(decided_at) - self.launched).total_seconds() / 3600)
            if decided_by != of_record:
                decider["for_others"] += 1
                assigned["by_others"] += 1

    def write(self, book: Book) -> None:
        sheet = book.sheet("Reviewers", REVIEWER_COLUMNS)
        for reviewer, entry in sorted(self.stats.items()):
            sheet.append([reviewer, entry["assigned"], entry["current"], entry["decided"], entry["for_others"],
                          entry["by_others"], entry["automated"], entry["overdue"],
                          round(statistics.median(entry["hours"]), 2) if entry["hours"] else None])
        sheet.append(["Overdue means", OVERDUE_DEFINITION])


AUDIT_COLUMNS = [("Event id", 38), ("Seq", 9), ("Time (UTC)", 34), ("Actor", 24), ("Action", 22), ("Target", 24),
                 ("Before", 50), ("After", 70), ("Request id", 20), ("Prev hash", 66), ("Hash", 66)]


def _audit_trail(session: Session, book: Book, campaign: Campaign) -> None:
    """The campaign's audit events with every field their hashes cover, so the sheet is checked on its own:
    each event against its hash, and each against the one before where the two are consecutive."""
    sheet = book.sheet("Audit trail", AUDIT_COLUMNS)
    # Nothing about the campaign comes before its launch began: read from there, and only its own events.
    first = session.scalar(select(func.min(AuditEvent.seq)).where(
        AuditEvent.target == f"campaign:{campaign.id}")) or 0
    session.flush()
    rows = session.connection().execute(
        select(AuditEvent.id, AuditEvent.seq, AuditEvent.occurred_at, AuditEvent.actor, AuditEvent.action,
               AuditEvent.target, cast(AuditEvent.before, Text).label("before"),
               cast(AuditEvent.after, Text).label("after"), AuditEvent.request_id, AuditEvent.prev_hash,
               AuditEvent.hash)
        .where(AuditEvent.seq >= first, _campaign_events(session, campaign.id)).order_by(AuditEvent.seq)
        .execution_options(yield_per=5000))
    times = _Remembered(lambda moment: as_utc(moment).isoformat(timespec="microseconds"))  # a write's events share one
    for event_id, seq, occurred_at, actor, action, target, before, after, request_id, prev_hash, hash_ in rows:
        at = times(occurred_at)
        before, after = before or "null", after or "null"
        # The stored states are the text the hash covers when the hash says so; else (stored in another
        # JSON form) they are parsed and written again in that form.
        if hashlib.sha256(event_text(seq, event_id, at, actor, action, target, before, after, request_id,
                                     prev_hash).encode("utf-8")).hexdigest() != hash_:
            before, after = canonical_json(json.loads(before)), canonical_json(json.loads(after))
        sheet.append([event_id, seq, at, actor, action, target, before, after, request_id, prev_hash, hash_])


def _campaign_events(session: Session, campaign_id: int) -> ColumnElement[bool]:
    """Which audit events are the campaign's: its own, its items' (review events name their campaign), the
    grants its revocations removed (their last state names the review) and its holds."""
    def field(column, *path: str) -> ColumnElement[Any]:
        if session.get_bind().dialect.name == "postgresql":  # ->> gives text: compared as text
            return column[path if len(path) > 1 else path[0]].as_string() == str(campaign_id)
        return func.json_extract(column, "$." + ".".join(path)) == campaign_id

    def targets(prefix: str) -> ColumnElement[bool]:
        return func.substr(AuditEvent.target, 1, len(prefix)) == prefix

    return or_(AuditEvent.target == f"campaign:{campaign_id}",
               and_(targets("review_item:"), field(AuditEvent.after, "campaign")),
               field(AuditEvent.before, "removed_by_review"),
               and_(targets("hold:"), or_(field(AuditEvent.after, "campaign"),
                                          field(AuditEvent.after, "hold", "campaign"))))



def chain_head_rows(session: Session) -> list[tuple[str, Any]]:
    state = session.get(DirectoryState, STATE_ROW_ID)
    return [("Audit chain head at generation: seq", state.audit_seq),
            ("Audit chain head at generation: hash", state.audit_head)]


def _holds_and_follow_up(session: Session, book: Book, campaign: Campaign, now: datetime) -> None:
    """The revocations held against the portal's sync, and what the follow-up found had come back."""
    held = book.sheet("Holds", [("Hold", 8), ("Item", 8), ("Principal", 28), ("Role", 14), ("Resource", 30),
                                ("Since (UTC)", 19), ("Until (UTC)", 19), ("State", 10), ("Lifted by", 24),
                                ("Lift justification", 50)])
    # Plain rows, a window at a time: a campaign's holds are as many as its revocations.
    for hold in session.execute(
            select(Hold.id, Hold.item_id, Hold.principal_key, Hold.role, Hold.resource_key, Hold.created_at,
                   Hold.expires_at, Hold.lifted_at, Hold.lift_until, Hold.lifted_by, Hold.lift_justification)
            .where(Hold.campaign_id == campaign.id).order_by(Hold.id).execution_options(yield_per=5000)):
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


REMAINING_COLUMNS = [("Item", 8), ("Principal", 24), ("Role", 12), ("Resource", 26), ("Outcome", 30),
                     ("Who still has it", 24), ("Permission", 12), ("On", 26), ("Through grants", 14),
                     ("Via", 60)]


def _remaining_access(session: Session, book: Book, campaign: Campaign, max_rows: int) -> None:
    """Every access a revoked item gave that remains, one row each, from the item's last verification:
    the full detail that an Items cell may be too small for."""
    sheet = book.sheet(REMAINING_SHEET, REMAINING_COLUMNS, max_rows)
    session.flush()
    rows = session.connection().execute(
        select(ReviewItem.id, ReviewItem.principal_key, ReviewItem.role, ReviewItem.kind, ReviewItem.resource_key,
               ReviewItem.applied_at, ReviewItem.remediation_detail, ReviewEvent.detail)
        .join(ReviewEvent, ReviewEvent.item_id == ReviewItem.id)
        .where(ReviewItem.campaign_id == campaign.id, ReviewItem.remediation_state == "failed",
               ReviewEvent.kind == "verify_failed")
        .order_by(ReviewItem.id, ReviewEvent.id.desc()).execution_options(yield_per=5000))
    last = None
    for row in rows:
        if row.id == last:  # an earlier verification of the same item: the latest one stands
            continue
        last = row.id
        base = [row.id, row.principal_key, row.role or "member", row.resource_key,
                outcome_words("failed", row.applied_at, row.remediation_detail)]
        remaining = (row.detail or {}).get("remaining")
        if remaining is None:  # verified before each access was recorded apart: the detail as it was written
            sheet.append([*base, None, None, None, None, _fit(row.remediation_detail, row.id)])
            continue
        for access in remaining:
            sheet.append([*base, access["actor"], access["permission"], access["resource"],
                          ", ".join(map(str, access["grants"])), access.get("via")])


ACCESS_AFTER_COLUMNS = [("Kind", 11), ("Grant", 9), ("Principal", 26), ("Role", 12), ("Resource", 28),
                        ("Expires at (UTC)", 18), ("Group members", 36), ("Via", 40)]


def _access_after(book: Book, bind: Engine, campaign: Campaign, max_rows: int) -> ScopeAfter:
    """Who has what in the campaign's scope after remediation: each grant in scope (with the members of a
    group it is granted to) and each membership the scope reviews, in the order its hash covers them.
    Each is written as it is read, and hashed, never held: a scope is as large as the directory."""
    sheet = book.sheet("Access after remediation", ACCESS_AFTER_COLUMNS, max_rows)
    members = MemberLists(book, MEMBERS_AFTER_SHEET, [("Grant", 9)], max_rows)
    digest = PopulationHash()
    with directory_as_it_stands(bind) as (index, grants):
        for candidate in scope_candidates(index, campaign.settings["scope"], grants=grants):
            digest.add(candidate)
            grant = candidate.grant
            if candidate.kind == "membership":
                via = f"membership of {candidate.resource}"
            elif candidate.principal.startswith("group:"):
                via = f"grant {grant.id} to {candidate.principal}: its {len(candidate.members)} members"
            else:
                via = f"grant {grant.id} to {candidate.principal} directly"
            sheet.append([candidate.kind, grant.id if grant else None, candidate.principal,
                          candidate.role or "member", candidate.resource, grant.expires_at if grant else None,
                          members.cell([grant.id if grant else None], candidate.principal, candidate.members), via])
    return ScopeAfter(index.revision, digest.count, digest.hexdigest(index.revision))


POPULATION_RECIPE = """import hashlib, json
from openpyxl import load_workbook
book = load_workbook("REPORT.xlsx", read_only=True)
summary = {row[0]: row[1] for row in book["Summary"].iter_rows(min_row=2, values_only=True)}
listed_apart = {}  # item -> its group's members, where one cell could not hold them
for name in [n for n in book.sheetnames if n == "Group members" or n.startswith("Group members (")]:
    for item, grant, group, member in book[name].iter_rows(min_row=2, values_only=True):
        listed_apart.setdefault(item, []).append(member)
items = []
for name in [n for n in book.sheetnames if n == "Items" or n.startswith("Items (")]:
    rows = book[name].iter_rows(values_only=True)
    header = next(rows)
    for values in rows:
        r = dict(zip(header, values))
        expires = r["Expires at (UTC)"]
        items.append((r["Item"], [r["Kind"], r["Grant"], r["Principal"],
                                  None if r["Kind"] == "membership" else r["Role"], r["Resource"],
                                  expires.isoformat() + "+00:00" if expires else None,
                                  listed_apart[r["Item"]] if r["Item"] in listed_apart else
                                  r["Group members"].split(", ") if r["Group members"] else []]))
items = [identity for _, identity in sorted(items)]  # in Item order, however the rows were sorted
canonical = json.dumps({"revision": summary["Population: directory revision"], "items": items},
                       sort_keys=True, separators=(",", ":"))
print(hashlib.sha256(canonical.encode("utf-8")).hexdigest() == summary["Population: SHA-256"])"""


AUDIT_RECIPE = """import hashlib, json
from openpyxl import load_workbook
book = load_workbook("REPORT.xlsx", read_only=True)
NAMES = {"Event id": "id", "Seq": "seq", "Time (UTC)": "occurred_at", "Actor": "actor", "Action": "action",
         "Target": "target", "Before": "before", "After": "after", "Request id": "request_id",
         "Prev hash": "prev_hash"}
previous, checked, problem = None, 0, None
for name in [n for n in book.sheetnames if n == "Audit trail" or n.startswith("Audit trail (")]:
    rows = book[name].iter_rows(values_only=True)
    header = next(rows)
    for values in rows:
        row = dict(zip(header, values))
        content = {key: row[column] if row[column] not in (None, "") else None for column, key in NAMES.items()}
        content["before"], content["after"] = json.loads(row["Before"]), json.loads(row["After"])
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        if hashlib.sha256(canonical.encode("utf-8")).hexdigest() != row["Hash"]:
            problem = problem or f"seq {row['Seq']}: its content does not match its hash (edited)"
        if previous is not None and row["Seq"] == previous["Seq"] + 1 and row["Prev hash"] != previous["Hash"]:
            problem = problem or f"seq {row['Seq']}: does not follow seq {previous['Seq']} (removed or reordered)"
        if previous is not None and row["Seq"] <= previous["Seq"]:
            problem = problem or f"seq {row['Seq']}: out of order after seq {previous['Seq']}"
        previous, checked = row, checked + 1
print(problem or f"{checked} events verified")"""


def _how_to_verify(book: Book, signer: Signer) -> None:
    """What an auditor needs to check the workbook with stock tools, and to re-perform its population."""
    key_value_sheet(book, "How to verify", [
        ("This file's signature",
         f"The whole file is signed with Ed25519 by key {signer.key_id}, whose fingerprint (SHA-256 of the raw "
         f"32-byte public key) is {signer.fingerprint}. The signature covers every byte of this file, so it is "
         "delivered beside it: REPORT.xlsx.sig (64 raw bytes, GET /v1/reports/ID/signature.bin) and "
         "REPORT.xlsx.sig.json (the signed claims: file name, SHA-256, campaign, stage, time, key)."),
        ("Trust the key",
         "Compare the fingerprint with the one the operator published out of band (`accessreview keys "
         "fingerprint`); a fingerprint read from this file alone proves nothing. The key's PEM is at "
         "GET /v1/signing-keys. Its fingerprint: openssl pkey -pubin -in KEY.pem -outform DER | tail -c 32 | "
         "sha256sum"),
        ("Verify with OpenSSL 3",
         "openssl pkeyutl -verify -pubin -inkey KEY.pem -rawin -in REPORT.xlsx -sigfile REPORT.xlsx.sig"),
        ("Verify with the standalone verifier",
         f"python verify_report.py REPORT.xlsx --fingerprint {signer.fingerprint}  (needs only the "
         "`cryptography` package)"),
        ("Population hash: what it covers",
         "Every review item, in the order of the Item column: its kind, grant id, principal, role, resource, the "
         "grant's expiry, and the members of a group grant at launch; and the directory revision."),
        ("Population hash: canonical form",
         'SHA-256 (lowercase hex) of the UTF-8 bytes of the JSON object {"items": [...], "revision": R}, keys '
         'sorted, separators "," and ":" with no spaces, non-ASCII characters escaped as \\uXXXX (Python\'s '
         "json.dumps(..., sort_keys=True, separators=(',', ':'))). R is the Summary's 'Population: directory "
         "revision'. Each item is the list [Kind, Grant (a number, or null for a membership), Principal, Role "
         "(null when Kind is membership), Resource, Expires at as ISO 8601 in UTC ('YYYY-MM-DDTHH:MM:SS+00:00', "
         "with .ffffff when it has fractional seconds; null when none), Group members (a list of the ids in "
         "that column, split at ', '; [] when empty; where the ids are more than one cell holds, the cell says "
         f"so and the sheet '{MEMBERS_SHEET}' lists them, one a row under the item's id: the list is that "
         "sheet's Member column for the item, in sheet order)]. The result is the Summary's 'Population: "
         "SHA-256'."),
        ("Population hash: recompute in Python", POPULATION_RECIPE),
        ("Access after remediation: hash",
         "The post-remediation workbook's sheet 'Access after remediation' lists, in order, every grant (and "
         "membership) the campaign's scope covers once remediation is done. Its SHA-256 (the Summary's 'Access "
         "after remediation: SHA-256') is made exactly as the population's: each row is the list [Kind, Grant, "
         "Principal, Role (null for a membership), Resource, Expires at, Group members] in the order of the "
         "sheet, and R is the Summary's 'Access after remediation: directory revision'. The recipe above "
         "recomputes it with the sheet's name in place of 'Items', the rows kept in sheet order, that "
         f"revision, and the sheet '{MEMBERS_AFTER_SHEET}' (keyed by Grant) in place of '{MEMBERS_SHEET}'."),
        ("Remediation outcomes",
         "Each revoked item ends as: 'removed' (the engine, asked afterwards, finds none of the access the item "
         "gave); 'removed, access remains via grant N (finding)' (the grant or membership is gone, but the "
         "person still has some of that access through the grants named: every one is in the sheet "
         f"'{REMAINING_SHEET}'); or 'not removed (error)' (the grant or membership is still there, or could "
         "not be removed; a retry of remediation takes it up again). Remediation is applied by the service "
         "(system:accessreview), never by a person: each removal's audit event names the sign-off it carries "
         "out (who, when, and that sign-off's audit event)."),
        ("Audit trail: what each hash covers",
         "Each event's Hash is the SHA-256 (lowercase hex) of the UTF-8 bytes of the JSON object with the keys "
         "seq, id, occurred_at, actor, action, target, before, after, request_id and prev_hash (the columns Seq, "
         "Event id, Time (UTC) as written, Actor, Action, Target, Before and After parsed as JSON, Request id, "
         "Prev hash; an empty cell is null), keys sorted, separators ',' and ':' with no spaces, non-ASCII "
         "characters as they are (Python's json.dumps(..., sort_keys=True, separators=(',', ':'), "
         "ensure_ascii=False)). Before and After are written in that same form, so each is the very text the "
         "hash covers. The first event of the whole trail has Prev hash 0 x 64."),
        ("Audit trail: links between events",
         "Every event's Prev hash is the Hash of the event whose Seq is one less. The sheet holds this "
         "campaign's events only: where two rows' Seq differ by one, the later row's Prev hash must equal the "
         "earlier row's Hash; where Seq jumps, the events in between belong to other campaigns, the directory "
         "or other reports, and are checked against the whole trail with `accessreview audit verify` (the "
         "Summary's 'Audit chain head at generation' is where that trail stood when this workbook was made)."),
        ("Audit trail: check in Python", AUDIT_RECIPE),
    ])


# -- ad-hoc evidence ----------------------------------------------------------------------------------

_AD_HOC = f"ad_hoc: {STAGES['ad_hoc']} (also in the signed claims)"


def access_report(session: Session, ctx: WriteContext, signer: Signer, reports_dir: Path, snapshot: Snapshot,
                  resources: list[str]) -> dict[str, Any]:
    """Who has what now on ``resources`` (and everything under them), with effective permissions."""
    def write(path: Path) -> None:
        book = Book()
        key_value_sheet(book, "Summary", [
            ("Report format", REPORT_FORMAT), ("Report", "current access"), ("Stage", _AD_HOC),
            ("Scope", ", ".join(resources)),
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
            ("Report format", REPORT_FORMAT), ("Report", "decision log"), ("Stage", _AD_HOC),
            ("From (UTC)", since), ("Until (UTC)", until),
            ("Generated at (UTC)", ctx.now), ("Generated by", ctx.actor), *signing_rows(signer)])
        sheet = book.sheet("Decisions", [("Decision", 18), ("Time (UTC)", 19), ("Caller", 24), ("Actor", 28),
                                              ("Action", 14), ("Resource", 30), ("Allowed", 8), ("Policy", 18),
                                              ("Revision", 10), ("Latency (µs)", 12), ("Grants", 20),
                                              ("Request properties (SHA-256)", 66)])
        for d in session.scalars(select(Decision).where(Decision.decided_at >= since, Decision.decided_at < until)
                                 .order_by(Decision.decided_at, Decision.id).execution_options(yield_per=5000)):
            sheet.append([d.id, d.decided_at, d.caller, d.actor, d.action, d.resource, "yes" if d.allowed else "no",
                          d.policy_version, d.revision, d.latency_us, d.grant_ids or [], d.properties_sha256])
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

