"""Validate a set of directory rows against the policy and the database, and plan the changes.

Single writes (``PUT /v1/principals/…``) and bulk imports go through the same planner, so there is
one set of rules. Planning never writes: a dry run returns the plan, a real run applies it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Sequence

from sqlalchemy import String, and_, column, select, values
from sqlalchemy.orm import Session

from ..authz.declarations import Declarations
from ..clock import as_utc
from ..models import Grant, GroupMembership, Principal, Resource
from . import holds
from .schemas import PRINCIPAL_FIELDS, GrantRow, PrincipalRow, ResourceRow

CHUNK = 500
GRANT_COLUMNS = (Grant.id, Grant.principal_key, Grant.role, Grant.resource_key, Grant.granted_by, Grant.granted_at,
                 Grant.reason, Grant.expires_at, Grant.source)
SERVICE_TYPE = "system"  # the service's own type (policies/service.polar)


def directory_types(declarations) -> list[str]:
    """The resource types the directory holds: not the service, nor the service's own objects."""
    return sorted(t.key for t in declarations.resource_types.values()
                  if t.key != SERVICE_TYPE and t.parent_type != SERVICE_TYPE)


@dataclass(frozen=True)
class RowError:
    section: str
    index: int
    field: str | None
    code: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"section": self.section, "index": self.index, "field": self.field,
                "code": self.code, "message": self.message}


@dataclass
class Change:
    kind: str  # added | changed | removed
    key: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass
class Plan:
    principals: list[Change] = field(default_factory=list)
    resources: list[Change] = field(default_factory=list)
    grants: list[Change] = field(default_factory=list)
    grant_rows: dict[str, Grant] = field(default_factory=dict)  # existing grants touched, by change key
    # rows left out because a review's revocation holds: {principal, role, resource, hold}
    held: list[dict[str, Any]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.principals or self.resources or self.grants)

    def diff(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for section in ("principals", "resources", "grants"):
            changes: list[Change] = getattr(self, section)
            out[section] = {kind: [diff_entry(c) for c in changes if c.kind == kind]
                            for kind in ("added", "changed", "removed")}
        return out

    def counts(self) -> dict[str, dict[str, int]]:
        counted = {section: {"added": 0, "changed": 0, "removed": 0} for section in ("principals", "resources", "grants")}
        for section in counted:
            for change in getattr(self, section):
                counted[section][change.kind] += 1
        return counted


def diff_entry(change: Change) -> Any:
    """How a change is listed in an import's diff."""
    if change.key.startswith("grant|"):
        row = change.after or change.before or {}
        entry = {"principal": row["principal"], "role": row["role"], "resource": row["resource"]}
        if change.before and "id" in change.before:
            entry["id"] = change.before["id"]
        return entry
    return change.key


def grant_identity(principal: str, role: str, resource: str) -> str:
    return f"grant|{principal}|{role}|{resource}"


def principal_state(p: Principal, members: Iterable[str] | None) -> dict[str, Any]:
    state: dict[str, Any] = {"id": p.key, "kind": p.kind, "name": p.name}
    if p.kind == "user":
        state.update(email=p.email, department=p.department, manager=p.manager_key, status=p.status,
                     last_seen_at=p.last_seen_at and as_utc(p.last_seen_at).isoformat(),
                     attributes=p.attributes or {})
    elif p.kind == "service":
        state.update(status=p.status, attributes=p.attributes or {})
    else:
        state["members"] = sorted(members or [])
    return state


def resource_state(r: Resource) -> dict[str, Any]:
    return {"id": r.key, "type": r.type, "name": r.name, "parent": r.parent_key, "owner": r.owner_key,
            "attributes": r.attributes or {}}


def grant_state(g: Grant | Any) -> dict[str, Any]:
    """A grant's state, from its object or a plain row of :data:`GRANT_COLUMNS`."""
    return {
        "id": g.id, "principal": g.principal_key, "role": g.role, "resource": g.resource_key,
        "granted_by": g.granted_by, "granted_at": as_utc(g.granted_at).isoformat(), "reason": g.reason,
        "expires_at": g.expires_at and as_utc(g.expires_at).isoformat(), "source": g.source,
    }


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


@dataclass
class ImportContext:
    """What the rest of an import brings, for planning it a chunk at a time: the principals' kinds and
    the resources' types it imports, and the members its groups will have. With a context, duplicate
    rows are the caller's to find (they may be in different chunks)."""

    principal_kinds: dict[str, str] = field(default_factory=dict)
    resource_types: dict[str, str] = field(default_factory=dict)
    group_members: dict[str, set[str]] = field(default_factory=dict)


class Planner:
    """Checks rows (with their indexes, for error reports) and works out what would change."""

    def __init__(self, session: Session, declarations: Declarations, now: datetime, actor: str) -> None:
        self.session = session
        self.declarations = declarations
        self.now = now
        self.actor = actor
        self.errors: list[RowError] = []

    def error(self, section: str, index: int, field_name: str | None, code: str, message: str) -> None:
        self.errors.append(RowError(section, index, field_name, code, message))

    # -- loading what the rows refer to -------------------------------------------------------

    def _load(self, model, keys: set[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for chunk in _chunks(sorted(keys)):
            found.update((row.key, row) for row in self.session.scalars(select(model).where(model.key.in_(chunk))))
        return found

    def _kinds(self, key_column, kind_column, keys: set[str]) -> dict[str, str]:
        """Only the kind (or type) of rows merely referred to: no whole row, no ORM object."""
        found: dict[str, str] = {}
        for chunk in _chunks(sorted(keys)):
            found.update(self.session.execute(select(key_column, kind_column).where(key_column.in_(chunk))).all())
        return found

    def _members_of(self, groups: set[str]) -> dict[str, set[str]]:
        members: dict[str, set[str]] = defaultdict(set)
        for chunk in _chunks(sorted(groups)):
            for group, member in self.session.execute(
                    select(GroupMembership.group_key, GroupMembership.member_key)
                    .where(GroupMembership.group_key.in_(chunk))):
                members[group].add(member)
        return members

    # -- the plan -----------------------------------------------------------------------------

    def plan(self, principals: list[PrincipalRow], resources: list[ResourceRow], grants: list[GrantRow],
             *, source: str, replace: bool = False, context: ImportContext | None = None) -> Plan:
        plan = Plan()
        existing_principals: dict[str, Principal] = self._load(Principal, {r.id for r in principals})
        existing_resources: dict[str, Resource] = self._load(Resource, {r.id for r in resources})
        imported = context or ImportContext()
        referenced_principals = {r.manager for r in principals if r.manager}
        referenced_principals |= {m for r in principals for m in (r.members or [])}
        referenced_principals |= {r.owner for r in resources if r.owner}
        referenced_principals |= {g.principal for g in grants}
        referenced_principals -= existing_principals.keys() | imported.principal_kinds.keys()
        referenced_resources = {r.parent for r in resources if r.parent} | {g.resource for g in grants}
        referenced_resources -= existing_resources.keys() | imported.resource_types.keys()

        if context is None:
            incoming_principals = self._check_duplicates("principals", [r.id for r in principals])
            self._check_duplicates("resources", [r.id for r in resources])
        else:
            incoming_principals = {r.id: index for index, r in enumerate(principals)}
        known_principals = self._kinds(Principal.key, Principal.kind, referenced_principals)
        known_principals.update((k, p.kind) for k, p in existing_principals.items())
        known_principals.update(imported.principal_kinds)
        known_principals.update({r.id: r.id.split(":", 1)[0] for r in principals})
        known_resource_types = self._kinds(Resource.key, Resource.type, referenced_resources)
        known_resource_types.update((k, r.type) for k, r in existing_resources.items())
        known_resource_types.update(imported.resource_types)
        known_resource_types.update({r.id: r.id.split(":", 1)[0] for r in resources})

        self._plan_principals(plan, principals, existing_principals, known_principals, incoming_principals,
                              imported.group_members)
        self._plan_resources(plan, resources, existing_resources, known_principals, known_resource_types)
        self._plan_grants(plan, grants, known_principals, known_resource_types, source, replace, context is None)
        return plan

    def _check_duplicates(self, section: str, keys: list[str]) -> dict[str, int]:
        seen: dict[str, int] = {}
        for index, key in enumerate(keys):
            if key in seen:
                self.error(section, index, "id", "duplicate_row", f"{key} appears twice (first at index {seen[key]})")
            else:
                seen[key] = index
        return seen

    def _plan_principals(self, plan: Plan, rows: list[PrincipalRow], existing: dict[str, Principal],
                         known: dict[str, str], incoming: dict[str, int], elsewhere: dict[str, set[str]]) -> None:
        group_rows = [r for r in rows if r.id.startswith("group:")]
        current_members = self._members_of({r.id for r in group_rows if r.id in existing})
        proposed_members: dict[str, set[str]] = {}
        for index, row in enumerate(rows):
            kind = row.id.split(":", 1)[0]
            given = {name for name in row.model_fields_set if name != "id"}
            for name in sorted(given - PRINCIPAL_FIELDS[kind]):
                self.error("principals", index, name, "unknown_field", f"a {kind} has no field {name}")
            if row.manager:
                if known.get(row.manager) != "user":
                    self.error("principals", index, "manager", "unknown_reference",
                               f"manager {row.manager} is not a known user")
                elif row.manager == row.id:
                    self.error("principals", index, "manager", "invalid_value", "a user cannot manage themself")
            for member in row.members or []:
                if member not in known:
                    self.error("principals", index, "members", "unknown_reference", f"member {member} is not a known principal")
                elif member == row.id:
                    self.error("principals", index, "members", "group_cycle", f"{row.id} cannot contain itself")
            if kind == "group":
                proposed_members[row.id] = set(row.members or [])
            before_row = existing.get(row.id)
            before = principal_state(before_row, current_members.get(row.id)) if before_row else None
            after = self._principal_after(row, kind)
            if before is None:
                plan.principals.append(Change("added", row.id, None, after))
            elif before != after:
                plan.principals.append(Change("changed", row.id, before, after))
        if proposed_members:
            self._check_group_cycles(proposed_members, incoming, elsewhere)
        self._hold_back_members(plan, current_members)

    def _hold_back_members(self, plan: Plan, current: dict[str, set[str]]) -> None:
        """A member a review removed from a group, and held out, stays out: the rest of the row applies."""
        joining = [(member, "member", change.key) for change in plan.principals if change.key.startswith("group:")
                   for member in (change.after or {}).get("members", ()) if member not in current.get(change.key, ())]
        held = holds.find_active(self.session, self.now, joining) if joining else {}
        if not held:
            return
        for change in plan.principals:
            after = change.after or {}
            kept = [m for m in after.get("members", ()) if (m, "member", change.key) not in held]
            if len(kept) != len(after.get("members", ())):
                after["members"] = kept
        for (member, role, group), hold in held.items():
            plan.held.append({"principal": member, "role": role, "resource": group, "hold": holds.summary(hold)})
        plan.principals = [c for c in plan.principals if c.before is None or c.before != c.after]

    def _principal_after(self, row: PrincipalRow, kind: str) -> dict[str, Any]:
        state: dict[str, Any] = {"id": row.id, "kind": kind, "name": row.name}
        if kind == "user":
            state.update(email=row.email, department=row.department, manager=row.manager,
                         status=row.status or "active",
                         last_seen_at=row.last_seen_at and as_utc(row.last_seen_at).isoformat(),
                         attributes=row.attributes)
        elif kind == "service":
            state.update(status=row.status or "active", attributes=row.attributes)
        else:
            state["members"] = sorted(set(row.members or []))
        return state

    def _check_group_cycles(self, proposed: dict[str, set[str]], incoming: dict[str, int],
                            elsewhere: dict[str, set[str]]) -> None:
        """Refuse a membership graph with a cycle, looking through groups already in the database and
        the groups the rest of the import (``elsewhere``) brings."""
        graph: dict[str, set[str]] = {group: members for group, members in elsewhere.items() if group not in proposed}
        frontier = {m for members in proposed.values() for m in members if m.startswith("group:")} - set(proposed)
        frontier -= set(graph)
        while frontier:
            stored = self._members_of(frontier)
            for group in frontier:
                graph[group] = stored.get(group, set())
            frontier = {m for g in frontier for m in graph[g] if m.startswith("group:")} - set(graph) - set(proposed)
        graph.update(proposed)
        for start in proposed:
            stack, seen = [start], set()
            while stack:
                for member in graph.get(stack.pop(), ()):
                    if member == start:
                        self.error("principals", incoming[start], "members", "group_cycle",
                                   f"{start} would contain itself through nested groups")
                        stack = []
                        break
                    if member.startswith("group:") and member not in seen:
                        seen.add(member)
                        stack.append(member)

    def _plan_resources(self, plan: Plan, rows: list[ResourceRow], existing: dict[str, Resource],
                        known_principals: dict[str, str], known_types: dict[str, str]) -> None:
        for index, row in enumerate(rows):
            type_key = row.id.split(":", 1)[0]
            declared = self.declarations.resource_type(type_key)
            if declared is None:
                self.error("resources", index, "id", "unknown_type",
                           f"resource type {type_key!r} is not declared by the policy")
                continue
            if declared.parent_type == SERVICE_TYPE:
                self.error("resources", index, "id", "unknown_type",
                           f"{type_key} objects belong to the service itself and are not directory resources")
                continue
            parent_type = declared.parent_type
            if parent_type and not row.parent:
                self.error("resources", index, "parent", "missing_parent",
                           f"a {type_key} needs a parent {parent_type}")
            elif row.parent and not parent_type:
                self.error("resources", index, "parent", "invalid_parent", f"a {type_key} has no parent")
            elif row.parent and row.parent not in known_types:
                self.error("resources", index, "parent", "unknown_reference", f"parent {row.parent} does not exist")
            elif row.parent and known_types[row.parent] != parent_type:
                self.error("resources", index, "parent", "invalid_parent",
                           f"the parent of a {type_key} must be a {parent_type}, not {known_types[row.parent]}")
            if row.owner and row.owner not in known_principals:
                self.error("resources", index, "owner", "unknown_reference", f"owner {row.owner} is not a known principal")
            after = {"id": row.id, "type": type_key, "name": row.name, "parent": row.parent, "owner": row.owner,
                     "attributes": row.attributes}
            before = resource_state(existing[row.id]) if row.id in existing else None
            if before is None:
                plan.resources.append(Change("added", row.id, None, after))
            elif before != after:
                plan.resources.append(Change("changed", row.id, before, after))

    def _plan_grants(self, plan: Plan, rows: list[GrantRow], known_principals: dict[str, str],
                     known_types: dict[str, str], source: str, replace: bool, check_duplicates: bool) -> None:
        identities: dict[str, int] = {}
        for index, row in enumerate(rows):
            identity = grant_identity(row.principal, row.role, row.resource)
            if identity in identities and check_duplicates:
                self.error("grants", index, None, "duplicate_row",
                           f"the same grant appears twice (first at index {identities[identity]})")
                continue
            identities[identity] = index
            if row.principal not in known_principals:
                self.error("grants", index, "principal", "unknown_reference", f"principal {row.principal} does not exist")
            if row.resource not in known_types:
                self.error("grants", index, "resource", "unknown_reference", f"resource {row.resource} does not exist")
                continue
            declared = self.declarations.resource_type(known_types[row.resource])
            if declared is None or row.role not in declared.roles:
                roles = ", ".join(declared.roles) if declared and declared.roles else "none"
                self.error("grants", index, "role", "unknown_role",
                           f"role {row.role!r} is not declared for {known_types[row.resource]} (roles: {roles})")
        existing = self._existing_grants([rows[index] for index in identities.values()])
        new_grants: list[Change] = []
        for identity, index in identities.items():
            row = rows[index]
            current = existing.get(identity)

            def given(name: str, otherwise: Any, row: GrantRow = row, current: Any = current) -> Any:
                # A field left out of the row keeps the stored value; an explicit null clears it.
                if name in row.model_fields_set:
                    return getattr(row, name)
                return getattr(current, name) if current else otherwise

            granted_at, expires_at = given("granted_at", self.now), given("expires_at", None)
            after = {
                "principal": row.principal, "role": row.role, "resource": row.resource,
                "granted_by": given("granted_by", self.actor),
                "granted_at": as_utc(granted_at or self.now).isoformat(),
                "reason": given("reason", None),
                "expires_at": expires_at and as_utc(expires_at).isoformat(),
                # Provenance stays with the grant: a sync that repeats a manual grant does not claim it.
                "source": current.source if current else source,
            }
            if current is None:
                new_grants.append(Change("added", identity, None, after))
            else:
                before = grant_state(current)
                if {k: v for k, v in before.items() if k != "id"} != after:
                    plan.grants.append(Change("changed", identity, before, {**after, "id": current.id}))
        changed = {change.before["id"]: change.key for change in plan.grants if change.before}  # type: ignore[index]
        for chunk in _chunks(sorted(changed)):  # the rows to update, as objects
            for grant in self.session.scalars(select(Grant).where(Grant.id.in_(chunk))):
                plan.grant_rows[changed[grant.id]] = grant
        self._hold_back_grants(plan, new_grants)
        if replace:
            for grant in self.session.scalars(select(Grant).where(Grant.source == source).order_by(Grant.id)):
                identity = grant_identity(grant.principal_key, grant.role, grant.resource_key)
                if identity not in identities:
                    plan.grants.append(Change("removed", identity, grant_state(grant), None))
                    plan.grant_rows[identity] = grant

    def _hold_back_grants(self, plan: Plan, new_grants: list[Change]) -> None:
        """A grant a review revoked, and held, is not restored: the row is listed as held instead."""
        wanted = [(c.after["principal"], c.after["role"], c.after["resource"]) for c in new_grants]  # type: ignore[index]
        held = holds.find_active(self.session, self.now, wanted) if wanted else {}
        for change, identity in zip(new_grants, wanted):
            hold = held.get(identity)
            if hold is None:
                plan.grants.append(change)
            else:
                plan.held.append({"principal": identity[0], "role": identity[1], "resource": identity[2],
                                  "hold": holds.summary(hold)})

    def _existing_grants(self, rows: list[GrantRow]) -> dict[str, Any]:
        """The stored grants of these rows' identities, as plain rows with the columns' names.

        Joined with the identities as a table of values, so that each is one probe of the grants'
        unique index. SQLite answers a list of pairs (``IN``) by scanning every grant, which made
        each batch of an import slower as the directory grew."""
        found: dict[str, Any] = {}
        for chunk in _chunks(rows):
            wanted = values(column("principal", String), column("role", String), column("resource", String),
                            name="wanted").data([(r.principal, r.role, r.resource) for r in chunk]).cte("wanted")
            query = select(*GRANT_COLUMNS).join(wanted, and_(Grant.principal_key == wanted.c.principal,
                                                             Grant.role == wanted.c.role,
                                                             Grant.resource_key == wanted.c.resource))
            for grant in self.session.execute(query):
                found[grant_identity(grant.principal_key, grant.role, grant.resource_key)] = grant
        return found
