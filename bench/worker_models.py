"""Which gunicorn worker model keeps checks going when idle and slow clients connect?

    .venv/bin/python bench/worker_models.py

bench/authorize.py's directory in a fresh SQLite file; for each model (the check server's asyncio
workers, sync workers, threaded workers with 8 and 32 threads; 2 workers each) wrk drives single
checks at 8 connections for 8 s, quietly, then while 50 idle connections and 20 slow clients (a
header line every 5 s) are open against the same server: two rounds each, checks/s and p50/p99.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from authorize import LUA, SECRET, _answering, build_directory, free_port, write_bodies, wrk  # noqa: E402
from interference import Pests  # noqa: E402

MODELS = {
    "check server (asyncio)": ("gunicorn_checks.conf.py", "checks:app", []),
    "sync": ("gunicorn.conf.py", "wsgi:app", ["--worker-class", "sync"]),
    "threaded, 8 threads": ("gunicorn.conf.py", "wsgi:app", ["--worker-class", "gthread", "--threads", "8"]),
    "threaded, 32 threads": ("gunicorn.conf.py", "wsgi:app", ["--worker-class", "gthread", "--threads", "32"]),
}


def main() -> None:
    rng = random.Random(42)
    workdir = Path(tempfile.mkdtemp(prefix="accessreview-bench-workers-"))
    url = f"sqlite:///{workdir / 'bench.sqlite3'}"
    built = build_directory(url, rng)
    bodies, _ = write_bodies(workdir, rng)
    script = workdir / "post.lua"
    script.write_text(LUA)
    env = {"BENCH_BODIES": str(bodies), "BENCH_TOKEN": built["token"], "BENCH_PATH": "/v1/authorize"}
    server_env = {**os.environ, "ACCESSREVIEW_DATABASE_URL": url, "ACCESSREVIEW_SECRET_KEY": SECRET,
                  "ACCESSREVIEW_INSTANCE_DIR": str(workdir)}
    for name, (config, target, extra) in MODELS.items():
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", config, "--bind", f"127.0.0.1:{port}",
                                   "--workers", "2", *extra, target], cwd=ROOT, env=server_env,
                                  stderr=open(workdir / "server.log", "a"), start_new_session=True)
        _answering(server, f"http://127.0.0.1:{port}/readyz", 120, "the server")
        url_ = f"http://127.0.0.1:{port}/v1/authorize"
        try:
            wrk(url_, 2, 8, 1, env=env, script=script)
            for _ in range(2):
                quiet = wrk(url_, 8, 8, 1, env=env, script=script)
                pests = Pests(port, path="/healthz", every=5)
                time.sleep(1)
                try:
                    noisy = wrk(url_, 8, 8, 1, env=env, script=script)
                finally:
                    pests.close()
                time.sleep(2)
                print(f"{name}: quiet {quiet['rps']:,.0f}/s (p99 {quiet['p99']:.2f} ms); with 50 idle and 20 slow "
                      f"clients {noisy['rps']:,.0f}/s (p99 {noisy['p99']:.2f} ms)", flush=True)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait()


if __name__ == "__main__":
    main()
