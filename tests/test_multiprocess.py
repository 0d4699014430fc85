"""Several processes on one PostgreSQL: a write through one is seen by the others' checks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import closing

import pytest

from support import PROJECT_ROOT

pytestmark = pytest.mark.postgres


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(port: int, method: str, path: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def two_servers(app, database_url, tmp_path, app_config):
    ports, processes = [free_port(), free_port()], []
    env = {**os.environ, "ACCESSREVIEW_DATABASE_URL": database_url, "ACCESSREVIEW_SECRET_KEY": app_config["SECRET_KEY"],
           "ACCESSREVIEW_INSTANCE_DIR": str(tmp_path), "ACCESSREVIEW_REFRESH_INTERVAL": "0.2",
           "ACCESSREVIEW_LOG_LEVEL": "WARNING"}
    for port in ports:
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
             "--workers", "2", "wsgi:app"], cwd=PROJECT_ROOT, env=env, stderr=subprocess.DEVNULL))
    deadline = time.monotonic() + 30
    for port in ports:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except OSError:
                assert time.monotonic() < deadline, "servers did not start"
                time.sleep(0.1)
    yield ports
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


def test_a_write_through_one_process_reaches_the_other(two_servers, portal):
    writer, reader = two_servers
    token = portal["Authorization"].split()[1]
    for path, body in (("/v1/principals/user:alice", {}), ("/v1/resources/organization/acme", {})):
        assert call(writer, "PUT", path, token, body)[0] in (200, 201)
    status, created = call(writer, "POST", "/v1/grants", token,
                           {"principal": "user:alice", "role": "member", "resource": "organization:acme"})
    assert status == 201
    check = {"actor": "user:alice", "action": "read", "resource": "organization:acme"}
    # At once, when the check names the revision of the write…
    status, answer = call(reader, "POST", "/v1/authorize", token, {**check, "at_least_revision": created["revision"]})
    assert status == 200 and answer["allowed"] is True and answer["revision"] >= created["revision"]
    # …and within the refresh interval for every worker of the other process otherwise.
    status, removed = call(writer, "DELETE", f"/v1/grants/{created['id']}", token)
    assert status == 200
    deadline = time.monotonic() + 1.5
    answers = []
    while time.monotonic() < deadline:
        answers = [call(reader, "POST", "/v1/authorize", token, check)[1]["allowed"] for _ in range(4)]
        if not any(answers):
            break
        time.sleep(0.05)
    assert answers == [False] * 4, "every worker saw the revoke within the bound"


def test_a_revoked_token_stops_in_every_process(two_servers, make_principal, make_grant, app):
    from click.testing import CliRunner
    from flask.cli import ScriptInfo

    from accessreview.cli import cli

    writer, reader = two_servers
    make_principal("service:temp")
    make_grant("service:temp", "portal_client", "system:accessreview")
    run = CliRunner()
    token = run.invoke(cli, ["token", "create", "--principal", "service:temp"],
                       obj=ScriptInfo(create_app=lambda: app)).output.strip()
    check = {"actor": "user:x", "action": "read", "resource": "organization:x"}
    deadline = time.monotonic() + 2
    while call(reader, "POST", "/v1/authorize", token, check)[0] != 200:
        assert time.monotonic() < deadline, "the new token never worked"
        time.sleep(0.05)
    token_id = token.split("_")[1]
    assert run.invoke(cli, ["token", "revoke", token_id], obj=ScriptInfo(create_app=lambda: app)).exit_code == 0
    deadline = time.monotonic() + 1.5
    while any(call(port, "POST", "/v1/authorize", token, check)[0] != 401 for port in two_servers for _ in range(2)):
        assert time.monotonic() < deadline, "the revoked token still works"
        time.sleep(0.05)
