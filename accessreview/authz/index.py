"""An in-memory, read-only index of the directory at one revision: what checks evaluate against."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

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


class DirectoryIndex:
    def __init__(
        self,
        principals: Iterable[PrincipalRecord],
        resources: Iterable[ResourceRecord],
        grants: Iterable[GrantRecord],
        memberships: Iterable[tuple[str, str]],  # (group, member)
        revision: int = 0,
    ) -> None:
        self.revision = revision
        self.principals = {p.key: p for p in principals}
        self.resources = {r.key: r for r in resources}
        self.grants: dict[tuple[str, str], list[GrantRecord]] = defaultdict(list)
        for grant in grants:
            self.grants[(grant.principal, grant.resource)].append(grant)
        self.groups_of: dict[str, list[str]] = defaultdict(list)
        for group, member in memberships:
            self.groups_of[member].append(group)
        self._holders: dict[str, tuple[str, ...]] = {}

    @classmethod
    def load(cls, session: Session, revision: int) -> "DirectoryIndex":
        principals = [
            PrincipalRecord(key, kind, status)
            for key, kind, status in session.execute(
                select(models.Principal.key, models.Principal.kind, models.Principal.status))
        ]
        resources = [
            ResourceRecord(key, type_, parent)
            for key, type_, parent in session.execute(
                select(models.Resource.key, models.Resource.type, models.Resource.parent_key))
        ]
        grants = [
            GrantRecord(*row)
            for row in session.execute(select(
                models.Grant.id, models.Grant.principal_key, models.Grant.role,
                models.Grant.resource_key, models.Grant.expires_at))
        ]
        memberships = session.execute(
            select(models.GroupMembership.group_key, models.GroupMembership.member_key))
        return cls(principals, resources, grants, memberships, revision)

    def holders(self, principal: str) -> tuple[str, ...]:
        """The principal and every group it belongs to, directly or through nested groups."""
        cached = self._holders.get(principal)
        if cached is None:
            seen = [principal]
            stack = [principal]
            while stack:
                for group in self.groups_of.get(stack.pop(), ()):
                    if group not in seen:
                        seen.append(group)
                        stack.append(group)
            cached = self._holders[principal] = tuple(seen)
        return cached

    def grants_on(self, principal: str, resource: str) -> list[GrantRecord]:
        """Grants on ``resource`` held by the principal or any of its groups (expired ones included)."""
        found: list[GrantRecord] = []
        for holder in self.holders(principal):
            found.extend(self.grants.get((holder, resource), ()))
        return found
