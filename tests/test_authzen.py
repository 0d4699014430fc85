"""The AuthZEN Authorization API 1.0: metadata, evaluation, evaluations and the searches, answered by the
same evaluator as /v1/authorize, kept in the decision log, on the main port and the check port."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from accessreview.checkserver import CheckServer
from test_authorize import check, world  # noqa: F401 (world: a fixture)
from test_checkserver import asgi_call
from test_hotpath import send

EVALUATION, EVALUATIONS = "/access/v1/evaluation", "/access/v1/evaluations"


def entity(key: str, **extra) -> dict:
    kind, _, ident = key.partition(":")
    return {"type": kind, "id": ident, **extra}


def ask(subject: str, action: str, resource: str, **extra) -> dict:
    return {"subject": entity(subject), "action": {"name": action}, "resource": entity(resource), **extra}


def post(client, path, body, headers, **extra):
    return client.post(path, json=body, headers=headers, **extra)


def logged(client, auditor, actor: str) -> list[dict]:
    return client.get(f"/v1/decisions?actor={actor}&limit=1000", headers=auditor).get_json()["items"]


def endpoints(base: str) -> dict[str, str]:
    return {"access_evaluation_endpoint": f"{base}/access/v1/evaluation",
            "access_evaluations_endpoint": f"{base}/access/v1/evaluations",
            "search_subject_endpoint": f"{base}/access/v1/search/subject",
            "search_resource_endpoint": f"{base}/access/v1/search/resource",
            "search_action_endpoint": f"{base}/access/v1/search/action"}


def test_both_ports_metadata_name_the_check_servers_endpoints_and_need_no_token(app, client):
    """The identifier is the address asked (a PEP uses nothing else); the endpoints, on either port,
    are the check server's, where the portal's checks belong."""
    app.config["CHECK_URL"] = "https://checks.example"
    response = client.get("/.well-known/authzen-configuration", base_url="https://pdp.example.com")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json() == {"policy_decision_point": "https://pdp.example.com",
                                   **endpoints("https://checks.example")}
    status, _, body = asgi_call(CheckServer(app), "GET", "/.well-known/authzen-configuration",
                                {"Host": "checks.example"})
    assert status == 200
    assert json.loads(body) == {"policy_decision_point": "http://checks.example", **endpoints("https://checks.example")}


def test_without_a_check_server_the_metadata_names_this_ports_endpoints(app, client):
    app.config["CHECK_URL"] = None  # ACCESSREVIEW_CHECK_URL=off
    response = client.get("/.well-known/authzen-configuration", base_url="https://pdp.example.com")
    assert response.get_json() == {"policy_decision_point": "https://pdp.example.com",
                                   **endpoints("https://pdp.example.com")}


@pytest.mark.parametrize("subject, action, resource", [
    ("user:alice", "delete", "document:d3"), ("user:alice", "read", "document:g1"),
    ("user:bob", "edit", "document:d2"), ("user:carl", "read", "document:d1"),
    ("user:dina", "read", "document:e1"), ("user:ghost", "read", "document:d1"),
    ("user:alice", "fly", "document:d1"), ("group:finance", "edit", "document:d2"),
])
def test_an_evaluation_decides_as_a_check_does(client, portal, world, subject, action, resource):
    expected = check(client, portal, subject, action, resource).get_json()
    response = post(client, EVALUATION, ask(subject, action, resource), portal)
    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert answer["decision"] is expected["allowed"]
    context = answer["context"]
    assert context["policy_version"] == expected["policy_version"] and context["revision"] == world
    assert context["decision_id"] and context["decision_id"] != expected["decision_id"]


def test_an_evaluation_is_in_the_decision_log(client, portal, auditor, world):
    answer = post(client, EVALUATION, ask("user:bob", "edit", "document:d2"), portal).get_json()
    [row] = [d for d in logged(client, auditor, "user:bob") if d["id"] == answer["context"]["decision_id"]]
    assert (row["actor"], row["action"], row["resource"], row["allowed"]) == \
        ("user:bob", "edit", "document:d2", True)
    assert row["caller"] == "service:portal"


def test_the_request_id_is_echoed_and_unknown_fields_ignored(client, portal, world):
    body = ask("user:alice", "read", "document:d1", context={"time": "1985-10-26T01:22-07:00"}, later_field=[1])
    body["subject"]["properties"] = {"department": "Sales", "ip_address": "172.217.22.14"}
    body["action"]["properties"] = {"method": "GET"}
    body["resource"]["unknown"] = {"x": 1}
    rid = "bfe9eb29-ab87-4ca3-be83-a1d5d8305716"
    response = post(client, EVALUATION, body, {**portal, "X-Request-ID": rid})
    assert response.status_code == 200 and response.get_json()["decision"] is True
    assert response.headers["X-Request-ID"] == rid
    response = post(client, EVALUATIONS, {"evaluations": [body]}, {**portal, "X-Request-ID": rid})
    assert response.headers["X-Request-ID"] == rid and response.get_json()["evaluations"][0]["decision"] is True


def test_the_flask_view_answers_as_the_hot_path(client, portal, world):
    body = ask("user:bob", "edit", "document:d2")
    fast = send(client, EVALUATION, body, portal)
    slow = send(client, EVALUATION, body, portal, chunked=True)
    for status, payload, _ in (fast, slow):
        payload["context"].pop("decision_id")
    assert fast == slow and fast[0] == 200
    batch = {"subject": entity("user:bob"), "evaluations": [{"action": {"name": "edit"}, "resource": entity("document:d2")}]}
    fast, slow = send(client, EVALUATIONS, batch, portal), send(client, EVALUATIONS, batch, portal, chunked=True)
    assert fast[0] == slow[0] == 200
    assert [e["decision"] for e in fast[1]["evaluations"]] == [e["decision"] for e in slow[1]["evaluations"]] == [True]


def test_the_check_port_answers_evaluations(app, client, portal, world):
    server = CheckServer(app)
    headers = {**portal, "Content-Type": "application/json", "X-Request-ID": "req-7"}
    status, answer_headers, body = asgi_call(server, "POST", EVALUATION, headers,
                                             json.dumps(ask("user:bob", "edit", "document:d2")).encode(), chunks=2)
    assert status == 200 and json.loads(body)["decision"] is True and answer_headers["x-request-id"] == "req-7"
    many = {"subject": entity("user:bob"), "action": {"name": "edit"},
            "evaluations": [{"resource": entity("document:d2")}, {"resource": entity("document:g1")}]}
    status, _, body = asgi_call(server, "POST", EVALUATIONS, headers, json.dumps(many).encode())
    assert status == 200 and [e["decision"] for e in json.loads(body)["evaluations"]] == [True, False]


def test_evaluations_take_defaults_that_each_item_overrides(client, portal, auditor, world):
    body = {"subject": entity("user:bob"), "action": {"name": "edit"}, "context": {"time": "now"},
            "evaluations": [{"resource": entity("document:d2")},
                            {"resource": entity("document:d2"), "action": {"name": "delete"}},
                            {"resource": entity("document:d1"), "subject": entity("user:alice"),
                             "action": {"name": "delete"}},
                            {"resource": entity("document:g1")}]}
    response = post(client, EVALUATIONS, body, portal)
    assert response.status_code == 200, response.get_json()
    answers = response.get_json()["evaluations"]
    assert [a["decision"] for a in answers] == [True, False, True, False]
    ids = {a["context"]["decision_id"] for a in answers}
    assert len(ids) == 4
    logged_ids = {d["id"] for d in logged(client, auditor, "user:bob") + logged(client, auditor, "user:alice")}
    assert ids <= logged_ids


@pytest.mark.parametrize("semantic, decisions", [
    ("execute_all", [True, False, True, False]),
    ("deny_on_first_deny", [True, False]),
    ("permit_on_first_permit", [True]),
])
def test_the_evaluations_semantic_short_circuits(client, portal, auditor, world, semantic, decisions):
    resources = ["document:d2", "document:g1", "document:d3", "document:e1"]
    body = {"subject": entity("user:bob"), "action": {"name": "edit"}, "options": {"evaluations_semantic": semantic},
            "evaluations": [{"resource": entity(r)} for r in resources]}
    answers = post(client, EVALUATIONS, body, portal).get_json()["evaluations"]
    assert [a["decision"] for a in answers] == decisions
    assert len(logged(client, auditor, "user:bob")) == len(decisions), "only what was answered is logged"


def test_permit_on_first_permit_goes_on_past_denies(client, portal, world):
    body = {"subject": entity("user:bob"), "action": {"name": "edit"},
            "options": {"evaluations_semantic": "permit_on_first_permit"},
            "evaluations": [{"resource": entity("document:g1")}, {"resource": entity("document:d2")},
                            {"resource": entity("document:d3")}]}
    assert [a["decision"] for a in post(client, EVALUATIONS, body, portal).get_json()["evaluations"]] == [False, True]


def test_a_malformed_evaluation_is_a_deny_with_its_reason(client, portal, world):
    body = {"subject": entity("user:bob"), "action": {"name": "edit"},
            "evaluations": [{"resource": entity("document:d2")}, {"resource": {"type": "document", "id": 7}},
                            {"resource": entity("document:" + "x" * 300)}, "not an object",
                            {"resource": entity("document:d3")}]}
    response = post(client, EVALUATIONS, body, portal)
    assert response.status_code == 200, response.get_json()
    answers = response.get_json()["evaluations"]
    assert [a["decision"] for a in answers] == [True, False, False, False, True]
    assert answers[1]["context"]["error"]["status"] == 400
    assert answers[1]["context"]["error"]["field"] == "evaluations.1.resource.id"
    assert answers[2]["context"]["error"]["code"] == "too_long"
    assert "decision_id" not in answers[1]["context"]
    body["options"] = {"evaluations_semantic": "deny_on_first_deny"}
    body["evaluations"][0] = {"resource": {"type": "document"}}
    answers = post(client, EVALUATIONS, body, portal).get_json()["evaluations"]
    assert [a["decision"] for a in answers] == [False] and answers[0]["context"]["error"]["code"] == "missing_field"


def test_without_items_evaluations_is_one_evaluation(client, portal, world):
    for body in (ask("user:bob", "edit", "document:d2"), {**ask("user:bob", "edit", "document:d2"), "evaluations": []}):
        answer = post(client, EVALUATIONS, body, portal).get_json()
        assert answer["decision"] is True and answer["context"]["decision_id"]
    response = post(client, EVALUATIONS, {"evaluations": [], "subject": entity("user:bob")}, portal)
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "action"


def test_an_item_without_a_default_to_take_is_a_bad_request(client, portal, world):
    body = {"action": {"name": "edit"}, "evaluations": [
        {"subject": entity("user:bob"), "resource": entity("document:d2")}, {"resource": entity("document:d2")}]}
    response = post(client, EVALUATIONS, body, portal)
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "evaluations.1.subject"


def test_too_many_evaluations_is_a_bad_request(app, client, portal, world):
    app.config["MAX_BATCH"] = 3
    body = {"subject": entity("user:bob"), "action": {"name": "edit"},
            "evaluations": [{"resource": entity("document:d2")}] * 4}
    response = post(client, EVALUATIONS, body, portal)
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "evaluations"


def test_reasons_are_given_when_asked_to_who_may_explain(client, portal, admin, world):
    body = {**ask("user:bob", "delete", "document:d2"), "options": {"include_reasons": True}}
    assert "reasons" not in post(client, EVALUATION, ask("user:bob", "delete", "document:d2"), admin).get_json()["context"]
    answer = post(client, EVALUATION, body, admin).get_json()
    assert answer["decision"] is False
    codes = {r["code"] for r in answer["context"]["reasons"]}
    assert "role_insufficient" in codes or "no_grant" in codes
    many = {"subject": entity("user:bob"), "action": {"name": "edit"}, "options": {"include_reasons": True},
            "evaluations": [{"resource": entity("document:d2")}]}
    [item] = post(client, EVALUATIONS, many, admin).get_json()["evaluations"]
    assert item["decision"] is True and item["context"]["reasons"][0]["code"] == "granted"
    response = post(client, EVALUATION, body, portal)
    assert response.status_code == 403, "the portal checks; it does not explain access"


@pytest.mark.parametrize("path", [EVALUATION, EVALUATIONS, "/access/v1/search/subject",
                                  "/access/v1/search/resource", "/access/v1/search/action"])
def test_only_checkers_may_ask(client, auditor, lead, path, world):
    body = ask("user:bob", "edit", "document:d2")
    response = post(client, path, body, {})
    assert response.status_code == 401 and "Bearer" in response.headers.get("WWW-Authenticate", "")
    assert post(client, path, body, auditor).status_code == 403
    assert post(client, path, body, {"Authorization": "Bearer forged"}).status_code == 401


@pytest.mark.parametrize("missing", ["subject", "action", "resource"])
def test_a_missing_subject_action_or_resource_is_a_bad_request_naming_it(client, portal, world, missing):
    body = ask("user:bob", "edit", "document:d2")
    del body[missing]
    response = post(client, EVALUATION, body, portal)
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == missing
    assert response.get_json()["error"]["code"] == "missing_field"


@pytest.mark.parametrize("body, field, code", [
    ({**ask("user:bob", "edit", "document:d2"), "subject": {"type": "user"}}, "subject.id", "missing_field"),
    ({**ask("user:bob", "edit", "document:d2"), "action": {}}, "action.name", "missing_field"),
    ({**ask("user:bob", "edit", "document:d2"), "resource": entity("document:" + "d" * 300)}, "resource.id", "too_long"),
    ({**ask("user:" + "b" * 251, "edit", "document:d2")}, "subject.id", "too_long"),
    ({**ask("user:bob", "e" * 65, "document:d2")}, "action.name", "too_long"),
    ({**ask("user:bob", "edit", "document:d2"), "subject": entity("user:bob", properties={"note": "n" * 4001})},
     "subject.properties", "too_long"),
    ({**ask("user:bob", "edit", "document:d2"), "subject": entity("user:b\x00b")}, "subject.id", "nul_character"),
    ({**ask("user:bob", "edit", "document:d2"), "subject": "user:bob"}, "subject", "invalid_body"),
    ({**ask("user:bob", "edit", "document:d2"), "context": []}, "context", "invalid_type"),
    ({**ask("user:bob", "edit", "document:d2"), "subject": {"type": "user", "id": 7}}, "subject.id", "invalid_type"),
])
def test_bad_evaluations_are_refused_and_name_the_field(client, portal, world, body, field, code):
    response = post(client, EVALUATION, body, portal)
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert (error["field"], error["code"]) == (field, code)


def test_malformed_json_and_a_body_that_is_not_an_object(client, portal, world):
    for raw in (b"{not json", b"", b"[]", b'"text"', b"[" * 10_000):
        response = client.post(EVALUATION, data=raw, headers={**portal, "Content-Type": "application/json"})
        assert response.status_code == 400, raw[:20]


def test_properties_past_their_bound_are_too_large_and_change_nothing(app, client, portal, auditor, world):
    app.config["AUTHZEN_MAX_PROPERTIES_BYTES"] = 100
    before = client.get("/v1/principals/user:bob", headers=auditor).get_json()
    body = ask("user:bob", "edit", "document:d2")
    body["resource"]["properties"] = {"owner": "x" * 120}
    response = post(client, EVALUATION, body, portal)
    assert response.status_code == 413 and response.get_json()["error"]["field"] == "resource.properties"
    body = {"subject": entity("user:bob", properties={"department": "Sales", "status": "disabled"}),
            "action": {"name": "edit"}, "evaluations": [{"resource": entity("document:d2"), "context": {"a": "y" * 200}}]}
    response = post(client, EVALUATIONS, body, portal)
    assert response.status_code == 413 and response.get_json()["error"]["field"] == "evaluations.0.context"
    body["evaluations"][0].pop("context")
    assert post(client, EVALUATIONS, body, portal).get_json()["evaluations"][0]["decision"] is True, \
        "a subject's properties do not override the directory (bob is active there)"
    assert client.get("/v1/principals/user:bob", headers=auditor).get_json() == before


def test_a_deep_property_is_refused_not_a_crash(client, portal, world):
    deep = json.dumps(ask("user:bob", "edit", "document:d2"))[:-1] + ',"context":' + '{"a":' * 5000 + "1" + "}" * 5001
    response = client.post(EVALUATION, data=deep, headers={**portal, "Content-Type": "application/json"})
    assert response.status_code in (400, 413)


# The portal's plain evaluations (a subject, an action and a resource, nothing else) are read without
# the models; any other field sends a request to them. An unknown field, which the specification says
# to ignore, so sends the same request the other way: both ways must answer alike.

VALID_ENTITIES = st.sampled_from(["user:alice", "user:bob", "user:carl", "user:ghost", "group:finance", "document:d1",
                                  "document:d2", "document:g1", "document:e1"]).map(entity)
ODD_ENTITIES = st.sampled_from([{"type": "document", "id": "x" * 250}, {"type": "user", "id": 7}, {"type": "user"},
                                {"type": "", "id": "a"}, {"type": "user", "id": "bob", "properties": {"a": 1}},
                                {"type": "user", "id": "b\x00b"}, None, "user:bob"])
ENTITIES = st.one_of(VALID_ENTITIES, VALID_ENTITIES, VALID_ENTITIES, ODD_ENTITIES)
VALID_ACTIONS = st.sampled_from([{"name": n} for n in ("read", "edit", "delete", "share", "fly")])
ACTIONS = st.one_of(VALID_ACTIONS, VALID_ACTIONS, VALID_ACTIONS, st.sampled_from(
    [{"name": ""}, {"name": "e" * 65}, {}, {"name": "read", "properties": {}}, None]))
ITEMS = st.fixed_dictionaries({}, optional={"subject": ENTITIES, "action": ACTIONS, "resource": ENTITIES})


def _without_ids(payload):
    for answer in [payload, *(payload.get("evaluations") or [] if isinstance(payload, dict) else [])]:
        if isinstance(answer, dict) and isinstance(answer.get("context"), dict):
            answer["context"].pop("decision_id", None)
    return payload


LONG = {"type": "document", "id": "x" * 250}


@example(body=ask("user:bob", "edit", "document:d2"), path=EVALUATION)
@example(body={**ask("user:bob", "edit", "document:d2"), "resource": LONG}, path=EVALUATION)
@example(body={"subject": entity("user:bob"), "action": {"name": "edit"},
               "evaluations": [{"resource": entity("document:d2")}, {"resource": LONG}]}, path=EVALUATIONS)
@example(body={"action": {"name": "edit"}, "evaluations": [{"resource": entity("document:d2")}]}, path=EVALUATIONS)
@example(body={"evaluations": [ask("user:bob", "edit", "document:d2"), ask("user:alice", "read", "document:g1")]},
         path=EVALUATIONS)
@settings(max_examples=100, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=st.fixed_dictionaries({}, optional={"subject": ENTITIES, "action": ACTIONS, "resource": ENTITIES,
                                                "evaluations": st.lists(ITEMS, max_size=4)}),
       path=st.sampled_from([EVALUATION, EVALUATIONS]))
def test_plain_and_general_readings_answer_alike(client, portal, world, body, path):
    plain = send(client, path, body, portal)
    general = send(client, path, {**body, "a_later_field": True}, portal)
    assert (plain[0], _without_ids(plain[1])) == (general[0], _without_ids(general[1]))


# -- searches -------------------------------------------------------------------------------------


def search(client, headers, kind: str, body: dict):
    return client.post(f"/access/v1/search/{kind}", json=body, headers=headers)


def every_page(client, headers, kind: str, body: dict) -> list[list[dict]]:
    pages, token = [], None
    while True:
        page = dict(body.get("page", {}), **({"token": token} if token else {}))
        response = search(client, headers, kind, {**body, "page": page})
        assert response.status_code == 200, response.get_json()
        answer = response.get_json()
        pages.append(answer["results"])
        assert answer["page"]["count"] == len(answer["results"])
        token = answer["page"]["next_token"]
        if token == "":
            return pages


def test_resource_search_is_the_list_endpoint_in_pages(client, portal, world):
    expected = client.get("/v1/principals/user:alice/resources?type=document&action=read&limit=1000",
                          headers=portal).get_json()["items"]
    body = {"subject": entity("user:alice"), "action": {"name": "read"}, "resource": {"type": "document"},
            "page": {"limit": 2}}
    pages = every_page(client, portal, "resource", body)
    assert [len(p) for p in pages] == [2, 2, 2]
    assert [f"{r['type']}:{r['id']}" for p in pages for r in p] == expected
    first = search(client, portal, "resource", body).get_json()
    assert first["page"]["total"] == 6 and first["page"]["next_token"]
    whole = search(client, portal, "resource", {**body, "page": {}}).get_json()
    assert whole["page"] == {"next_token": "", "count": 6, "total": 6}


def test_subject_search_finds_who_may_through_groups(client, portal, world):
    body = {"subject": {"type": "user"}, "action": {"name": "edit"}, "resource": entity("document:d2")}
    [results] = every_page(client, portal, "subject", body)
    assert results == [entity("user:alice"), entity("user:bob"), entity("user:erin")]
    body["subject"] = {"type": "group", "id": "ignored"}
    assert every_page(client, portal, "subject", body) == [[]]
    body = {"subject": {"type": "user"}, "action": {"name": "edit"}, "resource": entity("document:d2"),
            "page": {"limit": 1}}
    assert every_page(client, portal, "subject", body) == [[entity("user:alice")], [entity("user:bob")],
                                                           [entity("user:erin")]]


def test_action_search_lists_what_the_subject_may_do(client, portal, world):
    body = {"subject": entity("user:bob"), "resource": entity("document:d2")}
    [results] = every_page(client, portal, "action", body)
    names = [r["name"] for r in results]
    assert "edit" in names and "read" in names and "delete" not in names
    for name in names:
        assert check(client, portal, "user:bob", name, "document:d2").get_json()["allowed"] is True
    assert every_page(client, portal, "action", {**body, "resource": entity("spaceship:x")}) == [[]]


def test_a_page_token_is_for_its_own_request(client, portal, world):
    body = {"subject": entity("user:alice"), "action": {"name": "read"}, "resource": {"type": "document"},
            "page": {"limit": 2}}
    token = search(client, portal, "resource", body).get_json()["page"]["next_token"]
    changed = {**body, "action": {"name": "edit"}, "page": {"limit": 2, "token": token}}
    response = search(client, portal, "resource", changed)
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "page.token"
    response = search(client, portal, "resource", {**body, "page": {"token": "garbage"}})
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "page.token"


@pytest.mark.parametrize("kind, body, field", [
    ("resource", {"subject": entity("user:alice"), "action": {"name": "read"}, "resource": {"type": "spaceship"}},
     "resource.type"),
    ("resource", {"subject": {"type": "user"}, "action": {"name": "read"}, "resource": {"type": "document"}},
     "subject.id"),
    ("subject", {"subject": {"type": "user"}, "action": {"name": "read"}, "resource": {"type": "document"}},
     "resource.id"),
    ("subject", {"action": {"name": "read"}, "resource": entity("document:d1")}, "subject"),
    ("action", {"subject": entity("user:bob")}, "resource"),
    ("resource", {"subject": entity("user:alice"), "action": {"name": "read"}, "resource": {"type": "document"},
                  "page": {"limit": -1}}, "page.limit"),
])
def test_bad_searches_name_the_field(client, portal, world, kind, body, field):
    response = search(client, portal, kind, body)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["field"] == field


def test_a_type_and_id_too_long_together_are_refused_by_name(client, portal, world):
    long_id = "x" * (255 - len("document:") + 1)  # each part fits; type:id does not
    response = post(client, EVALUATION, ask("user:bob", "edit", "document:" + long_id), portal)
    assert response.status_code == 400
    assert (response.get_json()["error"]["field"], response.get_json()["error"]["code"]) == ("resource.id", "too_long")
    body = {"subject": entity("user:bob"), "action": {"name": "edit"},
            "evaluations": [{"resource": entity("document:" + long_id)}, {"resource": entity("document:d2")}]}
    answers = post(client, EVALUATIONS, body, portal).get_json()["evaluations"]
    assert [a["decision"] for a in answers] == [False, True]
    assert answers[0]["context"]["error"]["field"] == "evaluations.0.resource.id"


def test_the_check_port_answers_the_metadata_and_searches_as_the_main_port(app, client, portal, world):
    """A PEP pointed at the check port finds every endpoint there."""
    app.config["CHECK_URL"] = "http://checks.example:8001"
    server = CheckServer(app)
    status, _, body = asgi_call(server, "GET", "/.well-known/authzen-configuration", {"Host": "checks.example:8001"})
    assert status == 200
    assert json.loads(body) == {"policy_decision_point": "http://checks.example:8001",
                                **endpoints("http://checks.example:8001")}
    headers = {**portal, "Content-Type": "application/json", "X-Request-ID": "req-9"}
    bodies = {"resource": {"subject": entity("user:alice"), "action": {"name": "read"}, "resource": {"type": "document"},
                           "page": {"limit": 2}},
              "subject": {"subject": {"type": "user"}, "action": {"name": "edit"}, "resource": entity("document:d2")},
              "action": {"subject": entity("user:bob"), "resource": entity("document:d2")}}
    for kind, ask_for in bodies.items():
        path = f"/access/v1/search/{kind}"
        status, answer_headers, body = asgi_call(server, "POST", path, headers, json.dumps(ask_for).encode(), chunks=2)
        main = search(client, portal, kind, ask_for)
        assert status == main.status_code == 200 and answer_headers["x-request-id"] == "req-9"
        assert json.loads(body) == main.get_json() and main.get_json()["results"], kind
    status, _, _ = asgi_call(server, "POST", "/access/v1/search/action", {"Content-Type": "application/json"},
                             json.dumps(bodies["action"]).encode())
    assert status == 401, "a search without a token is refused as on the main port"
