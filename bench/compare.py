"""Two revisions of the service side by side, under the same load, at the same time.

    .venv/bin/python bench/compare.py c61db7e            # that commit against the working tree
    .venv/bin/python bench/compare.py c61db7e HEAD --rounds 8 --kinds single
    .venv/bin/python bench/compare.py c61db7e --server checks --kinds evaluations,padded

These machines' speed drifts by 10-20% within an hour, more than most changes to the hot path, so
figures taken before and after a change at different times cannot tell the two apart. This starts
both revisions' servers at once (gunicorn, 2 workers, as scripts/serve), each on its own copy of
the benchmark's directory, built and migrated by that revision's own bench/authorize.py, and points
wrk (1 thread, 8 connections) at them in turn, round after round, alternating which goes first. It
prints every run, then the medians of each revision and kind, and single checks as a share of the
same revision's floor in each round. Needs wrk (Debian: apt-get install wrk) and git.

Kinds: ``floor`` (GET /healthz), ``single`` and ``batch`` (/v1/authorize, of 1 and 100 checks),
``evaluations`` (AuthZEN's /access/v1/evaluations of 100), and ``padded``: evaluations requests
of the same size holding one evaluation each, the rest of the body an unknown field (which AuthZEN
ignores): what a batch request costs the server apart from its checks (reading ~13 KB, the check
server's hand-off to its thread pool, authenticating, one decision recorded, an answer), the
floor under a batch's per-check cost; ``forged``: single checks sent with a made-up token of a token's
shape, what a caller guessing tokens costs the server (each answered 401). ``--server checks`` measures the check server (gunicorn_checks.conf.py), where
production answers checks; the default is the main server.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import authorize as bench  # noqa: E402

KINDS = ("floor", "single", "batch", "evaluations", "padded", "forged")
FORGED_TOKEN = "ar_000000000000_" + "x" * 43  # a token's shape, no token's secret: every answer is 401


class Revision:
    """One revision's checkout, database and running server."""

    def __init__(self, name: str, rev: str | None, workdir: Path) -> None:
        self.name = name
        self.workdir = workdir / name
        self.workdir.mkdir()
        if rev is None:
            self.tree = ROOT
        else:
            self.tree = self.workdir / "tree"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(self.tree), rev], check=True)
        self.url = f"sqlite:///{self.workdir / 'bench.sqlite3'}"
        self.server: subprocess.Popen | None = None
        self.port = 0
        self.workers: list[int] = []

    def python(self, code: str) -> str:
        """Run ``code`` with this revision's own modules first on the path; returns its output."""
        return subprocess.run([sys.executable, "-c", code], cwd=self.tree, capture_output=True, text=True,
                              check=True).stdout.strip()

    def build(self) -> str:
        """The benchmark's directory, built by this revision's code; returns the portal's token."""
        found = self.python("import accessreview; print(accessreview.__file__)")
        if not Path(found).is_relative_to(self.tree):
            raise SystemExit(f"{self.name}: imports {found}, not its own tree {self.tree}")
        return self.python("import random, sys; sys.path.insert(0, 'bench'); import authorize as b; "
                           f"print(b.build_directory({self.url!r}, random.Random(42))['token'])").splitlines()[-1]

    def start(self, server: str) -> None:
        self.port = bench.free_port()
        start = bench.start_check_server if server == "checks" else bench.start_server
        self.server = start(self.url, self.port, self.workdir, self.tree)
        deadline = time.monotonic() + 60
        while len(self.workers) < 2:  # /readyz answers once one worker is up; CPU is read from both
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.name}: 2 workers did not start; see {self.workdir / 'server.log'}")
            time.sleep(0.2)
            self.workers = bench.worker_pids(self.server.pid)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.server is not None:
            os.killpg(self.server.pid, signal.SIGTERM)
            self.server.wait(timeout=30)
        if self.tree != ROOT:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(self.tree)], check=False)


def _padded(evaluations: Path, path: Path) -> Path:
    """Each request of ``evaluations`` as one of its evaluations, padded to the same length."""
    lines = []
    for line in evaluations.read_text().splitlines():
        one = {"evaluations": json.loads(line)["evaluations"][:1], "padding": ""}
        one["padding"] = "x" * (len(line) - len(json.dumps(one)))
        lines.append(json.dumps(one))
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", help="a git revision")
    parser.add_argument("head", nargs="?", help="another git revision (default: the working tree)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--kinds", default=",".join(KINDS), help="of " + ", ".join(KINDS))
    parser.add_argument("--settle", type=float, default=3.0, help="seconds between runs")
    parser.add_argument("--server", choices=("main", "checks"), default="main",
                        help="the server measured: the main one (gunicorn.conf.py) or the check server")
    args = parser.parse_args()
    kinds = args.kinds.split(",")
    if not set(kinds) <= set(KINDS) or shutil.which("wrk") is None:
        raise SystemExit(f"--kinds takes {', '.join(KINDS)}; wrk must be on PATH")
    workdir = Path(tempfile.mkdtemp(prefix="accessreview-compare-"))
    revisions = [Revision("base", args.base, workdir), Revision("head", args.head, workdir)]
    try:
        tokens = {r.name: r.build() for r in revisions}
        for revision in revisions:
            revision.start(args.server)
        rng = random.Random(7)
        single, batch = bench.write_bodies(workdir, rng)
        _, evaluations = bench.write_authzen_bodies(workdir, rng)
        padded = _padded(evaluations, workdir / "padded.jsonl")
        script = workdir / "post.lua"
        script.write_text(bench.LUA)
        for revision in revisions:
            bench.wrk(f"{revision.base}/healthz", 2, 8, 1)  # warm-up

        def run(revision: Revision, kind: str) -> dict:
            if kind == "floor":
                return bench.wrk(f"{revision.base}/healthz", args.seconds, 8, 1, workers=revision.workers)
            path, bodies = {"single": ("/v1/authorize", single), "forged": ("/v1/authorize", single),
                            "batch": ("/v1/authorize/batch", batch),
                            "evaluations": ("/access/v1/evaluations", evaluations),
                            "padded": ("/access/v1/evaluations", padded)}[kind]
            return bench.wrk(f"{revision.base}{path}", args.seconds, 8, 1, workers=revision.workers, script=script,
                             env={"BENCH_BODIES": str(bodies),
                                  "BENCH_TOKEN": FORGED_TOKEN if kind == "forged" else tokens[revision.name],
                                  "BENCH_PATH": path})

        results: dict[tuple[str, str], list[dict]] = {(r.name, k): [] for r in revisions for k in kinds}
        for round_ in range(args.rounds):
            order = revisions if round_ % 2 == 0 else revisions[::-1]
            for kind in kinds:
                for revision in order:
                    result = run(revision, kind)
                    results[(revision.name, kind)].append(result)
                    refused = f", {result['non_2xx']:,} answers not 2xx" if result["non_2xx"] else ""
                    print(f"round {round_ + 1} {revision.name} {kind:6} {result['rps']:9,.0f} req/s, "
                          f"p99 {result['p99']:.2f} ms, CPU {result['cpu_us']:.0f} / {result['wrk_cpu_us']:.0f} µs"
                          f"{refused}", flush=True)
                    time.sleep(args.settle)
        print(f"medians of {args.rounds} rounds of {args.seconds} s (CPU per request: the 2 workers' / wrk's):")
        for kind in kinds:
            for revision in revisions:
                runs = results[(revision.name, kind)]
                print(f"  {kind:6} {revision.name}: {statistics.median(r['rps'] for r in runs):9,.0f} req/s, "
                      f"p99 {statistics.median(r['p99'] for r in runs):.2f} ms, "
                      f"CPU {statistics.median(r['cpu_us'] for r in runs):.0f} µs")
        if "floor" in kinds and "single" in kinds:
            for revision in revisions:
                shares = [s["rps"] / f["rps"] for f, s in zip(results[(revision.name, "floor")],
                                                              results[(revision.name, "single")])]
                print(f"  single checks as a share of the floor, {revision.name}: "
                      f"{', '.join(f'{x:.0%}' for x in shares)}; median {statistics.median(shares):.1%}")
    finally:
        for revision in revisions:
            revision.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
