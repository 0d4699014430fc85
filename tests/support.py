"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import func, select

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
