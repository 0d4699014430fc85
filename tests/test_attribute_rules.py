"""Attribute rules through the API: a check's request properties and context, and the directory's
attributes, read by the policy's attribute rules (``Todo`` in policies/portal.polar), through AuthZEN's
evaluation and evaluations and /v1/authorize; a todo the directory does not hold is decided on its
properties; every such decision is logged; properties are bounded and never change the directory."""

from __future__ import annotations

import json

import pytest

from test_authorize import check, world  # noqa: F401 (world: a fixture)
from test_authzen import EVALUATION, EVALUATIONS, ask, entity, every_page, logged, post


def todo(ident: str = "call-the-client", **properties) -> dict:
    return entity(f"todo:{ident}", properties=properties)


def evaluate(client, headers, subject: str, action: str, resource: dict, **extra) -> dict:
    body = {"subject": entity(subject), "action": {"name": action}, "resource": resource, **extra}
    response = post(client, EVALUATION, body, headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_a_todo_the_directory_does_not_hold_is_decided_on_its_properties(client, portal, auditor, world):
    mine = evaluate(client, portal, "user:dina", "delete", todo(ownerID="dina"))
    assert mine["decision"] is True
    assert evaluate(client, portal, "user:bob", "delete", todo(ownerID="dina"))["decision"] is False
    assert evaluate(client, portal, "user:dina", "delete", todo())["decision"] is False
    assert evaluate(client, portal, "user:dina", "delete", entity("todo:call-the-client"))["decision"] is False
    # An undeclared type is a deny, whatever its properties say; so is a disabled owner.
    assert evaluate(client, portal, "user:dina", "delete", entity("task:x", properties={"ownerID": "dina"}))[
        "decision"] is False
    assert evaluate(client, portal, "user:carl", "read", todo(ownerID="carl"))["decision"] is False
    [row] = [d for d in logged(client, auditor, "user:dina") if d["id"] == mine["context"]["decision_id"]]
    assert (row["actor"], row["action"], row["resource"], row["allowed"], row["grant_ids"]) == \
        ("user:dina", "delete", "todo:call-the-client", True, [])
    assert client.get("/v1/resources/todo/call-the-client", headers=auditor).status_code == 404


def test_the_users_directory_department_is_read_and_follows_the_directory(client, portal, world):
    shared = todo(department="Tax")
    assert evaluate(client, portal, "user:erin", "read", shared)["decision"] is False
    assert client.put("/v1/principals/user:erin", json={"name": "Erin", "department": "Tax"},
                      headers=portal).status_code in (200, 201)
    assert evaluate(client, portal, "user:erin", "read", shared)["decision"] is True
    assert evaluate(client, portal, "user:erin", "edit", shared)["decision"] is False
    assert client.put("/v1/principals/user:erin", json={"name": "Erin", "department": "Audit"},
                      headers=portal).status_code == 200
    assert evaluate(client, portal, "user:erin", "read", shared)["decision"] is False
    # The subject's properties layer over the directory's, for this decision only.
    body = {"subject": entity("user:erin", properties={"department": "Tax"}), "action": {"name": "read"},
            "resource": shared}
    assert post(client, EVALUATION, body, portal).get_json()["decision"] is True
    assert client.get("/v1/principals/user:erin", headers=portal).get_json()["department"] == "Audit"


def test_a_users_custom_attributes_are_read_and_follow_the_directory(client, portal, auditor, world):
    """``team`` is no column of the directory: a custom attribute of the principal, kept and read as is."""
    shared = todo(team="north")
    assert evaluate(client, portal, "user:erin", "read", shared)["decision"] is False
    put = client.put("/v1/principals/user:erin", json={"name": "Erin", "attributes": {"team": "north", "level": 3}},
                     headers=portal)
    assert put.status_code == 200, put.get_json()
    assert put.get_json()["principal"]["attributes"] == {"team": "north", "level": 3}
    assert evaluate(client, portal, "user:erin", "read", shared)["decision"] is True
    assert evaluate(client, portal, "user:erin", "edit", shared)["decision"] is False
    assert evaluate(client, portal, "user:dina", "read", shared)["decision"] is False
    # The subject's properties layer over them, for one decision; the directory keeps its own.
    body = {"subject": entity("user:erin", properties={"team": "south"}), "action": {"name": "read"},
            "resource": shared}
    assert post(client, EVALUATION, body, portal).get_json()["decision"] is False
    assert check(client, portal, "user:dina", "read", "todo:t", resource_properties={"team": "north"},
                 actor_properties={"team": "north"}).get_json()["allowed"] is True
    # An import changes them like any field (a row without them clears them), and the change is audited.
    moved = client.post("/v1/directory/import", json={"principals": [
        {"id": "user:erin", "name": "Erin", "attributes": {"team": "south"}}]}, headers=portal)
    assert moved.status_code == 200, moved.get_json()
    assert evaluate(client, portal, "user:erin", "read", shared)["decision"] is False
    assert evaluate(client, portal, "user:erin", "read", todo(team="south"))["decision"] is True
    events = client.get("/v1/audit-events?target=user:erin", headers=auditor).get_json()["items"]
    assert (events[-1]["action"], events[-1]["before"]["attributes"], events[-1]["after"]["attributes"]) == \
        ("principal.updated", {"team": "north", "level": 3}, {"team": "south"})
    assert client.get("/v1/principals/user:erin", headers=portal).get_json()["attributes"] == {"team": "south"}
    cleared = client.put("/v1/principals/user:erin", json={"name": "Erin"}, headers=portal)
    assert cleared.get_json()["principal"]["attributes"] == {}
    assert evaluate(client, portal, "user:erin", "read", todo(team="south"))["decision"] is False


def test_the_directorys_own_fields_win_over_custom_attributes_of_the_same_name(client, portal, world):
    client.put("/v1/principals/user:erin", json={"department": "Audit", "attributes": {"department": "Tax"}},
               headers=portal)
    assert evaluate(client, portal, "user:erin", "read", todo(department="Tax"))["decision"] is False
    assert evaluate(client, portal, "user:erin", "read", todo(department="Audit"))["decision"] is True


@pytest.mark.parametrize("attributes, field, code", [
    ({"team": "t" * 4001}, "attributes", "too_long"),
    ({"t" * 4001: "north"}, "attributes", "too_long"),
    (None, "attributes", "too_deep"),
    ({"team": "no\x00rth"}, "attributes.team", "nul_character"),
    (["north"], "attributes", "dict_type"),
])
def test_bad_principal_attributes_are_refused_and_name_the_field(client, portal, world, attributes, field, code):
    body = {"name": "Erin", "attributes": nested(9) if attributes is None else attributes}
    response = client.put("/v1/principals/user:erin", json=body, headers=portal)
    assert response.status_code == 400, response.get_json()
    got = response.get_json()["error"]
    assert got["field"] == field and (code == "dict_type" or got["code"] == code), got
    imported = client.post("/v1/directory/import", json={"principals": [{"id": "user:erin", **body}]},
                           headers=portal)
    assert imported.status_code == 400
    assert client.get("/v1/principals/user:erin", headers=portal).get_json()["attributes"] == {}


def test_a_group_has_no_custom_attributes(client, portal, world):
    response = client.put("/v1/principals/group:auditors", json={"members": ["user:erin"], "attributes": {"a": 1}},
                          headers=portal)
    assert response.status_code == 422
    assert (response.get_json()["error"]["field"], response.get_json()["error"]["code"]) == \
        ("attributes", "unknown_field")
    assert "attributes" not in client.get("/v1/principals/group:auditors", headers=portal).get_json()


def test_a_synced_todos_attributes_are_read_and_properties_layer_over_them(client, portal, world):
    put = client.put("/v1/resources/todo/plan", json={"parent": "project:p2", "attributes": {"ownerID": "dina"}},
                     headers=portal)
    assert put.status_code in (200, 201), put.get_json()
    assert evaluate(client, portal, "user:dina", "edit", entity("todo:plan"))["decision"] is True
    assert evaluate(client, portal, "user:erin", "edit", entity("todo:plan"))["decision"] is False
    assert evaluate(client, portal, "user:erin", "edit", todo("plan", ownerID="erin"))["decision"] is True
    # The project's roles reach it through the directory's tree, which properties cannot change.
    assert evaluate(client, portal, "user:alice", "delete", entity("todo:plan"))["decision"] is True
    assert evaluate(client, portal, "user:bob", "edit", todo("plan", parent="project:p1"))["decision"] is False
    client.put("/v1/resources/todo/plan", json={"parent": "project:p2", "attributes": {"ownerID": "erin"}},
               headers=portal)
    assert evaluate(client, portal, "user:dina", "edit", entity("todo:plan"))["decision"] is False
    assert evaluate(client, portal, "user:erin", "edit", entity("todo:plan"))["decision"] is True
    assert client.get("/v1/resources/todo/plan", headers=portal).get_json()["attributes"] == {"ownerID": "erin"}


def test_compiled_types_read_no_properties(client, portal, world):
    """A document's rules read no attributes: its checks stay on the compiled table, whatever is sent."""
    for subject, action, resource in (("user:bob", "edit", "document:d2"), ("user:bob", "delete", "document:d2")):
        plain = post(client, EVALUATION, ask(subject, action, resource), portal).get_json()["decision"]
        body = ask(subject, action, resource, context={"ip": "10.0.0.1"})
        body["resource"]["properties"] = {"ownerID": "bob", "parent": "project:p2"}
        assert post(client, EVALUATION, body, portal).get_json()["decision"] is plain
    assert post(client, EVALUATION, {**ask("user:bob", "read", "document:unheld"),
                                     "resource": entity("document:unheld", properties={"ownerID": "bob"})},
                portal).get_json()["decision"] is False


@pytest.mark.parametrize("semantic", ["execute_all", "deny_on_first_deny", "permit_on_first_permit"])
def test_evaluations_carry_each_items_properties_and_the_defaults(client, portal, auditor, world, semantic):
    body = {"subject": entity("user:dina"), "action": {"name": "edit"},
            "resource": todo("default", ownerID="dina"), "options": {"evaluations_semantic": semantic},
            "evaluations": [{}, {"resource": todo("other", ownerID="bob")}, {"resource": todo("mine", ownerID="dina")},
                            {"subject": entity("user:bob")}]}
    response = post(client, EVALUATIONS, body, portal)
    assert response.status_code == 200, response.get_json()
    decisions = [a["decision"] for a in response.get_json()["evaluations"]]
    expected = {"execute_all": [True, False, True, False], "deny_on_first_deny": [True, False],
                "permit_on_first_permit": [True]}[semantic]
    assert decisions == expected
    ids = {a["context"]["decision_id"] for a in response.get_json()["evaluations"]}
    assert ids <= {d["id"] for d in logged(client, auditor, "user:dina") + logged(client, auditor, "user:bob")}


def test_reasons_say_an_unheld_todo_was_decided_on_its_properties(client, admin, world):
    body = {**ask("user:dina", "edit", "todo:x"), "options": {"include_reasons": True}}
    body["resource"]["properties"] = {"ownerID": "dina"}
    answer = post(client, EVALUATION, body, admin).get_json()
    assert answer["decision"] is True
    [reason] = answer["context"]["reasons"]
    assert reason["code"] == "evaluated_by_oso" and reason["permissions"] == ["delete", "edit", "read"]
    assert "properties" in reason["message"]


def test_v1_authorize_takes_properties_and_context_too(client, portal, world):
    base = {"actor": "user:dina", "action": "delete", "resource": "todo:t"}
    assert client.post("/v1/authorize", json=base, headers=portal).get_json()["allowed"] is False
    answer = client.post("/v1/authorize", json={**base, "resource_properties": {"ownerID": "dina"},
                                                "context": {"ip": "10.0.0.1"}}, headers=portal).get_json()
    assert answer["allowed"] is True and answer["decision_id"]
    shared = {**base, "action": "read", "resource_properties": {"department": "Tax"}}
    assert client.post("/v1/authorize", json=shared, headers=portal).get_json()["allowed"] is False
    assert client.post("/v1/authorize", json={**shared, "actor_properties": {"department": "Tax"}},
                       headers=portal).get_json()["allowed"] is True
    batch = client.post("/v1/authorize/batch", json={"checks": [
        {**base, "resource_properties": {"ownerID": "dina"}}, base,
        {"actor": "user:bob", "action": "edit", "resource": "document:d2"}]}, headers=portal)
    assert [r["allowed"] for r in batch.get_json()["results"]] == [True, False, True]


def nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize("path, body, field, code", [
    (EVALUATION, {**ask("user:dina", "read", "todo:t"), "resource": todo(ownerID="d" * 4001)},
     "resource.properties", "too_long"),
    (EVALUATION, {**ask("user:dina", "read", "todo:t"), "resource": todo(**{"k" * 4001: 1})},
     "resource.properties", "too_long"),
    (EVALUATION, {**ask("user:dina", "read", "todo:t"), "resource": todo(tags=["x" * 4001])},
     "resource.properties", "too_long"),
    (EVALUATION, {**ask("user:dina", "read", "todo:t"), "context": nested(9)}, "context", "too_deep"),
    (EVALUATION, {**ask("user:dina", "read", "todo:t"), "resource": todo(deep=nested(8))},
     "resource.properties", "too_deep"),
    (EVALUATION, {**ask("user:dina", "read", "todo:t"), "resource": todo(ownerID="di\x00na")},
     "resource.properties.ownerID", "nul_character"),
    (EVALUATION, {**ask("user:dina", "read", "todo:t"), "resource": {**todo(), "properties": ["x"]}},
     "resource.properties", "invalid_type"),
    ("/v1/authorize", {"actor": "user:dina", "action": "read", "resource": "todo:t",
                       "resource_properties": {"ownerID": "d" * 4001}}, "resource_properties", "too_long"),
    ("/v1/authorize", {"actor": "user:dina", "action": "read", "resource": "todo:t",
                       "context": nested(9)}, "context", "too_deep"),
    ("/v1/authorize", {"actor": "user:dina", "action": "read", "resource": "todo:t",
                       "actor_properties": {"x": "\x00"}}, "actor_properties.x", "nul_character"),
    ("/v1/authorize/batch", {"checks": [{"actor": "user:dina", "action": "read", "resource": "todo:t",
                                         "resource_properties": nested(9)}]},
     "checks.0.resource_properties", "too_deep"),
])
def test_bad_properties_are_refused_and_name_the_field(client, portal, world, path, body, field, code):
    response = post(client, path, body, portal)
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert (error["field"], error["code"]) == (field, code)


def test_properties_eight_deep_are_read(client, portal, world):
    body = {**ask("user:dina", "delete", "todo:t"), "context": nested(8)}
    body["resource"]["properties"] = {"ownerID": "dina", "deep": nested(7)}
    assert post(client, EVALUATION, body, portal).get_json()["decision"] is True


@pytest.mark.parametrize("path", [EVALUATION, "/v1/authorize", "/v1/authorize/batch"])
def test_very_deep_properties_are_a_400_never_a_crash(client, portal, world, path):
    deep = '{"a":' * 5000 + "1" + "}" * 5000
    if path == EVALUATION:
        raw = json.dumps(ask("user:dina", "read", "todo:t"))[:-1] + ',"context":' + deep + "}"
    else:
        one = '{"actor":"user:dina","action":"read","resource":"todo:t","context":' + deep + "}"
        raw = one if path == "/v1/authorize" else '{"checks":[' + one + "]}"
    response = client.post(path, data=raw, headers={**portal, "Content-Type": "application/json"})
    assert response.status_code == 400, response.get_json()


def test_properties_past_their_bound_are_413_on_v1_authorize_too(app, client, portal, world):
    app.config["AUTHZEN_MAX_PROPERTIES_BYTES"] = 100
    body = {"actor": "user:dina", "action": "read", "resource": "todo:t", "resource_properties": {"n": "x" * 120}}
    response = client.post("/v1/authorize", json=body, headers=portal)
    assert response.status_code == 413 and response.get_json()["error"]["field"] == "resource_properties"
    response = client.post("/v1/authorize/batch", json={"checks": [{**body, "resource_properties": {}}, body]},
                           headers=portal)
    assert response.status_code == 413 and response.get_json()["error"]["field"] == "checks.1.resource_properties"
    body["resource_properties"] = {"ownerID": "dina"}
    assert client.post("/v1/authorize", json=body, headers=portal).get_json()["allowed"] is True


def test_properties_never_change_the_directory(client, portal, auditor, world):
    before = [client.get(path, headers=auditor).get_json() for path in
              ("/v1/principals/user:dina", "/v1/resources/document/d1", "/v1/directory/status")]
    body = {"subject": entity("user:dina", properties={"department": "Tax", "status": "disabled", "name": "X"}),
            "action": {"name": "read"},
            "resource": entity("document:d1", properties={"parent": "project:g1", "owner": "user:bob",
                                                          "attributes": {"a": 1}})}
    assert post(client, EVALUATION, body, portal).get_json()["decision"] is True
    body["resource"] = todo(ownerID="dina")
    assert post(client, EVALUATION, body, portal).get_json()["decision"] is True
    after = [client.get(path, headers=auditor).get_json() for path in
             ("/v1/principals/user:dina", "/v1/resources/document/d1", "/v1/directory/status")]
    assert after == before
    assert client.get("/v1/resources/todo/call-the-client", headers=auditor).status_code == 404


def test_action_search_reads_the_properties(client, portal, world):
    body = {"subject": entity("user:dina"), "resource": todo(ownerID="dina")}
    response = client.post("/access/v1/search/action", json=body, headers=portal)
    assert response.status_code == 200, response.get_json()
    assert [r["name"] for r in response.get_json()["results"]] == ["delete", "edit", "read"]
    body["resource"] = todo(ownerID="bob")
    assert client.post("/access/v1/search/action", json=body, headers=portal).get_json()["results"] == []


USERS = ["user:alice", "user:bob", "user:carl", "user:dina", "user:erin"]


def keys(results: list[dict]) -> list[str]:
    return [f"{r['type']}:{r['id']}" for r in results]


def searched(client, headers, kind: str, body: dict) -> list[str]:
    return keys([r for page in every_page(client, headers, kind, body) for r in page])


def test_subject_search_reads_the_properties_and_answers_as_evaluations(client, portal, world):
    """Who may delete a todo the directory does not hold: its owner, whom only its properties name."""
    body = {"subject": {"type": "user"}, "action": {"name": "delete"}, "resource": todo(ownerID="dina")}
    assert searched(client, portal, "subject", body) == ["user:dina"]
    assert searched(client, portal, "subject", {**body, "resource": todo()}) == []
    # The subject's properties are each candidate's, and the context is each evaluation's.
    body = {"subject": {"type": "user", "properties": {"department": "Tax"}}, "action": {"name": "read"},
            "resource": todo(department="Tax"), "context": {"ip": "10.0.0.1"}}
    found = searched(client, portal, "subject", body)
    assert found == ["user:alice", "user:bob", "user:dina", "user:erin"], "carl is disabled"
    for user in USERS:
        evaluation = {**body, "subject": entity(user, properties={"department": "Tax"})}
        assert post(client, EVALUATION, evaluation, portal).get_json()["decision"] is (user in found), user


def test_subject_search_of_a_synced_todo_layers_the_properties_over_the_directory(client, portal, world):
    client.put("/v1/resources/todo/plan", json={"parent": "project:p2", "attributes": {"ownerID": "dina"}},
               headers=portal)
    body = {"subject": {"type": "user"}, "action": {"name": "edit"}, "resource": entity("todo:plan")}
    assert searched(client, portal, "subject", body) == ["user:alice", "user:dina"], "the org's admin, the owner"
    body["resource"] = todo("plan", ownerID="erin")
    assert searched(client, portal, "subject", body) == ["user:alice", "user:erin"]
    assert searched(client, portal, "subject", {**body, "subject": {"type": "group"}}) == []


def test_resource_search_reads_the_properties_and_answers_as_evaluations(client, portal, world):
    todos = {"plan": ("project:p2", {"ownerID": "dina"}), "memo": ("project:p1", {"team": "north"}),
             "list": ("project:g1", {"department": "Tax"})}
    for ident, (parent, attributes) in todos.items():
        client.put(f"/v1/resources/todo/{ident}", json={"parent": parent, "attributes": attributes}, headers=portal)
    body = {"subject": entity("user:dina"), "action": {"name": "read"}, "resource": {"type": "todo"}}
    assert searched(client, portal, "resource", body) == ["todo:plan"]
    body["subject"] = entity("user:dina", properties={"team": "north"})
    assert searched(client, portal, "resource", body) == ["todo:memo", "todo:plan"]
    body["resource"] = {"type": "todo", "properties": {"ownerID": "dina"}}
    assert searched(client, portal, "resource", body) == ["todo:list", "todo:memo", "todo:plan"]
    body = {"subject": entity("user:erin", properties={"department": "Tax"}), "action": {"name": "edit"},
            "resource": {"type": "todo"}, "context": {"ip": "10.0.0.1"}}
    found = searched(client, portal, "resource", body)
    assert found == ["todo:memo"], "erin edits p1's todos through her groups' grant; Tax only reads"
    for ident in todos:
        evaluation = {**body, "resource": entity(f"todo:{ident}")}
        assert post(client, EVALUATION, evaluation, portal).get_json()["decision"] is (f"todo:{ident}" in found)


def test_a_search_evaluated_candidate_by_candidate_pages_to_the_end(app, client, portal, world):
    app.config["SEARCH_PAGE_SECONDS"] = 60  # time enough to fill each page, however busy the machine
    body = {"subject": {"type": "user", "properties": {"department": "Tax"}}, "action": {"name": "read"},
            "resource": todo(department="Tax"), "page": {"limit": 1}}
    pages = every_page(client, portal, "subject", body)
    assert [keys(page) for page in pages] == [["user:alice"], ["user:bob"], ["user:dina"], ["user:erin"]]
    first = client.post("/access/v1/search/subject", json=body, headers=portal).get_json()
    assert first["page"]["count"] == 1 and first["page"]["next_token"] and "total" not in first["page"]
    changed = {**body, "resource": todo(department="Audit"), "page": {"limit": 1, "token": first["page"]["next_token"]}}
    response = client.post("/access/v1/search/subject", json=changed, headers=portal)
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "page.token"
    body["page"] = {"limit": 4}
    assert client.post("/access/v1/search/subject", json=body, headers=portal).get_json()["page"]["next_token"] == ""


def test_a_search_page_out_of_time_answers_what_it_found_and_goes_on_from_there(app, client, portal, world):
    """With no time to spare, each page asks one candidate: pages hold one subject or none, and their
    tokens go on after the last one asked, until every candidate was asked once."""
    app.config["SEARCH_PAGE_SECONDS"] = 0
    body = {"subject": {"type": "user"}, "action": {"name": "read"}, "resource": todo(department="Tax")}
    client.put("/v1/principals/user:bob", json={"name": "Bob", "department": "Tax"}, headers=portal)
    client.put("/v1/principals/user:erin", json={"name": "Erin", "department": "Tax"}, headers=portal)
    pages = every_page(client, portal, "subject", body)
    assert [keys(page) for page in pages] == [[], ["user:bob"], [], [], ["user:erin"]], "one page a user, in order"
    app.config["SEARCH_PAGE_SECONDS"] = 60
    assert every_page(client, portal, "subject", body) == [[entity("user:bob"), entity("user:erin")]]


def test_the_log_keeps_the_digest_of_what_the_request_gave(client, portal, auditor, world):
    """An auditor tells decisions that rested on a caller's facts from the rest, and can check a
    caller's record of them: the SHA-256 of their canonical JSON, not the facts themselves."""
    import hashlib

    properties, context = {"ownerID": "dina", "note": "é"}, {"ip": "10.0.0.1"}
    given = evaluate(client, portal, "user:dina", "edit", todo(**properties), context=context)
    plain = evaluate(client, portal, "user:dina", "edit", entity("document:d1"))
    batch = client.post("/v1/authorize/batch", json={"checks": [
        {"actor": "user:dina", "action": "read", "resource": "todo:x", "resource_properties": properties,
         "context": context}, {"actor": "user:dina", "action": "read", "resource": "document:d1"}]},
        headers=portal).get_json()["results"]
    rows = {d["id"]: d for d in logged(client, auditor, "user:dina")}
    canonical = json.dumps({"context": context, "resource": properties, "subject": {}}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    assert rows[given["context"]["decision_id"]]["properties_sha256"] == digest
    assert rows[batch[0]["decision_id"]]["properties_sha256"] == digest
    assert rows[plain["context"]["decision_id"]]["properties_sha256"] is None
    assert rows[batch[1]["decision_id"]]["properties_sha256"] is None


def test_explain_reads_the_properties_too(client, lead, world):
    body = {"actor": "user:dina", "action": "edit", "resource": "todo:x", "resource_properties": {"ownerID": "dina"}}
    answer = client.post("/v1/explain", json=body, headers=lead).get_json()
    assert answer["allowed"] is True and answer["reasons"][0]["code"] == "evaluated_by_oso"
    body.pop("resource_properties")
    answer = client.post("/v1/explain", json=body, headers=lead).get_json()
    assert answer["allowed"] is False and answer["reasons"][0]["code"] == "unknown_resource"


def test_the_decisions_report_shows_the_digest(client, portal, auditor, world, app):
    import io

    from openpyxl import load_workbook

    answer = evaluate(client, portal, "user:dina", "edit", todo(ownerID="dina"))
    app.extensions["decisions"].flush()
    made = client.post("/v1/reports/decisions", json={"since": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"},
                       headers=auditor)
    assert made.status_code == 201, made.get_json()
    with client.get(f"/v1/reports/{made.get_json()['id']}", headers=auditor) as response:
        sheet = load_workbook(io.BytesIO(response.data))["Decisions"]
    header = next(sheet.iter_rows(max_row=1, values_only=True))
    assert header[-1] == "Request properties (SHA-256)"
    rows = {r[0]: r for r in sheet.iter_rows(min_row=2, values_only=True)}
    row = rows[answer["context"]["decision_id"]]
    assert len(row[-1]) == 64 and row[5] == "todo:call-the-client"
