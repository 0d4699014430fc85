"""The scheduler process (`accessreview scheduler`): APScheduler with its jobs in the service's database.

It runs in one process of its own, never in the web workers. Its jobs only look for work that is
due — launches, reminders and escalations, closes — and that work is idempotent, so a second
scheduler against the same PostgreSQL, a retried tick or a tick missed during downtime never does
anything twice.
"""

from __future__ import annotations

import logging
import threading

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask
from sqlalchemy.pool import NullPool

from . import worker
from .campaigns import scheduled
from .db import make_engine

log = logging.getLogger(__name__)
JOBS = ("launch_due", "remind_and_escalate", "close_due", "follow_up_due")
_app: Flask | None = None  # the scheduler process's app; jobs are stored by reference, not pickled with it


def run_job(name: str) -> object:
    """What a stored job calls: one pass of ``name``, with its own sessions and the app's clock."""
    app = _app
    assert app is not None, "the scheduler's app is not set"
    sessions = app.extensions["db"].sessionmaker
    clock, config = app.config["CLOCK"], app.config
    with app.app_context():
        if name == "launch_due":
            result = scheduled.launch_due(sessions, clock, config)
        elif name == "remind_and_escalate":
            result = scheduled.remind_and_escalate(sessions, clock, config)
        elif name == "close_due":
            result = scheduled.close_due(sessions, clock)
        elif name == "follow_up_due":
            result = scheduled.follow_up_due(sessions, clock)
        else:
            raise ValueError(f"no job {name!r}")
    if result:
        log.info("%s: %s", name, result)
    return result


def run_once(app: Flask) -> dict[str, object]:
    """Every pass once, then every job it started and every message due, to the end (for cron)."""
    global _app
    _app = app
    outcome = {name: run_job(name) for name in JOBS}
    with app.app_context():
        outcome["worker"] = worker.run(app, threading.Event(), once=True)
    return outcome


def build(app: Flask, scheduler_class: type[BaseScheduler] = BlockingScheduler) -> BaseScheduler:
    global _app
    _app = app
    # Its own engine (APScheduler disposes its job store's engine when it shuts down), without a pool:
    # the store is read once a tick, and no connection is left behind for a shutdown to orphan.
    engine = make_engine(app.config["DATABASE_URL"], poolclass=NullPool)
    store = SQLAlchemyJobStore(engine=engine, tablename="apscheduler_jobs")
    scheduler = scheduler_class(jobstores={"default": store}, timezone="UTC", job_defaults={
        "coalesce": True, "max_instances": 1, "misfire_grace_time": None})
    for name in JOBS:
        scheduler.add_job("accessreview.scheduler:run_job", "interval", args=[name], id=name, name=name,
                          seconds=app.config["SCHEDULER_TICK"], replace_existing=True)
    return scheduler
