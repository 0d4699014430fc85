"""Bulk sync: all or nothing, dry runs, merge and replace, sync times per source."""

from __future__ import annotations

import pytest

from support import revision

BASE = {
    "source": "portal",
    "principals": [
        {"id": "user:bob", "name": "Bob", "email": "bob@example.com"},
        {"id": "user:alice", "name": "Alice", "manager": "user:bob"},
        {"id": "group:finance", "name": "Finance", "members": ["user:alice"]},
    ],
    "resources": [
        # Children before parents on purpose: order inside a payload does not matter.
        {"id": "document:d1", "parent": "project:p1", "name": "Ledger.xlsx"},
        {"id": "project:p1", "parent": "organization:acme", "owner": "user:bob"},
        {"id": "organization:acme", "name": "Acme", "owner": "user:bob"},
    ],
    "grants": [
        {"principal": "user:alice", "role": "viewer", "resource": "document:d1"},
        {"principal": "group:finance", "role": "editor", "resource": "project:p1", "reason": "team"},
        {"principal": "user:bob", "role": "admin", "resource": "organization:acme"},
    ],
}


def post(client, headers, payload):
    return client.post("/v1/directory/import", json=payload, headers=headers)


def test_merge_import_writes_everything_in_one_revision(client, portal, app):
    before = revision(app)
    response = post(client, portal, BASE)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["revision"] == before + 1
    assert body["counts"] == {"principals": {"added": 3, "changed": 0, "removed": 0},
                              "resources": {"added": 3, "changed": 0, "removed": 0},
                              "grants": {"added": 3, "changed": 0, "removed": 0}}
    grants = client.get("/v1/grants?source=portal", headers=portal).get_json()["items"]
    assert {(g["principal"], g["role"], g["resource"]) for g in grants} == {
        ("user:alice", "viewer", "document:d1"), ("group:finance", "editor", "project:p1"),
        ("user:bob", "admin", "organization:acme")}
    again = post(client, portal, BASE).get_json()
    assert again["counts"]["grants"] == {"added": 0, "changed": 0, "removed": 0}


def test_dry_run_returns_the_diff_and_writes_nothing(client, portal, unchanged):
    post(client, portal, BASE)
    changed = {**BASE, "dry_run": True, "mode": "replace",
               "principals": [{**BASE["principals"][0], "name": "Robert"}],
               "resources": [], "grants": BASE["grants"][:1] + [
                   {"principal": "user:bob", "role": "member", "resource": "organization:acme"}]}
    with unchanged():
        body = post(client, portal, changed).get_json()
    assert body["dry_run"] is True
    assert body["diff"]["principals"]["changed"] == ["user:bob"]
    assert body["diff"]["grants"]["added"] == [{"principal": "user:bob", "role": "member", "resource": "organization:acme"}]
    removed = body["diff"]["grants"]["removed"]
    assert {(g["principal"], g["role"]) for g in removed} == {("group:finance", "editor"), ("user:bob", "admin")}
    assert all("id" in g for g in removed)
    assert client.get("/v1/principals/user:bob", headers=portal).get_json()["name"] == "Bob"


def test_replace_removes_only_that_sources_missing_grants(client, portal, make_grant):
    post(client, portal, BASE)
    manual = make_grant("user:alice", "viewer", "project:p1")
    body = post(client, portal, {**BASE, "mode": "replace", "grants": BASE["grants"][:1]}).get_json()
    assert body["counts"]["grants"]["removed"] == 2
    left = client.get("/v1/grants", headers=portal).get_json()["items"]
    assert {(g["principal"], g["role"], g["resource"], g["source"]) for g in left if g["resource"] != "system:accessreview"} == {
        ("user:alice", "viewer", "document:d1", "portal"), ("user:alice", "viewer", "project:p1", "manual")}
    assert any(g["id"] == manual for g in left)


def test_changed_grant_fields_are_updated(client, portal):
    post(client, portal, BASE)
    grants = [dict(g) for g in BASE["grants"]]
    grants[1]["expires_at"] = "2026-06-30T00:00:00Z"
    body = post(client, portal, {**BASE, "grants": grants}).get_json()
    assert body["counts"]["grants"]["changed"] == 1
    found = client.get("/v1/grants?principal=group:finance", headers=portal).get_json()["items"][0]
    assert found["expires_at"] == "2026-06-30T00:00:00+00:00" and found["reason"] == "team"


def test_invalid_rows_write_nothing_and_are_all_reported(client, portal, unchanged):
    bad = {
        "source": "portal",
        "principals": [{"id": "user:ok"}, {"id": "user:x", "manager": "user:ghost"},
                       {"id": "group:g", "members": ["user:nobody"]}],
        "resources": [{"id": "document:d9"}, {"id": "planet:mars"}],
        "grants": [{"principal": "user:ok", "role": "owner", "resource": "organization:none"},
                   {"principal": "user:ok", "role": "viewer", "resource": "document:d9"},
                   {"principal": "user:ok", "role": "viewer", "resource": "document:d9"}],
    }
    with unchanged():
        response = post(client, portal, bad)
    assert response.status_code == 422
    errors = {(e["section"], e["index"], e["field"], e["code"]) for e in response.get_json()["error"]["errors"]}
    assert errors == {
        ("principals", 1, "manager", "unknown_reference"),
        ("principals", 2, "members", "unknown_reference"),
        ("resources", 0, "parent", "missing_parent"),
        ("resources", 1, "id", "unknown_type"),
        ("grants", 0, "resource", "unknown_reference"),
        ("grants", 2, None, "duplicate_row"),
    }
    assert client.get("/v1/principals/user:ok", headers=portal).status_code == 404


def test_schema_errors_name_section_index_and_field(client, portal, unchanged):
    with unchanged():
        response = post(client, portal, {"principals": [{"id": "user:a"}, {"id": "robot:b"}],
                                         "grants": [{"principal": "user:a", "role": 5, "resource": "x:y"}]})
    assert response.status_code == 400
    fields = {e["field"] for e in response.get_json()["error"]["errors"]}
    assert {"principals.1.id", "grants.0.role"} <= fields


def test_sync_time_is_recorded_per_source(client, portal, clock):
    post(client, portal, {**BASE, "mode": "replace"})
    clock.advance(hours=2)
    post(client, portal, {"source": "hr", "principals": [{"id": "user:zoe"}]})
    clock.advance(minutes=30)
    status = client.get("/v1/directory/status", headers=portal).get_json()
    by_source = {s["source"]: s for s in status["sources"]}
    assert by_source["portal"]["age_seconds"] == 9000
    assert by_source["portal"]["last_full_sync_at"] == "2026-03-02T09:00:00+00:00"
    assert by_source["hr"]["age_seconds"] == 1800 and by_source["hr"]["last_full_sync_at"] is None
    assert status["counts"]["principals"]["user"] >= 3
    assert status["counts"]["grants"] >= 3


@pytest.mark.parametrize("mode", ["merge", "replace"])
def test_import_is_audited(client, portal, auditor, mode):
    body = post(client, portal, {**BASE, "mode": mode}).get_json()
    events = client.get("/v1/audit-events?action=directory.imported", headers=auditor).get_json()["items"]
    assert events[-1]["after"]["revision"] == body["revision"]
    assert events[-1]["actor"] == "service:portal"
    created = client.get("/v1/audit-events?action=grant.created&actor=service:portal", headers=auditor).get_json()
    assert len(created["items"]) == 3
