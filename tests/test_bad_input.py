"""Bad input gets one JSON error shape with a fitting status, and changes nothing."""

from __future__ import annotations

import pytest


def error(response):
    body = response.get_json()
    assert set(body) == {"error"}
    assert {"code", "message", "field"} <= set(body["error"])
    return body["error"]


@pytest.fixture
def org(client, portal):
    client.put("/v1/principals/user:alice", json={"name": "Alice"}, headers=portal)
    client.put("/v1/resources/organization/acme", json={"name": "Acme"}, headers=portal)


def test_malformed_json(client, portal, unchanged):
    with unchanged():
        response = client.put("/v1/principals/user:alice", data='{"name": "Alice",', headers=portal,
                              content_type="application/json")
    assert response.status_code == 400
    assert error(response)["code"] == "malformed_json"


def test_empty_body(client, portal, unchanged):
    with unchanged():
        response = client.post("/v1/grants", data="", headers=portal, content_type="application/json")
    assert response.status_code == 400 and error(response)["code"] == "malformed_json"


def test_body_that_is_not_an_object(client, portal, unchanged):
    with unchanged():
        response = client.post("/v1/grants", json=["user:alice"], headers=portal)
    assert response.status_code == 400 and error(response)["code"] == "invalid_body"


@pytest.mark.parametrize("body, field", [
    ({"name": 42}, "name"),
    ({"status": "asleep"}, "status"),
    ({"last_seen_at": "yesterday"}, "last_seen_at"),
    ({"email": "not-an-address"}, "email"),
    ({"members": "user:bob"}, "members"),
])
def test_wrong_types_and_values(client, portal, unchanged, body, field):
    with unchanged():
        response = client.put("/v1/principals/user:alice", json=body, headers=portal)
    assert response.status_code == 400
    assert error(response)["field"] == field
    assert error(response)["code"] in ("invalid_type", "invalid_value")


def test_numbers_are_not_coerced_to_strings(client, portal, org, unchanged):
    with unchanged():
        response = client.post("/v1/grants", json={"principal": "user:alice", "role": "member",
                                                   "resource": "organization:acme", "reason": 7}, headers=portal)
    assert response.status_code == 400 and error(response)["field"] == "reason"


def test_unknown_fields(client, portal, org, unchanged):
    with unchanged():
        response = client.put("/v1/principals/user:alice", json={"name": "A", "nickname": "Al"}, headers=portal)
        grant = client.post("/v1/grants", json={"principal": "user:alice", "role": "member",
                                                "resource": "organization:acme", "weight": 1}, headers=portal)
        top = client.post("/v1/directory/import", json={"principals": [], "everything": True}, headers=portal)
    assert response.status_code == 400 and error(response)["code"] == "unknown_field"
    assert error(response)["field"] == "nickname"
    assert error(grant)["field"] == "weight"
    assert error(top)["field"] == "everything"


def test_missing_required_field(client, portal, unchanged):
    with unchanged():
        response = client.post("/v1/grants", json={"principal": "user:alice", "role": "member"}, headers=portal)
    assert response.status_code == 400
    assert error(response) == {**error(response), "code": "missing_field", "field": "resource"}


def test_body_over_the_limit(app, client, portal, unchanged):
    app.config.update(MAX_BODY_BYTES=1024, MAX_CONTENT_LENGTH=1024)  # as ACCESSREVIEW_MAX_BODY_BYTES=1024 does
    big = {"principals": [{"id": f"user:u{i}", "name": "x" * 50} for i in range(100)]}
    with unchanged():
        response = client.post("/v1/directory/import", json=big, headers=portal)
    assert response.status_code == 413
    assert error(response)["code"] == "body_too_large"
    assert "1024 bytes" in error(response)["message"]


def test_unknown_ids_in_the_path(client, portal):
    assert error(client.get("/v1/principals/user:ghost", headers=portal))["code"] == "not_found"
    assert client.get("/v1/principals/robot:r2", headers=portal).status_code == 404
    assert client.get("/v1/resources/document/ghost", headers=portal).status_code == 404
    assert client.delete("/v1/grants/999999", headers=portal).status_code == 404
    assert error(client.get("/v1/no-such-thing", headers=portal))["code"] == "not_found"


def test_unknown_references_in_the_body(client, portal, org, unchanged):
    with unchanged():
        response = client.post("/v1/grants", json={"principal": "user:ghost", "role": "member",
                                                   "resource": "organization:acme"}, headers=portal)
    assert response.status_code == 422
    assert error(response) == {**error(response), "code": "unknown_reference", "field": "principal"}


def test_unknown_role(client, portal, org, unchanged):
    with unchanged():
        response = client.post("/v1/grants", json={"principal": "user:alice", "role": "owner",
                                                   "resource": "organization:acme"}, headers=portal)
    assert response.status_code == 422
    assert error(response)["code"] == "unknown_role"
    assert "member" in error(response)["message"], "the message lists the roles the policy declares"


def test_unknown_type(client, portal, unchanged):
    with unchanged():
        response = client.put("/v1/resources/spaceship/enterprise", json={}, headers=portal)
    assert response.status_code == 422 and error(response)["code"] == "unknown_type"


def test_duplicate_grant(client, portal, org, unchanged):
    body = {"principal": "user:alice", "role": "member", "resource": "organization:acme"}
    assert client.post("/v1/grants", json=body, headers=portal).status_code == 201
    with unchanged():
        response = client.post("/v1/grants", json=body, headers=portal)
    assert response.status_code == 409 and error(response)["code"] == "duplicate_grant"


def test_wrong_method(client, portal):
    response = client.patch("/v1/grants", headers=portal)
    assert response.status_code == 405 and error(response)["code"] == "method_not_allowed"


def test_bad_query_parameters(client, portal):
    response = client.get("/v1/principals?type=robot", headers=portal)
    assert response.status_code == 400 and error(response)["field"] == "type"
    assert client.get("/v1/principals?limit=lots", headers=portal).status_code == 400
