"""An admin's page of bearer tokens: who holds which (never a secret, but the one just made), new
ones, and revocation, which also ends a person's web sessions at once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import current_app, g, redirect, render_template, request, url_for

from ..clock import as_utc
from ..db import get_or_404, get_session
from ..directory.schemas import PrincipalKey
from ..errors import ApiError
from ..guard import authorize, clock_now, unit_of_work
from ..models import ServiceToken
from ..tokens import TokenRequest, create_token, list_tokens, revoke_token, token_state
from ..validation import Strict, parse_query
from .auth import COOKIE
from .blueprint import bp, page_query


class TokensQuery(Strict):
    principal: PrincipalKey | None = None
    all: bool = False  # revoked and expired ones too


@bp.get("/tokens")
def tokens():
    authorize("manage_tokens")
    return _render_tokens()


def _render_tokens(made: str | None = None, error: ApiError | None = None, status: int = 200):
    q = page_query(TokensQuery)
    now = clock_now()
    listed = [t for t in reversed(list_tokens(get_session(), q.principal)) if q.all or _live(t, now)]
    return render_template("tokens.html", tokens=listed, query=q, made=made, error=error,
                           form=request.form), status


def _live(token: dict[str, Any], now: datetime) -> bool:
    expires = token["expires_at"]
    return token["revoked_at"] is None and (expires is None or as_utc(datetime.fromisoformat(expires)) > now)


@bp.post("/tokens")
def make_token():
    """A new token, shown on the page once: only its hash is kept."""
    actor = authorize("manage_tokens")
    try:
        data = parse_query(TokenRequest, {name: value for name in ("principal", "expires_in", "description")
                                          if (value := request.form.get(name, "").strip())})
        with unit_of_work(actor) as (session, ctx):
            token, _ = create_token(session, ctx, current_app.config["SECRET_KEY"], data.principal, data.lifetime(),
                                    data.description)
    except ApiError as error:
        return _render_tokens(error=error, status=error.status)
    return _render_tokens(made=token)


def _own_session(token_id: str) -> bool:
    """Whether ``token_id`` is the token this page's session stands on (``ar_<id>_<secret>``)."""
    parts = (g.get("web_token") or "").split("_")
    return len(parts) >= 3 and parts[1] == token_id


@bp.get("/tokens/<token_id>/revoke")
def confirm_revoke(token_id: str):
    """What revoking does, said before it is done; the more plainly when it is one's own session."""
    authorize("manage_tokens")
    token = token_state(get_or_404(get_session(), ServiceToken, token_id, "token"))
    return render_template("token_revoke.html", token=token, own=_own_session(token_id),
                           seconds=current_app.config["REFRESH_INTERVAL"],
                           back=request.args.get("next") if (request.args.get("next") or "").startswith("/ui/tokens")
                           else url_for("web.tokens"))


@bp.post("/tokens/<token_id>/revoke")
def revoke(token_id: str):
    actor = authorize("manage_tokens")
    try:
        with unit_of_work(actor) as (session, ctx):
            revoke_token(session, ctx, token_id)
    except ApiError as error:
        return _render_tokens(error=error, status=error.status)
    if _own_session(token_id):  # signed out by it: say so on the sign-in page
        response = redirect(url_for("web.sign_in", revoked="own"))
        response.delete_cookie(COOKIE, path="/ui")
        return response
    return redirect(request.form.get("next") if (request.form.get("next") or "").startswith("/ui/tokens")
                    else url_for("web.tokens"))
