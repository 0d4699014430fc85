"""What reading a request costs, in one process: /v1/authorize's check and batch of 100 beside the
AuthZEN evaluation and evaluations of 100, read by the models and by the plain reading the portal's
requests take (accessreview.authz.authzen.plain_evaluation[s]).

    .venv/bin/python bench/authzen_reading.py [--repeats 30]

The bench directory's kind of requests (bench/authorize.py's), 50 bodies of each; the figure is the
thread CPU time per request (not wall time: the machine is shared), the least of ``--repeats``
passes, interleaved, with the process's start-up objects frozen out of the cyclic collector as the
servers' workers have them. Reading means parsing and validating the body and making its checks'
(actor, action, resource) triples; deciding and recording are the same code for all (checks.decide),
and the answers' text of 100 decisions is timed last, each as its endpoint writes it.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from accessreview.authz import authzen, checks  # noqa: E402
from accessreview.validation import parse_json  # noqa: E402
from authorize import _entity, triples  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    rng = random.Random(1)
    gc.freeze()

    def evaluation(a: str, x: str, r: str) -> dict:
        return {"subject": _entity(a), "action": {"name": x}, "resource": _entity(r)}

    batches = [json.dumps({"checks": [{"actor": a, "action": x, "resource": r} for a, x, r in triples(rng, 100)]})
               .encode() for _ in range(50)]
    many = [json.dumps({"evaluations": [evaluation(*t) for t in triples(rng, 100)]}).encode() for _ in range(50)]
    single = [json.dumps({"actor": a, "action": x, "resource": r}).encode() for a, x, r in triples(rng, 200)]
    ones = [json.dumps(evaluation(*t)).encode() for t in triples(rng, 200)]

    def batch_read(raw: bytes) -> list:
        return [(c.actor, c.action, c.resource) for c in parse_json(checks.Batch, raw).checks]

    def models_read(raw: bytes) -> list:
        request = parse_json(authzen.Evaluations, raw)
        return [(authzen._key(i.subject, "subject"), i.action.name, authzen._key(i.resource, "resource"))
                for i in request.evaluations]

    def model_read(raw: bytes) -> tuple:
        request = parse_json(authzen.Evaluation, raw)
        return authzen._key(request.subject, "subject"), request.action.name, authzen._key(request.resource, "resource")

    kinds = {
        "/v1/authorize/batch, 100 checks (its model)": (batch_read, batches),
        "/access/v1/evaluations, 100 (the models)": (models_read, many),
        "/access/v1/evaluations, 100 (the plain reading)": (authzen.plain_evaluations, many),
        "  json.loads of the same evaluations body (dicts only, no validation)": (json.loads, many),
        "/v1/authorize, one check (its model)": (lambda raw: parse_json(checks.Check, raw), single),
        "/access/v1/evaluation, one (the models)": (model_read, ones),
        "/access/v1/evaluation, one (the plain reading)": (authzen.plain_evaluation, ones),
    }
    for read, bodies in kinds.values():
        assert all(read(body) for body in bodies)
    least = {kind: float("inf") for kind in kinds}
    for _ in range(args.repeats):
        for kind, (read, bodies) in kinds.items():
            started = time.thread_time_ns()
            for body in bodies:
                read(body)
            least[kind] = min(least[kind], (time.thread_time_ns() - started) / len(bodies) / 1000)
    decided = [(i % 3 == 0, f"ab12cd34ef{i:010x}") for i in range(100)]
    snapshot = SimpleNamespace(policy=SimpleNamespace(version="0123456789abcdef"), revision=12345)
    batch_answer = {"results": [{"allowed": a, "decision_id": d} for a, d in decided],
                    "policy_version": snapshot.policy.version, "revision": snapshot.revision}
    answers = {
        "answer of /v1/authorize/batch, 100 results": lambda: checks.batch_answer_json(
            {**batch_answer, "results": [{"allowed": a, "decision_id": d} for a, d in decided]}),
        "answer of /access/v1/evaluations, 100 decisions": lambda: authzen._decisions_json(decided, snapshot),
    }
    for kind in answers:
        least[kind] = float("inf")
    for _ in range(args.repeats):
        for kind, answer in answers.items():
            started = time.thread_time_ns()
            for _ in range(50):
                text = answer()
            least[kind] = min(least[kind], (time.thread_time_ns() - started) / 50 / 1000)
            least[f"{kind}, bytes"] = len(text)
    for kind, us in least.items():
        print(f"{kind}: {us:,.0f} bytes" if kind.endswith("bytes") else f"{kind}: {us:.1f} µs a request")


if __name__ == "__main__":
    main()
