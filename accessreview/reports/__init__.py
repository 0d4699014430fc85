"""Signed Excel evidence for auditors."""

from __future__ import annotations

from flask import Flask, current_app

from ..config import ConfigError
from .service import Signer
from .signing import SigningError, load_private_key


def init_app(app: Flask) -> None:
    try:
        key = load_private_key(app.config["SIGNING_KEY_PATH"], create=app.config["ENV"] == "development")
    except (SigningError, ValueError) as exc:
        raise ConfigError(f"ACCESSREVIEW_SIGNING_KEY_PATH is invalid: {exc}") from None
    app.extensions["signer"] = Signer(key)


def get_signer() -> Signer:
    return signer_of(current_app)


def signer_of(app: Flask) -> Signer:
    return app.extensions["signer"]
