"""Who may use accessreview itself (policies/service.polar): the ``system:accessreview`` resource.

One allowed/denied pair per permission line, the admin implications, the exact permission set of
each role, and the separation between the service's roles and the portal's.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from accessreview.authz.policy import Policy, PolicyFile

SYSTEM = "system:accessreview"

ALL_PERMISSIONS = {
    "check", "sync_directory", "read_directory", "explain_access", "read_audit", "read_decisions",
    "read_reports", "manage_campaigns", "view_campaigns", "manage_tokens", "reload_policy",
}

# Permission lines of `resource System`, as (role, permission), with a role that lacks the
# permission for the denied half of the pair (None: every role has it, so the denied half is a
# principal holding no role on the system).
LINES = [
    ("portal_client", "check", "auditor"),
    ("portal_client", "sync_directory", "security_lead"),
    ("portal_client", "read_directory", None),
    ("security_lead", "read_directory", None),
    ("security_lead", "explain_access", "portal_client"),
    ("security_lead", "manage_campaigns", "auditor"),
    ("security_lead", "view_campaigns", "portal_client"),
    ("auditor", "view_campaigns", "portal_client"),
    ("security_lead", "read_reports", "portal_client"),
    ("security_lead", "read_decisions", "portal_client"),
    ("security_lead", "read_audit", "portal_client"),
    ("auditor", "read_directory", None),
    ("auditor", "explain_access", "portal_client"),
    ("auditor", "read_audit", "portal_client"),
    ("auditor", "read_decisions", "portal_client"),
    ("auditor", "read_reports", "portal_client"),
    ("admin", "manage_tokens", "security_lead"),
    ("admin", "reload_policy", "security_lead"),
]

EXACT = {
    "portal_client": {"check", "sync_directory", "read_directory"},
    "security_lead": {"read_directory", "explain_access", "manage_campaigns", "view_campaigns", "read_reports",
                      "read_decisions", "read_audit"},
    "auditor": {"read_directory", "explain_access", "read_audit", "read_decisions", "read_reports", "view_campaigns"},
    "admin": ALL_PERMISSIONS,
}


@pytest.mark.parametrize(
    "role, permission, denied_role", LINES, ids=[f"{p}-if-{r}" for r, p, _ in LINES]
)
def test_permission_line(world, role, permission, denied_role):
    if denied_role is None:
        authz = world(f"user:alice {role} {SYSTEM}", principals=["user:bob"])
    else:
        authz = world(f"user:alice {role} {SYSTEM}", f"user:bob {denied_role} {SYSTEM}")
    assert authz.can("user:alice", permission, SYSTEM)
    assert not authz.can("user:bob", permission, SYSTEM)


@pytest.mark.parametrize("role", list(EXACT))
def test_exact_permissions_of_each_role(world, role):
    authz = world(f"service:x {role} {SYSTEM}")
    assert authz.actions("service:x", SYSTEM) == EXACT[role]
    assert {p for p in ALL_PERMISSIONS if authz.can("service:x", p, SYSTEM)} == EXACT[role]


@pytest.mark.parametrize("implied", ["portal_client", "security_lead", "auditor"])
def test_admin_has_every_permission_of_the_other_roles(world, implied):
    authz = world(f"user:root admin {SYSTEM}")
    for permission in EXACT[implied]:
        assert authz.can("user:root", permission, SYSTEM), permission


# `"auditor" if "admin"` cannot be observed through permissions today: every auditor permission is
# also a security_lead permission, which admin holds too. Ask for the role itself, through a copy of
# the policy with one extra rule per System role (`allow(actor, "role:<r>", system) if has_role…`).
@pytest.fixture(scope="module")
def role_probe(policy: Policy) -> Policy:
    roles = policy.declarations.resource_types["system"].roles
    probe = "\n".join(
        f'allow(actor, "role:{role}", system: System) if has_role(actor, "{role}", system);' for role in roles
    )
    return Policy([*policy.files, PolicyFile("zz_role_probe.polar", probe)])


@pytest.mark.parametrize(
    "granted, held",
    [
        ("admin", {"admin", "portal_client", "security_lead", "auditor"}),
        ("security_lead", {"security_lead"}),
        ("auditor", {"auditor"}),
        ("portal_client", {"portal_client"}),
    ],
)
def test_roles_held_on_the_system(world, role_probe, granted, held):
    authz = world(f"user:alice {granted} {SYSTEM}", using=role_probe)
    roles = role_probe.declarations.resource_types["system"].roles
    assert {r for r in roles if authz.can("user:alice", f"role:{r}", SYSTEM)} == held


@pytest.mark.parametrize("permission", ["sync_directory", "manage_campaigns", "manage_tokens", "reload_policy", "check"])
def test_auditor_is_read_only(world, permission):
    authz = world(f"user:ava auditor {SYSTEM}")
    assert not authz.can("user:ava", permission, SYSTEM)


@pytest.mark.parametrize(
    "permission", ["explain_access", "read_audit", "read_decisions", "read_reports", "view_campaigns",
                   "manage_campaigns", "manage_tokens", "reload_policy"]
)
def test_portal_client_only_checks_and_syncs(world, permission):
    authz = world(f"service:portal portal_client {SYSTEM}")
    assert not authz.can("service:portal", permission, SYSTEM)


@pytest.mark.parametrize("permission", ["check", "sync_directory", "manage_tokens", "reload_policy"])
def test_security_lead_cannot_act_as_client_or_admin(world, permission):
    authz = world(f"user:sam security_lead {SYSTEM}")
    assert not authz.can("user:sam", permission, SYSTEM)


def test_roles_come_from_group_grants(world):
    authz = world(f"group:security security_lead {SYSTEM}", members=["user:sam in group:security"])
    assert authz.actions("user:sam", SYSTEM) == EXACT["security_lead"]
    assert not authz.can("group:security", "read_audit", SYSTEM)


def test_disabled_principal_holds_no_system_role(world):
    authz = world(f"service:portal portal_client {SYSTEM}", disabled=["service:portal"])
    assert authz.actions("service:portal", SYSTEM) == set()


@pytest.mark.parametrize(
    "offset, expected",
    [
        pytest.param(timedelta(seconds=-1), set(), id="expired"),
        pytest.param(timedelta(0), set(), id="expires-now"),
        pytest.param(timedelta(seconds=1), EXACT["admin"], id="valid"),
    ],
)
@pytest.mark.parametrize("actor", ["user:root", "service:ops"])
def test_expired_system_grant_gives_nothing(world, now, actor, offset, expected):
    authz = world((actor, "admin", SYSTEM, now + offset))
    assert authz.actions(actor, SYSTEM) == expected


def test_no_role_no_permission(world):
    authz = world(principals=["user:mallory", "service:portal"])
    assert authz.actions("user:mallory", SYSTEM) == set()
    assert authz.actions("service:portal", SYSTEM) == set()


def test_system_admin_gets_nothing_in_the_portal(world):
    authz = world(f"user:root admin {SYSTEM}")
    for resource in ("organization:acme", "project:apollo", "document:roadmap", "invoice:acme-0001"):
        assert authz.actions("user:root", resource) == set(), resource


def test_portal_admin_gets_nothing_on_the_system(world):
    authz = world("user:alice admin organization:acme")
    assert authz.actions("user:alice", SYSTEM) == set()

