"""Access reviews: definitions, launch, reviewing, close, sign-off, remediation, measures."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from accessreview.audit import verify_chain
from accessreview.models import Campaign, ReviewItem
from support import copy_policies

DIRECTORY = {
    "source": "portal", "mode": "replace",
    "principals": [
        {"id": "user:lena", "name": "Lena Lead", "email": "lena@example.com"},
        {"id": "user:owen", "name": "Owen Owner", "email": "owen@example.com", "manager": "user:lena"},
        {"id": "user:mia", "name": "Mia Manager", "email": "mia@example.com"},
        {"id": "user:ann", "name": "Ann", "email": "ann@example.com", "manager": "user:mia"},
        {"id": "user:ben", "name": "Ben", "email": "ben@example.com", "manager": "user:mia"},
        {"id": "user:cat", "name": "Cat", "email": "cat@example.com", "status": "disabled", "manager": "user:mia"},
        {"id": "group:team", "name": "Team", "members": ["user:ben"]},
    ],
    "resources": [
        {"id": "organization:acme", "owner": "user:owen"},
        {"id": "project:p1", "parent": "organization:acme"},
        {"id": "document:d1", "parent": "project:p1"},
        {"id": "organization:other", "owner": "user:mia"},
    ],
    "grants": [
        {"principal": "user:ann", "role": "editor", "resource": "project:p1"},
        {"principal": "user:ben", "role": "viewer", "resource": "document:d1"},
        {"principal": "user:ben", "role": "editor", "resource": "project:p1"},
        {"principal": "user:cat", "role": "member", "resource": "organization:acme"},
        {"principal": "group:team", "role": "viewer", "resource": "project:p1"},
        {"principal": "user:owen", "role": "admin", "resource": "organization:acme"},
        {"principal": "user:ann", "role": "member", "resource": "organization:other"},
    ],
}


@pytest.fixture
def directory(client, portal):
    response = client.post("/v1/directory/import", json=DIRECTORY, headers=portal)
    assert response.status_code == 200, response.get_json()


def definition(client, lead, **overrides):
    body = {"name": "Acme quarterly", "scope": {"subtrees": ["organization:acme"]},
            "reviewer": {"rule": "resource_owner"}, "fallback_reviewer": "user:lena", "duration_days": 14,
            "on_no_response": "revoke", **overrides}
    response = client.post("/v1/campaign-definitions", json=body, headers=lead)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def launch(client, lead, definition_id):
    response = client.post(f"/v1/campaign-definitions/{definition_id}/launch", headers=lead)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def items(client, headers, campaign_id, **filters):
    query = "&".join(f"{k}={v}" for k, v in {"campaign": campaign_id, "limit": 1000, **filters}.items())
    return {(i["principal"]["id"], i["role"], i["resource"]["id"]): i
            for i in client.get(f"/v1/review-items?{query}", headers=headers).get_json()["items"]}


def test_definitions_are_validated_and_editable(client, lead, directory):
    bad = client.post("/v1/campaign-definitions", json={"name": "x", "reviewer": {"rule": "principal"},
                                                        "fallback_reviewer": "user:lena", "duration_days": 7,
                                                        "on_no_response": "keep"}, headers=lead)
    assert bad.status_code == 400 and bad.get_json()["error"]["field"].startswith("reviewer")
    cron = client.post("/v1/campaign-definitions", json={
        "name": "x", "reviewer": {"rule": "manager"}, "fallback_reviewer": "user:lena", "duration_days": 7,
        "on_no_response": "keep", "schedule": {"cron": "not a cron"}}, headers=lead)
    assert cron.status_code == 400 and cron.get_json()["error"]["field"] == "schedule"
    ghost = client.post("/v1/campaign-definitions", json={
        "name": "x", "reviewer": {"rule": "manager"}, "fallback_reviewer": "user:ghost", "duration_days": 7,
        "on_no_response": "keep"}, headers=lead)
    assert ghost.status_code == 422
    for part in ("subtrees", "resources"):
        nowhere = client.post("/v1/campaign-definitions", json={
            "name": "x", "scope": {part: ["organization:acme", "project:does-not-exist"]},
            "reviewer": {"rule": "manager"}, "fallback_reviewer": "user:lena", "duration_days": 7,
            "on_no_response": "keep"}, headers=lead)
        error = nowhere.get_json()["error"]
        assert nowhere.status_code == 422 and (error["code"], error["field"]) == ("unknown_reference", f"scope.{part}")
        assert error["message"] == "project:does-not-exist is not in the directory"
    assert client.get("/v1/campaign-definitions", headers=lead).get_json()["items"] == [], "nothing was made"
    definition_id = definition(client, lead, schedule={"cron": "0 9 1 */3 *", "timezone": "Europe/Paris"})
    patched = client.patch(f"/v1/campaign-definitions/{definition_id}", json={"duration_days": 21}, headers=lead)
    assert patched.status_code == 200 and patched.get_json()["duration_days"] == 21
    assert patched.get_json()["schedule"]["timezone"] == "Europe/Paris"
    assert client.get("/v1/campaign-definitions", headers=lead).get_json()["items"][0]["id"] == definition_id
    moved = client.patch(f"/v1/campaign-definitions/{definition_id}",
                         json={"scope": {"subtrees": ["project:does-not-exist"]}}, headers=lead)
    assert moved.status_code == 422 and moved.get_json()["error"]["field"] == "scope.subtrees"
    for needed in ("justification", "reminders", "on_no_response"):  # a definition cannot do without them
        nulled = client.patch(f"/v1/campaign-definitions/{definition_id}", json={needed: None}, headers=lead)
        assert nulled.status_code == 400 and nulled.get_json()["error"]["field"] == needed, nulled.get_json()


def test_only_security_leads_define_and_launch(client, auditor, portal, lead, directory):
    definition_id = definition(client, lead)
    assert client.post(f"/v1/campaign-definitions/{definition_id}/launch", headers=auditor).status_code == 403
    assert client.post(f"/v1/campaign-definitions/{definition_id}/launch", headers=portal).status_code == 403
    assert client.get("/v1/campaigns", headers=auditor).status_code == 200


def test_launch_freezes_the_population_with_effective_access(client, lead, directory, app):
    campaign = launch(client, lead, definition(client, lead))
    assert campaign["population_count"] == 6 and campaign["revision"] >= 1
    assert len(campaign["population_hash"]) == 64 and campaign["status"] == "open"
    found = items(client, lead, campaign["id"])
    assert ("user:ann", "member", "organization:other") not in found, "outside the subtree"
    ann = found[("user:ann", "editor", "project:p1")]
    assert ann["effective_permissions"] == {"document": ["edit", "read", "share"], "project": ["read", "upload"]}
    assert ann["principal"]["email"] == "ann@example.com" and ann["grant"]["source"] == "portal"
    team = found[("group:team", "viewer", "project:p1")]
    assert [m["id"] for m in team["members"]] == ["user:ben"]


def test_recommendations_say_why(client, lead, directory, portal):
    client.post("/v1/authorize", json={"actor": "user:ann", "action": "upload", "resource": "project:p1"},
                headers=portal)
    client.application.extensions["decisions"].flush()
    campaign = launch(client, lead, definition(client, lead))
    found = items(client, lead, campaign["id"])
    assert found[("user:cat", "member", "organization:acme")]["recommendation"] == "revoke"
    assert "disabled" in found[("user:cat", "member", "organization:acme")]["recommendation_reason"]
    redundant = found[("user:ben", "viewer", "document:d1")]
    assert redundant["recommendation"] == "revoke" and "already given by grant" in redundant["recommendation_reason"]
    used = found[("user:ann", "editor", "project:p1")]
    assert used["recommendation"] == "keep" and "used by an allowed decision" in used["recommendation_reason"]
    assert used["recommendation_confidence"] == "complete"
    unused = found[("user:owen", "admin", "organization:acme")]  # not used, but the log is hours old
    assert unused["recommendation"] == "review" and unused["recommendation_confidence"] == "incomplete"
    assert unused["recommendation_reason"] == "no usage data yet (the log covers 0 of 90 days)"


GROUP_COVER = {
    "source": "portal", "mode": "replace",
    "principals": [
        {"id": "user:lena", "name": "Lena Lead", "email": "lena@example.com"},
        {"id": "user:owen", "name": "Owen Owner", "email": "owen@example.com"},
        {"id": "user:zoe", "name": "Zoe", "email": "zoe@example.com"},
        {"id": "user:yan", "name": "Yan", "email": "yan@example.com"},
        {"id": "user:xia", "name": "Xia", "email": "xia@example.com"},
        {"id": "group:finance", "name": "Finance", "members": ["user:zoe", "user:xia"]},
        {"id": "group:staff", "name": "Staff", "members": ["group:finance"]},
    ],
    "resources": [
        {"id": "organization:acme", "owner": "user:owen"},
        {"id": "project:p1", "parent": "organization:acme"},
        {"id": "document:d1", "parent": "project:p1"},
    ],
    "grants": [
        {"principal": "group:staff", "role": "editor", "resource": "project:p1"},
        {"principal": "group:finance", "role": "viewer", "resource": "project:p1"},
        {"principal": "user:zoe", "role": "editor", "resource": "document:d1"},
        {"principal": "user:xia", "role": "manager", "resource": "project:p1"},
        {"principal": "user:yan", "role": "viewer", "resource": "document:d1"},
    ],
}


def test_access_already_given_through_a_group_is_redundant(client, lead, portal):
    assert client.post("/v1/directory/import", json=GROUP_COVER, headers=portal).status_code == 200
    found = items(client, lead, launch(client, lead, definition(client, lead))["id"])
    zoe = found[("user:zoe", "editor", "document:d1")]  # staff, which holds finance, edits all of p1
    assert zoe["recommendation"] == "revoke", zoe
    assert "to group:staff, of which user:zoe is a member" in zoe["recommendation_reason"]
    finance = found[("group:finance", "viewer", "project:p1")]  # a group inside staff
    assert finance["recommendation"] == "revoke" and "to group:staff, of which group:finance" in \
        finance["recommendation_reason"]
    # More than the groups give, or no group at all: not redundant.
    for more in (("user:xia", "manager", "project:p1"), ("user:yan", "viewer", "document:d1"),
                 ("group:staff", "editor", "project:p1")):
        assert "already given" not in found[more]["recommendation_reason"], found[more]


class TestEqualGrants:
    """A policy with a role that gives exactly what another gives."""

    @pytest.fixture
    def app_config(self, app_config, tmp_path):
        policies = copy_policies(tmp_path / "policies")
        portal = policies / "portal.polar"
        text = portal.read_text().replace('roles = ["viewer", "editor", "manager"];',
                                          'roles = ["viewer", "editor", "contributor", "manager"];')
        text = text.replace('"upload" if "editor";', '"upload" if "editor";\n    "viewer" if "contributor";\n'
                                                       '    "upload" if "contributor";')
        text = text.replace('"editor" if "editor" on "parent";',
                            '"editor" if "editor" on "parent";\n    "editor" if "contributor" on "parent";')
        portal.write_text(text)
        return {**app_config, "POLICY_DIR": str(policies)}

    def test_only_the_later_of_two_equal_grants_is_redundant(self, client, lead, portal):
        directory = {**GROUP_COVER, "grants": [
            {"principal": "user:yan", "role": "contributor", "resource": "project:p1"},
            {"principal": "user:yan", "role": "editor", "resource": "project:p1"}]}
        assert client.post("/v1/directory/import", json=directory, headers=portal).status_code == 200
        found = items(client, lead, launch(client, lead, definition(client, lead))["id"])
        first, later = found[("user:yan", "contributor", "project:p1")], found[("user:yan", "editor", "project:p1")]
        assert first["effective_permissions"] == later["effective_permissions"]
        assert "already given" not in first["recommendation_reason"], first
        assert later["recommendation"] == "revoke"
        assert f"already given by grant {first['grant']['id']}" in later["recommendation_reason"]


def test_reviewers_by_rule_and_never_oneself(client, lead, directory):
    campaign = launch(client, lead, definition(client, lead))
    found = items(client, lead, campaign["id"])
    assert found[("user:ann", "editor", "project:p1")]["reviewer"] == "user:owen"  # owner of the ancestor
    own = found[("user:owen", "admin", "organization:acme")]
    assert own["reviewer"] == "user:lena" and "own access" in own["assignment_note"]
    by_manager = launch(client, lead, definition(client, lead, name="By manager", reviewer={"rule": "manager"}))
    found = items(client, lead, by_manager["id"])
    assert found[("user:ann", "editor", "project:p1")]["reviewer"] == "user:mia"
    assert found[("group:team", "viewer", "project:p1")]["reviewer"] == "user:lena"  # a group has no manager


def test_stale_sources_refuse_a_launch(client, lead, directory, clock, app):
    definition_id = definition(client, lead)
    clock.advance(hours=app.config["MAX_SYNC_AGE_HOURS"] + 1)
    response = client.post(f"/v1/campaign-definitions/{definition_id}/launch", headers=lead)
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "stale_directory"
    assert "portal" in response.get_json()["error"]["message"]
    app.config["STALE_SYNC_ACTION"] = "flag"
    flagged = launch(client, lead, definition_id)
    assert flagged["freshness"]["flagged"] is True and flagged["freshness"]["stale_sources"] == ["portal"]


def test_a_failed_launch_leaves_nothing_visible_and_can_be_launched_again(client, lead, directory, app, db,
                                                                          monkeypatch):
    from accessreview.campaigns import launch as launching

    definition_id = definition(client, lead)

    def failing(run, definition):
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(launching, "_write_items", failing)
    response = client.post(f"/v1/campaign-definitions/{definition_id}/launch", headers=lead)
    assert response.status_code == 500 and response.get_json()["error"]["job"]["state"] == "failed"
    assert db.scalar(select(Campaign.status)) == "launching", "a launch that failed is never shown as open"
    monkeypatch.undo()
    assert launch(client, lead, definition_id)["status"] == "open"


def test_reviewer_decides_own_items_only(client, lead, directory, token_for):
    campaign = launch(client, lead, definition(client, lead))
    owen = token_for("user:owen")
    ann_item = items(client, lead, campaign["id"])[("user:ann", "editor", "project:p1")]
    queue = client.get("/v1/review-items?reviewer=me&status=pending", headers=owen).get_json()["items"]
    assert ann_item["id"] in [i["id"] for i in queue]
    assert all(i["reviewer"] == "user:owen" for i in queue)
    no_reason = client.post(f"/v1/review-items/{ann_item['id']}/decision", json={"decision": "revoke"}, headers=owen)
    assert no_reason.status_code == 422 and no_reason.get_json()["error"]["code"] == "justification_required"
    kept = client.post(f"/v1/review-items/{ann_item['id']}/decision", json={"decision": "keep"}, headers=owen)
    assert kept.status_code == 200 and kept.get_json()["decision"] == "keep"
    changed = client.post(f"/v1/review-items/{ann_item['id']}/decision",
                          json={"decision": "revoke", "justification": "left the engagement"}, headers=owen)
    assert changed.get_json()["decision"] == "revoke"
    history = client.get(f"/v1/review-items/{ann_item['id']}", headers=owen).get_json()["history"]
    assert [h["kind"] for h in history] == ["decided", "changed"]
    ann = token_for("user:ann")
    other = items(client, lead, campaign["id"])[("user:owen", "admin", "organization:acme")]
    assert client.post(f"/v1/review-items/{other['id']}/decision", json={"decision": "keep"},
                       headers=ann).status_code == 404
    assert client.get("/v1/review-items?reviewer=user:owen", headers=ann).status_code == 404


def test_security_lead_override_is_recorded(client, lead, directory, auditor):
    campaign = launch(client, lead, definition(client, lead))
    item = items(client, lead, campaign["id"])[("user:ann", "editor", "project:p1")]
    response = client.post(f"/v1/review-items/{item['id']}/decision",
                           json={"decision": "revoke", "justification": "policy change"}, headers=lead)
    assert response.status_code == 200 and response.get_json()["overridden"] is True
    assert response.get_json()["decided_by"] == "user:lena"
    events = client.get(f"/v1/audit-events?target=review_item:{item['id']}", headers=auditor).get_json()["items"]
    assert [e["action"] for e in events] == ["review.overridden"]


def test_bulk_decisions_are_all_or_nothing(client, lead, directory, token_for):
    campaign = launch(client, lead, definition(client, lead))
    owen = token_for("user:owen")
    mine = [i for i in client.get(f"/v1/review-items?reviewer=me&campaign={campaign['id']}",
                                  headers=owen).get_json()["items"]]
    bad = client.post(f"/v1/campaigns/{campaign['id']}/decisions", json={"decisions": [
        {"item": mine[0]["id"], "decision": "keep"}, {"item": mine[1]["id"], "decision": "revoke"}]}, headers=owen)
    assert bad.status_code == 422
    assert bad.get_json()["error"]["errors"][0]["index"] == 1
    assert all(i["status"] == "pending" for i in client.get(
        f"/v1/review-items?reviewer=me&campaign={campaign['id']}", headers=owen).get_json()["items"])
    good = client.post(f"/v1/campaigns/{campaign['id']}/decisions", json={"decisions": [
        {"item": i["id"], "decision": "keep"} for i in mine]}, headers=owen)
    assert good.status_code == 200 and good.get_json()["decided"] == len(mine)


def test_close_applies_on_no_response_then_sign_off_freezes(client, lead, directory, token_for):
    campaign = launch(client, lead, definition(client, lead, on_no_response="recommendation"))
    owen = token_for("user:owen")
    item = items(client, lead, campaign["id"])[("user:ann", "editor", "project:p1")]
    client.post(f"/v1/review-items/{item['id']}/decision", json={"decision": "keep"}, headers=owen)
    early = client.post(f"/v1/campaigns/{campaign['id']}/sign-off", json={"statement": "done"}, headers=lead)
    assert early.status_code == 409 and early.get_json()["error"]["code"] == "campaign_open"
    closed = client.post(f"/v1/campaigns/{campaign['id']}/close", headers=lead).get_json()
    assert closed["status"] == "closed"
    found = items(client, lead, campaign["id"])
    cat = found[("user:cat", "member", "organization:acme")]
    assert cat["decision"] == "revoke" and cat["automated_rule"] == "on_no_response:recommendation"
    late = client.post(f"/v1/review-items/{item['id']}/decision", json={"decision": "keep"}, headers=owen)
    assert late.status_code == 409


def test_remediation_revokes_and_verifies_through_the_engine(client, lead, directory, portal, token_for, db):
    campaign = launch(client, lead, definition(client, lead, on_no_response="keep"))
    owen = token_for("user:owen")
    found = items(client, lead, campaign["id"])
    ben_editor = found[("user:ben", "editor", "project:p1")]
    ann = found[("user:ann", "editor", "project:p1")]
    for item in (ben_editor, ann):
        response = client.post(f"/v1/review-items/{item['id']}/decision",
                               json={"decision": "revoke", "justification": "not on the team"}, headers=owen)
        assert response.status_code == 200, response.get_json()
    client.post(f"/v1/campaigns/{campaign['id']}/close", headers=lead)
    signed = client.post(f"/v1/campaigns/{campaign['id']}/sign-off", json={"statement": "Reviewed"}, headers=lead)
    assert signed.status_code == 200, signed.get_json()
    assert signed.get_json()["status"] == "signed_off"
    remediation = signed.get_json()["remediation"]
    assert remediation["scope_after"]["count"] < campaign["population_count"]
    after = items(client, lead, campaign["id"])
    assert after[("user:ann", "editor", "project:p1")]["remediation_state"] == "verified"
    check = client.post("/v1/authorize", json={"actor": "user:ann", "action": "upload", "resource": "project:p1"},
                        headers=portal).get_json()
    assert check["allowed"] is False
    # Ben still reads p1 through group:team's viewer grant: the revocation is reported, not hidden.
    ben = after[("user:ben", "editor", "project:p1")]
    assert ben["remediation_state"] == "failed" and "still has read on project:p1 via grant" in ben["remediation_detail"]
    # One attempt each, counted in the statements that record the outcome; the trail holds together.
    attempts = dict(db.execute(select(ReviewItem.id, ReviewItem.remediation_attempts)
                               .where(ReviewItem.campaign_id == campaign["id"], ReviewItem.decision == "revoke")).all())
    assert attempts == {ann["id"]: 1, ben_editor["id"]: 1}
    assert verify_chain(db).ok
    # The campaign cannot change after sign-off.
    assert client.post(f"/v1/campaigns/{campaign['id']}/close", headers=lead).status_code == 409


def test_measures(client, lead, directory, token_for, clock):
    campaign = launch(client, lead, definition(client, lead))
    owen = token_for("user:owen")
    item = items(client, lead, campaign["id"])[("user:ann", "editor", "project:p1")]
    clock.advance(hours=5)
    client.post(f"/v1/review-items/{item['id']}/decision", json={"decision": "keep"}, headers=owen)
    measures = client.get(f"/v1/campaigns/{campaign['id']}/metrics", headers=lead).get_json()
    assert measures["items"] == 6 and measures["decided"] == 1 and measures["keep"] == 1
    assert measures["median_hours_to_decision"] == 5.0
    clock.advance(days=20)
    assert client.get(f"/v1/campaigns/{campaign['id']}/metrics", headers=lead).get_json()["overdue"] == 5
    overall = client.get("/v1/metrics/reviews", headers=lead).get_json()
    assert overall["campaigns"] == 1 and overall["open"] == 1
    # One more decided by hand, late; the rest by the no-response rule at the close.
    late = items(client, lead, campaign["id"])[("user:ben", "editor", "project:p1")]
    client.post(f"/v1/review-items/{late['id']}/decision", json={"decision": "revoke", "justification": "gone"},
                headers=owen)
    client.post(f"/v1/campaigns/{campaign['id']}/close", headers=lead)
    closed = client.get(f"/v1/campaigns/{campaign['id']}/metrics", headers=lead).get_json()
    assert (closed["decided"], closed["keep"], closed["revoke"], closed["automated"]) == (6, 1, 1, 4)
    # One definition of overdue: decided (by hand or by the no-response rule) at or after the due date.
    assert closed["overdue"] == 5, "one decided by hand after the due date, four given the outcome after it"
    assert (closed["automated_keep"], closed["automated_revoke"]) == (0, 4)
    assert (closed["kept_total"], closed["revoked_total"]) == (1, 5)
    assert closed["median_hours_to_decision"] == (5 + (5 + 20 * 24)) / 2  # at 5 h and 20 days later
    # Owen (five items, two by hand) and Lena (the fallback for Owen's own grant, none by hand).
    assert (closed["reviewers"], closed["reviewer_completion_percent"]) == (2, 0.0)


def test_stages_pass_a_kept_item_to_the_next_reviewer(client, lead, directory, token_for):
    definition_id = definition(client, lead, reviewer={"rule": "manager"},
                               stages=[{"rule": "resource_owner"}])
    campaign = launch(client, lead, definition_id)
    item = items(client, lead, campaign["id"])[("user:ann", "editor", "project:p1")]
    assert item["reviewer"] == "user:mia"
    mia = token_for("user:mia")
    passed = client.post(f"/v1/review-items/{item['id']}/decision", json={"decision": "keep"}, headers=mia).get_json()
    assert passed["status"] == "pending" and passed["stage"] == 1 and passed["reviewer"] == "user:owen"
    owen = token_for("user:owen")
    final = client.post(f"/v1/review-items/{item['id']}/decision",
                        json={"decision": "revoke", "justification": "no longer needed"}, headers=owen).get_json()
    assert final["status"] == "decided" and final["decision"] == "revoke"


def test_delegation_keeps_history(client, lead, directory, token_for):
    campaign = launch(client, lead, definition(client, lead))
    owen = token_for("user:owen")
    item = items(client, lead, campaign["id"])[("user:ann", "editor", "project:p1")]
    self_review = client.post(f"/v1/review-items/{item['id']}/reassign", json={"to": "user:ann", "reason": "x"},
                              headers=owen)
    assert self_review.status_code == 422
    moved = client.post(f"/v1/review-items/{item['id']}/reassign", json={"to": "user:mia", "reason": "on leave"},
                        headers=owen)
    assert moved.status_code == 200 and moved.get_json()["reviewer"] == "user:mia"
    assert moved.get_json()["reviewer_of_record"] == "user:owen"
    history = client.get(f"/v1/review-items/{item['id']}", headers=lead).get_json()["history"]
    assert history[-1]["kind"] == "delegated" and history[-1]["reason"] == "on leave"


@pytest.mark.parametrize("to, code, reason", [
    ("user:ghost", "unknown_reference", "is not in the directory"),
    ("user:cat", "inactive_reviewer", "is disabled; only an active user can review"),
    ("group:others", "not_a_user", "is a group; only a user can review"),
    ("service:bot", "not_a_user", "is a service; only a user can review"),
    ("user:ben", "self_review", "cannot review their own access"),  # a member of the group reviewed
])
def test_an_item_goes_only_to_an_active_user_who_may_review(client, lead, portal, directory, token_for, unchanged,
                                                            to, code, reason):
    """Nobody could decide an item handed to a group, a service, a disabled or unknown principal."""
    client.put("/v1/principals/service:bot", json={"name": "Bot"}, headers=portal)
    client.put("/v1/principals/group:others", json={"name": "Others", "members": ["user:mia"]}, headers=portal)
    campaign = launch(client, lead, definition(client, lead))
    item = items(client, lead, campaign["id"])[("group:team", "viewer", "project:p1")]
    url = f"/v1/review-items/{item['id']}/reassign"
    for headers in (token_for("user:owen"), lead):  # its reviewer delegates; a security lead reassigns
        with unchanged():
            refused = client.post(url, json={"to": to, "reason": "someone else"}, headers=headers)
        assert refused.status_code == 422, refused.get_json()
        assert refused.get_json()["error"]["code"] == code and refused.get_json()["error"]["field"] == "to"
        assert reason in refused.get_json()["error"]["message"]
    assert client.get(f"/v1/review-items/{item['id']}", headers=lead).get_json()["reviewer"] == "user:owen"


def test_a_member_who_joined_the_reviewed_group_after_launch_cannot_take_it(client, lead, portal, directory):
    campaign = launch(client, lead, definition(client, lead))
    item = items(client, lead, campaign["id"])[("group:team", "viewer", "project:p1")]
    client.put("/v1/principals/group:team", json={"name": "Team", "members": ["user:ben", "user:mia"]},
               headers=portal)
    refused = client.post(f"/v1/review-items/{item['id']}/reassign", json={"to": "user:mia", "reason": "x"},
                          headers=lead)
    assert refused.status_code == 422 and refused.get_json()["error"]["code"] == "self_review"
    moved = client.post(f"/v1/review-items/{item['id']}/reassign", json={"to": "user:lena", "reason": "x"},
                        headers=lead)
    assert moved.status_code == 200 and moved.get_json()["reviewer"] == "user:lena"


def test_campaign_once_per_period(app, lead, directory, client):
    from support import write
    from accessreview.campaigns.definitions import get_definition
    from accessreview.campaigns.launch import start_launch
    from accessreview.jobs import runner

    definition_id = definition(client, lead)
    with write(app) as (session, ctx):
        campaign, job = start_launch(session, ctx, get_definition(session, definition_id), "2026-Q1",
                                     max_sync_age_hours=48, stale_action="refuse")
        assert campaign is None
    assert runner(app).run(job.id) == "done"
    with write(app) as (session, ctx):
        again, second = start_launch(session, ctx, get_definition(session, definition_id), "2026-Q1",
                                     max_sync_age_hours=48, stale_action="refuse")
        assert second is None and again is not None
        assert session.scalar(select(func.count()).select_from(Campaign)) == 1



def test_group_memberships_are_reviewed_and_revoking_removes_the_member(client, lead, directory, portal,
                                                                         token_for):
    definition_id = definition(client, lead, name="Team memberships", on_no_response="keep",
                               scope={"resource_types": ["system"], "membership_groups": ["group:team"]},
                               reviewer={"rule": "manager"})
    campaign = launch(client, lead, definition_id)
    found = items(client, lead, campaign["id"])
    member = found[("user:ben", None, "group:team")]
    assert member["resource"]["id"] == "group:team" and member["reviewer"] == "user:mia"
    assert member["effective_permissions"] == {"document": ["read"], "project": ["read"]}
    mia = token_for("user:mia")
    client.post(f"/v1/review-items/{member['id']}/decision",
                json={"decision": "revoke", "justification": "moved teams"}, headers=mia)
    client.post(f"/v1/campaigns/{campaign['id']}/close", headers=lead)
    signed = client.post(f"/v1/campaigns/{campaign['id']}/sign-off", json={"statement": "ok"}, headers=lead)
    assert signed.status_code == 200, signed.get_json()
    assert client.get("/v1/principals/group:team", headers=portal).get_json()["members"] == []
    after = items(client, lead, campaign["id"])[("user:ben", None, "group:team")]
    # Ben keeps read on project p1 through his own editor grant: reported, not hidden.
    assert after["remediation_state"] == "failed" and "via grant" in after["remediation_detail"]


def test_reminders_also_go_to_a_webhook(app, client, lead, directory):
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from accessreview.scheduler import run_once

    posted = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            posted.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        app.config["WEBHOOK_URL"] = f"http://127.0.0.1:{server.server_port}/hook"
        definition_id = definition(client, lead, duration_days=3, reminders={"days_before_due": [3]})
        launch(client, lead, definition_id)
        run_once(app)
    finally:
        server.shutdown()
        server.server_close()
    assert posted and {p["event"] for p in posted} == {"reminder"}
    assert {p["reviewer"] for p in posted} == {"user:owen", "user:lena"}
    assert posted[0]["when"] == "due in 3 day(s)"


def test_the_scope_as_it_stands_is_read_at_one_revision(app, directory, make_grant):
    """After remediation the scope is read from the database, not from a loaded snapshot: it is the
    snapshot's answer exactly, at one revision, whatever commits while the grants stream in."""
    from accessreview.campaigns.population import directory_as_it_stands, in_scope, scope_candidates

    scope = {"subtrees": ["organization:acme"]}
    snapshot = app.extensions["authz"].refresh()
    expected = [c.identity() for c in in_scope(snapshot, scope)]
    assert ["group:team", "viewer", "project:p1", None, ["user:ben"]] in [e[2:] for e in expected]
    with directory_as_it_stands(app.extensions["db"].engine) as (index, grants):
        added = make_grant("user:ann", "viewer", "document:d1")  # committed while the grants are not yet read
        read = [c.identity() for c in scope_candidates(index, scope, grants=grants)]
    assert index.revision == snapshot.revision and read == expected
    with directory_as_it_stands(app.extensions["db"].engine) as (index, grants):
        again = [c.identity() for c in scope_candidates(index, scope, grants=grants)]
    assert index.revision > snapshot.revision and [g for _, g, *_ in again if g not in [e[1] for e in expected]] == [added]
