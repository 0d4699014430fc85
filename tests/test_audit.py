"""The audit trail: every change leaves a chained event; tampering is caught; nothing edits events."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from accessreview.audit import verify_chain
from accessreview.cli import cli


@pytest.fixture
def history(client, portal):
    """A handful of real changes through the API."""
    client.put("/v1/principals/user:alice", json={"name": "Alice"}, headers=portal)
    client.put("/v1/resources/organization/acme", json={"name": "Acme"}, headers=portal)
    grant = client.post("/v1/grants", json={"principal": "user:alice", "role": "member",
                                            "resource": "organization:acme"}, headers=portal).get_json()["id"]
    client.delete(f"/v1/grants/{grant}", headers=portal)
    client.put("/v1/principals/user:alice", json={"name": "Alice M"}, headers=portal)
    return grant


def run_verify(app):
    return CliRunner().invoke(cli, ["audit", "verify"], obj=_script_info(app))


def _script_info(app):
    from flask.cli import ScriptInfo

    return ScriptInfo(create_app=lambda: app)


def tamper(db, sql, **params):
    """What an attacker with database access would do: get past the append-only triggers, then edit."""
    dialect = db.get_bind().dialect.name
    if dialect == "postgresql":
        db.execute(text("SET LOCAL session_replication_role = replica"))
        db.execute(text(sql), params)
    else:
        db.execute(text("DROP TRIGGER IF EXISTS audit_events_no_update"))
        db.execute(text("DROP TRIGGER IF EXISTS audit_events_no_delete"))
        db.execute(text(sql), params)
    db.commit()


def test_every_change_is_an_event_with_before_and_after(client, auditor, history):
    events = client.get("/v1/audit-events?target=user:alice", headers=auditor).get_json()["items"]
    assert [e["action"] for e in events] == ["principal.created", "principal.updated"]
    assert events[1]["before"]["name"] == "Alice" and events[1]["after"]["name"] == "Alice M"
    assert events[1]["actor"] == "service:portal"
    grant_events = client.get(f"/v1/audit-events?target=grant:{history}", headers=auditor).get_json()["items"]
    assert [e["action"] for e in grant_events] == ["grant.created", "grant.deleted"]
    assert grant_events[1]["before"]["role"] == "member" and grant_events[1]["after"] is None


def test_events_carry_the_request_id(client, portal, auditor):
    client.put("/v1/principals/user:zed", json={}, headers={**portal, "X-Request-Id": "req-123"})
    event = client.get("/v1/audit-events?target=user:zed", headers=auditor).get_json()["items"][0]
    assert event["request_id"] == "req-123"


def test_events_are_chained(client, auditor, history):
    events = client.get("/v1/audit-events?limit=1000", headers=auditor).get_json()["items"]
    assert events[0]["prev_hash"] == "0" * 64
    for previous, event in zip(events, events[1:]):
        assert event["prev_hash"] == previous["hash"]
        assert event["seq"] == previous["seq"] + 1


def test_filters_by_time_and_actor(client, auditor, portal, clock, history):
    clock.advance(days=1)
    client.put("/v1/principals/user:late", json={}, headers=portal)
    since = client.get("/v1/audit-events?since=2026-03-03T00:00:00Z", headers=auditor).get_json()["items"]
    assert [e["target"] for e in since] == ["user:late"]
    until = client.get("/v1/audit-events?until=2026-03-03T00:00:00Z&actor=service:portal",
                       headers=auditor).get_json()["items"]
    assert "user:late" not in {e["target"] for e in until} and len(until) == 5


def test_verify_passes_on_an_untouched_chain(app, history):
    result = run_verify(app)
    assert result.exit_code == 0, result.output
    assert "intact" in result.output


def test_edited_event_is_named(app, db, history):
    target_seq = 4
    event_id = db.execute(text("SELECT id FROM audit_events WHERE seq = :s"), {"s": target_seq}).scalar()
    tamper(db, "UPDATE audit_events SET actor = 'user:mallory' WHERE seq = :s", s=target_seq)
    result = run_verify(app)
    assert result.exit_code != 0
    assert event_id in result.output and "edited" in result.output


def test_removed_event_is_found(app, db, history):
    tamper(db, "DELETE FROM audit_events WHERE seq = 3")
    result = run_verify(app)
    assert result.exit_code != 0 and "removed" in result.output and "seq 3" in result.output


def test_removed_last_event_is_found(app, db, history):
    tamper(db, "DELETE FROM audit_events WHERE seq = (SELECT max(seq) FROM audit_events)")
    result = run_verify(app)
    assert result.exit_code != 0 and "removed from the end" in result.output


def test_reordered_events_are_found(app, db, history):
    tamper(db, "UPDATE audit_events SET seq = -1 WHERE seq = 3")
    tamper(db, "UPDATE audit_events SET seq = 3 WHERE seq = 4")
    tamper(db, "UPDATE audit_events SET seq = 4 WHERE seq = -1")
    report = verify_chain(db)
    assert not report.ok and report.problem.seq == 3


def test_rehashed_event_still_breaks_the_chain(app, db, history):
    """Editing an event and recomputing its hash breaks the link to the next one."""
    from accessreview.audit import event_hash
    from accessreview.models import AuditEvent

    event = db.get(AuditEvent, 3)
    event.actor = "user:mallory"
    new_hash = event_hash(event)
    db.expunge(event)
    tamper(db, "UPDATE audit_events SET actor = 'user:mallory', hash = :h WHERE seq = 3", h=new_hash)
    report = verify_chain(db)
    assert not report.ok and report.problem.seq == 4


def test_the_database_refuses_edits_and_deletes(db, history):
    from sqlalchemy.exc import DatabaseError

    with pytest.raises(DatabaseError, match="append-only"):
        db.execute(text("UPDATE audit_events SET actor = 'x' WHERE seq = 1"))
    db.rollback()
    with pytest.raises(DatabaseError, match="append-only"):
        db.execute(text("DELETE FROM audit_events"))
    db.rollback()


def test_no_endpoint_edits_or_deletes_events(client, admin):
    assert client.delete("/v1/audit-events", headers=admin).status_code == 405
    assert client.put("/v1/audit-events", json={}, headers=admin).status_code == 405
    assert client.post("/v1/audit-events", json={}, headers=admin).status_code == 405


def test_reading_the_trail_needs_the_auditor_role(client, portal):
    assert client.get("/v1/audit-events", headers=portal).status_code == 403


@pytest.mark.parametrize("count", [3, 450])  # written row by row, and (on PostgreSQL) through COPY
def test_events_appended_in_bulk_verify_and_read_back_as_written(app, db, clock, count):
    """Bulk events hash their own JSON text: whatever their content (text beyond ASCII, quotes, nested
    times, keys that are not text, nothing at all), the chain verifies and each reads back as written."""
    from datetime import timedelta

    from sqlalchemy import select

    from accessreview.audit import WriteContext, append_event, append_events
    from accessreview.models import AuditEvent
    from accessreview.work import unit_of_work

    odd = {"name": "Zoë \"quoted\" \\ back\nline", "at": clock.now() - timedelta(days=1), 7: [1, 2.5, None, True],
           "nested": {"when": [clock.now()], "empty": {}}}
    with unit_of_work(db, WriteContext("user:zoë", clock.now(), "req-ß")) as (session, ctx):
        append_event(session, ctx, "test.single", "thing:é", None, odd)
        append_events(session, ctx, [("test.bulk", f"thing:{n}" if n % 2 else None, odd if n % 3 else None,
                                      {"n": n, **odd}) for n in range(count)])
    report = verify_chain(db)
    assert report.ok, report.problem
    rows = db.execute(select(AuditEvent.before, AuditEvent.after).where(AuditEvent.action == "test.bulk")
                      .order_by(AuditEvent.seq)).all()
    before, after = rows[1]
    expected = {"name": odd["name"], "at": (clock.now() - timedelta(days=1)).isoformat(), "7": [1, 2.5, None, True],
                "nested": {"when": [clock.now().isoformat()], "empty": {}}}
    assert before == expected and after == {"n": 1, **expected}
    assert rows[0][0] is None and len(rows) == count
    # Each state is stored as the text its hash covers: the event's canonical text is put together from them.
    import hashlib

    from sqlalchemy import Text, cast

    from accessreview.audit import event_text
    from accessreview.clock import as_utc
    stored = db.execute(select(AuditEvent.seq, AuditEvent.id, AuditEvent.occurred_at, AuditEvent.actor,
                               AuditEvent.action, AuditEvent.target, cast(AuditEvent.before, Text),
                               cast(AuditEvent.after, Text), AuditEvent.request_id, AuditEvent.prev_hash,
                               AuditEvent.hash).where(AuditEvent.action.in_(("test.single", "test.bulk")))).all()
    assert len(stored) == count + 1
    for seq, event_id, at, actor, action, target, before, after, request_id, prev_hash, hashed in stored:
        text = event_text(seq, event_id, as_utc(at).isoformat(timespec="microseconds"), actor, action, target,
                          before or "null", after or "null", request_id, prev_hash)
        assert hashlib.sha256(text.encode("utf-8")).hexdigest() == hashed
