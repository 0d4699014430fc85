"""The decision spool: each process's answered decisions on local disk until the decision log has them.

A check's decisions are appended to its process's spool file before the answer goes out, one
``write`` per request (a batch of checks is one record). The write reaches the kernel's page cache,
which outlives the process: a worker killed with SIGKILL, or by gunicorn's timeout, leaves every
decision it answered in its files, and whoever sweeps the folder next (its gunicorn master, the
worker that replaces it, any process's writer within ``SWEEP_SECONDS``) writes them to the decision
log. No fsync by default: a spooled decision is lost only with the host itself, and it is in the
database within DECISION_FLUSH_INTERVAL anyway; DECISION_SPOOL_FSYNC makes every check wait for
the disk (fdatasync) for those who want the host's loss covered too.

A process's spool is a series of segments. The writer swaps the current one for a fresh one
together with the memory buffer, writes the buffer, and deletes the segment once committed. Every
segment is held with ``flock`` by the process that writes it, for as long as it lives; the kernel
lets go when the process dies, which is how a sweeper tells an orphan from a segment in use.
A segment is created under a hidden name and renamed once locked, so no sweeper ever sees one
unlocked.

A record is ``<length, crc32>`` then the payload (marshal, see :meth:`DecisionLog.spooled`). A
record that cannot be read back (a tail torn by the host's crash, a damaged disk) is counted in
``accessreview_decision_spool_corrupt_bytes_total`` and logged, and its file is kept, renamed
``.corrupt``, for the operator.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import struct
import time
import zlib
from pathlib import Path
from typing import Iterator

from prometheus_client import Counter

log = logging.getLogger(__name__)

UNSPOOLED = Counter("accessreview_decisions_unspooled_total",
                    "Decisions answered that could not be spooled to disk (disk full, folder unwritable): "
                    "they are in memory only, and lost if their process dies before its next flush")
CORRUPT = Counter("accessreview_decision_spool_corrupt_bytes_total",
                  "Bytes of spool files that could not be read back; the decisions in them are lost")
RECOVERED = Counter("accessreview_decisions_recovered_total",
                    "Decisions written to the decision log from the spool of a process that died")

HEADER = struct.Struct("<II")  # payload length, crc32 of the payload
SUFFIX = ".spool"
SWEEP_SECONDS = 10.0  # how often each process's writer looks for orphaned segments
COMPLAINT_SECONDS = 60.0  # a failing spool is logged at most this often per process


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def unframe(data: bytes) -> tuple[list[bytes], int]:
    """The payloads of ``data``'s whole, intact records, and how many bytes after them are not one."""
    payloads, at = [], 0
    while at + HEADER.size <= len(data):
        length, crc = HEADER.unpack_from(data, at)
        payload = data[at + HEADER.size:at + HEADER.size + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            break
        payloads.append(payload)
        at += HEADER.size + length
    return payloads, len(data) - at


class Segment:
    """One spool file, locked by the process that holds ``fd``."""

    __slots__ = ("path", "fd", "size")

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd, self.size = path, fd, 0

    def read(self) -> bytes:
        return self.path.read_bytes()

    def discard(self) -> None:
        """Its decisions are in the log: remove it, then let go of it (in that order, so that no
        sweeper can take it between the two)."""
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self.fd)


class Spool:
    """This process's segments in ``directory`` (callers serialize :meth:`append` and :meth:`rotate`)."""

    def __init__(self, directory: Path, fsync: bool) -> None:
        self.directory = directory
        self.fsync = fsync
        self.current: Segment | None = None
        self._name = ""
        self._numbers = iter(())
        self._complained = 0.0
        self.failing: str | None = None  # why the last append failed, until one succeeds
        self.fresh()

    def fresh(self) -> None:
        """Start over as a new process: segments named after this one, none open. A forked child
        drops its parent's descriptors (without deleting the files, which are the parent's)."""
        if self.current is not None:
            os.close(self.current.fd)
        self.current = None
        self._name = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._numbers = iter(range(10**9))

    def append(self, record: bytes) -> bool:
        """Write one framed record; False (counted by the caller, logged here) when it could not be."""
        segment = self.current
        try:
            if segment is None:
                segment = self.current = self._open()
            written = os.write(segment.fd, record)
            if written != len(record):  # the disk filled part way: leave no torn record behind
                os.ftruncate(segment.fd, segment.size)
                raise OSError(f"disk full: {written} of {len(record)} bytes written")
            segment.size += written
            if self.fsync:
                os.fdatasync(segment.fd)
        except OSError as exc:
            self._complain(exc)
            return False
        self.failing = None
        return True

    def rotate(self) -> Segment | None:
        """The current segment, to be written and then discarded; the next record starts another."""
        segment, self.current = self.current, None
        return segment

    def _open(self) -> Segment:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{self._name}-{next(self._numbers):09d}{SUFFIX}"
        hidden = path.with_name("." + path.name)
        fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(hidden, path)
        except OSError:
            os.close(fd)
            hidden.unlink(missing_ok=True)
            raise
        return Segment(path, fd)

    def _complain(self, exc: OSError) -> None:
        self.failing = f"{type(exc).__name__}: {exc}"
        if time.monotonic() - self._complained > COMPLAINT_SECONDS:
            self._complained = time.monotonic()
            log.error("cannot spool decisions to %s (%s); they are kept in memory only until written, "
                      "and counted in accessreview_decisions_unspooled_total", self.directory, exc)


def orphans(directory: Path) -> Iterator[Segment]:
    """Segments in ``directory`` that no living process holds, each locked by us while the caller
    handles it (the caller discards it, or closes ``fd`` to leave it for later)."""
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(SUFFIX) and not n.startswith("."))
    except OSError:  # not made yet, or not a folder: appending says so (logged, counted, /readyz)
        return
    for name in names:
        path = directory / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.stat(path).st_ino != os.fstat(fd).st_ino:  # discarded and its name reused meanwhile
                raise FileNotFoundError(path)
        except OSError:  # held by its process, or gone
            os.close(fd)
            continue
        yield Segment(path, fd)


def set_aside(segment: Segment, bad_bytes: int) -> None:
    """Keep a segment with an unreadable tail for the operator, under a name no sweeper takes."""
    CORRUPT.inc(bad_bytes)
    kept = segment.path.with_suffix(".corrupt")
    log.error("decision spool %s ends with %d bytes that are not a whole record; its readable decisions "
              "were written to the log, the rest are lost; the file is kept as %s", segment.path, bad_bytes, kept)
    try:
        os.rename(segment.path, kept)
    finally:
        os.close(segment.fd)


def state(directory: Path, spool: Spool) -> dict[str, object]:
    """For /readyz: whether this process's last record reached its spool, and what waits in the folder."""
    status = "ok" if spool.failing is None else f"failing: {spool.failing}"
    try:
        names = os.listdir(directory)
    except FileNotFoundError:  # made with the first record
        names = []
    except OSError as exc:
        names = []
        if spool.failing is None:
            status = f"unreadable: {type(exc).__name__}"
    return {"status": status, "directory": str(directory),
            "segments": sum(1 for n in names if n.endswith(SUFFIX)),
            "corrupt": sum(1 for n in names if n.endswith(".corrupt"))}
