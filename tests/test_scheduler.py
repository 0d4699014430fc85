"""The scheduler's jobs: one campaign per period, catch-up after downtime, reminders, escalation, close."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from accessreview.campaigns.scheduled import latest_period, reminder_due
from accessreview.models import Campaign, OutboxMessage, ReviewItem
from accessreview.scheduler import run_once
from support import PROJECT_ROOT
from test_campaigns import DIRECTORY, definition, items

UTC = timezone.utc


@pytest.fixture
def directory(client, portal):
    assert client.post("/v1/directory/import", json=DIRECTORY, headers=portal).status_code == 200


def campaigns(db) -> list[Campaign]:
    db.rollback()  # a fresh snapshot: the jobs wrote in their own sessions
    return list(db.scalars(select(Campaign).order_by(Campaign.id)))


def test_latest_period_of_a_cron_in_its_time_zone():
    quarterly = {"cron": "0 9 1 */3 *", "timezone": "Europe/Paris"}
    since = datetime(2026, 1, 10, tzinfo=UTC)
    assert latest_period(quarterly, since, datetime(2026, 3, 31, tzinfo=UTC)) is None
    first = latest_period(quarterly, since, datetime(2026, 4, 2, tzinfo=UTC))
    assert first == datetime(2026, 4, 1, 7, 0, tzinfo=UTC)  # 09:00 in Paris, summer time
    after_downtime = latest_period(quarterly, since, datetime(2026, 11, 2, tzinfo=UTC))
    assert after_downtime == datetime(2026, 10, 1, 7, 0, tzinfo=UTC), "only the latest missed period"


def test_latest_period_of_an_interval():
    every_30_days = {"interval_days": 30, "start": "2026-01-01T00:00:00+00:00", "timezone": "UTC"}
    since = datetime(2026, 1, 1, tzinfo=UTC)
    assert latest_period(every_30_days, since, datetime(2026, 3, 5, tzinfo=UTC)) == datetime(2026, 3, 2, tzinfo=UTC)


def test_reminder_days():
    due = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)
    rules = {"days_before_due": [3], "on_due_day": True, "daily_overdue": True}
    assert reminder_due(rules, due, datetime(2026, 3, 13, 12, tzinfo=UTC)) == "due in 3 day(s)"
    assert reminder_due(rules, due, datetime(2026, 3, 14, 12, tzinfo=UTC)) is None
    assert reminder_due(rules, due, datetime(2026, 3, 16, 1, tzinfo=UTC)) == "due today"
    assert reminder_due(rules, due, datetime(2026, 3, 18, 1, tzinfo=UTC)) == "overdue by 2 day(s)"
    assert reminder_due({**rules, "daily_overdue": False}, due, datetime(2026, 3, 18, tzinfo=UTC)) is None


def test_one_campaign_per_period_and_one_after_downtime(app, client, lead, directory, clock, db, portal):
    definition(client, lead, schedule={"interval_days": 7, "timezone": "UTC"})
    assert run_once(app)["launch_due"] == [], "nothing is due at creation"
    clock.advance(days=7, minutes=1)
    client.post("/v1/directory/import", json=DIRECTORY, headers=portal)  # keep the sources fresh
    assert len(run_once(app)["launch_due"]) == 1
    assert run_once(app)["launch_due"] == [], "a second tick in the same period launches nothing"
    clock.advance(days=30)  # the scheduler was down for four periods
    client.post("/v1/directory/import", json=DIRECTORY, headers=portal)  # keep the sources fresh
    assert len(run_once(app)["launch_due"]) == 1
    assert len(campaigns(db)) == 2


def test_a_failed_launch_opens_nothing_and_the_next_tick_launches(app, client, lead, directory, clock, db,
                                                                  monkeypatch):
    from accessreview.campaigns import launch as launching

    definition(client, lead, schedule={"interval_days": 1, "timezone": "UTC"})
    clock.advance(days=1, minutes=1)

    def failing(run, definition):
        raise RuntimeError("injected: the disk is full")

    monkeypatch.setattr(launching, "_write_items", failing)
    assert len(run_once(app)["launch_due"]) == 1
    assert [c.status for c in campaigns(db)] == ["launching"], "never open, never reviewed"
    assert db.scalar(select(func.count()).select_from(ReviewItem)) == 0
    monkeypatch.undo()
    assert len(run_once(app)["launch_due"]) == 1, "the next tick launches again"
    db.expire_all()
    assert [(c.status, c.population_count) for c in campaigns(db)] == [("open", 6)]
    assert db.scalar(select(func.count()).select_from(ReviewItem)) == 6


def test_a_stale_directory_refuses_the_scheduled_launch_and_says_why(app, client, lead, auditor, directory, clock):
    definition(client, lead, schedule={"interval_days": 7, "timezone": "UTC"})
    clock.advance(days=7, minutes=1)
    assert run_once(app)["launch_due"] == []
    refused = client.get("/v1/audit-events?action=campaign.launch_refused", headers=auditor).get_json()["items"]
    assert refused and "portal" in refused[0]["after"]["message"]


def test_reminders_and_escalation_by_email(app, client, lead, directory, clock, smtp, token_for, auditor, db):
    keeper, port = smtp
    received = keeper.messages
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port)
    definition_id = definition(client, lead, duration_days=10, escalation={"after_days_overdue": 2, "to": "manager"})
    campaign = client.post(f"/v1/campaign-definitions/{definition_id}/launch", headers=lead).get_json()
    found = items(client, lead, campaign["id"])
    # lena (the fallback, for owen's own grant) finishes at once: she must hear nothing.
    lena_item = found[("user:owen", "admin", "organization:acme")]
    client.post(f"/v1/review-items/{lena_item['id']}/decision", json={"decision": "keep"}, headers=lead)

    clock.advance(days=6)  # 4 days before due: no reminder rule
    assert run_once(app)["remind_and_escalate"] == {"escalated": 0, "reminded": 0}
    clock.advance(days=1)  # 3 days before due
    run_once(app)
    assert [to for to, _ in received] == [["owen@example.com"]]
    assert "5 item(s) to decide" in received[0][1] and "due in 3 day(s)" in received[0][1]
    assert f"Your queue: http://127.0.0.1:8000/ui/reviews?campaign={campaign['id']}" in received[0][1].splitlines()
    run_once(app)
    assert len(received) == 1, "one reminder a day"

    clock.advance(days=5)  # 2 days overdue: a reminder, then escalation to owen's manager (lena)
    received.clear()
    result = run_once(app)
    assert result["remind_and_escalate"]["escalated"] == 5
    assert ["lena@example.com"] in [to for to, _ in received]
    escalated = [i for i in items(client, lead, campaign["id"]).values() if i["escalated_at"]]
    assert len(escalated) == 5 and {i["reviewer"] for i in escalated} == {"user:lena"}
    assert all(i["reviewer_of_record"] == "user:owen" for i in escalated)
    history = client.get(f"/v1/review-items/{escalated[0]['id']}", headers=lead).get_json()["history"]
    assert history[0]["kind"] == "escalated" and history[0]["from_reviewer"] == "user:owen"
    events = client.get("/v1/audit-events?action=campaign.reminded", headers=auditor).get_json()["items"]
    assert events and events[0]["after"]["email"].startswith("queued as <")
    sent = {row.message_id: row.state for row in db.scalars(select(OutboxMessage))}
    assert events[0]["after"]["email"].removeprefix("queued as ") in sent and set(sent.values()) == {"sent"}


def test_due_campaigns_close_with_their_rule(app, client, lead, directory, clock, db):
    definition_id = definition(client, lead, duration_days=3, on_no_response="keep")
    campaign = client.post(f"/v1/campaign-definitions/{definition_id}/launch", headers=lead).get_json()
    assert run_once(app)["close_due"] == []
    clock.advance(days=3)
    assert run_once(app)["close_due"] == [campaign["id"]]
    closed = client.get(f"/v1/campaigns/{campaign['id']}", headers=lead).get_json()
    assert closed["status"] == "closed" and closed["items"] == {"decided": 6}
    assert all(i["automated_rule"] == "on_no_response:keep" for i in items(client, lead, campaign["id"]).values())


@pytest.mark.postgres
def test_two_schedulers_launch_once(app, client, lead, directory, database_url, tmp_path, app_config, db):
    start = (datetime.now(UTC) - timedelta(days=1, minutes=5)).isoformat()
    definition(client, lead, schedule={"interval_days": 1, "start": start, "timezone": "UTC"})
    with app.app_context():
        from support import write
        from accessreview.models import SourceSync
        with write(app) as (session, _):  # the sources are fresh by the real clock the CLI reads
            for sync in session.scalars(select(SourceSync)):
                sync.last_sync_at = datetime.now(UTC)
    env = {**os.environ, "ACCESSREVIEW_DATABASE_URL": database_url, "ACCESSREVIEW_SECRET_KEY": app_config["SECRET_KEY"],
           "ACCESSREVIEW_INSTANCE_DIR": str(tmp_path), "ACCESSREVIEW_LOG_LEVEL": "WARNING"}
    processes = [subprocess.Popen([sys.executable, "-m", "accessreview.cli", "scheduler", "--once"], env=env,
                                  cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=120)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert db.scalar(select(func.count()).select_from(Campaign)) == 1


def test_jobs_live_in_the_service_database(app, db):
    from apscheduler.schedulers.background import BackgroundScheduler
    from sqlalchemy import text

    from accessreview.scheduler import build

    scheduler = build(app, BackgroundScheduler)
    scheduler.start(paused=True)
    try:
        ids = sorted(db.execute(text("SELECT id FROM apscheduler_jobs")).scalars())
    finally:
        scheduler.shutdown()
    assert ids == ["close_due", "follow_up_due", "launch_due", "remind_and_escalate"]
    again = build(app, BackgroundScheduler)  # a second scheduler replaces the jobs, never doubles them
    again.start(paused=True)
    again.shutdown()
    db.rollback()
    assert db.execute(text("SELECT count(*) FROM apscheduler_jobs")).scalar() == 4
