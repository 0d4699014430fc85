"""A directory import larger than one transaction's worth runs as a job: staged without the lock,
checked whole before anything is written, applied a batch a step (each its own revision, a replace's
removals first), resumable after a crash at any step, and refused while another of the source runs."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from accessreview import jobs
from accessreview.directory import import_check, imports
from accessreview.models import AuditEvent, Grant, StagedImportRow
from support import revision
from test_import import BASE
from test_jobs import Crash, accepted, count, crash_after, resume


CHECK_STEPS = 5  # BASE's nine rows, checked two a step


@pytest.fixture
def batches_of_two(app, monkeypatch):
    """Batches of two rows, checked two at a time, and the request leaves every step to the worker."""
    monkeypatch.setattr(imports, "IMPORT_BATCH", 2)
    monkeypatch.setattr(import_check, "CHECK_CHUNK", 2)
    app.config["JOB_INLINE_SECONDS"] = 0


def post(client, headers, payload):
    return client.post("/v1/directory/import", json=payload, headers=headers)


def grants(client, headers, source="portal") -> set[tuple[str, str, str]]:
    items = client.get(f"/v1/grants?source={source}&limit=500", headers=headers).get_json()["items"]
    return {(g["principal"], g["role"], g["resource"]) for g in items}


def test_a_large_import_is_a_job_applied_in_batches_with_what_rows_name_applied_first(app, client, portal,
                                                                                     batches_of_two, db):
    before = revision(app)
    # BASE lists a manager after the user who names it, a group after... and children before parents.
    payload = {**BASE, "principals": list(reversed(BASE["principals"]))}
    job_id = accepted(post(client, portal, payload))
    assert revision(app) == before, "nothing is applied before the worker runs the job"
    assert count(db, StagedImportRow) == 9
    assert jobs.Runner(app).run(job_id) == "done"
    job = client.get(f"/v1/jobs/{job_id}", headers=portal).get_json()
    result = job["result"]
    assert result["counts"] == {"principals": {"added": 3, "changed": 0, "removed": 0},
                                "resources": {"added": 3, "changed": 0, "removed": 0},
                                "grants": {"added": 3, "changed": 0, "removed": 0}}
    assert result["first_revision"] == before + 1 and result["revision"] > result["first_revision"]
    assert job["progress"] == {"done": 9, "total": 9}
    assert grants(client, portal) == {(g["principal"], g["role"], g["resource"]) for g in BASE["grants"]}
    assert client.get("/v1/principals/user:alice", headers=portal).get_json()["manager"] == "user:bob"
    assert client.get("/v1/principals/group:finance", headers=portal).get_json()["members"] == ["user:alice"]
    assert count(db, StagedImportRow) == 0, "the staged rows go once the import is done"
    imported = db.scalars(select(AuditEvent).where(AuditEvent.action == "directory.imported")).all()
    assert len(imported) == 1 and imported[0].after["job"] == job_id
    status = client.get("/v1/directory/status", headers=portal).get_json()
    assert [s["revision"] for s in status["sources"] if s["source"] == "portal"] == [result["revision"]]


def test_within_the_request_budget_a_large_import_answers_200_as_a_small_one_does(app, client, portal, monkeypatch):
    monkeypatch.setattr(imports, "IMPORT_BATCH", 2)
    body = post(client, portal, BASE).get_json()
    assert body["counts"]["grants"]["added"] == 3 and body["job"]["state"] == "done"
    assert body["diff"]["grants"]["added"][0] == {"principal": "user:alice", "role": "viewer", "resource": "document:d1"}


def test_an_invalid_row_anywhere_fails_the_job_before_anything_is_written(app, client, portal, batches_of_two, db):
    before, events_before, grants_before = revision(app), count(db, AuditEvent), count(db, Grant)
    payload = {**BASE, "grants": [*BASE["grants"], {"principal": "user:ghost", "role": "viewer",
                                                      "resource": "document:d1"}]}
    job_id = accepted(post(client, portal, payload))
    assert jobs.Runner(app).run(job_id) == "failed"
    job = client.get(f"/v1/jobs/{job_id}", headers=portal).get_json()
    assert job["result"]["error"]["code"] == "invalid_rows"
    assert job["result"]["error"]["errors"] == [{"section": "grants", "index": 3, "field": "principal",
                                                 "code": "unknown_reference",
                                                 "message": "principal user:ghost does not exist"}]
    assert revision(app) == before and count(db, Grant) == grants_before
    assert count(db, AuditEvent) == events_before + 2, "only the job's start and failure are recorded"
    assert count(db, StagedImportRow) == 0, "a failed import's staged rows are discarded"


def test_a_replace_removes_first_and_only_what_is_still_the_sources(app, client, portal, make_grant,
                                                                   batches_of_two, db):
    app.config["JOB_INLINE_SECONDS"] = 1
    assert post(client, portal, BASE).status_code in (200, 202)
    jobs.runner(app).run_pending(seconds=10)
    manual = make_grant("user:alice", "viewer", "project:p1")
    app.config["JOB_INLINE_SECONDS"] = 0
    kept = BASE["grants"][:1]
    added = [{"principal": "user:bob", "role": "member", "resource": "organization:acme"}]
    job_id = accepted(post(client, portal, {**BASE, "mode": "replace", "grants": kept + added}))
    runner = jobs.Runner(app)
    while client.get(f"/v1/jobs/{job_id}", headers=portal).get_json()["phase"] != "apply":
        assert runner.step(job_id) == "running"  # the check, a chunk a step
    runner.step(job_id)  # the first batch: the two removals, before anything else
    assert grants(client, portal) == {("user:alice", "viewer", "document:d1")}
    assert runner.run(job_id) == "done"
    assert grants(client, portal) == {("user:alice", "viewer", "document:d1"), ("user:bob", "member", "organization:acme")}
    assert db.get(Grant, manual) is not None, "another source's grant is not the replace's to remove"
    result = client.get(f"/v1/jobs/{job_id}", headers=portal).get_json()["result"]
    assert result["counts"]["grants"] == {"added": 1, "changed": 0, "removed": 2}


def test_an_import_killed_between_batches_resumes_and_applies_each_row_once(app, client, portal, batches_of_two,
                                                                            clock, db, monkeypatch):
    created_before = count(db, AuditEvent, AuditEvent.action == "grant.created")
    job_id = accepted(post(client, portal, BASE))
    crash_after(monkeypatch, "import", CHECK_STEPS + 3)  # validated, two batches, then dies in the third
    with pytest.raises(Crash):
        jobs.Runner(app).run(job_id)
    applied = revision(app)
    assert not grants(client, portal), "the crash came before the grants' batches"
    monkeypatch.undo()
    monkeypatch.setattr(imports, "IMPORT_BATCH", 2)
    monkeypatch.setattr(import_check, "CHECK_CHUNK", 2)
    assert resume(app, clock, job_id) == "done"
    assert grants(client, portal) == {(g["principal"], g["role"], g["resource"]) for g in BASE["grants"]}
    result = client.get(f"/v1/jobs/{job_id}", headers=portal).get_json()["result"]
    assert sum(result["counts"]["principals"].values()) == 3 and result["counts"]["grants"]["added"] == 3
    created = count(db, AuditEvent, AuditEvent.action == "grant.created") - created_before
    assert created == 3, "no grant was created twice"
    assert result["first_revision"] <= applied < result["revision"]


def test_the_check_a_chunk_at_a_time_finds_what_only_the_whole_import_shows(app, client, portal, batches_of_two,
                                                                             db):
    """Rows naming rows of another chunk are valid; a duplicate or a group cycle across chunks is not;
    errors come by section and row, and nothing is written."""
    before, grants_before = revision(app), count(db, Grant)
    payload = {**BASE,
               "principals": [*BASE["principals"],
                              {"id": "group:a", "members": ["group:b"]}, {"id": "group:b", "members": ["group:a"]}],
               "grants": [*BASE["grants"], BASE["grants"][0]]}
    job_id = accepted(post(client, portal, payload))
    runner = jobs.Runner(app)
    assert runner.step(job_id) == "running"
    assert client.get(f"/v1/jobs/{job_id}", headers=portal).get_json()["progress"] == {"done": 2, "total": 12}
    assert runner.run(job_id) == "failed"
    error = client.get(f"/v1/jobs/{job_id}", headers=portal).get_json()["result"]["error"]
    assert [(e["section"], e["index"], e["code"]) for e in error["errors"]] == [
        ("principals", 3, "group_cycle"), ("principals", 4, "group_cycle"), ("grants", 3, "duplicate_row")]
    assert error["errors"][2]["message"] == "the same grant appears twice (first at index 0)"
    assert error["invalid_rows"] == 3
    assert revision(app) == before and count(db, Grant) == grants_before
    assert count(db, StagedImportRow) == 0


def test_an_import_killed_while_being_checked_checks_again_from_the_start(app, client, portal, batches_of_two,
                                                                         clock, db, monkeypatch):
    created_before = count(db, AuditEvent, AuditEvent.action == "grant.created")
    job_id = accepted(post(client, portal, {**BASE, "mode": "replace"}))
    crash_after(monkeypatch, "import", CHECK_STEPS)  # dies in the last chunk, as it stages the removals
    with pytest.raises(Crash):
        jobs.Runner(app).run(job_id)
    assert count(db, StagedImportRow) == 9, "the dead step staged nothing"
    assert client.get(f"/v1/jobs/{job_id}", headers=portal).get_json()["phase"] == "validate"
    monkeypatch.undo()
    monkeypatch.setattr(imports, "IMPORT_BATCH", 2)
    monkeypatch.setattr(import_check, "CHECK_CHUNK", 2)
    assert resume(app, clock, job_id) == "done"
    assert grants(client, portal) == {(g["principal"], g["role"], g["resource"]) for g in BASE["grants"]}
    assert count(db, AuditEvent, AuditEvent.action == "grant.created") - created_before == 3


def test_a_second_large_import_of_the_same_source_is_refused_naming_the_running_one(client, portal, batches_of_two,
                                                                                    db):
    job_id = accepted(post(client, portal, BASE))
    second = post(client, portal, BASE)
    assert second.status_code == 409
    assert second.get_json()["error"]["code"] == "job_running"
    assert second.get_json()["error"]["job"]["id"] == job_id
    assert accepted(post(client, portal, {**BASE, "source": "hr"})) != job_id, "another source may import at once"


def test_each_caller_lists_and_opens_only_the_jobs_it_follows(app, client, portal, lead, admin, batches_of_two,
                                                               token_for):
    """The portal its imports, a security lead (or an auditor) the campaigns' work, an admin both; the
    job page agrees with the API."""
    import_id = accepted(post(client, portal, BASE))
    assert jobs.Runner(app).run(import_id) == "done"
    assert [j["id"] for j in client.get("/v1/jobs", headers=portal).get_json()["items"]] == [import_id]
    assert client.get("/v1/jobs", headers=lead).get_json()["items"] == [], "no import among a lead's jobs"
    assert [j["id"] for j in client.get("/v1/jobs", headers=admin).get_json()["items"]] == [import_id]
    assert client.get(f"/v1/jobs/{import_id}", headers=lead).status_code == 403
    assert client.get("/v1/jobs?kind=import", headers=lead).status_code == 403
    assert client.get("/v1/jobs", headers=token_for("user:nobody")).status_code == 403
    for headers, status in ((lead, 403), (admin, 200)):
        client.set_cookie("accessreview_session", headers["Authorization"].split()[1], path="/ui")
        assert client.get(f"/ui/jobs/{import_id}").status_code == status
