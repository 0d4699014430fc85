"""The authorization endpoints: the portal's check, batch and list; who-has-access and explain (security
leads'); the decision log."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from datetime import datetime

import pytest

from accessreview import create_app
from accessreview.authz.deadline import limit_oso_queries
from support import copy_policies, every_page

PORTAL = {
    "source": "portal",
    "principals": [
        {"id": "user:alice", "name": "Alice"},
        {"id": "user:bob", "name": "Bob"},
        {"id": "user:carl", "name": "Carl", "status": "disabled"},
        {"id": "user:dina", "name": "Dina"},
        {"id": "user:erin", "name": "Erin"},
        {"id": "group:finance", "members": ["user:bob", "group:auditors"]},
        {"id": "group:auditors", "members": ["user:erin"]},
    ],
    "resources": [
        {"id": "organization:acme"}, {"id": "organization:globex"},
        {"id": "project:p1", "parent": "organization:acme"},
        {"id": "project:p2", "parent": "organization:acme"},
        {"id": "project:g1", "parent": "organization:globex"},
        *[{"id": f"document:d{i}", "parent": "project:p1"} for i in range(1, 6)],
        {"id": "document:e1", "parent": "project:p2"},
        {"id": "document:g1", "parent": "project:g1"},
        {"id": "invoice:i1", "parent": "organization:acme"},
    ],
    "grants": [
        {"principal": "user:alice", "role": "admin", "resource": "organization:acme"},
        {"principal": "group:finance", "role": "editor", "resource": "project:p1"},
        {"principal": "user:carl", "role": "admin", "resource": "organization:acme"},
        {"principal": "user:dina", "role": "viewer", "resource": "document:e1", "expires_at": "2026-03-01T00:00:00Z"},
        {"principal": "user:dina", "role": "viewer", "resource": "document:d1"},
    ],
}


@pytest.fixture
def world(client, portal):
    response = client.post("/v1/directory/import", json=PORTAL, headers=portal)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["revision"]


def check(client, headers, actor, action, resource, **extra):
    return client.post("/v1/authorize", json={"actor": actor, "action": action, "resource": resource, **extra},
                       headers=headers)


@pytest.mark.parametrize("actor, action, resource, allowed", [
    ("user:alice", "delete", "document:d3", True),          # org admin → project manager → delete
    ("user:alice", "pay", "invoice:i1", True),              # admin ⇒ billing_admin on the parent
    ("user:alice", "read", "document:g1", False),           # another organization
    ("user:bob", "edit", "document:d2", True),              # group grant on the parent project
    ("user:bob", "delete", "document:d2", False),           # editor, not manager
    ("user:erin", "share", "document:d5", True),            # nested group
    ("user:carl", "read", "document:d1", False),            # disabled
    ("user:dina", "read", "document:e1", False),            # expired grant
    ("user:dina", "read", "document:d1", True),
    ("group:finance", "edit", "document:d2", False),        # groups do not act
    ("user:ghost", "read", "document:d1", False),           # unknown actor
    ("user:alice", "read", "document:ghost", False),        # unknown resource
    ("user:alice", "fly", "document:d1", False),            # unknown action
])
def test_checks(client, portal, world, actor, action, resource, allowed):
    response = check(client, portal, actor, action, resource)
    assert response.status_code == 200
    body = response.get_json()
    assert body["allowed"] is allowed
    assert body["decision_id"] and body["revision"] == world
    assert body["policy_version"] == client.application.extensions["authz"].policy.version


@pytest.mark.parametrize("body, field", [
    ({"actor": "user:alice", "action": "read"}, "resource"),
    ({"actor": "user:alice", "action": 5, "resource": "document:d1"}, "action"),
    ({"actor": "user:alice", "action": "read", "resource": "document:d1", "extra": 1}, "extra"),
    ({"actor": "user:alice", "action": "read", "resource": "document:d1", "at_least_revision": "7"},
     "at_least_revision"),
])
def test_malformed_checks_are_400(client, portal, world, body, field):
    response = client.post("/v1/authorize", json=body, headers=portal)
    assert response.status_code == 400 and response.get_json()["error"]["field"] == field


def test_checks_need_the_portal_client_role(client, auditor, admin, world):
    assert check(client, auditor, "user:alice", "read", "document:d1").status_code == 403
    assert check(client, admin, "user:alice", "read", "document:d1").get_json()["allowed"] is True


def test_at_least_revision(client, portal, world, app):
    assert check(client, portal, "user:alice", "read", "document:d1", at_least_revision=world).status_code == 200
    app.extensions["authz"].stale_wait = 0.05
    response = check(client, portal, "user:alice", "read", "document:d1", at_least_revision=world + 1)
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "stale"


def test_a_write_is_seen_by_the_next_check(client, portal, world):
    created = client.post("/v1/grants", json={"principal": "user:dina", "role": "editor", "resource": "project:p2"},
                          headers=portal).get_json()
    response = check(client, portal, "user:dina", "edit", "document:e1", at_least_revision=created["revision"])
    assert response.get_json()["allowed"] is True
    client.delete(f"/v1/grants/{created['id']}", headers=portal)
    assert check(client, portal, "user:dina", "edit", "document:e1").get_json()["allowed"] is False


def test_batch_answers_in_order_like_single_checks(client, portal, world):
    triples = [("user:alice", "delete", "document:d3"), ("user:bob", "delete", "document:d2"),
               ("user:erin", "read", "document:d1"), ("user:ghost", "read", "document:d1")]
    response = client.post("/v1/authorize/batch", json={"checks": [
        {"actor": a, "action": x, "resource": r} for a, x, r in triples]}, headers=portal)
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert [r["allowed"] for r in results] == [check(client, portal, *t).get_json()["allowed"] for t in triples]
    assert len({r["decision_id"] for r in results}) == 4


def test_batch_names_the_bad_item(client, portal, world):
    response = client.post("/v1/authorize/batch", json={"checks": [
        {"actor": "user:alice", "action": "read", "resource": "document:d1"},
        {"actor": "user:alice", "resource": "document:d1"}]}, headers=portal)
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "checks.1.action"


def test_batch_size_is_bounded(client, portal, world, app):
    app.config["MAX_BATCH"] = 3
    response = client.post("/v1/authorize/batch", json={"checks": [
        {"actor": "user:alice", "action": "read", "resource": "document:d1"}] * 4}, headers=portal)
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "checks"
    assert client.post("/v1/authorize/batch", json={"checks": []}, headers=portal).status_code == 400


def test_list_is_complete_and_paginated(client, portal, world):
    seen = every_page(client, "/v1/principals/user:bob/resources?action=read&type=document&limit=2", portal)
    assert seen == [f"document:d{i}" for i in range(1, 6)]
    alice = client.get("/v1/principals/user:alice/resources?action=delete&type=document", headers=portal).get_json()
    assert alice["items"] == ["document:d1", "document:d2", "document:d3", "document:d4", "document:d5", "document:e1"]
    dina = client.get("/v1/principals/user:dina/resources?action=read&type=document", headers=portal).get_json()
    assert dina["items"] == ["document:d1"], "the expired grant gives nothing"
    carl = client.get("/v1/principals/user:carl/resources?action=read&type=project", headers=portal).get_json()
    assert carl["items"] == []
    assert client.get("/v1/principals/user:bob/resources?action=read&type=planet",
                      headers=portal).status_code == 400


def test_access_lists_every_actor_with_permissions_and_why(client, lead, world):
    body = client.get("/v1/resources/document/d2/access", headers=lead).get_json()
    entries = {e["principal"]: e for e in body["items"]}
    assert list(entries) == ["user:alice", "user:bob", "user:erin"]
    assert entries["user:alice"]["permissions"] == ["delete", "edit", "read", "share"]
    assert entries["user:bob"]["permissions"] == ["edit", "read", "share"]
    assert entries["user:erin"]["via"] == [{"grant_id": entries["user:bob"]["via"][0]["grant_id"],
                                            "principal": "group:finance", "role": "editor", "resource": "project:p1"}]
    first = client.get("/v1/resources/document/d2/access?limit=2", headers=lead).get_json()
    rest = client.get(f"/v1/resources/document/d2/access?limit=2&cursor={first['next_cursor']}",
                      headers=lead).get_json()
    assert [e["principal"] for e in first["items"] + rest["items"]] == list(entries)


def test_explain_an_allow_shows_the_chain(client, lead, world):
    body = client.post("/v1/explain", json={"actor": "user:erin", "action": "edit", "resource": "document:d4"},
                       headers=lead).get_json()
    assert body["allowed"] is True
    reason = body["reasons"][0]
    assert reason["code"] == "granted" and reason["principal"] == "group:finance"
    assert reason["via_groups"] == ["group:auditors", "group:finance"]
    assert reason["chain"] == [{"resource": "project:p1", "roles": ["editor", "viewer"]},
                               {"resource": "document:d4", "roles": ["editor", "viewer"]}]


@pytest.mark.parametrize("actor, action, resource, code", [
    ("user:carl", "read", "document:d1", "principal_disabled"),
    ("user:dina", "read", "document:e1", "grant_expired"),
    ("user:erin", "read", "document:g1", "no_grant"),
    ("user:bob", "delete", "document:d1", "role_insufficient"),
    ("user:ghost", "read", "document:d1", "unknown_actor"),
    ("group:finance", "read", "document:d1", "not_an_actor"),
    ("user:bob", "fly", "document:d1", "unknown_action"),
])
def test_explain_a_deny_says_what_is_missing(client, lead, world, actor, action, resource, code):
    body = client.post("/v1/explain", json={"actor": actor, "action": action, "resource": resource},
                       headers=lead).get_json()
    assert body["allowed"] is False
    assert code in [r["code"] for r in body["reasons"]]


def test_no_grant_explains_which_roles_would_allow(client, lead, world):
    body = client.post("/v1/explain", json={"actor": "user:erin", "action": "delete", "resource": "document:g1"},
                       headers=lead).get_json()
    missing = next(r for r in body["reasons"] if r["code"] == "no_grant")
    assert missing["checked"] == ["document:g1", "project:g1", "organization:globex"]
    assert missing["roles_that_would_allow"] == {"project:g1": ["manager"], "organization:globex": ["admin"]}


def test_every_decision_is_logged_with_the_grants_it_used(client, portal, auditor, world, app):
    allowed = check(client, portal, "user:bob", "edit", "document:d2").get_json()
    denied = check(client, portal, "user:bob", "delete", "document:d2").get_json()
    log = client.get("/v1/decisions?actor=user:bob", headers=auditor).get_json()["items"]
    by_id = {d["id"]: d for d in log}
    assert by_id[allowed["decision_id"]]["allowed"] is True and by_id[allowed["decision_id"]]["grant_ids"]
    assert by_id[allowed["decision_id"]]["caller"] == "service:portal"
    assert by_id[denied["decision_id"]]["allowed"] is False and by_id[denied["decision_id"]]["grant_ids"] == []
    only_denied = client.get("/v1/decisions?actor=user:bob&allowed=false", headers=auditor).get_json()["items"]
    assert [d["id"] for d in only_denied] == [denied["decision_id"]]
    assert client.get("/v1/decisions", headers=portal).status_code == 403


def test_grant_usage_is_recorded(client, portal, world, app, db, clock):
    from accessreview.models import GrantUsage

    check(client, portal, "user:bob", "edit", "document:d2")
    clock.advance(hours=1)
    check(client, portal, "user:erin", "read", "document:d3")
    app.extensions["decisions"].flush()
    grant_id = client.get("/v1/grants?principal=group:finance", headers=portal).get_json()["items"][0]["id"]
    usage = db.get(GrantUsage, grant_id)
    assert usage.uses == 2 and usage.last_used_at == clock.now()


def test_a_large_flush_keeps_every_decision_and_use(client, portal, auditor, world, app, db):
    """More decisions than one insert statement carries: 1,187 = 1,024 + 128 + 2 × 16 + 3, every size of statement."""
    from sqlalchemy import func, select

    from accessreview.models import Decision, GrantUsage

    app.extensions["decisions"].flush()
    before = db.scalar(select(func.count()).select_from(Decision))
    checks = [{"actor": "user:bob", "action": "edit", "resource": f"document:d{1 + i % 5}"} for i in range(1187)]
    answers = []
    for start in range(0, 1187, 600):
        response = client.post("/v1/authorize/batch", json={"checks": checks[start:start + 600]}, headers=portal)
        answers += response.get_json()["results"]
    assert app.extensions["decisions"].flush() == 1187
    db.rollback()  # end the read that counted `before`: the flush committed after it began
    assert db.scalar(select(func.count()).select_from(Decision)) == before + 1187
    stored = {d.id: d for d in db.scalars(select(Decision).where(Decision.id.in_([a["decision_id"] for a in answers])))}
    assert len(stored) == 1187 and all(stored[a["decision_id"]].allowed is a["allowed"] is True for a in answers)
    assert all(d.grant_ids and d.caller == "service:portal" for d in stored.values())
    grant_id = stored[answers[0]["decision_id"]].grant_ids[0]
    assert db.get(GrantUsage, grant_id).uses == 1187


def test_decisions_page_in_time_order(client, portal, auditor, world, clock):
    ids = []
    for _ in range(5):
        ids.append(check(client, portal, "user:alice", "read", "document:d1").get_json()["decision_id"])
        clock.advance(seconds=1)
    seen = [d["id"] for d in every_page(client, "/v1/decisions?actor=user:alice&limit=2", auditor)]
    assert seen == ids
    since = client.get("/v1/decisions?since=2026-03-02T09:00:03Z", headers=auditor).get_json()["items"]
    assert [d["id"] for d in since] == ids[3:]


def test_decision_times_are_kept_to_the_microsecond_across_seconds(client, portal, auditor, world, clock, app):
    moments = []
    for step in [0, 999_999, 1, 500_000, 86_400 * 10**6, 0]:  # the formatted second is reused only within it
        clock.advance(microseconds=step)
        moments.append(clock.now())
        check(client, portal, "user:alice", "read", "document:d1")
    app.extensions["decisions"].flush()
    kept = client.get("/v1/decisions?actor=user:alice&limit=100", headers=auditor).get_json()["items"]
    assert [datetime.fromisoformat(d["decided_at"].replace("Z", "+00:00")) for d in kept] == moments


def _dropped(client) -> float:
    metrics = client.get("/metrics").get_data(as_text=True).splitlines()
    return float(next(line for line in metrics if line.startswith("accessreview_decisions_dropped_total ")).split()[1])


def test_a_full_buffer_counts_what_it_drops(client, portal, world, app):
    app.extensions["decisions"].flush()
    before = _dropped(client)
    app.extensions["decisions"].capacity = 2
    for _ in range(5):
        assert check(client, portal, "user:alice", "read", "document:d1").status_code == 200
    assert _dropped(client) == before + 3


def test_a_batch_the_buffer_cannot_hold_is_counted_whole_and_leaves_no_use(client, portal, auditor, world, app, db):
    from sqlalchemy import select

    from accessreview.models import GrantUsage

    log = app.extensions["decisions"]
    log.flush()
    grant_id = client.get("/v1/grants?principal=group:finance", headers=portal).get_json()["items"][0]["id"]
    uses_before = db.scalar(select(GrantUsage.uses).where(GrantUsage.grant_id == grant_id)) or 0
    dropped_before = _dropped(client)
    log.capacity = 2
    kept = check(client, portal, "user:bob", "edit", "document:d2").get_json()["decision_id"]
    response = client.post("/v1/authorize/batch", headers=portal, json={"checks": [
        {"actor": "user:bob", "action": "edit", "resource": "document:d2"}] * 2})
    assert response.status_code == 200 and all(r["allowed"] for r in response.get_json()["results"])
    assert log.flush() == 1
    assert _dropped(client) == dropped_before + 2
    assert [d["id"] for d in client.get("/v1/decisions?actor=user:bob", headers=auditor).get_json()["items"]] == [kept]
    db.rollback()
    assert db.scalar(select(GrantUsage.uses).where(GrantUsage.grant_id == grant_id)) == uses_before + 1


def test_evaluation_errors_fail_closed(client, portal, world, app, monkeypatch):
    from accessreview.authz.evaluator import Evaluator

    def broken(*_args, **_kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(Evaluator, "check", broken)
    response = check(client, portal, "user:alice", "read", "document:d1")
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "evaluation_failed"
    assert "allowed" not in response.get_json()


def _slowed(monkeypatch, cls, name: str, seconds: float) -> None:
    """Make ``cls.name`` take ``seconds`` longer: a stand-in for an expensive policy."""
    original = getattr(cls, name)

    def slow(*args, **kwargs):
        time.sleep(seconds)
        return original(*args, **kwargs)

    monkeypatch.setattr(cls, name, slow)


@pytest.fixture
def timed_app(app_config, world, monkeypatch):
    """The same directory served with a 250 ms evaluation timeout, every check asked of oso."""
    monkeypatch.delenv("POLAR_TIMEOUT_MS", raising=False)  # create_app sets oso's limit; undone afterwards
    timed = create_app({**app_config, "EVALUATION": "oso", "EVALUATION_TIMEOUT": 0.25})
    yield timed
    timed.extensions["db"].dispose()


@contextmanager
def _unhurried(app):
    """The answer without the slowing, with time to spare on a busy machine: the request's deadline and
    oso's own limit on one query (both are read per request) lifted for the while."""
    app.config["EVALUATION_TIMEOUT"], kept = 30, app.config["EVALUATION_TIMEOUT"]
    kept_oso = os.environ.get("POLAR_TIMEOUT_MS")
    limit_oso_queries(30)
    try:
        yield
    finally:
        app.config["EVALUATION_TIMEOUT"] = kept
        if kept_oso is None:
            os.environ.pop("POLAR_TIMEOUT_MS", None)
        else:
            os.environ["POLAR_TIMEOUT_MS"] = kept_oso


def _is_evaluation_timeout(response) -> bool:
    body = response.get_json()
    return response.status_code == 503 and body["error"]["code"] == "evaluation_timeout" and "allowed" not in body


def test_a_batch_past_the_evaluation_timeout_fails_closed_and_keeps_no_decision(timed_app, portal, auditor,
                                                                               monkeypatch):
    from accessreview.authz.evaluator import Evaluator

    client = timed_app.test_client()
    checks = [{"actor": "user:bob", "action": "edit", "resource": f"document:d{i}"} for i in range(1, 6)]
    assert client.post("/v1/authorize/batch", json={"checks": checks}, headers=portal).status_code == 200
    timed_app.extensions["decisions"].flush()
    kept = len(client.get("/v1/decisions?actor=user:bob", headers=auditor).get_json()["items"])
    assert kept == 5

    _slowed(monkeypatch, Evaluator, "check", 0.1)  # 100 ms a check: the fourth would start past 250 ms
    response = client.post("/v1/authorize/batch", json={"checks": checks}, headers=portal)
    assert _is_evaluation_timeout(response) and "results" not in response.get_json()
    timed_app.extensions["decisions"].flush()
    # The three checks decided before the deadline were never answered, so they are not in the log.
    assert len(client.get("/v1/decisions?actor=user:bob", headers=auditor).get_json()["items"]) == kept


def test_a_list_past_the_evaluation_timeout_fails_closed(timed_app, portal, monkeypatch):
    from accessreview.authz.policy import Policy

    client = timed_app.test_client()
    url = "/v1/principals/user:alice/resources?action=read&type=document"
    with _unhurried(timed_app):
        assert client.get(url, headers=portal).get_json()["items"][:2] == ["document:d1", "document:d2"]
    _slowed(monkeypatch, Policy, "is_allowed", 0.1)  # one oso question per document: 7 x 100 ms
    assert _is_evaluation_timeout(client.get(url, headers=portal))


def test_access_past_the_evaluation_timeout_fails_closed(timed_app, lead, monkeypatch):
    from accessreview.authz.policy import Policy

    client = timed_app.test_client()
    url = "/v1/resources/document/d2/access"
    with _unhurried(timed_app):
        answer = client.get(url, headers=lead)
    assert answer.status_code == 200, answer.get_json()
    assert "user:bob" in [item["principal"] for item in answer.get_json()["items"]]
    _slowed(monkeypatch, Policy, "authorized_actions", 0.1)  # one oso question per actor: 6 or more
    assert _is_evaluation_timeout(client.get(url, headers=lead))


SPIN = """
spin(0);
spin(n: Integer) if n > 0 and spin(n - 1) and spin(n - 1);
has_permission(_user: User, "read", _document: Document) if spin(40);
"""


def test_an_oso_query_past_the_timeout_is_stopped_and_fails_closed(app_config, world, portal, tmp_path,
                                                                     monkeypatch):
    policies = copy_policies(tmp_path / "spinning-policies")
    (policies / "spin.polar").write_text(SPIN)
    monkeypatch.delenv("POLAR_TIMEOUT_MS", raising=False)
    spinning = create_app({**app_config, "POLICY_DIR": str(policies), "EVALUATION_TIMEOUT": 0.05})
    client = spinning.test_client()
    try:
        started = time.monotonic()
        response = check(client, portal, "user:alice", "read", "document:d1")  # documents now go to oso
        assert _is_evaluation_timeout(response)
        assert time.monotonic() - started < 5  # 2^40 steps, stopped by oso at 50 ms
        assert check(client, portal, "user:alice", "read", "project:p1").get_json()["allowed"] is True
    finally:
        spinning.extensions["db"].dispose()


def test_forced_oso_gives_the_same_answers(app_config, world, client, portal):
    oso_app = create_app({**app_config, "EVALUATION": "oso"})
    oso_client = oso_app.test_client()
    for actor in ("user:alice", "user:bob", "user:erin", "user:carl", "user:dina"):
        for resource in ("document:d2", "document:e1", "invoice:i1", "project:g1"):
            for action in ("read", "edit", "delete", "pay", "manage"):
                fast = check(client, portal, actor, action, resource).get_json()["allowed"]
                slow = check(oso_client, portal, actor, action, resource).get_json()["allowed"]
                assert fast == slow, (actor, action, resource)
    assert oso_client.get("/v1/policy", headers=portal).get_json()["evaluation"] == "oso"
    oso_app.extensions["db"].dispose()


def test_retention_prunes_old_decisions(client, portal, auditor, world, app, clock):
    old = check(client, portal, "user:alice", "read", "document:d1").get_json()["decision_id"]
    app.extensions["decisions"].flush()
    clock.advance(days=app.config["DECISION_RETENTION_DAYS"] + 1)
    recent = check(client, portal, "user:alice", "read", "document:d1").get_json()["decision_id"]
    app.extensions["decisions"].flush()
    app.extensions["decisions"].prune()
    kept = [d["id"] for d in client.get("/v1/decisions", headers=auditor).get_json()["items"]]
    assert recent in kept and old not in kept


def test_a_preloaded_engine_answers_its_first_check_without_loading(app_config, world, portal, monkeypatch,
                                                                      tmp_path, capfd):
    """What gunicorn's master does before forking: the workers start with the index in memory."""
    from accessreview.authz.index import DirectoryIndex

    preloaded = create_app(app_config)
    preloaded.extensions["authz"].preload()
    monkeypatch.setattr(DirectoryIndex, "load", classmethod(lambda *_: pytest.fail("the index was loaded again")))
    assert check(preloaded.test_client(), portal, "user:alice", "read", "document:d1").get_json()["allowed"] is True
    preloaded.extensions["db"].dispose()

    unmigrated = create_app({**app_config, "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}"})
    unmigrated.extensions["authz"].preload()  # /readyz reports it; starting up does not fail
    assert "directory not preloaded" in capfd.readouterr().err
    unmigrated.extensions["db"].dispose()


def test_a_forked_worker_catches_up_before_its_first_check(app, app_config, portal, world):
    """gunicorn forks workers from a master that preloaded the index, maybe long before: a worker's
    first check must not be answered from the master's old snapshot."""
    import os

    engine = app.extensions["authz"]
    engine.preload()
    other = create_app(app_config)  # another process's write: this one's snapshot does not move
    granted = other.test_client().post("/v1/grants", json={"principal": "user:bob", "role": "viewer",
                                                            "resource": "document:g1"}, headers=portal)
    assert granted.status_code == 201
    other.extensions["db"].dispose()
    assert engine.is_allowed("user:bob", "read", "document:g1") is False, "the parent has not caught up"
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            app.extensions["db"].engine.dispose(close=False)
            os.write(write_end, b"1" if engine.is_allowed("user:bob", "read", "document:g1") else b"0")
        finally:
            os._exit(0)
    os.close(write_end)
    answer = os.read(read_end, 1)
    os.waitpid(child, 0)
    os.close(read_end)
    assert answer == b"1"


def test_made_up_tokens_cost_a_few_reads_and_a_token_made_elsewhere_works_at_once(app, app_config, client, portal,
                                                                                  monkeypatch):
    """A token this process does not know may have been made a moment ago in another one, so it looks
    in the database before refusing it; a caller making tokens up must not turn that into a read a
    request."""
    from accessreview.tokens import create_token
    from support import write

    engine = app.extensions["authz"]
    engine.snapshot()
    reads: list[float] = []
    refresh = engine.refresh
    monkeypatch.setattr(engine, "refresh", lambda timeout=-1: reads.append(time.monotonic()) or refresh(timeout))
    check = {"actor": "service:portal", "action": "check", "resource": "system:accessreview"}
    started = time.monotonic()
    for n in range(200):
        made_up = {"Authorization": f"Bearer ar_000000000000_{n:043d}"}
        assert client.post("/v1/authorize", json=check, headers=made_up).status_code == 401
    took = time.monotonic() - started
    # A look every 5 ms, doubling while they find nothing, to one every 0.1 s: not one a request.
    assert len(reads) <= 8 + took / 0.1 and len(reads) < 50, (took, [round(r - started, 3) for r in reads])

    time.sleep(1.1)  # the made-up tokens have stopped
    other = create_app(app_config)  # another process: this one's snapshot does not move
    with write(other) as (session, ctx):
        token, _ = create_token(session, ctx, app_config["SECRET_KEY"], "service:portal")
    other.extensions["db"].dispose()
    answer = client.post("/v1/authorize", json=check, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200 and answer.get_json()["allowed"] is True
