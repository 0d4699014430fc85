"""Health, readiness, metrics, request ids, logs and the OpenAPI document."""

from __future__ import annotations

import json
import logging

import jsonschema
import pytest
from sqlalchemy import text

from accessreview.migrate import head_revision


def test_healthz_needs_no_token(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_readyz_reports_database_migrations_and_policy(client, app):
    body = client.get("/readyz").get_json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == "ok" and body["checks"]["migrations"] == "ok"
    assert body["checks"]["policy"]["version"] == app.extensions["authz"].policy.version
    assert body["checks"]["policy"]["files"] == ["portal.polar", "service.polar"]


def test_readyz_is_unavailable_when_migrations_are_behind(client, db):
    db.execute(text("UPDATE alembic_version SET version_num = 'older'"))
    db.commit()
    try:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert "older" in response.get_json()["checks"]["migrations"]
    finally:
        db.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head_revision()})
        db.commit()


def test_readyz_is_unavailable_when_the_database_is_not(app_config, tmp_path):
    from accessreview import create_app

    app = create_app({**app_config, "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"})
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"].startswith("unreachable")


def test_request_id_is_echoed_or_made(client):
    assert client.get("/healthz", headers={"X-Request-Id": "abc-123"}).headers["X-Request-Id"] == "abc-123"
    made = client.get("/healthz").headers["X-Request-Id"]
    assert len(made) == 32
    assert client.get("/healthz", headers={"X-Request-Id": "bad id!"}).headers["X-Request-Id"] != "bad id!"


def test_logs_are_json_with_the_request_id(client, portal, capfd):
    from accessreview.observability import configure_logging

    configure_logging("INFO", True)
    client.get("/v1/principals", headers={**portal, "X-Request-Id": "log-me"})
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    entry = next(line for line in lines if line.get("request_id") == "log-me")
    assert entry["status"] == 200 and entry["path"] == "/v1/principals" and entry["caller"] == "service:portal"
    assert entry["level"] == "INFO" and "duration_ms" in entry
    logging.getLogger("accessreview").handlers.clear()


def test_metrics_count_requests_by_endpoint(client, portal):
    client.get("/v1/principals", headers=portal)
    client.get("/v1/principals", headers=portal)
    text_ = client.get("/metrics").get_data(as_text=True)
    counted = [line for line in text_.splitlines()
               if line.startswith("accessreview_http_requests_total{") and 'endpoint="/v1/principals"' in line
               and 'status="200"' in line]
    assert counted and float(counted[0].rsplit(" ", 1)[1]) >= 2
    assert "accessreview_http_request_duration_seconds_bucket" in text_


def test_openapi_documents_every_route(client, app):
    document = client.get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    assert not [path for path in document["paths"] if path.startswith("/ui")], "pages are not the JSON API"
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("web."):
            continue
        path = rule.rule.replace("<int:", "<").replace("<", "{").replace(">", "}").replace("_}", "}")
        assert path in document["paths"], f"{rule.rule} is not in the OpenAPI document"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            operation = document["paths"][path][method.lower()]
            assert operation["summary"] and operation["responses"], rule.rule


def test_openapi_has_request_and_response_shapes(client):
    document = client.get("/openapi.json").get_json()
    grant = document["paths"]["/v1/grants"]["post"]
    body_ref = grant["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body_schema = document["components"]["schemas"][body_ref.rsplit("/", 1)[1]]
    assert {"principal", "role", "resource"} <= set(body_schema["required"])
    assert body_schema["additionalProperties"] is False
    assert "201" in grant["responses"] and "409" in grant["responses"]
    assert grant["security"] == [{"bearer": []}]
    assert "security" not in document["paths"]["/healthz"]["get"]
    params = {p["name"] for p in document["paths"]["/v1/grants"]["get"]["parameters"]}
    assert {"principal", "resource", "role", "cursor"} <= params


def test_openapi_names_the_bodies_that_are_not_json(client):
    """A generated client must know to upload a form and to read a workbook or text, not JSON."""
    paths = client.get("/openapi.json").get_json()["paths"]
    verify = paths["/v1/reports/verify"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert set(verify["required"]) == {"workbook", "signature"}
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert set(paths["/v1/reports/{report_id}"]["get"]["responses"]["200"]["content"]) == {xlsx}
    assert set(paths["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}
    assert set(paths["/v1/reports/{report_id}"]["get"]["responses"]["404"]["content"]) == {"application/json"}


def test_openapi_says_what_the_api_refuses(client, lead, portal, admin):
    """What the document calls valid, the API takes; what the API refuses, the document says."""
    document = client.get("/openapi.json").get_json()
    schedule = {**document["components"]["schemas"]["Schedule"], "components": document["components"]}
    definition = {"name": "x", "reviewer": {"rule": "manager"}, "fallback_reviewer": "user:lena",
                  "duration_days": 7, "on_no_response": "keep"}
    for body in ({"cron": "0 9 * * 1"}, {"interval_days": 7, "cron": None}):
        jsonschema.Draft202012Validator(schedule).validate(body)
        taken = client.post("/v1/campaign-definitions", headers=lead, json={**definition, "schedule": body})
        assert taken.status_code == 201, taken.get_json()
    for body in ({}, {"cron": "0 9 * * 1", "interval_days": 7}, {"cron": None, "interval_days": None}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.Draft202012Validator(schedule).validate(body)
        refused = client.post("/v1/campaign-definitions", headers=lead, json={**definition, "schedule": body})
        assert refused.status_code == 400 and refused.get_json()["error"]["field"] == "schedule", body

    listed = document["paths"]["/v1/principals/{principal}/resources"]["get"]["parameters"]
    assert all(p["schema"].get("minLength") == 1 for p in listed if p["name"] in ("action", "type"))
    empty = client.get("/v1/principals/user:ann/resources?action=&type=document", headers=portal)
    assert empty.status_code == 400 and empty.get_json()["error"]["field"] == "action"

    # A path can name nothing: an id that is not one is a 404, and every such operation says so.
    assert client.get("/v1/resources/document/group:x/access", headers=admin).status_code == 404
    for path, operations in document["paths"].items():
        if "{" in path:
            for method, operation in operations.items():
                assert "404" in operation["responses"], f"{method.upper()} {path}"


def test_e_mailed_links_default_to_the_address_the_service_is_bound_to():
    import socket

    from accessreview.config import load_config

    assert load_config(environ={})["PUBLIC_URL"] == "http://127.0.0.1:8000"
    assert load_config(environ={"ACCESSREVIEW_BIND": "127.0.0.1:8611"})["PUBLIC_URL"] == "http://127.0.0.1:8611"
    assert load_config(environ={"ACCESSREVIEW_BIND": "0.0.0.0:8611"})["PUBLIC_URL"] == \
        f"http://{socket.gethostname()}:8611", "a wildcard address is no place to send anyone"
    assert load_config(environ={"ACCESSREVIEW_BIND": "127.0.0.1:8611",
                                "ACCESSREVIEW_PUBLIC_URL": "https://review.example"})["PUBLIC_URL"] == \
        "https://review.example"


def test_the_check_servers_address_defaults_to_where_it_is_bound():
    import socket

    from accessreview.config import ConfigError, load_config

    assert load_config(environ={})["CHECK_URL"] == "http://127.0.0.1:8001"
    assert load_config(environ={"ACCESSREVIEW_CHECK_BIND": "0.0.0.0:8612"})["CHECK_URL"] == \
        f"http://{socket.gethostname()}:8612"
    assert load_config(environ={"ACCESSREVIEW_CHECK_URL": "https://checks.example/"})["CHECK_URL"] == \
        "https://checks.example"
    assert load_config(environ={"ACCESSREVIEW_CHECK_URL": "off"})["CHECK_URL"] is None
    with pytest.raises(ConfigError, match="ACCESSREVIEW_CHECK_URL"):
        load_config(environ={"ACCESSREVIEW_CHECK_URL": "checks.example:8001"})
