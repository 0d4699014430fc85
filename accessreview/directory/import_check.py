"""The validation of a large import's staged rows, a chunk at a time.

Checking 200,000 rows at once held every row, parsed, and its planned change in memory (about a
gigabyte). Here the rows are read and planned ``CHECK_CHUNK`` at a time (one job step each), and
what is kept between chunks is small: the kinds of the principals and the types of the resources
the import brings (rows may name rows of a later chunk), its groups' members (a cycle may run
through several chunks), the identity of each grant row (duplicates, and a replace's removals),
the counts, and at most ``DIFF_AT_MOST`` entries of the diff and ``ERRORS_AT_MOST`` errors.

Nothing is written until the last chunk is checked: a validation whose memory was lost (a crash, or
another runner taking the job over) starts again from the first row.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import Grant, StagedImportRow
from .planner import Change, ImportContext, Plan, Planner, RowError, diff_entry, grant_identity
from .schemas import GrantRow, PrincipalRow, ResourceRow

CHECK_CHUNK = 5000  # staged rows planned at once while validating
SECTIONS = ("principals", "resources", "grants")
ROW_MODELS = {"principals": PrincipalRow, "resources": ResourceRow, "grants": GrantRow}
KINDS = ("added", "changed", "removed")


@dataclass
class Check:
    """What a validation keeps between its chunks."""

    staging_key: str
    source: str
    replace: bool
    diff_at_most: int
    errors_at_most: int
    context: ImportContext = field(default_factory=ImportContext)
    errors: list[RowError] = field(default_factory=list)
    invalid: int = 0
    grant_rows: dict[str, int] = field(default_factory=dict)  # identity → position of its first row
    counts: dict[str, dict[str, int]] = field(
        default_factory=lambda: {section: dict.fromkeys(KINDS, 0) for section in SECTIONS})
    # (position, entry) by section and kind while the changes are few enough to list; None beyond
    diff: dict[str, dict[str, list[tuple[int, Any]]]] | None = field(
        default_factory=lambda: {section: {kind: [] for kind in KINDS} for section in SECTIONS})
    held: list[dict[str, Any]] = field(default_factory=list)
    held_count: int = 0
    removals: array = field(default_factory=lambda: array("q"))
    next_seq: int = 0
    last_seq: int = -1
    checked: int = 0

    @property
    def done(self) -> bool:
        return self.next_seq > self.last_seq

    def sorted_errors(self) -> list[RowError]:
        return sorted(self.errors, key=lambda e: (SECTIONS.index(e.section), e.index))

    def result_diff(self) -> dict[str, Any] | None:
        if self.diff is None:
            return None
        return {section: {kind: [entry for _, entry in sorted(entries, key=lambda pair: pair[0])]
                          for kind, entries in kinds.items()} for section, kinds in self.diff.items()}


def begin(session: Session, staging_key: str, source: str, replace: bool, *, diff_at_most: int,
          errors_at_most: int) -> Check:
    """A new validation: reads what every chunk must know of the principals and resources imported,
    and refuses their duplicates (which may sit in different chunks)."""
    check = Check(staging_key, source, replace, diff_at_most, errors_at_most)
    first: dict[tuple[str, str], int] = {}
    later: list[tuple[str, int, str]] = []
    rows = session.execute(select(StagedImportRow.section, StagedImportRow.position, StagedImportRow.body)
                           .where(StagedImportRow.staging_key == staging_key,
                                  StagedImportRow.section.in_(("principals", "resources")))
                           .execution_options(yield_per=CHECK_CHUNK))
    for section, position, body in rows:
        key = body.get("id")
        if not isinstance(key, str):
            continue  # the row's own check reports it
        kind = key.split(":", 1)[0]
        if section == "principals":
            check.context.principal_kinds[key] = kind
            if kind == "group":
                check.context.group_members[key] = set(body.get("members") or ())
        else:
            check.context.resource_types[key] = kind
        seen = first.get((section, key))
        if seen is None or position < seen:
            if seen is not None:
                later.append((section, seen, key))
            first[(section, key)] = position
        else:
            later.append((section, position, key))
    for section, position, key in later:
        _error(check, RowError(section, position, "id", "duplicate_row",
                               f"{key} appears twice (first at index {first[(section, key)]})"))
    check.last_seq = session.scalar(select(func.max(StagedImportRow.seq))
                                    .where(StagedImportRow.staging_key == staging_key)) or -1
    return check


def check_chunk(session: Session, planner: Planner, check: Check) -> None:
    """Plan the next chunk of staged rows against the directory as it stands, keeping only its sums."""
    staged = session.execute(select(StagedImportRow.section, StagedImportRow.position, StagedImportRow.body)
                             .where(StagedImportRow.staging_key == check.staging_key,
                                    StagedImportRow.seq >= check.next_seq,
                                    StagedImportRow.seq < check.next_seq + CHECK_CHUNK)
                             .order_by(StagedImportRow.seq)).all()
    check.next_seq += CHECK_CHUNK
    check.checked += len(staged)
    rows: dict[str, list[Any]] = {section: [] for section in SECTIONS}
    positions: dict[str, list[int]] = {section: [] for section in SECTIONS}
    for section, position, body in staged:
        row = ROW_MODELS[section].model_validate(body)
        if section == "grants" and not _first_grant(check, row, position):
            continue
        rows[section].append(row)
        positions[section].append(position)
    planner.errors = []
    plan = planner.plan(rows["principals"], rows["resources"], rows["grants"], source=check.source,
                        context=check.context)
    for e in planner.errors:
        _error(check, RowError(e.section, positions[e.section][e.index], e.field, e.code, e.message))
    _add(check, plan, {section: dict(zip((_key(section, row) for row in rows[section]), positions[section]))
                       for section in SECTIONS})


def find_removals(session: Session, check: Check) -> None:
    """A replace's removals: the source's grants that no row names, read as one stream of plain rows."""
    found = session.execute(select(Grant.id, Grant.principal_key, Grant.role, Grant.resource_key)
                            .where(Grant.source == check.source).execution_options(yield_per=CHECK_CHUNK))
    removed: list[tuple[str, str, str, int]] = []  # listed in the diff while the changes are few
    for grant_id, principal, role, resource in found:
        if grant_identity(principal, role, resource) not in check.grant_rows:
            check.removals.append(grant_id)
            check.counts["grants"]["removed"] += 1
            if check.diff is not None and len(removed) <= check.diff_at_most:
                removed.append((principal, role, resource, grant_id))
    check.removals = array("q", sorted(check.removals))  # removed in id order
    _bound_diff(check)
    if check.diff is not None:
        check.diff["grants"]["removed"] = [
            (grant_id, {"principal": principal, "role": role, "resource": resource, "id": grant_id})
            for principal, role, resource, grant_id in removed]


def _key(section: str, row: Any) -> str:
    return grant_identity(row.principal, row.role, row.resource) if section == "grants" else row.id


def _first_grant(check: Check, row: GrantRow, position: int) -> bool:
    identity = grant_identity(row.principal, row.role, row.resource)
    first = check.grant_rows.get(identity)
    if first is not None:
        _error(check, RowError("grants", position, None, "duplicate_row",
                               f"the same grant appears twice (first at index {first})"))
        return False
    check.grant_rows[identity] = position
    return True


def _add(check: Check, plan: Plan, positions: dict[str, dict[str, int]]) -> None:
    for section, counted in plan.counts().items():
        for kind, n in counted.items():
            check.counts[section][kind] += n
    if check.diff is not None:
        for section in SECTIONS:
            change: Change
            for change in getattr(plan, section):
                entry = diff_entry(change)
                check.diff[section][change.kind].append((positions[section].get(change.key, 0), entry))
        _bound_diff(check)
    check.held_count += len(plan.held)
    check.held.extend(plan.held[:max(0, check.diff_at_most - len(check.held))])


def _bound_diff(check: Check) -> None:
    if sum(n for kinds in check.counts.values() for n in kinds.values()) > check.diff_at_most:
        check.diff = None


def _error(check: Check, error: RowError) -> None:
    """Keep the first errors by row (all are counted): an import of bad rows cannot fill the memory."""
    check.invalid += 1
    check.errors.append(error)
    if len(check.errors) >= 2 * check.errors_at_most:
        check.errors = check.sorted_errors()[:check.errors_at_most]
