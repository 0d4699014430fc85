"""accessreview: authorization checks, directory, access reviews and signed evidence for a client portal."""

from __future__ import annotations

from typing import Any, Mapping

from flask import Flask
from flask.sessions import SessionInterface

from .clock import SystemClock
from .config import load_config
from .validation import RowIdConverter


class NoCookieSessions(SessionInterface):
    """The API keeps no cookie sessions: SECRET_KEY keys token hashes, so Flask must not sign cookies
    with it (nor spend time building a signer on every request)."""

    def open_session(self, app, request):
        return None

    def save_session(self, app, session, response):
        return None


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. ``config`` overrides settings (tests); otherwise ``ACCESSREVIEW_*`` variables apply."""
    from . import db, errors, guard, observability
    from . import reports, web
    from .api import audit, authorize, authzen, campaigns, directory, holds, hotpath, jobs, ops, policy
    from .api import reports as reports_api
    from .authz import engine

    settings = load_config(config)
    settings.setdefault("CLOCK", SystemClock())
    app = Flask(__name__, instance_path=str(settings["INSTANCE_DIR"]), static_folder=None)  # the pages serve their own
    app.config.update(settings)
    app.config["MAX_CONTENT_LENGTH"] = settings["MAX_BODY_BYTES"]
    app.json.sort_keys = False
    app.session_interface = NoCookieSessions()
    app.url_map.converters["int"] = RowIdConverter  # before any route is added

    observability.configure_logging(settings["LOG_LEVEL"], settings["JSON_LOGS"])
    errors.init_app(app)
    reports.init_app(app)  # before anything touches the database: a bad key is a one-line stop
    db.init_app(app)
    engine.init_app(app)
    observability.init_app(app)
    guard.init_guard(app)
    for blueprint in (ops.bp, directory.bp, holds.bp, audit.bp, authorize.bp, authzen.bp, policy.bp, campaigns.bp, jobs.bp,
                      reports_api.bp):
        app.register_blueprint(blueprint)
    web.init_app(app)
    hotpath.init_app(app)  # the portal's checks and /healthz skip Flask's per-request machinery

    from .cli import init_app as init_cli
    init_cli(app)
    return app
