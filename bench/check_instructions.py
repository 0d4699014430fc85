"""Instructions a single check costs, revision by revision: counts that the machine's load does not move.

    .venv/bin/python bench/check_instructions.py 261ffb3 HEAD          # each revision's count, and their ratio
    .venv/bin/python bench/check_instructions.py 5b7a1b2 --checks 4000  # that revision against the working tree

Timings on a shared machine swing by a third from round to round; instruction counts do not. For
each revision this checks it out (git worktree), builds the benchmark's directory with that
revision's own bench/authorize.py (as bench/compare.py does), then, under
``valgrind --tool=callgrind``, imports ``wsgi:app`` as gunicorn does, runs the server hooks
(``serving.preload``, ``serving.after_fork``), warms up with 1,000 single checks and counts the
instructions of the next ``--checks`` single checks (``POST /v1/authorize`` through the WSGI
callable, compare.py's bodies) and of the decision log's flush of their rows. The directory's
refresher and the log's timer are off (``ACCESSREVIEW_REFRESH_INTERVAL=0``,
``ACCESSREVIEW_DECISION_FLUSH_INTERVAL=0``) so that no timer's work falls inside the count. What it
cannot see: the kernel's side of a check (its system calls) and memory stalls; and gunicorn's own
HTTP work, the same code in every revision. Needs valgrind (Debian: apt-get install valgrind).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WARM_UP = 1000


def drive(workdir: Path, token: str, checks: int) -> None:
    """In a revision's tree (the working directory), under callgrind: the counted checks."""
    tree = Path.cwd()
    sys.path[:0] = [str(tree), str(tree / "bench")]
    # The revision's own bench/authorize.py (which puts its own tree first on the path): its secret and
    # its sample of checks, the same in every revision.
    import authorize as bench

    (workdir / "metrics").mkdir()
    os.environ.update({"ACCESSREVIEW_DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
                       "ACCESSREVIEW_SECRET_KEY": bench.SECRET, "ACCESSREVIEW_INSTANCE_DIR": str(workdir),
                       "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"), "ACCESSREVIEW_REFRESH_INTERVAL": "0",
                       "ACCESSREVIEW_DECISION_FLUSH_INTERVAL": "0",
                       "ACCESSREVIEW_EVALUATION_TIMEOUT": "600"})  # valgrind slows the policy's probes 50-fold
    from wsgi import app  # the revision's own, as gunicorn imports it

    from accessreview import serving

    serving.preload(app)
    serving.after_fork(app)
    bodies = [json.dumps({"actor": a, "action": x, "resource": r}).encode()
              for a, x, r in bench.triples(random.Random(7), 5000)]
    answers: list[str] = []

    def check(body: bytes) -> None:
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/v1/authorize", "CONTENT_LENGTH": str(len(body)),
                   "CONTENT_TYPE": "application/json", "HTTP_AUTHORIZATION": f"Bearer {token}",
                   "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http", "SERVER_NAME": "127.0.0.1",
                   "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1"}
        b"".join(app(environ, lambda status, headers: answers.append(status)))

    for body in bodies[:WARM_UP]:
        check(body)
    app.extensions["decisions"].flush()

    def callgrind(*args: str) -> None:
        subprocess.run(["callgrind_control", *args, str(os.getpid())], check=True, capture_output=True)

    callgrind("--zero")
    callgrind("--instr=on")
    for number in range(checks):
        check(bodies[WARM_UP + number % (len(bodies) - WARM_UP)])
    app.extensions["decisions"].flush()
    callgrind("--instr=off")
    callgrind("--dump=counted")
    if set(answers) != {"200 OK"}:
        raise SystemExit(f"answers other than 200: {sorted(set(answers))}")
    os._exit(0)  # no exit hooks: the log is flushed already


def count(revision, checks: int) -> int:
    """Instructions of ``checks`` single checks at ``revision`` (a compare.Revision, built)."""
    token = revision.build()
    out = revision.workdir / "callgrind"
    out.mkdir()
    subprocess.run(["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}/out.%p",
                    sys.executable, str(Path(__file__).resolve()), "--drive", str(revision.workdir), token,
                    str(checks)], cwd=revision.tree, env={**os.environ, "PYTHONHASHSEED": "0"}, check=True,
                   stdout=subprocess.DEVNULL, stderr=open(revision.workdir / "valgrind.log", "w"))
    [dump] = [f for f in out.iterdir() if "counted" in f.read_text(errors="replace").split("\nevents:", 1)[0]]
    return next(int(line.split()[1]) for line in dump.read_text(errors="replace").splitlines()
                if line.startswith("totals:"))


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--drive":
        drive(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", help="a git revision")
    parser.add_argument("head", nargs="?", help="another git revision (default: the working tree)")
    parser.add_argument("--checks", type=int, default=2000, help="single checks counted")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("needs valgrind on PATH (Debian: apt-get install valgrind)")
    sys.path.insert(0, str(ROOT / "bench"))
    from compare import Revision

    workdir = Path(tempfile.mkdtemp(prefix="accessreview-instructions-"))
    revisions = [Revision("base", args.base, workdir), Revision("head", args.head, workdir)]
    try:
        counts = {}
        for revision, rev in zip(revisions, (args.base, args.head or "working tree")):
            counts[revision.name] = count(revision, args.checks) / args.checks
            print(f"{rev}: {counts[revision.name]:,.0f} instructions a single check", flush=True)
        print(f"head ÷ base: {counts['head'] / counts['base']:.1%}")
    finally:
        for revision in revisions:
            revision.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
