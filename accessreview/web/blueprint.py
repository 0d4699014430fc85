"""The pages' blueprint, and what every page shares: its error page, its response headers, how its
filter forms are read and how times and changes are shown."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TypeVar

from flask import Blueprint, g, redirect, render_template, request, send_from_directory, url_for
from pydantic import BaseModel

from ..clock import as_utc
from ..errors import ApiError
from ..guard import public
from ..validation import parse_query

M = TypeVar("M", bound=BaseModel)
STATIC = Path(__file__).parent / "static"
bp = Blueprint("web", __name__, url_prefix="/ui", template_folder="templates", static_folder=None)

# No script, no third-party anything, no framing. Referer and Origin only to ourselves: a sign-in
# link in a URL never reaches another site, and our own forms still name their origin (with
# no-referrer, browsers send "Origin: null", which the forms' same-origin check must refuse).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


@bp.after_request
def _headers(response):
    response.headers.update(SECURITY_HEADERS)
    if response.mimetype == "text/html":
        response.headers["Cache-Control"] = "no-store"  # pages show who has access to what
    return response


def to_sign_in():
    """Off to the sign-in page, and back here afterwards (to the start page after a form)."""
    g.authorization_decision = ("sign_in", "web", False)  # a deny: the guard's record of it
    back = request.full_path.rstrip("?") if request.method == "GET" else "/ui/"
    return redirect(url_for("web.sign_in", next=back))


# What people type into forms, shown again (editable) when a stale form is offered afresh.
TYPED = ("justification", "reason", "statement", "description")


@bp.errorhandler(ApiError)
def _error_page(error: ApiError):
    if error.status == 401:
        return to_sign_in()
    if error.code == "stale_form" and g.get("web_token"):
        return _offer_again(error)
    return render_template("error.html", error=error), error.status


def _offer_again(error: ApiError):
    """A form from before this session (signed in again, or on another tab), offered again with a
    fresh token: what was typed is kept, and nothing happens until it is sent again."""
    fields = [(key, value) for key, value in request.form.items(multi=True) if key != "form_token"]
    typed = [(key, value) for key, value in fields if key.split("-")[0] in TYPED and value.strip()]
    hidden = [(key, value) for key, value in fields if (key, value) not in typed]
    return render_template("stale_form.html", error=error, action=request.path, typed=typed, hidden=hidden), \
        error.status


def page_query(model: type[M]) -> M:
    """The query of a page whose filter form sends every field: an empty one means no filter."""
    return page_query_of(model, request.args)


def page_query_of(model: type[M], args) -> M:
    return parse_query(model, {key: value.strip() for key, value in args.items() if value.strip()})


@bp.get("/style.css")
@public
def stylesheet():
    return send_from_directory(STATIC, "style.css", mimetype="text/css", max_age=3600)


@bp.app_template_filter("when")
def _when(value: str | datetime | None) -> str:
    """A time (ISO 8601 text or a datetime; the database's naive ones are UTC) as people read it."""
    if not value:
        return "—"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return as_utc(moment).strftime("%Y-%m-%d %H:%M UTC")


@bp.app_template_filter("plain")
def _plain(value: object) -> str:
    """A value of an explanation or a history entry as text: lists as ``a, b``, nothing as ``none``."""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "none"
    return str(value)


@bp.app_template_filter("change")
def _change(event: dict) -> str:
    """What an audit event changed: for an edit, only the fields that differ, as ``old → new``."""
    before, after = event.get("before") or {}, event.get("after") or {}
    if before and after and isinstance(before, dict) and isinstance(after, dict):
        keys = [key for key in after if before.get(key) != after[key]] + [key for key in before if key not in after]
        return " · ".join(f"{key.replace('_', ' ')}: {_plain(before.get(key))} → {_plain(after.get(key))}"
                          for key in keys) or "no field changed"
    shown = after or before
    if isinstance(shown, dict):
        return " · ".join(f"{key.replace('_', ' ')}: {_plain(value)}" for key, value in shown.items()
                          if value is not None)
    return _plain(shown)
