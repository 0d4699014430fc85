"""The decision log: when its writer writes what the checks leave in its buffer, and how auditors page
through it."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from accessreview import create_app
from accessreview.authz import decisions
from accessreview.models import Decision
from support import pages
from test_authorize import check, world  # noqa: F401 (world: a fixture)


def _written(db, ids: list[str]) -> list[str]:
    """Which of ``ids`` are in the table, read directly: the auditors' endpoint writes the buffer first."""
    db.rollback()  # a fresh snapshot
    return sorted(db.scalars(select(Decision.id).where(Decision.id.in_(ids))))


def test_a_buffer_past_half_full_is_written_without_waiting_for_the_interval(portal, world, app_config, db):
    # An interval no test waits for: what gets written was written because the buffer filled.
    app = create_app({**app_config, "DECISION_FLUSH_INTERVAL": 3600.0, "DECISION_BUFFER": 4})
    try:
        portal_client, log = app.test_client(), app.extensions["decisions"]
        ids = [check(portal_client, portal, "user:alice", "read", "document:d1").get_json()["decision_id"]
               for _ in range(2)]
        time.sleep(0.3)
        assert log.buffered() == 2 and _written(db, ids) == []  # half full: it waits for the interval

        ids.append(check(portal_client, portal, "user:alice", "read", "document:d1").get_json()["decision_id"])
        deadline = time.monotonic() + 10
        while len(_written(db, ids)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _written(db, ids) == sorted(ids)
        assert log.buffered() == 0
    finally:
        app.extensions["db"].dispose()


def test_the_background_writer_spreads_a_light_flush_and_keeps_every_decision(client, portal, world, db, monkeypatch):
    monkeypatch.setattr(decisions, "PACE_ROWS", 2)
    monkeypatch.setattr(decisions, "PACE_PAUSE", 0.5)
    monkeypatch.setattr(decisions, "PACE_SPREAD", 10.0)
    log = client.application.extensions["decisions"]
    checks = [{"actor": "user:alice", "action": "read", "resource": "document:d1"}] * 5

    def batch_of_five() -> list[str]:
        answer = client.post("/v1/authorize/batch", json={"checks": checks}, headers=portal).get_json()
        return [r["decision_id"] for r in answer["results"]]

    paced_ids = batch_of_five()
    started = time.monotonic()
    assert log.flush(paced=True) == 5
    assert time.monotonic() - started >= 1.0  # three slices of two, 0.5 s apart
    assert _written(db, paced_ids) == sorted(paced_ids)

    at_once_ids = batch_of_five()  # an explicit flush (an auditor's page, exit) does not wait
    started = time.monotonic()
    assert log.flush() == 5
    assert time.monotonic() - started < 0.5
    assert _written(db, at_once_ids) == sorted(at_once_ids)

    monkeypatch.setattr(decisions, "PACE_MOST_ROWS", 4)  # nor does a heavy one: pacing would fall behind
    heavy_ids = batch_of_five()
    started = time.monotonic()
    assert log.flush(paced=True) == 5
    assert time.monotonic() - started < 0.5
    assert _written(db, heavy_ids) == sorted(heavy_ids)


@pytest.fixture
def log_of_bob_then_alice(client, portal, world, clock, app) -> dict[str, list[str]]:
    """Seven of Bob's decisions, then three of Alice's among two more of Bob's, a second apart."""
    ids: dict[str, list[str]] = {"user:alice": [], "user:bob": []}
    for actor in ["user:bob"] * 7 + ["user:alice", "user:bob", "user:alice", "user:bob", "user:alice"]:
        ids[actor].append(check(client, portal, actor, "read", "document:d1").get_json()["decision_id"])
        clock.advance(seconds=1)
    app.extensions["decisions"].flush()
    return ids


def _pages(client, auditor, url: str) -> list[list[str]]:
    """The decision ids of each page."""
    return [[d["id"] for d in page] for page in pages(client, url, auditor)]


def test_a_filtered_page_stops_scanning_when_out_of_time_and_says_where(client, auditor, log_of_bob_then_alice,
                                                                         monkeypatch):
    from accessreview.authz import decisions

    # Slices of 3 decisions, and no time: each page is the matches of one slice.
    monkeypatch.setattr(decisions, "SCAN_SLICE", 3)
    monkeypatch.setattr(decisions, "SCAN_SECONDS", 0)
    pages = _pages(client, auditor, "/v1/decisions?actor=user:alice&limit=100")
    # Bob's seven first: two pages empty but for a cursor; and a last empty one, as the fourth slice
    # ended on the last decision (only the next slice's scan can tell that nothing follows).
    assert [len(page) for page in pages] == [0, 0, 1, 2, 0]
    assert sum(pages, []) == log_of_bob_then_alice["user:alice"]


def test_a_filtered_page_with_time_reads_on_across_slices(client, auditor, log_of_bob_then_alice, monkeypatch):
    from accessreview.authz import decisions

    monkeypatch.setattr(decisions, "SCAN_SLICE", 2)
    alice, bob = log_of_bob_then_alice["user:alice"], log_of_bob_then_alice["user:bob"]
    assert _pages(client, auditor, "/v1/decisions?actor=user:alice&limit=100") == [alice]
    assert _pages(client, auditor, "/v1/decisions?actor=user:alice&limit=2") == [alice[:2], alice[2:]]
    assert _pages(client, auditor, "/v1/decisions?actor=user:bob&limit=4") == [bob[:4], bob[4:8], bob[8:]]
    # With a time range too: Alice's decisions from the tenth second on (09:00:09, 09:00:11).
    assert _pages(client, auditor, "/v1/decisions?actor=user:alice&since=2026-03-02T09:00:08.5Z&limit=100") == \
        [alice[1:]]
    # Unfiltered pages are unchanged: the next decisions in time order.
    assert _pages(client, auditor, "/v1/decisions?limit=5") == [
        (bob[:7] + [alice[0], bob[7], alice[1], bob[8], alice[2]])[i:i + 5] for i in (0, 5, 10)]


def test_decision_ids_are_unique_across_requests_and_past_a_request_of_more_than_one_number(
        portal, world, app_config, db):
    """A request's ids share a number and differ by their place; one of more than PLACES decisions
    takes more numbers. Every id is distinct and every decision is written under its own."""
    size = decisions.PLACES + 100
    app = create_app({**app_config, "MAX_BATCH": size, "MAX_BODY_BYTES": 2_000_000})
    try:
        client, log = app.test_client(), app.extensions["decisions"]
        body = {"checks": [{"actor": "user:alice", "action": "read", "resource": "document:d1"}] * size}
        ids = [r["decision_id"] for _ in range(2)
               for r in client.post("/v1/authorize/batch", headers=portal, json=body).get_json()["results"]]
        ids.append(check(client, portal, "user:alice", "read", "document:d1").get_json()["decision_id"])
        assert len(set(ids)) == len(ids) == 2 * size + 1
        assert {len(i) for i in ids} == {20}
        assert log.flush() == len(ids)
        assert len(_written(db, ids)) == len(ids)
    finally:
        app.extensions["db"].dispose()
