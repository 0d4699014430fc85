"""Who is looking at a page: a bearer token kept in an HttpOnly cookie, checked on every request
exactly as the API checks its Authorization header (so revoking the token signs the page out too).

People sign in with a one-time link e-mailed to them (the reminder e-mails' readers need nothing
else), or by pasting an API token. Every form that changes something carries a token derived from
the session, and a form from another site is refused before it is read.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from urllib.parse import urlencode, urlsplit

from flask import Response, current_app, g, redirect, render_template, request, url_for

from ..audit import WriteContext
from ..authz.engine import SERVICE_RESOURCE
from ..db import get_session
from ..errors import BadRequest, Forbidden
from ..guard import PAGES, authorize_object, clock_now, find_live_token, may_open_pages, public, unit_of_work
from ..models import API_TOKEN, SIGN_IN_LINK, WEB_SESSION, Principal
from ..notify import Message
from ..outbox import enqueue
from ..signin import (LINK_LIFETIME, SESSION_LIFETIME, LinkStatus, Redemption, active_user_with_email, end_session,
                      is_link_token, issue_link, link_status, live_tokens_of, redeem_link, sign_out_everywhere)
from ..tokens import hash_token
from ..validation import NUL, column_length
from .blueprint import bp, to_sign_in

log = logging.getLogger(__name__)

COOKIE = "accessreview_session"
HOME = "/ui/"


# -- the signed-in principal -------------------------------------------------------------------------

def _principal_of(token: str) -> str | None:
    """The principal of a live token, found in this process or (a sign-in link redeemed in another
    one moments ago) in the database's latest revision."""
    now = clock_now()
    _, record = find_live_token(current_app, current_app.extensions["authz"].snapshot(), token, now)
    if record is None:
        return None
    current_app.extensions["decisions"].token_used(record.token_hash, now)
    return record.principal


def form_token(session_token: str) -> str:
    """What a page's forms send back: bound to the session, so another site cannot forge a form."""
    key = hmac.digest(current_app.config["SECRET_KEY"].encode(), b"web forms", hashlib.sha256)
    return hmac.new(key, session_token.encode(), hashlib.sha256).hexdigest()


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a page of ours, never another site."""
    if value and value.startswith("/ui") and not value.startswith("//") and "\\" not in value:
        return value
    return HOME


def _same_origin() -> bool:
    """A browser names the page a form came from (Origin, else Referer); it must be one of ours: the
    host asked, or the public address (a proxy in front may pass on a Host of its own)."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    ours = {request.host, urlsplit(current_app.config["PUBLIC_URL"]).netloc}
    return source is None or urlsplit(source).netloc in ours


@bp.before_request
def _sign_in_required():
    if request.method == "POST" and not _same_origin():
        g.authorization_decision = ("submit", "web", False)
        raise Forbidden("this form was sent from another site; refused", field=None, code="cross_site_form")
    view = current_app.view_functions.get(request.endpoint or "")
    if getattr(view, "is_public", False):
        return None
    token = request.cookies.get(COOKIE, "")
    principal = _principal_of(token) if token else None
    if principal is None:
        return to_sign_in()
    if not may_open_pages(principal):
        g.authorization_decision = ("open", PAGES, False)
        raise Forbidden(f"{principal} may not use these pages: they are for active people; programs use the API",
                        field=None)
    g.caller, g.web_token = principal, token
    if request.method == "POST" and not hmac.compare_digest(request.form.get("form_token", ""), form_token(token)):
        g.authorization_decision = ("submit", "web", False)
        raise BadRequest("this form is out of date (it was opened in another session); reload the page and try "
                         "again", field="form_token", code="stale_form")
    return None


@bp.context_processor
def _page_context():
    def may(permission: str) -> bool:
        principal = g.get("caller")
        return principal is not None and current_app.extensions["authz"].is_allowed(
            principal, permission, SERVICE_RESOURCE)

    token = g.get("web_token")
    return {"signed_in_as": g.get("caller") if token else None, "may": may,
            "form_token": form_token(token) if token else ""}


def _signed_in(response: Response, token: str, max_age: int | None) -> Response:
    secure = request.is_secure or current_app.config["PUBLIC_URL"].startswith("https:")
    response.set_cookie(COOKIE, token, max_age=max_age, path="/ui", secure=secure, httponly=True, samesite="Lax")
    return response


# -- signing in and out --------------------------------------------------------------------------------

@bp.get("/sign-in")
@public
def sign_in():
    next_page = safe_next(request.args.get("next"))
    token = request.cookies.get(COOKIE)
    principal = _principal_of(token) if token else None
    if principal and may_open_pages(principal):
        return redirect(next_page)
    return render_template("sign_in.html", next=next_page, error=None, email="")


@bp.post("/sign-in/email")
@public
def email_link():
    next_page = safe_next(request.form.get("next"))
    email = request.form.get("email", "").strip()
    if "@" not in email or len(email) > column_length(Principal.email) or NUL in email:
        return render_template("sign_in.html", next=next_page, email=email, error=(
            "email", "Give the e-mail address your account has, like ann@example.com.")), 400
    user = active_user_with_email(get_session(), email)
    if user is not None:  # nobody: no write, no lock
        with unit_of_work("web:sign-in") as (session, ctx):
            link = issue_link(session, ctx, current_app.config["SECRET_KEY"], user)
            if link is not None:  # sent by the worker after commit; the page never waits on a mail server
                _queue_link(session, ctx, link.principal, link.address, link.token, next_page)
    return render_template("link_sent.html", email=email, minutes=int(LINK_LIFETIME.total_seconds() // 60))


def _queue_link(session, ctx: WriteContext, principal: str, address: str, token: str, next_page: str) -> None:
    config = current_app.config
    url = f"{config['PUBLIC_URL']}{url_for('web.open_link')}?{urlencode({'token': token, 'next': next_page})}"
    minutes = int(LINK_LIFETIME.total_seconds() // 60)
    text = (f"Someone (we hope you) asked to sign in to accessreview as {principal}.\n\n"
            f"Open this link within {minutes} minutes to sign in; it works once:\n{url}\n\n"
            "If you did not ask for it, ignore this message: nobody can use it without your mailbox.\n")
    if not config.get("SMTP_HOST") and config["ENV"] == "development":
        # With no mail server, a development machine's log is the newcomer's inbox.
        log.warning("sign-in link for %s (no ACCESSREVIEW_SMTP_HOST; development only): %s", principal, url)
        return
    enqueue(session, ctx.now, config, Message(principal, address, "Your accessreview sign-in link", text,
                                              {"event": "sign_in_link", "to": principal}), keep_text=False)


def _refused_link(status: LinkStatus):
    """The page for a link that signs nobody in, saying why: used (and when), or no longer valid."""
    return render_template("link_expired.html", minutes=int(LINK_LIFETIME.total_seconds() // 60),
                           reason=status.refused, used_at=status.used_at), 410


@bp.get("/sign-in/link")
@public
def open_link():
    """Ask before using the link up: mail scanners open links, and must not spend them."""
    token = request.args.get("token", "")
    status = link_status(get_session(), WriteContext("web:sign-in", clock_now()), current_app.config["SECRET_KEY"],
                         token)
    if status.holder is None:
        return _refused_link(status)
    return render_template("link_confirm.html", holder=status.holder, token=token,
                           next=safe_next(request.args.get("next")))


@bp.post("/sign-in/link")
@public
def use_link():
    with unit_of_work("web:sign-in") as (session, ctx):  # a refused link is audited: committed too
        redeemed = redeem_link(session, ctx, current_app.config["SECRET_KEY"], request.form.get("token", ""))
    if not isinstance(redeemed, Redemption):
        return _refused_link(redeemed)
    response = redirect(safe_next(request.form.get("next")))
    return _signed_in(response, redeemed.session_token, int(SESSION_LIFETIME.total_seconds()))


@bp.post("/sign-in/token")
@public
def paste_token():
    next_page = safe_next(request.form.get("next"))
    token = request.form.get("token", "").strip()
    principal = _principal_of(token) if token else None
    if principal is None:
        message = "That token is unknown, revoked or expired."
        if token and is_link_token(get_session(), current_app.config["SECRET_KEY"], token):
            message = ("That is a sign-in link's token: it works only by opening its link, once. Open the link "
                       "from your e-mail, or ask for a new one.")
        return render_template("sign_in.html", next=next_page, email="", error=("token", message)), 401
    if not may_open_pages(principal):
        return render_template("sign_in.html", next=next_page, email="", error=(
            "token", f"That token is {principal}'s, who may not use these pages: they are for active people; "
            "programs use the API.")), 403
    return _signed_in(redirect(next_page), token, None)


def _signed_in_person() -> str:
    """The person signed in, who may end their own sessions (anyone who may open the pages)."""
    return authorize_object("open", PAGES, {})


@bp.get("/sign-out-everywhere")
def confirm_sign_out_everywhere():
    """What signing out everywhere revokes, said before it is done."""
    me = _signed_in_person()
    live = live_tokens_of(get_session(), me, clock_now())
    own = hash_token(current_app.config["SECRET_KEY"], g.web_token)
    return render_template("sign_out_everywhere.html", sessions=len(live.get(WEB_SESSION, [])),
                           links=len(live.get(SIGN_IN_LINK, [])), api_tokens=live.get(API_TOKEN, []),
                           on_api_token=any(row.token_hash == own for row in live.get(API_TOKEN, [])))


@bp.post("/sign-out-everywhere")
def sign_out_everywhere_form():
    me = _signed_in_person()
    purposes = (WEB_SESSION, SIGN_IN_LINK) + ((API_TOKEN,) if request.form.get("api_tokens") == "revoke" else ())
    with unit_of_work(me) as (session, ctx):
        revoked = sign_out_everywhere(session, ctx, me, purposes)
    g.pop("web_token")  # the page below is for someone signed out: no navigation, no forms of the session
    said = f"You are signed out everywhere: {revoked} of your sessions, links and tokens were revoked."
    response = Response(render_template("sign_in.html", next=HOME, error=None, email="", notice=said))
    response.delete_cookie(COOKIE, path="/ui")
    return response


@bp.post("/sign-out")
@public
def sign_out():
    token = request.cookies.get(COOKIE)
    principal = _principal_of(token) if token else None
    if principal is not None:
        with unit_of_work(principal) as (session, ctx):
            end_session(session, ctx, current_app.config["SECRET_KEY"], token)
    response = redirect(url_for("web.sign_in"))
    response.delete_cookie(COOKIE, path="/ui")
    return response
