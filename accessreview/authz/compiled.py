"""The role model compiled from the loaded policy: which grant gives which permission, and how.

oso evaluates one check in hundreds of microseconds and cannot enumerate "who can access what" in
useful time, so checks, lists and reviews walk grants through a table instead. The table is not
written by hand: it is read back from the loaded policy by asking oso, in small synthetic worlds,
what one grant of each role on each ancestor of a resource gives on that resource. Nothing about
roles is typed twice.

The table is exact for policies whose resource blocks use shorthand rules only (``"x" if "y"`` and
``"x" if "y" on "parent"``): their permissions are unions over single grants. A resource type whose
block or rules use anything else — conditions on attributes, other relations, extra ``allow`` or
``has_permission`` rules — is not compiled and is evaluated by oso for every check ("fallback").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .declarations import Declarations, ResourceType, blocks, strip_comments
from .index import DirectoryIndex, GrantRecord, PrincipalRecord, ResourceRecord

PROBE_TIME = datetime(2000, 1, 1, tzinfo=timezone.utc)
PROBE_ACTOR = "probe"
SERVICE_TYPE = "system"  # the service itself (service.polar): its own types hang under it

_SHORTHAND = re.compile(r'^"[A-Za-z0-9_]+"\s+if\s+"[A-Za-z0-9_]+"(\s+on\s+"parent")?$')
_DECLARATION = re.compile(r"^(roles|permissions|relations)\s*=", re.S)
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_KNOWN_RULES = (
    re.compile(r"^allow\(actor, action, resource\) if has_permission\(actor, action, resource\)$"),
    re.compile(rf'^has_relation\(({_IDENT}): ({_IDENT}), "parent", ({_IDENT}): ({_IDENT})\) if \3\.parent = \1$'),
    re.compile(rf"^has_role\(({_IDENT}): ({_IDENT}), role: String, resource: Resource\) if \1\.is_active\(\) and "
               rf"grant in \1\.grants_on\(resource\) and grant\.role = role and not grant\.is_expired\(\)$"),
)
_SPECIALIZER = re.compile(rf":\s*({_IDENT})")


@dataclass(frozen=True)
class CompiledType:
    key: str
    chain: tuple[str, ...]  # this type, its parent type, the parent's parent type…
    # What one live grant of ``role`` on the ancestor at ``depth`` (0 = the resource itself) gives:
    permissions: dict[tuple[int, str], frozenset[str]]
    roles: dict[tuple[int, str], frozenset[str]]  # the roles it gives on the resource, for explanations
    # The inverse, for checks: action -> depth -> roles that give it.
    by_action: dict[str, dict[int, frozenset[str]]]


@dataclass(eq=False)  # compared and hashed by identity: one model per policy version
class CompiledModel:
    types: dict[str, CompiledType] = field(default_factory=dict)
    fallback_types: dict[str, str] = field(default_factory=dict)  # type -> why it is left to oso
    actor_kinds: frozenset[str] = frozenset()
    fallback_actor_kinds: dict[str, str] = field(default_factory=dict)
    # The portal's types that oso evaluates: their rules may read attributes, so their checks are
    # put to oso with the directory's attributes and the request's properties, and a resource of
    # one the directory does not hold is still decided, on its properties. The service's own types
    # (under the system) are not: their objects are the service's, decided with their own attributes.
    attribute_types: frozenset[str] = frozenset()

    def entries(self) -> int:
        return sum(len(t.permissions) for t in self.types.values())


def _statements(body: str) -> list[str]:
    return [" ".join(s.split()) for s in body.split(";") if s.strip()]


def _top_level_rules(source: str) -> list[str]:
    """Rules outside actor/resource blocks, whitespace-normalized, without the trailing ``;``."""
    text = strip_comments(source)
    outside, position = [], 0
    for block in blocks(text):
        outside.append(text[position:block.start])
        position = block.end
    outside.append(text[position:])
    return _statements("".join(outside))


def _unsupported(declarations: Declarations, sources: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Resource types and actor kinds the table cannot describe exactly, with the reason."""
    polar_to_type = {rt.polar_name: key for key, rt in declarations.resource_types.items()}
    polar_to_actor = {name: key for key, name in declarations.actor_types.items()}
    types: dict[str, str] = {}
    actors: dict[str, str] = {}
    standard_has_role: set[str] = set()
    for source in sources:
        for block in blocks(strip_comments(source)):
            if block.kind != "resource":
                continue
            key = polar_to_type[block.name]
            for statement in _statements(block.body):
                if not (_DECLARATION.match(statement) or _SHORTHAND.match(statement)):
                    types[key] = f"rule {statement!r} in its resource block is not a plain role implication"
            rt = declarations.resource_types.get(key)
            if rt and set(rt.relations) - {"parent"}:
                types[key] = f"relations other than parent: {sorted(set(rt.relations) - {'parent'})}"
        for rule in _top_level_rules(source):
            matched = next((p.match(rule) for p in _KNOWN_RULES if p.match(rule)), None)
            if matched is not None:
                if rule.startswith("has_role"):
                    standard_has_role.add(matched.group(2))
                continue
            named = [t for t in _SPECIALIZER.findall(rule.split(" if ")[0])]
            affected_types = [polar_to_type[n] for n in named if n in polar_to_type]
            affected_actors = [polar_to_actor[n] for n in named if n in polar_to_actor]
            # A rule about named resource types takes those types to oso; one about an actor type
            # alone (say a custom has_role) takes that kind of actor; one naming neither, everything.
            if affected_types:
                types.update({key: f"rule {rule!r}" for key in affected_types})
            elif affected_actors:
                actors.update({key: f"rule {rule!r}" for key in affected_actors})
            else:
                types.update({key: f"rule {rule!r} may apply to any type" for key in declarations.resource_types})
    for polar_name, key in polar_to_actor.items():
        if polar_name not in standard_has_role:
            actors.setdefault(key, "its has_role rule is not the standard grant rule")
    return types, actors


def _chain(declarations: Declarations, resource_type: ResourceType) -> tuple[str, ...]:
    chain, current = [resource_type.key], resource_type.parent_type
    while current is not None:
        chain.append(current)
        current = declarations.resource_types[current].parent_type
    return tuple(chain)


_compiled_versions: dict[str, CompiledModel] = {}


def compile_model(policy) -> CompiledModel:
    """Read the role table back from ``policy`` (an :class:`accessreview.authz.policy.Policy`).

    The table depends only on the policy files, so it is kept per policy version.
    """
    cached = _compiled_versions.get(policy.version)
    if cached is None:
        cached = _compiled_versions[policy.version] = _compile(policy)
    return cached


def _compile(policy) -> CompiledModel:
    declarations: Declarations = policy.declarations
    unsupported_types, unsupported_actors = _unsupported(declarations, [f.source for f in policy.files])
    model = CompiledModel(fallback_types=unsupported_types, fallback_actor_kinds=unsupported_actors)
    model.actor_kinds = frozenset(k for k in declarations.actor_types if k not in unsupported_actors)
    probe_kind = next(iter(sorted(model.actor_kinds)), None)
    for key, resource_type in declarations.resource_types.items():
        if key in unsupported_types:
            continue
        if probe_kind is None:
            model.fallback_types[key] = "no actor kind is compiled"
            continue
        chain = _chain(declarations, resource_type)
        if any(t in unsupported_types for t in chain[1:]):
            model.fallback_types[key] = "an ancestor type is not compiled"
            continue
        model.types[key] = _probe_type(policy, declarations, chain, f"{probe_kind}:{PROBE_ACTOR}", probe_kind)
    model.attribute_types = frozenset(
        key for key in model.fallback_types
        if _chain(declarations, declarations.resource_types[key])[-1] != SERVICE_TYPE)
    return model


def _probe_type(policy, declarations: Declarations, chain: tuple[str, ...], actor: str, kind: str) -> CompiledType:
    resources = [ResourceRecord(f"{t}:probe-{depth}", t, f"{chain[depth + 1]}:probe-{depth + 1}"
                                if depth + 1 < len(chain) else None)
                 for depth, t in enumerate(chain)]
    target = resources[0].key
    permissions: dict[tuple[int, str], frozenset[str]] = {}
    roles: dict[tuple[int, str], frozenset[str]] = {}
    for depth, type_key in enumerate(chain):
        for role in declarations.resource_types[type_key].roles:
            index = DirectoryIndex([PrincipalRecord(actor, kind)], resources,
                                   [GrantRecord(1, actor, role, resources[depth].key)], [])
            granted = frozenset(policy.authorized_actions(index, PROBE_TIME, actor, target))
            if granted:
                permissions[(depth, role)] = granted
                roles[(depth, role)] = frozenset(policy.roles_on(index, PROBE_TIME, actor, target))
    by_action: dict[str, dict[int, set[str]]] = {}
    for (depth, role), granted in permissions.items():
        for action in granted:
            by_action.setdefault(action, {}).setdefault(depth, set()).add(role)
    return CompiledType(
        key=chain[0], chain=chain, permissions=permissions, roles=roles,
        by_action={a: {d: frozenset(r) for d, r in depths.items()} for a, depths in by_action.items()})
