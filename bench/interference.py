"""Interference benchmark: do the portal's checks keep their pace while everything else happens at once?

    createdb -h 127.0.0.1 -U postgres arbench
    .venv/bin/python bench/interference.py --database-url postgresql+psycopg://postgres@127.0.0.1/arbench

(the database is emptied first; without --database-url a fresh SQLite file is used). Builds
bench/authorize.py's directory (10,000 users, 100,000 documents, 50,000 grants) plus a 60,000-item
campaign, closed and ready for sign-off, and a campaign whose reminders are due. Starts the service
as scripts/serve does: the check server, the main server, and `accessreview worker`, with mail going
to a server that accepts connections and never answers. Then wrk drives single checks at 8
connections against the check server, once quietly, and once while, in the same run:
  - 50 idle connections and 20 slow clients (a header line every 2 s) on each server;
  - a 200,000-grant import through `accessreview directory import` (a job: staged, validated, then
    applied 1,000 rows a transaction, run to its end by the command);
  - the reminders recorded in the outbox, which the worker tries to send to the silent server;
  - the sign-off of the 60,000-item campaign, whose job the worker runs to the end (60,000
    revocations applied and verified, two signed reports).
Prints throughput, p50/p99 and non-2xx answers of both runs, how long after the import's last commit every
check worker answered from it, and whether every interfering operation completed (the mail once a
real server answers), beside the issue's targets.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from authorize import LUA, NOW, SECRET, _answering, build_directory, free_port, write_bodies, wrk  # noqa: E402
from campaign import empty_postgres  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from accessreview import create_app, jobs  # noqa: E402
from accessreview.audit import WriteContext  # noqa: E402
from accessreview.campaigns import definitions, flows  # noqa: E402
from accessreview.campaigns.schemas import DefinitionBody  # noqa: E402
from accessreview.errors import Conflict  # noqa: E402
from accessreview.models import Job, OutboxMessage  # noqa: E402
from accessreview.work import own_unit_of_work  # noqa: E402


class Pests:
    """Idle connections and slow clients (a header line every ``every`` seconds, never the end of the
    request) against one server, until closed."""

    def __init__(self, port: int, idle: int = 50, slow: int = 20, path: str = "/ui/", every: float = 2) -> None:
        self.stop, self.sockets = threading.Event(), []
        self.request, self.every = f"GET {path} HTTP/1.1\r\nHost: x\r\n".encode(), every
        for _ in range(idle):
            self.sockets.append(socket.create_connection(("127.0.0.1", port)))
        for _ in range(slow):
            threading.Thread(target=self._slow, args=(port,), daemon=True).start()

    def _slow(self, port: int) -> None:
        while not self.stop.is_set():
            try:
                sock = socket.create_connection(("127.0.0.1", port))
                self.sockets.append(sock)
                sock.sendall(self.request)
                while not self.stop.wait(self.every):
                    sock.sendall(b"X-Slow: 1\r\n")
            except OSError:
                self.stop.wait(0.2)

    def close(self) -> None:
        self.stop.set()
        for sock in self.sockets:
            try:
                sock.close()
            except OSError:
                pass


class MailServer:
    """A mail server that accepts connections and never answers, until :meth:`answer`: from then on it
    speaks enough SMTP to take messages, and counts them (the same port, so the worker's retries find it)."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port, self.held, self.answering, self.received = self.listener.getsockname()[1], [], False, 0
        threading.Thread(target=self._accept, daemon=True).start()

    def answer(self) -> None:
        self.answering = True
        for sock in self.held:  # the connections it sat on: the worker's cut-off has ended them anyway
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                connection = self.listener.accept()[0]
            except OSError:
                return
            if self.answering:
                threading.Thread(target=self._smtp, args=(connection,), daemon=True).start()
            else:
                self.held.append(connection)

    def _smtp(self, connection: socket.socket) -> None:
        reader = connection.makefile("rb")
        connection.sendall(b"220 bench ESMTP\r\n")
        try:
            for line in reader:
                command = line[:4].upper()
                if command == b"DATA":
                    connection.sendall(b"354 go on\r\n")
                    for body in reader:
                        if body in (b".\r\n", b".\n"):
                            break
                    self.received += 1
                    connection.sendall(b"250 taken\r\n")
                elif command == b"QUIT":
                    connection.sendall(b"221 bye\r\n")
                    return
                else:
                    connection.sendall(b"250 ok\r\n")
        except OSError:
            pass
        finally:
            connection.close()

    def close(self) -> None:
        self.listener.close()


def prepare(url: str, workdir: Path) -> dict:
    built = build_directory(url, random.Random(11), grant_count=72_000)  # about 60,000 on projects and documents
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": SECRET, "INSTANCE_DIR": str(workdir),
                      "REPORTS_DIR": str(workdir / "reports"), "REFRESH_INTERVAL": 0, "DECISION_FLUSH_INTERVAL": 0,
                      "LOG_LEVEL": "WARNING", "STALE_SYNC_ACTION": "flag", "JOB_INLINE_SECONDS": 0})
    engine, sessions = app.extensions["authz"], app.extensions["db"].sessionmaker
    ctx = WriteContext("user:u2", NOW)
    types = set(engine.policy.declarations.resource_types)
    with app.app_context():
        with own_unit_of_work(sessions, ctx) as (session, ctx):
            big = definitions.create_definition(session, ctx, DefinitionBody.model_validate({
                "name": "Big", "scope": {"resource_types": ["document", "project"]}, "reviewer": {"rule": "principal",
                "principal": "user:u2"}, "fallback_reviewer": "user:u3", "duration_days": 14,
                "on_no_response": "revoke"}), types)
            reminded = [definitions.create_definition(session, ctx, DefinitionBody.model_validate({
                "name": f"Due soon {n}", "scope": {"subtrees": [f"organization:o{n}"]},
                "reviewer": {"rule": "principal", "principal": f"user:u{10 + n}"}, "fallback_reviewer": "user:u3",
                "duration_days": 3, "reminders": {"days_before_due": [3]}, "on_no_response": "keep"}), types)
                for n in range(6)]  # six reminders due today, as in the issue
        campaigns = {}
        for name, definition in (("big", big), *((f"reminded {n}", d) for n, d in enumerate(reminded))):
            outcome = flows.launch(app, ctx, definition["id"])
            assert jobs.runner(app).run(outcome.job["id"]) == "done"
            session = sessions()
            campaigns[name] = session.get(Job, outcome.job["id"]).result["campaign"]
            session.close()
        closing = flows.close(app, ctx, campaigns["big"])
        assert jobs.runner(app).run(closing.job["id"]) == "done"
        from accessreview.models import ReviewItem

        session = sessions()
        items = session.scalar(select(func.count()).select_from(ReviewItem).where(
            ReviewItem.campaign_id == campaigns["big"]))
        session.close()
        from accessreview.tokens import create_token

        with own_unit_of_work(sessions, ctx) as (session, ctx):
            from accessreview.directory import service
            from accessreview.directory.schemas import GrantBody

            try:
                service.create_grant(session, ctx, engine.policy.declarations, GrantBody(
                    principal="user:u2", role="security_lead", resource="system:accessreview"))
            except Conflict:
                pass  # bench/authorize.py's directory already makes u2 a security lead
            lead_token, _ = create_token(session, ctx, SECRET, "user:u2")
    app.extensions["db"].dispose()
    return {**built, "lead": lead_token, "campaign": campaigns["big"], "items": items}


def import_file(workdir: Path, count: int) -> tuple[Path, tuple[str, str, str]]:
    """A merge of ``count`` new grants from a new source; returns it and one check it makes true."""
    rng = random.Random(5)
    grants = {}
    while len(grants) < count:
        key = (f"user:u{rng.randrange(10_000)}", "viewer",
               f"document:o{rng.randrange(100)}-p{rng.randrange(20)}-d{rng.randrange(50)}")
        grants[key] = {"principal": key[0], "role": key[1], "resource": key[2]}
    grants[("user:u4", "viewer", "document:o99-p19-d49")] = {
        "principal": "user:u4", "role": "viewer", "resource": "document:o99-p19-d49", "reason": "the marker"}
    path = workdir / "import.json"
    path.write_text(json.dumps({"source": "hr", "mode": "merge", "grants": list(grants.values())}))
    return path, ("user:u4", "read", "document:o99-p19-d49")


def check(port: int, token: str, triple: tuple[str, str, str]) -> bool:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/authorize", method="POST", data=json.dumps(
        {"actor": triple[0], "action": triple[1], "resource": triple[2]}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["allowed"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--seconds", type=int, default=30, help="length of each wrk run")
    parser.add_argument("--import-grants", type=int, default=200_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="accessreview-bench-interference-"))
    (workdir / "reports").mkdir()
    url = args.database_url or f"sqlite:///{workdir / 'bench.sqlite3'}"
    if url.startswith("postgresql"):
        empty_postgres(url)
    t0 = time.perf_counter()
    ready = prepare(url, workdir)
    print(f"{url.split(':', 1)[0]}: directory and a closed campaign of {ready['items']:,} items ready in "
          f"{time.perf_counter() - t0:.0f} s")
    to_import, marker = import_file(workdir, args.import_grants)
    silent = MailServer()
    env = {**os.environ, "ACCESSREVIEW_DATABASE_URL": url, "ACCESSREVIEW_SECRET_KEY": SECRET,
           "ACCESSREVIEW_INSTANCE_DIR": str(workdir), "ACCESSREVIEW_REPORTS_DIR": str(workdir / "reports"),
           "ACCESSREVIEW_SMTP_HOST": "127.0.0.1", "ACCESSREVIEW_SMTP_PORT": str(silent.port),
           "ACCESSREVIEW_LOG_LEVEL": "WARNING", "ACCESSREVIEW_STALE_SYNC_ACTION": "flag",
           "ACCESSREVIEW_JOB_INLINE_SECONDS": "0", "PROMETHEUS_MULTIPROC_DIR": str(workdir)}
    check_port, main_port = free_port(), free_port()
    logs = open(workdir / "servers.log", "w")
    processes = [
        subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", "gunicorn_checks.conf.py", "--bind",
                          f"127.0.0.1:{check_port}", "checks:app"], cwd=ROOT, env=env, stderr=logs,
                         start_new_session=True),
        subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind",
                          f"127.0.0.1:{main_port}", "wsgi:app"], cwd=ROOT, env=env, stderr=logs,
                         start_new_session=True),
        subprocess.Popen([sys.executable, "-m", "accessreview.cli", "worker"], cwd=ROOT, env=env, stderr=logs,
                         stdout=subprocess.DEVNULL, start_new_session=True)]
    try:
        _answering(processes[0], f"http://127.0.0.1:{check_port}/readyz", 120, "the check server")
        _answering(processes[1], f"http://127.0.0.1:{main_port}/readyz", 120, "the main server")
        bodies, _ = write_bodies(workdir, random.Random(3))
        script = workdir / "post.lua"
        script.write_text(LUA)
        wrk_env = {"BENCH_BODIES": str(bodies), "BENCH_TOKEN": ready["token"], "BENCH_PATH": "/v1/authorize"}
        target = f"http://127.0.0.1:{check_port}/v1/authorize"
        wrk(target, 3, 8, 1, env=wrk_env, script=script)  # warm-up
        quiet = wrk(target, args.seconds, 8, 1, env=wrk_env, script=script)
        time.sleep(2)

        outcome: dict = {}
        pests = [Pests(check_port), Pests(main_port)]

        def interfere() -> None:
            time.sleep(2)
            reminders = subprocess.run([sys.executable, "-c", "from accessreview import create_app; "
                                        "from accessreview.campaigns.scheduled import remind_and_escalate as r; "
                                        "a = create_app(); print(r(a.extensions['db'].sessionmaker, a.config['CLOCK'], a.config))"],
                                       cwd=ROOT, env=env, capture_output=True, text=True)
            outcome["reminders"] = reminders.stdout.strip() or reminders.stderr[-300:]
            request = urllib.request.Request(
                f"http://127.0.0.1:{main_port}/v1/campaigns/{ready['campaign']}/sign-off", method="POST",
                data=json.dumps({"statement": "benchmark"}).encode(),
                headers={"Authorization": f"Bearer {ready['lead']}", "Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as response:
                outcome["sign_off"] = (response.status, json.loads(response.read())["job"]["id"])
            started = time.perf_counter()
            imported = subprocess.run([sys.executable, "-m", "accessreview.cli", "directory", "import",
                                       str(to_import)], cwd=ROOT, env=env, capture_output=True, text=True)
            committed = time.perf_counter()
            outcome["import"] = (imported.returncode, committed - started)
            # Seen by every check worker: twenty answers in a row from the imported grant.
            streak = 0
            while streak < 20 and time.perf_counter() - committed < 60:
                streak = streak + 1 if check(check_port, ready["token"], marker) else 0
            outcome["visible_after"] = time.perf_counter() - committed if streak >= 20 else None

        interference = threading.Thread(target=interfere)
        interference.start()
        noisy = wrk(target, args.seconds, 8, 1, env=wrk_env, script=script)
        for pest in pests:
            pest.close()
        print(f"wrk: quiet {quiet}; with everything else {noisy}", flush=True)
        interference.join()
        sign_off_job = outcome["sign_off"][1]
        app = create_app({"DATABASE_URL": url, "SECRET_KEY": SECRET, "INSTANCE_DIR": str(workdir),
                          "LOG_LEVEL": "WARNING", "REFRESH_INTERVAL": 0, "DECISION_FLUSH_INTERVAL": 0})
        sessions = app.extensions["db"].sessionmaker
        started = time.perf_counter()
        while True:
            session = sessions()
            job = session.get(Job, sign_off_job)
            state, done, total = job.state, job.progress_done, job.progress_total
            session.close()
            if state in ("done", "failed") or time.perf_counter() - started > 900:
                break
            time.sleep(1)
        sign_off_seconds = time.perf_counter() - started
        silent.answer()
        session = sessions()
        queued = session.scalar(select(func.count()).select_from(OutboxMessage))
        last_retry = session.scalar(select(func.max(OutboxMessage.next_attempt_at)))
        session.close()
        # Each message is retried on the outbox's backoff schedule, not at once when the server
        # recovers: wait for the last scheduled attempt, and a minute for the worker's round.
        retry_in = (last_retry.replace(tzinfo=timezone.utc) - datetime.now(timezone.utc)).total_seconds() \
            if last_retry else 0
        wait = min(max(retry_in, 0) + 60, 1800)
        print(f"(the mail server answers now; waiting up to {wait:.0f} s, the outbox's last scheduled retry "
              f"and a minute, for the worker to deliver {queued} messages)", flush=True)
        deadline = time.perf_counter() + wait
        while silent.received < queued and time.perf_counter() < deadline:
            time.sleep(2)
        silent.close()
    finally:
        for process in processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for process in processes:
            process.wait(timeout=30)

    print(f"\nchecks at 8 connections on the check server, {args.seconds} s each:")
    for name, run in (("quiet", quiet), ("with everything else", noisy)):
        print(f"  {name}: {run['rps']:,.0f} checks/s, p50 {run['p50']:.2f} ms, p99 {run['p99']:.2f} ms, "
              f"non-2xx {run['non_2xx']}")
    print(f"reminders recorded: {outcome.get('reminders')}; sign-off answered {outcome['sign_off'][0]} with job "
          f"{sign_off_job}, which ended {state} ({done:,}/{total:,}) {sign_off_seconds:.0f} s after the wrk run")
    print(f"import of {args.import_grants:,} grants: exit {outcome['import'][0]} after {outcome['import'][1]:.1f} s; "
          f"every check worker answered from it {outcome['visible_after']:.1f} s after its commit"
          if outcome.get("visible_after") is not None else "import: NOT seen by the check workers within 60 s")
    print(f"mail: {silent.received} of {queued} delivered once the server answered")
    ratio, p99 = noisy["rps"] / quiet["rps"], noisy["p99"]
    print("\ntargets (issue 17):")
    for what, met in ((f"throughput {ratio:.0%} of quiet (>= 80%)", ratio >= 0.8),
                      (f"p99 {p99:.2f} ms, {p99 / quiet['p99']:.1f}x quiet (<= 2x and < 10 ms)",
                       p99 <= 2 * quiet["p99"] and p99 < 10),
                      (f"non-2xx answers to checks: {noisy['non_2xx']} (0)", noisy["non_2xx"] == 0),
                      (f"sign-off job {state}", state == "done"),
                      (f"import exit {outcome['import'][0]}", outcome["import"][0] == 0),
                      ("import seen by every check worker within 2 s of its commit",
                       (outcome.get("visible_after") or 99) <= 2),
                      (f"all {queued} mails delivered", silent.received >= queued)):
        print(f"  {what}: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
