"""kill -9 of a real worker process in the middle of a large launch, then another one finishes it:
every grant becomes one item, the campaign opens once. On PostgreSQL the launch is over 70,000
grants, which no single statement may carry as parameters (PostgreSQL allows 65,535)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import func, insert, select, update

from accessreview.audit import WriteContext
from accessreview.campaigns import definitions
from accessreview.campaigns.launch import LAUNCH_CHUNK, start_launch
from accessreview.campaigns.schemas import DefinitionBody
from accessreview.models import Campaign, DirectoryState, Grant, Job, Principal, Resource, ReviewItem, SourceSync
from support import PROJECT_ROOT, write

NOW = datetime.now(timezone.utc)  # the worker processes read the real clock


def bulk_directory(app, grants: int) -> None:
    """``grants`` document viewer grants of 1,000 users on one project's documents, inserted in bulk."""
    stamp = {"created_at": NOW, "updated_at": NOW}
    users = [{"key": f"user:bulk{i}", "kind": "user", "name": f"Bulk {i}", "status": "active", **stamp}
             for i in range(1000)]
    documents = grants // 1000 + 1
    resources = [{"key": "organization:bulk", "type": "organization", "parent_key": None, "owner_key": "user:bulk0"},
                 {"key": "project:bulk", "type": "project", "parent_key": "organization:bulk", "owner_key": None}]
    resources += [{"key": f"document:bulk{d}", "type": "document", "parent_key": "project:bulk", "owner_key": None}
                  for d in range(documents)]  # every row names the same columns: executemany takes the first's
    rows = [{"principal_key": f"user:bulk{n % 1000}", "role": "viewer", "resource_key": f"document:bulk{n // 1000}",
             "granted_by": "test", "granted_at": NOW - timedelta(days=30), "source": "portal", "expires_at": None}
            for n in range(grants)]
    engine = app.extensions["db"].engine
    with engine.begin() as connection:
        connection.execute(insert(Principal), users)
        for start in range(0, len(resources), 5000):
            connection.execute(insert(Resource), [{**r, "attributes": {}, **stamp}
                                                  for r in resources[start:start + 5000]])
        for start in range(0, len(rows), 5000):
            connection.execute(insert(Grant), rows[start:start + 5000])
        connection.execute(update(DirectoryState).values(revision=DirectoryState.revision + 1))
        connection.execute(insert(SourceSync), [{"source": "portal", "last_sync_at": NOW, "mode": "merge",
                                                 "last_revision": 1}])


def niceness(pid: int) -> int:
    """A process's nice value (the 19th field of /proc/PID/stat; its name, in brackets, may hold spaces)."""
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rpartition(")")[2].split()[16])


def worker(env: dict, job_id: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "accessreview.cli", "jobs", "run", str(job_id)], env=env,
                            cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # as a supervisor starts a worker


def test_a_launch_killed_mid_way_is_finished_by_the_next_worker(app, app_config, database_url, tmp_path, db):
    size = 70_000 if database_url.startswith("postgresql") else 3 * LAUNCH_CHUNK
    bulk_directory(app, size)
    with write(app) as (session, ctx):
        state = definitions.create_definition(session, WriteContext("user:lena", NOW), DefinitionBody.model_validate({
            "name": "Bulk", "scope": {"subtrees": ["organization:bulk"]}, "reviewer": {"rule": "resource_owner"},
            "fallback_reviewer": "user:bulk1", "duration_days": 14, "on_no_response": "keep"}),
            set(app.extensions["authz"].policy.declarations.resource_types))
        _, job = start_launch(session, WriteContext("user:lena", NOW), definitions.get_definition(session, state["id"]),
                              "bulk", max_sync_age_hours=48, stale_action="refuse")
    env = {**os.environ, "ACCESSREVIEW_DATABASE_URL": database_url, "ACCESSREVIEW_SECRET_KEY": app_config["SECRET_KEY"],
           "ACCESSREVIEW_INSTANCE_DIR": str(tmp_path), "ACCESSREVIEW_REPORTS_DIR": app_config["REPORTS_DIR"],
           "ACCESSREVIEW_LOG_LEVEL": "WARNING", "ACCESSREVIEW_JOB_LEASE_SECONDS": "2",
           "ACCESSREVIEW_REFRESH_INTERVAL": "0"}
    first = worker(env, job.id)
    deadline = time.monotonic() + 300
    while (db.scalar(select(Job.progress_done).where(Job.id == job.id)) or 0) < LAUNCH_CHUNK:
        db.rollback()
        assert first.poll() is None and time.monotonic() < deadline, first.stdout.read()
        time.sleep(0.05)
    assert niceness(first.pid) == niceness(os.getpid()) + 10, "a job's runner yields the cores to the checks"
    if os.path.exists(f"/proc/{first.pid}/autogroup"):  # its own session: its scheduling group yields too
        assert Path(f"/proc/{first.pid}/autogroup").read_text().split()[-1] == "10"
    first.send_signal(signal.SIGKILL)
    first.communicate()  # reaps it and closes its pipe
    db.rollback()
    written = db.scalar(select(func.count()).select_from(ReviewItem))
    assert db.scalar(select(Campaign.status)) == "launching" and 0 < written < size
    assert written % LAUNCH_CHUNK == 0, "only whole chunks were committed"
    time.sleep(2.5)  # the dead worker's lease runs out
    second = worker(env, job.id)
    output, _ = second.communicate(timeout=600)
    assert second.returncode == 0, output
    db.rollback()
    campaign = db.scalar(select(Campaign))
    assert campaign.status == "open" and campaign.population_count == size
    assert db.scalar(select(func.count()).select_from(ReviewItem)) == size
    assert db.scalar(select(func.count(func.distinct(ReviewItem.grant_id)))) == size, "each grant once"
