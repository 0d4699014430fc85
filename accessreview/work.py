"""The unit of work: the one way a request, a command, a scheduled pass or a job step writes.

The first statement locks the directory's state row (writers queue there, and the audit chain
cannot fork); everything done inside is committed together, or rolled back on any error; after the
commit this process's authorization snapshot moves on at once (the others follow within their
refresh interval). No network I/O belongs inside: mail goes through the outbox.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from sqlalchemy.orm import Session

from .audit import WriteContext, lock_state


@contextmanager
def unit_of_work(session: Session, ctx: WriteContext, engine=None) -> Iterator[tuple[Session, WriteContext]]:
    try:
        lock_state(session)
        yield session, ctx
        session.commit()
    except BaseException:
        session.rollback()
        raise
    if engine is not None:
        engine.refresh_if_loaded()


@contextmanager
def own_unit_of_work(sessions: Callable[[], Session], ctx: WriteContext,
                     engine=None) -> Iterator[tuple[Session, WriteContext]]:
    """:func:`unit_of_work` on a session of its own, closed afterwards (commands, jobs, passes)."""
    session = sessions()
    try:
        with unit_of_work(session, ctx, engine) as unit:
            yield unit
    finally:
        session.close()
