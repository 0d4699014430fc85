"""Fixtures: a migrated database per test (SQLite by default, PostgreSQL when
``ACCESSREVIEW_TEST_DATABASE_URL`` says so), the app, a client, a movable clock, and token factories."""

from __future__ import annotations

import email
import email.policy
import os
import shutil
import socket
import sqlite3
from contextlib import closing
from datetime import datetime, timezone
from typing import Callable

import pytest
from sqlalchemy import create_engine, inspect, text

from accessreview import create_app
from accessreview.audit import GENESIS_HASH
from accessreview.authz.engine import SERVICE_RESOURCE
from accessreview.clock import FrozenClock
from accessreview.directory import service
from accessreview.directory.schemas import GrantBody, PrincipalBody, ResourceBody
from accessreview.migrate import upgrade
from accessreview.models import Grant, Principal
from accessreview.tokens import create_token
from contract import ContractClient
from support import audit_count, declarations, revision, write

TEST_DATABASE_URL = os.environ.get("ACCESSREVIEW_TEST_DATABASE_URL")
SECRET_KEY = "test-secret-key-that-is-long-enough-0123456789"


def pytest_collection_modifyitems(config, items):
    if TEST_DATABASE_URL and TEST_DATABASE_URL.startswith("postgresql"):
        return
    skip = pytest.mark.skip(reason="needs ACCESSREVIEW_TEST_DATABASE_URL pointing at PostgreSQL")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory) -> str:
    """Run the migrations once per test session."""
    if TEST_DATABASE_URL:
        engine = create_engine(TEST_DATABASE_URL)
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        upgrade(TEST_DATABASE_URL)
        return TEST_DATABASE_URL
    template = tmp_path_factory.mktemp("template") / "template.sqlite3"
    upgrade(f"sqlite:///{template}")
    with sqlite3.connect(template) as connection:  # fold the WAL into the file so a copy is complete
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return str(template)


@pytest.fixture
def database_url(migrated_database, tmp_path) -> str:
    """A clean, migrated database for one test."""
    if TEST_DATABASE_URL:
        _reset_postgres(TEST_DATABASE_URL)
        return TEST_DATABASE_URL
    copy = tmp_path / "test.sqlite3"
    shutil.copyfile(migrated_database, copy)
    return f"sqlite:///{copy}"


def _reset_postgres(url: str) -> None:
    engine = create_engine(url)
    tables = [t for t in inspect(engine).get_table_names() if t != "alembic_version"]
    with engine.begin() as connection:
        # Replica mode keeps the audit trail's append-only triggers from refusing the clean-up.
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        connection.execute(text("INSERT INTO directory_state (id, revision, audit_seq, audit_head) "
                                "VALUES (1, 0, 0, :genesis)"), {"genesis": GENESIS_HASH})
    engine.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc))


@pytest.fixture
def app_config(database_url, clock, tmp_path) -> dict:
    reports = tmp_path / "reports"
    reports.mkdir()
    return {
        "DATABASE_URL": database_url,
        "CLOCK": clock,
        "INSTANCE_DIR": str(tmp_path / "instance"),
        "REPORTS_DIR": str(reports),
        "SECRET_KEY": SECRET_KEY,
        "JSON_LOGS": False,
        "LOG_LEVEL": "WARNING",
        "REFRESH_INTERVAL": 0,  # no background refresher: each test's own writes move the snapshot
        # No background writer either: tests write the decision log themselves (the auditors'
        # endpoint does), and on PostgreSQL, where tests share one database, a writer thread left
        # by one test's app would write its decisions into a later test's.
        "DECISION_FLUSH_INTERVAL": 0,
        # A request runs the job it starts to its end, however busy the machine: the tests of work
        # left to the worker (202) say JOB_INLINE_SECONDS = 0 themselves.
        "JOB_INLINE_SECONDS": 60,
        # The worker and the CLI's job runs lower their process's priority; not the test process's.
        "BACKGROUND_NICE": 0,
    }


@pytest.fixture
def app(app_config):
    app = create_app(app_config)
    app.test_client_class = ContractClient  # every answer a test receives is checked against /openapi.json
    with app.app_context():
        with write(app) as (session, ctx):
            service.put_resource(session, ctx, declarations(app), SERVICE_RESOURCE,
                                 ResourceBody(name="accessreview"))
    yield app
    app.extensions["db"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def db(app):
    """A session on the app's database, for looking at rows directly."""
    session = app.extensions["db"].session()
    yield session
    session.rollback()
    session.close()


@pytest.fixture
def make_principal(app) -> Callable[..., str]:
    def make(key: str, **fields) -> str:
        with write(app) as (session, ctx):
            service.put_principal(session, ctx, declarations(app), key,
                                  PrincipalBody.model_validate(fields))
        return key

    return make


@pytest.fixture
def make_grant(app) -> Callable[..., int]:
    def make(principal: str, role: str, resource: str, **fields) -> int:
        with write(app) as (session, ctx):
            grant, _ = service.create_grant(session, ctx, declarations(app), GrantBody(
                principal=principal, role=role, resource=resource, **fields))
        return grant["id"]

    return make


@pytest.fixture
def token_for(app, make_principal, make_grant) -> Callable[..., dict[str, str]]:
    """Headers with a bearer token for ``principal``, holding ``role`` on system:accessreview if given."""

    def make(principal: str, role: str | None = None) -> dict[str, str]:
        with write(app) as (session, _ctx):
            exists = session.get(Principal, principal) is not None
        if not exists:
            make_principal(principal, name=principal.split(":", 1)[1])
        if role:
            with write(app) as (session, _ctx):
                held = session.query(Grant).filter_by(principal_key=principal, role=role,
                                                      resource_key=SERVICE_RESOURCE).first()
            if held is None:
                make_grant(principal, role, SERVICE_RESOURCE)
        with write(app) as (session, ctx):
            token, _ = create_token(session, ctx, SECRET_KEY, principal)
        return {"Authorization": f"Bearer {token}"}

    return make


@pytest.fixture
def admin(token_for) -> dict[str, str]:
    return token_for("user:ada", "admin")


@pytest.fixture
def portal(token_for) -> dict[str, str]:
    return token_for("service:portal", "portal_client")


@pytest.fixture
def lead(token_for) -> dict[str, str]:
    """A security lead."""
    return token_for("user:lena", "security_lead")


@pytest.fixture
def auditor(token_for) -> dict[str, str]:
    return token_for("user:audrey", "auditor")


@pytest.fixture
def smtp():
    """A real SMTP server on loopback that keeps what it receives."""
    from aiosmtpd.controller import Controller

    class Keep:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            self.messages.append((envelope.rcpt_tos, f"{message['subject']}\n{message.get_content()}"))
            return "250 OK"

    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    handler = Keep()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


@pytest.fixture
def unchanged(app):
    """Assert that a block wrote nothing: same revision, same number of audit events."""

    class Unchanged:
        def __enter__(self):
            self.before = (revision(app), audit_count(app))
            return self

        def __exit__(self, exc_type, *_):
            if exc_type is None:
                assert (revision(app), audit_count(app)) == self.before, "something was written"

    return Unchanged


