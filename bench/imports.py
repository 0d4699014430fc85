"""A 200,000-grant directory import as the job it becomes: how long it takes, how long the write lock
is held at most, and the memory it takes, on SQLite or PostgreSQL.

    .venv/bin/python bench/imports.py                                   # a fresh SQLite file
    .venv/bin/python bench/imports.py --database-url postgresql+psycopg://postgres@127.0.0.1/arbench
    .venv/bin/python bench/imports.py --grants 20000 --profile apply     # where an apply step goes

The directory is bench/authorize.py's (10,000 users, 100,000 documents); the import merges
``--grants`` new viewer grants from a new source, then a replace of the same source drops a tenth of
them. Each is started as the API starts it (rows staged, job recorded) and its steps are run here one
by one, timed by phase, as `accessreview worker` would run them.

A step's time includes the process's own index catch-up after its commit; "lock held" is the time
from the directory's state row being locked to the commit (on SQLite the whole step holds the
database's one write lock, so read the step's time there). Memory: the process's resident size
before the job and its peak after staging, validation and the apply steps (the payloads of the
bench itself are dropped before the job runs).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import random
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from authorize import SECRET, build_directory  # noqa: E402
from campaign import empty_postgres  # noqa: E402
from sqlalchemy import event  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from accessreview import audit, create_app, jobs  # noqa: E402
from accessreview.audit import WriteContext  # noqa: E402
from accessreview.directory import imports, service  # noqa: E402
from accessreview.directory.imports import run_import  # noqa: E402
from accessreview.directory.schemas import ImportPayload  # noqa: E402
from accessreview.models import Job  # noqa: E402

TARGET_LOCK_SECONDS, TARGET_MB = 1.0, 1024
LOCK_HELD: list[float] = []  # seconds from lock_state to the end of the transaction, per transaction


def _watch_lock() -> None:
    """Time each transaction from the moment it locks the directory's state row to its end."""
    original = audit.lock_state

    def lock_state(session):
        session.info.setdefault("bench_locked_at", time.perf_counter())
        return original(session)

    for module in (audit, imports, service):
        module.lock_state = lock_state

    @event.listens_for(Session, "after_transaction_end")
    def _ended(session, transaction):
        if transaction.parent is None and "bench_locked_at" in session.info:
            LOCK_HELD.append(time.perf_counter() - session.info.pop("bench_locked_at"))


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def payload(count: int, rng_seed: int = 5) -> list[dict]:
    rng, grants = random.Random(rng_seed), {}
    while len(grants) < count:
        key = (f"user:u{rng.randrange(10_000)}", "viewer",
               f"document:o{rng.randrange(100)}-p{rng.randrange(20)}-d{rng.randrange(50)}")
        grants[key] = {"principal": key[0], "role": key[1], "resource": key[2]}
    return list(grants.values())


def timed_import(app, body: dict, profiler: cProfile.Profile | None, profiled: set[str]) -> dict:
    """Start the import as the API does, then run its steps one by one, timed by phase."""
    before = rss_mb()
    started = time.perf_counter()
    outcome = run_import(app, WriteContext("bench", app.config["CLOCK"].now()), ImportPayload.model_validate(body))
    staged = time.perf_counter() - started
    body.clear()  # the bench's own copy of the rows: the worker never holds them
    gc.collect()
    memory = {"before": before, "staging": peak_mb()}
    runner, sessions = jobs.runner(app), app.extensions["db"].sessionmaker
    phases, longest, steps = defaultdict(float), defaultdict(float), defaultdict(int)
    locks: dict[str, list[float]] = defaultdict(list)
    cpu: dict[str, list[float]] = defaultdict(list)
    while True:
        session = sessions()
        phase = session.get(Job, outcome.job["id"]).phase
        session.close()
        phase = "validate" if phase == "start" else phase
        LOCK_HELD.clear()
        use = profiler if phase in profiled else None
        t0, c0 = time.perf_counter(), time.process_time()
        if use:
            use.enable()
        state = runner.step(outcome.job["id"])
        if use:
            use.disable()
        took = time.perf_counter() - t0
        cpu[phase].append(time.process_time() - c0)
        phases[phase] += took
        longest[phase] = max(longest[phase], took)
        steps[phase] += 1
        locks[phase].append(max(LOCK_HELD, default=0.0))
        memory[phase] = peak_mb()
        if state in ("done", "failed", None):
            break
    assert state == "done", f"job {outcome.job['id']} ended {state}"
    return {"seconds": time.perf_counter() - started, "staged": staged, "phases": phases, "longest": longest,
            "steps": steps, "locks": locks, "cpu": cpu, "memory": memory}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (emptied first); default: new SQLite")
    parser.add_argument("--grants", type=int, default=200_000)
    parser.add_argument("--profile", default="", help="job phases to profile, comma-separated (validate,apply); "
                                                      "the 30 costliest functions are printed at the end")
    args = parser.parse_args()
    profiled = set(filter(None, args.profile.split(",")))
    profiler = cProfile.Profile() if profiled else None
    workdir = Path(tempfile.mkdtemp(prefix="accessreview-bench-imports-"))
    url = args.database_url or f"sqlite:///{workdir / 'bench.sqlite3'}"
    if url.startswith("postgresql"):
        empty_postgres(url)
    built = build_directory(url, random.Random(7))
    print(f"{url.split(':', 1)[0]}: {built['grants']:,} grants before; batches of {imports.IMPORT_BATCH:,} rows")
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": SECRET, "INSTANCE_DIR": str(workdir),
                      "REFRESH_INTERVAL": 0, "DECISION_FLUSH_INTERVAL": 0, "LOG_LEVEL": "WARNING",
                      "JOB_INLINE_SECONDS": 0})
    _watch_lock()
    print("| import | total | staging (request) | validate (steps, longest) | apply (steps, average) | "
          "longest apply step | longest lock held | CPU of this process per apply step (average, most) | "
          "RSS before job → peak after staging / validate / apply |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, mode, share in ((f"merge of {args.grants:,} new grants", "merge", 10),
                              (f"replace keeping {args.grants * 9 // 10:,} of them", "replace", 9)):
        rows = payload(args.grants)[: args.grants * share // 10]
        result = timed_import(app, {"source": "hr", "mode": mode, "grants": rows}, profiler, profiled)
        del rows
        phases, steps, memory = result["phases"], result["steps"], result["memory"]
        lock = max(max(held, default=0.0) for held in result["locks"].values())
        apply_cpu = result["cpu"]["apply"] or [0.0]
        print(f"| {name} | {result['seconds']:.1f} s | {result['staged']:.1f} s | {phases['validate']:.1f} s "
              f"({steps['validate']}, {result['longest']['validate']:.2f} s) | "
              f"{phases['apply']:.1f} s ({steps['apply']}, {phases['apply'] / max(steps['apply'], 1):.2f} s) | "
              f"{result['longest']['apply']:.2f} s | {lock:.2f} s | "
              f"{sum(apply_cpu) / len(apply_cpu):.2f} s, {max(apply_cpu):.2f} s | {memory['before']:.0f} MB → "
              f"{memory['staging']:.0f} / {memory['validate']:.0f} / {memory.get('apply', 0):.0f} MB |", flush=True)
    print(f"targets: lock held ≤ {TARGET_LOCK_SECONDS:.0f} s of work per step; peak < {TARGET_MB} MB")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)


if __name__ == "__main__":
    main()
