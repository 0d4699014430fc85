"""Every answer the suite receives, held to the OpenAPI document: a test client whose every API
answer must have a status its operation documents and, when it is JSON, fit that status's schema.

The validators are built once per test session (the routes, hence the document, are the same in
every app the suite makes). Pages (``web.*``) are HTML for people, outside the document.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect

from accessreview.api.openapi import build_openapi, openapi_path

UNROUTED = "unrouted"  # a path no route matches (404) or a method it does not take (405)


class ContractBroken(AssertionError):
    """An answer the document does not describe."""


class Contract:
    """The document's answers, per (operation, status): a JSON validator, or None for other media."""

    def __init__(self, app: Flask) -> None:
        with app.app_context():
            self.document = build_openapi(app)
        self.components = self.document["components"]
        self.answers: dict[tuple[str, str], dict[str, Draft202012Validator | None]] = {}
        for path, methods in self.document["paths"].items():
            for method, operation in methods.items():
                self.answers[(method.upper(), path)] = {
                    status: self._validator(answer) for status, answer in operation["responses"].items()}
        error = {"$ref": "#/components/schemas/ErrorOut"}
        self.unrouted = Draft202012Validator({**error, "components": self.components})

    def _validator(self, answer: dict[str, Any]) -> Draft202012Validator | None:
        schema = answer.get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            return None
        return Draft202012Validator({**schema, "components": self.components})

    def check(self, app: Flask, method: str, path: str, response) -> None:
        """Raise ContractBroken when ``response`` to ``method path`` is not what the document says."""
        operation = self._operation(app, method, path)
        if operation is None:
            return  # a page, a static file, or OPTIONS
        if operation == UNROUTED:
            self._validate(self.unrouted, response, f"{method} {path} (no such operation)")
            return
        documented = self.answers.get(operation)
        if documented is None:
            return  # a route a test added to its own app, not part of the API
        where = f"{operation[0]} {operation[1]} -> {response.status_code}"
        if str(response.status_code) not in documented:
            raise ContractBroken(f"{where}: the document does not list this status "
                                 f"(documented: {', '.join(sorted(documented))}); body: {response.get_data()[:300]!r}")
        validator = documented[str(response.status_code)]
        if method == "HEAD":
            return  # the headers of a GET, without its body
        if validator is None:
            if response.is_json:
                raise ContractBroken(f"{where}: a JSON answer where the document says another media type")
            return
        self._validate(validator, response, where)

    def _operation(self, app: Flask, method: str, path: str) -> tuple[str, str] | str | None:
        if method == "OPTIONS":
            return None
        method = "GET" if method == "HEAD" else method
        try:
            rule, _args = app.url_map.bind("localhost").match(path, method, return_rule=True)
        except (NotFound, MethodNotAllowed):
            return UNROUTED
        except RequestRedirect:
            return None
        if rule.endpoint == "static" or rule.endpoint.startswith("web."):
            return None
        return method, openapi_path(rule.rule)

    @staticmethod
    def _validate(validator: Draft202012Validator, response, where: str) -> None:
        if not response.is_json:
            raise ContractBroken(f"{where}: the document says JSON; the answer is {response.mimetype}")
        errors = sorted(validator.iter_errors(response.get_json()), key=lambda e: list(e.absolute_path))
        if errors:
            shown = "; ".join(f"at {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:200]}"
                              for e in errors[:5])
            raise ContractBroken(f"{where}: the answer does not fit its schema: {shown}")


_contract: Contract | None = None


def contract_of(app: Flask) -> Contract:
    global _contract
    if _contract is None:
        _contract = Contract(app)
    return _contract


class ContractClient(FlaskClient):
    """The Flask test client, checking every answer against the document as it comes."""

    def open(self, *args, **kwargs):
        response = super().open(*args, **kwargs)
        request = response.request
        contract_of(self.application).check(self.application, request.method, request.path, response)
        return response
