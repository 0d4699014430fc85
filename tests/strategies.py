"""Hypothesis strategies for the authorization engine: random directories and random role models.

``directories(declarations)`` builds a valid directory for any policy's declarations: a forest of
resources following the declared parent types, users (some disabled), services, groups that nest
(optionally with cycles, which the directory refuses but the engine must survive) and grants of
declared roles, some expired at ``NOW`` and some held by groups.

``polar_policies()`` builds a random shorthand-only role model as Polar text: 2–3 resource types in
a parent tree, random roles and permissions, random implications that cannot loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from hypothesis import strategies as st

from accessreview.authz.declarations import Declarations, type_key
from accessreview.authz.index import DirectoryIndex, GrantRecord, PrincipalRecord, ResourceRecord

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)

# ``expires_at`` values around NOW: expired means ``expires_at <= NOW`` (NOW itself is expired).
EXPIRIES = (
    None,
    NOW - timedelta(days=30),
    NOW - timedelta(seconds=1),
    NOW,
    NOW + timedelta(seconds=1),
    NOW + timedelta(days=30),
)


@dataclass(frozen=True)
class World:
    """One generated directory, with the lists the invariants quantify over."""

    principals: tuple[PrincipalRecord, ...]
    resources: tuple[ResourceRecord, ...]
    grants: tuple[GrantRecord, ...]
    memberships: tuple[tuple[str, str], ...]  # (group, member)

    def index(self) -> DirectoryIndex:
        return DirectoryIndex(self.principals, self.resources, self.grants, self.memberships)

    @property
    def actors(self) -> list[str]:
        """Users, services and groups: every principal is asked about."""
        return [p.key for p in self.principals]

    @property
    def resource_keys(self) -> list[str]:
        return [r.key for r in self.resources]

    def groups_containing(self, principal: str) -> set[str]:
        """Every group that contains ``principal``, directly or through nesting (computed here, not by the index)."""
        found: set[str] = set()
        frontier = {principal}
        while frontier:
            frontier = {g for g, m in self.memberships if m in frontier} - found
            found |= frontier
        found.discard(principal)
        return found

    def ancestors_or_self(self, resource: str) -> list[str]:
        by_key = {r.key: r for r in self.resources}
        chain, node = [], by_key.get(resource)
        while node is not None and node.key not in chain:
            chain.append(node.key)
            node = by_key.get(node.parent) if node.parent else None
        return chain

    def as_code(self) -> str:
        """A pasteable reproduction of this directory."""
        lines = ["index = DirectoryIndex(", "    ["]
        lines += [f"        {p!r}," for p in self.principals]
        lines += ["    ],", "    ["]
        lines += [f"        {r!r}," for r in self.resources]
        lines += ["    ],", "    ["]
        lines += [f"        {g!r}," for g in self.grants]
        lines += ["    ],", f"    {list(self.memberships)!r},", ")"]
        return "\n".join(lines)


def _tree_order(declarations: Declarations) -> tuple[list[str], dict[str, list[str]]]:
    # The service's own objects (review items, whose parent is the system) are never in the directory.
    types = {k: rt for k, rt in declarations.resource_types.items() if rt.parent_type != "system"}
    roots = sorted(k for k, rt in types.items() if rt.parent_type not in types)
    children = {k: sorted(c for c, rt in types.items() if rt.parent_type == k) for k in types}
    return roots, children


@st.composite
def directories(
    draw,
    declarations: Declarations,
    *,
    max_resources: int = 9,
    max_users: int = 3,
    max_services: int = 2,
    max_groups: int = 3,
    max_grants: int = 8,
    fixed_users: tuple[str, ...] = (),
    allow_cycles: bool = True,
) -> World:
    # -- resources: a forest following the declared parent types, BFS so every level gets a chance
    roots, children = _tree_order(declarations)
    resources: list[ResourceRecord] = []
    counter = 0
    queue: list[tuple[str, str | None, int]] = [(t, None, draw(st.integers(1, 2), label=f"roots of {t}"))
                                                 for t in roots]
    while queue:
        # Which pending branch grows next is drawn, so deep chains and wide levels both occur.
        type_, parent, count = queue.pop(draw(st.integers(0, len(queue) - 1)))
        for _ in range(count):
            if len(resources) >= max_resources:
                break
            key = f"{type_}:n{counter}"
            counter += 1
            resources.append(ResourceRecord(key, type_, parent))
            for child_type in children[type_]:
                queue.append((child_type, key, draw(st.integers(0, 2))))

    # -- principals
    status = st.sampled_from(["active", "active", "disabled"])
    users = [PrincipalRecord(key, "user", draw(status)) for key in fixed_users]
    users += [PrincipalRecord(f"user:u{i}", "user", draw(status)) for i in range(draw(st.integers(1, max_users)))]
    services = [PrincipalRecord(f"service:s{i}", "service", draw(status))
                for i in range(draw(st.integers(0, max_services)))]
    groups = [PrincipalRecord(f"group:g{i}", "group") for i in range(draw(st.integers(0, max_groups)))]
    principals = users + services + groups

    # -- memberships: nested groups; a DAG unless cycles are drawn (self-membership included)
    cyclic = allow_cycles and draw(st.booleans(), label="cyclic groups")
    memberships: list[tuple[str, str]] = []
    for i, group in enumerate(groups):
        nested = groups if cyclic else groups[i + 1:]
        candidates = [p.key for p in users + services + nested]
        members = draw(st.lists(st.sampled_from(candidates), unique=True, max_size=3)) if candidates else []
        memberships += [(group.key, m) for m in members]

    # -- grants of declared roles, some expired, some to groups, some to disabled principals
    grantable = [r for r in resources if declarations.resource_types[r.type].roles]
    grants: list[GrantRecord] = []
    if grantable:
        for grant_id in range(1, draw(st.integers(min(2, max_grants), max_grants)) + 1):
            resource = draw(st.sampled_from(grantable))
            grants.append(GrantRecord(
                grant_id,
                draw(st.sampled_from([p.key for p in principals])),
                draw(st.sampled_from(declarations.resource_types[resource.type].roles)),
                resource.key,
                draw(st.sampled_from(EXPIRIES)),
            ))
    return World(tuple(principals), tuple(resources), tuple(grants), tuple(memberships))


# ---------------------------------------------------------------------------------------------
# Random role models
# ---------------------------------------------------------------------------------------------

# The prelude every generated policy shares, copied from policies/portal.polar.
PRELUDE = """\
actor User {}
actor Service {}

allow(actor, action, resource) if
    has_permission(actor, action, resource);
"""

HAS_ROLE = """\
has_role(user: User, role: String, resource: Resource) if
    user.is_active() and
    grant in user.grants_on(resource) and
    grant.role = role and
    not grant.is_expired();

has_role(service: Service, role: String, resource: Resource) if
    service.is_active() and
    grant in service.grants_on(resource) and
    grant.role = role and
    not grant.is_expired();
"""

TYPE_NAMES = ("Org", "Team", "Repo", "Folder", "BillingAccount", "Workspace", "Ticket")
# Names are shared between roles and permissions across types (``read`` may be a role of one type and
# a permission of another); within a type they are disjoint, since Polar refuses that.
TERM_NAMES = ("owner", "admin", "member", "viewer", "guest", "read", "write", "delete", "invite", "comment")


@dataclass(frozen=True)
class PolicySpec:
    files: tuple[tuple[str, str], ...]  # (file name, Polar source), in load order

    def __repr__(self) -> str:  # readable in hypothesis' falsifying example
        return "PolicySpec(\n" + "\n".join(f"# --- {name}\n{source}" for name, source in self.files) + "\n)"


@dataclass(frozen=True)
class _TypeSpec:
    name: str
    parent: str | None
    roles: tuple[str, ...]
    permissions: tuple[str, ...]


def _quote(names) -> str:
    return ", ".join(f'"{n}"' for n in names)


@st.composite
def polar_policies(draw) -> PolicySpec:
    n_types = draw(st.integers(2, 3))
    names = draw(st.lists(st.sampled_from(TYPE_NAMES), min_size=n_types, max_size=n_types, unique=True))
    specs: list[_TypeSpec] = []
    for i, name in enumerate(names):
        # The first type is a root; later ones hang under an earlier type (a chain or a small tree),
        # or now and then stand alone as another root.
        parent = None if i == 0 else draw(st.sampled_from([*names[:i], None]))
        roles = tuple(draw(st.lists(st.sampled_from(TERM_NAMES), min_size=1 if i == 0 else 0, max_size=3,
                                    unique=True)))
        permissions = tuple(draw(st.lists(st.sampled_from([t for t in TERM_NAMES if t not in roles]),
                                          min_size=1, max_size=3, unique=True)))
        specs.append(_TypeSpec(name, parent, roles, permissions))
    by_name = {s.name: s for s in specs}

    rules: dict[str, list[tuple[str, str, bool]]] = {}  # type -> (head, body, on_parent)
    for s in specs:
        p = by_name[s.parent] if s.parent else None
        R, P = s.roles, s.permissions
        candidates = [(perm, role, False) for perm in P for role in R]                    # "perm" if "role"
        candidates += [(R[i], R[j], False) for i in range(len(R)) for j in range(i + 1, len(R))]  # acyclic
        candidates += [(P[i], P[j], False) for i in range(len(P)) for j in range(i + 1, len(P))]  # acyclic
        if p is not None:
            candidates += [(role, prole, True) for role in R for prole in p.roles]          # role on parent
            candidates += [(perm, prole, True) for perm in P for prole in p.roles]          # perm from parent role
            candidates += [(perm, pperm, True) for perm in P for pperm in p.permissions]    # perm from parent perm
            candidates += [(role, pperm, True) for role in R for pperm in p.permissions]    # role from parent perm
        rules[s.name] = draw(st.lists(st.sampled_from(candidates), unique=True, min_size=1, max_size=6)) \
            if candidates else []
    # Without any permission rule Polar refuses the policy (has_permission would be undefined).
    if not any(head in by_name[t].permissions for t, rs in rules.items() for head, _, _ in rs):
        root = specs[0]
        rules[root.name].append((root.permissions[0], root.roles[0], False))

    order = draw(st.permutations(specs))  # block order must not matter
    chunks = [PRELUDE]
    for s in order:
        lines = [f"resource {s.name} {{"]
        if draw(st.booleans()):
            lines.append('    # a comment with "quotes"; and "x" if "y"; in it')
        lines.append(f"    roles = [{_quote(s.roles)}];")
        lines.append(f"    permissions = [{_quote(s.permissions)}];")
        if s.parent:
            lines.append(f"    relations = {{ parent: {s.parent} }};")
        lines.append("")
        for head, body, on_parent in rules[s.name]:
            suffix = ' on "parent"' if on_parent else ""
            if draw(st.booleans()):
                lines.append(f'    "{head}" if "{body}"{suffix};')
            else:
                lines.append(f'    "{head}" if\n        "{body}"{suffix};')
        lines.append("}")
        chunks.append("\n".join(lines) + "\n")
        if s.parent:
            if draw(st.booleans()):
                parent_var, child_var = "parent", "child"
            else:
                parent_var, child_var = type_key(s.parent), type_key(s.name)
            chunks.append(f'has_relation({parent_var}: {s.parent}, "parent", {child_var}: {s.name}) if\n'
                          f"    {child_var}.parent = {parent_var};\n")
    chunks.append(HAS_ROLE)
    # One file, or two (the service's policy is two files): the compiler reads rules file by file.
    split = draw(st.integers(1, len(chunks)), label="files split at")
    files = [("a.polar", "\n".join(chunks[:split]))]
    if split < len(chunks):
        files.append(("b.polar", "\n".join(chunks[split:])))
    return PolicySpec(tuple(files))
