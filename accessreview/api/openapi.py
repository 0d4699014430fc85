"""The OpenAPI 3.1 document, built from the registered routes and the models they declare."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from flask import Flask
from pydantic import BaseModel

from .shapes import ErrorOut

_CONVERTER = re.compile(r"<(?:([a-z]+):)?([a-zA-Z_]+)>")
_REF = "#/components/schemas/{model}"


class Media(NamedTuple):
    """A body that is not JSON: its media type and schema (for a request or a response)."""
    type: str
    schema: dict[str, Any]


def openapi_path(rule: str) -> str:
    return _CONVERTER.sub(lambda m: "{" + m.group(2).rstrip("_") + "}", rule)


class _Schemas:
    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def content(self, model: type[BaseModel] | dict | Media, mode: str) -> dict[str, Any]:
        if isinstance(model, Media):
            return {model.type: {"schema": model.schema}}
        return {"application/json": {"schema": self.ref(model, mode)}}

    def ref(self, model: type[BaseModel] | dict, mode: str) -> dict[str, Any]:
        if isinstance(model, dict):
            return model
        schema = model.model_json_schema(ref_template=_REF, mode=mode)  # type: ignore[arg-type]
        self.components.update(schema.pop("$defs", {}))
        name = model.__name__
        self.components[name] = schema
        return {"$ref": _REF.format(model=name)}


def _parameters(rule, view_doc: dict[str, Any]) -> list[dict[str, Any]]:
    params = [{"name": name.rstrip("_"), "in": "path", "required": True,
               "schema": {"type": "integer" if converter == "int" else "string"}}
              for converter, name in _CONVERTER.findall(rule.rule)]
    query_model = view_doc.get("query")
    if query_model is not None:
        for name, field in query_model.model_fields.items():
            schema = query_model.model_json_schema()["properties"][name]
            params.append({"name": name, "in": "query", "required": field.is_required(), "schema": schema})
    return params


def build_openapi(app: Flask) -> dict[str, Any]:
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static" or rule.endpoint.startswith("web."):
            continue  # the web pages are HTML forms for people, not part of the JSON API
        view = app.view_functions[rule.endpoint]
        doc = getattr(view, "openapi", {"summary": rule.endpoint, "responses": {}})
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operation: dict[str, Any] = {
                "operationId": rule.endpoint.replace(".", "_"),
                "summary": doc["summary"],
                "tags": [doc.get("tag") or "other"],
                "parameters": _parameters(rule, doc),
                "responses": {
                    str(status): {"description": _describe(status), "content": schemas.content(model, "serialization")}
                    for status, model in sorted(_responses(rule, doc).items())
                },
            }
            if not getattr(view, "is_public", False):
                operation["security"] = [{"bearer": []}]
            if doc.get("body") is not None:
                operation["requestBody"] = {"required": not doc.get("body_optional"),
                                            "content": schemas.content(doc["body"], "validation")}
            paths.setdefault(openapi_path(rule.rule), {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "accessreview", "version": "1",
                 "description": "Authorization checks, directory, access reviews and signed evidence "
                                "for the client portal. Errors: {\"error\": {\"code\", \"message\", \"field\"}}."},
        "paths": paths,
        "components": {"schemas": schemas.components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


def _responses(rule, doc: dict[str, Any]) -> dict[int, Any]:
    """The view's documented answers; with a path parameter, also 404: a path can name nothing, and a
    principal or resource id in a path that is not one (``user:…``, ``type/id``) names nothing too.
    With a body, also 413: every body is held to MAX_BODY_BYTES before its view sees it."""
    implied = {404: rule.arguments, 413: doc.get("body") is not None}
    return {**{status: ErrorOut for status, applies in implied.items() if applies}, **doc["responses"]}


def _describe(status: int) -> str:
    return {200: "OK", 201: "Created", 400: "Malformed request", 401: "No or bad token",
            403: "Not permitted by the policy", 404: "Not found", 409: "Conflict", 413: "Body too large",
            422: "Refers to something unknown or invalid", 503: "Not ready"}.get(status, "Response")
