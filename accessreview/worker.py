"""The worker process (`accessreview worker`): runs durable jobs step by step, and sends the outbox.

Mail has a thread of its own, so a mail server that never answers delays mail and nothing else: job
steps go on beside it. Several workers (on one host or several, against one PostgreSQL) share the
work: a job step and a message are each taken by one of them at a time.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Callable

from flask import Flask

from . import outbox
from .jobs import run_in_background, runner

log = logging.getLogger(__name__)


def _poll(app: Flask, stop: threading.Event, once: bool, what: str, work: Callable[[], Counter[str]]) -> Counter[str]:
    """Do ``work`` until ``stop`` is set, waiting WORKER_POLL between rounds that found nothing (with
    ``once``, stop at the first such round). A failure is logged and tried again at the next poll:
    the database may be away, or busy past its timeout."""
    total: Counter[str] = Counter()
    while not stop.is_set():
        try:
            done = work()
        except Exception:
            log.exception("%s failed", what)
            done = Counter()
        total.update(done)
        if not done:
            if once:
                break
            stop.wait(app.config["WORKER_POLL"])
    return total


def run_jobs(app: Flask, stop: threading.Event, *, once: bool = False) -> int:
    jobs = runner(app)  # unary + drops a zero count, so a round with no step counts as empty
    return _poll(app, stop, once, "running jobs", lambda: +Counter(steps=jobs.run_pending(seconds=5)))["steps"]


def send_mail(app: Flask, stop: threading.Event, *, once: bool = False) -> dict[str, int]:
    sessions = app.extensions["db"].sessionmaker
    return dict(_poll(app, stop, once, "outbox delivery",
                      lambda: Counter(outbox.deliver_due(sessions, app.config, app.config["CLOCK"]))))


def run(app: Flask, stop: threading.Event, *, once: bool = False) -> dict[str, object]:
    """Run until ``stop`` is set (or, with ``once``, until no job and no due mail is left)."""
    run_in_background(app)
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
