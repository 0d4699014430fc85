"""Closing a connection after its answer: at once when everything the client sent was read."""

from __future__ import annotations

import runpy
import socket
import ssl
import sys
import threading
import time
from types import SimpleNamespace

import pytest
from gunicorn import util

from accessreview.serving import close_lingering_only_when_needed
from support import PROJECT_ROOT

# gunicorn before 26 has no graceful close: it closes at once itself, and there is nothing to install.
needs_graceful_close = pytest.mark.skipif(not hasattr(util, "close_graceful"), reason="gunicorn < 26")


def _graceful_spy():
    """A stand-in for gunicorn's graceful close that records what was left unread when it was called."""
    lingered = []

    def graceful(sock, *args, **kwargs):
        try:
            lingered.append(sock.recv(4096, socket.MSG_DONTWAIT))
        except (BlockingIOError, ValueError):  # ValueError: TLS sockets take no flags
            lingered.append(b"")
        sock.close()

    return graceful, lingered


def test_a_client_that_sent_nothing_more_is_closed_at_once():
    server, client = socket.socketpair()
    client.sendall(b"request")
    assert server.recv(7) == b"request"  # the answer read the whole request
    server.sendall(b"answer")
    graceful, lingered = _graceful_spy()
    close_lingering_only_when_needed(graceful)(server)
    assert lingered == [] and server.fileno() == -1
    assert client.recv(16) == b"answer" and client.recv(16) == b""  # the answer, then an orderly close
    client.close()


def test_a_client_that_closed_first_is_closed_at_once():
    server, client = socket.socketpair()
    client.close()
    graceful, lingered = _graceful_spy()
    close_lingering_only_when_needed(graceful)(server)
    assert lingered == [] and server.fileno() == -1


def test_unread_bytes_get_the_graceful_close():
    server, client = socket.socketpair()
    client.sendall(b"a body the view never read")
    graceful, lingered = _graceful_spy()
    close_lingering_only_when_needed(graceful)(server)
    assert lingered == [b"a body the view never read"]
    client.close()


def test_a_tls_connection_gets_the_graceful_close():
    """Under TLS a peek would see records, not requests (and SSL sockets refuse it): left to gunicorn."""
    server, client = socket.socketpair()
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).wrap_socket(server, server_side=True, do_handshake_on_connect=False)
    graceful, lingered = _graceful_spy()
    close_lingering_only_when_needed(graceful)(tls)
    assert lingered == [b""]
    client.close()


@needs_graceful_close
def test_gunicorns_own_close_still_drains_what_was_unread():
    """With gunicorn's close behind it, unread bytes keep the socket open until the client closes."""
    server, client = socket.socketpair()
    client.sendall(b"pipelined request")
    closing = threading.Thread(target=close_lingering_only_when_needed(util.close_graceful), args=(server,))
    closing.start()
    assert client.recv(16) == b""  # the half-close: the server has no more to say
    time.sleep(0.1)
    assert closing.is_alive(), "closed before the client did: the kernel could answer with a reset"
    client.close()
    closing.join(timeout=5)
    assert not closing.is_alive()


@needs_graceful_close
def test_the_gunicorn_settings_install_it_in_each_worker(monkeypatch):
    original = util.close_graceful
    monkeypatch.setattr(util, "close_graceful", original)  # restored after the test
    engine = SimpleNamespace(dispose=lambda close=True: None)
    caught_up = []
    monkeypatch.setitem(sys.modules, "wsgi", SimpleNamespace(app=SimpleNamespace(
        extensions={"db": SimpleNamespace(engine=engine),
                    "authz": SimpleNamespace(snapshot=lambda: caught_up.append(True))})))
    post_fork = runpy.run_path(str(PROJECT_ROOT / "gunicorn.conf.py"))["post_fork"]
    post_fork(None, None)
    assert util.close_graceful.lingers_through is original and caught_up == [True], "catching up starts at fork"
    post_fork(None, None)  # a second call does not wrap it twice
    assert util.close_graceful.lingers_through is original
