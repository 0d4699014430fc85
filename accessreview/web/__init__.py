"""Web pages for people: reviewers work through their queue, security leads follow campaigns and sign
them off, auditors download and verify signed reports. Plain HTML forms, no script, over the same
service functions and the same policy checks as the JSON API."""

from __future__ import annotations

from flask import Flask

from .blueprint import bp


def init_app(app: Flask) -> None:
    from . import access, audit, auth, campaigns, holds, reports, reviews, tokens  # noqa: F401 (each adds its pages)

    app.register_blueprint(bp)
