"""Revocations hold: what a review removed does not come back with the next sync or a write until a
security lead lifts its hold; the hold names the campaign, item and decision, and is on the record."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from accessreview.models import AuditEvent
from test_campaigns import DIRECTORY, definition, items, launch

ANN_EDITOR = {"principal": "user:ann", "role": "editor", "resource": "project:p1"}


@pytest.fixture
def directory(client, portal):
    assert client.post("/v1/directory/import", json=DIRECTORY, headers=portal).status_code == 200


def revoke_and_remediate(client, lead, token_for, keys, **settings):
    """A campaign where Owen revokes ``keys``; closed, signed off, remediated. Returns (campaign, items)."""
    campaign = launch(client, lead, definition(client, lead, on_no_response="keep", **settings))
    owen, mia = token_for("user:owen"), token_for("user:mia")
    found = items(client, lead, campaign["id"])
    for key in keys:
        reviewer = mia if key[2].startswith("group:") else owen
        response = client.post(f"/v1/review-items/{found[key]['id']}/decision",
                               json={"decision": "revoke", "justification": "left the project"}, headers=reviewer)
        assert response.status_code == 200, response.get_json()
    client.post(f"/v1/campaigns/{campaign['id']}/close", headers=lead)
    signed = client.post(f"/v1/campaigns/{campaign['id']}/sign-off", json={"statement": "ok"}, headers=lead)
    assert signed.status_code == 200, signed.get_json()
    return campaign, found


def can_upload(client, portal) -> bool:
    return client.post("/v1/authorize", json={"actor": "user:ann", "action": "upload", "resource": "project:p1"},
                       headers=portal).get_json()["allowed"]


def test_the_next_sync_does_not_restore_a_revoked_grant_and_says_so(client, portal, lead, directory, token_for, db):
    campaign, found = revoke_and_remediate(client, lead, token_for, [("user:ann", "editor", "project:p1")])
    item = found[("user:ann", "editor", "project:p1")]
    assert not can_upload(client, portal)

    preview = client.post("/v1/directory/import", json={**DIRECTORY, "dry_run": True}, headers=portal).get_json()
    assert preview["counts"]["grants"]["added"] == 0
    [held] = preview["held"]
    assert held["principal"] == "user:ann" and held["hold"]["campaign"] == campaign["id"]
    assert held["hold"]["item"] == item["id"]

    synced = client.post("/v1/directory/import", json=DIRECTORY, headers=portal)
    assert synced.status_code == 200, synced.get_json()
    body = synced.get_json()
    assert body["counts"]["grants"] == {"added": 0, "changed": 0, "removed": 0}
    assert [(h["principal"], h["role"], h["resource"]) for h in body["held"]] == [("user:ann", "editor", "project:p1")]
    assert not can_upload(client, portal), "the revocation held"
    db.rollback()
    events = db.scalars(select(AuditEvent).where(AuditEvent.action == "grant.held")).all()
    assert len(events) == 1 and events[0].after["hold"]["item"] == item["id"]

    refused = client.post("/v1/grants", json=ANN_EDITOR, headers=portal)
    assert refused.status_code == 409
    error = refused.get_json()["error"]
    assert error["code"] == "revoked_by_review" and error["hold"]["campaign"] == campaign["id"]
    assert f"campaign {campaign['id']}" in error["message"] and f"item {item['id']}" in error["message"]


def test_holds_are_listed_counted_and_lifted_by_a_security_lead_with_a_justification(
        client, portal, lead, auditor, directory, token_for, db):
    campaign, found = revoke_and_remediate(client, lead, token_for, [("user:ann", "editor", "project:p1")])
    listed = client.get(f"/v1/holds?campaign={campaign['id']}&state=active", headers=auditor).get_json()["items"]
    assert len(listed) == 1
    hold = listed[0]
    assert (hold["principal"], hold["role"], hold["resource"], hold["kind"]) == ("user:ann", "editor", "project:p1",
                                                                                   "grant")
    assert hold["decision"]["by"] == "user:owen" and hold["decision"]["justification"] == "left the project"
    signed_off_by = client.get(f"/v1/campaigns/{campaign['id']}", headers=lead).get_json()["signed_off_by"]
    assert signed_off_by and hold["decision"]["signed_off_by"] == signed_off_by
    assert hold["active"] and hold["expires_at"] is None
    status = client.get("/v1/directory/status", headers=portal).get_json()
    assert status["counts"]["active_holds"] == 1

    assert client.post(f"/v1/holds/{hold['id']}/lift", json={"justification": "x"}, headers=portal).status_code == 403
    assert client.post(f"/v1/holds/{hold['id']}/lift", json={"justification": "x"}, headers=auditor).status_code == 403
    empty = client.post(f"/v1/holds/{hold['id']}/lift", json={"justification": "  "}, headers=lead)
    assert empty.status_code == 400 and empty.get_json()["error"]["field"] == "justification"
    lifted = client.post(f"/v1/holds/{hold['id']}/lift", json={"justification": "rejoined the project"}, headers=lead)
    assert lifted.status_code == 200, lifted.get_json()
    assert lifted.get_json()["active"] is False and lifted.get_json()["lifted"]["justification"] == "rejoined the project"
    again = client.post(f"/v1/holds/{hold['id']}/lift", json={"justification": "again"}, headers=lead)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "hold_not_active"
    db.rollback()
    assert db.scalar(select(AuditEvent).where(AuditEvent.action == "hold.lifted")).after["lifted"]["by"]

    synced = client.post("/v1/directory/import", json=DIRECTORY, headers=portal).get_json()
    assert synced["counts"]["grants"]["added"] == 1 and synced["held"] == []
    assert can_upload(client, portal), "lifted: the sync restored the grant"
    assert client.get("/v1/directory/status", headers=portal).get_json()["counts"]["active_holds"] == 0
    assert client.get("/v1/holds/999999", headers=lead).status_code == 404


def test_a_lift_until_a_date_lapses_and_a_hold_may_expire(client, portal, lead, directory, token_for, clock):
    _campaign, _ = revoke_and_remediate(client, lead, token_for, [("user:ann", "editor", "project:p1")],
                                        holds={"days": 30})
    hold = client.get("/v1/holds", headers=lead).get_json()["items"][0]
    assert hold["expires_at"] == (clock.now() + timedelta(days=30)).isoformat()
    past = client.post(f"/v1/holds/{hold['id']}/lift", json={"justification": "x",
                                                              "until": "2000-01-01T00:00:00Z"}, headers=lead)
    assert past.status_code == 422 and past.get_json()["error"]["field"] == "until"
    until = (clock.now() + timedelta(days=2)).isoformat()
    assert client.post(f"/v1/holds/{hold['id']}/lift", json={"justification": "a trial", "until": until},
                       headers=lead).status_code == 200
    assert client.post("/v1/grants", json=ANN_EDITOR, headers=portal).status_code == 201
    assert client.delete(f"/v1/grants/{_grant_id(client, portal)}", headers=portal).status_code == 200
    clock.advance(days=3)  # the lift lapsed: the hold stands again
    assert client.post("/v1/grants", json=ANN_EDITOR, headers=portal).status_code == 409
    clock.advance(days=30)  # the hold itself expired
    assert client.post("/v1/grants", json=ANN_EDITOR, headers=portal).status_code == 201
    assert client.get("/v1/holds?state=active", headers=lead).get_json()["items"] == []


def _grant_id(client, portal) -> int:
    grants = client.get("/v1/grants?principal=user:ann&role=editor", headers=portal).get_json()["items"]
    return grants[0]["id"]


def test_a_revoked_membership_holds_against_a_sync_and_a_write(client, portal, lead, directory, token_for, db):
    revoke_and_remediate(client, lead, token_for, [("user:ben", None, "group:team")],
                         name="Team memberships", scope={"resource_types": ["system"],
                                                         "membership_groups": ["group:team"]},
                         reviewer={"rule": "manager"})
    assert client.get("/v1/principals/group:team", headers=portal).get_json()["members"] == []
    synced = client.post("/v1/directory/import", json=DIRECTORY, headers=portal).get_json()
    assert [(h["principal"], h["role"], h["resource"]) for h in synced["held"]] == [("user:ben", "member", "group:team")]
    assert client.get("/v1/principals/group:team", headers=portal).get_json()["members"] == []
    write = client.put("/v1/principals/group:team", json={"name": "Team", "members": ["user:ben"]}, headers=portal)
    assert write.status_code == 409 and write.get_json()["error"]["code"] == "revoked_by_review"
    others = client.put("/v1/principals/group:team", json={"name": "Team", "members": ["user:ann"]}, headers=portal)
    assert others.status_code == 200, "other members may join"


def test_a_follow_up_finds_revoked_access_that_came_back_by_another_road(app, client, portal, lead, auditor,
                                                                         directory, token_for, clock):
    from accessreview import scheduler
    from accessreview.campaigns import scheduled

    campaign, found = revoke_and_remediate(client, lead, token_for, [("user:ann", "editor", "project:p1")])
    back = client.post("/v1/grants", json={"principal": "user:ann", "role": "admin", "resource": "organization:acme"},
                       headers=portal)
    assert back.status_code == 201, "another road is not blocked"
    sessions = app.extensions["db"].sessionmaker
    clock.advance(days=6)
    assert scheduled.follow_up_due(sessions, clock) == [], "not due before holds.follow_up_days"
    clock.advance(days=1, seconds=1)
    assert len(scheduled.follow_up_due(sessions, clock)) == 1
    assert scheduled.follow_up_due(sessions, clock) == [], "started once"
    scheduler.run_once(app)
    state = client.get(f"/v1/campaigns/{campaign['id']}", headers=auditor).get_json()
    follow = state["follow_up"]
    assert follow["checked"] == 1 and follow["found"] >= 1
    finding = follow["findings"][0]
    assert finding["item"] == found[("user:ann", "editor", "project:p1")]["id"] and finding["actor"] == "user:ann"
    assert back.get_json()["grant"]["id"] in finding["grants"]
    reports = client.get(f"/v1/reports?campaign={campaign['id']}", headers=auditor).get_json()["items"]
    assert [r["stage"] for r in reports] == ["sign_off", "remediation", "follow_up"]
    pages = app.test_client()
    pages.post("/ui/sign-in/token", data={"token": lead["Authorization"].split()[1]})
    page = pages.get(f"/ui/campaigns/{campaign['id']}").get_data(as_text=True)
    assert f"revoked access came back: {follow['found']} findings" in page and "1 revocation held" in page


def test_the_holds_pages_list_and_lift_after_stating_the_effect(app, client, portal, lead, auditor, directory,
                                                                token_for):
    revoke_and_remediate(client, lead, token_for, [("user:ann", "editor", "project:p1")])
    hold = client.get("/v1/holds", headers=lead).get_json()["items"][0]
    leads, auditors = app.test_client(), app.test_client()
    leads.post("/ui/sign-in/token", data={"token": lead["Authorization"].split()[1]})
    auditors.post("/ui/sign-in/token", data={"token": auditor["Authorization"].split()[1]})
    listing = auditors.get("/ui/holds").get_data(as_text=True)
    assert "user:ann · editor on project:p1" in listing
    seen_by_auditor = auditors.get(f"/ui/holds/{hold['id']}").get_data(as_text=True)
    assert "Lift the hold" not in seen_by_auditor
    page = leads.get(f"/ui/holds/{hold['id']}").get_data(as_text=True)
    assert "Lifting lets user:ann's editor on project:p1 come back" in page
    token = page.split('name="form_token" value="')[1].split('"')[0]
    refused = leads.post(f"/ui/holds/{hold['id']}/lift", data={"form_token": token, "justification": " "})
    assert refused.status_code == 400 and 'aria-invalid="true"' in refused.get_data(as_text=True)
    lifted = leads.post(f"/ui/holds/{hold['id']}/lift", data={"form_token": token, "justification": "back on it"})
    assert lifted.status_code == 302
    assert client.get(f"/v1/holds/{hold['id']}", headers=lead).get_json()["lifted"]["justification"] == "back on it"


def test_holds_from_the_shell(app, client, portal, lead, directory, token_for):
    from click.testing import CliRunner
    from flask.cli import ScriptInfo

    from accessreview.cli import cli

    def run(*args: str):
        return CliRunner().invoke(cli, list(args), obj=ScriptInfo(create_app=lambda: app))

    campaign, _ = revoke_and_remediate(client, lead, token_for, [("user:ann", "editor", "project:p1")])
    listed = run("holds", "list", "--campaign", str(campaign["id"]))
    assert listed.exit_code == 0, listed.output
    hold_id, state, principal, role, resource = listed.output.split("\t")[:5]
    assert (state, principal, role, resource) == ("active", "user:ann", "editor", "project:p1")
    empty = run("holds", "lift", hold_id, "--justification", "")
    assert empty.exit_code != 0
    lifted = run("holds", "lift", hold_id, "--justification", "rejoined", "--until", "2099-01-01T00:00:00Z")
    assert lifted.exit_code == 0, lifted.output
    assert json.loads(lifted.output)["lifted"]["until"].startswith("2099-01-01")
    assert run("holds", "list").output == "", "no active hold left"
    assert "lifted" in run("holds", "list", "--all").output
    again = run("holds", "lift", hold_id, "--justification", "again")
    assert again.exit_code == 1 and "not active" in again.output
