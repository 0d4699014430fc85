"""Directory service functions: take a session, change rows, flush, never commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from ..audit import WriteContext, append_event, append_events, lock_state
from ..authz.declarations import Declarations
from ..clock import as_utc
from ..db import among, get_or_404, key_batches
from ..errors import ApiError, Conflict
from ..models import DirectoryState, Grant, GroupMembership, Principal, Resource, SourceSync
from ..pagination import Page, paginate
from ..revisions import new_revision
from . import holds
from .planner import Change, Plan, Planner, RowError, grant_identity, grant_state, principal_state, resource_state
from .schemas import GrantBody, GrantRow, ImportPayload, PrincipalBody, PrincipalRow, ResourceBody, ResourceRow


class InvalidRows(ApiError):
    """Some rows are invalid; nothing was written. ``errors`` lists every one."""

    status = 422
    code = "invalid_rows"

    def __init__(self, errors: list[RowError], *, single: bool = False) -> None:
        first = errors[0]
        if single:
            # A single-object write reports its first problem in the plain shape.
            super().__init__(first.message, field=first.field, code=first.code,
                             errors=[e.to_dict() for e in errors])
        else:
            super().__init__(f"{len(errors)} invalid row(s); nothing was written", field=first.section,
                             errors=[e.to_dict() for e in errors])


def current_revision(session: Session) -> int:
    return session.scalar(select(DirectoryState.revision).where(DirectoryState.id == 1)) or 0


# -- writing ------------------------------------------------------------------------------------

def apply_plan(session: Session, ctx: WriteContext, plan: Plan) -> int:
    """Write the plan's changes, one audit event each, and raise the revision once."""
    state = lock_state(session)
    if plan.empty:
        if plan.held:
            append_events(session, ctx, _held_events(plan), state=state)
        return state.revision
    _apply_principals(session, plan.principals, ctx.now)
    _apply_resources(session, plan.resources, ctx.now)
    _apply_grants(session, ctx, plan)
    changed: list[tuple[str, object]] = [("principal", c.key) for c in plan.principals]
    changed += [("group", c.key) for c in plan.principals if c.key.startswith("group:")]
    changed += [("resource", c.key) for c in plan.resources]
    changed += [("grant", (c.after or c.before or {})["id"]) for c in plan.grants]
    new_revision(session, ctx, state, changed)
    session.flush()
    events = [(f"{section}.{'created' if change.kind == 'added' else 'updated'}", change.key, change.before,
               change.after)
              for section, changes in (("principal", plan.principals), ("resource", plan.resources))
              for change in changes]
    events += [({"added": "grant.created", "changed": "grant.updated", "removed": "grant.deleted"}[change.kind],
                f"grant:{(change.after or change.before or {}).get('id')}", change.before, change.after)
               for change in plan.grants]
    events += _held_events(plan)
    append_events(session, ctx, events, state=state)
    return state.revision


def _held_events(plan: Plan) -> list[tuple[str, str, None, dict[str, Any]]]:
    """Each row a revocation hold kept out, on the record."""
    return [("membership.held" if row["role"] == "member" and row["resource"].startswith("group:") else "grant.held",
             f"hold:{row['hold']['id']}", None, row) for row in plan.held]


def _apply_principals(session: Session, changes: list[Change], now: datetime) -> None:
    rows: dict[str, Principal] = {}
    for change in changes:
        after = change.after or {}
        row = session.get(Principal, change.key)
        if row is None:
            row = Principal(key=change.key, kind=after["kind"], created_at=now, status="active")
            session.add(row)
        rows[change.key] = row
        row.name = after.get("name")
        row.email = after.get("email")
        row.department = after.get("department")
        row.attributes = after.get("attributes") or {}
        row.status = after.get("status") or "active"
        row.last_seen_at = _parse_time(after.get("last_seen_at"))
        row.updated_at = now
        row.manager_key = None  # set below, once every principal of the batch exists
    session.flush()
    for change in changes:
        after = change.after or {}
        rows[change.key].manager_key = after.get("manager")
        if after.get("kind") == "group":
            session.execute(delete(GroupMembership).where(GroupMembership.group_key == change.key))
            session.add_all(GroupMembership(group_key=change.key, member_key=m) for m in after["members"])
    session.flush()


def _apply_resources(session: Session, changes: list[Change], now: datetime) -> None:
    # Parents before children, so foreign keys hold at every statement.
    incoming = {c.key: c for c in changes}

    def depth(key: str) -> int:
        parent = (incoming[key].after or {}).get("parent")
        return 0 if parent not in incoming else 1 + depth(parent)

    for change in sorted(changes, key=lambda c: depth(c.key)):
        after = change.after or {}
        row = session.get(Resource, change.key)
        if row is None:
            row = Resource(key=change.key, type=after["type"], created_at=now)
            session.add(row)
        row.name = after.get("name")
        row.parent_key = after.get("parent")
        row.owner_key = after.get("owner")
        row.attributes = after.get("attributes") or {}
        row.updated_at = now
        session.flush()


def _apply_grants(session: Session, ctx: WriteContext, plan: Plan) -> None:
    removed = [plan.grant_rows[change.key] for change in plan.grants if change.kind == "removed"]
    for row in removed:  # one statement (a thousand keys each, but on PostgreSQL), not one per grant
        session.expunge(row)
    for batch in key_batches(session, [row.id for row in removed]):
        session.execute(delete(Grant).where(among(session, Grant.id, batch))
                        .execution_options(synchronize_session=False))
    for change in plan.grants:
        if change.kind == "changed":
            after, row = change.after or {}, plan.grant_rows[change.key]
            row.granted_by = after["granted_by"]
            row.granted_at = _parse_time(after["granted_at"]) or ctx.now
            row.reason = after["reason"]
            row.expires_at = _parse_time(after["expires_at"])
    session.flush()
    added = {change.key: change for change in plan.grants if change.kind == "added"}
    rows = [{"principal_key": after["principal"], "role": after["role"], "resource_key": after["resource"],
             "source": after["source"], "granted_by": after["granted_by"],
             "granted_at": _parse_time(after["granted_at"]) or ctx.now, "reason": after["reason"],
             "expires_at": _parse_time(after["expires_at"])}
            for after in (change.after or {} for change in added.values())]
    for start in range(0, len(rows), 1000):  # a few multi-row statements, not one per grant
        inserted = session.execute(insert(Grant).returning(Grant.id, Grant.principal_key, Grant.role,
                                                           Grant.resource_key), rows[start:start + 1000])
        for grant_id, principal, role, resource in inserted:  # the audit event names the new id
            change = added[grant_identity(principal, role, resource)]
            change.after = {**(change.after or {}), "id": grant_id}


def _parse_time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return as_utc(datetime.fromisoformat(value))


def _plan(session: Session, ctx: WriteContext, declarations: Declarations, *, principals=(), resources=(),
          grants=(), source: str = "manual", replace: bool = False, single: bool = False) -> Plan:
    planner = Planner(session, declarations, ctx.now, ctx.actor)
    plan = planner.plan(list(principals), list(resources), list(grants), source=source, replace=replace)
    if planner.errors:
        raise InvalidRows(planner.errors, single=single)
    return plan


def put_principal(session: Session, ctx: WriteContext, declarations: Declarations, key: str,
                  body: PrincipalBody) -> tuple[dict[str, Any], int, bool]:
    row = PrincipalRow(id=key, **{name: getattr(body, name) for name in body.model_fields_set})
    plan = _plan(session, ctx, declarations, principals=[row], single=True)
    for held in plan.held:  # a single write is refused rather than applied in part
        holds.refuse_if_held(session, ctx.now, held["principal"], held["role"], held["resource"])
    created = bool(plan.principals and plan.principals[0].kind == "added")
    revision = apply_plan(session, ctx, plan)
    return get_principal(session, key), revision, created


def put_resource(session: Session, ctx: WriteContext, declarations: Declarations, key: str,
                 body: ResourceBody) -> tuple[dict[str, Any], int, bool]:
    row = ResourceRow(id=key, **{name: getattr(body, name) for name in body.model_fields_set})
    plan = _plan(session, ctx, declarations, resources=[row], single=True)
    created = bool(plan.resources and plan.resources[0].kind == "added")
    revision = apply_plan(session, ctx, plan)
    return get_resource(session, key), revision, created


def create_grant(session: Session, ctx: WriteContext, declarations: Declarations,
                 body: GrantBody) -> tuple[dict[str, Any], int]:
    lock_state(session)  # before the duplicate check, so two identical requests cannot both pass it
    existing = session.scalar(select(Grant).where(
        Grant.principal_key == body.principal, Grant.role == body.role, Grant.resource_key == body.resource))
    if existing is not None:
        raise Conflict(f"{body.principal} already holds {body.role} on {body.resource} (grant {existing.id})",
                       code="duplicate_grant", field="role", grant_id=existing.id)
    holds.refuse_if_held(session, ctx.now, body.principal, body.role, body.resource)
    row = GrantRow(**{name: getattr(body, name) for name in body.model_fields_set if name != "source"})
    plan = _plan(session, ctx, declarations, grants=[row], source=body.source, single=True)
    revision = apply_plan(session, ctx, plan)
    grant_id = plan.grants[0].after["id"]  # type: ignore[index]
    return grant_state(session.get(Grant, grant_id)), revision  # type: ignore[arg-type]


def delete_grant(session: Session, ctx: WriteContext, grant_id: int) -> int:
    state = lock_state(session)
    grant = get_or_404(session, Grant, grant_id, "grant")
    identity = grant_identity(grant.principal_key, grant.role, grant.resource_key)
    plan = Plan(grants=[Change("removed", identity, grant_state(grant), None)], grant_rows={identity: grant})
    apply_plan(session, ctx, plan)
    return state.revision


def record_sync(session: Session, source: str, mode: str, now: datetime, revision: int) -> None:
    sync = session.get(SourceSync, source)
    if sync is None:
        sync = SourceSync(source=source)
        session.add(sync)
    sync.last_sync_at = now
    sync.last_revision = revision
    sync.mode = mode
    if mode == "replace":
        sync.last_full_sync_at = now


# -- reading ------------------------------------------------------------------------------------

def get_principal(session: Session, key: str) -> dict[str, Any]:
    principal = get_or_404(session, Principal, key, "principal", field="principal")
    members = None
    if principal.kind == "group":
        members = session.scalars(select(GroupMembership.member_key).where(GroupMembership.group_key == key)).all()
    state = principal_state(principal, members)
    state["groups"] = sorted(session.scalars(
        select(GroupMembership.group_key).where(GroupMembership.member_key == key)).all())
    return state


def list_principals(session: Session, *, kind: str | None, status: str | None, cursor: str | None,
                    limit: int) -> Page:
    query = select(Principal)
    if kind:
        query = query.where(Principal.kind == kind)
    if status:
        query = query.where(Principal.status == status)
    page = paginate(session, query, Principal.key, cursor, limit)
    groups = [p.key for p in page.items if p.kind == "group"]
    members: dict[str, list[str]] = {g: [] for g in groups}
    if groups:
        for group, member in session.execute(select(GroupMembership.group_key, GroupMembership.member_key)
                                             .where(GroupMembership.group_key.in_(groups))):
            members[group].append(member)
    return page.map(lambda p: principal_state(p, members.get(p.key)))


def get_resource(session: Session, key: str) -> dict[str, Any]:
    return resource_state(get_or_404(session, Resource, key, "resource", field="resource"))


def list_resources(session: Session, *, type_: str | None, parent: str | None, cursor: str | None,
                   limit: int) -> Page:
    query = select(Resource)
    if type_:
        query = query.where(Resource.type == type_)
    if parent:
        query = query.where(Resource.parent_key == parent)
    return paginate(session, query, Resource.key, cursor, limit).map(resource_state)


def get_grant(session: Session, grant_id: int) -> dict[str, Any]:
    return grant_state(get_or_404(session, Grant, grant_id, "grant"))


def list_grants(session: Session, *, principal: str | None, resource: str | None, role: str | None,
                source: str | None, cursor: str | None, limit: int) -> Page:
    query = select(Grant)
    for column, value in ((Grant.principal_key, principal), (Grant.resource_key, resource),
                          (Grant.role, role), (Grant.source, source)):
        if value:
            query = query.where(column == value)
    return paginate(session, query, Grant.id, cursor, limit).map(grant_state)


def directory_status(session: Session, now: datetime) -> dict[str, Any]:
    counts = {
        "principals": dict(session.execute(select(Principal.kind, func.count()).group_by(Principal.kind)).all()),
        "resources": dict(session.execute(select(Resource.type, func.count()).group_by(Resource.type)).all()),
        "grants": session.scalar(select(func.count()).select_from(Grant)) or 0,
        "expired_grants": session.scalar(select(func.count()).select_from(Grant)
                                         .where(Grant.expires_at.is_not(None), Grant.expires_at <= now)) or 0,
        "active_holds": holds.count_active(session, now),
    }
    sources = []
    for sync in session.scalars(select(SourceSync).order_by(SourceSync.source)):
        last = as_utc(sync.last_sync_at)
        full = sync.last_full_sync_at and as_utc(sync.last_full_sync_at)
        sources.append({
            "source": sync.source, "last_sync_at": last.isoformat(), "last_mode": sync.mode,
            "age_seconds": int((now - last).total_seconds()),
            "last_full_sync_at": full and full.isoformat(),
            "full_sync_age_seconds": full and int((now - full).total_seconds()),
            "revision": sync.last_revision,
        })
    return {"revision": current_revision(session), "counts": counts, "sources": sources}
