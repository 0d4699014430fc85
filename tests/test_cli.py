"""The `accessreview` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import select

from accessreview.cli import cli
from accessreview.models import Grant, ServiceToken
from support import revision


@pytest.fixture
def run(app):
    def invoke(*args: str):
        return CliRunner().invoke(cli, list(args), obj=ScriptInfo(create_app=lambda: app))

    return invoke


def test_token_create_prints_it_once_and_stores_only_a_hash(run, make_principal, db, client):
    make_principal("service:billing-bot", name="Billing bot")
    result = run("token", "create", "--principal", "service:billing-bot", "--expires-in", "90d",
                 "--description", "billing")
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert token.startswith("ar_")
    stored = db.scalars(select(ServiceToken)).one()
    assert token not in (stored.token_hash, stored.id) and len(stored.token_hash) == 64
    assert (stored.expires_at - stored.created_at).days == 90
    listing = run("token", "list")
    assert stored.id in listing.output and token not in listing.output
    # The token authenticates; a principal without a role is then refused by the policy.
    assert client.get("/v1/principals", headers={"Authorization": f"Bearer {token}"}).status_code == 403


def test_token_revoke_stops_the_token(run, make_principal, make_grant, client, db):
    make_principal("service:portal2")
    make_grant("service:portal2", "portal_client", "system:accessreview")
    token = run("token", "create", "--principal", "service:portal2").output.strip()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/v1/principals", headers=headers).status_code == 200
    token_id = db.scalars(select(ServiceToken.id)).one()
    assert run("token", "revoke", token_id).exit_code == 0
    response = client.get("/v1/principals", headers=headers)
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "invalid_token"
    assert "revoked" not in run("token", "list").output.splitlines()[1].split()[4:5]  # revoked column has a date


def test_expired_token_is_refused(run, make_principal, make_grant, client, clock):
    make_principal("service:temp")
    make_grant("service:temp", "portal_client", "system:accessreview")
    token = run("token", "create", "--principal", "service:temp", "--expires-in", "1h").output.strip()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/v1/principals", headers=headers).status_code == 200
    clock.advance(hours=1)
    assert client.get("/v1/principals", headers=headers).status_code == 401


def test_token_for_unknown_principal_or_bad_duration(run):
    assert run("token", "create", "--principal", "service:ghost").exit_code != 0
    result = run("token", "create", "--principal", "service:ghost", "--expires-in", "soon")
    assert result.exit_code != 0


def test_first_admin_from_the_shell(run, client, app):
    assert run("principal", "put", "user:root", "--name", "Root").exit_code == 0
    result = run("grant", "--principal", "user:root", "--role", "admin", "--resource", "system:accessreview")
    assert result.exit_code == 0, result.output
    token = run("token", "create", "--principal", "user:root").output.strip()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/v1/audit-events", headers=headers).status_code == 200
    again = run("grant", "--principal", "user:root", "--role", "admin", "--resource", "system:accessreview")
    assert again.exit_code != 0 and "already holds" in again.output
    bad_role = run("grant", "--principal", "user:root", "--role", "emperor", "--resource", "system:accessreview")
    assert bad_role.exit_code != 0 and "emperor" in bad_role.output


def test_directory_import_from_csv_files(run, tmp_path, client, portal):
    (tmp_path / "principals.csv").write_text("id,name,manager\nuser:bob,Bob,\nuser:alice,Alice,user:bob\n")
    (tmp_path / "resources.csv").write_text("id,name,parent\norganization:acme,Acme,\nproject:p1,P1,organization:acme\n")
    (tmp_path / "grants.csv").write_text("principal,role,resource,reason\nuser:alice,viewer,project:p1,team\n")
    files = [str(tmp_path / n) for n in ("principals.csv", "resources.csv", "grants.csv")]
    dry = run("directory", "import", *files, "--source", "hr", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.output)["counts"]["grants"]["added"] == 1
    assert client.get("/v1/principals/user:alice", headers=portal).status_code == 404
    result = run("directory", "import", *files, "--source", "hr", "--mode", "replace")
    assert result.exit_code == 0, result.output
    grants = client.get("/v1/grants?source=hr", headers=portal).get_json()["items"]
    assert [(g["principal"], g["role"], g["resource"], g["reason"]) for g in grants] == [
        ("user:alice", "viewer", "project:p1", "team")]


def test_directory_import_reports_rows_with_file_lines(run, tmp_path, app):
    (tmp_path / "grants.csv").write_text("principal,role,resource\nuser:ghost,viewer,project:nope\n")
    before = revision(app)
    result = run("directory", "import", str(tmp_path / "grants.csv"))
    assert result.exit_code != 0
    assert "grants[0].principal" in result.output and "grants.csv:2" in result.output
    assert revision(app) == before


def test_directory_import_refuses_past_its_limits_naming_them(run, tmp_path, app):
    (tmp_path / "grants.csv").write_text("principal,role,resource\n" + "user:a,viewer,project:p1\n" * 50)
    before = revision(app)
    app.config["IMPORT_MAX_CELLS"] = 100  # as ACCESSREVIEW_IMPORT_MAX_CELLS=100 does
    result = run("directory", "import", str(tmp_path / "grants.csv"))
    assert result.exit_code == 1 and "more than 100 cells (ACCESSREVIEW_IMPORT_MAX_CELLS)" in result.output
    app.config.update(IMPORT_MAX_CELLS=10_000, IMPORT_MAX_BYTES=1000)
    result = run("directory", "import", str(tmp_path / "grants.csv"))
    assert result.exit_code == 1 and "larger than 1000 bytes" in result.output
    assert "ACCESSREVIEW_IMPORT_MAX_BYTES" in result.output and "nothing was written" in result.output
    assert revision(app) == before


def test_directory_import_refuses_a_nul_naming_the_file_line(run, tmp_path, app):
    (tmp_path / "principals.csv").write_text("id,name\nuser:a,Ann\nuser:b,B\x00b\n")
    before = revision(app)
    result = run("directory", "import", str(tmp_path / "principals.csv"))
    assert result.exit_code == 1 and "principals.1.name" in result.output and "principals.csv:3" in result.output
    assert "NUL" in result.output and revision(app) == before


def test_cli_text_past_its_column_is_refused(run, make_principal, app):
    make_principal("service:bot")
    before = revision(app)
    result = run("token", "create", "--principal", "service:bot", "--description", "d" * 256)
    assert result.exit_code == 1 and "description" in result.output and "255" in result.output
    result = run("principal", "put", "user:zed", "--name", "n" * 256)
    assert result.exit_code == 1 and "255" in result.output
    result = run("campaign", "sign-off", "1", "--statement", "s" * 4001)
    assert result.exit_code == 1 and "statement" in result.output and "4000" in result.output
    assert revision(app) == before


def test_principal_put_takes_custom_attributes(run, client, auditor):
    result = run("principal", "put", "user:ann", "--attribute", "team=north", "--attribute", "site=a=b")
    assert result.exit_code == 0, result.output
    got = client.get("/v1/principals/user:ann", headers=auditor).get_json()
    assert got["attributes"] == {"team": "north", "site": "a=b"}
    bad = run("principal", "put", "user:ann", "--attribute", "team")
    assert bad.exit_code == 1 and "KEY=VALUE" in bad.output


def test_replace_without_grants_needs_to_be_meant(run, tmp_path):
    (tmp_path / "principals.csv").write_text("id\nuser:x\n")
    result = run("directory", "import", str(tmp_path / "principals.csv"), "--mode", "replace")
    assert result.exit_code != 0 and "--allow-empty-replace" in result.output


def test_directory_import_from_xlsx(run, tmp_path, client, portal):
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.active.title = "principals"
    workbook["principals"].append(["id", "name"])
    workbook["principals"].append(["user:xena", "Xena"])
    workbook.save(tmp_path / "directory.xlsx")
    assert run("directory", "import", str(tmp_path / "directory.xlsx")).exit_code == 0
    assert client.get("/v1/principals/user:xena", headers=portal).get_json()["name"] == "Xena"


def test_demo_load_builds_a_realistic_portal_once(run, client, admin, db):
    result = run("demo", "load")
    assert result.exit_code == 0, result.output
    status = client.get("/v1/directory/status", headers=admin).get_json()
    counts = status["counts"]
    assert counts["resources"]["organization"] >= 3 and counts["resources"]["project"] >= 10
    assert counts["resources"]["document"] >= 200 and counts["resources"]["invoice"] >= 3
    assert counts["principals"]["user"] >= 60 and counts["principals"]["group"] >= 2
    assert counts["expired_grants"] >= 1
    disabled = client.get("/v1/principals?status=disabled", headers=admin).get_json()["items"]
    assert disabled and all(p["kind"] == "user" for p in disabled)
    assert db.scalars(select(Grant).where(Grant.role == "account_manager")).first() is not None
    again = run("demo", "load", "--if-empty")
    assert "not loaded" in again.output


def test_audit_verify_exit_codes(run, client, portal):
    client.put("/v1/principals/user:alice", json={}, headers=portal)
    assert run("audit", "verify").exit_code == 0


def test_a_bad_setting_stops_with_one_line_naming_the_variable(tmp_path):
    env = {**os.environ, "ACCESSREVIEW_MAX_BODY_BYTES": "lots", "ACCESSREVIEW_INSTANCE_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "accessreview.cli", "token", "list"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: ACCESSREVIEW_MAX_BODY_BYTES is invalid: invalid literal for int() with base 10: 'lots'"]


def test_production_requires_settings(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCESSREVIEW_")}
    env.update(ACCESSREVIEW_ENV="production", ACCESSREVIEW_INSTANCE_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "accessreview.cli", "token", "list"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: ACCESSREVIEW_DATABASE_URL is not set "
                                     "(required when ACCESSREVIEW_ENV=production)")


def test_db_upgrade_on_a_fresh_database_then_ready(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCESSREVIEW_")}
    env.update(ACCESSREVIEW_INSTANCE_DIR=str(tmp_path), ACCESSREVIEW_JSON_LOGS="false")
    command = [sys.executable, "-m", "accessreview.cli"]
    upgraded = subprocess.run([*command, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120)
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "accessreview.sqlite3").exists() and (tmp_path / "secret-key").exists()
    verified = subprocess.run([*command, "audit", "verify"], env=env, capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0 and "intact: 2 events" in verified.stdout  # policy load + system resource


def test_production_refuses_a_missing_signing_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCESSREVIEW_")}
    env.update(ACCESSREVIEW_ENV="production", ACCESSREVIEW_INSTANCE_DIR=str(tmp_path),
               ACCESSREVIEW_DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", ACCESSREVIEW_SECRET_KEY="s" * 40,
               ACCESSREVIEW_SIGNING_KEY_PATH=str(tmp_path / "missing.pem"))
    result = subprocess.run([sys.executable, "-m", "accessreview.cli", "token", "list"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: ACCESSREVIEW_SIGNING_KEY_PATH is invalid: no signing key at")


def test_campaign_steps_and_jobs_from_the_shell(app, run, client, lead, portal, db):
    from test_campaigns import DIRECTORY, definition

    assert client.post("/v1/directory/import", json=DIRECTORY, headers=portal).status_code == 200
    definition_id = definition(client, lead, on_no_response="revoke")
    app.config["JOB_INLINE_SECONDS"] = 0  # every step is left to a job, which the command then runs here
    launched = run("campaign", "launch", str(definition_id))
    assert launched.exit_code == 0, launched.output
    job = json.loads(launched.output)
    assert job["kind"] == "launch" and job["state"] == "done" and job["progress"] == {"done": 6, "total": 6}
    campaign = job["result"]["campaign"]
    assert json.loads(run("campaign", "close", str(campaign)).output)["state"] == "done"
    early = run("campaign", "remediate", str(campaign))
    assert early.exit_code == 1 and "after sign-off" in early.output, "a refusal is an error, not a job"
    queued = run("campaign", "--no-wait", "sign-off", str(campaign), "--statement", "Reviewed.")
    waiting = json.loads(queued.output)
    assert queued.exit_code == 0 and waiting["kind"] == "remediation" and waiting["state"] == "queued"
    listed = run("jobs", "list", "--state", "queued").output.splitlines()
    assert [line.split("\t")[:4] for line in listed] == [[str(waiting["id"]), "remediation", f"campaign:{campaign}",
                                                          "queued"]]
    ran = run("jobs", "run", str(waiting["id"]))
    assert ran.exit_code == 0 and json.loads(ran.output)["state"] == "done"
    waited = run("jobs", "wait", str(waiting["id"]), "--timeout", "1")
    assert waited.exit_code == 0 and len(json.loads(waited.output)["result"]["reports"]) == 2
    assert run("jobs", "wait", "999").exit_code == 1
    assert db.scalar(select(Grant.id).where(Grant.resource_key == "project:p1")) is None, "the revocations applied"
