"""Telling reviewers: e-mail over SMTP, and optionally a webhook. Failures are logged, not raised:
a reminder that cannot be sent must not stop the others (the audit trail records what was sent)."""

from __future__ import annotations

import json
import logging
import smtplib
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Mapping

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Message:
    to: str  # principal
    address: str | None
    subject: str
    text: str
    event: dict[str, Any]


class Notifier:
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config

    def send(self, message: Message) -> dict[str, Any]:
        """Deliver one message; returns what happened, for the audit trail."""
        outcome: dict[str, Any] = {"to": message.to, "address": message.address, "subject": message.subject}
        outcome["email"] = self._email(message)
        if self.config.get("WEBHOOK_URL"):
            outcome["webhook"] = self._webhook(message)
        return outcome

    def _email(self, message: Message) -> str:
        host = self.config.get("SMTP_HOST")
        if not host:
            log.info("e-mail not sent (no ACCESSREVIEW_SMTP_HOST): %s to %s", message.subject, message.to)
            return "not sent: no SMTP server configured"
        if not message.address:
            return f"not sent: {message.to} has no e-mail address"
        email = EmailMessage()
        email["From"] = self.config["SMTP_FROM"]
        email["To"] = message.address
        email["Subject"] = message.subject
        email.set_content(message.text)
        try:
            with smtplib.SMTP(host, self.config["SMTP_PORT"], timeout=30) as smtp:
                if self.config.get("SMTP_STARTTLS"):
                    smtp.starttls()
                if self.config.get("SMTP_USERNAME"):
                    smtp.login(self.config["SMTP_USERNAME"], self.config.get("SMTP_PASSWORD") or "")
                smtp.send_message(email)
        except (OSError, smtplib.SMTPException) as exc:
            log.error("e-mail to %s failed: %s", message.address, exc)
            return f"failed: {exc}"
        return "sent"

    def _webhook(self, message: Message) -> str:
        request = urllib.request.Request(self.config["WEBHOOK_URL"], method="POST",
                                         data=json.dumps(message.event).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return f"sent ({response.status})"
        except OSError as exc:
            log.error("webhook failed: %s", exc)
            return f"failed: {exc}"
