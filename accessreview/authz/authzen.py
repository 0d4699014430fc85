"""The OpenID AuthZEN Authorization API 1.0 (final): evaluation, evaluations and the three searches.

An AuthZEN subject or resource ``{type, id}`` is the directory's ``type:id``, and ``action.name``
is the policy's action. Evaluations go through the check pipeline (:mod:`.checks`): decided by the
same evaluator as /v1/authorize and kept in the decision log like any check. A search answers what
an evaluation of each candidate, with the request's properties and context, would decide, complete,
in pages: from the same enumerations as the list and access endpoints where the compiled table
decides (its types read no properties), and elsewhere by putting each candidate the directory holds
to the evaluator's check with those facts, as an evaluation does.

As the specification requires, unknown fields are ignored (``Lenient``), a missing subject, action
or resource is a 400 that names it, and an evaluation of a batch that cannot be evaluated is a deny
whose ``context.error`` says why. A subject's and resource's properties and the context are put to
the policy for types whose rules read attributes (:mod:`.properties`), within their bounds, and are
never written anywhere.

These functions take the caller, already authenticated by the transport, and the request's body;
they return the answer as JSON text (the hot path writes it as it is).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import time
from typing import Annotated, Any, Literal

from flask import Flask
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from ..errors import ApiError, BadRequest
from ..guard import require_permission
from ..pagination import decode_cursor, encode_cursor
from ..validation import describe, error_code, field_path, parse_json
from .checks import ACTION_LENGTH, RESOURCE_LENGTH, decide, refuse_oversized_batch, snapshot_for
from .deadline import Deadline
from .engine import Snapshot
from .properties import Given, JsonObject, given, refuse_large

KEY_LENGTH = RESOURCE_LENGTH  # type:id, as the decision log and the directory hold a key
# Text here has no validator of its own for NUL: parse_json refuses a NUL anywhere in the body before
# the model reads it (naming its field), and plain constraints keep parsing out of Python.
Part = Annotated[str, StringConstraints(min_length=1, max_length=KEY_LENGTH - 1)]
ActionName = Annotated[str, StringConstraints(min_length=1, max_length=ACTION_LENGTH)]




class Lenient(BaseModel):
    """AuthZEN's request objects: unknown fields are ignored (the specification's forward
    compatibility), JSON types are not coerced."""

    model_config = ConfigDict(extra="ignore", strict=True)


class Entity(Lenient):
    """A subject or resource of an evaluation."""

    type: Part
    id: Part
    properties: JsonObject | None = None


def _key(entity: Entity, field: str) -> str:
    """The directory's key of a subject or resource: type:id, no longer than a key column holds."""
    key = f"{entity.type}:{entity.id}"
    if len(key) > KEY_LENGTH:
        raise BadRequest(f"{field}.id: type and id together (type:id) hold at most {KEY_LENGTH} characters",
                         field=f"{field}.id", code="too_long")
    return key


class Searched(Lenient):
    """The entity a search asks for: its type, and properties that each candidate is evaluated with;
    an id, if any, is ignored."""

    type: Part
    id: Any = None
    properties: JsonObject | None = None


class Action(Lenient):
    name: ActionName
    properties: JsonObject | None = None


class Options(Lenient):
    """This PDP's options (others ignore them): the reasons /v1/explain gives, and a directory
    revision to decide at (as /v1/authorize's at_least_revision)."""

    include_reasons: bool = False
    at_least_revision: int | None = Field(default=None, ge=0)


class EvaluationsOptions(Options):
    evaluations_semantic: Literal["execute_all", "deny_on_first_deny", "permit_on_first_permit"] = "execute_all"


class Evaluation(Lenient):
    subject: Entity
    action: Action
    resource: Entity
    context: JsonObject | None = None
    options: Options | None = None


class Item(Lenient):
    subject: Entity | None = None
    action: Action | None = None
    resource: Entity | None = None
    context: JsonObject | None = None


class Evaluations(Lenient):
    subject: Entity | None = None
    action: Action | None = None
    resource: Entity | None = None
    context: JsonObject | None = None
    evaluations: list[Item] | None = None
    options: EvaluationsOptions | None = None


class LooseEvaluations(Evaluations):
    """The same request, its items unread: when one item is malformed, the others are still answered."""

    evaluations: list[Any] | None = None  # type: ignore[assignment]


class PageRequest(Lenient):
    token: Annotated[str, Field(max_length=1024)] | None = None
    limit: int | None = Field(default=None, ge=0)


class SubjectSearch(Lenient):
    subject: Searched
    action: Action
    resource: Entity
    context: JsonObject | None = None
    page: PageRequest | None = None


class ResourceSearch(Lenient):
    subject: Entity
    action: Action
    resource: Searched
    context: JsonObject | None = None
    page: PageRequest | None = None


class ActionSearch(Lenient):
    subject: Entity
    resource: Entity
    context: JsonObject | None = None
    page: PageRequest | None = None


# -- the portal's plain requests ----------------------------------------------------------------------
#
# Nearly every evaluation a PEP sends names a subject, an action and a resource and nothing else.
# Read into the models above, each costs four model instances, three times what /v1/authorize's
# check costs to parse. These shapes read that request, and only that one, into plain dicts, with
# the models' own constraints (Part, ActionName). Their fields are a subset of the models', and any
# other field (properties, context, options, a null, a field this service does not know) is refused
# here, so that a body they accept is one the models accept with the same values and every optional
# field absent; every other body, valid or not, goes to the models, which decide and word the
# errors. tests/test_authzen.py holds the two readings to agreeing.

_PLAIN = ConfigDict(extra="forbid", strict=True)


class _PlainEntity(TypedDict):
    __pydantic_config__ = _PLAIN  # type: ignore[misc]
    type: Part
    id: Part


class _PlainAction(TypedDict):
    __pydantic_config__ = _PLAIN  # type: ignore[misc]
    name: ActionName


class _PlainEvaluation(TypedDict):
    __pydantic_config__ = _PLAIN  # type: ignore[misc]
    subject: _PlainEntity
    action: _PlainAction
    resource: _PlainEntity


class _PlainItem(TypedDict, total=False):
    __pydantic_config__ = _PLAIN  # type: ignore[misc]
    subject: _PlainEntity
    action: _PlainAction
    resource: _PlainEntity


class _PlainEvaluations(TypedDict, total=False):
    __pydantic_config__ = _PLAIN  # type: ignore[misc]
    subject: _PlainEntity
    action: _PlainAction
    resource: _PlainEntity
    evaluations: list[_PlainItem]


_plain_evaluation = TypeAdapter(_PlainEvaluation).validator.validate_json
_plain_evaluations = TypeAdapter(_PlainEvaluations).validator.validate_json


def plain_evaluation(raw: bytes) -> tuple[str, str, str] | None:
    """The check of a plain evaluation, or None: the models must read it."""
    if b"\\u0000" in raw:  # NUL is refused by parse_json, naming its field
        return None
    try:
        request = _plain_evaluation(raw)
    except ValidationError:
        return None
    subject, resource = request["subject"], request["resource"]
    check = (f"{subject['type']}:{subject['id']}", request["action"]["name"], f"{resource['type']}:{resource['id']}")
    return check if len(check[0]) <= KEY_LENGTH and len(check[2]) <= KEY_LENGTH else None


def plain_evaluations(raw: bytes) -> list[tuple[str, str, str]] | None:
    """The checks of plain evaluations, in order, or None: the models must read them (or there are
    none: the request is one evaluation)."""
    if b"\\u0000" in raw:
        return None
    try:
        request = _plain_evaluations(raw)
    except ValidationError:
        return None
    items = request.get("evaluations")
    if not items:
        return None
    if len(request) == 1:  # no defaults: each item names all three (a KeyError when one does not)
        try:
            checks = [(f"{s['type']}:{s['id']}", a["name"], f"{r['type']}:{r['id']}")
                      for s, a, r in [(item["subject"], item["action"], item["resource"]) for item in items]]
        except KeyError:
            return None  # an item without a default to take: the models name it
    else:
        subject, action, resource = request.get("subject"), request.get("action"), request.get("resource")
        checks = []
        for item in items:
            s, a, r = item.get("subject", subject), item.get("action", action), item.get("resource", resource)
            if s is None or a is None or r is None:
                return None
            checks.append((f"{s['type']}:{s['id']}", a["name"], f"{r['type']}:{r['id']}"))
    for who, _, which in checks:
        if len(who) > KEY_LENGTH or len(which) > KEY_LENGTH:
            return None  # the models make it that item's deny, with why
    return checks


# -- evaluation -------------------------------------------------------------------------------------


def evaluation(app: Flask, caller: str, raw: bytes) -> str:
    """POST /access/v1/evaluation: one decision."""
    check = plain_evaluation(raw)
    if check is not None:
        snapshot = app.extensions["authz"].snapshot()
        [(allowed, decision_id)] = decide(app, snapshot, caller, [check])
        return _decision_json(allowed, decision_id, snapshot)
    request = parse_json(Evaluation, raw)
    _refuse_large_properties(app, request, raw)
    options = request.options
    if options is not None and options.include_reasons:
        _may_explain(app, caller)
    snapshot = snapshot_for(app.extensions["authz"], options.at_least_revision if options else None)
    check = (_key(request.subject, "subject"), request.action.name, _key(request.resource, "resource"))
    facts = given(request.subject.properties, request.resource.properties, request.context)
    [(allowed, decision_id)] = decide(app, snapshot, caller, [check], given=None if facts is None else [facts])
    if options is not None and options.include_reasons:
        return _encode(_decision(allowed, decision_id, snapshot, _reasons(app, caller, snapshot, check, facts)))
    return _decision_json(allowed, decision_id, snapshot)


def evaluations(app: Flask, caller: str, raw: bytes) -> str:
    """POST /access/v1/evaluations: many decisions, with defaults and a semantic. Without items, one."""
    plain = plain_evaluations(raw)
    if plain is not None:  # execute_all, the default semantic, of checks that all could be read
        refuse_oversized_batch(app, len(plain), "evaluations")
        snapshot = app.extensions["authz"].snapshot()
        return _decisions_json(decide(app, snapshot, caller, plain, Deadline(app.config["EVALUATION_TIMEOUT"])),
                               snapshot)
    request, malformed = _parse_evaluations(raw)
    _refuse_large_properties(app, request, raw)
    options = request.options or EvaluationsOptions()
    items = request.evaluations
    if not items:
        missing = [name for name in ("subject", "action", "resource") if getattr(request, name) is None]
        if missing:
            raise BadRequest(f"{missing[0]}: required (there are no evaluations to take it from)",
                             field=missing[0], code="missing_field")
        return evaluation(app, caller, raw)
    refuse_oversized_batch(app, len(items), "evaluations")
    if options.include_reasons:
        _may_explain(app, caller)
    checks: list[tuple[str, str, str] | ApiError] = []
    facts: list[Given | None] = []  # each check's properties and context, in step with ``checks``
    for number, item in enumerate(items):
        if number in malformed:
            checks.append(malformed[number])
            facts.append(None)
            continue
        subject = item.subject or request.subject
        action = item.action or request.action
        resource = item.resource or request.resource
        for name, value in (("subject", subject), ("action", action), ("resource", resource)):
            if value is None:
                raise BadRequest(f"evaluations.{number}.{name}: required, in the evaluation or as a default",
                                 field=f"evaluations.{number}.{name}", code="missing_field")
        facts.append(given(subject.properties, resource.properties,  # type: ignore[union-attr]
                           item.context if item.context is not None else request.context))
        try:
            checks.append((_key(subject, "subject"), action.name, _key(resource, "resource")))  # type: ignore[arg-type,union-attr]
        except BadRequest as refused:
            where = "subject" if refused.field == "subject.id" else "resource"
            at = f"evaluations.{number}.{where}.id" if getattr(item, where) is not None else refused.field
            malformed[number] = BadRequest(refused.message.replace(refused.field or "", at, 1), field=at,
                                           code="too_long")
            checks.append(malformed[number])
    snapshot = snapshot_for(app.extensions["authz"], options.at_least_revision)
    carried = facts if any(f is not None for f in facts) else None
    if options.evaluations_semantic == "execute_all" and not malformed and not options.include_reasons:
        decided = decide(app, snapshot, caller, checks, Deadline(app.config["EVALUATION_TIMEOUT"]),  # type: ignore[arg-type]
                         given=carried)
        return _decisions_json(decided, snapshot)
    return _encode({"evaluations": _evaluate_in_order(app, caller, snapshot, checks, carried, options)})


def _evaluate_in_order(app: Flask, caller: str, snapshot: Snapshot, checks: list[tuple[str, str, str] | ApiError],
                       facts: list[Given | None] | None, options: EvaluationsOptions) -> list[dict[str, Any]]:
    """The answers, short-circuited as the semantic says: a malformed evaluation is a deny."""
    until = {"execute_all": None, "deny_on_first_deny": False, "permit_on_first_permit": True}[
        options.evaluations_semantic]
    deadline = Deadline(app.config["EVALUATION_TIMEOUT"])
    answers: list[dict[str, Any]] = []
    start = 0
    while start < len(checks):
        end = start
        while end < len(checks) and not isinstance(checks[end], ApiError):
            end += 1
        run: list[tuple[str, str, str]] = checks[start:end]  # type: ignore[assignment]
        run_facts = facts[start:end] if facts is not None else [None] * len(run)
        decided = decide(app, snapshot, caller, run, deadline, until, None if facts is None else run_facts)
        for check, check_facts, (allowed, decision_id) in zip(run, run_facts, decided):
            reasons = _reasons(app, caller, snapshot, check, check_facts) if options.include_reasons else None
            answers.append(_decision(allowed, decision_id, snapshot, reasons))
            if allowed is until:
                return answers
        if end < len(checks):
            error: ApiError = checks[end]  # type: ignore[assignment]
            answers.append({"decision": False, "context": {"error": {
                "status": error.status, "code": error.code, "message": error.message, "field": error.field,
                **error.details}}})
            if until is False:
                return answers
        start = end + 1
    return answers


def _parse_evaluations(raw: bytes) -> tuple[Evaluations, dict[int, ApiError]]:
    """The request, and the items that cannot be read, by their place, with why."""
    try:
        return parse_json(Evaluations, raw), {}
    except BadRequest as refused:
        if not (refused.field or "").startswith("evaluations."):
            raise
    request = parse_json(LooseEvaluations, raw)
    items: list[Item | None] = []
    malformed: dict[int, ApiError] = {}
    for number, item in enumerate(request.evaluations or []):
        try:
            items.append(Item.model_validate(item))
        except ValidationError as exc:
            errors = [{**e, "loc": ("evaluations", number, *e["loc"])} for e in exc.errors()[:50]]
            first = errors[0]
            malformed[number] = BadRequest(describe(first), field=field_path(first["loc"]), code=error_code(first),
                                           errors=[{"code": error_code(e), "field": field_path(e["loc"]),
                                                    "message": describe(e)} for e in errors])
            items.append(None)
    return Evaluations.model_construct(**{**request.__dict__, "evaluations": items}), malformed


def _refuse_large_properties(app: Flask, request: BaseModel, raw: bytes) -> None:
    """Properties and context past AUTHZEN_MAX_PROPERTIES_BYTES (as JSON) are refused: 413."""
    refuse_large(app, raw, _objects(request))


def _objects(request: BaseModel, prefix: str = ""):
    for name in ("subject", "action", "resource", "context"):
        value = getattr(request, name, None)
        if isinstance(value, dict):
            yield f"{prefix}{name}", value
        elif value is not None and getattr(value, "properties", None) is not None:
            yield f"{prefix}{name}.properties", value.properties
    for number, item in enumerate(getattr(request, "evaluations", None) or []):
        if isinstance(item, BaseModel):
            yield from _objects(item, f"evaluations.{number}.")


def _may_explain(app: Flask, caller: str) -> None:
    """Reasons are what /v1/explain gives: for the callers who may explain access (403 otherwise),
    asked before anything is decided."""
    require_permission(app, caller, "explain_access")


def _reasons(app: Flask, caller: str, snapshot: Snapshot, check: tuple[str, str, str],
             facts: Given | None = None) -> list[dict[str, Any]]:
    """Why, as /v1/explain says it."""
    return snapshot.evaluator.explain(*check, app.config["CLOCK"].now(), facts)["reasons"]


def _decision(allowed: bool, decision_id: str, snapshot: Snapshot,
              reasons: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    context: dict[str, Any] = {"decision_id": decision_id, "policy_version": snapshot.policy.version,
                               "revision": snapshot.revision}
    if reasons is not None:
        context["reasons"] = reasons
    return {"decision": allowed, "context": context}


# Answers as :func:`_decision` shapes them, written directly: their only strings are decision ids
# and policy versions, hex digits that JSON writes as they are.
_BOOLEANS = ("false", "true")


def _decision_json(allowed: bool, decision_id: str, snapshot: Snapshot) -> str:
    return (f'{{"decision":{_BOOLEANS[allowed]},"context":{{"decision_id":"{decision_id}",'
            f'"policy_version":"{snapshot.policy.version}","revision":{snapshot.revision}}}}}')


def _decisions_json(decided: list[tuple[bool, str]], snapshot: Snapshot) -> str:
    tail = f'","policy_version":"{snapshot.policy.version}","revision":{snapshot.revision}}}}}'
    items = ",".join([f'{{"decision":{_BOOLEANS[allowed]},"context":{{"decision_id":"{decision_id}{tail}'
                      for allowed, decision_id in decided])
    return f'{{"evaluations":[{items}]}}'


def _encode(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"))


# -- searches ---------------------------------------------------------------------------------------


def search_subject(app: Flask, caller: str, raw: bytes) -> str:
    """Every subject of the type that may do the action on the resource, through groups and parents:
    those an evaluation of each, with the request's properties and context, would allow."""
    request = parse_json(SubjectSearch, raw)
    _refuse_large_properties(app, request, raw)
    evaluator = app.extensions["authz"].snapshot().evaluator
    now, deadline = app.config["CLOCK"].now(), _deadline(app)
    kind, action, resource = request.subject.type, request.action.name, _key(request.resource, "resource")
    target = evaluator.index.resources.get(resource)
    if target is not None and evaluator.enumerates(kind, target.type):
        wanted = f"{kind}:"
        keys = [entry["principal"] for entry in evaluator.access(resource, now, deadline)
                if entry["principal"].startswith(wanted) and action in entry["permissions"]]
        return _search_page(app, raw, request.page, keys, _entity)
    facts = given(request.subject.properties, request.resource.properties, request.context)
    return _evaluated_page(app, raw, request.page, evaluator.actors_of_kind(kind), deadline,
                           lambda subject: evaluator.check(subject, action, resource, now, facts).allowed)


def search_resource(app: Flask, caller: str, raw: bytes) -> str:
    """Every resource of the type on which the subject may do the action: those an evaluation of
    each, with the request's properties and context, would allow."""
    request = parse_json(ResourceSearch, raw)
    _refuse_large_properties(app, request, raw)
    evaluator = app.extensions["authz"].snapshot().evaluator
    kind = request.resource.type
    if kind not in evaluator.policy.declarations.resource_types:
        raise BadRequest(f"{kind!r} is not a resource type of the policy", field="resource.type", code="unknown_type")
    now, deadline = app.config["CLOCK"].now(), _deadline(app)
    subject, action = _key(request.subject, "subject"), request.action.name
    principal = evaluator.index.principals.get(subject)
    if principal is None or evaluator.enumerates(principal.kind, kind):
        keys = evaluator.resources_for(subject, action, kind, now, deadline)
        return _search_page(app, raw, request.page, keys, _entity)
    facts = given(request.subject.properties, request.resource.properties, request.context)
    candidates = evaluator.resources_of_type(kind) if evaluator.can_act(principal.kind) else []
    return _evaluated_page(app, raw, request.page, candidates, deadline,
                           lambda resource: evaluator.check(subject, action, resource, now, facts).allowed)


def search_action(app: Flask, caller: str, raw: bytes) -> str:
    """Every action of the resource's type that the subject may do on it (none for a type the policy
    does not declare): those an evaluation of each, with the request's properties and context, would
    allow."""
    request = parse_json(ActionSearch, raw)
    _refuse_large_properties(app, request, raw)
    snapshot = app.extensions["authz"].snapshot()
    declared = snapshot.policy.declarations.resource_types.get(request.resource.type)
    now, deadline = app.config["CLOCK"].now(), _deadline(app)
    subject, resource = _key(request.subject, "subject"), _key(request.resource, "resource")
    facts = given(request.subject.properties, request.resource.properties, request.context)
    allowed = []
    for action in sorted(declared.permissions) if declared is not None else ():
        deadline.check()
        if snapshot.evaluator.check(subject, action, resource, now, facts).allowed:
            allowed.append(action)
    return _search_page(app, raw, request.page, allowed, lambda name: {"name": name})


def _deadline(app: Flask) -> Deadline:
    return Deadline(app.config["EVALUATION_TIMEOUT"])


def _entity(key: str) -> dict[str, str]:
    kind, _, ident = key.partition(":")
    return {"type": kind, "id": ident}


def _search_page(app: Flask, raw: bytes, page: PageRequest | None, keys: list[str], shape) -> str:
    """A page of the sorted ``keys``, all of which answer the search: after the token's key, with a
    token to go on from ("" at the end) and how many there are in all."""
    keys = sorted(keys)
    after, fingerprint, limit = _reading(app, raw, page)
    start = 0 if after is None else _after(keys, after)
    chosen = keys[start:start + limit]
    resume = chosen[-1] if chosen and start + limit < len(keys) else None
    return _page_json(chosen, resume, fingerprint, shape, len(keys))


def _evaluated_page(app: Flask, raw: bytes, page: PageRequest | None, candidates: list[str], deadline: Deadline,
                    allowed) -> str:
    """A page of the sorted ``candidates`` that ``allowed`` admits, after the token's key.

    Each candidate is an oso query (a millisecond or more), and thousands may have to be asked
    before a page is full, or to learn that none is left: so candidates are put to ``allowed`` in
    order only until the page is full and one more is found, or until SEARCH_PAGE_SECONDS have gone.
    Then the page holds what was found (fewer than its limit, maybe none) and its token goes on after
    the last candidate asked: every candidate is asked once over the pages, and the last page's token
    is "" only once none is left. No total: counting would mean asking every candidate.
    """
    after, fingerprint, limit = _reading(app, raw, page)
    stop_at = time.monotonic() + app.config["SEARCH_PAGE_SECONDS"]
    chosen: list[str] = []
    last = len(candidates) - 1
    for position in range(0 if after is None else _after(candidates, after), last + 1):
        deadline.check()
        key = candidates[position]
        if allowed(key):
            if len(chosen) == limit:
                return _page_json(chosen, chosen[-1], fingerprint, _entity, None)
            chosen.append(key)
        if position < last and time.monotonic() > stop_at:
            return _page_json(chosen, key, fingerprint, _entity, None)
    return _page_json(chosen, None, fingerprint, _entity, None)


def _reading(app: Flask, raw: bytes, page: PageRequest | None) -> tuple[str | None, str, int]:
    """The key a page starts after (None: the first page), the request's fingerprint and the page's size.

    A token holds the key the previous page ended on (the last it gave, or the last candidate it
    asked) and a fingerprint of the request it answered: a request that changes anything but the
    token on the way is refused, as the specification says it should be.
    """
    fingerprint = _fingerprint(raw)
    limit = _limit(app, page.limit if page else None)
    if page is None or not page.token:
        return None, fingerprint, limit
    try:
        after, issued_for = decode_cursor(page.token, (str, str))
    except BadRequest:
        raise BadRequest("page.token is not one this service issued", field="page.token",
                         code="invalid_cursor") from None
    if issued_for != fingerprint:
        raise BadRequest("page.token was issued for another request: only the token may change between pages",
                         field="page.token", code="invalid_cursor")
    return after, fingerprint, limit


def _page_json(chosen: list[str], resume: str | None, fingerprint: str, shape, total: int | None) -> str:
    """The page's answer; its token goes on after ``resume`` ("": None, nothing is left)."""
    next_token = "" if resume is None else encode_cursor([resume, fingerprint])
    page: dict[str, Any] = {"next_token": next_token, "count": len(chosen)}
    if total is not None:
        page["total"] = total
    return _encode({"page": page, "results": [shape(key) for key in chosen]})


def _after(keys: list[str], after: str) -> int:
    return bisect.bisect_right(keys, after)


def _limit(app: Flask, limit: int | None) -> int:
    if not limit:
        return app.config["PAGE_SIZE"]
    return min(limit, app.config["MAX_PAGE_SIZE"])


def _fingerprint(raw: bytes) -> str:
    """The request as JSON without its page token: the same query gives the same text."""
    data = json.loads(raw)
    page = data.get("page")
    if isinstance(page, dict):
        data["page"] = {key: value for key, value in page.items() if key != "token"}
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:24]
