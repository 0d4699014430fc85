"""What every handler uses: authentication, authorization through the policy, parsing, the unit of work.

A handler authenticates the caller before it parses anything, and asks the policy before it reads
or changes any data; the guard in :func:`init_guard` turns any answer other than a refusal of the
request itself that was produced without such a decision into a 500, so a forgotten check fails
loudly instead of serving data.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime
from typing import Any, Callable, Iterator, TypeVar

from flask import Flask, current_app, g, jsonify, request
from pydantic import BaseModel
from sqlalchemy.orm import Session

from . import work
from .audit import WriteContext
from .authz.engine import SERVICE_RESOURCE, Snapshot, get_engine
from .db import get_session
from .errors import Forbidden, NotFound, Unauthenticated
from .tokens import TOKEN_PREFIX, TokenRecord, live_token
from .validation import parse_json, parse_query

M = TypeVar("M", bound=BaseModel)
F = TypeVar("F", bound=Callable[..., Any])


def clock_now():
    return current_app.config["CLOCK"].now()


def bearer_principal(app: Flask, authorization: str) -> str:
    """The principal behind an ``Authorization: Bearer`` header; 401 without a live token. Memory only."""
    snapshot = app.extensions["authz"].snapshot()
    return _bearer_token(app, snapshot, authorization, app.config["CLOCK"].now())[1].principal


def _bearer_token(app: Flask, snapshot: Snapshot, authorization: str, now: datetime) -> tuple[Snapshot, TokenRecord]:
    """The live token an ``Authorization`` header carries, and the snapshot that knows it."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("a bearer token is required (Authorization: Bearer <token>)", field="Authorization")
    snapshot, record = find_live_token(app, snapshot, token.strip(), now)
    if record is None:
        raise Unauthenticated("the bearer token is unknown, revoked or expired", field="Authorization",
                              code="invalid_token")
    app.extensions["decisions"].token_used(record.token_hash, now)
    return snapshot, record


def find_live_token(app: Flask, snapshot: Snapshot, token: str, now: datetime) -> tuple[Snapshot, TokenRecord | None]:
    """A live token's record, from ``snapshot`` or, for a token it does not know, from the
    database's latest revision: a token works in every process as soon as it is made."""
    secret = app.config["SECRET_KEY"]
    record = live_token(snapshot.index.tokens, secret, token, now)
    if record is None and token.startswith(TOKEN_PREFIX):
        snapshot = app.extensions["authz"].recheck()
        record = live_token(snapshot.index.tokens, secret, token, now)
    return snapshot, record


def require_permission(app: Flask, principal: str, permission: str, resource: str = SERVICE_RESOURCE) -> None:
    """Ask the policy whether ``principal`` has ``permission`` on ``resource``; 403 if not."""
    if not app.extensions["authz"].is_allowed(principal, permission, resource):
        raise _forbidden(principal, permission, resource)


def _forbidden(principal: str, permission: str, resource: str) -> Forbidden:
    return Forbidden(f"{principal} may not {permission} on {resource}", field=None)


# Distinct (token, permission) pairs one snapshot remembers: a portal has a handful of tokens.
CALLERS_REMEMBERED = 1024


def permitted_caller(app: Flask, authorization: str, permission: str) -> str:
    """:func:`bearer_principal` and :func:`require_permission` on the service, in one, remembered.

    The portal sends the same token with every check, so the snapshot that answered keeps the answer
    (allowed callers only) until the token or the last of the grants it rested on expires. Anything
    else that could change it (a revoked token, a removed grant, a disabled principal, a new policy)
    makes a new snapshot, which starts with nothing remembered: the answer is as fresh as asking.
    """
    snapshot = app.extensions["authz"].snapshot()
    remembered = snapshot.callers.get((authorization, permission))
    now = app.config["CLOCK"].now()
    if remembered is not None and (remembered[1] is None or now < remembered[1]):
        app.extensions["decisions"].token_used(remembered[2], now)
        return remembered[0]
    snapshot, token = _bearer_token(app, snapshot, authorization, now)
    decision = snapshot.evaluator.check(token.principal, permission, SERVICE_RESOURCE, now)
    if not decision.allowed:
        raise _forbidden(token.principal, permission, SERVICE_RESOURCE)
    # An answer oso gave names no grants, so nothing tells when it would change: not remembered.
    if decision.grants and len(snapshot.callers) < CALLERS_REMEMBERED:
        snapshot.callers[(authorization, permission)] = (token.principal,
                                                        _good_until(snapshot, token, decision.grants),
                                                        token.token_hash)
    return token.principal


def _good_until(snapshot: Snapshot, token: TokenRecord, grants: tuple[int, ...]) -> datetime | None:
    """When the token expires or the last of ``grants`` does, whichever is first (None: neither)."""
    expiries = [snapshot.index.grants_by_id[grant].expires_at for grant in grants]
    last_grant = None if None in expiries else max(expiries)  # type: ignore[type-var]
    ends = [end for end in (token.expires_at, last_grant) if end is not None]
    return min(ends) if ends else None


def caller() -> str:
    """The principal behind the request's bearer token; 401 without a live one. Memory only."""
    if "caller" not in g:
        g.caller = bearer_principal(current_app, request.headers.get("Authorization", ""))
    return g.caller


def authorize(permission: str, resource: str = SERVICE_RESOURCE) -> str:
    """Authenticate the caller and ask the policy whether it has ``permission``; 403 if not."""
    principal = caller()
    g.authorization_decision = (permission, resource, False)  # a deny until the policy says otherwise
    require_permission(current_app, principal, permission, resource)
    g.authorization_decision = (permission, resource, True)
    return principal


def authorize_object(permission: str, key: str, attributes: dict[str, Any]) -> str:
    """Like :func:`authorize`, for one of the service's own objects (``review_item:7``).

    403 becomes 404: a caller who may not even look at the object does not learn that it exists.
    """
    principal = caller()
    engine = get_engine()
    allowed = engine.is_allowed_on_object(principal, permission, key, attributes)
    g.authorization_decision = (permission, key, allowed)
    if not allowed:
        if permission != "view" and engine.is_allowed_on_object(principal, "view", key, attributes):
            raise Forbidden(f"{principal} may not {permission} {key}", field=None)
        raise NotFound(f"{key} does not exist", field="id")
    return principal


# The web pages, as one of the service's own objects: the policy says who may open them at all.
PAGES = "pages:ui"


def may_open_pages(principal: str) -> bool:
    """Whether ``principal`` may use the web pages at all (people may; programs, such as the portal, not)."""
    return get_engine().is_allowed_on_object(principal, "open", PAGES, {})


def public(view: F) -> F:
    """Mark an endpoint as reachable without a token (health, readiness, metrics, the API document)."""
    view.is_public = True  # type: ignore[attr-defined]
    return view


def init_guard(app: Flask) -> None:
    @app.after_request
    def _require_authorization_decision(response):
        rule = request.url_rule
        # Let through what serves no data: refusals of the request itself (its token, its shape, its
        # size), failures, and the methods a path allows (Flask's own answer to OPTIONS).
        if rule is None or response.status_code in (400, 401, 413) or response.status_code >= 500:
            return response
        if request.method == "OPTIONS" and getattr(rule, "provide_automatic_options", False):
            return response
        view = app.view_functions.get(request.endpoint or "")
        if getattr(view, "is_public", False) or "authorization_decision" in g:
            return response
        app.logger.error("endpoint %s answered without an authorization decision", request.endpoint)
        failed = jsonify({"error": {"code": "authorization_missing", "field": None,
                                    "message": "this endpoint answered without asking the policy; refused"}})
        failed.status_code = 500
        return failed


def body(model: type[M]) -> M:
    return parse_json(model, request.get_data(cache=True))


def query(model: type[M]) -> M:
    return parse_query(model, request.args)


def page_limit(limit: int | None) -> int:
    if limit is None:
        return current_app.config["PAGE_SIZE"]
    return max(1, min(limit, current_app.config["MAX_PAGE_SIZE"]))


def write_context(actor: str) -> WriteContext:
    return WriteContext(actor=actor, now=clock_now(), request_id=g.get("request_id"))


@contextmanager
def unit_of_work(actor: str) -> Iterator[tuple[Session, WriteContext]]:
    """The request's writes, as one unit of work on the request's session."""
    session = get_session()
    session.commit()  # end the reads of authentication, so the write transaction starts with its lock
    ctx = write_context(actor)
    with work.unit_of_work(session, ctx, get_engine()) as unit:
        yield unit
