"""Who may call what: tokens, the service policy, and the guard against forgotten checks."""

from __future__ import annotations

import re

import pytest

from accessreview.guard import authorize


def test_no_token_is_401(client):
    response = client.get("/v1/principals")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthenticated"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer ", "Basic dXNlcjpwdw==", "Bearer ar_nope", "Bearer x" * 3])
def test_bad_tokens_are_401(client, header):
    assert client.get("/v1/principals", headers={"Authorization": header}).status_code == 401


def test_auditor_reads_but_does_not_write(client, auditor, unchanged):
    assert client.get("/v1/principals", headers=auditor).status_code == 200
    assert client.get("/v1/audit-events", headers=auditor).status_code == 200
    with unchanged():
        response = client.put("/v1/principals/user:x", json={}, headers=auditor)
    assert response.status_code == 403 and response.get_json()["error"]["code"] == "forbidden"


def test_portal_client_syncs_but_does_not_read_the_audit_trail(client, portal):
    assert client.put("/v1/principals/user:x", json={}, headers=portal).status_code == 201
    assert client.get("/v1/audit-events", headers=portal).status_code == 403


def test_admin_may_do_everything_so_far(client, admin):
    assert client.put("/v1/principals/user:x", json={}, headers=admin).status_code == 201
    assert client.get("/v1/audit-events", headers=admin).status_code == 200


def test_principal_without_roles_is_403(client, token_for):
    headers = token_for("user:nobody")
    assert client.get("/v1/principals", headers=headers).status_code == 403


def test_role_through_a_group_counts(client, token_for, make_principal, make_grant):
    headers = token_for("user:gina")
    make_principal("group:auditors", members=["user:gina"])
    make_grant("group:auditors", "auditor", "system:accessreview")
    assert client.get("/v1/audit-events", headers=headers).status_code == 200


def test_disabled_user_loses_access_at_once(client, token_for, portal):
    headers = token_for("user:dora", "auditor")
    assert client.get("/v1/principals", headers=headers).status_code == 200
    client.put("/v1/principals/user:dora", json={"status": "disabled"}, headers=portal)
    assert client.get("/v1/principals", headers=headers).status_code == 403


def test_expired_role_grant_gives_nothing(client, token_for, make_grant, make_principal, clock):
    from datetime import timedelta

    headers = token_for("user:temp")
    make_grant("user:temp", "auditor", "system:accessreview", expires_at=clock.now() + timedelta(hours=1))
    assert client.get("/v1/audit-events", headers=headers).status_code == 200
    clock.advance(hours=1)
    assert client.get("/v1/audit-events", headers=headers).status_code == 403


def test_revoking_the_role_grant_takes_effect_at_once(client, token_for, admin):
    headers = token_for("user:rita", "auditor")
    grant = client.get("/v1/grants?principal=user:rita", headers=admin).get_json()["items"][0]["id"]
    client.delete(f"/v1/grants/{grant}", headers=admin)
    assert client.get("/v1/audit-events", headers=headers).status_code == 403


def test_guard_fails_an_endpoint_that_skipped_authorization(app, client, admin):
    @app.get("/v1/forgetful")
    def forgetful():
        return {"secret": "data"}

    response = client.get("/v1/forgetful", headers=admin)
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "authorization_missing"
    assert "secret" not in response.get_data(as_text=True)


def test_guard_lets_an_authorized_endpoint_through(app, client, admin):
    @app.get("/v1/careful")
    def careful():
        authorize("read_directory")
        return {"ok": True}

    assert client.get("/v1/careful", headers=admin).status_code == 200


def test_every_v1_route_wants_a_token(app, client):
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/v1/"):
            continue
        path = re.sub(r"<int:\w+>", "1", rule.rule).replace("<principal>", "user:x")
        path = re.sub(r"<\w+>", "x", path)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            response = client.open(path, method=method, json={})
            assert response.status_code == 401, f"{method} {rule.rule} answered {response.status_code}"


def test_the_pages_are_for_active_people_not_programs(client, token_for, portal):
    """A service's token opens no page, even an admin's; a disabled person's session ends at once."""
    automation = token_for("service:ops", "admin")
    for headers in (automation, portal):
        pasted = client.post("/ui/sign-in/token", data={"token": headers["Authorization"].split()[1]})
        assert pasted.status_code == 403 and "for active people" in pasted.get_data(as_text=True)
        assert "accessreview_session" not in pasted.headers.get("Set-Cookie", "")
        client.set_cookie("accessreview_session", headers["Authorization"].split()[1], path="/ui")
        for page in ("/ui/", "/ui/tokens", "/ui/access"):
            assert client.get(page).status_code == 403, page
        assert client.get("/ui/sign-in").status_code == 200, "the form, not a way round to a refusal"
    assert client.get("/v1/principals", headers=automation).status_code == 200, "its API is untouched"

    person = token_for("user:dora", "admin")
    client.set_cookie("accessreview_session", person["Authorization"].split()[1], path="/ui")
    assert client.get("/ui/tokens").status_code == 200
    client.put("/v1/principals/user:dora", json={"status": "disabled"}, headers=portal)
    assert client.get("/ui/").status_code == 403
