"""Advice that knows its data, and a close that shows its effect first.

A recommendation says "unused" only when the decision log covers the whole look-back window and the
grant is older than it; otherwise it recommends nothing ("review") and says how much the log covers.
Grants on the service itself are judged by their holder's tokens' last use. The no-response rule
follows only advice made on complete data; the rest gets the definition's fallback. Closing can be
previewed (API dry_run, a confirmation page) and the preview is what the close then does.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import select

from accessreview.cli import cli
from accessreview.models import ReviewItem, ServiceToken
from support import audit_count, revision
from test_campaigns import definition, directory, items, launch  # noqa: F401 (directory: a fixture)
from test_web import form_token, hidden, sign_in, text

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)  # the clock fixture's start
OWEN_ADMIN = ("user:owen", "admin", "organization:acme")
ANN_EDITOR = ("user:ann", "editor", "project:p1")
CAT = ("user:cat", "member", "organization:acme")  # disabled
BEN_VIEWER = ("user:ben", "viewer", "document:d1")  # redundant: ben edits the whole project


def check(client, portal, actor="user:ann", action="upload", resource="project:p1"):
    response = client.post("/v1/authorize", json={"actor": actor, "action": action, "resource": resource},
                           headers=portal)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def flush(app):
    app.extensions["decisions"].flush()


@pytest.fixture
def later(app, clock):
    """Move the clock by ``days`` (a launch then flags, not refuses, the directory's old sync)."""
    app.config["STALE_SYNC_ACTION"] = "flag"

    def move(days: float):
        clock.advance(days=days)

    return move


# -- advice ----------------------------------------------------------------------------------------

def test_with_an_empty_log_nothing_is_called_unused(client, lead, directory):
    found = items(client, lead, launch(client, lead, definition(client, lead))["id"])
    owen = found[OWEN_ADMIN]
    assert (owen["recommendation"], owen["recommendation_confidence"]) == ("review", "incomplete")
    assert owen["recommendation_reason"] == "no usage data yet (the log covers 0 of 90 days)"
    assert not [i for i in found.values() if "not used" in i["recommendation_reason"]]
    # What is known without the log stays advice on complete data.
    assert (found[CAT]["recommendation"], found[CAT]["recommendation_confidence"]) == ("revoke", "complete")
    redundant = found[BEN_VIEWER]
    assert (redundant["recommendation"], redundant["recommendation_confidence"]) == ("revoke", "complete")


def test_a_log_that_covers_part_of_the_window_says_how_much(app, client, lead, portal, directory, later):
    check(client, portal)
    flush(app)
    later(30)
    found = items(client, lead, launch(client, lead, definition(client, lead))["id"])
    assert found[OWEN_ADMIN]["recommendation"] == "review"
    assert found[OWEN_ADMIN]["recommendation_reason"] == "no usage data yet (the log covers 30 of 90 days)"
    used = found[ANN_EDITOR]
    assert (used["recommendation"], used["recommendation_confidence"]) == ("keep", "complete")
    assert used["recommendation_reason"] == "used by an allowed decision on 2026-03-02"


def test_a_full_window_calls_old_unused_grants_unused_but_not_young_ones(app, client, lead, portal, directory,
                                                                         later, make_grant):
    check(client, portal)
    flush(app)
    later(95)
    make_grant("user:mia", "viewer", "project:p1")  # granted 5 days before the launch
    later(5)
    found = items(client, lead, launch(client, lead, definition(client, lead))["id"])
    never = found[OWEN_ADMIN]
    assert (never["recommendation"], never["recommendation_confidence"]) == ("revoke", "complete")
    assert never["recommendation_reason"] == ("not used by any allowed decision in 90 days (none in the log, "
                                              "which covers them all)")
    stale = found[ANN_EDITOR]
    assert (stale["recommendation"], stale["recommendation_confidence"]) == ("revoke", "complete")
    assert stale["recommendation_reason"] == "not used by any allowed decision in 90 days (last on 2026-03-02)"
    young = found[("user:mia", "viewer", "project:p1")]
    assert (young["recommendation"], young["recommendation_confidence"]) == ("review", "incomplete")
    assert young["recommendation_reason"] == "granted on 2026-06-05, less than 90 days ago: too recent to call unused"


def test_the_log_retention_bounds_what_it_can_know(app, client, lead, portal, directory, later):
    app.config["DECISION_RETENTION_DAYS"] = 60
    check(client, portal)
    flush(app)
    later(100)
    found = items(client, lead, launch(client, lead, definition(client, lead))["id"])
    assert found[OWEN_ADMIN]["recommendation_reason"] == "no usage data yet (the log covers 60 of 90 days)"
    assert found[ANN_EDITOR]["recommendation_reason"] == ("no usage data yet (the log covers 60 of 90 days); "
                                                          "last used on 2026-03-02")
    assert found[ANN_EDITOR]["recommendation"] == "review"


def test_the_window_is_the_definitions(app, client, lead, portal, directory, later):
    check(client, portal)
    flush(app)
    later(31)
    found = items(client, lead, launch(client, lead, definition(
        client, lead, recommendation={"unused_days": 30}))["id"])
    assert found[OWEN_ADMIN]["recommendation"] == "revoke"
    assert found[OWEN_ADMIN]["recommendation_reason"].startswith("not used by any allowed decision in 30 days")


SERVICE_SCOPE = {"resources": ["system:accessreview"]}


def test_a_service_principal_is_judged_by_its_tokens_use(app, client, lead, portal, token_for, directory, db):
    idle = token_for("service:idle-bot", "portal_client")  # a token nobody uses
    assert idle
    definition_id = definition(client, lead, scope=SERVICE_SCOPE)  # the lead's token is used here
    check(client, portal)
    flush(app)
    stored = {t.principal_key: t.last_used_at for t in db.scalars(select(ServiceToken))}
    assert stored["service:portal"] == T0 and stored["service:idle-bot"] is None
    found = items(client, lead, launch(client, lead, definition_id)["id"])
    portal_item = found[("service:portal", "portal_client", "system:accessreview")]
    assert (portal_item["recommendation"], portal_item["recommendation_confidence"]) == ("keep", "complete")
    assert "a token of service:portal was last used on 2026-03-02" in portal_item["recommendation_reason"]
    idle_item = found[("service:idle-bot", "portal_client", "system:accessreview")]
    assert (idle_item["recommendation"], idle_item["recommendation_confidence"]) == ("review", "incomplete")
    assert "no use of a token of service:idle-bot is recorded" in idle_item["recommendation_reason"]
    # Not only the portal's: anyone's grant on the service is used by calling it with their token.
    lena = found[("user:lena", "security_lead", "system:accessreview")]
    assert lena["recommendation"] == "keep"


def test_a_service_token_used_long_ago_is_not_use(app, client, lead, portal, directory, later):
    check(client, portal)
    flush(app)
    later(100)
    flush(app)  # the lead's token (used to launch) is recorded; the portal's stays 100 days old
    found = items(client, lead, launch(client, lead, definition(client, lead, scope=SERVICE_SCOPE))["id"])
    portal_item = found[("service:portal", "portal_client", "system:accessreview")]
    assert (portal_item["recommendation"], portal_item["recommendation_confidence"]) == ("review", "incomplete")
    assert "a token of service:portal was last used on 2026-03-02" in portal_item["recommendation_reason"]


def test_a_tokens_use_is_written_at_most_once_a_minute(app, client, portal, directory, clock, db):
    def last_used():
        db.rollback()  # a fresh look, not the last read's snapshot
        return db.scalar(select(ServiceToken.last_used_at).where(ServiceToken.principal_key == "service:portal"))

    check(client, portal)
    flush(app)
    assert last_used() == T0
    clock.advance(seconds=30)
    check(client, portal)
    flush(app)
    assert last_used() == T0, "within the minute: not noted again"
    clock.advance(seconds=31)
    check(client, portal)
    client.get("/v1/directory/status", headers=portal)  # the API (not only checks) notes a use too
    flush(app)
    assert last_used() == T0 + timedelta(seconds=61)


def test_pages_and_api_show_the_confidence(client, lead, directory, token_for):
    campaign = launch(client, lead, definition(client, lead))
    owen_item = items(client, lead, campaign["id"])[OWEN_ADMIN]
    state = client.get(f"/v1/review-items/{owen_item['id']}", headers=lead).get_json()
    assert state["recommendation_confidence"] == "incomplete"
    sign_in(client, lead)
    assert "incomplete data" in text(client.get(f"/ui/review-items/{owen_item['id']}"))
    assert "incomplete data" in text(client.get(f"/ui/campaigns/{campaign['id']}"))
    owen_client = client.application.test_client()
    sign_in(owen_client, token_for("user:owen"))
    queue = text(owen_client.get(f"/ui/reviews?campaign={campaign['id']}"))
    assert "incomplete data" in queue and "on complete data" in queue


# -- the no-response rule --------------------------------------------------------------------------

def test_the_fallback_is_validated_and_defaults_to_keep(client, lead, directory):
    definition_id = definition(client, lead, on_no_response="recommendation")
    state = client.get(f"/v1/campaign-definitions/{definition_id}", headers=lead).get_json()
    assert state["on_no_response_fallback"] == "keep"
    bad = client.post("/v1/campaign-definitions", json={
        "name": "x", "reviewer": {"rule": "manager"}, "fallback_reviewer": "user:lena", "duration_days": 7,
        "on_no_response": "recommendation", "on_no_response_fallback": "recommendation"}, headers=lead)
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "on_no_response_fallback"
    nulled = client.patch(f"/v1/campaign-definitions/{definition_id}", json={"on_no_response_fallback": None},
                          headers=lead)
    assert nulled.status_code == 400 and nulled.get_json()["error"]["field"] == "on_no_response_fallback"
    patched = client.patch(f"/v1/campaign-definitions/{definition_id}", json={"on_no_response_fallback": "revoke"},
                           headers=lead)
    assert patched.status_code == 200 and patched.get_json()["on_no_response_fallback"] == "revoke"


@pytest.mark.parametrize("fallback", ["keep", "revoke"])
def test_no_response_follows_only_complete_advice(client, lead, directory, fallback):
    campaign = launch(client, lead, definition(client, lead, on_no_response="recommendation",
                                               on_no_response_fallback=fallback))
    assert campaign["settings"]["on_no_response_fallback"] == fallback
    closed = client.post(f"/v1/campaigns/{campaign['id']}/close", headers=lead)
    assert closed.status_code == 200 and closed.get_json()["status"] == "closed"
    found = items(client, lead, campaign["id"])
    for key in (CAT, BEN_VIEWER):  # revoke on complete data: followed
        assert (found[key]["decision"], found[key]["automated_rule"]) == ("revoke", "on_no_response:recommendation")
    owen = found[OWEN_ADMIN]
    assert (owen["decision"], owen["automated_rule"]) == (fallback, f"on_no_response_fallback:{fallback}")
    assert "does not rest on complete data" in owen["justification"]


# -- closing shows its effect first ----------------------------------------------------------------

def dry_run(client, headers, campaign_id, **extra):
    return client.post(f"/v1/campaigns/{campaign_id}/close", json={"dry_run": True, **extra}, headers=headers)


def test_a_dry_run_close_lists_what_each_rule_would_do_and_changes_nothing(app, client, lead, directory,
                                                                          token_for, db):
    campaign = launch(client, lead, definition(client, lead, on_no_response="recommendation"))
    owen = token_for("user:owen")
    ann = items(client, lead, campaign["id"])[ANN_EDITOR]
    client.post(f"/v1/review-items/{ann['id']}/decision", json={"decision": "keep"}, headers=owen)
    before_items = items(client, lead, campaign["id"])
    before = (revision(app), audit_count(app))

    preview = dry_run(client, lead, campaign["id"])
    assert preview.status_code == 200, preview.get_json()
    answer = preview.get_json()
    assert answer["dry_run"] is True and answer["pending"] == 5 and answer["already_decided"] == {"keep": 1,
                                                                                                 "revoke": 0}
    assert answer["rules"] == [{"rule": "on_no_response:recommendation", "keep": 0, "revoke": 2},
                               {"rule": "on_no_response_fallback:keep", "keep": 3, "revoke": 0}]
    assert (answer["keep"], answer["revoke"]) == (3, 2)
    listed = {i["id"]: i for i in answer["items"]}
    assert len(listed) == 5 and ann["id"] not in listed
    cat = listed[before_items[CAT]["id"]]
    assert (cat["decision"], cat["rule"]) == ("revoke", "on_no_response:recommendation")
    assert "is disabled" in cat["recommendation_reason"] and "complete data" in cat["why"]

    assert (revision(app), audit_count(app)) == before
    assert items(client, lead, campaign["id"]) == before_items
    assert client.get(f"/v1/campaigns/{campaign['id']}", headers=lead).get_json()["status"] == "open"

    # A page at a time, and the whole of it is what the close then does.
    first = dry_run(client, lead, campaign["id"], limit=2).get_json()
    second = dry_run(client, lead, campaign["id"], limit=2, cursor=first["next_cursor"]).get_json()
    assert len(first["items"]) == 2 and second["rules"] == answer["rules"]
    closed = client.post(f"/v1/campaigns/{campaign['id']}/close", headers=lead)  # no body: as scripts do
    assert closed.status_code == 200 and closed.get_json()["status"] == "closed"
    after = {i["id"]: i for i in items(client, lead, campaign["id"]).values()}
    for item_id, planned in listed.items():
        assert (after[item_id]["decision"], after[item_id]["automated_rule"]) == (planned["decision"],
                                                                                 planned["rule"])


def test_a_dry_run_is_refused_where_a_close_would_be(client, lead, auditor, directory):
    campaign = launch(client, lead, definition(client, lead))
    assert dry_run(client, auditor, campaign["id"]).status_code == 403
    bad = client.post(f"/v1/campaigns/{campaign['id']}/close", json={"dry_run": "yes"}, headers=lead)
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "dry_run"
    unknown = client.post(f"/v1/campaigns/{campaign['id']}/close", json={"dry_run": True, "force": 1}, headers=lead)
    assert unknown.status_code == 400
    assert client.get(f"/v1/campaigns/{campaign['id']}", headers=lead).get_json()["status"] == "open"
    assert dry_run(client, lead, 999999).status_code == 404
    client.post(f"/v1/campaigns/{campaign['id']}/close", headers=lead)
    late = dry_run(client, lead, campaign["id"])
    assert late.status_code == 409 and late.get_json()["error"]["code"] == "campaign_closed"


def test_the_page_asks_to_confirm_the_counts_before_closing(app, client, lead, directory, token_for):
    campaign = launch(client, lead, definition(client, lead, on_no_response="recommendation"))
    url = f"/ui/campaigns/{campaign['id']}"
    sign_in(client, lead)
    assert f'action="{url}/close"' in text(client.get(url))
    before = (revision(app), audit_count(app))

    confirm = client.get(f"{url}/close")
    page = text(confirm)
    assert confirm.status_code == 200 and "Close: keep 4, revoke 2" in page
    assert re.search(r"<td>on_no_response_fallback:keep</td><td class=\"num\">4</td><td class=\"num\">0</td>", page)
    assert "is disabled" in page and page.count("<span class=\"badge revoke\">revoke</span>") == 2
    unconfirmed = client.post(f"{url}/close", data={"form_token": form_token(confirm)})
    assert unconfirmed.status_code == 200 and "Close: keep 4, revoke 2" in text(unconfirmed)
    assert (revision(app), audit_count(app)) == before

    # A reviewer decides meanwhile: the counts confirmed no longer hold, and nothing closes.
    cat = items(client, lead, campaign["id"])[CAT]
    client.post(f"/v1/review-items/{cat['id']}/decision", json={"decision": "keep"}, headers=token_for("user:owen"))
    stale = client.post(f"{url}/close", data={"form_token": form_token(confirm), "confirm": "close",
                                              "expected": hidden(confirm, "expected")})
    assert stale.status_code == 409 and "Decisions were made since you looked" in text(stale)
    assert "Close: keep 4, revoke 1" in text(stale)
    assert client.get(f"/v1/campaigns/{campaign['id']}", headers=lead).get_json()["status"] == "open"

    done = client.post(f"{url}/close", data={"form_token": form_token(stale), "confirm": "close",
                                             "expected": hidden(stale, "expected")})
    assert done.status_code == 302
    state = client.get(f"/v1/campaigns/{campaign['id']}", headers=lead).get_json()
    assert state["status"] == "closed"
    decided = [i["decision"] for i in items(client, lead, campaign["id"]).values() if i["automated_rule"]]
    assert sorted(decided) == ["keep"] * 4 + ["revoke"]
    again = client.get(f"{url}/close")
    assert again.status_code == 409 and "closed" in text(again)


def test_the_definition_form_sets_the_fallback(client, lead, directory):
    sign_in(client, lead)
    form = client.get("/ui/campaign-definitions/new")
    assert 'name="on_no_response_fallback"' in text(form)
    made = client.post("/ui/campaign-definitions", data={
        "form_token": form_token(form), "name": "Fallback", "reviewer_rule": "resource_owner",
        "fallback_reviewer": "user:lena", "duration_days": "7", "on_no_response": "recommendation",
        "on_no_response_fallback": "revoke", "unused_days": "90", "days_before_due": "3", "schedule": "none",
        "principal_kinds": "user"})
    assert made.status_code == 302, text(made)
    made_state = [d for d in client.get("/v1/campaign-definitions", headers=lead).get_json()["items"]
                  if d["name"] == "Fallback"]
    assert made_state[0]["on_no_response_fallback"] == "revoke"


# -- the demo --------------------------------------------------------------------------------------

def test_the_demo_does_not_advise_revoking_everything_on_its_first_day(app, db):
    result = CliRunner().invoke(cli, ["demo", "load"], obj=ScriptInfo(create_app=lambda: app))
    assert result.exit_code == 0, result.output
    advice = db.execute(select(ReviewItem.recommendation, ReviewItem.recommendation_confidence,
                               ReviewItem.recommendation_reason)).all()
    assert len(advice) > 20
    revoked = [reason for recommendation, _c, reason in advice if recommendation == "revoke"]
    assert len(revoked) < len(advice) / 2, revoked
    assert not [reason for reason in revoked if "not used" in reason]
    assert all(confidence == "incomplete" for recommendation, confidence, _r in advice
               if recommendation == "review")


def test_the_cli_close_has_a_dry_run(app, client, lead, directory):
    import json

    campaign = launch(client, lead, definition(client, lead, on_no_response="recommendation"))
    before = (revision(app), audit_count(app))

    def run(*args):
        return CliRunner().invoke(cli, list(args), obj=ScriptInfo(create_app=lambda: app))

    previewed = run("campaign", "close", "--dry-run", str(campaign["id"]))
    assert previewed.exit_code == 0, previewed.output
    answer = json.loads(previewed.output)
    assert (answer["keep"], answer["revoke"], len(answer["items"])) == (4, 2, 6)
    assert (revision(app), audit_count(app)) == before
    assert client.get(f"/v1/campaigns/{campaign['id']}", headers=lead).get_json()["status"] == "open"
    assert run("campaign", "close", "--dry-run", "424242").exit_code == 1
