"""Answering checks, lists, "who has access" and "why" over one index, with the compiled table.

Resource types and actor kinds that the table does not describe exactly are answered by oso,
and so is everything when evaluation is forced to oso (``ACCESSREVIEW_EVALUATION=oso``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Callable

from .compiled import CompiledModel, CompiledType
from .deadline import UNBOUNDED, Deadline
from .index import DirectoryIndex, GrantRecord
from .policy import Policy
from .properties import Given


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    grants: tuple[int, ...] = ()


DENY = Decision(False)


class Evaluator:
    def __init__(self, policy: Policy, model: CompiledModel, index: DirectoryIndex, *, force_oso: bool = False):
        self.policy = policy
        self.model = model
        self.index = index
        self.force_oso = force_oso
        self._check = self._checker()

    def _compiled(self, actor_kind: str, resource_type: str) -> CompiledType | None:
        if self.force_oso or actor_kind not in self.model.actor_kinds:
            return None
        return self.model.types.get(resource_type)

    # -- checks -------------------------------------------------------------------------------

    def check(self, actor: str, action: str, resource: str, now: datetime, given: Given | None = None) -> Decision:
        """May ``actor`` do ``action`` on ``resource``? ``given``: the request's properties and context,
        read by the types whose rules read attributes (the table's types read none)."""
        return self._check(actor, action, resource, now, given)

    def _checker(self) -> Callable[..., Decision]:
        """The check, with what it looks up bound once: an evaluator's index and table never change,
        and at a few µs a check (a batch's), each attribute or method look-up saved counts."""
        # Nothing here may refer back to the evaluator: a cycle would leave every replaced snapshot,
        # and the index copies it holds, to the cyclic collector, which the engine keeps off them
        # (gc.freeze), so each catch-up would leak one. Refcounting alone frees them this way.
        index = self.index
        oso_check = partial(_oso_decision, self.policy, self.model.attribute_types, index)
        principals, resources, grants = index.principals.get, index.resources.get, index.grants.get
        holders_of, lineage_of = index.holders, index.lineage
        actor_kinds = self.model.actor_kinds
        types = {} if self.force_oso else self.model.types

        def check(actor: str, action: str, resource: str, now: datetime, given: Given | None = None) -> Decision:
            principal = principals(actor)
            target = resources(resource)
            if principal is None or target is None:
                return oso_check(actor, action, resource, now, given, principal is not None)
            compiled = types.get(target.type) if principal.kind in actor_kinds else None
            if compiled is None:
                return oso_check(actor, action, resource, now, given, True)
            if principal.status != "active":
                return DENY
            depths = compiled.by_action.get(action)
            if not depths:
                return DENY
            holders = holders_of(actor)
            used: list[int] = []
            for depth, key in enumerate(lineage_of(resource)):
                roles = depths.get(depth)
                if roles:
                    for holder in holders:
                        for grant in grants((holder, key), ()):
                            if grant.role in roles and (grant.expires_at is None or grant.expires_at > now):
                                used.append(grant.id)
            return Decision(True, tuple(used)) if used else DENY

        return check

    def enumerates(self, actor_kind: str, resource_type: str) -> bool:
        """Do the enumerations (:meth:`resources_for`, :meth:`access`) answer, for actors of this kind
        and resources of this type, as :meth:`check` does whatever properties and context a check
        carries? Where the table decides: its types read none. Elsewhere a search must put each
        candidate to :meth:`check` with the request's facts."""
        return self._compiled(actor_kind, resource_type) is not None

    def can_act(self, kind: str) -> bool:
        """Is ``kind`` an actor type of the policy? A principal of another kind (a group) is denied
        every check: its members act."""
        return kind in self.policy.actor_classes

    def actors_of_kind(self, kind: str) -> list[str]:
        """Every principal of ``kind`` the directory holds, sorted: who a search may find (a check of
        a principal the directory does not hold, or of a kind that cannot act, is a deny)."""
        if not self.can_act(kind):
            return []
        return sorted(key for key, principal in self.index.principals.items() if principal.kind == kind)

    def resources_of_type(self, resource_type: str) -> list[str]:
        """Every resource of ``resource_type`` the directory holds, sorted (a search cannot name one it
        does not hold, though a check may)."""
        return sorted(key for key, record in self.index.resources.items() if record.type == resource_type)

    def decides_unheld(self, resource: str) -> bool:
        """Is a resource the directory does not hold put to the policy with its request's properties?
        Only one of a type whose rules read attributes: any other type's rules need the directory."""
        return _decides_unheld(self.model.attribute_types, resource)

    # -- lists --------------------------------------------------------------------------------

    def resources_for(self, actor: str, action: str, resource_type: str, now: datetime,
                      deadline: Deadline = UNBOUNDED) -> list[str]:
        """Every resource of ``resource_type`` on which ``actor`` may ``action``, sorted."""
        index = self.index
        principal = index.principals.get(actor)
        if principal is None:
            return []
        compiled = self._compiled(principal.kind, resource_type)
        if compiled is None:
            allowed = []
            for key, r in index.resources.items():
                if r.type == resource_type:
                    deadline.check()  # one oso query per resource of the type: minutes on a large directory
                    if self.policy.is_allowed(index, now, actor, action, key):
                        allowed.append(key)
            return sorted(allowed)
        depths = compiled.by_action.get(action)
        if principal.status != "active" or not depths:
            return []
        depth_of = {type_key: depth for depth, type_key in enumerate(compiled.chain)}
        found: set[str] = set()
        for holder in index.holders(actor):
            for grant in index.grants_of.get(holder, ()):
                node = index.resources.get(grant.resource)
                depth = depth_of.get(node.type) if node is not None else None
                if depth is None or grant.role not in depths.get(depth, ()) or grant.expired_at(now):
                    continue
                found.update(self._descendants(node.key, compiled.chain, depth))
        return sorted(found)

    def _descendants(self, key: str, chain: tuple[str, ...], depth: int) -> list[str]:
        frontier = [key]
        for level in range(depth - 1, -1, -1):
            wanted = chain[level]
            frontier = [child for parent in frontier for child in self.index.children.get(parent, ())
                        if self.index.resources[child].type == wanted]
        return frontier

    def access(self, resource: str, now: datetime, deadline: Deadline = UNBOUNDED) -> list[dict[str, Any]]:
        """Every actor with any permission on ``resource``, its permissions and the grants behind them."""
        index = self.index
        target = index.resources.get(resource)
        if target is None:
            return []
        entries: dict[str, dict[str, Any]] = {}
        compiled = None if self.force_oso else self.model.types.get(target.type)
        if compiled is not None:
            for depth, node in enumerate(index.ancestors(resource)):
                for grant in index.grants_on_resource.get(node.key, ()):
                    permissions = compiled.permissions.get((depth, grant.role))
                    if not permissions or grant.expired_at(now):
                        continue
                    via = {"grant_id": grant.id, "principal": grant.principal, "role": grant.role,
                           "resource": node.key}
                    for actor in self._actors_holding(grant):
                        entry = entries.setdefault(actor, {"principal": actor, "permissions": set(), "via": []})
                        entry["permissions"] |= permissions
                        entry["via"].append(via)
        # Actors the table does not cover are asked of oso, one by one.
        for key, principal in index.principals.items():
            if compiled is None or (principal.kind not in self.model.actor_kinds
                                    and principal.kind in self.policy.actor_classes):
                if principal.kind not in self.policy.actor_classes:
                    continue
                deadline.check()
                permissions = self.policy.authorized_actions(index, now, key, resource)
                if permissions:
                    entries[key] = {"principal": key, "permissions": permissions, "via": []}
        return [{**entry, "permissions": sorted(entry["permissions"])}
                for _, entry in sorted(entries.items())]

    def _actors_holding(self, grant: GrantRecord) -> list[str]:
        """The active actors a grant reaches: its principal, or the members of its group."""
        index = self.index
        candidates = [grant.principal, *index.members(grant.principal)] if grant.principal.startswith("group:") \
            else [grant.principal]
        actors = []
        for key in candidates:
            principal = index.principals.get(key)
            if principal and principal.kind in self.model.actor_kinds and principal.status == "active":
                actors.append(key)
        return actors

    # -- explanations -------------------------------------------------------------------------

    def explain(self, actor: str, action: str, resource: str, now: datetime,
                given: Given | None = None) -> dict[str, Any]:
        index = self.index
        decision = self.check(actor, action, resource, now, given)
        principal = index.principals.get(actor)
        target = index.resources.get(resource)
        if principal is None:
            return _explained(decision, [{"code": "unknown_actor", "message": f"{actor} is not in the directory"}])
        unheld = target is None and given is not None and self.decides_unheld(resource)
        if target is None and not unheld:
            return _explained(decision, [{"code": "unknown_resource", "message": f"{resource} is not in the directory"}])
        if principal.kind not in self.policy.actor_classes:
            return _explained(decision, [{"code": "not_an_actor",
                                          "message": f"a {principal.kind} cannot act; its members can"}])
        compiled = None if target is None else self._compiled(principal.kind, target.type)
        if compiled is None:
            held = ("the directory does not hold it: decided on the properties the request gives; "
                    if unheld else "")
            return _explained(decision, [{"code": "evaluated_by_oso", "message":
                                          f"{held}this type is evaluated by the policy engine directly; "
                                          "no grant-level explanation", "permissions": sorted(
                                              self.policy.authorized_actions(index, now, actor, resource, given))}])
        if principal.status != "active":
            return _explained(decision, [{"code": "principal_disabled", "message":
                                          f"{actor} is disabled and holds no permission; its grants stay for review"}])
        declared = self.policy.declarations.resource_types[target.type].permissions
        if action not in declared:
            return _explained(decision, [{"code": "unknown_action", "message":
                                          f"{action!r} is not a permission of {target.type}",
                                          "permissions": list(declared)}])
        return _explained(decision, self._grant_reasons(actor, action, resource, compiled, now, decision.allowed))

    def _grant_reasons(self, actor: str, action: str, resource: str, compiled: CompiledType, now: datetime,
                       allowed: bool) -> list[dict[str, Any]]:
        index = self.index
        reasons: list[dict[str, Any]] = []
        nodes = index.ancestors(resource)
        for depth, node in enumerate(nodes):
            for holder in index.holders(actor):
                for grant in index.grants.get((holder, node.key), ()):
                    gives = compiled.permissions.get((depth, grant.role), frozenset())
                    base = {"grant_id": grant.id, "principal": grant.principal, "role": grant.role,
                            "resource": node.key, "via_groups": self._group_path(actor, holder)}
                    if grant.expired_at(now):
                        if action in gives:
                            reasons.append({"code": "grant_expired", **base, "expired_at": grant.expires_at.isoformat(),
                                            "message": f"grant {grant.id} would give {action} but expired"})
                    elif action in gives:
                        reasons.append({"code": "granted", **base, "permission": action,
                                        "chain": self._role_chain(nodes, depth, grant.role)})
                    elif not allowed:
                        reasons.append({"code": "role_insufficient", **base, "gives": sorted(gives),
                                        "message": f"{grant.role} on {node.key} does not give {action}"})
        if not allowed and not any(r["code"] == "grant_expired" for r in reasons):
            wanted = {nodes[d].key: sorted(roles) for d, roles in compiled.by_action.get(action, {}).items()
                      if d < len(nodes)}
            reasons.append({"code": "no_grant", "checked": [n.key for n in nodes], "roles_that_would_allow": wanted,
                            "message": f"no live grant to {actor} or its groups on {nodes[0].key} or any ancestor "
                                       f"gives {action}"})
        return reasons

    def _role_chain(self, nodes, depth: int, role: str) -> list[dict[str, Any]]:
        """From the granted role on an ancestor, the roles it implies at each level down to the resource."""
        steps = []
        for level in range(depth, -1, -1):
            node = nodes[level]
            implied = self.model.types[node.type].roles.get((depth - level, role), frozenset())
            steps.append({"resource": node.key, "roles": sorted(implied) if level < depth else
                          sorted(implied | {role})})
        return steps

    def _group_path(self, actor: str, holder: str) -> list[str]:
        """How ``actor`` reaches ``holder`` through group memberships (empty when it is the actor)."""
        if holder == actor:
            return []
        paths = {actor: []}
        queue = [actor]
        while queue:
            current = queue.pop(0)
            for group in self.index.groups_of.get(current, ()):
                if group not in paths:
                    paths[group] = [*paths[current], group]
                    if group == holder:
                        return paths[group]
                    queue.append(group)
        return [holder]


def _explained(decision: Decision, reasons: list[dict[str, Any]]) -> dict[str, Any]:
    return {"allowed": decision.allowed, "reasons": reasons}


def _decides_unheld(attribute_types, resource: str) -> bool:
    return resource.partition(":")[0] in attribute_types


def _oso_decision(policy: Policy, attribute_types, index: DirectoryIndex, actor: str, action: str, resource: str,
                  now: datetime, given: Given | None, held_actor: bool) -> Decision:
    """A check the table does not decide: oso's, or a deny for what the directory does not hold
    (unless the resource's type decides on the request's properties)."""
    if not held_actor or (resource not in index.resources
                          and (given is None or not _decides_unheld(attribute_types, resource))):
        return DENY
    return Decision(policy.is_allowed(index, now, actor, action, resource, given=given))
