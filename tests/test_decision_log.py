"""The decision log's own writer: when it writes what the checks leave in its buffer."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from accessreview.models import Decision
from test_authorize import PORTAL, check


@pytest.fixture
def app_config(app_config):
    # An interval no test waits for: what gets written here was written because the buffer filled.
    return {**app_config, "DECISION_FLUSH_INTERVAL": 3600.0, "DECISION_BUFFER": 4}


def _written(db) -> list[str]:
    """The decisions in the table, read directly: the auditors' endpoint writes the buffer first."""
    db.rollback()  # a fresh snapshot
    return sorted(db.scalars(select(Decision.id)))


def test_a_buffer_past_half_full_is_written_without_waiting_for_the_interval(client, portal, app, db):
    assert client.post("/v1/directory/import", json=PORTAL, headers=portal).status_code == 200
    log = app.extensions["decisions"]
    ids = [check(client, portal, "user:alice", "read", "document:d1").get_json()["decision_id"] for _ in range(2)]
    time.sleep(0.3)
    assert log.buffered() == 2 and _written(db) == []  # half full: it waits for the interval

    ids.append(check(client, portal, "user:alice", "read", "document:d1").get_json()["decision_id"])
    deadline = time.monotonic() + 10
    while len(_written(db)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _written(db) == sorted(ids)
    assert log.buffered() == 0
