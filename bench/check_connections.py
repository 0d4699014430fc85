"""How a client's keep-alive connections fall on the check server's workers, and what that does to its rate.

    .venv/bin/python bench/check_connections.py                 # the working tree, 8 runs
    .venv/bin/python bench/check_connections.py --revision 4d8c594 --runs 12

Starts one check server (gunicorn_checks.conf.py, 2 workers) on bench/authorize.py's directory, then
again and again opens wrk's 8 connections at once, as a portal's pool does, and sends single checks
for a few seconds. While each run goes on it counts, with ``ss -tnp``, which worker holds each
connection, and prints that beside the run's checks a second. A worker that takes every connection
of the burst serves them all on one core for as long as they live. Needs wrk and ss (iproute2).
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import authorize as bench  # noqa: E402
import compare  # noqa: E402


def held_by(port: int) -> collections.Counter:
    """Established connections on ``port``, counted by the pid of the process that holds each."""
    listed = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"], capture_output=True,
                            text=True, check=True).stdout
    return collections.Counter(re.findall(r"pid=(\d+)", listed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--revision", help="a git revision (default: the working tree)")
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=6)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="accessreview-connections-"))
    server = compare.Revision("server", args.revision, workdir)
    try:
        token = server.build()
        server.start("checks")
        single, _ = bench.write_bodies(workdir, random.Random(7))
        script = workdir / "post.lua"
        script.write_text(bench.LUA)
        env = {**os.environ, "BENCH_BODIES": str(single), "BENCH_TOKEN": token, "BENCH_PATH": "/v1/authorize"}
        rates: dict[str, list[float]] = {"split": [], "one worker": []}
        for run in range(1, args.runs + 1):
            load = subprocess.Popen(["wrk", "-t1", "-c8", f"-d{args.seconds}s", "-s", str(script),
                                     f"{server.base}/v1/authorize"], env=env, stdout=subprocess.PIPE, text=True)
            time.sleep(args.seconds / 2)
            held = held_by(server.port)
            output = load.communicate()[0]
            rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
            shares = sorted((held.get(str(pid), 0) for pid in server.workers), reverse=True)
            rates["one worker" if shares[-1] == 0 else "split"].append(rate)
            print(f"run {run}: connections per worker {' : '.join(map(str, shares))}, {rate:,.0f} checks/s", flush=True)
            time.sleep(1)  # wrk's connections closed before the next burst
        for kind, found in rates.items():
            if found:
                print(f"{kind}: {len(found)} of {args.runs} runs, median {sorted(found)[len(found) // 2]:,.0f} checks/s")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
