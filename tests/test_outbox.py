"""The outbox: mail is recorded with its change and sent after commit, each message once across a
crash, and a mail server that never answers (or drips its answer) delays mail and nothing else."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import closing

import pytest
from sqlalchemy import select

from accessreview import notify, outbox
from accessreview.models import OutboxMessage
from accessreview.scheduler import run_job
from support import send_outbox
from test_campaigns import DIRECTORY, definition


class Crash(BaseException):
    """kill -9 between two messages."""


@pytest.fixture
def directory(client, portal):
    assert client.post("/v1/directory/import", json=DIRECTORY, headers=portal).status_code == 200


@pytest.fixture
def reminders_due(app, client, lead, directory, clock):
    """Open campaigns whose reviewers are owed a reminder today (queued by the scheduler's pass)."""
    import accessreview.scheduler as scheduler

    for name in ("First", "Second", "Third"):
        definition_id = definition(client, lead, name=name, duration_days=3, reminders={"days_before_due": [3]})
        assert client.post(f"/v1/campaign-definitions/{definition_id}/launch", headers=lead).status_code == 201
    scheduler._app = app
    assert run_job("remind_and_escalate")["reminded"] == 6  # owen and lena, in each of three campaigns


class Silent:
    """A mail server that accepts connections and never says a word (or, with ``drip``, one byte every
    ``drip`` seconds, forever)."""

    def __init__(self, drip: float | None = None) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.drip, self.connections, self.stopped = drip, [], threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(connection)
            if self.drip:
                threading.Thread(target=self._dribble, args=(connection,), daemon=True).start()

    def _dribble(self, connection) -> None:
        for byte in b"220-" + b"x" * 10_000:
            if self.stopped.wait(self.drip):
                return
            try:
                connection.send(bytes([byte]))
            except OSError:
                return

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()
        for connection in self.connections:
            connection.close()


@pytest.mark.parametrize("drip", [None, 0.5], ids=["silent", "dripping"])
def test_a_mail_server_that_never_answers_delays_mail_and_nothing_else(app, client, portal, reminders_due, smtp,
                                                                       clock, db, monkeypatch, drip):
    monkeypatch.setattr(notify, "SEND_DEADLINE", 2)
    monkeypatch.setattr(notify, "CONNECT_TIMEOUT", 1)
    server = Silent(drip)
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=server.port)
    sending = threading.Thread(target=send_outbox, args=(app,))
    try:
        sending.start()
        while not server.connections:  # the worker is stuck in its first send
            time.sleep(0.01)
        written = client.put("/v1/principals/user:zoe", json={"name": "Zoe"}, headers=portal)
        checked = client.post("/v1/authorize", json={"actor": "user:ann", "action": "read",
                                                     "resource": "project:p1"}, headers=portal)
        assert written.status_code in (200, 201) and checked.status_code == 200
        assert sending.is_alive(), "the directory write and the check did not wait for the mail server"
        sending.join(timeout=60)
        assert not sending.is_alive(), "every send was cut off at its deadline"
    finally:
        server.close()
    db.rollback()
    rows = list(db.scalars(select(OutboxMessage)))
    assert {r.state for r in rows} == {"pending"} and all(r.last_error for r in rows), "kept to be tried again"
    keeper, port = smtp
    app.config.update(SMTP_PORT=port)
    assert send_outbox(app) == {}, "not before its back-off"
    clock.advance(minutes=2)
    assert send_outbox(app) == {"sent": 6}
    assert len(keeper.messages) == 6


def test_a_crash_after_three_of_six_messages_sends_each_once(app, reminders_due, smtp, clock, db, monkeypatch):
    keeper, port = smtp
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port)
    real_send, calls = outbox.send, []

    def send_then_die(config, row):
        calls.append(row.message_id)
        if len(calls) == 4:
            raise Crash()  # the fourth message is taken, the process dies before it goes out
        real_send(config, row)

    monkeypatch.setattr(outbox, "send", send_then_die)
    with pytest.raises(Crash):
        send_outbox(app)
    assert len(keeper.messages) == 3
    monkeypatch.undo()
    assert send_outbox(app) == {"sent": 2}, "the other messages go on; the one taken waits for its lease"
    clock.advance(seconds=outbox.LEASE.total_seconds() + 1)
    assert send_outbox(app) == {"sent": 1}
    assert send_outbox(app) == {}
    db.rollback()
    ids = [r.message_id for r in db.scalars(select(OutboxMessage).where(OutboxMessage.state == "sent"))]
    assert len(keeper.messages) == 6 == len(set(ids)), "six messages, each sent once"


def test_a_failed_transaction_sends_nothing(app, client, directory, smtp, db, monkeypatch):
    from accessreview.web import auth

    keeper, port = smtp
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port)
    real_enqueue = auth.enqueue

    def enqueue_then_fail(*args, **kwargs):
        real_enqueue(*args, **kwargs)
        raise RuntimeError("the transaction fails after the mail was recorded")

    monkeypatch.setattr(auth, "enqueue", enqueue_then_fail)
    assert client.post("/ui/sign-in/email", data={"email": "ann@example.com"}).status_code == 500
    db.rollback()
    assert db.scalar(select(OutboxMessage)) is None
    assert send_outbox(app) == {} and keeper.messages == []


def test_a_sign_in_link_is_not_kept_once_sent(app, client, directory, smtp, db):
    keeper, port = smtp
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port)
    client.post("/ui/sign-in/email", data={"email": "ann@example.com"})
    assert send_outbox(app) == {"sent": 1} and "ar_" in keeper.messages[0][1]
    db.rollback()
    row = db.scalar(select(OutboxMessage))
    assert "ar_" not in row.body["text"] and row.state == "sent"


def test_a_mail_server_refusing_for_good_leaves_the_message_failed_after_its_attempts(app, reminders_due, clock, db):
    with closing(socket.socket()) as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port)
    for delay in (0, *outbox.BACKOFF):
        clock.advance(seconds=delay + 1)
        send_outbox(app)
    db.rollback()
    rows = list(db.scalars(select(OutboxMessage)))
    assert {r.state for r in rows} == {"failed"} and {r.attempts for r in rows} == {outbox.MAX_ATTEMPTS}
    assert all("Connection refused" in r.last_error for r in rows)
