"""A batch of 100 checks through the hot path in one process, and the decision log's flush, for one
code tree: for comparing two revisions' per-check work without servers, wrk or their noise.

    git archive 2970836 --prefix=base/ | tar -x -C /tmp        # the other revision, unpacked
    .venv/bin/python bench/batch_inprocess.py /tmp/base; .venv/bin/python bench/batch_inprocess.py .

Builds bench/authorize.py's directory with the tree's own code (migrations included), then sends
8 rounds of 50 batches of 100 document checks (no properties) to the app's WSGI entry, flushing the
decision log after each round. Prints the median µs of a batch request and of a flushed row. Run the
trees alternately, twice or more: the machine drifts.
"""

from __future__ import annotations

import io
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

TREE = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]).resolve()
sys.path[:0] = [str(TREE), str(TREE / "bench")]

import authorize as bench  # noqa: E402

from accessreview import create_app  # noqa: E402


def main() -> None:
    rng = random.Random(42)
    url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.sqlite3'}"
    token = bench.build_directory(url, rng)["token"]
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": bench.SECRET, "INSTANCE_DIR": tempfile.mkdtemp(),
                      "REFRESH_INTERVAL": 0, "DECISION_FLUSH_INTERVAL": 0, "LOG_LEVEL": "WARNING"})
    app.extensions["authz"].snapshot()
    bodies = [json.dumps({"checks": [{"actor": a, "action": x, "resource": r} for a, x, r in bench.triples(rng, 100)]})
              .encode() for _ in range(50)]
    log = app.extensions["decisions"]
    requests, rows = [], []
    for _ in range(8):
        for body in bodies:
            environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/v1/authorize/batch",
                       "CONTENT_LENGTH": str(len(body)), "HTTP_AUTHORIZATION": f"Bearer {token}",
                       "CONTENT_TYPE": "application/json", "wsgi.input": io.BytesIO(body)}
            started = time.perf_counter_ns()
            app.wsgi_app(environ, lambda status, headers: None)
            requests.append(time.perf_counter_ns() - started)
        started = time.perf_counter_ns()
        written = log.flush()
        rows.append((time.perf_counter_ns() - started) / max(written, 1))
    print(f"{TREE}: batch of 100, median {statistics.median(requests) / 1000:.0f} µs a request; "
          f"flush {statistics.median(rows) / 1000:.2f} µs a decision")
    app.extensions["db"].dispose()


if __name__ == "__main__":
    main()
