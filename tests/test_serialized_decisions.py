"""Changes to one review item are serialized: decisions, overrides, hand-ons and stage advances made
at once (or on a view that has gone stale) never lose one another, and the item's history says what
really came before each of them."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from accessreview.audit import WriteContext
from accessreview.campaigns import deciding, review
from accessreview.models import Campaign, ReviewItem
from support import wait_until_someone_waits_on_a_lock
from test_campaigns import definition, directory, items, launch  # noqa: F401 (directory: a fixture)
from test_web import form_token, hidden, sign_in, text

REVOKE = {"decision": "revoke", "justification": "not needed any more"}
KEEP = {"decision": "keep"}


@pytest.fixture
def campaign(client, lead, directory):  # noqa: F811 (directory: the fixture)
    """Acme's review: Owen, its owner, reviews five items; Lena is a security lead."""
    return launch(client, lead, definition(client, lead))


@pytest.fixture
def owen(token_for):
    return token_for("user:owen")


def owens_items(client, lead, campaign) -> list[dict]:
    return sorted((i for i in items(client, lead, campaign["id"]).values() if i["reviewer"] == "user:owen"),
                  key=lambda i: i["id"])


def item_of(client, lead, item_id: int) -> dict:
    return client.get(f"/v1/review-items/{item_id}", headers=lead).get_json()


def decisions_in(history: list[dict]) -> list[tuple]:
    return [(e["kind"], e["decision"], e["previous"], e["actor"]) for e in history
            if e["kind"] in ("decided", "changed", "overridden")]


class Race:
    """Hold each request that changes an item, once it has read and authorized it and before its unit
    of work, until ``parties`` of them got there (or run ``meanwhile`` there, once): the interleaving
    that made a stale read a lost update."""

    def __init__(self, monkeypatch, parties: int = 0, meanwhile=None) -> None:
        self.barrier = threading.Barrier(parties) if parties else None
        self.meanwhile = meanwhile
        real = deciding.unit_of_work

        def held(principal):
            if self.barrier is not None:
                self.barrier.wait(timeout=30)
            if self.meanwhile is not None:
                work, self.meanwhile = self.meanwhile, None
                thread = threading.Thread(target=work)  # another request, on its own thread and session
                thread.start()
                thread.join(timeout=30)
            return real(principal)

        monkeypatch.setattr(deciding, "unit_of_work", held)


def at_once(*calls):
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result(timeout=60) for future in futures]


# -- the history says what really came before -------------------------------------------------------

def test_an_override_made_on_a_stale_read_records_the_decision_it_replaced(app, client, lead, owen, campaign,
                                                                           monkeypatch):
    item = owens_items(client, lead, campaign)[0]
    Race(monkeypatch, meanwhile=lambda: app.test_client().post(
        f"/v1/review-items/{item['id']}/decision", json=KEEP, headers=owen))
    overridden = client.post(f"/v1/review-items/{item['id']}/decision", json=REVOKE, headers=lead)
    assert overridden.status_code == 200 and overridden.get_json()["decision"] == "revoke"
    assert decisions_in(item_of(client, lead, item["id"])["history"]) == [
        ("decided", "keep", None, "user:owen"), ("overridden", "revoke", "keep", "user:lena")]


def test_a_reviewer_cannot_silently_replace_an_override(app, client, lead, owen, campaign, monkeypatch):
    item = owens_items(client, lead, campaign)[0]
    Race(monkeypatch, meanwhile=lambda: app.test_client().post(
        f"/v1/review-items/{item['id']}/decision", json=REVOKE, headers=lead))
    kept = client.post(f"/v1/review-items/{item['id']}/decision", json=KEEP, headers=owen)
    assert kept.status_code == 409 and kept.get_json()["error"]["code"] == "overridden"
    now = item_of(client, lead, item["id"])
    assert (now["decision"], now["decided_by"], now["overridden"]) == ("revoke", "user:lena", True)
    assert decisions_in(now["history"]) == [("overridden", "revoke", None, "user:lena")]
    changed = client.post(f"/v1/review-items/{item['id']}/decision", json=KEEP, headers=lead)
    assert changed.status_code == 200, "a security lead may change it again"
    assert decisions_in(item_of(client, lead, item["id"])["history"])[-1] == ("overridden", "keep", "revoke",
                                                                              "user:lena")


def test_a_decision_on_an_item_handed_on_meanwhile_is_refused(app, client, lead, owen, campaign, monkeypatch):
    item = owens_items(client, lead, campaign)[1]
    Race(monkeypatch, meanwhile=lambda: app.test_client().post(
        f"/v1/review-items/{item['id']}/reassign", json={"to": "user:mia", "reason": "Owen is away"},
        headers=lead))
    kept = client.post(f"/v1/review-items/{item['id']}/decision", json=KEEP, headers=owen)
    assert kept.status_code == 409
    error = kept.get_json()["error"]
    assert error["code"] == "stale_item" and "handed on to user:mia" in error["message"]
    now = item_of(client, lead, item["id"])
    assert (now["status"], now["reviewer"]) == ("pending", "user:mia")
    assert decisions_in(now["history"]) == []


def test_a_stage_passes_once_when_its_reviewer_keeps_twice_at_once(client, lead, directory, token_for,  # noqa: F811
                                                                  monkeypatch):
    campaign = launch(client, lead, definition(client, lead, reviewer={"rule": "manager"},
                                               stages=[{"rule": "resource_owner"}]))
    item = items(client, lead, campaign["id"])[("user:ann", "editor", "project:p1")]
    mia = token_for("user:mia")
    Race(monkeypatch, parties=2)
    answers = at_once(*[lambda: client.application.test_client().post(
        f"/v1/review-items/{item['id']}/decision", json=KEEP, headers=mia)] * 2)
    assert sorted(a.status_code for a in answers) == [200, 409]
    assert [a.get_json()["error"]["code"] for a in answers if a.status_code == 409] == ["stale_item"]
    now = item_of(client, lead, item["id"])
    assert (now["stage"], now["reviewer"], now["status"]) == (1, "user:owen", "pending")
    assert [e["kind"] for e in now["history"]].count("stage_passed") == 1


def test_a_keep_and_an_override_at_once_leave_a_true_history(app, lead, owen, campaign, monkeypatch):
    """Both requests read the item before either writes (the race of the issue), item after item;
    whichever comes second sees the first: it changes that decision (recorded as its previous) or,
    a reviewer after an override, is refused. Nothing is lost, on SQLite and PostgreSQL alike."""
    client = app.test_client()
    Race(monkeypatch, parties=2)
    for item in owens_items(client, lead, campaign):
        keep, override = at_once(
            lambda: app.test_client().post(f"/v1/review-items/{item['id']}/decision", json=KEEP, headers=owen),
            lambda: app.test_client().post(f"/v1/review-items/{item['id']}/decision", json=REVOKE, headers=lead))
        assert override.status_code == 200, override.get_json()
        now = item_of(client, lead, item["id"])
        history = decisions_in(now["history"])
        if keep.status_code == 200:  # the keep was first
            assert history == [("decided", "keep", None, "user:owen"), ("overridden", "revoke", "keep", "user:lena")]
        else:
            assert keep.status_code == 409 and keep.get_json()["error"]["code"] == "overridden"
            assert history == [("overridden", "revoke", None, "user:lena")]
        assert (now["decision"], now["decided_by"], now["overridden"]) == ("revoke", "user:lena", True)
        assert now["version"] == 1 + len(history)


# -- a decision on a stale view -------------------------------------------------------------------

def test_a_decision_on_a_stale_version_is_refused_and_changes_nothing(client, lead, owen, campaign, unchanged):
    first, second, third = owens_items(client, lead, campaign)[:3]
    assert first["version"] == 1
    assert client.post(f"/v1/review-items/{first['id']}/decision", json=KEEP, headers=lead).status_code == 200
    with unchanged():
        stale = client.post(f"/v1/review-items/{first['id']}/decision", json={**REVOKE, "version": 1},
                            headers=owen)
        assert stale.status_code == 409
        error = stale.get_json()["error"]
        assert (error["code"], error["field"], error["item"], error["version"]) == ("stale_item", "version",
                                                                                    first["id"], 2)
        assert "keep by user:lena" in error["message"]
        bulk = client.post(f"/v1/campaigns/{campaign['id']}/decisions", json={"decisions": [
            {"item": second["id"], **KEEP, "version": 1}, {"item": first["id"], **KEEP, "version": 1}]},
            headers=lead)
        assert bulk.status_code == 409 and bulk.get_json()["error"]["code"] == "stale_items"
        assert [(e["index"], e["code"]) for e in bulk.get_json()["error"]["errors"]] == [(1, "stale_item")]
        handed = client.post(f"/v1/review-items/{first['id']}/reassign",
                             json={"to": "user:mia", "reason": "away", "version": 1}, headers=owen)
        assert handed.status_code == 409 and handed.get_json()["error"]["code"] == "stale_item"
    current = client.post(f"/v1/review-items/{first['id']}/decision", json={**REVOKE, "version": 2}, headers=lead)
    assert current.status_code == 200 and current.get_json()["version"] == 3
    moved = client.post(f"/v1/review-items/{third['id']}/reassign",
                        json={"to": "user:mia", "reason": "away", "version": 1}, headers=owen)
    assert moved.status_code == 200 and moved.get_json()["version"] == 2
    for bad in (0, -1, "1", 2**31):
        refused = client.post(f"/v1/review-items/{second['id']}/decision", json={**KEEP, "version": bad},
                              headers=owen)
        assert refused.status_code == 400 and refused.get_json()["error"]["field"] == "version", bad


def test_a_page_sent_after_the_item_changed_shows_it_again_with_why(client, lead, owen, campaign):
    item = owens_items(client, lead, campaign)[0]
    sign_in(client, owen)
    page = client.get(f"/ui/review-items/{item['id']}")
    assert hidden(page, "version") == "1"
    assert client.post(f"/v1/review-items/{item['id']}/decision", json=REVOKE, headers=lead).status_code == 200
    sent = client.post(f"/ui/review-items/{item['id']}/decision",
                       data={"decision": "keep", "version": "1", "form_token": form_token(page)})
    assert sent.status_code == 409 and "changed since you saw it" in text(sent)
    assert "revoke by user:lena" in text(sent)
    assert item_of(client, lead, item["id"])["decision"] == "revoke"


def test_a_ticked_item_that_changed_meanwhile_stops_the_whole_page_of_decisions(client, lead, owen, campaign):
    mine = owens_items(client, lead, campaign)
    sign_in(client, owen)
    page = client.get(f"/ui/reviews?campaign={campaign['id']}")
    assert all(hidden(page, f"version-{i['id']}") == "1" for i in mine)
    assert client.post(f"/v1/review-items/{mine[2]['id']}/decision", json=REVOKE, headers=lead).status_code == 200
    sent = client.post("/ui/reviews", data={
        "items": [str(i["id"]) for i in mine[:3]], "bulk": "decide", "decision": "keep", "form_token": form_token(page),
        **{f"version-{i['id']}": "1" for i in mine}})
    assert sent.status_code == 409 and "nothing was saved" in text(sent)
    assert [item_of(client, lead, i["id"])["decided_by"] for i in mine[:3]] == [None, None, "user:lena"]


# -- bulk decisions and the close job -------------------------------------------------------------

def test_bulk_decisions_at_once_with_single_ones_lose_nothing(app, lead, owen, campaign, monkeypatch):
    client = app.test_client()
    mine = owens_items(client, lead, campaign)
    Race(monkeypatch, parties=2)
    bulk, single = at_once(
        lambda: app.test_client().post(f"/v1/campaigns/{campaign['id']}/decisions", json={"decisions": [
            {"item": i["id"], **KEEP} for i in mine]}, headers=owen),
        lambda: app.test_client().post(f"/v1/review-items/{mine[3]['id']}/decision", json=REVOKE, headers=lead))
    assert single.status_code == 200
    history = decisions_in(item_of(client, lead, mine[3]["id"])["history"])
    if bulk.status_code == 200:
        assert history == [("decided", "keep", None, "user:owen"), ("overridden", "revoke", "keep", "user:lena")]
    else:  # the override came first: the reviewer's bulk keep may not replace it, and writes nothing
        assert bulk.status_code == 409 and bulk.get_json()["error"]["errors"][0]["code"] == "overridden"
        assert history == [("overridden", "revoke", None, "user:lena")]
        assert [item_of(client, lead, i["id"])["status"] for i in mine] == \
            ["pending", "pending", "pending", "decided", "pending"]


@pytest.mark.postgres
def test_the_close_waits_for_a_decision_under_way_and_leaves_it_alone(app, client, lead, campaign, db):
    """The close job's steps do not queue on the state row until they end, so they meet decisions on
    the items' own locks: a decision not yet committed is waited for, then kept, not overwritten."""
    first = owens_items(client, lead, campaign)[0]
    sessions = app.extensions["db"].sessionmaker
    deciding_session, closing_session = sessions(), sessions()
    now = app.config["CLOCK"].now()
    try:
        _, locked = review.lock_for_change(deciding_session, campaign["id"], [first["id"]])
        target = locked[first["id"]]
        c = deciding_session.get(Campaign, campaign["id"])
        review.apply_decision(deciding_session, WriteContext("user:owen", now), c,
                              review.DecisionRequest(target, "keep", None, False))
        deciding_session.flush()
        outcome = {}

        def close():
            closing = closing_session.get(Campaign, campaign["id"])
            outcome["applied"] = review.apply_no_response(closing_session, WriteContext("system:test", now),
                                                          closing, limit=None, why="closed by the test")
        closer = threading.Thread(target=close)
        closer.start()
        wait_until_someone_waits_on_a_lock(app.config["DATABASE_URL"], "the close")
        deciding_session.commit()
        closer.join(timeout=10)
        closing_session.commit()
    finally:
        deciding_session.close()
        closing_session.close()
    total = len(items(client, lead, campaign["id"]))
    assert sum(outcome["applied"].values()) == total - 1, "every other item, and only those"
    kept = db.scalar(select(ReviewItem).where(ReviewItem.id == first["id"]))
    assert (kept.decision, kept.decided_by, kept.automated_rule, kept.version) == ("keep", "user:owen", None, 2)
