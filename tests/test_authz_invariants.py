"""Property-based invariants of the authorization engine (compiled table + oso fallback).

oso, evaluating the loaded Polar policy, is the oracle: the Evaluator's compiled answers must equal
``Policy.is_allowed`` for every actor, permission and resource of randomly generated directories,
under the real policies, random shorthand role models and policies with constructs that force
types or actor kinds back to oso. Lists and "who has access" must agree with checks, and the grants
a decision cites must be live grants the actor holds.
"""

from __future__ import annotations

import signal
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, currently_in_test_context, example, given, note, settings
from hypothesis import strategies as st

from accessreview.authz.compiled import compile_model
from accessreview.authz.evaluator import Evaluator
from accessreview.authz.index import DirectoryIndex, GrantRecord, PrincipalRecord, ResourceRecord
from accessreview.authz.policy import Policy, PolicyFile, PolicyLoadError
from accessreview.authz.properties import given as facts
from strategies import HAS_ROLE, NOW, PRELUDE, World, directories, polar_policies

POLICY_DIR = Path(__file__).resolve().parents[1] / "policies"

_loaded: dict[str, Policy] = {}


def real_policy() -> Policy:
    if "real" not in _loaded:
        _loaded["real"] = Policy.load(POLICY_DIR)
    return _loaded["real"]


def real_files() -> list[PolicyFile]:
    return list(real_policy().files)


def extended_policy(extra: str) -> Policy:
    """The real policy with ``extra`` appended to portal.polar."""
    if extra not in _loaded:
        files = [PolicyFile(f.name, f.source + "\n" + extra + "\n") if f.name == "portal.polar" else f
                 for f in real_files()]
        _loaded[extra] = Policy(files)
    return _loaded[extra]


def actions_of(policy: Policy) -> list[str]:
    """Every permission declared by any type."""
    return sorted({p for rt in policy.declarations.resource_types.values() for p in rt.permissions})


def types_of(policy: Policy) -> list[str]:
    """Directory types: the service's own objects (whose parent is the system) never are."""
    return sorted(k for k, rt in policy.declarations.resource_types.items() if rt.parent_type != "system")


FAST = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---------------------------------------------------------------------------------------------
# The invariants, as helpers shared by the tests
# ---------------------------------------------------------------------------------------------

def checks_of(evaluator: Evaluator, world: World, actions: list[str]) -> dict[tuple[str, str, str], bool]:
    return {(actor, action, resource): evaluator.check(actor, action, resource, NOW).allowed
            for actor in world.actors for action in actions for resource in world.resource_keys}


def assert_checks_match_oso(policy: Policy, evaluator: Evaluator, world: World, actions: list[str]) -> dict:
    """(1) ``Evaluator.check(...).allowed == policy.is_allowed(...)`` for every triple. Returns the checks."""
    index = world.index()
    checks = checks_of(evaluator, world, actions)
    mismatches = []
    for (actor, action, resource), allowed in checks.items():
        expected = policy.is_allowed(index, NOW, actor, action, resource)
        if allowed != expected:
            mismatches.append(f"check({actor}, {action}, {resource}) = {allowed}, oso says {expected}")
    assert not mismatches, "\n".join(mismatches[:20])
    return checks


def assert_lists_match_checks(evaluator: Evaluator, world: World, actions: list[str], types: list[str],
                              checks: dict) -> None:
    """(2) ``resources_for`` is the sorted list of resources of the type that ``check`` allows."""
    for actor in world.actors:
        for action in actions:
            for type_ in types:
                expected = sorted(r.key for r in world.resources
                                  if r.type == type_ and checks[(actor, action, r.key)])
                got = evaluator.resources_for(actor, action, type_, NOW)
                assert got == expected, f"resources_for({actor}, {action}, {type_}) = {got}, checks give {expected}"


def assert_access_matches_checks(evaluator: Evaluator, world: World, actions: list[str], checks: dict) -> None:
    """(3) ``access(resource)`` lists exactly the actors with some allowed action, with exactly those actions."""
    grants = {g.id: g for g in world.grants}
    kinds = {p.key: p.kind for p in world.principals}
    for resource in world.resource_keys:
        entries = evaluator.access(resource, NOW)
        got = {e["principal"]: set(e["permissions"]) for e in entries}
        assert len(got) == len(entries), f"access({resource}) lists an actor twice: {entries}"
        expected = {}
        for actor in world.actors:
            allowed = {a for a in actions if checks[(actor, a, resource)]}
            if allowed:
                expected[actor] = allowed
        assert got == expected, f"access({resource}) = {got}, checks give {expected}"
        assert not [e for e in entries if kinds[e["principal"]] == "group"], f"access({resource}) lists a group"
        ancestors = world.ancestors_or_self(resource)
        for entry in entries:
            holders = {entry["principal"]} | world.groups_containing(entry["principal"])
            for via in entry["via"]:
                grant = grants.get(via["grant_id"])
                assert grant is not None, f"access({resource}): via names unknown grant {via}"
                assert grant.principal in holders, f"access({resource}): {entry['principal']} does not hold {grant}"
                assert (via["principal"], via["role"], via["resource"]) == (grant.principal, grant.role,
                                                                           grant.resource), (via, grant)
                assert not grant.expired_at(NOW), f"access({resource}): via an expired grant {grant}"
                assert grant.resource in ancestors, f"access({resource}): via a grant elsewhere {grant}"


def assert_decision_grants(evaluator: Evaluator, world: World, actions: list[str]) -> None:
    """(4) An allowing decision cites only live grants held by the actor or its groups, on the resource
    or an ancestor; a compiled decision cites at least one."""
    grants = {g.id: g for g in world.grants}
    kinds = {p.key: p.kind for p in world.principals}
    types = {r.key: r.type for r in world.resources}
    for actor in world.actors:
        holders = {actor} | world.groups_containing(actor)
        for resource in world.resource_keys:
            ancestors = world.ancestors_or_self(resource)
            compiled = (kinds[actor] in evaluator.model.actor_kinds and types[resource] in evaluator.model.types
                        and not evaluator.force_oso)
            for action in actions:
                decision = evaluator.check(actor, action, resource, NOW)
                if not decision.allowed:
                    assert decision.grants == (), decision
                    continue
                if compiled:
                    assert decision.grants, f"compiled allow without grants: {actor} {action} {resource}"
                assert len(set(decision.grants)) == len(decision.grants), decision
                for grant_id in decision.grants:
                    grant = grants.get(grant_id)
                    assert grant is not None, f"{decision} cites unknown grant {grant_id}"
                    assert not grant.expired_at(NOW), f"{decision} cites expired {grant}"
                    assert grant.principal in holders, f"{decision} for {actor} cites {grant}"
                    assert grant.resource in ancestors, f"{decision} on {resource} cites {grant}"


def assert_same_answers(a: Evaluator, b: Evaluator, world: World, actions: list[str], types: list[str]) -> None:
    """(5) Two evaluators give the same checks, lists and access lists (``via`` aside: oso has none)."""
    for actor in world.actors:
        for resource in world.resource_keys:
            for action in actions:
                assert a.check(actor, action, resource, NOW).allowed == b.check(actor, action, resource, NOW).allowed, \
                    (actor, action, resource)
        for action in actions:
            for type_ in types:
                assert a.resources_for(actor, action, type_, NOW) == b.resources_for(actor, action, type_, NOW), \
                    (actor, action, type_)
    for resource in world.resource_keys:
        got_a = [(e["principal"], e["permissions"]) for e in a.access(resource, NOW)]
        got_b = [(e["principal"], e["permissions"]) for e in b.access(resource, NOW)]
        assert got_a == got_b, (resource, got_a, got_b)


def all_invariants(policy: Policy, world: World, *, forced: bool = True) -> None:
    if currently_in_test_context():
        note(world.as_code())
    model = compile_model(policy)
    index = world.index()
    evaluator = Evaluator(policy, model, index)
    actions, types = actions_of(policy), types_of(policy)
    checks = assert_checks_match_oso(policy, evaluator, world, actions)
    assert_lists_match_checks(evaluator, world, actions, types, checks)
    assert_access_matches_checks(evaluator, world, actions, checks)
    assert_decision_grants(evaluator, world, actions)
    if forced:
        assert_same_answers(evaluator, Evaluator(policy, model, index, force_oso=True), world, actions, types)


# ---------------------------------------------------------------------------------------------
# The real policies
# ---------------------------------------------------------------------------------------------

def test_real_policy_is_fully_compiled():
    """Otherwise the differential tests below would compare oso with itself."""
    model = compile_model(real_policy())
    # Review items and queues are decided by attribute (their reviewer), and who may open the pages by the
    # actor's kind: oso evaluates them, by design. So are todos, whose rules read attributes, and only
    # they are decided on a request's properties.
    internal = {"review_item", "review_queue", "pages"}
    assert set(model.fallback_types) == internal | {"todo"}
    assert model.attribute_types == {"todo"}
    assert model.fallback_actor_kinds == {}
    assert set(model.types) == set(real_policy().declarations.resource_types) - internal - {"todo"}
    assert model.actor_kinds == {"user", "service"}


def real_worlds(**kwargs):
    return directories(real_policy().declarations, **kwargs)


@settings(max_examples=40, **FAST)
@given(world=real_worlds())
def test_check_matches_oso(world):
    """(1) Compiled checks equal oso's for every user, service and group × permission × resource."""
    note(world.as_code())
    policy = real_policy()
    evaluator = Evaluator(policy, compile_model(policy), world.index())
    # Plus a role name and an undeclared name as actions: both must be denied alike.
    assert_checks_match_oso(policy, evaluator, world, [*actions_of(policy), "admin", "no_such_action"])


@settings(max_examples=150, **FAST)
@given(world=real_worlds(max_resources=12, max_grants=12))
def test_resources_for_matches_checks(world):
    """(2) resources_for(actor, action, type) is exactly the sorted resources check allows."""
    note(world.as_code())
    policy = real_policy()
    evaluator = Evaluator(policy, compile_model(policy), world.index())
    actions = actions_of(policy)
    assert_lists_match_checks(evaluator, world, actions, types_of(policy), checks_of(evaluator, world, actions))


CYCLIC = World(
    principals=(PrincipalRecord("user:u0", "user"), PrincipalRecord("service:s0", "service"),
                PrincipalRecord("user:u1", "user", "disabled"),
                PrincipalRecord("group:g0", "group"), PrincipalRecord("group:g1", "group")),
    resources=(ResourceRecord("organization:n0", "organization"),
               ResourceRecord("project:n1", "project", "organization:n0"),
               ResourceRecord("document:n2", "document", "project:n1"),
               ResourceRecord("invoice:n3", "invoice", "organization:n0"),
               ResourceRecord("system:n4", "system")),
    grants=(GrantRecord(1, "group:g0", "admin", "organization:n0"),
            GrantRecord(2, "group:g1", "editor", "project:n1", NOW + timedelta(days=1)),
            GrantRecord(3, "group:g1", "viewer", "document:n2", NOW),
            GrantRecord(4, "group:g0", "auditor", "system:n4")),
    # g0 and g1 contain each other, g0 contains itself: the directory refuses this, the engine must cope.
    memberships=(("group:g0", "group:g1"), ("group:g1", "group:g0"), ("group:g0", "group:g0"),
                 ("group:g1", "user:u0"), ("group:g1", "user:u1"), ("group:g0", "service:s0")),
)


def test_group_cycles_terminate():
    """Nested groups that loop (and a group in itself) neither hang the engine nor change answers."""
    alarm = getattr(signal, "SIGALRM", None)
    if alarm is None:
        pytest.skip("needs SIGALRM")

    def timeout(*_):
        raise TimeoutError("the engine loops on cyclic groups")

    previous = signal.signal(alarm, timeout)
    signal.alarm(30)
    try:
        all_invariants(real_policy(), CYCLIC)
        evaluator = Evaluator(real_policy(), compile_model(real_policy()), CYCLIC.index())
        assert evaluator.check("user:u0", "manage_members", "organization:n0", NOW).grants == (1,)
        assert evaluator.check("service:s0", "upload", "project:n1", NOW).allowed
        assert not evaluator.check("user:u1", "read", "organization:n0", NOW).allowed  # disabled
    finally:
        signal.alarm(0)
        signal.signal(alarm, previous)


@settings(max_examples=150, **FAST)
@example(world=CYCLIC)
@given(world=real_worlds(max_resources=12, max_grants=12))
def test_access_matches_checks(world):
    """(3) access(resource) lists exactly the actors check allows anything, with exactly those actions,
    never a group, and only via real grants the actor holds."""
    note(world.as_code())
    policy = real_policy()
    evaluator = Evaluator(policy, compile_model(policy), world.index())
    actions = actions_of(policy)
    assert_access_matches_checks(evaluator, world, actions, checks_of(evaluator, world, actions))


@settings(max_examples=150, **FAST)
@given(world=real_worlds(max_resources=12, max_grants=12))
def test_decision_grants_are_live_and_held(world):
    """(4) An allowing decision cites existing, unexpired grants held by the actor or its groups."""
    note(world.as_code())
    policy = real_policy()
    assert_decision_grants(Evaluator(policy, compile_model(policy), world.index()), world, actions_of(policy))


@settings(max_examples=12, **FAST)
@given(world=real_worlds(max_resources=7))
def test_forced_oso_matches_compiled(world):
    """(5) force_oso=True answers checks, lists and access exactly like the compiled evaluator."""
    note(world.as_code())
    policy = real_policy()
    model, index = compile_model(policy), world.index()
    assert_same_answers(Evaluator(policy, model, index), Evaluator(policy, model, index, force_oso=True),
                        world, actions_of(policy), types_of(policy))


# ---------------------------------------------------------------------------------------------
# Random role models
# ---------------------------------------------------------------------------------------------

def load_or_reject(spec) -> Policy:
    note(repr(spec))
    try:
        return Policy([PolicyFile(name, source) for name, source in spec.files])
    except PolicyLoadError as exc:
        note(f"rejected by Polar: {exc}")
        assume(False)
        raise  # unreachable


@settings(max_examples=100, **FAST)
@given(data=st.data())
def test_random_policy_compiled_matches_oso(data):
    """(6) Random shorthand role models compile completely, and checks, lists and access agree with oso."""
    policy = load_or_reject(data.draw(polar_policies(), label="policy"))
    model = compile_model(policy)
    assert model.fallback_types == {}, model.fallback_types
    assert model.actor_kinds == {"user", "service"}
    world = data.draw(directories(policy.declarations, max_resources=8), label="world")
    all_invariants(policy, world, forced=False)


@settings(max_examples=25, **FAST)
@given(data=st.data())
def test_random_policy_forced_oso_matches_compiled(data):
    """(5)+(6) On random role models too, forcing oso changes no answer."""
    policy = load_or_reject(data.draw(polar_policies(), label="policy"))
    world = data.draw(directories(policy.declarations, max_resources=6), label="world")
    note(world.as_code())
    model, index = compile_model(policy), world.index()
    assert_same_answers(Evaluator(policy, model, index), Evaluator(policy, model, index, force_oso=True),
                        world, actions_of(policy), types_of(policy))


# ---------------------------------------------------------------------------------------------
# Constructs the compiler cannot know: the types (or actor kinds) they touch go to oso
# ---------------------------------------------------------------------------------------------

VIP = 'has_permission(user: User, "read", _document: Document) if user.key = "user:vip";'
ROOT = 'allow(actor, "read", _resource) if actor.key = "user:root";'
BOSS_ANYWHERE = 'has_role(user: User, "admin", _resource: Resource) if user.key = "user:boss";'
BOSS_OF_ORGS = 'has_role(user: User, "admin", _organization: Organization) if user.key = "user:boss";'


def _table_answers(model, actor_kind: str, resource_type: str) -> bool:
    return actor_kind in model.actor_kinds and resource_type in model.types


def test_fallback_policies_load_and_fall_back():
    real_types = set(real_policy().declarations.resource_types)

    vip = compile_model(extended_policy(VIP))
    assert "document" in vip.fallback_types

    root = compile_model(extended_policy(ROOT))
    assert set(root.fallback_types) == real_types
    assert root.types == {}

    # The table must not answer for users anywhere (today: users are a fallback actor kind).
    boss = compile_model(extended_policy(BOSS_ANYWHERE))
    assert not any(_table_answers(boss, "user", t) for t in real_types)

    # Nor for users on an organization or anything under it (roles flow down through "on parent").
    boss_orgs = compile_model(extended_policy(BOSS_OF_ORGS))
    assert not any(_table_answers(boss_orgs, "user", t) for t in ("organization", "project", "document", "invoice"))


@settings(max_examples=10, **FAST)
@given(world=real_worlds(max_resources=6, fixed_users=("user:vip",)))
def test_fallback_vip_reads_every_document(world):
    """(7) An extra has_permission on Document: documents go to oso, and the VIP reads them all."""
    policy = extended_policy(VIP)
    evaluator = Evaluator(policy, compile_model(policy), world.index())
    documents = [r.key for r in world.resources if r.type == "document"]
    for document in documents:
        assert evaluator.check("user:vip", "read", document, NOW).allowed
    assert evaluator.resources_for("user:vip", "read", "document", NOW) == sorted(documents)
    all_invariants(policy, world, forced=False)


@settings(max_examples=8, **FAST)
@given(world=real_worlds(max_resources=6, fixed_users=("user:root",)))
def test_fallback_untyped_rule(world):
    """(7) A rule with no type specializer sends every type to oso; answers still equal oso's."""
    policy = extended_policy(ROOT)
    evaluator = Evaluator(policy, compile_model(policy), world.index())
    for resource in world.resource_keys:  # root reads anything, even where "read" is not declared
        assert evaluator.check("user:root", "read", resource, NOW).allowed
    all_invariants(policy, world, forced=False)


@pytest.mark.parametrize("extra", [BOSS_ANYWHERE, BOSS_OF_ORGS], ids=["actor-kind", "organization-tree"])
@settings(max_examples=8, **FAST)
@given(world=real_worlds(max_resources=6, fixed_users=("user:boss",)))
def test_fallback_custom_has_role(extra, world):
    """(7) A custom has_role for one actor kind, or on one type, goes to oso; answers still equal oso's
    (with users answered by oso and services by the table in the actor-kind case)."""
    all_invariants(extended_policy(extra), world, forced=False)


# ---------------------------------------------------------------------------------------------
# Policies Polar accepts but the compiler cannot survive (known bugs, outside the invariants above)
# ---------------------------------------------------------------------------------------------

def load_and_compile(source: str) -> None:
    """A policy is either refused with PolicyLoadError, or it loads and compiles: nothing else."""
    try:
        policy = Policy([PolicyFile("p.polar", source)])
    except PolicyLoadError:
        return
    compile_model(policy)


# The smallest implication cycle; "a" if "b"; "b" if "a"; behaves the same, only slower.
IMPLICATION_CYCLE = PRELUDE + """
resource Org {
    roles = ["a"];
    permissions = ["read"];

    "read" if "read";
    "read" if "a";
}
""" + HAS_ROLE

ACTOR_PARENT = PRELUDE + """
resource Doc {
    roles = ["viewer"];
    permissions = ["read"];
    relations = { parent: User };

    "read" if "viewer";
    "read" if "parent";
}

has_relation(user: User, "parent", doc: Doc) if doc.parent = user;
""" + HAS_ROLE


def test_implication_cycle_is_refused_at_load():
    """Polar accepts it, then recurses without end on every denied query: refused instead."""
    with pytest.raises(PolicyLoadError, match="implies itself"):
        Policy([PolicyFile("p.polar", IMPLICATION_CYCLE)])


def test_parent_relation_to_an_actor_is_refused_at_load():
    with pytest.raises(PolicyLoadError, match="must be a resource type"):
        Policy([PolicyFile("p.polar", ACTOR_PARENT)])


# ---------------------------------------------------------------------------------------------
# Request properties and directory attributes (attribute rules: Todo in the real policy)
# ---------------------------------------------------------------------------------------------

DEPARTMENTS = st.sampled_from(["Tax", "Audit", 7, None])
TEAMS = st.sampled_from(["north", "south", 7, None])  # a custom attribute of principals (their `attributes`)


@st.composite
def facts_for(draw, world: World):
    """A check's properties and context as a request might give them: owners among the world's ids
    (and strangers'), departments, the reserved names a request cannot override, or nothing."""
    ids = [key.partition(":")[2] for key in world.actors] + ["stranger"]
    properties = st.fixed_dictionaries({}, optional={
        "ownerID": st.sampled_from(ids), "department": DEPARTMENTS, "team": TEAMS,
        "parent": st.sampled_from(world.resource_keys or ["x"]), "tags": st.lists(st.text(max_size=3), max_size=2)})
    subject = st.fixed_dictionaries({}, optional={"department": DEPARTMENTS, "team": TEAMS,
                                                  "status": st.just("disabled")})
    return facts(draw(st.none() | subject), draw(st.none() | properties),
                 draw(st.none() | st.just({"channel": "mobile"})))


@st.composite
def attributed_worlds(draw):
    """A real-policy world whose directory holds departments and custom attributes (a team) for some
    principals and owners for some todos, and the resources to ask about: every held one and todos
    (and a document) it does not hold."""
    world = draw(real_worlds(max_resources=10, max_grants=8))
    principal_attributes = {p.key: draw(st.fixed_dictionaries({}, optional={"department": DEPARTMENTS, "team": TEAMS}))
                            for p in world.principals if draw(st.booleans())}
    resource_attributes = {r.key: {"ownerID": draw(st.sampled_from([a.partition(":")[2] for a in world.actors]))}
                           for r in world.resources if r.type == "todo" and draw(st.booleans())}
    index = DirectoryIndex(world.principals, world.resources, world.grants, world.memberships,
                           attribute_types=frozenset({"todo"}), principal_attributes=principal_attributes,
                           resource_attributes=resource_attributes)
    asked = [*world.resource_keys, "todo:unheld", "document:unheld", "undeclared:unheld"]
    return world, index, asked


@settings(max_examples=40, **FAST)
@given(data=st.data())
def test_properties_checks_match_oso_and_forced_oso(data):
    """(8) With request properties, subject properties and context on every check: the evaluator's
    answer equals oso's (``Policy.is_allowed`` with the same facts) and the forced-oso evaluator's,
    for held todos (oso), todos the directory does not hold (oso, on their properties alone), and the
    compiled types, whose answer properties never change. A resource of another type the directory
    does not hold is a deny."""
    world, index, asked = data.draw(attributed_worlds(), label="world")
    note(world.as_code())
    policy = real_policy()
    model = compile_model(policy)
    evaluator, forced = Evaluator(policy, model, index), Evaluator(policy, model, index, force_oso=True)
    types = {r.key: r.type for r in world.resources}
    for actor in world.actors:
        for resource in asked:
            asked_with = data.draw(facts_for(world), label=f"facts for {actor} on {resource}")
            for action in ("read", "edit", "delete", "share"):
                allowed = evaluator.check(actor, action, resource, NOW, asked_with).allowed
                expected = (policy.is_allowed(index, NOW, actor, action, resource, given=asked_with)
                            if resource in types or resource == "todo:unheld" else False)
                assert allowed == expected, (actor, action, resource, asked_with)
                assert forced.check(actor, action, resource, NOW, asked_with).allowed == allowed, \
                    (actor, action, resource)
                if types.get(resource) in model.types:  # the table's types read no attributes
                    assert allowed == evaluator.check(actor, action, resource, NOW).allowed, (actor, action, resource)
                elif resource not in types and resource != "todo:unheld":
                    assert not allowed, (actor, action, resource, asked_with)


def test_properties_decide_a_todo_the_directory_does_not_hold():
    """(8) The example every other invariant leaves to chance: the owner by id, not by key."""
    policy = real_policy()
    index = DirectoryIndex([PrincipalRecord("user:u0", "user"), PrincipalRecord("user:u1", "user")], [], [], [],
                           principal_attributes={"user:u1": {"department": "Tax"}})
    evaluator = Evaluator(policy, compile_model(policy), index)
    assert evaluator.check("user:u0", "delete", "todo:t", NOW, facts(None, {"ownerID": "u0"}, None)).allowed
    assert not evaluator.check("user:u0", "delete", "todo:t", NOW, facts(None, {"ownerID": "user:u0"}, None)).allowed
    assert not evaluator.check("user:u0", "delete", "todo:t", NOW).allowed
    assert evaluator.check("user:u1", "read", "todo:t", NOW, facts(None, {"department": "Tax"}, None)).allowed
    assert not evaluator.check("user:u1", "edit", "todo:t", NOW, facts(None, {"department": "Tax"}, None)).allowed
    assert evaluator.check("user:u0", "read", "todo:t", NOW, facts({"team": "north"}, {"team": "north"}, None)).allowed
    assert not evaluator.check("user:u1", "read", "todo:t", NOW, facts(None, {"team": "north"}, None)).allowed
    assert not evaluator.check("user:u0", "read", "task:t", NOW, facts(None, {"ownerID": "u0"}, None)).allowed


@settings(max_examples=25, **FAST)
@given(data=st.data())
def test_what_searches_rest_on_answers_as_checks_with_facts(data):
    """(9) The AuthZEN searches (accessreview.authz.authzen) answer what a check of each candidate with
    the request's facts allows: where ``enumerates`` says so, the enumerations (which read no facts)
    equal those checks; elsewhere the candidates (``actors_of_kind``, ``resources_of_type``) hold
    every principal or resource a check with the facts could allow; a kind that cannot act is allowed
    nothing."""
    world = data.draw(real_worlds(max_resources=8, max_grants=8), label="world")
    note(world.as_code())
    parents = [r.key for r in world.resources if r.type == "project"] + [None]
    todos = [ResourceRecord(f"todo:t{n}", "todo", data.draw(st.sampled_from(parents), label="parent"))
             for n in range(3)]
    ids = [key.partition(":")[2] for key in world.actors]
    index = DirectoryIndex(
        world.principals, [*world.resources, *todos], world.grants, world.memberships,
        attribute_types=frozenset({"todo"}),
        principal_attributes={p.key: {"department": data.draw(DEPARTMENTS, label="department")}
                              for p in world.principals},
        resource_attributes={t.key: {"ownerID": data.draw(st.sampled_from(ids), label="owner")} for t in todos})
    note(f"todos: {todos}; attributes: {index.resource_attributes}, {index.principal_attributes}")
    asked = [*sorted(index.resources), "todo:unheld", "document:unheld"]
    policy = real_policy()
    evaluator = Evaluator(policy, compile_model(policy), index)
    kinds = sorted({p.kind for p in world.principals})
    for action in ("read", "edit", "delete"):
        with_facts = data.draw(facts_for(world), label=f"facts for {action}")
        for principal in world.principals:
            for kind in types_of(policy):
                allowed = [r for r in sorted(index.resources)
                           if evaluator.check(principal.key, action, r, NOW, with_facts).allowed]
                assert all(index.resources[r].type != kind or r in evaluator.resources_of_type(kind) for r in allowed)
                if not evaluator.can_act(principal.kind):
                    assert not allowed, principal.key
                if evaluator.enumerates(principal.kind, kind):
                    assert evaluator.resources_for(principal.key, action, kind, NOW) == \
                        [r for r in allowed if index.resources[r].type == kind], (principal.key, action, kind)
        for resource in asked:
            target = index.resources.get(resource)
            for kind in kinds:
                allowed = [p.key for p in world.principals if p.kind == kind
                           and evaluator.check(p.key, action, resource, NOW, with_facts).allowed]
                assert set(allowed) <= set(evaluator.actors_of_kind(kind)), (kind, resource)
                if target is not None and evaluator.enumerates(kind, target.type):
                    enumerated = sorted(e["principal"] for e in evaluator.access(resource, NOW)
                                        if e["principal"].startswith(f"{kind}:") and action in e["permissions"])
                    assert enumerated == sorted(allowed), (kind, action, resource)
