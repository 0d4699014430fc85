"""Several processes on one PostgreSQL: a write through one is seen by the others' checks."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from contextlib import closing

import pytest

from accessreview.clock import SystemClock
from support import PROJECT_ROOT, send_outbox

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
def two_servers(request, app, database_url, tmp_path, app_config, smtp):
    """Two gunicorn servers of two workers each; they read the directory's changes every 0.2 s, or as
    often as the test's parameter says."""
    ports, processes = [free_port(), free_port()], []
    refresh_interval = getattr(request, "param", 0.2)
    env = {**os.environ, "ACCESSREVIEW_DATABASE_URL": database_url, "ACCESSREVIEW_SECRET_KEY": app_config["SECRET_KEY"],
           "ACCESSREVIEW_INSTANCE_DIR": str(tmp_path), "ACCESSREVIEW_REFRESH_INTERVAL": str(refresh_interval),
           "ACCESSREVIEW_LOG_LEVEL": "WARNING", "ACCESSREVIEW_SMTP_HOST": "127.0.0.1",
           "ACCESSREVIEW_SMTP_PORT": str(smtp[1]), "ACCESSREVIEW_PUBLIC_URL": "http://accessreview.example"}
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


def seen_everywhere(ports: list[int], token: str, bound: float = 1.5) -> None:
    """A token made after the servers started works in each of their workers within the refresh bound."""
    deadline = time.monotonic() + bound
    while any(call(port, "GET", "/v1/directory/status", token)[0] == 401 for port in ports for _ in range(4)):
        assert time.monotonic() < deadline, "the new token was not seen within the bound"
        time.sleep(0.05)


def test_a_write_through_one_process_reaches_the_other(two_servers, portal):
    writer, reader = two_servers
    token = portal["Authorization"].split()[1]
    seen_everywhere(two_servers, token)
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


@pytest.mark.parametrize("two_servers", [60], indirect=True)  # no refresh would bring it in time
def test_a_web_sign_in_through_one_process_works_at_once_in_the_other(two_servers, make_principal, smtp, app):
    first, second = two_servers
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=smtp[1])  # this process plays the worker
    make_principal("user:owen", name="Owen", email="owen@example.com")
    for _ in range(8):  # the second server's workers load their directory (a worker's first request does)
        _get(second, "/ui/", "accessreview_session=ar_0_nobody")
    assert _form(first, "/ui/sign-in/email", {"email": "owen@example.com"})[0] == 200
    assert send_outbox(app, SystemClock()) == {"sent": 1}  # queued by the server, on the real clock
    link = urllib.parse.urlsplit(re.search(r"http://\S+", smtp[0].messages[-1][1]).group(0))
    token = urllib.parse.parse_qs(link.query)["token"][0]
    status, headers = _form(first, "/ui/sign-in/link", {"token": token, "next": "/ui/"})
    assert status == 302
    cookie = headers["Set-Cookie"].split(";")[0]
    # The session token was written a moment ago by the other process: the page catches up to find it.
    for _ in range(2):  # whichever of its two workers answers
        assert _get(second, "/ui/", cookie) == 200


def _get(port: int, path: str, cookie: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers={"Cookie": cookie})
    status = connection.getresponse().status
    connection.close()
    return status


def _form(port: int, path: str, fields: dict[str, str]) -> tuple[int, dict[str, str]]:
    """POST a form without following the redirect it answers with."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("POST", path, body=urllib.parse.urlencode(fields),
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.status, dict(response.getheaders())
