"""The role table (tests/role_table.py, shown in the README) is what the service does: every route of
the app, API and pages, is sent with each role's token, a reviewer's, one without roles, a revoked
one, an expired one and none, and each answer is compared with the table's row.

The campaign, its items, a signed-off campaign's reports and a job are made through the API first,
so that an allowed request finds what it names: an allowed read answers 2xx, a refusal is 403 (or
404 where the object is hidden from who may not look), no live token is 401 or the sign-in page."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable
from urllib.parse import urlsplit

import pytest

from accessreview.directory import imports
from accessreview.tokens import create_token, revoke_token
from accessreview.web.auth import COOKIE, form_token
from role_table import (ADMIN, AUDITOR, LEAD, NO_ROLE, PORTAL, PUBLIC, README, REVIEWER, ROLES, ROWS, SIGN_IN,
                        UNAUTHENTICATED, Row, endpoint_of, method_of, path_of, readme_table, render,
                        route_of_rule)
from support import write

REVOKED, EXPIRED, NO_TOKEN = "revoked token", "expired token", "no token"
CALLERS = (*ROLES, REVOKED, EXPIRED, NO_TOKEN)
ALLOWED, REFUSED = "allowed", "refused"

DIRECTORY = {
    "source": "portal", "mode": "merge",
    "principals": [
        {"id": "user:rita", "name": "Rita Reviewer", "email": "rita@example.com"},
        {"id": "user:ann", "name": "Ann"}, {"id": "user:ben", "name": "Ben"}, {"id": "user:spare", "name": "Spare"},
    ],
    "resources": [
        {"id": "organization:acme", "owner": "user:rita"},
        {"id": "project:p1", "parent": "organization:acme"},
        {"id": "document:d1", "parent": "project:p1"},
    ],
    "grants": [
        {"principal": "user:ann", "role": "editor", "resource": "project:p1"},
        {"principal": "user:ben", "role": "viewer", "resource": "document:d1"},
    ],
}
CHECK = {"actor": "user:ann", "action": "read", "resource": "document:d1"}
AUTHZEN = {"subject": {"type": "user", "id": "ann"}, "action": {"name": "read"},
           "resource": {"type": "document", "id": "d1"}}


def ok(response, *statuses: int) -> Any:
    assert response.status_code in (statuses or (200, 201)), response.get_data(as_text=True)[:500]
    return response.get_json()


@dataclass
class Setting:
    """What the probes name, made through the API, and a token for each caller."""
    app: Any
    admin: dict[str, str]
    tokens: dict[str, str | None] = field(default_factory=dict)
    ids: dict[str, Any] = field(default_factory=dict)

    def fresh_grant(self) -> int:
        """A grant to delete (made again for every probe: an allowed probe deletes it)."""
        client = self.app.test_client()
        made = client.post("/v1/grants", json={"principal": "user:spare", "role": "viewer", "resource": "document:d1"},
                           headers=self.admin)
        if made.status_code == 201:
            return made.get_json()["id"]
        return client.get("/v1/grants?principal=user:spare", headers=self.admin).get_json()["items"][0]["id"]

    def fresh_token_id(self) -> str:
        """A token to revoke."""
        with write(self.app) as (session, ctx):
            return create_token(session, ctx, self.app.config["SECRET_KEY"], "user:spare")[1]["id"]


@pytest.fixture
def setting(app, client, clock, portal, lead, auditor, admin, token_for, monkeypatch) -> Setting:
    # Launches, closes, sign-offs and imports finish within their request however busy the machine is:
    # the probes find them done, and answer the same each run. Batches of two make the import a job.
    app.config["JOB_INLINE_SECONDS"] = 120
    monkeypatch.setattr(imports, "IMPORT_BATCH", 2)
    imported = ok(client.post("/v1/directory/import", json=DIRECTORY, headers=portal))
    assert imported["job"]["kind"] == "import", imported
    definition = {"scope": {"subtrees": ["organization:acme"]}, "reviewer": {"rule": "resource_owner"},
                  "fallback_reviewer": "user:lena", "duration_days": 14, "on_no_response": "keep"}
    open_id = ok(client.post("/v1/campaign-definitions", json={"name": "Acme", **definition}, headers=lead))["id"]
    done_id = ok(client.post("/v1/campaign-definitions", json={"name": "Acme, done", **definition},
                             headers=lead))["id"]
    launched = ok(client.post(f"/v1/campaign-definitions/{open_id}/launch", headers=lead), 201)
    done = ok(client.post(f"/v1/campaign-definitions/{done_id}/launch", headers=lead), 201)
    revoked_item = next(item for item in ok(client.get(f"/v1/review-items?campaign={done['id']}", headers=lead))["items"]
                        if item["principal"]["id"] != "user:ann")
    ok(client.post(f"/v1/review-items/{revoked_item['id']}/decision",  # so that remediation leaves a hold
                   json={"decision": "revoke", "justification": "not needed"}, headers=lead))
    ok(client.post(f"/v1/campaigns/{done['id']}/close", headers=lead))
    ok(client.post(f"/v1/campaigns/{done['id']}/sign-off", json={"statement": "Reviewed."}, headers=lead))
    ritas = ok(client.get(f"/v1/review-items?campaign={launched['id']}&reviewer=user:rita", headers=lead))["items"]
    assert len(ritas) >= 2, "the owner of organization:acme reviews its grants"
    report = ok(client.get(f"/v1/reports?campaign={done['id']}", headers=lead))["items"][0]
    grant = ok(client.get("/v1/grants?principal=user:ann", headers=lead))["items"][0]
    hold = ok(client.get(f"/v1/holds?campaign={done['id']}", headers=lead))["items"][0]
    key = ok(client.get("/v1/signing-keys", headers=lead))["items"][0]

    tokens = {PORTAL: portal, LEAD: lead, AUDITOR: auditor, ADMIN: admin, REVIEWER: token_for("user:rita"),
              NO_ROLE: token_for("user:nobody")}
    secret = app.config["SECRET_KEY"]
    with write(app) as (session, ctx):  # an admin's tokens, to show that the token is refused, not the role
        revoked, made = create_token(session, ctx, secret, "user:ada")
        revoke_token(session, ctx, made["id"])
        expired, _ = create_token(session, ctx, secret, "user:ada", timedelta(hours=1))
    clock.advance(hours=2)
    found = Setting(app, admin, {role: headers["Authorization"].split()[1] for role, headers in tokens.items()},
                    {"campaign": launched["id"], "done": done["id"], "definition": done_id,
                     "items": [item["id"] for item in ritas], "job": launched["job"]["id"],
                     "import": imported["job"]["id"],
                     "report": report["id"], "grant": grant["id"], "hold": hold["id"],
                     "key": key["key_id"]})
    found.tokens.update({REVOKED: revoked, EXPIRED: expired, NO_TOKEN: None})
    return found


# -- what each route is sent ------------------------------------------------------------------------------

def _ids(route: str, setting: Setting) -> dict[str, Any]:
    ids = setting.ids
    ending = path_of(route).rsplit("/", 1)[-1]
    return {
        "{principal}": "user:ann", "{type}": "document", "{id}": "d1", "{definition_id}": ids["definition"],
        # The steps that end a campaign go to the one already signed off; the rest to the open one.
        "{campaign_id}": ids["done"] if ending in ("close", "sign-off", "remediate", "follow-up")
        and method_of(route) == "POST" else ids["campaign"],  # the close's preview page: of the open one
        "{item_id}": ids["items"][0], "{job_id}": ids["import"] if "an import's" in route else ids["job"], "{report_id}": ids["report"],
        "{grant_id}": setting.fresh_grant() if method_of(route) == "DELETE" else ids["grant"],
        "{token_id}": setting.fresh_token_id() if "{token_id}" in route else None, "{hold_id}": ids["hold"],
        "{key_id}": ids["key"],
    }


def _bodies(setting: Setting) -> dict[str, dict[str, Any]]:
    """What a route is sent beyond its path: a body whose answer, once allowed, shows the work was done
    (or, for steps that would change what later probes need, is refused by validation after the policy)."""
    item, campaign = setting.ids["items"][0], setting.ids["campaign"]
    decision = {"decision": "keep", "justification": "still needed"}
    return {
        "POST /v1/authorize": {"json": CHECK},
        "POST /v1/authorize/batch": {"json": {"checks": [CHECK]}},
        "POST /access/v1/evaluation": {"json": AUTHZEN},
        "POST /access/v1/evaluations": {"json": {"evaluations": [AUTHZEN]}},
        "POST /access/v1/search/subject": {"json": {**AUTHZEN, "subject": {"type": "user"}}},
        "POST /access/v1/search/resource": {"json": {**AUTHZEN, "resource": {"type": "document"}}},
        "POST /access/v1/search/action": {"json": AUTHZEN},
        "GET /v1/principals/{principal}/resources": {"query_string": {"action": "read", "type": "document"}},
        "PUT /v1/principals/{principal}": {"json": {"name": "Ann"}},
        "PUT /v1/resources/{type}/{id}": {"json": {"parent": "project:p1"}},
        "POST /v1/grants": {"json": {}},
        "POST /v1/directory/import": {"json": {"source": "portal", "mode": "merge", "dry_run": True}},
        "POST /v1/explain": {"json": CHECK},
        "GET /ui/access": {"query_string": {"resource": "project:p1", "principal": "user:ann", "action": "read"}},
        "POST /v1/reports/verify": {"data": {}},
        "POST /v1/reports/access": {"json": {"resources": ["organization:acme"]}},
        "POST /v1/reports/decisions": {"json": {"since": "2026-03-01T00:00:00Z", "until": "2026-03-03T00:00:00Z"}},
        "POST /ui/reports/access": {"data": {"resources": "organization:acme"}},
        "POST /ui/reports/decisions": {"data": {"first_day": "2026-03-01", "last_day": "2026-03-02"}},
        "POST /v1/campaign-definitions": {"json": {}},
        "PATCH /v1/campaign-definitions/{definition_id}": {"json": {"duration_days": 14}},
        "POST /v1/campaigns/{campaign_id}/sign-off": {"json": {"statement": "Reviewed."}},
        "POST /ui/campaign-definitions/{definition_id}/schedule": {"data": {"enabled": "true"}},
        "POST /ui/campaigns/{campaign_id}/sign-off": {"data": {"statement": "Reviewed."}},
        "GET /v1/review-items?reviewer=me": {"query_string": {"reviewer": "me"}},
        "GET /v1/review-items?reviewer={principal}": {"query_string": {"reviewer": "user:rita"}},
        "POST /v1/review-items/{item_id}/decision": {"json": decision},
        "POST /v1/review-items/{item_id}/reassign": {"json": {}},  # handed on, the item would leave Rita
        "POST /v1/campaigns/{campaign_id}/decisions": {"json": {"decisions": [{"item": item, **decision}]}},
        "POST /ui/review-items/{item_id}/decision": {"data": decision},
        "POST /ui/review-items/{item_id}/reassign": {"data": {"to": "", "reason": ""}},
        "POST /ui/reviews": {"data": {"record": str(item), f"decision-{item}": "keep",
                                      f"justification-{item}": "still needed", "next": f"/ui/reviews?campaign={campaign}"}},
        "POST /ui/reviews/accept": {"data": {"items": [str(item)], "next": "/ui/reviews"}},
        "POST /ui/campaigns/{campaign_id}/remind": {"data": {"reviewer": "user:rita"}},
        "POST /ui/tokens": {"data": {"principal": "", "expires_in": ""}},
        "POST /ui/sign-in/email": {"data": {"email": "rita@example.com"}},
        "GET /ui/sign-in/link": {"query_string": {"token": "not-a-link"}},
        "POST /ui/sign-in/link": {"data": {"token": "not-a-link"}},
    }


def send(setting: Setting, route: str, caller: str, bodies: dict[str, dict[str, Any]]):
    """Send ``route`` as ``caller``: the API with its bearer token, a page with its session cookie (and
    the form token of that session, as the page's own forms carry it)."""
    token = setting.tokens[caller]
    path = path_of(route)
    for name, value in _ids(route, setting).items():
        path = path.replace(name, str(value))
    extra = {key: (dict(value) if isinstance(value, dict) else value)
             for key, value in bodies.get(route, {}).items()}
    client = setting.app.test_client()
    if path.startswith("/ui"):
        if route == "POST /ui/sign-in/token":
            extra["data"] = {"token": token or ""}
        elif token:
            client.set_cookie(COOKIE, token, path="/ui")
            if method_of(route) == "POST":
                with setting.app.app_context():
                    extra["data"] = {**extra.get("data", {}), "form_token": form_token(token)}
    elif token:
        extra["headers"] = {"Authorization": f"Bearer {token}"}
    return client.open(path, method=method_of(route), **extra)


def outcome(row: Row, route: str, response) -> str:
    status = response.status_code
    if row.public:
        return REFUSED if status in (401, 403) else ALLOWED
    location = urlsplit(response.headers.get("Location", "")).path
    if path_of(route).startswith("/ui") and status == 302 and location == "/ui/sign-in":
        return SIGN_IN
    if status == 401:
        return UNAUTHENTICATED
    if status == 403 or (row.hidden and status == 404):
        return REFUSED
    return ALLOWED


def expected(row: Row, route: str, caller: str) -> str:
    if caller in ROLES:
        return ALLOWED if caller in row.reach else REFUSED
    without = row.unauthenticated(route)
    return ALLOWED if without == PUBLIC else without


# The reviewer decides before a security lead's override would make it an override of an override.
ORDER = (REVIEWER, PORTAL, LEAD, AUDITOR, ADMIN, NO_ROLE, REVOKED, EXPIRED, NO_TOKEN)


def test_every_route_answers_every_caller_as_the_table_says(setting):
    bodies = _bodies(setting)
    wrong = []
    for row in ROWS:
        for route in row.routes:
            for caller in ORDER:
                with send(setting, route, caller, bodies) as response:  # closes a download's file
                    got, want = outcome(row, route, response), expected(row, route, caller)
                if got == ALLOWED and response.status_code >= 500:
                    got = f"failed ({response.status_code})"
                elif got == ALLOWED and method_of(route) == "GET" and not row.public and response.status_code >= 400:
                    got = f"allowed, but {response.status_code}: the probe named nothing real"
                if got != want:
                    wrong.append(f"{route} as {caller}: {got} ({response.status_code}), the table says {want}")
    assert not wrong, "\n".join(wrong)


def _routes_of_the_app(app) -> set[str]:
    return {route_of_rule(method, rule.rule) for rule in app.url_map.iter_rules()
            for method in rule.methods - {"HEAD", "OPTIONS"}}


def _routes_of_the_table() -> list[str]:
    return [endpoint_of(route) for row in ROWS for route in row.routes]


def test_every_route_of_the_app_has_a_row_and_every_row_a_route(app):
    in_app, in_table = _routes_of_the_app(app), set(_routes_of_the_table())
    assert in_app - in_table == set(), "routes that the role table (tests/role_table.py) does not say who reaches"
    assert in_table - in_app == set(), "rows of the role table for routes the app does not have"


def test_every_operation_of_the_api_document_has_a_row(client):
    document = client.get("/openapi.json").get_json()
    operations = {f"{method.upper()} {path}" for path, ops in document["paths"].items() for method in ops}
    assert operations - set(_routes_of_the_table()) == set()


def test_a_route_is_in_one_row_once():
    routes = [route for row in ROWS for route in row.routes]
    assert len(routes) == len(set(routes))
    assert all(row.reach <= set(ROLES) for row in ROWS)


def test_a_new_route_without_a_row_fails(app):
    @app.get("/v1/unlisted")
    def unlisted():
        return {}

    assert "GET /v1/unlisted" in _routes_of_the_app(app) - set(_routes_of_the_table())


def test_the_readme_shows_the_table():
    assert readme_table(README.read_text(encoding="utf-8")) == render(), \
        "the README's role table differs from tests/role_table.py: run python tests/role_table.py --write"
