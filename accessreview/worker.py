"""The worker process (`accessreview worker`): runs durable jobs step by step, and sends the outbox.

Mail has a thread of its own, so a mail server that never answers delays mail and nothing else: job
steps go on beside it. Several workers (on one host or several, against one PostgreSQL) share the
work: a job step and a message are each taken by one of them at a time.
"""

from __future__ import annotations

import logging
import threading

from flask import Flask

from . import outbox
from .jobs import runner

log = logging.getLogger(__name__)


def run_jobs(app: Flask, stop: threading.Event, *, once: bool = False) -> int:
    steps = 0
    jobs = runner(app)
    while not stop.is_set():
        try:
            ran = jobs.run_pending(seconds=5)
        except Exception:  # the database is away, or busy past its timeout: log it, try again at the next poll
            log.exception("running jobs failed")
            ran = 0
        steps += ran
        if not ran:
            if once:
                break
            stop.wait(app.config["WORKER_POLL"])
    return steps


def send_mail(app: Flask, stop: threading.Event, *, once: bool = False) -> dict[str, int]:
    total: dict[str, int] = {}
    sessions = app.extensions["db"].sessionmaker
    while not stop.is_set():
        try:
            sent = outbox.deliver_due(sessions, app.config, app.config["CLOCK"])
        except Exception:  # the database is away: log it, and try again at the next poll
            log.exception("outbox delivery failed")
            sent = {}
        for state, count in sent.items():
            total[state] = total.get(state, 0) + count
        if not sent:
            if once:
                break
            stop.wait(app.config["WORKER_POLL"])
    return total


def run(app: Flask, stop: threading.Event, *, once: bool = False) -> dict[str, object]:
    """Run until ``stop`` is set (or, with ``once``, until no job and no due mail is left)."""
    outcome: dict[str, object] = {}
    mail = threading.Thread(target=lambda: outcome.update(mail=send_mail(app, stop, once=once)),
                            name="outbox", daemon=True)
    mail.start()
    outcome["job_steps"] = run_jobs(app, stop, once=once)
    if once:
        mail.join()
    else:
        stop.set()
        mail.join(timeout=5)
    return outcome
