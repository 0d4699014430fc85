"""The one clock the service reads: deadlines, expiries and timestamps go through it so tests can move it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FrozenClock:
    """A clock that stands still until moved; for tests."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 15, 9, 0, tzinfo=timezone.utc)

    def now(self) -> datetime:
        return self._now

    def advance(self, **delta: float) -> datetime:
        self._now += timedelta(**delta)
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = moment


def as_utc(moment: datetime) -> datetime:
    """Naive datetimes are taken to be UTC; aware ones are converted (those read from the database are
    in UTC already, and returned as they are)."""
    zone = moment.tzinfo
    if zone is timezone.utc:
        return moment
    if zone is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)
