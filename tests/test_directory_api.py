"""The directory API: principals, resources, grants, revisions."""

from __future__ import annotations

import pytest

from support import every_page, revision


@pytest.fixture
def tree(client, portal):
    """acme (org) → acme-tax (project) → doc-1 (document), and an invoice; alice and bob."""
    for key, body in [
        ("user:bob", {"name": "Bob Stone", "email": "bob@example.com", "department": "Tax"}),
        ("user:alice", {"name": "Alice Moreau", "email": "alice@example.com", "department": "Tax",
                        "manager": "user:bob", "last_seen_at": "2026-02-01T10:00:00Z",
                        "attributes": {"team": "vat", "clearance": 2, "tags": ["a", "b"]}}),
    ]:
        assert client.put(f"/v1/principals/{key}", json=body, headers=portal).status_code == 201
    for path, body in [
        ("organization/acme", {"name": "Acme", "owner": "user:bob"}),
        ("project/acme-tax", {"name": "Tax 2026", "parent": "organization:acme", "owner": "user:bob"}),
        ("document/doc-1", {"name": "VAT return.pdf", "parent": "project:acme-tax", "attributes": {"pages": 3}}),
        ("invoice/inv-1", {"name": "INV-1", "parent": "organization:acme", "attributes": {"amount": "120.00"}}),
    ]:
        response = client.put(f"/v1/resources/{path}", json=body, headers=portal)
        assert response.status_code == 201, response.get_json()


def test_put_principal_creates_then_updates_and_raises_revision(client, portal, app):
    first = client.put("/v1/principals/user:carol", json={"name": "Carol", "email": "carol@example.com"},
                       headers=portal)
    assert first.status_code == 201
    assert first.get_json()["principal"]["email"] == "carol@example.com"
    second = client.put("/v1/principals/user:carol", json={"name": "Carol K", "status": "disabled"}, headers=portal)
    assert second.status_code == 200
    assert second.get_json()["revision"] == first.get_json()["revision"] + 1
    got = client.get("/v1/principals/user:carol", headers=portal).get_json()
    assert got["name"] == "Carol K" and got["status"] == "disabled"
    assert got["email"] is None, "PUT replaces the whole principal"
    assert revision(app) == second.get_json()["revision"]


def test_unchanged_put_does_not_raise_revision(client, portal):
    body = {"name": "Dan"}
    first = client.put("/v1/principals/user:dan", json=body, headers=portal).get_json()["revision"]
    again = client.put("/v1/principals/user:dan", json=body, headers=portal)
    assert again.status_code == 200 and again.get_json()["revision"] == first


def test_user_fields_round_trip(client, portal, tree):
    alice = client.get("/v1/principals/user:alice", headers=portal).get_json()
    assert alice == {"id": "user:alice", "kind": "user", "name": "Alice Moreau", "email": "alice@example.com",
                     "department": "Tax", "manager": "user:bob", "status": "active",
                     "last_seen_at": "2026-02-01T10:00:00+00:00", "groups": [],
                     "attributes": {"team": "vat", "clearance": 2, "tags": ["a", "b"]}}


def test_group_members_and_nesting(client, portal, tree):
    assert client.put("/v1/principals/group:seniors", json={"name": "Seniors", "members": ["user:alice"]},
                      headers=portal).status_code == 201
    assert client.put("/v1/principals/group:tax", json={"name": "Tax", "members": ["group:seniors", "user:bob"]},
                      headers=portal).status_code == 201
    group = client.get("/v1/principals/group:tax", headers=portal).get_json()
    assert group["members"] == ["group:seniors", "user:bob"]
    assert client.get("/v1/principals/user:alice", headers=portal).get_json()["groups"] == ["group:seniors"]


def test_group_cycles_are_refused(client, portal, tree, unchanged):
    client.put("/v1/principals/group:a", json={"members": ["user:alice"]}, headers=portal)
    client.put("/v1/principals/group:b", json={"members": ["group:a"]}, headers=portal)
    with unchanged():
        response = client.put("/v1/principals/group:a", json={"members": ["group:b"]}, headers=portal)
        assert response.status_code == 422
        assert response.get_json()["error"]["code"] == "group_cycle"
        assert response.get_json()["error"]["field"] == "members"
        itself = client.put("/v1/principals/group:c", json={"members": ["group:c"]}, headers=portal)
        assert itself.status_code == 422


def test_fields_that_do_not_fit_the_kind_are_refused(client, portal):
    response = client.put("/v1/principals/group:x", json={"email": "x@example.com"}, headers=portal)
    assert response.status_code == 422
    assert response.get_json()["error"] == {**response.get_json()["error"], "code": "unknown_field", "field": "email"}
    response = client.put("/v1/principals/user:x", json={"members": []}, headers=portal)
    assert response.get_json()["error"]["field"] == "members"


def test_manager_must_be_a_known_user(client, portal):
    response = client.put("/v1/principals/user:eve", json={"manager": "user:nobody"}, headers=portal)
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "manager"


def test_list_principals_filters_and_paginates(client, portal, tree):
    client.put("/v1/principals/user:zed", json={"status": "disabled"}, headers=portal)
    users = client.get("/v1/principals?type=user&limit=2", headers=portal).get_json()
    assert [p["id"] for p in users["items"]] == ["user:alice", "user:bob"]
    rest = client.get(f"/v1/principals?type=user&limit=2&cursor={users['next_cursor']}", headers=portal).get_json()
    assert [p["id"] for p in rest["items"]] == ["user:zed"] and rest["next_cursor"] is None
    disabled = client.get("/v1/principals?status=disabled", headers=portal).get_json()
    assert [p["id"] for p in disabled["items"]] == ["user:zed"]
    services = client.get("/v1/principals?type=service", headers=portal).get_json()
    assert [p["id"] for p in services["items"]] == ["service:portal"]


def test_resource_parents_follow_the_policy(client, portal, tree, unchanged):
    with unchanged():
        missing = client.put("/v1/resources/document/d2", json={"name": "x"}, headers=portal)
        assert missing.status_code == 422 and missing.get_json()["error"]["code"] == "missing_parent"
        wrong = client.put("/v1/resources/document/d2", json={"parent": "organization:acme"}, headers=portal)
        assert wrong.status_code == 422 and wrong.get_json()["error"]["code"] == "invalid_parent"
        orphan = client.put("/v1/resources/organization/o2", json={"parent": "organization:acme"}, headers=portal)
        assert orphan.status_code == 422 and orphan.get_json()["error"]["field"] == "parent"
        unknown = client.put("/v1/resources/document/d2", json={"parent": "project:nope"}, headers=portal)
        assert unknown.status_code == 422 and unknown.get_json()["error"]["code"] == "unknown_reference"
        bad_type = client.put("/v1/resources/spaceship/s1", json={}, headers=portal)
        assert bad_type.status_code == 422 and bad_type.get_json()["error"]["code"] == "unknown_type"
        owner = client.put("/v1/resources/organization/o3", json={"owner": "user:ghost"}, headers=portal)
        assert owner.status_code == 422 and owner.get_json()["error"]["field"] == "owner"


def test_resource_round_trip_and_list(client, portal, tree):
    doc = client.get("/v1/resources/document/doc-1", headers=portal).get_json()
    assert doc == {"id": "document:doc-1", "type": "document", "name": "VAT return.pdf",
                   "parent": "project:acme-tax", "owner": None, "attributes": {"pages": 3}}
    listed = client.get("/v1/resources?type=project&parent=organization:acme", headers=portal).get_json()
    assert [r["id"] for r in listed["items"]] == ["project:acme-tax"]
    assert client.get("/v1/resources/document/nope", headers=portal).status_code == 404


def test_grant_lifecycle(client, portal, tree):
    before = revision(client.application)
    created = client.post("/v1/grants", json={"principal": "user:alice", "role": "editor", "resource": "project:acme-tax",
                                               "reason": "engagement team", "expires_at": "2026-12-31T00:00:00Z"},
                          headers=portal)
    assert created.status_code == 201
    body = created.get_json()
    assert body["revision"] == before + 1
    grant = client.get(f"/v1/grants/{body['id']}", headers=portal).get_json()
    assert grant["granted_by"] == "service:portal" and grant["source"] == "manual"
    assert grant["granted_at"] == "2026-03-02T09:00:00+00:00"
    assert grant["expires_at"] == "2026-12-31T00:00:00+00:00"
    listed = client.get("/v1/grants?principal=user:alice", headers=portal).get_json()["items"]
    assert [g["id"] for g in listed] == [body["id"]]
    deleted = client.delete(f"/v1/grants/{body['id']}", headers=portal)
    assert deleted.status_code == 200 and deleted.get_json()["revision"] == before + 2
    assert client.get(f"/v1/grants/{body['id']}", headers=portal).status_code == 404
    assert client.delete(f"/v1/grants/{body['id']}", headers=portal).status_code == 404


def test_grant_roles_come_from_the_policy(client, portal, tree, unchanged):
    with unchanged():
        wrong_role = client.post("/v1/grants", json={"principal": "user:alice", "role": "manager",
                                                     "resource": "document:doc-1"}, headers=portal)
        assert wrong_role.status_code == 422
        assert wrong_role.get_json()["error"]["code"] == "unknown_role"
        assert wrong_role.get_json()["error"]["field"] == "role"
        on_invoice = client.post("/v1/grants", json={"principal": "user:alice", "role": "viewer",
                                                     "resource": "invoice:inv-1"}, headers=portal)
        assert on_invoice.status_code == 422
        assert client.post("/v1/grants", json={"principal": "user:nobody", "role": "viewer",
                                               "resource": "document:doc-1"}, headers=portal).status_code == 422


def test_duplicate_grant_is_a_conflict(client, portal, tree, unchanged):
    body = {"principal": "user:alice", "role": "viewer", "resource": "document:doc-1"}
    first = client.post("/v1/grants", json=body, headers=portal)
    assert first.status_code == 201
    with unchanged():
        again = client.post("/v1/grants", json=body, headers=portal)
        assert again.status_code == 409
        assert again.get_json()["error"]["code"] == "duplicate_grant"
        assert again.get_json()["error"]["grant_id"] == first.get_json()["id"]


def test_grants_paginate_completely(client, portal, tree):
    for i in range(7):
        client.put(f"/v1/resources/document/p{i}", json={"parent": "project:acme-tax"}, headers=portal)
        client.post("/v1/grants", json={"principal": "user:bob", "role": "viewer", "resource": f"document:p{i}"},
                    headers=portal)
    seen = [g["resource"] for g in every_page(client, "/v1/grants?principal=user:bob&limit=3", portal)]
    assert sorted(seen) == sorted(f"document:p{i}" for i in range(7))
    assert client.get("/v1/grants?cursor=garbage", headers=portal).get_json()["error"]["code"] == "invalid_cursor"
