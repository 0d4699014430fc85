"""Configuration: defaults, overridden by ``ACCESSREVIEW_*`` environment variables or a mapping.

Every setting is parsed and checked here, once, at start-up. A bad value raises
:class:`ConfigError` whose message is one line naming the variable, so the process can stop with it.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "ACCESSREVIEW_"


class ConfigError(Exception):
    """A setting is missing or invalid; the message is one line that names the variable."""


def _database_url(value: str) -> str:
    try:
        url = make_url(value)
    except ArgumentError as exc:
        raise ValueError(f"not a database URL ({exc})") from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError("only sqlite and postgresql URLs are supported")
    return value


def _directory(value: str) -> Path:
    path = Path(value).expanduser().resolve()
    if not path.is_dir():
        raise ValueError(f"{path} is not a directory")
    return path


def _spool_dir(value: str) -> Path | None:
    return None if value.strip().lower() == "off" else Path(value).expanduser().resolve()


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError("must be a positive whole number")
    return number


def _niceness(value: str) -> int:
    number = int(value)
    if not 0 <= number <= 19:
        raise ValueError("must be a whole number from 0 to 19")
    return number


def _secret(value: str) -> str:
    if len(value) < 32:
        raise ValueError("must be at least 32 characters")
    return value


def _choice(*options: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return value

    return parse


def _address_of(bind: str) -> str:
    """Where a service bound to ``bind`` is reached, when no public address is set: the bound host
    and port, or this machine's name for a wildcard (a link to 0.0.0.0 leads nowhere)."""
    host, _, port = bind.rpartition(":")
    if bind.startswith("unix:") or not port.isdigit():
        return "http://localhost"
    if host in ("", "0.0.0.0", "[::]", "::"):
        host = socket.gethostname()
    return f"http://{host}:{port}"


def _check_url(value: str) -> str | None:
    """The check server's address as PEPs reach it (http or https, no path), or None for ``off``."""
    if value.strip().lower() == "off":
        return None
    if not value.startswith(("http://", "https://")) or "?" in value or "#" in value:
        raise ValueError("must be an http:// or https:// address without query or fragment, or off")
    return value.rstrip("/")


def _seconds(value: str) -> float:
    number = float(value)
    if number < 0:
        raise ValueError("must be a number of seconds, 0 or more")
    return number


def _positive_seconds(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError("must be a number of seconds above 0")
    return number


def _boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


@dataclass(frozen=True)
class Setting:
    name: str
    parse: Callable[[str], Any]
    help: str
    default: Callable[[dict[str, Any]], Any] | None = None
    required_in_production: bool = False


def _instance_dir(settings: dict[str, Any]) -> Path:
    path = Path(settings["INSTANCE_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def _development_secret(settings: dict[str, Any]) -> str:
    """A per-checkout secret kept in the instance folder, so tokens survive restarts in development."""
    key_file = _instance_dir(settings) / "secret-key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(48))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SETTINGS: tuple[Setting, ...] = (
    Setting("ENV", _choice("development", "production"),
            "development fills in missing settings with local defaults; production requires them",
            default=lambda s: "development"),
    Setting("INSTANCE_DIR", lambda v: Path(v).expanduser().resolve(),
            "folder for the development database and secret",
            default=lambda s: PROJECT_ROOT / "instance"),
    Setting("DATABASE_URL", _database_url, "SQLAlchemy URL (sqlite:///… or postgresql+psycopg://…)",
            default=lambda s: f"sqlite:///{_instance_dir(s) / 'accessreview.sqlite3'}",
            required_in_production=True),
    Setting("SECRET_KEY", _secret, "at least 32 characters; keys the hashes of service tokens",
            default=_development_secret, required_in_production=True),
    Setting("POLICY_DIR", _directory, "folder of the Polar policy files",
            default=lambda s: PROJECT_ROOT / "policies"),
    Setting("REPORTS_DIR", _directory, "folder where signed reports are stored",
            default=lambda s: PROJECT_ROOT / "reports"),
    Setting("SIGNING_KEY_PATH", lambda v: Path(v).expanduser().resolve(),
            "Ed25519 private key (PEM) that signs reports; in development one is made on first start",
            default=lambda s: _instance_dir(s) / "signing-key.pem", required_in_production=True),
    Setting("MAX_BODY_BYTES", _positive_int, "largest request body accepted (413 above it)",
            default=lambda s: 10 * 1024 * 1024),
    Setting("IMPORT_MAX_BYTES", _positive_int,
            "largest import (all its files together, a workbook once decompressed); refused at once above it",
            default=lambda s: 64 * 1024 * 1024),
    Setting("IMPORT_MAX_CELLS", _positive_int,
            "most cells an import's CSV and XLSX files may hold (a workbook's shared strings too); refused at once "
            "above it", default=lambda s: 1_000_000),
    Setting("PAGE_SIZE", _positive_int, "default page size of list endpoints",
            default=lambda s: 100),
    Setting("MAX_PAGE_SIZE", _positive_int, "largest page size a caller may ask for",
            default=lambda s: 1000),
    Setting("EVALUATION", _choice("compiled", "oso"),
            "compiled: checks walk the table compiled from the policy; oso: every check asks oso (slow, "
            "for comparing the two in production)", default=lambda s: "compiled"),
    Setting("EVALUATION_TIMEOUT", _positive_seconds,
            "longest an authorization request may spend evaluating (and oso's limit for one query); past "
            "it the answer is 503 evaluation_timeout, which the portal treats as a deny",
            default=lambda s: 2.0),
    Setting("SEARCH_PAGE_SECONDS", _seconds,
            "how long one page of an AuthZEN subject or resource search may spend asking oso about candidates "
            "(types with attribute rules: one query each) before it answers with what it found, maybe fewer "
            "than its limit, and a page token that goes on from there", default=lambda s: 0.05),
    Setting("REFRESH_INTERVAL", _seconds,
            "how often each process reads the directory's changes (0: only on its own writes)",
            default=lambda s: 0.5),
    Setting("STALE_WAIT", _seconds,
            "how long a check with at_least_revision may wait for its process's refresh under way before "
            "catching up itself (a revision the database has not reached is 503 stale at once)",
            default=lambda s: 2.0),
    Setting("MAX_BATCH", _positive_int, "most checks in one batch request", default=lambda s: 1000),
    Setting("AUTHZEN_MAX_PROPERTIES_BYTES", _positive_int,
            "largest properties object (of a subject, action or resource) or context in an AuthZEN request "
            "(and /v1/authorize's actor_properties, resource_properties, context), as compact JSON (413 above it)",
            default=lambda s: 16 * 1024),
    Setting("DECISION_BUFFER", _positive_int,
            "decisions held in memory before they are written; beyond it they are counted as dropped",
            default=lambda s: 200_000),
    Setting("DECISION_FLUSH_INTERVAL", _seconds,
            "how often buffered decisions are written (sooner once the buffer is half full)",
            default=lambda s: 1.0),
    Setting("DECISION_SPOOL_DIR", _spool_dir,
            "folder on local disk where each process spools the decisions it answers until they are written, "
            "so that a worker's death (kill -9, timeout) loses none; shared by the processes of one host; "
            "off: memory only", default=lambda s: Path(s["INSTANCE_DIR"]) / "decision-spool"),
    Setting("DECISION_SPOOL_FSYNC", _boolean,
            "fdatasync each spooled record before answering: survives the host's crash too, at the disk's "
            "latency on every check (false: a spooled decision survives its process, not its host)",
            default=lambda s: False),
    Setting("DECISION_RETENTION_DAYS", _positive_int, "decisions older than this are deleted",
            default=lambda s: 400),
    Setting("MAX_SYNC_AGE_HOURS", _seconds,
            "a campaign launch finds a source stale when its last sync is older than this many hours",
            default=lambda s: 48.0),
    Setting("STALE_SYNC_ACTION", _choice("refuse", "flag"),
            "what a launch does with a stale source: refuse, or launch and flag the campaign",
            default=lambda s: "refuse"),
    Setting("BIND", str, "the main server's address, host:port (gunicorn.conf.py binds to it)",
            default=lambda s: "127.0.0.1:8000"),
    Setting("PUBLIC_URL", str, "the service's address as reviewers reach it, for links in e-mails",
            default=lambda s: _address_of(s["BIND"])),
    Setting("CHECK_BIND", str,
            "the check server's address, host:port (gunicorn_checks.conf.py binds to it)",
            default=lambda s: "127.0.0.1:8001"),
    Setting("CHECK_URL", _check_url,
            "the check server's address as the portal's PEPs reach it: the AuthZEN metadata of both servers "
            "names the evaluation and search endpoints there (off: no check server; each server names its own)",
            default=lambda s: _address_of(s["CHECK_BIND"])),
    Setting("SMTP_HOST", str, "mail server for reminders and escalations (unset: e-mails are logged, not sent)",
            default=lambda s: None),
    Setting("SMTP_PORT", _positive_int, "mail server port", default=lambda s: 25),
    Setting("SMTP_FROM", str, "sender address of the e-mails", default=lambda s: "accessreview@localhost"),
    Setting("SMTP_USERNAME", str, "mail server login (optional)", default=lambda s: None),
    Setting("SMTP_PASSWORD", str, "mail server password (optional)", default=lambda s: None),
    Setting("SMTP_STARTTLS", _boolean, "upgrade the mail connection with STARTTLS", default=lambda s: False),
    Setting("WEBHOOK_URL", str, "also POST each reminder and escalation as JSON here (optional)",
            default=lambda s: None),
    Setting("SCHEDULER_TICK", _seconds, "how often the scheduler looks for due launches, reminders and closes",
            default=lambda s: 60.0),
    Setting("JOB_INLINE_SECONDS", _seconds,
            "how long a request that starts a job (launch, close, sign-off, remediation) runs its first steps "
            "before answering 202 and leaving the rest to the worker (0: always 202)",
            default=lambda s: 1.0),
    Setting("JOB_LEASE_SECONDS", _positive_seconds,
            "how long a job step's runner holds the job; a runner silent this long (killed, its host lost) "
            "is replaced by the next one, from the job's last committed step", default=lambda s: 60.0),
    Setting("WORKER_POLL", _seconds, "how often an idle worker looks for jobs and mail to send",
            default=lambda s: 1.0),
    Setting("BACKGROUND_NICE", _niceness,
            "how far `accessreview worker` and a CLI command running a job to its end lower their CPU priority "
            "(nice), so that on a shared host the check server's workers are served first (0: not lowered)",
            default=lambda s: 10),
    Setting("LOG_LEVEL", _choice("DEBUG", "INFO", "WARNING", "ERROR"), "log level of the JSON logs",
            default=lambda s: "INFO"),
    Setting("JSON_LOGS", _boolean, "write logs as JSON lines (false: plain text)",
            default=lambda s: True),
)


def load_config(overrides: Mapping[str, Any] | None = None,
                environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Resolve every setting from ``overrides`` (tests), then the environment, then the default."""
    overrides = dict(overrides or {})
    environ = os.environ if environ is None else environ
    settings: dict[str, Any] = {}
    for setting in SETTINGS:
        variable = ENV_PREFIX + setting.name
        if setting.name in overrides:
            raw = overrides.pop(setting.name)
            settings[setting.name] = setting.parse(raw) if isinstance(raw, str) else raw
            continue
        raw = environ.get(variable)
        if raw is None or raw == "":
            if setting.required_in_production and settings.get("ENV") == "production":
                raise ConfigError(f"{variable} is not set (required when ACCESSREVIEW_ENV=production)")
            settings[setting.name] = setting.default(settings) if setting.default else None
            continue
        try:
            settings[setting.name] = setting.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{variable} is invalid: {exc}") from None
    # Anything left is a test or embedding override for a setting not declared above (e.g. CLOCK).
    settings.update(overrides)
    return settings
