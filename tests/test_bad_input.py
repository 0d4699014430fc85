"""Bad input gets one JSON error shape with a fitting status, and changes nothing."""

from __future__ import annotations

import time

import pytest

from accessreview.pagination import encode_cursor
from test_authorize import check, world  # noqa: F401 (world: a fixture)


def error(response):
    body = response.get_json()
    assert set(body) == {"error"}
    assert {"code", "message", "field"} <= set(body["error"])
    return body["error"]


@pytest.fixture
def org(client, portal):
    client.put("/v1/principals/user:alice", json={"name": "Alice"}, headers=portal)
    client.put("/v1/resources/organization/acme", json={"name": "Acme"}, headers=portal)


def test_malformed_json(client, portal, unchanged):
    with unchanged():
        response = client.put("/v1/principals/user:alice", data='{"name": "Alice",', headers=portal,
                              content_type="application/json")
    assert response.status_code == 400
    assert error(response)["code"] == "malformed_json"


def test_empty_body(client, portal, unchanged):
    with unchanged():
        response = client.post("/v1/grants", data="", headers=portal, content_type="application/json")
    assert response.status_code == 400 and error(response)["code"] == "malformed_json"


def test_body_that_is_not_an_object(client, portal, unchanged):
    with unchanged():
        response = client.post("/v1/grants", json=["user:alice"], headers=portal)
    assert response.status_code == 400 and error(response)["code"] == "invalid_body"


@pytest.mark.parametrize("body, field", [
    ({"name": 42}, "name"),
    ({"status": "asleep"}, "status"),
    ({"last_seen_at": "yesterday"}, "last_seen_at"),
    ({"last_seen_at": "9999-12-31T23:59:59-01:00"}, "last_seen_at"),  # past year 9999 in UTC
    ({"email": "not-an-address"}, "email"),
    ({"members": "user:bob"}, "members"),
])
def test_wrong_types_and_values(client, portal, unchanged, body, field):
    with unchanged():
        response = client.put("/v1/principals/user:alice", json=body, headers=portal)
    assert response.status_code == 400
    assert error(response)["field"] == field
    assert error(response)["code"] in ("invalid_type", "invalid_value")


def test_numbers_are_not_coerced_to_strings(client, portal, org, unchanged):
    with unchanged():
        response = client.post("/v1/grants", json={"principal": "user:alice", "role": "member",
                                                   "resource": "organization:acme", "reason": 7}, headers=portal)
    assert response.status_code == 400 and error(response)["field"] == "reason"


def test_unknown_fields(client, portal, org, unchanged):
    with unchanged():
        response = client.put("/v1/principals/user:alice", json={"name": "A", "nickname": "Al"}, headers=portal)
        grant = client.post("/v1/grants", json={"principal": "user:alice", "role": "member",
                                                "resource": "organization:acme", "weight": 1}, headers=portal)
        top = client.post("/v1/directory/import", json={"principals": [], "everything": True}, headers=portal)
    assert response.status_code == 400 and error(response)["code"] == "unknown_field"
    assert error(response)["field"] == "nickname"
    assert error(grant)["field"] == "weight"
    assert error(top)["field"] == "everything"


def test_missing_required_field(client, portal, unchanged):
    with unchanged():
        response = client.post("/v1/grants", json={"principal": "user:alice", "role": "member"}, headers=portal)
    assert response.status_code == 400
    assert error(response) == {**error(response), "code": "missing_field", "field": "resource"}


def test_body_over_the_limit(app, client, portal, unchanged):
    app.config.update(MAX_BODY_BYTES=1024, MAX_CONTENT_LENGTH=1024)  # as ACCESSREVIEW_MAX_BODY_BYTES=1024 does
    big = {"principals": [{"id": f"user:u{i}", "name": "x" * 50} for i in range(100)]}
    with unchanged():
        response = client.post("/v1/directory/import", json=big, headers=portal)
    assert response.status_code == 413
    assert error(response)["code"] == "body_too_large"
    assert "1024 bytes" in error(response)["message"]


def test_unknown_ids_in_the_path(client, portal):
    assert error(client.get("/v1/principals/user:ghost", headers=portal))["code"] == "not_found"
    assert client.get("/v1/principals/robot:r2", headers=portal).status_code == 404
    assert client.get("/v1/resources/document/ghost", headers=portal).status_code == 404
    assert client.delete("/v1/grants/999999", headers=portal).status_code == 404
    assert error(client.get("/v1/no-such-thing", headers=portal))["code"] == "not_found"


def test_unknown_references_in_the_body(client, portal, org, unchanged):
    with unchanged():
        response = client.post("/v1/grants", json={"principal": "user:ghost", "role": "member",
                                                   "resource": "organization:acme"}, headers=portal)
    assert response.status_code == 422
    assert error(response) == {**error(response), "code": "unknown_reference", "field": "principal"}


def test_unknown_role(client, portal, org, unchanged):
    with unchanged():
        response = client.post("/v1/grants", json={"principal": "user:alice", "role": "owner",
                                                   "resource": "organization:acme"}, headers=portal)
    assert response.status_code == 422
    assert error(response)["code"] == "unknown_role"
    assert "member" in error(response)["message"], "the message lists the roles the policy declares"


def test_unknown_type(client, portal, unchanged):
    with unchanged():
        response = client.put("/v1/resources/spaceship/enterprise", json={}, headers=portal)
    assert response.status_code == 422 and error(response)["code"] == "unknown_type"


def test_duplicate_grant(client, portal, org, unchanged):
    body = {"principal": "user:alice", "role": "member", "resource": "organization:acme"}
    assert client.post("/v1/grants", json=body, headers=portal).status_code == 201
    with unchanged():
        response = client.post("/v1/grants", json=body, headers=portal)
    assert response.status_code == 409 and error(response)["code"] == "duplicate_grant"


def test_wrong_method(client, portal):
    response = client.patch("/v1/grants", headers=portal)
    assert response.status_code == 405 and error(response)["code"] == "method_not_allowed"


def test_bad_query_parameters(client, portal):
    response = client.get("/v1/principals?type=robot", headers=portal)
    assert response.status_code == 400 and error(response)["field"] == "type"
    assert client.get("/v1/principals?limit=lots", headers=portal).status_code == 400


def test_every_route_answers_options_with_its_methods(app, client, portal):
    """Browsers ask before a cross-origin call; what a path allows is no secret, and no 500."""
    response = client.options("/v1/grants", headers=portal)
    assert response.status_code == 200 and {"GET", "POST"} <= set(response.headers["Allow"].split(", "))
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/v1/") and "<" not in rule.rule:
            assert client.options(rule.rule).status_code == 200, rule.rule


def test_a_malformed_query_is_400_before_the_policy_is_asked(client, lead):
    response = client.get("/v1/review-items?status=null", headers=lead)
    assert response.status_code == 400 and error(response)["field"] == "status"
    assert client.get("/v1/review-items?status=null").status_code == 401, "the token is looked at first"


# Positions of the wrong kind for each list: lists of keys take text, lists of rows an id, the
# decision log a time and an id.
_NOT_POSITIONS = [{"x": 1}, [1], None, 2**70, True]
_MADE_UP_CURSORS = (
    [(path, after) for path in ("/v1/grants", "/v1/audit-events", "/v1/review-items")
     for after in _NOT_POSITIONS + ["d1"]]
    + [(path, after) for path in ("/v1/principals", "/v1/resources/document/d1/access",
                                  "/v1/principals/user:alice/resources?action=read&type=document")
       for after in _NOT_POSITIONS]
    + [("/v1/decisions", after) for after in _NOT_POSITIONS + ["d1", ["not a time", "x"]]]
)


@pytest.mark.parametrize("path, after", _MADE_UP_CURSORS)
def test_a_cursor_this_service_did_not_issue_is_400(client, admin, world, path, after):
    """Cursors are opaque, but anyone can decode one; a made-up position never reaches a query."""
    separator = "&" if "?" in path else "?"
    response = client.get(f"{path}{separator}cursor={encode_cursor(after)}", headers=admin)
    assert response.status_code == 400 and error(response)["code"] == "invalid_cursor", response.get_json()


@pytest.mark.parametrize("huge", [2**40, 2**70])  # past PostgreSQL's INTEGER; past 64 bits
def test_ids_past_what_the_database_holds(client, lead, admin, huge):
    assert client.get(f"/v1/campaigns/{huge}", headers=lead).status_code == 404
    assert client.patch(f"/v1/campaign-definitions/{huge}", json={}, headers=lead).status_code == 404
    assert client.delete(f"/v1/grants/{huge}", headers=admin).status_code == 404
    response = client.get(f"/v1/review-items?campaign={huge}", headers=lead)
    assert response.status_code == 400 and error(response)["field"] == "campaign"
    response = client.post("/v1/campaigns/1/decisions", json={"decisions": [{"item": huge, "decision": "keep"}]},
                           headers=lead)
    assert response.status_code == 400 and error(response)["field"] == "decisions.0.item"
    response = client.get(f"/v1/review-items?cursor={encode_cursor(huge)}", headers=lead)
    assert response.status_code == 400 and error(response)["code"] == "invalid_cursor"


def test_a_revision_the_database_has_not_reached_is_stale_at_once(app, client, portal, world):
    """No wait can bring it (revisions are numbered by committed writes), so none holds the worker."""
    app.extensions["authz"].stale_wait = 60
    started = time.monotonic()
    response = check(client, portal, "user:alice", "read", "document:d1", at_least_revision=world + 1)
    assert response.status_code == 503 and error(response)["code"] == "stale"
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+00:36", "9999-12-31T23:59:59-01:00"])
def test_times_that_do_not_exist_in_utc(client, portal, auditor, org, unchanged, moment):
    """A time is compared, stored and printed in UTC: one that UTC cannot hold is refused as such."""
    with unchanged():
        response = client.post("/v1/grants", json={"principal": "user:alice", "role": "member",
                                                   "resource": "organization:acme", "expires_at": moment},
                               headers=portal)
    assert response.status_code == 400 and error(response)["field"] == "expires_at"
    for path in ("/v1/decisions", "/v1/audit-events"):
        response = client.get(path, query_string={"since": moment}, headers=auditor)
        assert response.status_code == 400 and error(response)["field"] == "since", path
    response = client.post("/v1/reports/decisions", json={"since": moment, "until": "2026-01-01T00:00:00Z"},
                           headers=auditor)
    assert response.status_code == 400 and error(response)["field"] == "since"


@pytest.mark.parametrize("moment", ["2026", "1767225600", "0.5"])
def test_a_time_given_as_a_number_is_refused(client, auditor, moment):
    """Read as seconds since 1970, ``?since=2026`` would quietly mean 1970-01-01T00:33:46."""
    response = client.get("/v1/decisions", query_string={"since": moment}, headers=auditor)
    assert response.status_code == 400 and error(response)["field"] == "since"
    assert "ISO 8601" in error(response)["message"]
    assert client.get("/v1/decisions", query_string={"since": "2026-01-01"}, headers=auditor).status_code == 200


def test_a_decision_report_needs_until_after_since(client, auditor, unchanged):
    with unchanged():
        response = client.post("/v1/reports/decisions", json={"since": "2026-02-01T00:00:00Z",
                                                              "until": "2026-02-01T01:00:00+02:00"}, headers=auditor)
    assert response.status_code == 400 and error(response)["field"] == "until"


# -- text limits: NUL and over-long values, everywhere text comes in ---------------------------------

# Checks are parsed by the lean layer in front of Flask (tests/test_hotpath.py and test_authorize.py
# hold its input limits); every other JSON body goes through the one parser walked here.
HOT_PATH = {"/v1/authorize", "/v1/authorize/batch"}


@pytest.fixture
def review_world(app, client, admin, portal):
    """A campaign with items, so that every endpoint below reaches the parsing of its input."""
    from test_campaigns import DIRECTORY, definition, items, launch
    app.config["JOB_INLINE_SECONDS"] = 60  # launched within the request even on a busy machine
    assert client.post("/v1/directory/import", json=DIRECTORY, headers=portal).status_code == 200
    definition_id = definition(client, admin)
    campaign = launch(client, admin, definition_id)
    item = next(iter(items(client, admin, campaign["id"]).values()))
    return {"principal": "user:ann", "type": "organization", "id": "acme", "definition_id": definition_id,
            "campaign_id": campaign["id"], "item_id": item["id"], "hold_id": 1}


def _openapi(client) -> dict:
    return client.get("/openapi.json").get_json()


def _deref(doc: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _text_fields(doc: dict, schema: dict, path: tuple = ()):
    """(path, schema) of every text field a body may hold, nested objects and lists included."""
    schema = _deref(doc, schema)
    for alternative in schema.get("anyOf", []) + schema.get("oneOf", []):
        yield from _text_fields(doc, alternative, path)
    if schema.get("type") == "string":
        yield path, schema
    elif schema.get("type") == "object":
        for name, field in schema.get("properties", {}).items():
            yield from _text_fields(doc, field, (*path, name))
        if schema.get("additionalProperties") not in (None, False):  # free-form JSON (attributes)
            yield (*path, "key"), {"type": "string", "free": True}
    elif schema.get("type") == "array":
        yield from _text_fields(doc, schema["items"], (*path, 0))


def _nest(path: tuple, value):
    for key in reversed(path):
        value = [value] if isinstance(key, int) else {key: value}
    return value


def _json_bodies(client) -> list[tuple[str, str, tuple, dict]]:
    doc = _openapi(client)
    found: dict[tuple, dict] = {}
    for url, operations in doc["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is None or url in HOT_PATH:
                continue
            for path, schema in _text_fields(doc, body["schema"]):
                found.setdefault((method, url, path), schema)
    return [(method, url, path, schema) for (method, url, path), schema in found.items()]


def _send(client, headers, method: str, url: str, params: dict, body):
    return client.open(url.format(**params), method=method.upper(), json=body, headers=headers)


def _field(path: tuple) -> str:
    return ".".join(str(part) for part in path)


def test_every_text_field_of_every_body_has_a_documented_maximum(client):
    """The walk below would miss a field without a maximum: none may lack one (a choice, a time and
    free-form JSON aside), so a new field cannot arrive unbounded."""
    unbounded = [f"{method.upper()} {url} {_field(path)}" for method, url, path, schema in _json_bodies(client)
                 if "maxLength" not in schema and "enum" not in schema and "const" not in schema
                 and schema.get("format") != "date-time" and not schema.get("free")]
    assert not unbounded, unbounded
    assert len(_json_bodies(client)) > 40, "the walk found the bodies"


def test_a_nul_in_any_text_field_of_any_body_is_400_naming_it(client, admin, review_world, unchanged):
    failures = []
    with unchanged():
        for method, url, path, schema in _json_bodies(client):
            value = "a\x00b"
            body = _nest(path[:-1], {"a\x00b": "x"}) if schema.get("free") else _nest(path, value)
            response = _send(client, admin, method, url, review_world, body)
            want = _field(path[:-1] if schema.get("free") else path)
            got = response.get_json().get("error", {}) if response.is_json else {}
            if response.status_code != 400 or got.get("code") != "nul_character" or got.get("field") != want:
                failures.append(f"{method.upper()} {url} {want}: {response.status_code} {got}")
    assert not failures, "\n".join(failures)


def test_a_value_longer_than_its_column_is_400_naming_it(client, admin, review_world, unchanged):
    failures = []
    with unchanged():
        for method, url, path, schema in _json_bodies(client):
            if "maxLength" not in schema:
                continue
            response = _send(client, admin, method, url, review_world, _nest(path, "a" * (schema["maxLength"] + 1)))
            if url == "/access/v1/evaluations" and path[0] == "evaluations":
                # AuthZEN: one evaluation that cannot be read is a deny saying why; the others are answered.
                item_error = response.get_json()["evaluations"][0]["context"]["error"]
                listed = {(e["field"], e["code"]) for e in item_error["errors"]}
                if response.status_code != 200 or (_field(path), "too_long") not in listed:
                    failures.append(f"{method.upper()} {url} {_field(path)}: {response.get_json()}")
                continue
            listed = {(e["field"], e["code"]) for e in response.get_json()["error"].get("errors", [])}
            if response.status_code != 400 or (_field(path), "too_long") not in listed:
                failures.append(f"{method.upper()} {url} {_field(path)}: {response.status_code} "
                                f"{response.get_json()}")
    assert not failures, "\n".join(failures)


def test_the_longest_values_are_kept_whole(client, portal, org):
    """At the maximum, a value is accepted and stored as given, on PostgreSQL as on SQLite."""
    from accessreview.models import Grant, Principal, Resource
    from accessreview.validation import column_length
    name = "n" * column_length(Principal.name)
    response = client.put("/v1/principals/user:alice", json={"name": name, "department": "d" * 255}, headers=portal)
    assert response.status_code == 200 and response.get_json()["principal"]["name"] == name
    key_id = "x" * 200  # the longest id; a type and an id together are at most 255 characters
    response = client.put(f"/v1/resources/organization/{key_id}", json={"name": "r" * 255}, headers=portal)
    assert response.status_code == 201, response.get_json()
    reason = "r" * column_length(Grant.reason)
    response = client.post("/v1/grants", json={"principal": "user:alice", "role": "member", "granted_by": "g" * 255,
                                               "resource": f"organization:{key_id}", "reason": reason}, headers=portal)
    assert response.status_code == 201 and response.get_json()["grant"]["reason"] == reason
    too_long = client.put(f"/v1/resources/{'t' * 63}/{key_id}", json={}, headers=portal)
    assert len(f"{'t' * 63}:{key_id}") > column_length(Resource.key)
    assert too_long.status_code == 400 and error(too_long) == {**error(too_long), "field": "resource",
                                                                 "code": "too_long"}


def _query_parameters(client):
    doc = _openapi(client)
    for url, operations in doc["paths"].items():
        for method, operation in operations.items():
            if method != "get":
                continue
            for parameter in operation.get("parameters", []):
                schema = parameter["schema"]
                texts = [s for s in schema.get("anyOf", [schema]) if s.get("type") == "string"]
                if parameter["in"] == "query" and texts:
                    yield url, parameter["name"], texts[0]


def test_a_nul_in_any_query_parameter_is_400_naming_it(client, admin, review_world):
    """``?source=%00`` and the like: refused before any query, not a 500 from PostgreSQL."""
    failures = []
    for url, name, _schema in _query_parameters(client):
        response = client.get(url.format(**review_world), query_string={name: "\x00", "action": "read",
                                                                         "type": "document"} | {name: "a\x00"},
                              headers=admin)
        got = response.get_json()["error"] if response.status_code == 400 else {}
        if response.status_code != 400 or got.get("field") != name or got.get("code") != "nul_character":
            failures.append(f"GET {url}?{name}: {response.status_code} {response.get_json()}")
    assert not failures, "\n".join(failures)
    response = client.get("/v1/grants", query_string={"source": "portal", "unknown": "\x00"}, headers=admin)
    assert response.status_code == 400 and error(response)["field"] == "unknown", "even a parameter not used"


def test_a_query_parameter_longer_than_its_column_is_400_naming_it(client, admin, review_world):
    failures = []
    for url, name, schema in _query_parameters(client):
        if "maxLength" not in schema:
            continue
        response = client.get(url.format(**review_world), query_string={name: "a" * (schema["maxLength"] + 1)},
                              headers=admin)
        got = response.get_json()["error"] if response.status_code == 400 else {}
        if response.status_code != 400 or got.get("field") != name or got.get("code") != "too_long":
            failures.append(f"GET {url}?{name}: {response.status_code} {response.get_json()}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("url, field", [
    ("/v1/principals/user:a%00b", "principal"),
    ("/v1/resources/document/d%001", "resource"),
    ("/v1/resources/document/d%001/access", "resource"),
    ("/v1/principals/user:a%00/resources?action=read&type=document", "principal"),
])
def test_a_nul_in_a_path_id_is_400_naming_it(client, admin, world, url, field):
    response = client.get(url, headers=admin)
    assert response.status_code == 400 and error(response) == {**error(response), "field": field,
                                                                "code": "nul_character"}
    assert client.put("/v1/principals/user:a%00b", json={}, headers=admin).status_code == 400


def test_an_id_longer_than_its_column_is_400(client, admin):
    response = client.put(f"/v1/principals/user:{'a' * 300}", json={}, headers=admin)
    assert response.status_code == 400 and error(response)["code"] == "too_long"


# -- cursors ------------------------------------------------------------------------------------------

def _raw_cursor(text: bytes) -> str:
    import base64
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


@pytest.mark.parametrize("path", ["/v1/grants", "/v1/principals", "/v1/audit-events", "/v1/decisions",
                                  "/v1/review-items", "/v1/jobs", "/v1/resources/document/d1/access",
                                  "/v1/principals/user:alice/resources?action=read&type=document"])
@pytest.mark.parametrize("cursor", [
    _raw_cursor(b'{"after": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),  # a RecursionError, once
    _raw_cursor(b'{"after": [[["x"]]]}'),
    "A" * 5000,
    _raw_cursor(b'{"after": "' + b"x" * 2000 + b'"}'),
])
def test_a_deep_or_huge_cursor_is_400(client, admin, world, path, cursor):
    separator = "&" if "?" in path else "?"
    response = client.get(f"{path}{separator}cursor={cursor}", headers=admin)
    assert response.status_code == 400, response.get_json()
    assert error(response)["field"] == "cursor" and error(response)["code"] in ("invalid_cursor", "too_long")


def test_a_cursor_of_ours_at_its_longest_still_works(client, portal, org):
    """The longest key is 255 characters; a page ending on it gives a cursor that is read back."""
    client.put(f"/v1/resources/organization/{'z' * 200}", json={}, headers=portal)
    client.put("/v1/principals/user:" + "u" * 200, json={}, headers=portal)
    for path in ("/v1/principals?limit=1", "/v1/resources?limit=1"):
        cursor = client.get(path, headers=portal).get_json()["next_cursor"]
        while cursor:
            response = client.get(f"{path}&cursor={cursor}", headers=portal)
            assert response.status_code == 200, response.get_json()
            cursor = response.get_json()["next_cursor"]
