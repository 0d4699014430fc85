"""Signed Excel evidence for auditors."""

from __future__ import annotations

from flask import Flask, current_app

from .service import Signer
from .signing import load_private_key


def init_app(app: Flask) -> None:
    key = load_private_key(app.config["SIGNING_KEY_PATH"], create=app.config["ENV"] == "development")
    app.extensions["signer"] = Signer(key)


def get_signer() -> Signer:
    return current_app.extensions["signer"]
