"""How gunicorn closes a connection after its answer: at once when the client has nothing more to say.

gunicorn 26 and later close every connection gracefully (RFC 9112, section 9.6): a half-close, then
reading until the client closes its side, for up to 2 s. That guards against one thing: data from
the client still unread when the socket closes, which makes the kernel answer with a reset that can
wipe the response from the client's buffers. But a sync worker answers one connection at a time, so
for every request it also waits for the client to read the answer and close, on a loaded machine
the time it takes the client to be scheduled, and up to 2 s for a client that keeps its end open.
Side by side on the benchmark (bench/authorize.py's directory, 8 connections): 30% more single
checks a second and 17% more health probes with the graceful close kept only where it is needed.

:func:`install` keeps the graceful close where it guards something, as nginx's default
``lingering_close on`` does: when the client has sent bytes the answer did not read (a body the
view ignored, a pipelined request), and for TLS connections, whose bytes are records rather than
requests. Otherwise the socket is closed at once, which sends a FIN, not a reset. The portal's
checks are read whole, so they take the quick way.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any, Callable


def close_lingering_only_when_needed(graceful: Callable[..., None]) -> Callable[..., None]:
    """A ``close_graceful`` that lingers (through ``graceful``) only when unread bytes are waiting."""

    def close(sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        if isinstance(sock, ssl.SSLSocket):  # bytes on the wire are TLS records, not unread requests
            graceful(sock, *args, **kwargs)
            return
        try:
            sock.setblocking(False)
            pending = sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            pending = b""  # nothing has arrived that the answer did not read
        except OSError:
            pending = None  # a broken connection: let gunicorn's own close deal with it
        if pending == b"":  # nothing unread, or the client has closed already
            sock.close()
            return
        try:
            sock.setblocking(True)
        except OSError:
            pass
        graceful(sock, *args, **kwargs)

    close.lingers_through = graceful  # type: ignore[attr-defined]
    return close


def install() -> None:
    """Replace gunicorn's graceful close in its workers (a no-op before gunicorn 26, which has none)."""
    from gunicorn import util

    current = getattr(util, "close_graceful", None)
    if current is not None and not hasattr(current, "lingers_through"):
        util.close_graceful = close_lingering_only_when_needed(current)


# -- the server hooks both gunicorn configurations share -------------------------------------------

def preload(app) -> None:
    """In the master, before forking: load the directory index once; the workers share it (copy on
    write) and catch up from the change notes instead of each loading the whole directory."""
    app.extensions["authz"].preload()
    app.extensions["db"].engine.dispose()


def after_fork(app) -> None:
    """In a new worker: drop the master's database connections (never shared across a fork), and
    start catching up with the directory in the background at once (checks answer from the snapshot
    the master loaded until then, instead of waiting for the catch-up)."""
    app.extensions["db"].engine.dispose(close=False)
    app.extensions["authz"].snapshot()


def worker_exited(pid: int, app=None) -> None:
    """In the master, when a worker has exited: its metrics are folded in, and what it spooled and
    did not write (killed, or timed out) is written to the decision log now, not at the next sweep."""
    import logging
    import os

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
    if app is None:
        return
    try:
        app.extensions["decisions"].recover()
    except Exception:  # the master must go on; every worker's writer sweeps the spool as well
        logging.getLogger(__name__).exception("could not write the decisions spooled by worker %d", pid)
    finally:
        app.extensions["db"].engine.dispose()  # no connection of the master's is inherited by a fork
