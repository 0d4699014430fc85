"""An answered decision is a kept decision: the spool outlives its process, a bad row costs no other,
and what cannot be kept is counted and shown. Real gunicorn workers are killed with SIGKILL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from accessreview import create_app
from accessreview.authz import decisions
from accessreview.authz import spool as spooling
from accessreview.models import Decision
from support import every_page, start_check_server, stop_server
from test_hotpath import send
from test_authorize import world  # noqa: F401 (world: a fixture)

CHECK = {"actor": "user:alice", "action": "read", "resource": "document:d1"}


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def logged_ids(client, auditor) -> set[str]:
    """Every decision id in the log, through the auditors' endpoint."""
    return {d["id"] for d in every_page(client, "/v1/decisions?limit=1000", auditor)}


def checks(client, portal, n: int) -> list[str]:
    return [client.post("/v1/authorize", json=CHECK, headers=portal).get_json()["decision_id"] for _ in range(n)]


def spool_files(app, suffix: str = ".spool") -> list[Path]:
    return sorted(p for p in Path(app.config["DECISION_SPOOL_DIR"]).iterdir() if p.name.endswith(suffix))


def die(app) -> None:
    """This app's process dies: its buffer is gone, its spool segment is let go of by the kernel."""
    log = app.extensions["decisions"]
    segment = log.spool.rotate()
    if segment is not None:
        os.close(segment.fd)
    log._buffer.clear()
    log._used.clear()


def another_process(app_config, app):
    """A second process of the same host: the same database and spool folder."""
    return create_app({**app_config, "DECISION_SPOOL_DIR": str(app.config["DECISION_SPOOL_DIR"])})


def test_a_process_that_dies_leaves_its_decisions_to_the_next_one(app, client, portal, auditor, world, app_config):
    answered = checks(client, portal, 30)
    batch = client.post("/v1/authorize/batch", json={"checks": [CHECK] * 50}, headers=portal).get_json()
    answered += [r["decision_id"] for r in batch["results"]]
    assert len(spool_files(app)) == 1
    die(app)
    survivor = another_process(app_config, app)
    try:
        assert survivor.extensions["decisions"].recover() == 80
        assert spool_files(app) == []
        assert set(answered) <= logged_ids(client, auditor)
        assert survivor.extensions["decisions"].recover() == 0
    finally:
        survivor.extensions["db"].dispose()


def test_an_auditors_read_of_the_log_includes_what_a_dead_process_spooled(app, client, portal, auditor, world):
    answered = checks(client, portal, 7)
    die(app)
    assert set(answered) <= logged_ids(client, auditor)
    assert spool_files(app) == []


def test_a_segment_recovered_after_its_flush_committed_is_not_written_twice(app, client, portal, auditor, world,
                                                                          app_config, db, tmp_path):
    answered = checks(client, portal, 20)
    [segment] = spool_files(app)
    kept = tmp_path / "kept"
    shutil.copy(segment, kept)
    assert app.extensions["decisions"].flush() == 20  # committed, and the segment deleted ...
    shutil.copy(kept, segment)  # ... but as if the process had died between the two
    die(app)
    survivor = another_process(app_config, app)
    try:
        survivor.extensions["decisions"].recover()
    finally:
        survivor.extensions["db"].dispose()
    assert db.scalar(select(func.count()).select_from(Decision).where(Decision.id.in_(answered))) == 20
    assert spool_files(app) == []


def test_a_living_process_keeps_its_segment(app, client, portal, world, app_config):
    checks(client, portal, 3)
    neighbour = another_process(app_config, app)
    try:
        assert neighbour.extensions["decisions"].recover() == 0
        assert len(spool_files(app)) == 1, "a segment in use is never taken"
    finally:
        neighbour.extensions["db"].dispose()
    assert app.extensions["decisions"].flush() == 3
    assert spool_files(app) == []


def test_a_torn_tail_is_counted_shown_and_kept_for_the_operator(app, client, portal, auditor, world, app_config):
    answered = checks(client, portal, 5)
    [segment] = spool_files(app)
    die(app)
    with open(segment, "ab") as spool:
        spool.write(b"\x40\x00\x00\x00torn!")  # a header promising 64 bytes, then 1
    corrupt_before = metric("accessreview_decision_spool_corrupt_bytes_total")
    survivor = another_process(app_config, app)
    try:
        assert survivor.extensions["decisions"].recover() == 5
    finally:
        survivor.extensions["db"].dispose()
    assert set(answered) <= logged_ids(client, auditor)
    assert metric("accessreview_decision_spool_corrupt_bytes_total") - corrupt_before == 9
    assert spool_files(app) == [] and len(spool_files(app, ".corrupt")) == 1
    spool = client.get("/readyz").get_json()["checks"]["decision_spool"]
    assert spool["status"] == "ok" and spool["corrupt"] == 1


def test_a_spool_that_cannot_be_written_is_counted_and_shown(app_config, tmp_path, portal, world, auditor):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    app = create_app({**app_config, "DECISION_SPOOL_DIR": str(blocked)})
    try:
        client = app.test_client()
        before = metric("accessreview_decisions_unspooled_total")
        answered = checks(client, portal, 4)
        assert metric("accessreview_decisions_unspooled_total") - before == 4
        spool = client.get("/readyz").get_json()["checks"]["decision_spool"]
        assert spool["status"].startswith("failing: FileExistsError"), spool
        assert set(answered) <= logged_ids(client, auditor), "still written while the process lives"
    finally:
        app.extensions["db"].dispose()


def test_while_the_database_is_unavailable_the_spool_waits(app, client, portal, auditor, world, monkeypatch):
    answered = checks(client, portal, 6)
    real = decisions._insert_rows

    def unreachable(*args, **kwargs):
        raise OperationalError("INSERT", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(decisions, "_insert_rows", unreachable)
    dropped = metric("accessreview_decisions_dropped_total")
    assert app.extensions["decisions"].flush() == 0
    assert len(spool_files(app)) == 1 and metric("accessreview_decisions_dropped_total") == dropped
    assert client.get("/readyz").get_json()["checks"]["decision_spool"]["waiting_for_database"] == 1
    monkeypatch.setattr(decisions, "_insert_rows", real)
    answered += checks(client, portal, 2)
    assert set(answered) <= logged_ids(client, auditor)
    assert spool_files(app) == []


def poisoned_rows(log, database_url: str) -> list[tuple]:
    """Rows the database refuses: on either, a NULL actor; on PostgreSQL also what its columns cannot hold."""
    ids = iter(log.decision_ids(204))
    stamp = log.stamp(log.clock.now())
    good = ("service:portal", "user:alice", "read", "document:d1", log.allowed_values[0], "v", 1, 3, log.no_grants,
            log.no_grants)
    bad = [(None, "read", "document:d1")]
    if database_url.startswith("postgresql"):
        bad += [("user:alice", "r" * 65, "document:d1"), ("user:a\x00", "read", "document:d1"),
                ("user:alice", "read", "document:" + "d" * 300)]
    rows = [(next(ids), stamp, *good) for _ in range(200)]
    for n, (actor, action, resource) in enumerate(bad):
        rows.insert(37 + 50 * n, (next(ids), stamp, "service:portal", actor, action, resource,
                                  *good[4:]))
    return rows


def test_a_row_the_database_refuses_costs_no_other(app, db, database_url, caplog):
    log = app.extensions["decisions"]
    rows = poisoned_rows(log, database_url)
    log.record(rows, rows[0][1], [])
    dropped = metric("accessreview_decisions_dropped_total")
    assert log.flush() == 200
    poisoned = len(rows) - 200
    assert metric("accessreview_decisions_dropped_total") - dropped == poisoned
    good_ids = [r[0] for r in rows if r[3] == "user:alice" and r[4] == "read" and len(r[5]) < 255]
    assert db.scalar(select(func.count()).select_from(Decision).where(Decision.id.in_(good_ids))) == 200
    assert sum("refused by the database and is dropped" in r.getMessage() for r in caplog.records) == poisoned


# -- the check endpoints take only what the decision log can store ------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["hot path", "flask view"])
@pytest.mark.parametrize("field, value", [
    ("action", "a" * 65), ("actor", "u" * 256), ("resource", "r" * 256),
    ("action", "re\x00ad"), ("actor", "user:alice\x00"), ("resource", "\x00"),
])
def test_a_check_the_log_could_not_store_is_refused(client, portal, world, field, value, chunked, app):
    before = app.extensions["decisions"].buffered()
    status, body, _ = send(client, "/v1/authorize", {**CHECK, field: value}, portal, chunked=chunked)
    code = "nul_character" if "\x00" in value else "too_long"  # as every other input says it
    assert status == 400 and body["error"]["field"] == field and body["error"]["code"] == code
    status, body, _ = send(client, "/v1/authorize/batch", {"checks": [CHECK, {**CHECK, field: value}]}, portal,
                           chunked=chunked)
    assert status == 400 and body["error"]["field"] == f"checks.1.{field}"
    assert app.extensions["decisions"].buffered() == before, "nothing decided, nothing recorded"


def test_the_longest_values_are_decided_and_kept(client, portal, auditor, world):
    longest = {"actor": "user:" + "a" * 250, "action": "a" * 64, "resource": "document:" + "d" * 246}
    answer = client.post("/v1/authorize", json=longest, headers=portal)
    assert answer.status_code == 200 and answer.get_json()["allowed"] is False
    assert answer.get_json()["decision_id"] in logged_ids(client, auditor)


# -- kill -9 of a real check worker under load --------------------------------------------------------------


def _workers(master: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                found.append(int(entry))
    return found


@pytest.fixture
def check_server(app, database_url, app_config, tmp_path, portal):
    # Nothing is written before the kill but what the spool brings back.
    port, process = start_check_server(database_url, app_config["SECRET_KEY"], tmp_path,
                                       ready=lambda server: len(_workers(server.pid)) == 2,
                                       DECISION_FLUSH_INTERVAL="3600", DECISION_BUFFER="10000000")
    yield port, process
    stop_server(process)


def _load(port: int, portal: dict[str, str], path: str, body: bytes, received: list[str], stop: threading.Event):
    """Requests on fresh connections (so both workers get some) until stopped; keeps the ids answered."""
    while not stop.is_set():
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST", data=body,
                                         headers={**portal, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                answer = json.loads(response.read())
        except (OSError, urllib.error.HTTPError, ValueError):
            continue  # not answered: the worker died with it
        received.extend(r["decision_id"] for r in answer.get("results", [answer]))


@pytest.mark.parametrize("kind", ["single", "batch"])
def test_kill_9_of_a_check_worker_under_load_loses_no_answered_decision(check_server, portal, auditor, client, db,
                                                                         kind):
    port, master = check_server
    check = {"actor": "user:ann", "action": "read", "resource": "system:accessreview"}
    path, body = ("/v1/authorize", check) if kind == "single" else ("/v1/authorize/batch", {"checks": [check] * 500})
    received: list[str] = []
    stop = threading.Event()
    threads = [threading.Thread(target=_load, args=(port, portal, path, json.dumps(body).encode(), received, stop))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.5)
        victim = _workers(master.pid)[0]
        os.kill(victim, signal.SIGKILL)
        time.sleep(1.5)  # gunicorn starts another; the load goes on
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert len(received) > (50 if kind == "single" else 2000)
    deadline = time.monotonic() + 30
    while not db.scalar(select(func.count()).select_from(Decision)):  # only the spool can have written any yet
        db.rollback()
        assert time.monotonic() < deadline, "the dead worker's spool was not recovered"
        time.sleep(0.1)
    master.terminate()  # the living workers write their buffers as they exit
    master.wait(timeout=60)
    missing = set(received) - logged_ids(client, auditor)
    assert not missing, f"{len(missing)} of {len(received)} answered decisions are not in the log"


def test_a_spool_record_from_before_the_properties_digest_is_still_written(app, db):
    """Rows spooled by the version before properties_sha256 (one column fewer) are written, with none."""
    log = app.extensions["decisions"]
    [decision_id] = log.decision_ids(1)
    stamp = log.stamp(log.clock.now())
    old = (decision_id, stamp, "service:portal", "user:alice", "read", "document:d1",
           log.allowed_values[1], "v", 1, 3, "[7]")
    rows, (_, used) = log.unspooled(spooling.unframe(log.spooled([old], stamp, [7]))[0][0])
    assert used == [7] and len(rows[0]) == len(old) + 1
    log.record(rows, rows[0][1], [])
    assert log.flush() == 1
    decision = db.scalar(select(Decision).where(Decision.id == old[0]))
    assert decision.grant_ids == [7] and decision.properties_sha256 is None
