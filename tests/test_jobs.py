"""Durable jobs: launch, close and remediation run in committed steps, survive a crash at any step
boundary without doing anything twice, refuse a second start, and are visible through /v1/jobs."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from accessreview import jobs
from accessreview.audit import verify_chain
from accessreview.jobs import LEASE, Runner
from accessreview.models import AuditEvent, Campaign, Grant, Report, ReviewEvent, ReviewItem
from test_campaigns import DIRECTORY, definition, items


class Crash(BaseException):
    """What kill -9 does to a step: it stops, nothing after it runs, its transaction is not committed."""


@pytest.fixture
def directory(client, portal):
    assert client.post("/v1/directory/import", json=DIRECTORY, headers=portal).status_code == 200


@pytest.fixture
def in_steps(app, monkeypatch):
    """Requests leave all the work to the worker, and chunks are tiny, so every job takes many steps
    (and on PostgreSQL every bulk insert goes through COPY, as it does at scale)."""
    from accessreview import db
    from accessreview.campaigns import launch, remediation, review

    monkeypatch.setattr(db, "COPY_AT_LEAST", 1)
    app.config["JOB_INLINE_SECONDS"] = 0
    monkeypatch.setattr(launch, "LAUNCH_CHUNK", 2)
    monkeypatch.setattr(review, "CLOSE_CHUNK", 2)
    monkeypatch.setattr(remediation, "REMEDIATION_CHUNK", 1)


def crash_after(monkeypatch, kind: str, steps: int) -> None:
    """The ``steps``-th step of a ``kind`` job dies before committing, as a killed process would."""
    real, seen = jobs.KINDS[kind], {"n": 0}

    def step(run):
        seen["n"] += 1
        if seen["n"] == steps:
            real(run)  # the work is done in the transaction, then the process dies before commit
            raise Crash()
        real(run)

    monkeypatch.setitem(jobs.KINDS, kind, step)


def resume(app, clock, job_id: int) -> str:
    """A new process (no memory, another name) takes the job over once the dead one's lease runs out."""
    clock.advance(seconds=LEASE.total_seconds() + 1)
    return Runner(app).run(job_id)


def accepted(response) -> int:
    assert response.status_code == 202, response.get_json()
    assert response.headers["Location"] == f"/v1/jobs/{response.get_json()['job']['id']}"
    return response.get_json()["job"]["id"]


def count(db, model, *where) -> int:
    db.rollback()
    return db.scalar(select(func.count()).select_from(model).where(*where))


def test_a_launch_killed_between_chunks_resumes_and_writes_each_item_once(app, client, lead, directory, in_steps,
                                                                          clock, db, monkeypatch):
    job_id = accepted(client.post(f"/v1/campaign-definitions/{definition(client, lead)}/launch", headers=lead))
    crash_after(monkeypatch, "launch", 3)  # prepare, one chunk, then dies in the second chunk
    with pytest.raises(Crash):
        Runner(app).run(job_id)
    assert count(db, ReviewItem) == 2, "the committed chunk stays; the dead one left nothing"
    assert db.scalar(select(Campaign.status)) == "launching"
    job = client.get(f"/v1/jobs/{job_id}", headers=lead).get_json()
    assert job["state"] == "running" and job["progress"] == {"done": 2, "total": 6}
    monkeypatch.undo()
    assert Runner(app).run(job_id) is None, "the dead runner's lease still stands"
    assert resume(app, clock, job_id) == "done"
    db.rollback()
    campaign = db.scalar(select(Campaign))
    assert campaign.status == "open" and count(db, ReviewItem) == campaign.population_count == 6
    keys = db.execute(select(ReviewItem.principal_key, ReviewItem.role, ReviewItem.resource_key)).all()
    assert len(set(keys)) == 6, "no item written twice"
    assert count(db, AuditEvent, AuditEvent.action == "campaign.launched") == 1
    done = client.get(f"/v1/jobs/{job_id}", headers=lead).get_json()
    assert done["links"]["campaign"] == f"/v1/campaigns/{campaign.id}" and done["finished_at"]


def test_a_launch_resumed_after_the_directory_moved_starts_over_at_the_new_revision(
        app, client, lead, portal, directory, in_steps, clock, db, monkeypatch):
    job_id = accepted(client.post(f"/v1/campaign-definitions/{definition(client, lead)}/launch", headers=lead))
    crash_after(monkeypatch, "launch", 3)
    with pytest.raises(Crash):
        Runner(app).run(job_id)
    monkeypatch.undo()
    added = client.post("/v1/grants", json={"principal": "user:ann", "role": "viewer", "resource": "document:d1"},
                        headers=portal)
    assert added.status_code == 201
    assert resume(app, clock, job_id) == "done"
    db.rollback()
    campaign = db.scalar(select(Campaign))
    assert campaign.revision == added.get_json()["revision"], "frozen at the revision it could finish at"
    assert count(db, ReviewItem) == campaign.population_count == 7
    assert count(db, AuditEvent, AuditEvent.action == "campaign.launch_restarted") == 1


def launched(client, lead, **overrides) -> dict:
    response = client.post(f"/v1/campaign-definitions/{definition(client, lead, **overrides)}/launch", headers=lead)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_close_killed_between_chunks_resumes_and_decides_each_item_once(app, client, lead, directory, clock, db,
                                                                        monkeypatch, in_steps):
    app.config["JOB_INLINE_SECONDS"] = 1  # launch at once
    campaign = launched(client, lead, on_no_response="keep")
    app.config["JOB_INLINE_SECONDS"] = 0
    job_id = accepted(client.post(f"/v1/campaigns/{campaign['id']}/close", headers=lead))
    decision = client.post(f"/v1/review-items/{next(iter(items(client, lead, campaign['id']).values()))['id']}/decision",
                           json={"decision": "revoke", "justification": "late"}, headers=lead)
    assert decision.status_code == 409, "a closing campaign takes no more decisions"
    crash_after(monkeypatch, "close", 2)
    with pytest.raises(Crash):
        Runner(app).run(job_id)
    assert count(db, ReviewItem, ReviewItem.status == "decided") == 2
    monkeypatch.undo()
    assert resume(app, clock, job_id) == "done"
    state = client.get(f"/v1/campaigns/{campaign['id']}", headers=lead).get_json()
    assert state["status"] == "closed" and state["items"] == {"decided": 6}
    db.rollback()
    closed = db.scalar(select(AuditEvent).where(AuditEvent.action == "campaign.closed"))
    assert closed.after["automated"] == {"keep": 6}


def test_sign_off_killed_mid_remediation_resumes_revokes_once_and_reports_once(
        app, client, lead, directory, clock, db, monkeypatch, in_steps, portal):
    app.config["JOB_INLINE_SECONDS"] = 1
    campaign = launched(client, lead, on_no_response="revoke")
    assert client.post(f"/v1/campaigns/{campaign['id']}/close", headers=lead).status_code == 200
    app.config["JOB_INLINE_SECONDS"] = 0
    signed = client.post(f"/v1/campaigns/{campaign['id']}/sign-off", json={"statement": "Reviewed."}, headers=lead)
    job_id = accepted(signed)
    assert signed.get_json()["campaign"]["status"] == "signed_off", "signed off with its job, in one transaction"
    assert client.post(f"/v1/campaigns/{campaign['id']}/remediate", headers=lead).get_json()["error"]["job"]["id"] \
        == job_id, "a second start names the running job"
    crash_after(monkeypatch, "remediation", 4)  # sign-off report, 2 revocations, dies in the third
    with pytest.raises(Crash):
        Runner(app).run(job_id)
    assert count(db, ReviewItem, ReviewItem.remediation_state == "applied") == 2
    reports_dir = app.config["REPORTS_DIR"]
    monkeypatch.undo()
    assert resume(app, clock, job_id) == "done"
    revoked = count(db, ReviewItem, ReviewItem.decision == "revoke")
    assert revoked == 6 and count(db, ReviewEvent, ReviewEvent.kind == "revoked") == revoked, "each revoked once"
    assert count(db, Grant, Grant.resource_key.in_(["project:p1", "organization:acme", "document:d1"])) == 0
    db.rollback()
    stages = sorted(db.scalars(select(Report.stage)))
    assert stages == ["remediation", "sign_off"]
    on_disk = sorted(p.name for p in reports_dir.iterdir())
    assert not [name for name in on_disk if name.startswith(".partial")], "nothing half-made left"
    assert sorted(n for n in on_disk if n.endswith(".xlsx")) == sorted(db.scalars(select(Report.file_name)))
    job = client.get(f"/v1/jobs/{job_id}", headers=lead).get_json()
    assert job["progress"] == {"done": 12, "total": 12} and len(job["result"]["reports"]) == 2
    assert job["result"]["remediation"]["applied"] == {"applied": 6}
    assert verify_chain(db).ok, "the events written in bulk chain like the others"


def test_a_report_left_half_made_by_a_crash_is_made_again_and_never_shown(app, client, lead, directory, clock, db,
                                                                          monkeypatch, in_steps):
    from accessreview.reports import service

    app.config["JOB_INLINE_SECONDS"] = 1
    campaign = launched(client, lead, on_no_response="keep")
    client.post(f"/v1/campaigns/{campaign['id']}/close", headers=lead)
    app.config["JOB_INLINE_SECONDS"] = 0
    job_id = accepted(client.post(f"/v1/campaigns/{campaign['id']}/sign-off", json={"statement": "ok"},
                                  headers=lead))
    real_record = service._record

    def die_after_publishing(*args, **kwargs):  # the file is linked in; its record never commits
        real_record(*args, **kwargs)
        raise Crash()

    monkeypatch.setattr(service, "_record", die_after_publishing)
    with pytest.raises(Crash):
        Runner(app).run(job_id)
    assert list(app.config["REPORTS_DIR"].glob("*.xlsx")), "the crash left a workbook nobody recorded"
    monkeypatch.undo()
    assert resume(app, clock, job_id) == "done"
    db.rollback()
    names = sorted(p.name for p in app.config["REPORTS_DIR"].iterdir() if not p.name.endswith(".sig.json"))
    assert names == sorted(db.scalars(select(Report.file_name))) and len(names) == 2
    assert all("-v1.xlsx" in name for name in names), "the orphan was removed, not skipped over"


def test_unknown_jobs_are_404_and_jobs_are_listed(client, lead, directory, auditor, portal):
    assert client.get("/v1/jobs/999", headers=lead).status_code == 404
    launched(client, lead)
    listed = client.get("/v1/jobs?kind=launch&state=done", headers=auditor).get_json()["items"]
    assert [j["kind"] for j in listed] == ["launch"] and listed[0]["progress"]["done"] == 6
    # The portal follows its imports, not campaigns' work.
    assert client.get("/v1/jobs", headers=portal).get_json()["items"] == []
    assert client.get("/v1/jobs?kind=launch", headers=portal).status_code == 403
    assert client.get(f"/v1/jobs/{listed[0]['id']}", headers=portal).status_code == 403


def test_a_second_launch_of_a_definition_at_work_is_refused_naming_the_job(app, client, lead, directory, in_steps):
    definition_id = definition(client, lead)
    job_id = accepted(client.post(f"/v1/campaign-definitions/{definition_id}/launch", headers=lead))
    second = client.post(f"/v1/campaign-definitions/{definition_id}/launch", headers=lead)
    assert second.status_code == 409
    assert second.get_json()["error"]["code"] == "job_running" and second.get_json()["error"]["job"]["id"] == job_id


def test_the_job_page_follows_the_work(app, client, lead, directory, in_steps):
    from test_web import sign_in, text

    definition_id = definition(client, lead)
    sign_in(client, lead)
    page = client.get("/ui/campaigns")
    token = __import__("re").search(r'name="form_token" value="([^"]+)"', text(page)).group(1)
    pressed = client.post(f"/ui/campaign-definitions/{definition_id}/launch", data={"form_token": token})
    assert pressed.status_code == 302 and "/ui/jobs/" in pressed.headers["Location"]
    waiting = client.get(pressed.headers["Location"])
    assert waiting.status_code == 200 and 'http-equiv="refresh"' in text(waiting) and "queued" in text(waiting)
    Runner(app).run(int(pressed.headers["Location"].rsplit("/", 1)[1]))
    finished = text(client.get(pressed.headers["Location"]))
    assert "done" in finished and 'http-equiv="refresh"' not in finished and "The campaign" in finished


def test_a_close_whose_job_failed_can_be_started_again(app, client, lead, directory, db, monkeypatch, in_steps):
    from accessreview.campaigns import review

    app.config["JOB_INLINE_SECONDS"] = 1
    campaign = launched(client, lead, on_no_response="keep")

    def failing(*args, **kwargs):
        raise RuntimeError("injected: the database refused the update")

    monkeypatch.setattr(review, "apply_no_response", failing)
    failed = client.post(f"/v1/campaigns/{campaign['id']}/close", headers=lead)
    assert failed.status_code == 500 and failed.get_json()["error"]["job"]["state"] == "failed"
    assert client.get(f"/v1/campaigns/{campaign['id']}", headers=lead).get_json()["status"] == "closing"
    monkeypatch.undo()
    again = client.post(f"/v1/campaigns/{campaign['id']}/close", headers=lead)
    assert again.status_code == 200 and again.get_json()["status"] == "closed"
    assert again.get_json()["items"] == {"decided": 6}
