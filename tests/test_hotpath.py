"""The portal's checks and /healthz skip Flask, yet answer exactly as the Flask views do."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from support import write

from accessreview.authz.engine import SERVICE_RESOURCE
from accessreview.tokens import create_token, revoke_token

from test_authorize import world  # noqa: F401 - the same directory as the Flask-side tests


@pytest.fixture
def through_flask(app):
    """Counts the requests Flask's own machinery handled."""
    seen: list[int] = []
    app.before_request_funcs.setdefault(None, []).append(lambda: seen.append(1))
    return seen


def send(client, path, body, headers, *, chunked=False, method="POST"):
    """As the hot path gets it, or as a chunked upload (no Content-Length), which Flask answers."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    overrides = {"CONTENT_LENGTH": "", "wsgi.input_terminated": True} if chunked \
        else {"CONTENT_LENGTH": str(len(data))}
    response = client.open(path, method=method, data=data, headers={**headers, "Content-Type": "application/json"},
                           environ_overrides=overrides)
    payload = response.get_json()
    for result in [payload, *(payload or {}).get("results", [])]:
        if isinstance(result, dict):
            result.pop("decision_id", None)
    return response.status_code, payload, response.headers.get("WWW-Authenticate")


CASES = [
    ("/v1/authorize", {"actor": "user:alice", "action": "read", "resource": "document:d1"}, "portal"),
    ("/v1/authorize", {"actor": "user:carl", "action": "read", "resource": "document:d1"}, "portal"),
    ("/v1/authorize", {"actor": "user:nobody", "action": "read", "resource": "document:zz"}, "portal"),
    ("/v1/authorize/batch", {"checks": [{"actor": "user:bob", "action": "edit", "resource": "document:d2"},
                                        {"actor": "user:erin", "action": "read", "resource": "document:e1"}]}, "portal"),
    ("/v1/authorize", {"actor": "user:alice", "action": "read"}, "portal"),
    ("/v1/authorize", {"actor": "user:alice", "action": "read", "resource": "document:d1", "extra": 1}, "portal"),
    ("/v1/authorize", {"actor": 7, "action": "read", "resource": "document:d1"}, "portal"),
    ("/v1/authorize", b"{not json", "portal"),
    ("/v1/authorize", b"", "portal"),
    ("/v1/authorize/batch", {"checks": [{"actor": "user:bob", "action": "edit"}]}, "portal"),
    ("/v1/authorize/batch", {"checks": []}, "portal"),
    ("/v1/authorize", {"actor": "user:alice", "action": "read", "resource": "document:d1",
                       "at_least_revision": 10_000}, "portal"),
    ("/v1/authorize", {"actor": "user:alice", "action": "read", "resource": "document:d1"}, "auditor"),
    ("/v1/authorize", {"actor": "user:alice", "action": "read", "resource": "document:d1"}, "nobody"),
    ("/v1/authorize", {"actor": "user:alice", "action": "read", "resource": "document:d1"}, "forged"),
]


@pytest.mark.parametrize("path, body, who", CASES)
def test_the_hot_path_answers_as_flask_does(app, client, world, through_flask, path, body, who, request):
    app.config["STALE_WAIT"] = 0.05
    app.extensions["authz"].stale_wait = 0.05
    fixed = {"nobody": {}, "forged": {"Authorization": "Bearer ar_forged_token"}}
    headers = fixed[who] if who in fixed else request.getfixturevalue(who)
    fast = send(client, path, body, headers)
    assert not through_flask, "answered without Flask"
    slow = send(client, path, body, headers, chunked=True)
    assert through_flask, "answered by the Flask view"
    assert fast == slow
    assert fast[0] in (200, 400, 401, 403, 503)


def test_only_checks_and_health_take_the_hot_path(client, portal, lead, world, through_flask):
    assert client.get("/healthz").get_json() == {"status": "ok"} and not through_flask
    assert client.head("/healthz").status_code == 200 and len(through_flask) == 1
    assert client.get("/v1/authorize", headers=portal).status_code == 405 and len(through_flask) == 2
    assert client.post("/v1/explain", json={"actor": "user:alice", "action": "read", "resource": "document:d1"},
                       headers=lead).get_json()["allowed"] is True
    assert len(through_flask) == 3


ALLOWED = {"actor": "user:alice", "action": "read", "resource": "document:d1"}
DENIED = {"actor": "user:zoë", "action": "read", "resource": "document:d1"}


@pytest.mark.parametrize("path, body, keys", [
    ("/v1/authorize", ALLOWED, ["allowed", "decision_id", "policy_version", "revision"]),
    ("/v1/authorize", DENIED, ["allowed", "decision_id", "policy_version", "revision"]),
    ("/v1/authorize", {**ALLOWED, "ünknown": "ß"}, ["error"]),
    ("/v1/authorize/batch", {"checks": [ALLOWED, DENIED, ALLOWED]}, ["results", "policy_version", "revision"]),
    ("/v1/authorize/batch", {"checks": [ALLOWED]}, ["results", "policy_version", "revision"]),
])
def test_hot_path_answers_are_compact_ascii_json_with_keys_in_order(client, portal, world, through_flask, path, body,
                                                                    keys):
    raw = client.post(path, json=body, headers=portal).get_data()
    assert not through_flask
    payload = json.loads(raw)
    assert raw == (json.dumps(payload, separators=(",", ":")) + "\n").encode()
    assert list(payload) == keys
    for result in [payload, *payload.get("results", [])]:
        assert "allowed" not in result or list(result)[:2] == ["allowed", "decision_id"]
    if "results" in payload:
        assert [r["allowed"] for r in payload["results"]] == [c is ALLOWED for c in body["checks"]]


def test_a_body_over_the_limit_is_refused_before_it_is_read(app, client, portal, world):
    app.config.update(MAX_BODY_BYTES=256, MAX_CONTENT_LENGTH=256)
    checks = [{"actor": "user:alice", "action": "read", "resource": f"document:d{i}"} for i in range(20)]
    response = client.post("/v1/authorize/batch", json={"checks": checks}, headers=portal)
    assert response.status_code == 413
    assert response.get_json()["error"] == {"code": "body_too_large", "field": None,
                                            "message": "request body is larger than 256 bytes"}


def test_request_ids_metrics_and_logs(client, portal, world, capfd):
    from accessreview.observability import configure_logging

    configure_logging("INFO", True)
    try:
        answered = client.post("/v1/authorize", json={"actor": "user:alice", "action": "read",
                                                      "resource": "document:d1"},
                               headers={**portal, "X-Request-Id": "check-1"})
        refused = client.post("/v1/authorize", json={"actor": "user:alice"}, headers={**portal, "X-Request-Id": "bad-1"})
        lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    finally:
        logging.getLogger("accessreview").handlers.clear()
    assert answered.headers["X-Request-Id"] == "check-1" and refused.headers["X-Request-Id"] == "bad-1"
    logged = {line.get("request_id"): line for line in lines}
    # An answered check's record is the decision log; a refused one is in the request log.
    assert "check-1" not in logged
    assert logged["bad-1"]["status"] == 400 and logged["bad-1"]["caller"] == "service:portal"
    assert logged["bad-1"]["endpoint"] == "authorize.authorize_one"
    metrics = client.get("/metrics").get_data(as_text=True)
    counted = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("accessreview_http_requests_total{") and 'endpoint="/v1/authorize"' in line}
    assert any('status="200"' in k and v >= 1 for k, v in counted.items())
    assert any('status="400"' in k and v >= 1 for k, v in counted.items())


def test_answered_checks_are_in_the_request_log_at_debug(client, portal, world, capfd):
    from accessreview.observability import configure_logging

    configure_logging("DEBUG", True)
    try:
        client.post("/v1/authorize", json={"actor": "user:alice", "action": "read", "resource": "document:d1"},
                    headers={**portal, "X-Request-Id": "check-2"})
        lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    finally:
        logging.getLogger("accessreview").handlers.clear()
    entry = next(line for line in lines if line.get("request_id") == "check-2")
    assert entry["level"] == "DEBUG" and entry["status"] == 200 and entry["path"] == "/v1/authorize"


# The hot path remembers a checking caller's token and permission per snapshot; these show the
# remembered answer ends exactly when asking again would give another.
def kiosk_token(app, make_principal, expires_in=None) -> tuple[dict[str, str], str]:
    make_principal("service:kiosk")
    with write(app) as (session, ctx):
        token, state = create_token(session, ctx, app.config["SECRET_KEY"], "service:kiosk", expires_in)
    return {"Authorization": f"Bearer {token}"}, state["id"]


def status_and_code(client, headers):
    response = client.post("/v1/authorize", json=ALLOWED, headers=headers)
    return response.status_code, (response.get_json().get("error") or {}).get("code")


def test_a_checking_token_stops_the_moment_it_expires(app, client, world, make_principal, make_grant, clock):
    headers, _ = kiosk_token(app, make_principal, timedelta(hours=1))
    make_grant("service:kiosk", "portal_client", SERVICE_RESOURCE)
    assert status_and_code(client, headers) == (200, None)
    clock.advance(minutes=59, seconds=59)
    assert status_and_code(client, headers) == (200, None)
    clock.advance(seconds=1)
    assert status_and_code(client, headers) == (401, "invalid_token")


def test_a_checking_permission_lasts_until_the_last_grant_behind_it_expires(app, client, world, make_principal,
                                                                            make_grant, clock):
    headers, _ = kiosk_token(app, make_principal)
    make_grant("service:kiosk", "portal_client", SERVICE_RESOURCE, expires_at=clock.now() + timedelta(hours=1))
    make_grant("service:kiosk", "admin", SERVICE_RESOURCE, expires_at=clock.now() + timedelta(hours=2))
    assert status_and_code(client, headers) == (200, None)
    clock.advance(hours=1, minutes=30)  # the admin grant still lets it check
    assert status_and_code(client, headers) == (200, None)
    clock.advance(minutes=30)
    assert status_and_code(client, headers) == (403, "forbidden")


@pytest.mark.parametrize("change", ["revoke the token", "delete the grant", "disable the caller"])
def test_a_checking_caller_is_stopped_at_once_by_a_directory_change(app, client, world, make_principal, make_grant,
                                                                    admin, change):
    headers, token_id = kiosk_token(app, make_principal)
    grant_id = make_grant("service:kiosk", "portal_client", SERVICE_RESOURCE)
    assert status_and_code(client, headers) == (200, None)
    assert status_and_code(client, headers) == (200, None)  # answered from what the snapshot remembered
    if change == "revoke the token":
        with write(app) as (session, ctx):
            revoke_token(session, ctx, token_id)
        expected = (401, "invalid_token")
    elif change == "delete the grant":
        assert client.delete(f"/v1/grants/{grant_id}", headers=admin).status_code == 200
        expected = (403, "forbidden")
    else:
        assert client.put("/v1/principals/service:kiosk", json={"status": "disabled"}, headers=admin).status_code == 200
        expected = (403, "forbidden")
    assert status_and_code(client, headers) == expected
