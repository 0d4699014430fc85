"""A sign-in link's token is good for one thing: redeeming its link, once, within its lifetime. It is
never a bearer token (the API, the check path) nor a token to paste into the sign-in form."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from accessreview.audit import WriteContext
from accessreview.models import Principal, ServiceToken
from accessreview.signin import LinkStatus, Redemption, issue_link, redeem_link
from support import wait_until_someone_waits_on_a_lock, write
from test_web import PUBLIC_URL, hidden, links_in, mail, text  # noqa: F401 (mail: a fixture)

SECRET_KEY = "test-secret-key-that-is-long-enough-0123456789"


@pytest.fixture
def owen(make_principal, make_grant) -> str:
    """A person with every right on the service: any bearer token of theirs would be let in anywhere."""
    make_principal("user:owen", name="Owen Owner", email="owen@example.com")
    make_grant("user:owen", "admin", "system:accessreview")
    return "user:owen"


def ask_for_link(client, mail) -> tuple[str, str]:  # noqa: F811
    """The link e-mailed to Owen (as a path) and its token."""
    client.post("/ui/sign-in/email", data={"email": "owen@example.com", "next": "/ui/"})
    link = links_in(mail[-1][1])[0].removeprefix(PUBLIC_URL)
    token = re.search(r"token=([^&\s]+)", link).group(1)
    return link, token


def audit_actions(client, admin, target: str) -> list[tuple[str, dict]]:
    events = client.get(f"/v1/audit-events?target={target}", headers=admin).get_json()["items"]
    return [(e["action"], e["after"]) for e in events]


def sessions_of(db, principal: str) -> int:
    return db.scalar(select(func.count()).select_from(ServiceToken).where(
        ServiceToken.principal_key == principal, ServiceToken.purpose == "web_session"))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_id(token: str) -> str:
    return token.split("_")[1]


def test_a_link_token_is_never_a_bearer_token(client, mail, owen, admin):  # noqa: F811
    link, token = ask_for_link(client, mail)
    check = {"actor": "user:owen", "action": "read", "resource": "system:accessreview"}
    for when in ("before the link is used", "after"):
        assert client.get("/v1/campaigns", headers=bearer(token)).status_code == 401, when
        answer = client.post("/v1/authorize", json=check, headers=bearer(token))
        assert answer.status_code == 401 and answer.get_json()["error"]["code"] == "invalid_token", when
        client.set_cookie("accessreview_session", token, path="/ui")
        assert client.get("/ui/").status_code == 302, f"{when}: a link's token in the cookie signs nobody in"
        client.delete_cookie("accessreview_session", path="/ui")
        if when.startswith("before"):
            confirm = client.get(link)
            used = client.post("/ui/sign-in/link", data={"token": hidden(confirm, "token"), "next": "/ui/"})
            assert used.status_code == 302
            session_token = re.search(r"accessreview_session=([^;]+)", used.headers["Set-Cookie"]).group(1)
    assert client.get("/v1/campaigns", headers=bearer(session_token)).status_code == 200, \
        "the session it was exchanged for is a bearer token"


def test_a_link_token_pasted_into_the_sign_in_form_is_refused_and_the_link_still_works(client, mail, owen):  # noqa: F811
    link, token = ask_for_link(client, mail)
    pasted = client.post("/ui/sign-in/token", data={"token": token, "next": "/ui/"})
    assert pasted.status_code == 401 and "Set-Cookie" not in pasted.headers
    assert "works only by opening its link" in text(pasted)
    assert client.get("/ui/").status_code == 302, "not signed in"
    confirm = client.get(link)
    assert confirm.status_code == 200, "pasting did not use the link up"
    used = client.post("/ui/sign-in/link", data={"token": hidden(confirm, "token"), "next": "/ui/"})
    assert used.status_code == 302 and client.get("/ui/").status_code == 200
    again = client.post("/ui/sign-in/token", data={"token": token, "next": "/ui/"})
    assert again.status_code == 401, "nor once it is used"


def test_a_second_redemption_is_refused_with_a_page_and_audited(client, mail, owen, admin, clock, db):  # noqa: F811
    link, token = ask_for_link(client, mail)
    first = client.post("/ui/sign-in/link", data={"token": token, "next": "/ui/"})
    assert first.status_code == 302
    clock.advance(minutes=2)
    second = client.post("/ui/sign-in/link", data={"token": token, "next": "/ui/"})
    assert second.status_code == 410 and "Set-Cookie" not in second.headers
    assert "already used" in text(second) and "at 2026-03-02 09:00 UTC" in text(second)
    opened = client.get(link)
    assert opened.status_code == 410 and "already used" in text(opened)
    actions = audit_actions(client, admin, f"token:{token_id(token)}")
    assert [a for a, _ in actions] == ["token.created", "token.link_redeemed", "token.link_refused"]
    assert actions[2][1] == {"principal": "user:owen", "reason": "used", "used_at": "2026-03-02T09:00:00+00:00"}
    assert sessions_of(db, "user:owen") == 1, "one redemption, one session"


def test_a_link_expires_after_its_fifteen_minutes(client, mail, owen, admin, clock):  # noqa: F811
    link, token = ask_for_link(client, mail)
    clock.advance(minutes=14, seconds=59)
    assert client.get(link).status_code == 200
    clock.advance(seconds=1)
    opened = client.get(link)
    assert opened.status_code == 410 and "no longer works" in text(opened)
    used = client.post("/ui/sign-in/link", data={"token": token, "next": "/ui/"})
    assert used.status_code == 410 and "Set-Cookie" not in used.headers
    assert audit_actions(client, admin, f"token:{token_id(token)}")[-1] == (
        "token.link_refused", {"principal": "user:owen", "reason": "expired", "used_at": None})
    assert client.get("/ui/").status_code == 302


def test_two_redemptions_at_once_sign_in_exactly_once(app, mail, owen, db):  # noqa: F811
    _, token = ask_for_link(app.test_client(), mail)
    start = threading.Barrier(4)

    def redeem(_):
        client = app.test_client()
        start.wait()
        return client.post("/ui/sign-in/link", data={"token": token, "next": "/ui/"}).status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = sorted(pool.map(redeem, range(4)))
    assert answers == [302, 410, 410, 410]
    assert sessions_of(db, "user:owen") == 1


@pytest.mark.postgres
def test_a_redemption_waiting_on_another_finds_the_link_used(app, database_url, owen):
    """The race itself, made to happen: both redemptions read the link while it is unused; the second
    one's UPDATE waits on the first one's row lock, and after its commit changes nothing."""
    with write(app) as (session, ctx):
        token = issue_link(session, ctx, SECRET_KEY, session.get(Principal, "user:owen")).token
    sessions = app.extensions["db"].sessionmaker
    first, second = sessions(), sessions()
    now = app.config["CLOCK"].now()
    try:
        won = redeem_link(first, WriteContext("web:sign-in", now), SECRET_KEY, token)  # not committed yet
        assert isinstance(won, Redemption)
        outcome = {}
        waiter = threading.Thread(target=lambda: outcome.setdefault(
            "second", redeem_link(second, WriteContext("web:sign-in", now), SECRET_KEY, token)))
        waiter.start()
        wait_until_someone_waits_on_a_lock(database_url, "the second redemption")
        first.commit()
        waiter.join(timeout=10)
        assert outcome["second"] == LinkStatus(refused="used", used_at=outcome["second"].used_at)
        second.commit()
    finally:
        first.close()
        second.close()
