"""Telling people: e-mail over SMTP, and optionally a webhook, each bounded in time.

Nothing here is called inside a transaction: messages are recorded in the outbox (``outbox.py``)
with the change that causes them, and sent from there after commit. A send that does not finish
within its deadline (a server that accepts and never answers, or answers a byte at a time) is cut
off and retried later, so a bad peer delays mail and nothing else.
"""

from __future__ import annotations

import json
import smtplib
import socket
import threading
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Mapping

CONNECT_TIMEOUT = 10  # seconds for any one read or write of the SMTP or HTTP exchange
SEND_DEADLINE = 30  # seconds for a whole message, however slowly the peer drips its answers


class DeliveryError(Exception):
    """A message that was not delivered this time; it may be tried again."""


class NotDeliverable(DeliveryError):
    """A message that cannot be delivered as things stand (no server configured): not retried."""


@dataclass(frozen=True)
class Message:
    to: str  # principal
    address: str | None
    subject: str
    text: str
    event: dict[str, Any]


def send_email(config: Mapping[str, Any], address: str, subject: str, text: str, message_id: str) -> None:
    host = config.get("SMTP_HOST")
    if not host:
        raise NotDeliverable("no SMTP server configured (ACCESSREVIEW_SMTP_HOST)")
    email = EmailMessage()
    email["From"] = config["SMTP_FROM"]
    email["To"] = address
    email["Subject"] = subject
    email["Message-ID"] = message_id  # the same on every attempt: a resend after a crash is recognisable
    email["Date"] = formatdate(usegmt=True)
    email.set_content(text)
    smtp = smtplib.SMTP(timeout=CONNECT_TIMEOUT)
    with _cut_off_after(SEND_DEADLINE, lambda: smtp.sock):
        try:
            smtp.connect(host, config["SMTP_PORT"])
            if config.get("SMTP_STARTTLS"):
                smtp.starttls()
            if config.get("SMTP_USERNAME"):
                smtp.login(config["SMTP_USERNAME"], config.get("SMTP_PASSWORD") or "")
            smtp.send_message(email)
            smtp.quit()
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            smtp.close()


def send_webhook(url: str, event: dict[str, Any], message_id: str) -> None:
    """POST the event; each read and write is bounded by CONNECT_TIMEOUT (urllib keeps its socket to
    itself, so a receiver that drips its answer is bounded per read, not as a whole)."""
    request = urllib.request.Request(url, method="POST", data=json.dumps(event).encode(), headers={
        "Content-Type": "application/json", "Idempotency-Key": message_id})
    try:
        with urllib.request.urlopen(request, timeout=CONNECT_TIMEOUT) as response:
            response.read(65536)
            if response.status >= 300:
                raise DeliveryError(f"HTTP {response.status}")
    except OSError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc


class _cut_off_after:
    """Shut the socket down after ``seconds``: per-read timeouts alone let a peer that drips one byte
    at a time hold a send for ever."""

    def __init__(self, seconds: float, sock) -> None:
        self.timer = threading.Timer(seconds, self._cut, args=(sock,))
        self.timer.daemon = True

    @staticmethod
    def _cut(sock) -> None:
        current = sock()
        if current is not None:
            try:
                current.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self):
        self.timer.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.timer.cancel()
