"""Policy versions: reloads are validated, audited and reach every process; bad ones change nothing."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo

from accessreview import create_app
from accessreview.authz.policy import PolicyLoadError
from accessreview.cli import cli
from support import copy_policies

EXTRA_RULE = '\nhas_permission(user: User, "read", _document: Document) if user.key = "user:vip";\n'


@pytest.fixture
def policy_dir(tmp_path):
    return copy_policies(tmp_path / "policies")


@pytest.fixture
def policy_app(app_config, policy_dir):
    app = create_app({**app_config, "POLICY_DIR": str(policy_dir)})
    yield app
    app.extensions["db"].dispose()


def test_reload_swaps_the_policy_and_is_audited(policy_app, policy_dir, token_for):
    client = policy_app.test_client()
    from support import write
    from accessreview.directory import service
    from accessreview.directory.schemas import PrincipalBody, ResourceBody
    from accessreview.tokens import create_token

    declarations = policy_app.extensions["authz"].policy.declarations
    with write(policy_app) as (session, ctx):
        for key in ("user:root", "user:vip"):
            service.put_principal(session, ctx, declarations, key, PrincipalBody())
        for key, parent in (("system:accessreview", None), ("organization:o", None), ("project:p", "organization:o"),
                            ("document:d", "project:p")):
            service.put_resource(session, ctx, declarations, key, ResourceBody(parent=parent))
        from accessreview.directory.schemas import GrantBody
        service.create_grant(session, ctx, declarations, GrantBody(principal="user:root", role="admin",
                                                                   resource="system:accessreview"))
        token, _ = create_token(session, ctx, policy_app.config["SECRET_KEY"], "user:root")
    headers = {"Authorization": f"Bearer {token}"}
    before = client.get("/v1/policy", headers=headers).get_json()
    vip = {"actor": "user:vip", "action": "read", "resource": "document:d"}
    assert client.post("/v1/authorize", json=vip, headers=headers).get_json()["allowed"] is False

    (policy_dir / "portal.polar").write_text((policy_dir / "portal.polar").read_text() + EXTRA_RULE)
    reloaded = client.post("/v1/policy/reload", headers=headers)
    assert reloaded.status_code == 200, reloaded.get_json()
    after = reloaded.get_json()
    assert after["version"] != before["version"]
    assert sorted(after["fallback_types"]) == ["document", "pages", "review_item", "review_queue", "todo"], \
        "beyond the table"
    assert before["attribute_types"] == ["todo"] and after["attribute_types"] == ["document", "todo"]
    assert after["fallback_actor_kinds"] == {}
    decision = client.post("/v1/authorize", json=vip, headers=headers).get_json()
    assert decision["allowed"] is True and decision["policy_version"] == after["version"]
    events = client.get("/v1/audit-events?action=policy.loaded", headers=headers).get_json()["items"]
    assert events[-1]["after"]["version"] == after["version"] and events[-1]["actor"] == "user:root"

    (policy_dir / "portal.polar").write_text("resource Broken {")
    bad = client.post("/v1/policy/reload", headers=headers)
    assert bad.status_code == 422 and bad.get_json()["error"]["code"] == "policy_invalid"
    assert client.get("/v1/policy", headers=headers).get_json()["version"] == after["version"]
    assert client.post("/v1/authorize", json=vip, headers=headers).get_json()["allowed"] is True


def test_other_processes_pick_up_a_reload(app_config, policy_dir):
    first = create_app({**app_config, "POLICY_DIR": str(policy_dir)})
    second = create_app({**app_config, "POLICY_DIR": str(policy_dir)})
    old = second.extensions["authz"].snapshot().policy.version
    (policy_dir / "portal.polar").write_text((policy_dir / "portal.polar").read_text() + EXTRA_RULE)
    result = CliRunner().invoke(cli, ["policy", "reload"], obj=ScriptInfo(create_app=lambda: first))
    assert result.exit_code == 0, result.output
    assert second.extensions["authz"].refresh().policy.version != old
    for app in (first, second):
        app.extensions["db"].dispose()


def test_cli_reload_refuses_a_broken_policy(app_config, policy_dir):
    app = create_app({**app_config, "POLICY_DIR": str(policy_dir)})
    (policy_dir / "portal.polar").write_text("this is not polar")
    result = CliRunner().invoke(cli, ["policy", "reload"], obj=ScriptInfo(create_app=lambda: app))
    assert result.exit_code != 0 and "current one stays" in result.output
    app.extensions["db"].dispose()


def test_a_policy_that_does_not_load_stops_start_up(app_config, policy_dir):
    (policy_dir / "service.polar").write_text("resource System { roles = [")
    with pytest.raises(PolicyLoadError):
        create_app({**app_config, "POLICY_DIR": str(policy_dir)})


def test_policy_test_command_runs_the_policy_tests(app):
    result = CliRunner().invoke(cli, ["policy", "test", "-k", "TestOrganization", "-x"],
                                obj=ScriptInfo(create_app=lambda: app))
    assert result.exit_code == 0, result.output
