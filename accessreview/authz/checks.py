"""The check pipeline: a check or a batch parsed with its limits, decided against one snapshot,
recorded in the decision log, and its answer shaped. One way through for every transport that
answers checks: the lean WSGI hot path (accessreview.api.hotpath, also behind the check server),
the Flask views of /v1/authorize, and the AuthZEN evaluations (accessreview.authz.authzen). The
transports read the body, authenticate the caller and write the response; nothing else.

A check touches memory only: the token table, the snapshot and the decision buffer. Anything that
goes wrong while evaluating is a 5xx (the portal denies), never an allow.
"""

from __future__ import annotations

import time
from typing import Any, Iterable, Sequence

from flask import Flask
from pydantic import Field

from ..errors import BadRequest, ServiceUnavailable
from ..validation import Strict, Text, parse_json
from .deadline import Deadline
from .decisions import grant_ids_json
from .engine import AuthzEngine, Snapshot, StaleError
from .properties import Given, JsonObject, given, refuse_large

# A check's text as the decision log's columns hold it (models.Decision): a value it could not store
# is refused before it is decided, so that no answered decision is one the log must drop.
ACTOR_LENGTH, ACTION_LENGTH, RESOURCE_LENGTH = 255, 64, 255
Actor = Text(ACTOR_LENGTH)
Action = Text(ACTION_LENGTH)
Resource = Text(RESOURCE_LENGTH)


class PlainCheck(Strict):
    """A check without properties: the portal's usual one, read by a model of these fields alone
    (each optional field a model has costs every check of a batch its look-up)."""

    actor: Actor
    action: Action
    resource: Resource
    at_least_revision: int | None = Field(default=None, ge=0)

    def given(self) -> Given | None:
        return None


class Check(PlainCheck):
    """A check, with properties and a context for types whose rules read attributes
    (accessreview.authz.properties); the other types never look at them."""

    actor_properties: JsonObject | None = None
    resource_properties: JsonObject | None = None
    context: JsonObject | None = None

    def given(self) -> Given | None:
        return given(self.actor_properties, self.resource_properties, self.context)


class PlainBatch(Strict):
    checks: list[PlainCheck] = Field(min_length=1)
    at_least_revision: int | None = Field(default=None, ge=0)


class Batch(PlainBatch):
    checks: list[Check] = Field(min_length=1)  # type: ignore[assignment]


EVALUATION_FAILED = {"error": {"code": "evaluation_failed", "field": None,
                               "message": "the decision could not be evaluated; treat it as a deny"}}


def snapshot_for(engine: AuthzEngine, at_least: int | None) -> Snapshot:
    """The snapshot to decide on: the latest, or one at ``at_least`` or later (503 stale if none comes)."""
    if at_least is None:
        return engine.snapshot()
    try:
        return engine.wait_for(at_least)
    except StaleError as exc:
        raise ServiceUnavailable(str(exc), code="stale", field="at_least_revision") from None


def decide(app: Flask, snapshot: Snapshot, caller: str, checks: Sequence[tuple[str, str, str]],
           deadline: Deadline | None = None, until: bool | None = None,
           given: Iterable[Given | None] | None = None) -> list[tuple[bool, str]]:
    """Decide ``checks`` (actor, action, resource) against one snapshot, within ``deadline`` if given,
    then keep them all in the decision log (memory and spool): a request that fails part way leaves
    no decisions its caller never received. Returns (allowed, decision id) for each, in order, up to
    and including the first whose outcome is ``until`` (None: all). ``given``, if any, holds each
    check's properties and context, in step with ``checks``. One loop for the whole request: at
    a few µs a check, per-check calls and lookups count (a request without properties pays none)."""
    log = app.extensions["decisions"]
    now = app.config["CLOCK"].now()
    stamp, version, revision = log.stamp(now), snapshot.policy.version, snapshot.revision
    evaluate, clock = snapshot.evaluator.check, time.perf_counter_ns
    allowed_values, no_grants = log.allowed_values, log.no_grants
    ids = log.decision_ids(len(checks))
    rows: list[tuple] = []
    used: list[int] = []
    answers: list[tuple[bool, str]] = []
    facts = None if given is None else iter(given).__next__
    # One clock reading a check: each check's latency runs from the previous one's end (its row's
    # making included, well under a µs), and the deadline is compared in the same clock's terms.
    finished = clock()
    expires = _expiry(deadline, finished)
    for decision_id, (actor, action, resource) in zip(ids, checks):
        if finished > expires:
            deadline.check()  # type: ignore[union-attr]
        if facts is None:
            given_here = None
            decision = evaluate(actor, action, resource, now)
        else:
            given_here = facts()
            decision = evaluate(actor, action, resource, now, given_here)
        started, finished = finished, clock()
        grants = decision.grants
        if grants:
            used.extend(grants)
        rows.append((decision_id, stamp, caller, actor, action, resource, allowed_values[decision.allowed],
                     version, revision, (finished - started) // 1000,
                     grant_ids_json(grants) if grants else no_grants,
                     no_grants if given_here is None else given_here.digest()))
        answers.append((decision.allowed, decision_id))
        if decision.allowed is until:
            break
    log.record(rows, stamp, used)
    return answers


def _expiry(deadline: Deadline | None, now_ns: int) -> float:
    """When ``deadline`` expires, in :func:`time.perf_counter_ns`'s terms (past it, the loop asks the
    deadline itself, which decides)."""
    if deadline is None:
        return float("inf")
    return now_ns + (deadline.expires - time.monotonic()) * 1e9


def check_one(app: Flask, caller: str, raw: bytes) -> dict[str, Any]:
    """Answer one check (the body of POST /v1/authorize) for ``caller``, who may check."""
    carried = _may_carry_facts(raw)
    check = parse_json(Check if carried else PlainCheck, raw)
    facts = facts_of(app, raw, check) if carried else None
    snapshot = snapshot_for(app.extensions["authz"], check.at_least_revision)
    # One check: oso's own query limit bounds it.
    [(allowed, decision_id)] = decide(app, snapshot, caller, [(check.actor, check.action, check.resource)],
                                      given=None if facts is None else [facts])
    return {"allowed": allowed, "decision_id": decision_id, "policy_version": snapshot.policy.version,
            "revision": snapshot.revision}


def check_batch(app: Flask, caller: str, raw: bytes) -> dict[str, Any]:
    """Answer a batch (the body of POST /v1/authorize/batch), in order, against one snapshot."""
    carried = _may_carry_facts(raw)
    batch = parse_json(Batch if carried else PlainBatch, raw)
    refuse_oversized_batch(app, len(batch.checks), "checks")
    wanted = [r for r in [batch.at_least_revision, *(c.at_least_revision for c in batch.checks)] if r is not None]
    snapshot = snapshot_for(app.extensions["authz"], max(wanted) if wanted else None)
    facts: list[Given | None] | None = None
    if carried:
        facts = [c.given() for c in batch.checks]
        refuse_large(app, raw, ((f"checks.{n}.{path}", value) for n, c in enumerate(batch.checks)
                                for path, value in _objects(c)))
    decided = decide(app, snapshot, caller, [(c.actor, c.action, c.resource) for c in batch.checks],
                     Deadline(app.config["EVALUATION_TIMEOUT"]), given=facts)
    return {"results": [{"allowed": allowed, "decision_id": decision_id} for allowed, decision_id in decided],
            "policy_version": snapshot.policy.version, "revision": snapshot.revision}


def facts_of(app: Flask, raw: bytes, check: PlainCheck) -> Given | None:
    """The properties and context ``check`` (read from ``raw``) gives, within their bounds (413 past)."""
    facts = check.given() if _may_carry_facts(raw) else None
    if facts is not None:
        refuse_large(app, raw, _objects(check))
    return facts


def _may_carry_facts(raw: bytes) -> bool:
    """Could the body hold properties or a context? The portal's usual checks do not: they are read
    by the plain models, which refuse those fields as unknown (so a body that holds them is never
    read by them), and skip looking (a false yes only costs reading the fuller model). ``find``, not
    ``in``: bytes' ``in`` first tries its operand as an integer, raising and discarding a TypeError,
    which costs three times the search."""
    return raw.find(b'properties"') >= 0 or raw.find(b'"context"') >= 0


def _objects(check: PlainCheck):
    for name in ("actor_properties", "resource_properties", "context"):
        value = getattr(check, name, None)
        if value is not None:
            yield name, value


def refuse_oversized_batch(app: Flask, size: int, field: str) -> None:
    if size > app.config["MAX_BATCH"]:
        raise BadRequest(f"at most {app.config['MAX_BATCH']} checks per batch", field=field, code="invalid_value")


# Checks' answers as JSON, at a third of the cost of a JSON encoder: their only strings are decision
# ids and policy versions, hex digits that JSON writes as they are.
_BOOLEANS = ("false", "true")


def answer_json(answer: dict[str, Any]) -> str:
    return (f'{{"allowed":{_BOOLEANS[answer["allowed"]]},"decision_id":"{answer["decision_id"]}",'
            f'"policy_version":"{answer["policy_version"]}","revision":{answer["revision"]}}}')


def batch_answer_json(answer: dict[str, Any]) -> str:
    results = ",".join([f'{{"allowed":{_BOOLEANS[r["allowed"]]},"decision_id":"{r["decision_id"]}"}}'
                        for r in answer["results"]])
    return (f'{{"results":[{results}],"policy_version":"{answer["policy_version"]}",'
            f'"revision":{answer["revision"]}}}')
