"""Concurrent writers on PostgreSQL never fork the audit chain nor lose a revision."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from accessreview.audit import verify_chain
from accessreview.models import AuditEvent
from support import revision

pytestmark = pytest.mark.postgres


def test_threads_writing_at_once_keep_one_chain(app, client, portal, db):
    def writer(n: int) -> list[int]:
        revisions = []
        for i in range(10):
            response = client.put(f"/v1/principals/user:t{n}-{i}", json={"name": f"T{n} {i}"}, headers=portal)
            assert response.status_code == 201, response.get_json()
            revisions.append(response.get_json()["revision"])
        return revisions

    start = revision(app)
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = [r for rs in pool.map(writer, range(6)) for r in rs]
    assert sorted(results) == list(range(start + 1, start + 61)), "every write got its own revision"
    report = verify_chain(db)
    assert report.ok, report.problem
    assert db.scalar(select(func.count()).select_from(AuditEvent)) == report.events


def test_processes_writing_at_once_keep_one_chain(app, database_url, tmp_path, db):
    script = textwrap.dedent("""
        import sys
        from accessreview import create_app
        from accessreview.audit import WriteContext, lock_state
        from accessreview.directory import service
        from accessreview.directory.schemas import PrincipalBody
        app = create_app({"DATABASE_URL": sys.argv[1], "SECRET_KEY": "x" * 40, "INSTANCE_DIR": sys.argv[3],
                          "JSON_LOGS": False, "LOG_LEVEL": "WARNING"})
        declarations = app.extensions["authz"].policy.declarations
        for i in range(25):
            session = app.extensions["db"].session()
            lock_state(session)
            ctx = WriteContext(f"process:{sys.argv[2]}", app.config["CLOCK"].now())
            service.put_principal(session, ctx, declarations, f"user:p{sys.argv[2]}-{i}", PrincipalBody(name="x"))
            session.commit()
            session.close()
    """)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    processes = [subprocess.Popen([sys.executable, "-c", script, database_url, str(n), str(tmp_path)], env=env)
                 for n in range(4)]
    assert [p.wait(timeout=120) for p in processes] == [0, 0, 0, 0]
    report = verify_chain(db)
    assert report.ok, report.problem
    assert revision(app) >= 100
