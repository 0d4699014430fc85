"""The demo payload: deterministic, big enough to be a realistic portal, and importable as a whole."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from accessreview.demo import build_demo_payload

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)

# The role model as the policy declares it (policies/portal.polar, policies/service.polar).
ROLES = {
    "organization": {"member", "billing_admin", "admin", "account_manager"},
    "project": {"viewer", "editor", "manager"},
    "document": {"viewer", "editor"},
    "invoice": set(),
    "system": {"portal_client", "security_lead", "auditor", "admin"},
}
PARENT_TYPE = {"organization": None, "project": "organization", "document": "project",
               "invoice": "organization", "system": None}

PRINCIPAL_ID = re.compile(r"^(user|group|service):[A-Za-z0-9._@-]{1,200}$")
RESOURCE_ID = re.compile(r"^[a-z_]+:[A-Za-z0-9._@-]{1,200}$")
PORTAL_SERVICE_ID = "service:portal"


def kind(key: str) -> str:
    return key.split(":", 1)[0]


def when(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    assert moment.tzinfo is not None and moment.utcoffset() == timedelta(0), value
    return moment


@pytest.fixture(scope="module")
def payload() -> dict:
    return build_demo_payload(NOW)


@pytest.fixture(scope="module")
def index(payload):
    principals = {p["id"]: p for p in payload["principals"]}
    resources = {r["id"]: r for r in payload["resources"]}
    users = {k: p for k, p in principals.items() if kind(k) == "user"}
    groups = {k: p for k, p in principals.items() if kind(k) == "group"}
    return principals, resources, users, groups


def test_same_seed_same_payload():
    first = build_demo_payload(NOW, seed=7)
    again = build_demo_payload(NOW, seed=7)
    assert json.dumps(first, sort_keys=True) == json.dumps(again, sort_keys=True)
    assert first == build_demo_payload(NOW)  # 7 is the default


def test_different_seed_different_people():
    names = {p.get("name") for p in build_demo_payload(NOW, seed=7)["principals"]}
    other = {p.get("name") for p in build_demo_payload(NOW, seed=8)["principals"]}
    assert names != other


def test_naive_now_is_taken_as_utc():
    assert build_demo_payload(NOW.replace(tzinfo=None)) == build_demo_payload(NOW)


def test_envelope_and_json(payload):
    assert payload["source"] == "demo"
    assert payload["mode"] == "merge"
    assert payload["dry_run"] is False
    assert set(payload) == {"source", "mode", "dry_run", "principals", "resources", "grants"}
    assert json.loads(json.dumps(payload)) == payload


def test_minimum_counts(payload, index):
    principals, resources, users, groups = index
    by_type = Counter(kind(k) for k in resources)
    assert by_type["organization"] >= 3
    assert by_type["project"] >= 10
    assert by_type["document"] >= 200
    assert len(users) >= 60
    assert len(groups) >= 2
    assert PORTAL_SERVICE_ID in principals
    invoices_per_org = Counter(r["parent"] for k, r in resources.items() if kind(k) == "invoice")
    assert set(invoices_per_org) == {k for k in resources if kind(k) == "organization"}
    assert all(2 <= n <= 4 for n in invoices_per_org.values())
    for organization in (k for k in resources if kind(k) == "organization"):
        assert any(r.get("parent") == organization for k, r in resources.items() if kind(k) == "project")



def test_ids_unique_and_well_formed(payload):
    principal_ids = [p["id"] for p in payload["principals"]]
    resource_ids = [r["id"] for r in payload["resources"]]
    assert len(principal_ids) == len(set(principal_ids))
    assert len(resource_ids) == len(set(resource_ids))
    assert all(PRINCIPAL_ID.match(k) for k in principal_ids), [k for k in principal_ids if not PRINCIPAL_ID.match(k)]
    assert all(RESOURCE_ID.match(k) for k in resource_ids), [k for k in resource_ids if not RESOURCE_ID.match(k)]


def test_no_null_values_except_organization_parent(payload):
    for record in payload["principals"] + payload["grants"]:
        assert None not in record.values(), record
    for resource in payload["resources"]:
        for key, value in resource.items():
            if value is None:
                assert (key, kind(resource["id"])) == ("parent", "organization"), resource


def test_users_are_realistic_and_distinct(index):
    _, _, users, _ = index
    emails = [u["email"] for u in users.values()]
    names = [u["name"] for u in users.values()]
    assert len(set(emails)) == len(emails) and len(set(names)) == len(names)
    assert all(re.fullmatch(r"[a-z0-9.-]+@[a-z0-9.-]+\.[a-z]+", e) for e in emails)
    assert all(u["status"] in ("active", "disabled") and u["department"] for u in users.values())
    departments = {u["department"] for u in users.values()}
    assert {"Tax", "Audit", "Advisory", "Client Service", "IT", "Security", "Finance"} <= departments
    assert "user:alice.moreau" in users


def test_managers_are_present_users_and_form_no_loops(index):
    _, _, users, _ = index
    tops = [k for k, u in users.items() if "manager" not in u]
    # One top for the firm and one per client organization; everyone else reports to someone.
    assert 1 < len(tops) <= 1 + 4
    for key, user in users.items():
        chain = [key]
        while "manager" in users[chain[-1]]:
            manager = users[chain[-1]]["manager"]
            assert manager in users and manager not in chain, (key, manager)
            chain.append(manager)


def test_group_members_present_and_no_cycles(index):
    principals, _, _, groups = index
    for group in groups.values():
        assert group["members"], group
        assert len(set(group["members"])) == len(group["members"])
        assert all(member in principals for member in group["members"]), group
        assert all(kind(member) in ("user", "group") for member in group["members"])

    def visit(key: str, path: tuple[str, ...]) -> None:
        assert key not in path, f"group cycle: {path + (key,)}"
        for member in groups[key]["members"]:
            if member in groups:
                visit(member, path + (key,))

    for key in groups:
        visit(key, ())


def test_nested_group(index):
    _, _, _, groups = index
    nested = [g for g in groups.values() if any(kind(m) == "group" for m in g["members"])]
    assert nested
    assert "group:tax-seniors" in groups["group:tax-team"]["members"]


def test_resource_parents_and_owners(index):
    principals, resources, _, _ = index
    position = {r: i for i, r in enumerate(resources)}
    for key, resource in resources.items():
        expected = PARENT_TYPE[kind(key)]
        parent = resource.get("parent")
        if expected is None:
            assert parent is None, resource
        else:
            assert parent in resources and kind(parent) == expected, resource
            assert position[parent] < position[key]  # parents come first in the payload
        if "owner" in resource:
            assert resource["owner"] in principals, resource
        if kind(key) in ("organization", "project", "document"):
            assert "owner" in resource, resource
    assert resources["system:accessreview"] == {"id": "system:accessreview", "name": "accessreview"}


def test_documents_owned_by_the_project_manager(payload, index):
    _, resources, _, _ = index
    managers = {(g["principal"], g["resource"]) for g in payload["grants"] if g["role"] == "manager"}
    for key, resource in resources.items():
        if kind(key) == "project":
            assert (resource["owner"], key) in managers
        if kind(key) == "document":
            assert resource["owner"] == resources[resource["parent"]]["owner"]


def test_attribute_references_resolve(index):
    principals, resources, _, _ = index
    for key, resource in resources.items():
        attributes = resource.get("attributes", {})
        for field in ("uploaded_by", "lead_partner"):
            if field in attributes:
                assert attributes[field] in principals, (key, field)
        if kind(key) == "invoice":
            assert attributes["engagement"] in resources
            assert resources[attributes["engagement"]]["parent"] == resource["parent"]
            assert {"amount", "currency", "due_date", "issued_on", "status"} <= set(attributes)
            assert float(attributes["amount"]) > 0


def test_grants_reference_present_principals_and_resources(payload, index):
    principals, resources, users, _ = index
    for grant in payload["grants"]:
        assert grant["principal"] in principals, grant
        assert grant["resource"] in resources, grant
        assert grant["granted_by"] in users and grant["granted_by"] != grant["principal"], grant
        assert grant["reason"]


def test_no_duplicate_grants(payload):
    keys = Counter((g["principal"], g["role"], g["resource"]) for g in payload["grants"])
    assert [k for k, n in keys.items() if n > 1] == []


def test_roles_match_the_role_model(payload):
    for grant in payload["grants"]:
        assert grant["role"] in ROLES[kind(grant["resource"])], grant
    assert not [g for g in payload["grants"] if kind(g["resource"]) == "invoice"]


def test_role_model_agrees_with_the_policy_files():
    from accessreview.authz.declarations import parse_declarations

    policies = Path(__file__).resolve().parent.parent / "policies"
    declared = parse_declarations([p.read_text() for p in sorted(policies.glob("*.polar"))])
    for type_key, roles in ROLES.items():
        resource_type = declared.resource_type(type_key)
        assert resource_type is not None, type_key
        assert set(resource_type.roles) == roles, type_key
        assert resource_type.parent_type == PARENT_TYPE[type_key], type_key


def test_timestamps(payload, index):
    _, _, users, _ = index
    for grant in payload["grants"]:
        granted_at = when(grant["granted_at"])
        assert NOW - timedelta(days=366) <= granted_at < NOW, grant
        if "expires_at" in grant:
            assert when(grant["expires_at"]) > granted_at, grant
    spread = sorted(when(g["granted_at"]) for g in payload["grants"])
    assert spread[-1] - spread[0] > timedelta(days=180)
    for user in users.values():
        seen = when(user["last_seen_at"])
        assert seen < NOW
        if user["status"] == "active":
            assert seen >= NOW - timedelta(days=90), user
        else:
            assert seen < NOW - timedelta(days=90), user


def test_expired_and_expiring_grants(payload):
    expired = [g for g in payload["grants"] if "expires_at" in g and when(g["expires_at"]) <= NOW]
    expiring = [g for g in payload["grants"] if "expires_at" in g and when(g["expires_at"]) > NOW]
    assert len(expired) >= 3
    assert len(expiring) >= 3


def test_disabled_users_still_hold_grants(payload, index):
    _, _, users, _ = index
    disabled = {k for k, u in users.items() if u["status"] == "disabled"}
    assert 3 <= len(disabled) <= 4
    holders = {g["principal"] for g in payload["grants"]}
    assert disabled <= holders


def test_portal_roles(payload, index):
    _, resources, users, groups = index
    grants = payload["grants"]

    def holders(role: str, resource_type: str) -> set[str]:
        return {g["principal"] for g in grants if g["role"] == role and kind(g["resource"]) == resource_type}

    internal = {k for k, u in users.items() if u["email"].endswith("@example.com")}
    account_managers = holders("account_manager", "organization")
    assert account_managers and account_managers <= internal
    organizations = {k for k in resources if kind(k) == "organization"}
    assert {g["resource"] for g in grants if g["role"] == "account_manager"} == organizations
    for organization in organizations:
        admins = {g["principal"] for g in grants if g["role"] == "admin" and g["resource"] == organization}
        assert admins and not admins & internal, organization
    assert holders("billing_admin", "organization")
    assert holders("member", "organization") & set(groups)
    for role in ("manager", "editor", "viewer"):
        assert holders(role, "project"), role
    for role in ("viewer", "editor"):
        assert holders(role, "document"), role
    assert {g["principal"] for g in grants if kind(g["principal"]) == "group"}


def test_service_access(payload, index):
    _, _, users, _ = index
    on_system = {(g["principal"], g["role"]) for g in payload["grants"]
                 if g["resource"] == "system:accessreview" and "expires_at" not in g}
    assert ("service:portal", "portal_client") in on_system
    for role in ("security_lead", "auditor", "admin"):
        holders = [p for p, r in on_system if r == role]
        assert holders and all(users[h]["email"].endswith("@example.com") for h in holders), role
    assert any(users[p]["department"] == "IT" for p, r in on_system if r == "admin")


@pytest.mark.parametrize("seed", [0, 1, 42, 2024])
@pytest.mark.parametrize("now", [NOW, datetime(2025, 1, 2, 8, 30, tzinfo=timezone.utc),
                                 datetime(2027, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)])
def test_other_seeds_and_dates_stay_valid(seed, now):
    payload = build_demo_payload(now, seed=seed)
    principals = {p["id"]: p for p in payload["principals"]}
    resources = {r["id"]: r for r in payload["resources"]}
    assert len(principals) == len(payload["principals"]) and len(resources) == len(payload["resources"])
    assert sum(kind(k) == "user" for k in principals) >= 60
    assert sum(kind(k) == "document" for k in resources) >= 200
    keys = [(g["principal"], g["role"], g["resource"]) for g in payload["grants"]]
    assert len(keys) == len(set(keys))
    for principal, role, resource in keys:
        assert principal in principals and resource in resources
        assert role in ROLES[kind(resource)]
    for resource in resources.values():
        if resource.get("parent") is not None:
            assert kind(resources[resource["parent"]]["id"]) == PARENT_TYPE[kind(resource["id"])]
    for grant in payload["grants"]:
        assert datetime.fromisoformat(grant["granted_at"]) < now
    assert any("expires_at" in g and datetime.fromisoformat(g["expires_at"]) <= now for g in payload["grants"])
