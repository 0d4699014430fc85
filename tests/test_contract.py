"""The typed contract: every JSON answer in /openapi.json has its schema, the views answer through the
models the document is built from, and the suite's client (tests/contract.py) refuses any answer the
document does not describe."""

from __future__ import annotations

import json

import pytest

from accessreview.api import common, policy
from contract import ContractBroken

FREE_FORM = {("get", "/openapi.json")}  # the document itself: an OpenAPI document, not a shape of ours


def _bare_objects(schema, where: str) -> list[str]:
    """Places in ``schema`` that say only "an object": no properties, no map type, no reference."""
    found = []
    if isinstance(schema, dict):
        if schema.get("type") == "object" and not {"properties", "additionalProperties", "$ref"} & schema.keys():
            found.append(where)
        for key, value in schema.items():
            found += _bare_objects(value, f"{where}/{key}")
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            found += _bare_objects(value, f"{where}/{index}")
    return found


def test_every_json_request_and_answer_has_a_schema(client):
    document = client.get("/openapi.json").get_json()
    bare, answers = [], 0
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            if (method, path) in FREE_FORM:
                continue
            for status, response in operation["responses"].items():
                for media, content in response.get("content", {}).items():
                    answers += media == "application/json"
                    bare += _bare_objects(content["schema"], f"{method} {path} {status}")
            for media, content in operation.get("requestBody", {}).get("content", {}).items():
                bare += _bare_objects(content["schema"], f"{method} {path} request")
    bare += _bare_objects(document["components"]["schemas"], "components")
    assert answers > 150
    assert bare == []


def test_answers_name_their_fields_exactly(client):
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    for name in ("CampaignOut", "ReviewItemOut", "ReportOut", "SigningKeys", "JobOut", "DefinitionOut"):
        assert schemas[name]["additionalProperties"] is False, name
    assert schemas["ReviewItemPage"]["properties"]["items"]["items"] == {"$ref": "#/components/schemas/ReviewItemOut"}


def test_a_view_whose_answer_drifts_from_its_model_fails_the_suite(client, admin, monkeypatch):
    """A serializer that grows a field its model does not declare: the view refuses to send it (an
    error, 500, which the document does not promise), so the test client fails the test."""
    real = policy.policy_summary
    monkeypatch.setattr(policy, "policy_summary", lambda snapshot: {**real(snapshot), "surprise": 1})
    with pytest.raises(ContractBroken, match=r"GET /v1/policy -> 500: the document does not list this status"):
        client.get("/v1/policy", headers=admin)


def test_the_client_checks_answers_against_the_document_itself(client, admin, monkeypatch):
    """Even an answer that skipped its model is caught by the suite's client, by the document alone:
    here a field missing, then one of the wrong type."""
    monkeypatch.setattr(common, "through_model", lambda endpoint, status, payload: json.dumps(payload))
    real = policy.policy_summary

    def without_version(snapshot):
        summary = real(snapshot)
        del summary["version"]
        return summary

    monkeypatch.setattr(policy, "policy_summary", without_version)
    with pytest.raises(ContractBroken, match=r"GET /v1/policy -> 200: the answer does not fit its schema: "
                                             r".*'version' is a required property"):
        client.get("/v1/policy", headers=admin)
    monkeypatch.setattr(policy, "policy_summary", lambda snapshot: {**real(snapshot), "files": "all of them"})
    with pytest.raises(ContractBroken, match=r"at files: 'all of them' is not of type 'array'"):
        client.get("/v1/policy", headers=admin)


def test_an_error_outside_any_operation_must_have_the_error_shape(client, admin):
    assert client.get("/v1/no-such-thing", headers=admin).status_code == 404  # checked, and it fits
    assert client.delete("/v1/policy", headers=admin).status_code == 405
