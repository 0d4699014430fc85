"""Authorization benchmark: a portal-sized directory, the service as the README runs it, wrk on loopback.

    .venv/bin/python bench/authorize.py            # needs wrk (Debian: apt-get install wrk)
    .venv/bin/python bench/authorize.py --seconds 10 --rounds 3   # the defaults

Builds 10,000 users, 100 organizations x 20 projects x 50 documents (100,000 documents), 1,000
todos (an attribute rule's type) in organization o0's projects and about 50,000 grants in a fresh
SQLite file, starts the service as scripts/serve does (the main server and
the check server), then prints, in one run:
  - in-process check: median µs of the compiled path beside a bare oso.is_allowed on the same data,
    and an attribute rule's check through oso (a todo decided on its request properties) beside it,
    and of a whole single check and health probe through the hot path, in a loop
    (``--in-process-only`` stops there);
  - the list endpoint (first page, a user who reaches 10,000 documents) and "who has access" for a
    document of a 500-member organization, over HTTP on the main server, and the first page of each
    AuthZEN search on the server the checks are measured on (todos' too, and their every page)
    (``--searches-only`` stops there);
  - on the server that answers the portal's checks in production, the check server
    (gunicorn_checks.conf.py: 2 asyncio workers; --checks-on main measures the main server's 2
    threaded workers instead): the HTTP floor (GET /healthz, a constant JSON answer),
    the same floor asked with the checks' headers and bodies, the issue's floor (a plain Flask view
    answering a constant, bench/flask_floor.py, on gunicorn's sync workers), single checks and batches of 100,
    and the same as AuthZEN single evaluations and evaluations of 100, with wrk (1 thread) at 8 connections, and the CPU time per request of the workers and of wrk
    itself: medians of interleaved rounds;
  - memory of each worker: resident, and its proportional share of the pages it shares with the master.
  - last, each of the issue's targets beside its figure, met or not.
The directory rows are bulk-inserted (no audit events): this measures checks, not imports.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path
from resource import RUSAGE_CHILDREN, getrusage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402

from accessreview import create_app  # noqa: E402
from accessreview.audit import WriteContext, lock_state  # noqa: E402
from accessreview.migrate import upgrade  # noqa: E402
from accessreview.models import DirectoryState, Grant, GroupMembership, Principal, Resource  # noqa: E402
from accessreview.tokens import create_token  # noqa: E402

SECRET = "bench-secret-key-0123456789-0123456789-abcdef"
NOW = datetime.now(timezone.utc)
ORGS, PROJECTS, DOCS, USERS = 100, 20, 50, 10_000
TODOS = 50  # a project of organization o0


def build_directory(url: str, rng: random.Random, grant_count: int = 50_000) -> dict:
    """Bulk-insert the directory; returns the names the measurements need."""
    upgrade(url)
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": SECRET, "INSTANCE_DIR": tempfile.mkdtemp(),
                      "REFRESH_INTERVAL": 0, "DECISION_FLUSH_INTERVAL": 0, "LOG_LEVEL": "WARNING"})
    engine = app.extensions["db"].engine
    stamp = {"created_at": NOW, "updated_at": NOW}
    principals = [{"key": f"user:u{i}", "kind": "user", "name": f"User {i}", "email": f"u{i}@example.com",
                   "department": f"dept-{i % 40}", "status": "disabled" if i % 97 == 0 else "active", **stamp}
                  for i in range(USERS)]
    principals += [{"key": f"group:g{g}", "kind": "group", "name": f"Group {g}", "status": "active", **stamp}
                   for g in range(50)]
    principals.append({"key": "service:portal", "kind": "service", "name": "Portal", "status": "active", **stamp})
    resources = [{"key": "system:accessreview", "type": "system", "attributes": {}, **stamp}]
    for o in range(ORGS):
        resources.append({"key": f"organization:o{o}", "type": "organization", "attributes": {}, **stamp})
        for p in range(PROJECTS):
            project = f"project:o{o}-p{p}"
            resources.append({"key": project, "type": "project", "parent_key": f"organization:o{o}",
                              "attributes": {}, **stamp})
            resources += [{"key": f"document:o{o}-p{p}-d{d}", "type": "document", "parent_key": project,
                           "attributes": {}, **stamp} for d in range(DOCS)]
    # Todos (an attribute rule's type, evaluated by oso) in organization o0's projects, each with an owner.
    resources += [{"key": f"todo:o0-p{p}-t{t}", "type": "todo", "parent_key": f"project:o0-p{p}",
                   "attributes": {"ownerID": f"u{(p * TODOS + t) * 7 % USERS}"}, **stamp}
                  for p in range(PROJECTS) for t in range(TODOS)]
    grants: dict[tuple, dict] = {}

    def grant(principal, role, resource, expired=False):
        grants[(principal, role, resource)] = {
            "principal_key": principal, "role": role, "resource_key": resource, "granted_by": "bench",
            "granted_at": NOW - timedelta(days=30), "source": "bench",
            "expires_at": NOW - timedelta(days=1) if expired else None}

    for i in range(500):  # organization o0 has 500 members
        grant(f"user:u{i}", "member", "organization:o0")
    for i in range(500, USERS):
        grant(f"user:u{i}", "member", f"organization:o{rng.randrange(1, ORGS)}")
    for o in range(10):  # u1 reaches 10 organizations' 10,000 documents
        grant("user:u1", "admin" if o else "member", f"organization:o{o}")
    while len(grants) < grant_count:
        i, o, p = rng.randrange(USERS), rng.randrange(ORGS), rng.randrange(PROJECTS)
        if rng.random() < 0.5:
            grant(f"user:u{i}", rng.choice(["viewer", "editor", "manager"]), f"project:o{o}-p{p}",
                  expired=rng.random() < 0.05)
        else:
            grant(f"user:u{i}", rng.choice(["viewer", "editor"]), f"document:o{o}-p{p}-d{rng.randrange(DOCS)}",
                  expired=rng.random() < 0.05)
    memberships = [{"group_key": f"group:g{g}", "member_key": f"user:u{rng.randrange(USERS)}"}
                   for g in range(50) for _ in range(20)]
    for g in range(50):
        grant(f"group:g{g}", "editor", f"project:o{rng.randrange(ORGS)}-p{rng.randrange(PROJECTS)}")
    grant("service:portal", "portal_client", "system:accessreview")
    # Who-has-access is a person's question: an active one (user:u0 is among the disabled, every 97th).
    grant("user:u2", "security_lead", "system:accessreview")
    with engine.begin() as connection:
        connection.execute(insert(Principal), _uniform(principals))
        connection.execute(insert(Resource), _uniform(resources))
        connection.execute(insert(GroupMembership), list({(m["group_key"], m["member_key"]): m
                                                           for m in memberships}.values()))
        connection.execute(insert(Grant), list(grants.values()))
        connection.execute(DirectoryState.__table__.update().values(revision=1))
    with app.app_context():
        session = app.extensions["db"].session()
        lock_state(session)
        token, _ = create_token(session, WriteContext("bench", NOW), SECRET, "service:portal")
        lead_token, _ = create_token(session, WriteContext("bench", NOW), SECRET, "user:u2")
        session.commit()
        session.close()
    app.extensions["db"].dispose()
    return {"token": token, "lead_token": lead_token, "grants": len(grants), "resources": len(resources), "principals": len(principals)}


def _uniform(rows: list[dict]) -> list[dict]:
    """executemany wants every row to name the same columns."""
    columns = {column for row in rows for column in row}
    return [{column: row.get(column) for column in columns} for row in rows]


def triples(rng: random.Random, count: int) -> list[tuple[str, str, str]]:
    out = []
    for _ in range(count):
        o, p, d = rng.randrange(ORGS), rng.randrange(PROJECTS), rng.randrange(DOCS)
        out.append((f"user:u{rng.randrange(USERS)}", rng.choice(["read", "edit", "delete", "share"]),
                    f"document:o{o}-p{p}-d{d}"))
    return out


def in_process(url: str, rng: random.Random, token: str) -> dict:
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": SECRET, "INSTANCE_DIR": tempfile.mkdtemp(),
                      "REFRESH_INTERVAL": 0, "DECISION_FLUSH_INTERVAL": 0, "LOG_LEVEL": "WARNING"})
    engine = app.extensions["authz"]
    started = time.perf_counter()
    snapshot = engine.snapshot()
    load_seconds = time.perf_counter() - started
    sample = triples(rng, 2000)
    check = snapshot.evaluator.check
    fast = []
    for actor, action, resource in sample:
        t0 = time.perf_counter_ns()
        check(actor, action, resource, NOW)
        fast.append(time.perf_counter_ns() - t0)
    # Bare oso: the registered objects built beforehand, then oso.is_allowed alone is timed.
    from accessreview.authz.policy import _World

    world = _World(snapshot.policy, snapshot.index, NOW)
    oso = snapshot.policy._oso
    slow, disagreements = [], 0
    for actor, action, resource in sample[:500]:
        actor_obj, resource_obj = world.actor(actor), world.resource(resource)
        t0 = time.perf_counter_ns()
        answer = oso.is_allowed(actor_obj, action, resource_obj)
        slow.append(time.perf_counter_ns() - t0)
        disagreements += answer != check(actor, action, resource, NOW).allowed
    attribute_us, owned = _attribute_checks(snapshot, rng)
    probe_us, request_us = _requests_in_a_loop(app, token, sample)
    app.extensions["db"].dispose()
    return {"fast_us": statistics.median(fast) / 1000, "oso_us": statistics.median(slow) / 1000,
            "disagreements": disagreements, "oso_sampled": len(slow), "load_s": load_seconds,
            "probe_us": probe_us, "request_us": request_us, "attribute_us": attribute_us, "owned": owned}


def _attribute_checks(snapshot, rng: random.Random, count: int = 500) -> tuple[float, int]:
    """Median µs of an attribute rule's check, through oso: a todo the directory does not hold, given
    with its ownerID (half of them the asking user's) and, for the department rule, the user's
    department from the directory. Returns the median and how many were allowed."""
    from accessreview.authz.properties import Given

    check, times, owned = snapshot.evaluator.check, [], 0
    for number in range(count):
        user = rng.randrange(USERS)
        owner = user if number % 2 else rng.randrange(USERS)
        facts = Given(None, {"ownerID": f"u{owner}", "department": f"dept-{rng.randrange(40)}"}, {"channel": "web"})
        t0 = time.perf_counter_ns()
        owned += check(f"user:u{user}", rng.choice(["read", "edit"]), f"todo:t{number}", NOW, facts).allowed
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times) / 1000, owned


def _requests_in_a_loop(app, token: str, sample: list[tuple[str, str, str]]) -> tuple[float, float]:
    """Median µs of whole requests through the app's WSGI entry (the hot path), one process, no
    load: the health probe and a single check. What a check adds here, load multiplies (see
    docs/performance.md)."""
    def environ(method: str, path: str, body: bytes = b"") -> dict:
        return {"REQUEST_METHOD": method, "PATH_INFO": path, "CONTENT_LENGTH": str(len(body)) if body else "",
                "HTTP_AUTHORIZATION": f"Bearer {token}", "CONTENT_TYPE": "application/json",
                "wsgi.input": io.BytesIO(body)}

    def median_us(environs: list[dict]) -> float:
        times = []
        for one in environs:
            t0 = time.perf_counter_ns()
            app.wsgi_app(one, lambda status, headers: None)
            times.append(time.perf_counter_ns() - t0)
        return statistics.median(times) / 1000

    checks = [json.dumps({"actor": a, "action": x, "resource": r}).encode() for a, x, r in sample]
    for _ in range(2):  # the first round warms the caller's token, the index and the allocator
        probe = median_us([environ("GET", "/healthz") for _ in checks])
        check = median_us([environ("POST", "/v1/authorize", body) for body in checks])
    return probe, check


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(url: str, port: int, workdir: Path, tree: Path = ROOT) -> subprocess.Popen:
    """gunicorn as scripts/serve runs it, from ``tree`` (a checkout), once it answers /readyz."""
    env = {**os.environ, "ACCESSREVIEW_DATABASE_URL": url, "ACCESSREVIEW_SECRET_KEY": SECRET,
           "ACCESSREVIEW_INSTANCE_DIR": str(workdir), "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics")}
    (workdir / "metrics").mkdir()
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind",
                                f"127.0.0.1:{port}", "--workers", "2", "wsgi:app"], cwd=tree, env=env,
                               stderr=open(workdir / "server.log", "w"), start_new_session=True)
    return _answering(process, f"http://127.0.0.1:{port}/readyz", 120, f"the server; see {workdir / 'server.log'}")


def start_check_server(url: str, port: int, workdir: Path, tree: Path = ROOT) -> subprocess.Popen:
    """The check server as scripts/serve runs it (gunicorn_checks.conf.py, its 2 asyncio workers),
    with metrics of its own, once it answers /readyz."""
    metrics = workdir / "check-metrics"
    env = {**os.environ, "ACCESSREVIEW_DATABASE_URL": url, "ACCESSREVIEW_SECRET_KEY": SECRET,
           "ACCESSREVIEW_INSTANCE_DIR": str(workdir), "PROMETHEUS_MULTIPROC_DIR": str(metrics),
           "ACCESSREVIEW_CHECK_BIND": f"127.0.0.1:{port}"}
    metrics.mkdir()
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", "gunicorn_checks.conf.py", "checks:app"],
                               cwd=tree, env=env, stderr=open(workdir / "checks.log", "w"), start_new_session=True)
    return _answering(process, f"http://127.0.0.1:{port}/readyz", 120,
                      f"the check server; see {workdir / 'checks.log'}")


def start_flask_floor(port: int, workdir: Path) -> subprocess.Popen:
    """bench/flask_floor.py on gunicorn as the service runs (2 sync workers, preloaded), once it answers."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "--workers", "2", "--worker-class", "sync",
                                "--preload", "--bind", f"127.0.0.1:{port}", "flask_floor:app"],
                               cwd=ROOT / "bench", env=env, stderr=open(workdir / "flask-floor.log", "w"),
                               start_new_session=True)
    return _answering(process, f"http://127.0.0.1:{port}/healthz", 60,
                      f"the Flask floor; see {workdir / 'flask-floor.log'}")


def _answering(process: subprocess.Popen, url: str, seconds: float, what: str) -> subprocess.Popen:
    """``process`` once ``url`` answers; stops the script if it has not within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return process
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"did not start: {what}")


def write_bodies(workdir: Path, rng: random.Random) -> tuple[Path, Path]:
    """wrk's request bodies, one a line: 5,000 single checks, and 200 batches of 100."""
    single, batch = workdir / "single.jsonl", workdir / "batch.jsonl"
    single.write_text("\n".join(json.dumps({"actor": a, "action": x, "resource": r})
                                for a, x, r in triples(rng, 5000)) + "\n")
    batch.write_text("\n".join(json.dumps({"checks": [{"actor": a, "action": x, "resource": r}
                                                      for a, x, r in triples(rng, 100)]})
                               for _ in range(200)) + "\n")
    return single, batch


def _entity(key: str) -> dict:
    kind, _, ident = key.partition(":")
    return {"type": kind, "id": ident}


def write_authzen_bodies(workdir: Path, rng: random.Random) -> tuple[Path, Path]:
    """The same kinds of requests as AuthZEN: 5,000 single evaluations, and 200 evaluations of 100."""
    single, batch = workdir / "evaluation.jsonl", workdir / "evaluations.jsonl"
    single.write_text("\n".join(json.dumps({"subject": _entity(a), "action": {"name": x}, "resource": _entity(r)})
                                for a, x, r in triples(rng, 5000)) + "\n")
    batch.write_text("\n".join(json.dumps({"evaluations": [
        {"subject": _entity(a), "action": {"name": x}, "resource": _entity(r)} for a, x, r in triples(rng, 100)]})
        for _ in range(200)) + "\n")
    return single, batch


def get_json(port: int, path: str, token: str, method: str = "GET", body: dict | None = None) -> tuple[float, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = json.loads(response.read())
    return (time.perf_counter() - t0) * 1000, payload


def _every_page(port: int, token: str, kind: str, body: dict) -> tuple[int, float, int]:
    """A search followed to its last page: how many pages, the seconds they took, how many results."""
    pages, seconds, found, next_token = 0, 0.0, 0, None
    while next_token != "":
        page = {**body.get("page", {}), **({"token": next_token} if next_token else {})}
        ms, answer = get_json(port, f"/access/v1/search/{kind}", token, "POST", {**body, "page": page})
        pages, seconds, found = pages + 1, seconds + ms / 1000, found + len(answer["results"])
        next_token = answer["page"]["next_token"]
    return pages, seconds, found


# Every request is formatted once, when wrk starts, not on each call: wrk runs on the same 2 cores
# as the server, and formatting each request took ~13 µs of them (4% fewer requests answered).
LUA = """
local requests = {}
local n = 0
init = function(args)
  local headers = {["Content-Type"] = "application/json",
                   ["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")}
  for line in io.lines(os.getenv("BENCH_BODIES")) do
    requests[#requests + 1] = wrk.format(os.getenv("BENCH_METHOD") or "POST", os.getenv("BENCH_PATH"), headers, line)
  end
end
request = function()
  n = n + 1
  return requests[(n % #requests) + 1]
end
"""


def wrk(url: str, seconds: int, connections: int, threads: int, env: dict | None = None, script: Path | None = None,
        workers: list[int] = ()) -> dict:
    """One wrk run; with ``workers``, also their CPU time (user + system) per request, and wrk's own."""
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency", url]
    if script:
        command[1:1] = ["-s", str(script)]
    cpu_before, wrk_before = _cpu_seconds(workers), _children_cpu_seconds()
    output = subprocess.run(command, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                            check=True).stdout
    cpu, wrk_cpu = _cpu_seconds(workers) - cpu_before, _children_cpu_seconds() - wrk_before
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", output, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {"rps": rate, "p50": _ms(latency["50"]), "p99": _ms(latency["99"]),
            "non_2xx": int(errors.group(1)) if errors else 0, "cpu_us": cpu * 1e6 / max(requests, 1),
            "wrk_cpu_us": wrk_cpu * 1e6 / max(requests, 1)}


def decision_counts(base: str) -> tuple[float, float]:
    """(written, dropped) decisions so far, summed over the workers, from /metrics."""
    metrics = urllib.request.urlopen(f"{base}/metrics", timeout=10).read().decode()
    return tuple(sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith(name))
                 for name in ("accessreview_decisions_written_total", "accessreview_decisions_dropped_total"))


def _cpu(run: dict) -> str:
    return f"{run['cpu_us']:.0f} / {run['wrk_cpu_us']:.0f} µs"


def _medians(results: list[dict]) -> dict:
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def _cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _children_cpu_seconds() -> float:
    """CPU time (user + system) of this script's finished child processes: the wrk runs."""
    usage = getrusage(RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def worker_pids(master: int) -> list[int]:
    return [int(pid) for pid in subprocess.run(["pgrep", "-P", str(master)], capture_output=True,
                                               text=True).stdout.split()]


def worker_memory_mb(master: int) -> list[tuple[float, float]]:
    """(resident, proportional) MB of each worker: the index pages shared with the master count
    fully in the first and are split among the sharing processes in the second."""
    sizes = []
    for pid in worker_pids(master):
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        sizes.append(tuple(int(re.search(rf"^{field}:\s+(\d+)", rollup, re.M).group(1)) / 1024
                           for field in ("Rss", "Pss")))
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1,
                        help="wrk threads; one keeps 8 connections busy and leaves the server more of the 2 cores")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the four wrk runs")
    parser.add_argument("--settle", type=float, default=4.0,
                        help="seconds between runs, for the decision log to catch up")
    parser.add_argument("--in-process-only", action="store_true",
                        help="stop after the in-process figures (no servers, no wrk)")
    parser.add_argument("--searches-only", action="store_true",
                        help="stop after the list, who-has-access and search figures (no wrk)")
    parser.add_argument("--checks-on", choices=("checks", "main"), default="checks",
                        help="the server whose checks, evaluations, searches and floors are measured: the check "
                             "server (production's, the default) or the main server")
    args = parser.parse_args()
    if shutil.which("wrk") is None and not (args.in_process_only or args.searches_only):
        raise SystemExit("needs wrk on PATH (Debian: apt-get install wrk)")
    rng = random.Random(42)
    print(f"load average at the start (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{os.cpu_count()} cores")
    workdir = Path(tempfile.mkdtemp(prefix="accessreview-bench-"))
    url = f"sqlite:///{workdir / 'bench.sqlite3'}"
    t0 = time.perf_counter()
    built = build_directory(url, rng)
    print(f"directory: {built['principals']:,} principals, {built['resources']:,} resources, "
          f"{built['grants']:,} grants (built in {time.perf_counter() - t0:.1f} s)")

    local = in_process(url, rng, built["token"])
    print(f"in-process check: compiled {local['fast_us']:.2f} µs median; bare oso.is_allowed "
          f"{local['oso_us']:.0f} µs median; {local['oso_us'] / local['fast_us']:.0f}x faster; "
          f"{local['disagreements']} disagreements in {local['oso_sampled']} sampled checks; "
          f"index loaded in {local['load_s']:.2f} s")
    print(f"in-process attribute rule (a todo decided on its properties, through oso): "
          f"{local['attribute_us']:.0f} µs median beside the compiled path's {local['fast_us']:.2f} µs "
          f"({local['attribute_us'] / local['fast_us']:.0f}x; {local['owned']} of 500 allowed)")
    print(f"in-process request through the hot path, no load: health probe {local['probe_us']:.2f} µs, "
          f"single check {local['request_us']:.2f} µs ({local['request_us'] - local['probe_us']:.2f} µs more)")
    if args.in_process_only:
        return

    main_port, flask_port = free_port(), free_port()
    servers = [start_server(url, main_port, workdir)]
    try:
        servers.append(start_flask_floor(flask_port, workdir))
        if args.checks_on == "checks":
            port = free_port()
            servers.append(start_check_server(url, port, workdir))
        else:
            port = main_port
        server = servers[-1] if args.checks_on == "checks" else servers[0]
        flask_floor = servers[1]
        print(f"checks, evaluations, searches and floors measured on the "
              f"{'check server (gunicorn_checks.conf.py, 2 asyncio workers)' if args.checks_on == 'checks' else 'main server (gunicorn.conf.py, 2 workers)'}")
        token = built["token"]
        lists = [get_json(main_port, "/v1/principals/user:u1/resources?action=read&type=document&limit=100", token)
                 for _ in range(7)]
        access = [get_json(main_port, "/v1/resources/document/o0-p3-d7/access?limit=100", built["lead_token"])
                  for _ in range(7)]
        list_ms, access_ms = (statistics.median(t for t, _ in answers[1:]) for answers in (lists, access))
        searches = {
            "resource": {"subject": _entity("user:u1"), "action": {"name": "read"}, "resource": {"type": "document"},
                         "page": {"limit": 100}},
            "subject": {"subject": {"type": "user"}, "action": {"name": "read"},
                        "resource": _entity("document:o0-p3-d7"), "page": {"limit": 100}},
            "action": {"subject": _entity("user:u1"), "resource": _entity("document:o0-p3-d7")},
            "resource (todo)": {"subject": _entity("user:u1"), "action": {"name": "read"},
                                "resource": {"type": "todo"}, "page": {"limit": 100}},
            "subject (todo)": {"subject": {"type": "user"}, "action": {"name": "delete"},
                               "resource": {"type": "todo", "id": "new", "properties": {"ownerID": "u5000"}},
                               "page": {"limit": 100}},
        }
        search_ms = {kind: statistics.median([get_json(port, f"/access/v1/search/{kind.split()[0]}", token, "POST",
                                                       body)[0] for _ in range(7)][1:])
                     for kind, body in searches.items()}
        print("AuthZEN searches, first page: " + ", ".join(f"{kind} {ms:.1f} ms" for kind, ms in search_ms.items())
              + " median (resource: user:u1's 10,000 documents; subject and action: a document of the "
                "500-member organization; todos, evaluated by oso candidate by candidate: user:u1's 1,000 "
                "todos, and who may delete a todo the directory does not hold, of 10,000 users)")
        for kind in ("resource (todo)", "subject (todo)"):
            pages, seconds, found = _every_page(port, token, kind.split()[0], searches[kind])
            print(f"  {kind} to the end: {found:,} results in {pages} pages, {seconds:.2f} s in all")
        if args.searches_only:
            return
        print(f"list endpoint, first page (user:u1 reaches 10,000 documents): "
              f"{list_ms:.1f} ms median; "
              f"who-has-access, a document of the 500-member organization: "
              f"{access_ms:.1f} ms median "
              f"({len(access[0][1]['items'])} principals on the first page)")

        bodies_single, bodies_batch = write_bodies(workdir, rng)
        script = workdir / "post.lua"
        script.write_text(LUA)
        base = f"http://127.0.0.1:{port}"
        workers, flask_workers = worker_pids(server.pid), worker_pids(flask_floor.pid)
        wrk(f"{base}/healthz", 2, args.connections, args.threads)  # warm-up
        wrk(f"http://127.0.0.1:{flask_port}/healthz", 2, args.connections, args.threads)
        single_env = {"BENCH_BODIES": str(bodies_single), "BENCH_TOKEN": token}
        evaluation_bodies, evaluations_bodies = write_authzen_bodies(workdir, rng)

        def settle() -> None:
            # The workers write the previous run's decisions in the background (a batch run leaves a
            # backlog of seconds): let them finish before the next run is timed.
            time.sleep(args.settle)

        def logged(kind: str, url: str, measured: list[int] = workers, **options) -> None:
            """One timed run, then what the decision log wrote and dropped for it."""
            before = decision_counts(base)
            result = wrk(url, args.seconds, args.connections, args.threads, workers=measured, **options)
            settle()
            after = decision_counts(base)
            result.update(written=after[0] - before[0], dropped=after[1] - before[1])
            runs[kind].append(result)

        runs: dict[str, list[dict]] = {"floor": [], "shaped": [], "flask": [], "single": [], "batch": [],
                                       "evaluation": [], "evaluations": []}
        for _ in range(args.rounds):  # interleaved, so a slow spell of the machine hits every kind alike
            logged("floor", f"{base}/healthz")
            # The same floor, asked the way the checks are asked: the same Lua script, headers and bodies.
            logged("shaped", f"{base}/healthz", script=script,
                   env={**single_env, "BENCH_PATH": "/healthz", "BENCH_METHOD": "GET"})
            logged("flask", f"http://127.0.0.1:{flask_port}/healthz", flask_workers)
            logged("single", f"{base}/v1/authorize", script=script, env={**single_env, "BENCH_PATH": "/v1/authorize"})
            logged("batch", f"{base}/v1/authorize/batch", script=script,
                   env={"BENCH_BODIES": str(bodies_batch), "BENCH_TOKEN": token, "BENCH_PATH": "/v1/authorize/batch"})
            logged("evaluation", f"{base}/access/v1/evaluation", script=script,
                   env={"BENCH_BODIES": str(evaluation_bodies), "BENCH_TOKEN": token,
                        "BENCH_PATH": "/access/v1/evaluation"})
            logged("evaluations", f"{base}/access/v1/evaluations", script=script,
                   env={"BENCH_BODIES": str(evaluations_bodies), "BENCH_TOKEN": token,
                        "BENCH_PATH": "/access/v1/evaluations"})
        floor, shaped, flask, single, batch, evaluation, evaluations = (_medians(runs[k]) for k in runs)
        evaluation_share = statistics.median(e["rps"] / s["rps"] for e, s in zip(runs["evaluation"], runs["single"]))
        evaluations_share = statistics.median(e["rps"] / b["rps"] for e, b in zip(runs["evaluations"], runs["batch"]))

        def of(kind: str) -> float:
            """The single checks' throughput over a floor's: the median of the rounds' ratios."""
            return statistics.median(s["rps"] / f["rps"] for s, f in zip(runs["single"], runs[kind]))

        print(f"medians of {args.rounds} interleaved rounds of {args.seconds} s, {args.connections} connections, "
              f"{args.threads} wrk thread(s); CPU per request: the 2 workers' / wrk's own")
        print(f"HTTP floor (GET /healthz, a constant JSON answer): {floor['rps']:,.0f} req/s, "
              f"p50 {floor['p50']:.2f} ms, p99 {floor['p99']:.2f} ms; CPU {_cpu(floor)}")
        print(f"  the same, sent with the checks' headers and bodies by the same wrk script: {shaped['rps']:,.0f} "
              f"req/s, p50 {shaped['p50']:.2f} ms, p99 {shaped['p99']:.2f} ms; "
              f"CPU {_cpu(shaped)}")
        print(f"  the issue's floor, a plain Flask view answering a constant on the same gunicorn (DESIGN.md: "
              f"~6,600 req/s on its machine): {flask['rps']:,.0f} req/s, p50 {flask['p50']:.2f} ms, "
              f"p99 {flask['p99']:.2f} ms; CPU {_cpu(flask)}")
        print(f"single checks: {single['rps']:,.0f} req/s ({of('floor'):.0%} of the floor, {of('shaped'):.0%} of the "
              f"same-shaped floor, {of('flask'):.0%} of the plain Flask floor; medians of the rounds' ratios), "
              f"p50 {single['p50']:.2f} ms, "
              f"p99 {single['p99']:.2f} ms, non-2xx {single['non_2xx']}; CPU {_cpu(single)}")
        # Little's law: with a fixed number of requests in flight, the mean latency is that number over
        # the throughput. The floor's tail (its p99 over that mean) is the machine's and the server's,
        # not the check's; with the same tail, the checks' p99 would be this.
        floor_tail = floor["p99"] / (args.connections / floor["rps"] * 1000)
        print(f"  the checks' p99 with the floor's own tail ({floor_tail:.2f}x its mean latency) would be "
              f"{floor_tail * args.connections / single['rps'] * 1000:.2f} ms; under 2 ms needs "
              f"{floor_tail * args.connections / 2 * 1000:,.0f} req/s at this tail")
        print(f"batches of 100: {batch['rps'] * 100:,.0f} checks/s ({batch['rps']:,.0f} req/s), "
              f"p50 {batch['p50']:.2f} ms, p99 {batch['p99']:.2f} ms, non-2xx {batch['non_2xx']}; "
              f"CPU per check {batch['cpu_us'] / 100:.1f} / {batch['wrk_cpu_us'] / 100:.1f} µs")
        print(f"AuthZEN single evaluations: {evaluation['rps']:,.0f} req/s ({evaluation_share:.0%} of /v1/authorize's "
              f"single checks, median of the rounds' ratios), p50 {evaluation['p50']:.2f} ms, "
              f"p99 {evaluation['p99']:.2f} ms, non-2xx {evaluation['non_2xx']}; CPU {_cpu(evaluation)}")
        print(f"AuthZEN evaluations of 100: {evaluations['rps'] * 100:,.0f} checks/s ({evaluations['rps']:,.0f} req/s; "
              f"{evaluations_share:.0%} of /v1/authorize/batch's, median of the rounds' ratios), "
              f"p50 {evaluations['p50']:.2f} ms, p99 {evaluations['p99']:.2f} ms, non-2xx {evaluations['non_2xx']}; "
              f"CPU per check {evaluations['cpu_us'] / 100:.1f} / {evaluations['wrk_cpu_us'] / 100:.1f} µs")
        print("every round (req/s; p99 ms): " + "; ".join(
            f"{kind} " + ", ".join(f"{r['rps']:,.0f} ({r['p99']:.2f})" for r in results)
            for kind, results in runs.items()))
        print("decisions written / dropped by the decision log, per round: " + "; ".join(
            f"{kind} " + ", ".join(f"{r['written']:,.0f} / {r['dropped']:,.0f}" for r in results)
            for kind, results in runs.items() if kind in ("single", "batch", "evaluation", "evaluations")))
        memory = worker_memory_mb(server.pid)
        print(f"memory per worker (resident / proportional share): "
              f"{', '.join(f'{rss:.0f} / {pss:.0f} MB' for rss, pss in memory)}")
        print("the issue's targets, from the figures above:")
        for target, figure, met in [
            ("single checks >= 90% of the issue's floor (a plain Flask view)", f"{of('flask'):.0%}", of("flask") >= 0.9),
            ("the same of the service's own floor (its hot path's /healthz, stricter)",
             f"{of('floor'):.0%} ({of('shaped'):.0%} of the same-shaped)", of("floor") >= 0.9),
            ("single-check p99 < 2 ms at 8 connections", f"{single['p99']:.2f} ms (the issue's floor's own: "
             f"{flask['p99']:.2f} ms)", single["p99"] < 2),
            ("batches >= 100,000 checks/s", f"{batch['rps'] * 100:,.0f}", batch["rps"] * 100 >= 100_000),
            ("in-process >= 50x bare oso", f"{local['oso_us'] / local['fast_us']:.0f}x",
             local["oso_us"] / local["fast_us"] >= 50),
            ("list / who-has-access < 100 ms", f"{list_ms:.1f} / {access_ms:.1f} ms", max(list_ms, access_ms) < 100),
            ("AuthZEN single evaluations >= 95% of /v1/authorize's single checks", f"{evaluation_share:.0%}",
             evaluation_share >= 0.95),
            ("AuthZEN evaluations of 100 >= 150,000 checks/s", f"{evaluations['rps'] * 100:,.0f} "
             f"({evaluations_share:.0%} of /v1/authorize/batch's {batch['rps'] * 100:,.0f} in the same run)",
             evaluations["rps"] * 100 >= 150_000),
            ("AuthZEN searches' first page < 100 ms", ", ".join(f"{k} {v:.1f} ms" for k, v in search_ms.items()),
             max(search_ms.values()) < 100),
            ("memory per worker < 500 MB", f"{max(rss for rss, _ in memory):.0f} MB resident at most",
             max(rss for rss, _ in memory) < 500),
        ]:
            print(f"  {'met' if met else 'NOT MET':7s} {target}: {figure}")
        print(f"load average at the end (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        for process in servers:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
