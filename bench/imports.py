"""A 200,000-grant directory import as the job it becomes: how long it takes, and how long the write
lock is held at most (its longest step), on SQLite or PostgreSQL.

    .venv/bin/python bench/imports.py                                   # a fresh SQLite file
    .venv/bin/python bench/imports.py --database-url postgresql+psycopg://postgres@127.0.0.1/arbench

The directory is bench/authorize.py's (10,000 users, 100,000 documents); the import merges
``--grants`` new viewer grants from a new source, then a replace of the same source drops a tenth of
them. Each is started as the API starts it (rows staged, job recorded) and its steps are run here one
by one, timed by phase, as `accessreview worker` would run them.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from authorize import SECRET, build_directory  # noqa: E402
from campaign import empty_postgres, rss_mb, run_job  # noqa: E402

from accessreview import create_app  # noqa: E402
from accessreview.audit import WriteContext  # noqa: E402
from accessreview.directory.imports import IMPORT_BATCH, run_import  # noqa: E402
from accessreview.directory.schemas import ImportPayload  # noqa: E402


def payload(count: int, mode: str = "merge", rng_seed: int = 5) -> ImportPayload:
    rng, grants = random.Random(rng_seed), {}
    while len(grants) < count:
        key = (f"user:u{rng.randrange(10_000)}", "viewer",
               f"document:o{rng.randrange(100)}-p{rng.randrange(20)}-d{rng.randrange(50)}")
        grants[key] = {"principal": key[0], "role": key[1], "resource": key[2]}
    return ImportPayload.model_validate({"source": "hr", "mode": mode, "grants": list(grants.values())})


def timed_import(app, body: ImportPayload) -> dict:
    started = time.perf_counter()
    outcome = run_import(app, WriteContext("bench", app.config["CLOCK"].now()), body)
    staged = time.perf_counter() - started
    job = run_job(app, outcome.job["id"])
    return {**job, "staged": staged, "seconds": staged + job["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (emptied first); default: new SQLite")
    parser.add_argument("--grants", type=int, default=200_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="accessreview-bench-imports-"))
    url = args.database_url or f"sqlite:///{workdir / 'bench.sqlite3'}"
    if url.startswith("postgresql"):
        empty_postgres(url)
    built = build_directory(url, random.Random(7))
    print(f"{url.split(':', 1)[0]}: {built['grants']:,} grants before; batches of {IMPORT_BATCH:,} rows")
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": SECRET, "INSTANCE_DIR": str(workdir),
                      "REFRESH_INTERVAL": 0, "DECISION_FLUSH_INTERVAL": 0, "LOG_LEVEL": "WARNING",
                      "JOB_INLINE_SECONDS": 0})
    merge = payload(args.grants)
    replace = ImportPayload.model_validate({"source": "hr", "mode": "replace",
                                           "grants": [g.model_dump() for g in merge.grants[: args.grants * 9 // 10]]})
    print("| import | total | staging (request) | validate (no lock on PostgreSQL) | apply | longest apply step "
          "(holds the write lock) | peak RSS |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, body in ((f"merge of {args.grants:,} new grants", merge),
                       (f"replace keeping {len(replace.grants):,} of them", replace)):
        result = timed_import(app, body)
        phases = result["phases"]
        print(f"| {name} | {result['seconds']:.1f} s | {result['staged']:.1f} s | {phases.get('start', 0):.1f} s | "
              f"{phases.get('apply', 0):.1f} s | {result['longest_by_phase'].get('apply', 0):.2f} s | "
              f"{rss_mb():.0f} MB |", flush=True)


if __name__ == "__main__":
    main()
