"""An in-memory, read-only index of the directory at one revision: what checks evaluate against.

An index is never changed in place: a refresh builds a new one (from the database, or from the
previous index plus the rows that changed) and swaps it in, so a check always sees one revision.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Iterator, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import models


@dataclass(frozen=True, slots=True)
class PrincipalRecord:
    key: str
    kind: str
    status: str = "active"


@dataclass(frozen=True, slots=True)
class ResourceRecord:
    key: str
    type: str
    parent: str | None = None


@dataclass(frozen=True, slots=True)
class GrantRecord:
    id: int
    principal: str
    role: str
    resource: str
    expires_at: datetime | None = None

    def expired_at(self, moment: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= moment


@dataclass(frozen=True, slots=True)
class TokenRecord:
    principal: str
    expires_at: datetime | None
    token_hash: str = ""  # its key, by which its use is recorded


_EMPTY: tuple = ()


class DirectoryIndex:
    def __init__(
        self,
        principals: Iterable[PrincipalRecord] | Mapping[str, PrincipalRecord],
        resources: Iterable[ResourceRecord] | Mapping[str, ResourceRecord],
        grants: Iterable[GrantRecord] | Mapping[int, GrantRecord],
        memberships: Iterable[tuple[str, str]],  # (group, member)
        revision: int = 0,
        tokens: Mapping[str, TokenRecord] | None = None,  # keyed hash -> token
        *,
        attribute_types: frozenset[str] = frozenset(),
        principal_attributes: Mapping[str, Mapping[str, Any]] | None = None,
        resource_attributes: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.revision = revision
        # Attributes, for the types whose rules read them (and then for the principals): key -> the
        # non-empty fields the directory holds. Kept apart from the records, which the compiled
        # table walks, so that a policy without attribute rules holds and pays for none.
        self.attribute_types = attribute_types
        self.principal_attributes = dict(principal_attributes or {})
        self.resource_attributes = dict(resource_attributes or {})
        self.principals = dict(principals) if isinstance(principals, Mapping) else {p.key: p for p in principals}
        self.resources = dict(resources) if isinstance(resources, Mapping) else {r.key: r for r in resources}
        self.grants_by_id = dict(grants) if isinstance(grants, Mapping) else {g.id: g for g in grants}
        self.memberships = frozenset(memberships)
        self.tokens = dict(tokens or {})
        self.grants: dict[tuple[str, str], list[GrantRecord]] = defaultdict(list)
        self.grants_of: dict[str, list[GrantRecord]] = defaultdict(list)  # by holder
        self.grants_on_resource: dict[str, list[GrantRecord]] = defaultdict(list)
        for grant in self.grants_by_id.values():
            self.grants[(grant.principal, grant.resource)].append(grant)
            self.grants_of[grant.principal].append(grant)
            self.grants_on_resource[grant.resource].append(grant)
        self.groups_of: dict[str, list[str]] = defaultdict(list)
        self.members_of: dict[str, list[str]] = defaultdict(list)
        for group, member in sorted(self.memberships):  # a set's order differs between processes
            self.groups_of[member].append(group)
            self.members_of[group].append(member)
        self.children: dict[str, list[str]] = defaultdict(list)
        for resource in self.resources.values():
            if resource.parent is not None:
                self.children[resource.parent].append(resource.key)
        self._holders: dict[str, tuple[str, ...]] = {}
        self._lineages: dict[str, tuple[str, ...]] = {}

    # -- loading ------------------------------------------------------------------------------

    @classmethod
    def load(cls, session: Session, revision: int, attribute_types: frozenset[str] = frozenset()) -> "DirectoryIndex":
        """Everything, from the database (on start, and when a process has fallen far behind), with
        the attributes of the resources of ``attribute_types`` and, if there are any, of principals."""
        principals, resources, memberships = _load_structure(session)
        grants = {row[0]: GrantRecord(*row) for row in session.execute(select(*_GRANT_COLUMNS))}
        principal_attributes, resource_attributes = _load_attributes(session, attribute_types)
        return cls(principals, resources, grants, memberships, revision, _load_tokens(session),
                   attribute_types=attribute_types, principal_attributes=principal_attributes,
                   resource_attributes=resource_attributes)

    @classmethod
    def load_without_grants(cls, session: Session, revision: int) -> "DirectoryIndex":
        """Principals, resources and group memberships, for reading the grants beside it as a stream
        (:func:`grants_in_order`): about a quarter of the whole index's memory."""
        principals, resources, memberships = _load_structure(session)
        return cls(principals, resources, (), memberships, revision)

    def updated(self, session: Session, revision: int, changed: Mapping[str, set]) -> "DirectoryIndex":
        """A new index: this one with the rows named in ``changed`` read again from the database.

        ``changed`` maps ``principal``/``resource``/``grant``/``group`` to keys (grant ids); any
        token change reloads the (small) token table.
        """
        new = self._updated_records(session, revision, changed)
        new.attribute_types = self.attribute_types
        new.principal_attributes, new.resource_attributes = self.principal_attributes, self.resource_attributes
        if self.attribute_types and (changed.get("principal") or changed.get("resource")):
            new.principal_attributes, new.resource_attributes = _reread_attributes(
                session, self, changed.get("principal", ()), changed.get("resource", ()))
        return new

    def _updated_records(self, session: Session, revision: int, changed: Mapping[str, set]) -> "DirectoryIndex":
        principals = _reread(session, dict(self.principals), changed.get("principal", ()), _PRINCIPAL_COLUMNS,
                             PrincipalRecord)
        resources = _reread(session, dict(self.resources), changed.get("resource", ()), _RESOURCE_COLUMNS,
                            ResourceRecord)
        grants = _reread(session, dict(self.grants_by_id), {int(i) for i in changed.get("grant", ())},
                         _GRANT_COLUMNS, GrantRecord)
        memberships = set(self.memberships)
        groups = sorted(changed.get("group", ()))
        if groups:
            memberships = {m for m in memberships if m[0] not in changed["group"]}
            for chunk in _chunks(groups):
                memberships.update(tuple(m) for m in session.execute(select(*_MEMBERSHIP_COLUMNS)
                                                                     .where(models.GroupMembership.group_key.in_(chunk))))
        tokens = _load_tokens(session) if changed.get("token") else self.tokens
        return self._derived(revision, principals, resources, grants, frozenset(memberships), tokens,
                             {int(i) for i in changed.get("grant", ())}, set(changed.get("resource", ())))

    def _derived(self, revision: int, principals: dict, resources: dict, grants: dict, memberships: frozenset,
                 tokens: Mapping[str, TokenRecord], grant_ids: set[int], resource_keys: set[str]) -> "DirectoryIndex":
        """The new index built from this one's lookups, changing only the entries of what changed.

        Rebuilding them all costs a pass over every grant and resource (seconds at a million); each
        snapshot is read by other threads, so this one's lists are copied before they change, never
        changed in place."""
        new = DirectoryIndex.__new__(DirectoryIndex)
        new.revision, new.principals, new.resources, new.grants_by_id = revision, principals, resources, grants
        new.memberships, new.tokens, new._holders, new._lineages = memberships, dict(tokens), {}, {}
        new.grants = defaultdict(list, self.grants)
        new.grants_of = defaultdict(list, self.grants_of)
        new.grants_on_resource = defaultdict(list, self.grants_on_resource)
        for grant_id in grant_ids:
            for record, keep in ((self.grants_by_id.get(grant_id), False), (grants.get(grant_id), True)):
                if record is None:
                    continue
                for lookup, key in ((new.grants, (record.principal, record.resource)),
                                    (new.grants_of, record.principal), (new.grants_on_resource, record.resource)):
                    entries = [g for g in lookup.get(key, _EMPTY) if g.id != grant_id]
                    if keep:
                        entries.append(record)
                    if entries:
                        lookup[key] = entries
                    else:
                        lookup.pop(key, None)
        if memberships == self.memberships:
            new.groups_of, new.members_of = self.groups_of, self.members_of
        else:
            new.groups_of, new.members_of = defaultdict(list), defaultdict(list)
            for group, member in sorted(memberships):
                new.groups_of[member].append(group)
                new.members_of[group].append(member)
        new.children = defaultdict(list, self.children)
        for key in resource_keys:
            for record, keep in ((self.resources.get(key), False), (resources.get(key), True)):
                if record is None or record.parent is None:
                    continue
                siblings = [child for child in new.children.get(record.parent, _EMPTY) if child != key]
                if keep:
                    siblings.append(key)
                if siblings:
                    new.children[record.parent] = siblings
                else:
                    new.children.pop(record.parent, None)
        return new

    # -- questions ----------------------------------------------------------------------------

    def holders(self, principal: str) -> tuple[str, ...]:
        """The principal and every group it belongs to, directly or through nested groups."""
        cached = self._holders.get(principal)
        if cached is None:
            seen = [principal]
            stack = [principal]
            while stack:
                for group in self.groups_of.get(stack.pop(), _EMPTY):
                    if group not in seen:
                        seen.append(group)
                        stack.append(group)
            cached = self._holders[principal] = tuple(seen)
        return cached

    def members(self, group: str) -> list[str]:
        """Every principal inside ``group``, through nested groups (the groups themselves included)."""
        seen: dict[str, None] = {}
        stack = [group]
        while stack:
            for member in self.members_of.get(stack.pop(), _EMPTY):
                if member not in seen and member != group:
                    seen[member] = None
                    stack.append(member)
        return list(seen)

    def grants_on(self, principal: str, resource: str) -> list[GrantRecord]:
        """Grants on ``resource`` held by the principal or any of its groups (expired ones included)."""
        found: list[GrantRecord] = []
        for holder in self.holders(principal):
            found.extend(self.grants.get((holder, resource), _EMPTY))
        return found

    def lineage(self, resource: str) -> tuple[str, ...]:
        """The keys of the resource and its parents, nearest first; kept for the resources the
        directory holds (checks walk them by the thousand a second), so at most one per resource."""
        cached = self._lineages.get(resource)
        if cached is None:
            cached = tuple(node.key for node in self.ancestors(resource))
            if cached:
                self._lineages[resource] = cached
        return cached

    def ancestors(self, resource: str) -> list[ResourceRecord]:
        """The resource and its parents, nearest first."""
        chain = []
        node = self.resources.get(resource)
        while node is not None:
            chain.append(node)
            node = self.resources.get(node.parent) if node.parent is not None else None
        return chain


def _principal_attributes(name, email, department, manager, attributes) -> dict[str, Any]:
    # As for resources: the directory's own fields over the custom attributes of the same name.
    return {**(attributes or {}), **{k: v for k, v in (("name", name), ("email", email), ("department", department),
                                                       ("manager", manager)) if v is not None}}


def _resource_attributes(name, owner, attributes) -> dict[str, Any]:
    # The directory's own fields over the free attributes of the same name.
    return {**(attributes or {}), **{k: v for k, v in (("name", name), ("owner", owner)) if v is not None}}


def _load_attributes(session: Session, attribute_types: frozenset[str]) -> tuple[dict, dict]:
    if not attribute_types:
        return {}, {}
    principals = {}
    for key, *fields in session.execute(select(*_PRINCIPAL_ATTRIBUTE_COLUMNS)):
        found = _principal_attributes(*fields)
        if found:
            principals[key] = found
    resources = {}
    for key, *fields in session.execute(select(*_RESOURCE_ATTRIBUTE_COLUMNS)
                                        .where(models.Resource.type.in_(sorted(attribute_types)))):
        found = _resource_attributes(*fields)
        if found:
            resources[key] = found
    return principals, resources


def _reread_attributes(session: Session, index: "DirectoryIndex", principal_keys, resource_keys) -> tuple[dict, dict]:
    """The index's attributes with those of the named principals and resources read again."""
    principals, resources = dict(index.principal_attributes), dict(index.resource_attributes)
    for found, keys, columns, shape, where in (
            (principals, sorted(principal_keys), _PRINCIPAL_ATTRIBUTE_COLUMNS, _principal_attributes, None),
            (resources, sorted(resource_keys), _RESOURCE_ATTRIBUTE_COLUMNS, _resource_attributes,
             models.Resource.type.in_(sorted(index.attribute_types)))):
        for key in keys:
            found.pop(key, None)
        for chunk in _chunks(keys):
            query = select(*columns).where(columns[0].in_(chunk))
            for key, *fields in session.execute(query if where is None else query.where(where)):
                attributes = shape(*fields)
                if attributes:
                    found[key] = attributes
    return principals, resources


_PRINCIPAL_COLUMNS = (models.Principal.key, models.Principal.kind, models.Principal.status)
_PRINCIPAL_ATTRIBUTE_COLUMNS = (models.Principal.key, models.Principal.name, models.Principal.email,
                                models.Principal.department, models.Principal.manager_key,
                                models.Principal.attributes)
_RESOURCE_ATTRIBUTE_COLUMNS = (models.Resource.key, models.Resource.name, models.Resource.owner_key,
                               models.Resource.attributes)
_RESOURCE_COLUMNS = (models.Resource.key, models.Resource.type, models.Resource.parent_key)
_GRANT_COLUMNS = (models.Grant.id, models.Grant.principal_key, models.Grant.role, models.Grant.resource_key,
                  models.Grant.expires_at)
_MEMBERSHIP_COLUMNS = (models.GroupMembership.group_key, models.GroupMembership.member_key)


def _load_structure(session: Session) -> tuple[dict, dict, list]:
    principals = {row[0]: PrincipalRecord(*row) for row in session.execute(select(*_PRINCIPAL_COLUMNS))}
    resources = {row[0]: ResourceRecord(*row) for row in session.execute(select(*_RESOURCE_COLUMNS))}
    memberships = [tuple(m) for m in session.execute(select(*_MEMBERSHIP_COLUMNS))]
    return principals, resources, memberships


def grants_in_order(session: Session, rows_at_once: int = 2000) -> Iterator[GrantRecord]:
    """Every grant, in id order, as the index holds them, read a window of rows at a time."""
    query = select(*_GRANT_COLUMNS).order_by(models.Grant.id).execution_options(yield_per=rows_at_once)
    for row in session.execute(query):
        yield GrantRecord(*row)


def _reread(session: Session, records: dict, keys, columns, make) -> dict:
    """``records`` with the rows of ``keys`` read again (and dropped where they no longer exist)."""
    keys = sorted(keys)
    for key in keys:
        records.pop(key, None)
    for chunk in _chunks(keys):
        for row in session.execute(select(*columns).where(columns[0].in_(chunk))):
            records[row[0]] = make(*row)
    return records


def _load_tokens(session: Session) -> dict[str, TokenRecord]:
    """The live bearer tokens. A sign-in link's token is left out: it is never a bearer token, only
    good for redeeming its link (which reads the database), so neither the API nor a page accepts it."""
    rows = session.execute(
        select(models.ServiceToken.token_hash, models.ServiceToken.principal_key, models.ServiceToken.expires_at)
        .where(models.ServiceToken.revoked_at.is_(None), models.ServiceToken.purpose != models.SIGN_IN_LINK))
    return {token_hash: TokenRecord(principal, expires_at, token_hash) for token_hash, principal, expires_at in rows}


def _chunks(items: list, size: int = 500):
    for start in range(0, len(items), size):
        yield items[start:start + size]
