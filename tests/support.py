"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from accessreview.audit import WriteContext, lock_state
from accessreview.directory import service
from accessreview.models import AuditEvent


def declarations(app):
    return app.extensions["authz"].policy.declarations


class write:
    """``with write(app) as (session, ctx):`` — a committed unit of work as the test's setup actor."""

    def __init__(self, app, actor: str = "test:setup") -> None:
        self.app = app
        self.actor = actor

    def __enter__(self):
        self.session = self.app.extensions["db"].session()
        lock_state(self.session)
        return self.session, WriteContext(self.actor, self.app.config["CLOCK"].now(), "test")

    def __exit__(self, exc_type, *_):
        if exc_type is None:
            self.session.commit()
        else:
            self.session.rollback()
        self.session.close()
        self.app.extensions["authz"].refresh_if_loaded()


def revision(app) -> int:
    with write(app) as (session, _ctx):
        return service.current_revision(session)


def audit_count(app) -> int:
    with write(app) as (session, _ctx):
        return session.scalar(select(func.count()).select_from(AuditEvent))
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def copy_policies(target: Path) -> Path:
    """The project's policy files (not their tests) copied to ``target``, for a test to change."""
    shutil.copytree(PROJECT_ROOT / "policies", target, ignore=shutil.ignore_patterns("tests", "__pycache__"))
    return target


def pages(client, url: str, headers: dict[str, str]) -> list[list]:
    """The items of each page of a cursor-paginated list, page by page, following next_cursor to the end."""
    found, cursor = [], None
    while True:
        page = client.get(url + (f"&cursor={cursor}" if cursor else ""), headers=headers).get_json()
        found.append(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return found


def every_page(client, url: str, headers: dict[str, str]) -> list:
    """The items of every page of a cursor-paginated list, following next_cursor to the end."""
    return [item for page in pages(client, url, headers) for item in page]


def send_outbox(app, clock=None) -> dict[str, int]:
    """What the worker does after commit: send every due message of the outbox (due by ``clock``, the
    app's by default)."""
    from accessreview.outbox import deliver_due

    return deliver_due(app.extensions["db"].sessionmaker, app.config, clock or app.config["CLOCK"])


def wait_until_someone_waits_on_a_lock(database_url: str, what: str, seconds: float = 10) -> None:
    """Return once a session of this PostgreSQL database waits on a lock; fail naming ``what`` never did."""
    watcher = create_engine(database_url)
    try:
        with watcher.connect() as connection:
            deadline = time.monotonic() + seconds
            while not connection.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                              "AND datname = current_database()")).scalar():
                if time.monotonic() > deadline:
                    pytest.fail(f"{what} never waited on a lock")
                time.sleep(0.05)
    finally:
        watcher.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_check_server(database_url: str, secret_key: str, instance_dir: Path, ready=None, **settings: str):
    """The check server (``gunicorn_checks.conf.py``) on a free port, as production starts it; returns
    ``(port, process)`` once ``/healthz`` answers and ``ready(process)`` (if given) holds. ``settings``
    are extra ``ACCESSREVIEW_*`` variables, named without the prefix."""
    port = free_port()
    env = {**os.environ, "ACCESSREVIEW_DATABASE_URL": database_url, "ACCESSREVIEW_SECRET_KEY": secret_key,
           "ACCESSREVIEW_INSTANCE_DIR": str(instance_dir), "ACCESSREVIEW_LOG_LEVEL": "WARNING",
           "ACCESSREVIEW_CHECK_BIND": f"127.0.0.1:{port}", "ACCESSREVIEW_REFRESH_INTERVAL": "0.2",
           **{f"ACCESSREVIEW_{name}": value for name, value in settings.items()}}
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", "gunicorn_checks.conf.py", "checks:app"],
                               cwd=PROJECT_ROOT, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            if ready is None or ready(process):
                return port, process
        except OSError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise AssertionError("the check server did not start")
        time.sleep(0.1)


def stop_server(process, seconds: float = 30) -> None:
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=seconds)
