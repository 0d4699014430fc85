"""The check server: the portal's checks on a port of their own, answered as on the main port, and
never kept waiting by idle or slow connections (a real gunicorn with its asyncio workers)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from accessreview.checkserver import CheckServer
from support import start_check_server, stop_server


def asgi_call(server: CheckServer, method: str, path: str, headers: dict[str, str], body: bytes = b"",
              chunks: int = 1) -> tuple[int, dict[str, str], bytes]:
    """One request through the ASGI app, its body in ``chunks`` messages."""
    sent: list[dict] = []
    size = max(1, -(-len(body) // chunks))
    messages = [{"type": "http.request", "body": body[i:i + size], "more_body": i + size < len(body)}
                for i in range(0, max(len(body), 1), size)]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "query_string": b"", "scheme": "http",
             "client": ("127.0.0.1", 5000),
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    asyncio.run(server(scope, receive, send))
    start, body_message = sent
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body_message["body"]


def test_a_check_is_answered_as_on_the_main_port(app, client, portal):
    server = CheckServer(app)
    check = {"actor": "service:portal", "action": "check", "resource": "system:accessreview"}
    headers = {**portal, "Content-Type": "application/json", "X-Request-Id": "req-42"}
    status, answer_headers, body = asgi_call(server, "POST", "/v1/authorize", headers, json.dumps(check).encode(),
                                             chunks=3)
    main = client.post("/v1/authorize", json=check, headers=portal).get_json()
    answer = json.loads(body)
    assert status == 200 and answer["allowed"] is main["allowed"] is True
    assert set(answer) == set(main) and answer_headers["x-request-id"] == "req-42"
    batch = {"checks": [check, {**check, "action": "nonsense"}]}
    status, _, body = asgi_call(server, "POST", "/v1/authorize/batch", headers, json.dumps(batch).encode())
    assert status == 200 and len(json.loads(body)["results"]) == 2


def test_the_check_port_refuses_what_is_not_a_check(app, portal):
    server = CheckServer(app)
    status, _, body = asgi_call(server, "GET", "/v1/campaigns", portal)
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"
    status, _, body = asgi_call(server, "POST", "/v1/authorize", {}, b"{}")
    assert status == 401, "a check without a token is refused as on the main port"
    app.config["MAX_BODY_BYTES"] = 100
    big = CheckServer(app)
    status, headers, body = asgi_call(big, "POST", "/access/v1/evaluation", {**portal, "X-Request-ID": "req-413"},
                                      b"x" * 101, chunks=4)
    assert status == 413 and json.loads(body)["error"]["code"] == "body_too_large"
    assert headers["x-request-id"] == "req-413", "echoed, as every answer of the AuthZEN API must"
    status, _, body = asgi_call(big, "POST", "/v1/authorize", {**portal, "Content-Length": "5000000"}, b"")
    assert status == 413


@pytest.fixture
def check_server(app, database_url, app_config, tmp_path):
    port, process = start_check_server(database_url, app_config["SECRET_KEY"], tmp_path)
    yield port
    stop_server(process, 10)


def _check(port: int, portal: dict[str, str], timeout: float) -> tuple[int, bool | None]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/authorize", method="POST",
        data=json.dumps({"actor": "user:ann", "action": "read", "resource": "system:accessreview"}).encode(),
        headers={**portal, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())["allowed"]
    except urllib.error.HTTPError as error:
        return error.code, None


def test_a_token_works_in_every_check_worker_as_soon_as_it_is_made(app, database_url, app_config, tmp_path,
                                                                    token_for, make_principal):
    make_principal("user:ann", name="Ann")
    early = token_for("service:early", "portal_client")
    # Workers that would not look at the database again for an hour of their own accord.
    port, process = start_check_server(database_url, app_config["SECRET_KEY"], tmp_path, REFRESH_INTERVAL="3600")
    try:
        assert [_check(port, early, 5) for _ in range(20)] == [(200, False)] * 20
        late = token_for("service:late", "portal_client")
        assert [_check(port, late, 5) for _ in range(20)] == [(200, False)] * 20
        assert _check(port, {"Authorization": late["Authorization"] + "x"}, 5) == (401, None)
    finally:
        stop_server(process, 10)


def test_idle_and_slow_connections_do_not_keep_a_check_waiting(check_server, portal, make_principal):
    make_principal("user:ann", name="Ann")
    stop, pests = threading.Event(), []
    for _ in range(50):  # a browser's spare connections, a scanner: connected, silent
        pests.append(socket.create_connection(("127.0.0.1", check_server)))

    def slow_client():  # a header line every second, never the end of the request
        sock = socket.create_connection(("127.0.0.1", check_server))
        pests.append(sock)
        sock.sendall(b"POST /v1/authorize HTTP/1.1\r\nHost: x\r\n")
        while not stop.wait(1):
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except OSError:
                return

    threads = [threading.Thread(target=slow_client, daemon=True) for _ in range(20)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.5)  # the slow clients are mid-request
        # More checks than the server has workers, each on a connection of its own; sync workers would
        # hang here past the 5 s timeout.
        answers = [_check(check_server, portal, 5) for _ in range(20)]
        assert answers == [(200, False)] * 20
    finally:
        stop.set()
        for sock in pests:
            sock.close()


def _post(port: int | str, path: str, body: dict, headers: dict[str, str]) -> tuple[int, dict]:
    """POST to a path of the check server on ``port``, or (``port`` a URL, ``path`` "") to that URL."""
    url = port if isinstance(port, str) else f"http://127.0.0.1:{port}{path}"
    request = urllib.request.Request(url, method="POST", data=json.dumps(body).encode(),
                                     headers={**headers, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_check_server_answers_the_authzen_api(check_server, portal, make_principal):
    """Evaluations, the searches and the metadata, from the check server's own workers."""
    make_principal("user:ann", name="Ann")
    ask = {"subject": {"type": "user", "id": "ann"}, "action": {"name": "read"},
           "resource": {"type": "system", "id": "accessreview"}}
    assert _post(check_server, "/access/v1/evaluation", ask, portal)[1]["decision"] is False
    status, answer = _post(check_server, "/access/v1/evaluations", {"evaluations": [ask, ask]}, portal)
    assert status == 200 and [e["decision"] for e in answer["evaluations"]] == [False, False]
    status, answer = _post(check_server, "/access/v1/search/action",
                           {"subject": ask["subject"], "resource": ask["resource"]}, portal)
    assert status == 200 and answer["page"]["next_token"] == "" and answer["results"] == []
    with urllib.request.urlopen(f"http://127.0.0.1:{check_server}/.well-known/authzen-configuration") as response:
        metadata = json.loads(response.read())
    assert metadata["search_action_endpoint"] == f"http://127.0.0.1:{check_server}/access/v1/search/action"


def test_a_pep_that_discovers_the_pdp_on_the_main_port_is_sent_to_the_check_server(app, client, check_server, portal,
                                                                                    make_principal):
    """Both servers' metadata name the same endpoints, the check server's, and they answer."""
    app.config["CHECK_URL"] = f"http://127.0.0.1:{check_server}"  # as ACCESSREVIEW_CHECK_BIND makes it (test_ops)
    make_principal("user:ann", name="Ann")
    main = client.get("/.well-known/authzen-configuration", base_url="http://main.example").get_json()
    with urllib.request.urlopen(f"http://127.0.0.1:{check_server}/.well-known/authzen-configuration") as response:
        checks = json.loads(response.read())
    assert main.pop("policy_decision_point") == "http://main.example"
    assert checks.pop("policy_decision_point") == f"http://127.0.0.1:{check_server}"
    assert main == checks and main["access_evaluation_endpoint"].startswith(f"http://127.0.0.1:{check_server}/")
    ask = {"subject": {"type": "user", "id": "ann"}, "action": {"name": "read"},
           "resource": {"type": "system", "id": "accessreview"}}
    asked = {"access_evaluation_endpoint": ask, "access_evaluations_endpoint": {"evaluations": [ask]},
             "search_subject_endpoint": {**ask, "subject": {"type": "user"}},
             "search_resource_endpoint": {**ask, "resource": {"type": "system"}},
             "search_action_endpoint": {"subject": ask["subject"], "resource": ask["resource"]}}
    for name, body in asked.items():
        status, answer = _post(main[name], "", body, portal)
        assert status == 200 and ("decision" in answer or "evaluations" in answer or "results" in answer), name
