"""Freezing a campaign's population: the grants in scope, what each really gives, and advice on it."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Iterable, Iterator

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ..authz.engine import SERVICE_RESOURCE, Snapshot
from ..authz.index import DirectoryIndex, GrantRecord, grants_in_order
from ..models import DirectoryState


@dataclass
class Candidate:
    """One review item before it is written."""

    kind: str  # grant | membership
    principal: str
    resource: str  # for a membership: the group
    role: str | None = None
    grant: GrantRecord | None = None
    effective: dict[str, list[str]] = field(default_factory=dict)
    explanation: list[dict[str, Any]] = field(default_factory=list)
    members: list[str] = field(default_factory=list)
    recommendation: str = "review"
    reason: str = ""
    confidence: str = "incomplete"  # complete: the advice rests on all the data it needs
    last_used_at: datetime | None = None

    def identity(self) -> list[Any]:
        return [self.kind, self.grant.id if self.grant else None, self.principal, self.role, self.resource,
                self.grant.expires_at.isoformat() if self.grant and self.grant.expires_at else None,
                self.members]


def in_scope(snapshot: Snapshot, scope: dict[str, Any], reconciliation: dict[str, Any] | None = None
             ) -> list[Candidate]:
    """Every grant (and group membership, if asked) that the scope covers, in a stable order, each with
    what the population hash covers (a group grant's members included). ``reconciliation``, if given, is
    filled with the directory's counts: grants in and out of scope, and why out."""
    return list(scope_candidates(snapshot.index, scope, reconciliation))


def scope_candidates(index: DirectoryIndex, scope: dict[str, Any], reconciliation: dict[str, Any] | None = None,
                     grants: Iterable[GrantRecord] | None = None) -> Iterator[Candidate]:
    """:func:`in_scope` a candidate at a time, for who only passes them on (``reconciliation`` is filled
    once the last is given). ``grants``, in id order, are the index's own unless given: a stream read
    beside an index loaded without them (:func:`directory_as_it_stands`)."""
    types, roles = set(scope.get("resource_types") or ()), set(scope.get("roles") or ())
    resources, subtrees = set(scope.get("resources") or ()), set(scope.get("subtrees") or ())
    kinds = set(scope.get("principal_kinds") or ("user", "group", "service"))
    grants_in = memberships_in = 0
    out: Counter[str] = Counter()
    if grants is None:
        grants = sorted(index.grants_by_id.values(), key=lambda g: g.id)
    for grant in grants:
        why = _out_of_scope(index, grant, kinds, types, roles, resources, subtrees)
        if why is not None:
            out[why] += 1
            continue
        candidate = Candidate("grant", grant.principal, grant.resource, grant.role, grant)
        if grant.principal.startswith("group:"):
            candidate.members = [m for m in index.members(grant.principal) if not m.startswith("group:")]
        grants_in += 1
        yield candidate
    groups = scope.get("membership_groups")
    if groups is not None:
        wanted = set(groups)
        for group, member in sorted(index.memberships):
            if (not wanted or group in wanted) and index.principals.get(member, None) is not None \
                    and index.principals[member].kind in kinds:
                memberships_in += 1
                yield Candidate("membership", member, group)
    if reconciliation is not None:
        reconciliation.update({
            "revision": index.revision, "grants_in_directory": grants_in + sum(out.values()),
            "grants_in_scope": grants_in, "grants_out_of_scope": sum(out.values()),
            "out_of_scope_by_reason": dict(sorted(out.items())),
            "memberships_in_directory": len(index.memberships), "memberships_in_scope": memberships_in})


@contextmanager
def directory_as_it_stands(engine: Engine) -> Iterator[tuple[DirectoryIndex, Iterator[GrantRecord]]]:
    """The directory at its latest revision, for :func:`scope_candidates` without a loaded snapshot:
    an index without grants, and the grants streamed beside it. Everything is read in one
    transaction that sees a single revision (PostgreSQL's repeatable read; SQLite's read transaction
    on its WAL), so the index, the grants and the revision named agree while writes go on."""
    with Session(bind=engine) as session:
        if engine.dialect.name == "postgresql":
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        revision = session.scalar(select(DirectoryState.revision).where(DirectoryState.id == 1))
        yield DirectoryIndex.load_without_grants(session, revision), grants_in_order(session)


def _out_of_scope(index, grant, kinds, types, roles, resources, subtrees) -> str | None:
    """Why the scope leaves ``grant`` out, or None when it covers it."""
    resource = index.resources.get(grant.resource)
    principal = index.principals.get(grant.principal)
    if resource is None or principal is None:
        return "principal or resource not in the directory"
    if principal.kind not in kinds:
        return f"principal kind {principal.kind} not in scope"
    if types and resource.type not in types:
        return f"resource type {resource.type} not in scope"
    if roles and grant.role not in roles:
        return f"role {grant.role} not in scope"
    if resources or subtrees:
        ancestors = {node.key for node in index.ancestors(resource.key)}
        if resource.key not in resources and not ancestors & subtrees:
            return "resource outside the scope's resources and subtrees"
    return None


def effective(snapshot: Snapshot, candidate: Candidate) -> None:
    """What the item gives, per resource type at and below the granted resource, and through what.

    A membership gives what every grant of the group (and of the groups containing it) gives.
    """
    index = snapshot.index
    if candidate.kind == "membership":
        for holder in index.holders(candidate.resource):
            for grant in index.grants_of.get(holder, ()):
                given, _steps = grant_effect(snapshot, grant.role, grant.resource)
                for type_key, permissions in given.items():
                    merged = set(candidate.effective.get(type_key, ())) | set(permissions)
                    candidate.effective[type_key] = sorted(merged)
                candidate.explanation.append({"via_group": holder, "grant_id": grant.id, "role": grant.role,
                                              "resource": grant.resource, "gives": given})
        return
    candidate.effective, candidate.explanation = grant_effect(snapshot, candidate.role, candidate.resource)


def grant_effect(snapshot: Snapshot, role: str, resource_key: str) -> tuple[dict[str, list[str]], list[dict[str, Any]]]:
    """Permissions a grant of ``role`` on ``resource_key`` gives, per type, read off the compiled table."""
    return _type_effect(snapshot.model, role, snapshot.index.resources[resource_key].type)


@lru_cache(maxsize=4096)
def _type_effect(model, role: str, resource_type: str) -> tuple[dict[str, list[str]], list[dict[str, Any]]]:
    """The same answer for every resource of a type: computed once per model, role and type.

    Callers must not change what it returns (it is shared)."""
    resource = _TypeOnly(resource_type)
    given: dict[str, list[str]] = {}
    steps: list[dict[str, Any]] = []
    for type_key, compiled in sorted(model.types.items()):
        if resource.type not in compiled.chain:
            continue
        depth = compiled.chain.index(resource.type)
        permissions = compiled.permissions.get((depth, role))
        if permissions:
            given[type_key] = sorted(permissions)
            steps.append({"type": type_key, "levels_below": depth,
                          "roles": sorted(compiled.roles.get((depth, role), ())), "permissions": sorted(permissions)})
    if resource.type in model.fallback_types:
        steps.append({"type": resource.type, "evaluated_by": "oso", "why": model.fallback_types[resource.type]})
    return given, steps


@dataclass(frozen=True)
class UsageData:
    """What a launch can know about use, and since when.

    The decision log says a grant was unused only for the time it covers: from its first decision,
    and no further back than its retention keeps decisions (``since``; None while it holds none).
    The service's own grants (on ``system:accessreview``) are used by calling the service, which no
    check shows: their holder's tokens' last use (``token_used``, per principal) stands for it.
    """

    now: datetime
    window_days: int
    since: datetime | None
    last_used: dict[int, datetime] = field(default_factory=dict)  # grant id -> last allowed decision
    token_used: dict[str, datetime] = field(default_factory=dict)  # principal -> its tokens' last use

    @property
    def horizon(self) -> datetime:
        return self.now - timedelta(days=self.window_days)

    @property
    def complete(self) -> bool:
        """Whether the log covers the whole look-back window."""
        return self.since is not None and self.since <= self.horizon

    @property
    def covered_days(self) -> int:
        if self.since is None:
            return 0
        return max(0, min(self.window_days, (self.now - self.since).days))


def usage_since(first_decision: datetime | None, now: datetime, retention_days: int) -> datetime | None:
    """From when the decision log is complete: its first decision, bounded by what it keeps."""
    if first_decision is None:
        return None
    return max(first_decision, now - timedelta(days=retention_days))


def recommend(snapshot: Snapshot, candidate: Candidate, usage: UsageData, granted_at: datetime | None) -> None:
    """Advice with its reason and its confidence: revoke what is dead, unused or redundant; keep what is
    in use; recommend nothing (``review``) where the data to tell is not there."""
    principal = snapshot.index.principals.get(candidate.principal)
    grant = candidate.grant
    if principal is not None and principal.status != "active":
        return _advise(candidate, "revoke", f"{candidate.principal} is disabled")
    if candidate.kind == "membership":
        return _advise(candidate, "review", "group membership: no usage data", complete=False)
    assert grant is not None
    now, days = usage.now, usage.window_days
    candidate.last_used_at = usage.last_used.get(grant.id)
    if grant.expired_at(now):
        return _advise(candidate, "revoke", f"the grant expired on {grant.expires_at.date().isoformat()}")
    redundant = _covered_by_other_grant(snapshot, candidate, now)
    if redundant is not None:
        reason = (f"the same access is already given by grant {redundant.id} "
                  f"({redundant.role} on {redundant.resource} to {redundant.principal}")
        if redundant.principal != grant.principal:
            reason += f", of which {grant.principal} is a member"
        return _advise(candidate, "revoke", reason + ")")
    last = candidate.last_used_at
    if last is not None and last >= usage.horizon:
        return _advise(candidate, "keep", f"used by an allowed decision on {last.date().isoformat()}")
    if grant.resource == SERVICE_RESOURCE:
        return _advise_service_grant(candidate, usage)
    if not usage.complete:
        reason = f"no usage data yet (the log covers {usage.covered_days} of {days} days)"
        if last is not None:
            reason += f"; last used on {last.date().isoformat()}"
        return _advise(candidate, "review", reason, complete=False)
    if granted_at is not None and granted_at > usage.horizon:
        return _advise(candidate, "review", f"granted on {granted_at.date().isoformat()}, less than {days} days ago: "
                       "too recent to call unused", complete=False)
    if last is not None:
        return _advise(candidate, "revoke", f"not used by any allowed decision in {days} days "
                       f"(last on {last.date().isoformat()})")
    return _advise(candidate, "revoke", f"not used by any allowed decision in {days} days (none in the log, "
                   f"which covers them all)")


def _advise_service_grant(candidate: Candidate, usage: UsageData) -> None:
    used = usage.token_used.get(candidate.principal)
    if used is not None and used >= usage.horizon:
        return _advise(candidate, "keep", f"a grant on the service itself, used by calling it: a token of "
                       f"{candidate.principal} was last used on {used.date().isoformat()}")
    seen = (f"a token of {candidate.principal} was last used on {used.date().isoformat()}" if used
            else f"no use of a token of {candidate.principal} is recorded")
    return _advise(candidate, "review", f"a grant on the service itself, used by calling it, which no check shows; "
                   f"{seen}", complete=False)


def _advise(candidate: Candidate, recommendation: str, reason: str, complete: bool = True) -> None:
    candidate.recommendation, candidate.reason = recommendation, reason
    candidate.confidence = "complete" if complete else "incomplete"


def _covered_by_other_grant(snapshot: Snapshot, candidate: Candidate, now: datetime) -> GrantRecord | None:
    """Another live grant that gives at least everything this one gives, at every level below: held
    by the same principal or by a group it belongs to (directly or through nested groups), on the
    same resource or an ancestor.

    Of two grants of one principal that give each other's access exactly, only the later is
    redundant: advising to revoke both would take the access away.
    """
    index = snapshot.index
    grant = candidate.grant
    if not candidate.effective:
        return None
    for depth_up, node in enumerate(index.ancestors(grant.resource)):
        for holder in index.holders(grant.principal):
            for other in index.grants.get((holder, node.key), ()):
                if other.id == grant.id or other.expired_at(now):
                    continue
                if not _gives_at_least(snapshot, other.role, depth_up, candidate.effective, grant.resource):
                    continue
                if holder == grant.principal and depth_up == 0 and other.id > grant.id and \
                        _gives_at_least(snapshot, grant.role, 0, grant_effect(snapshot, other.role, node.key)[0],
                                        grant.resource):
                    continue  # the two are equal: the later one is the redundant one
                return other
    return None


def _gives_at_least(snapshot: Snapshot, role: str, depth_up: int, wanted: dict[str, list[str]],
                    resource_key: str) -> bool:
    """Whether ``role``, granted ``depth_up`` levels above ``resource_key``, gives every permission in
    ``wanted`` (per type, at the levels below ``resource_key``)."""
    model, resource_type = snapshot.model, snapshot.index.resources[resource_key].type
    for type_key, permissions in wanted.items():
        compiled = model.types[type_key]
        depth = compiled.chain.index(resource_type) + depth_up
        if not set(permissions) <= compiled.permissions.get((depth, role), frozenset()):
            return False
    return True


@dataclass(frozen=True)
class _TypeOnly:
    type: str


class PopulationHash:
    """:func:`population_hash` taken a candidate at a time (the same bytes hashed: the items come first
    in the sorted canonical JSON, the revision last)."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256(b'{"items":[')
        self.count = 0

    def add(self, candidate: Candidate) -> None:
        identity = json.dumps(candidate.identity(), sort_keys=True, separators=(",", ":"))
        self._digest.update((b"," if self.count else b"") + identity.encode())
        self.count += 1

    def hexdigest(self, revision: int) -> str:
        digest = self._digest.copy()
        digest.update(f'],"revision":{json.dumps(revision)}}}'.encode())
        return digest.hexdigest()


def population_hash(revision: int, candidates: list[Candidate]) -> str:
    canonical = json.dumps({"revision": revision, "items": [c.identity() for c in candidates]},
                           sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
