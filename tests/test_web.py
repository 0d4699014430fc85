"""The web pages, driven as a browser would: sign-in (by e-mailed link, by token), a reviewer's queue
and decisions, a security lead's campaign page, an auditor's reports; and what they refuse."""

from __future__ import annotations

import io
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from accessreview.models import ServiceToken
from accessreview.scheduler import run_once
from support import send_outbox
from test_campaigns import definition, directory, items, launch  # noqa: F401 (directory: a fixture)

PUBLIC_URL = "http://127.0.0.1:8000"


def text(response) -> str:
    return response.get_data(as_text=True)


def form_token(page) -> str:
    return re.search(r'name="form_token" value="([0-9a-f]+)"', text(page)).group(1)


def hidden(page, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]*)"', text(page)).group(1)


def sign_in(client, headers: dict[str, str], next_page: str = "/ui/"):
    response = client.post("/ui/sign-in/token", data={"token": headers["Authorization"].split()[1],
                                                      "next": next_page})
    assert response.status_code == 302, text(response)
    return response


def links_in(message: str) -> list[str]:
    return re.findall(r"http://\S+", message)


@pytest.fixture
def campaign(client, lead, directory):  # noqa: F811 (directory: the fixture)
    """Acme's review, reviewed by its owner Owen (five items) and the fallback Lena (Owen's own grant)."""
    return launch(client, lead, definition(client, lead))


class Inbox:
    """The test SMTP server's messages as a reader finds them: the worker sends the outbox first."""

    def __init__(self, app, messages: list) -> None:
        self.app, self.messages = app, messages

    def _received(self) -> list:
        send_outbox(self.app)
        return self.messages

    def __getitem__(self, index):
        return self._received()[index]

    def __len__(self) -> int:
        return len(self._received())

    def __iter__(self):
        return iter(self._received())

    def __eq__(self, other) -> bool:
        return self._received() == other

    def clear(self) -> None:
        self._received().clear()


@pytest.fixture
def mail(app, smtp):
    keeper, port = smtp
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port)
    return Inbox(app, keeper.messages)


def owen_items(client, lead, campaign) -> dict:
    return {key: item for key, item in items(client, lead, campaign["id"]).items() if item["reviewer"] == "user:owen"}


def test_a_page_asks_to_sign_in_first_and_comes_back_after(client, campaign, token_for):
    page = f"/ui/reviews?campaign={campaign['id']}"
    response = client.get(page)
    assert response.status_code == 302
    assert parse_qs(urlsplit(response.headers["Location"]).query)["next"] == [page]
    form_sent = client.post(f"/ui/campaigns/{campaign['id']}/close")  # e.g. after the session ran out
    assert form_sent.status_code == 302 and parse_qs(urlsplit(form_sent.headers["Location"]).query)["next"] == ["/ui/"]
    sign_in_page = client.get(response.headers["Location"])
    assert sign_in_page.status_code == 200 and "E-mail me a sign-in link" in text(sign_in_page)
    assert "script-src" not in sign_in_page.headers["Content-Security-Policy"]  # none at all: default-src 'none'
    assert sign_in_page.headers["Cache-Control"] == "no-store"
    assert sign_in(client, token_for("user:owen"), page).headers["Location"] == page
    assert client.get(page).status_code == 200
    home = text(client.get("/ui/"))
    assert "Acme quarterly" in home and re.search(r'<td class="num">5</td>\s*<td class="num">0</td>', home)


def test_a_reviewer_follows_the_reminder_signs_in_by_email_and_decides(app, client, lead, campaign, mail, clock):
    clock.advance(days=11)  # three days before the due date: the first reminder
    run_once(app)
    [(to, reminder)] = [m for m in mail if m[0] == ["owen@example.com"]]
    queue = next(link for link in links_in(reminder) if "/ui/reviews" in link).removeprefix(PUBLIC_URL)
    assert queue == f"/ui/reviews?campaign={campaign['id']}"

    to_sign_in = client.get(queue).headers["Location"]
    asked = client.post("/ui/sign-in/email", data={"email": "Owen@Example.com", "next": queue})
    assert asked.status_code == 200 and "Check your e-mail" in text(asked)
    to, message = mail[-1]
    assert to == ["owen@example.com"] and "sign-in link" in message and "/ui/sign-in" in to_sign_in
    link = links_in(message)[0].removeprefix(PUBLIC_URL)

    confirm = client.get(link)  # a mail scanner may open it too: opening does not use it up
    assert confirm.status_code == 200 and "Sign in as Owen Owner" in text(confirm)
    assert client.get(link).status_code == 200
    signed_in = client.post("/ui/sign-in/link", data={"token": hidden(confirm, "token"),
                                                       "next": hidden(confirm, "next")})
    assert signed_in.status_code == 302 and signed_in.headers["Location"] == queue
    cookie = signed_in.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=43200" in cookie
    again = client.post("/ui/sign-in/link", data={"token": hidden(confirm, "token"), "next": queue})
    assert again.status_code == 410 and client.get(link).status_code == 410, "a link works once"

    page = client.get(queue)
    assert page.status_code == 200
    cat = owen_items(client, lead, campaign)[("user:cat", "member", "organization:acme")]
    assert f'id="item-{cat["id"]}"' in text(page) and "disabled" in text(page)
    assert len(re.findall(r'<article class="item"', text(page))) == 5

    refused = client.post(f"/ui/review-items/{cat['id']}/decision",
                          data={"decision": "revoke", "justification": " ", "form_token": form_token(page)})
    assert refused.status_code == 422 and "a justification is required to revoke" in text(refused)
    assert client.get(f"/v1/review-items/{cat['id']}", headers=lead).get_json()["status"] == "pending"

    decided = client.post(f"/ui/review-items/{cat['id']}/decision",
                          data={"decision": "revoke", "justification": "left in January",
                                "form_token": form_token(page), "next": queue})
    assert decided.status_code == 302
    assert decided.headers["Location"] == f"{queue}&done={cat['id']}#item-{cat['id']}"
    state = client.get(f"/v1/review-items/{cat['id']}", headers=lead).get_json()
    assert (state["decision"], state["justification"], state["decided_by"]) == ("revoke", "left in January",
                                                                                 "user:owen")
    remaining = client.get(queue)
    assert len(re.findall(r'<article class="item"', text(remaining))) == 4 and "Saved for item" not in text(remaining)


def test_a_form_needs_its_session_token_and_our_origin(client, lead, campaign, token_for, unchanged):
    sign_in(client, token_for("user:owen"))
    ann = owen_items(client, lead, campaign)[("user:ann", "editor", "project:p1")]
    url = f"/ui/review-items/{ann['id']}/decision"
    token = form_token(client.get(f"/ui/review-items/{ann['id']}"))
    with unchanged():
        missing = client.post(url, data={"decision": "keep"})
        assert missing.status_code == 400 and "nothing was saved" in text(missing)
        forged = client.post(url, data={"decision": "keep", "form_token": "0" * 64})
        assert forged.status_code == 400
        cross_site = client.post(url, data={"decision": "keep", "form_token": token},
                                 headers={"Origin": "https://evil.example"})
        assert cross_site.status_code == 403
        hidden_origin = client.post(url, data={"decision": "keep", "form_token": token}, headers={"Origin": "null"})
        assert hidden_origin.status_code == 403, "a sandboxed frame elsewhere sends Origin: null"
    assert client.post(url, data={"decision": "keep", "form_token": token},
                       headers={"Origin": "http://localhost"}).status_code == 302
    # Behind a proxy that sends a Host of its own, the public address is ours too.
    assert client.post(url, data={"decision": "revoke", "justification": "moved", "form_token": token},
                       headers={"Origin": PUBLIC_URL, "Host": "app-1.internal:8000"}).status_code == 302


def test_a_stale_form_is_offered_again_with_what_was_typed_and_a_fresh_token(client, lead, campaign, token_for,
                                                                            unchanged):
    sign_in(client, token_for("user:owen"))
    ben = owen_items(client, lead, campaign)[("user:ben", "editor", "project:p1")]
    with unchanged():
        stale = client.post("/ui/reviews", data={"record": ben["id"], f"decision-{ben['id']}": "revoke",
                                                 f"justification-{ben['id']}": "moved to <sales>",
                                                 "next": "/ui/reviews", "form_token": "0" * 64})
    body = text(stale)
    assert stale.status_code == 400 and "Send the form again" in body
    assert ">moved to &lt;sales&gt;</textarea>" in body, "what was typed is kept"
    fresh = form_token(stale)
    assert fresh != "0" * 64 and fresh == form_token(client.get("/ui/reviews"))
    sent = client.post("/ui/reviews", data={"record": hidden(stale, "record"), f"decision-{ben['id']}":
                                            hidden(stale, f"decision-{ben['id']}"),
                                            f"justification-{ben['id']}": "moved to <sales>",
                                            "next": hidden(stale, "next"), "form_token": fresh})
    assert sent.status_code == 302
    state = client.get(f"/v1/review-items/{ben['id']}", headers=lead).get_json()
    assert (state["decision"], state["justification"]) == ("revoke", "moved to <sales>")


def test_a_security_lead_sees_who_is_behind_and_reminds_them_now(client, lead, campaign, token_for, mail, clock,
                                                                  auditor):
    sign_in(client, token_for("user:owen"))
    page = client.get("/ui/reviews")
    ann = owen_items(client, lead, campaign)[("user:ann", "editor", "project:p1")]
    client.post("/ui/reviews", data={"record": ann["id"], f"decision-{ann['id']}": "keep", "next": "/ui/reviews",
                                     "form_token": form_token(page)})
    clock.advance(days=15)  # a day past due
    sign_in(client, lead)
    url = f"/ui/campaigns/{campaign['id']}"
    body = text(client.get(url))
    owen_row = body.split(">user:owen</a>")[1].split("</tr>")[0]
    assert '<span class="badge warn">overdue</span>' in owen_row and "2026-03-02" in owen_row, "last decided"
    assert 'aria-label="Remind user:owen now of 4 items"' in owen_row
    mail.clear()
    reminded = client.post(f"{url}/remind", data={"reviewer": "user:owen", "form_token": form_token(client.get(url))})
    assert reminded.status_code == 302 and reminded.headers["Location"].endswith("reminded=user:owen#reviewers")
    after = text(client.get(reminded.headers["Location"]))
    assert "Reminder to user:owen put in the outbox" in after
    [(to, message)] = [m for m in mail if m[0] == ["owen@example.com"]]
    assert "4 access review item(s) to decide" in message and "overdue by 1 day(s)" in message
    assert f"{PUBLIC_URL}/ui/reviews?campaign={campaign['id']}" in message
    nobody = client.post(f"{url}/remind", data={"reviewer": "user:ann", "form_token": form_token(client.get(url))})
    assert nobody.status_code == 409 and "user:ann has nothing left to decide" in text(nobody)
    sign_in(client, auditor)
    assert "Remind now" not in text(client.get(url))
    assert client.post(f"{url}/remind", data={"reviewer": "user:owen",
                                              "form_token": form_token(client.get("/ui/reports"))}).status_code == 403


def test_launching_over_grants_already_in_an_open_campaign_warns_and_asks(client, lead, campaign, clock, unchanged):
    sign_in(client, lead)
    token = form_token(client.get("/ui/campaigns"))
    url = f"/ui/campaign-definitions/{campaign['definition_id']}/launch"
    clock.advance(minutes=5)
    with unchanged():
        asked = client.post(url, data={"form_token": token})
        body = text(asked)
        assert asked.status_code == 200 and "already reviews some of the same grants" in body
        assert f"{campaign['name']}</a>: 6 items still to decide" in body and "launched from this same definition" in body
    launched = client.post(url, data={"form_token": token, "confirmed": "yes"})
    assert launched.status_code == 302
    assert len(client.get("/v1/campaigns", headers=lead).get_json()["items"]) == 2


def test_a_definition_has_a_page_to_read_and_change_it(client, lead, campaign, auditor, unchanged):
    sign_in(client, lead)
    url = f"/ui/campaign-definitions/{campaign['definition_id']}"
    assert f'href="{url}"' in text(client.get("/ui/campaigns"))
    page = client.get(url)
    body = text(page)
    before = client.get(f"/v1/campaign-definitions/{campaign['definition_id']}", headers=lead).get_json()
    assert page.status_code == 200 and "Save the changes" in body and f'value="{before["name"]}"' in body
    form = {name: value for name, value in re.findall(r'<input id="[^"]+" name="([a-z_]+)"[^>]*value="([^"]*)"', body)}
    form.update({"form_token": form_token(page), "subtrees": "\n".join(before["scope"].get("subtrees") or []),
                 "reviewer_rule": before["reviewer"]["rule"], "on_no_response": before["on_no_response"],
                 "schedule": "none", "principal_kinds": before["scope"].get("principal_kinds") or [],
                 "justify_revoke": "on", "on_due_day": "on", "daily_overdue": "on"})
    with unchanged():
        nowhere = client.post(url, data={**form, "subtrees": "project:does-not-exist"})
        assert nowhere.status_code == 422 and "project:does-not-exist is not in the directory" in text(nowhere)
        assert "project:does-not-exist</textarea>" in text(nowhere), "what was typed is kept"
    saved = client.post(url, data={**form, "duration_days": "30"})
    assert saved.status_code == 302 and "Saved." in text(client.get(saved.headers["Location"]))
    after = client.get(f"/v1/campaign-definitions/{campaign['definition_id']}", headers=lead).get_json()
    assert after["duration_days"] == 30
    assert {k: v for k, v in after.items() if k not in ("duration_days", "updated_at")} == \
        {k: v for k, v in before.items() if k not in ("duration_days", "updated_at")}, "the rest unchanged"
    sign_in(client, auditor)
    read_only = text(client.get(url))
    assert "Save the changes" not in read_only and "disabled" in read_only


def test_the_definition_form_carries_the_independence_and_justification_settings(client, lead, campaign):
    """What the page shows ticked is what the definition holds, and saving the page keeps it: a
    setting not on the form would be lost by every edit."""
    url = f"/ui/campaign-definitions/{campaign['definition_id']}"
    api = f"/v1/campaign-definitions/{campaign['definition_id']}"
    assert client.patch(api, json={"justification": {"revoke": True, "keep": False, "keep_against_revoke_advice": True},
                                   "sign_off": {"refuse_signer_who_decided": True}}, headers=lead).status_code == 200
    sign_in(client, lead)
    page = client.get(url)
    body = text(page)
    for name in ("justify_keep_against_advice", "refuse_signer_who_decided"):
        assert re.search(rf'name="{name}" checked', body), name
    before = client.get(api, headers=lead).get_json()
    form = {name: value for name, value in re.findall(r'<input id="[^"]+" name="([a-z_]+)"[^>]*value="([^"]*)"', body)}
    form.update({"form_token": form_token(page), "subtrees": "\n".join(before["scope"].get("subtrees") or []),
                 "reviewer_rule": before["reviewer"]["rule"], "on_no_response": before["on_no_response"],
                 "schedule": "none", "principal_kinds": before["scope"].get("principal_kinds") or [],
                 "justify_revoke": "on", "justify_keep_against_advice": "on", "refuse_signer_who_decided": "on"})
    assert client.post(url, data=form).status_code == 302
    kept = client.get(api, headers=lead).get_json()
    assert kept["justification"]["keep_against_revoke_advice"] is True
    assert kept["sign_off"] == {"refuse_signer_who_decided": True}
    page = client.get(url)
    cleared = {k: v for k, v in form.items() if k != "refuse_signer_who_decided"}
    assert client.post(url, data={**cleared, "form_token": form_token(page)}).status_code == 302
    assert client.get(api, headers=lead).get_json()["sign_off"] == {"refuse_signer_who_decided": False}


def test_a_reviewer_sees_only_their_own_items(client, lead, campaign, token_for):
    sign_in(client, token_for("user:ann"))  # a reviewer of nothing here
    home = client.get("/ui/")
    assert "Nothing is waiting for you" in text(home) and "/ui/campaigns" not in text(home)
    owens = owen_items(client, lead, campaign)[("user:ben", "editor", "project:p1")]
    assert client.get(f"/ui/review-items/{owens['id']}").status_code == 404
    assert client.get("/ui/campaigns").status_code == 403
    assert client.get(f"/ui/campaigns/{campaign['id']}").status_code == 403
    assert client.get("/ui/reports").status_code == 403


def test_a_reviewer_hands_an_item_on_but_not_to_its_subject(client, lead, campaign, token_for):
    sign_in(client, token_for("user:owen"))
    ben = owen_items(client, lead, campaign)[("user:ben", "editor", "project:p1")]
    page = client.get(f"/ui/review-items/{ben['id']}")
    assert "Hand it on" in text(page)
    url = f"/ui/review-items/{ben['id']}/reassign"
    refused = client.post(url, data={"to": "user:ben", "reason": "he knows", "form_token": form_token(page)})
    assert refused.status_code == 422 and "cannot review their own access" in text(refused)
    assert 'value="he knows"' in text(refused), "what was typed stays in the form"
    handed = client.post(url, data={"to": "user:mia", "reason": "Ben's manager knows",
                                    "form_token": form_token(page)})
    assert handed.status_code == 302
    state = client.get(f"/v1/review-items/{ben['id']}", headers=lead).get_json()
    assert state["reviewer"] == "user:mia" and state["assignment_note"] == "Ben's manager knows"
    assert client.get(f"/ui/review-items/{ben['id']}").status_code == 404, "no longer Owen's to see"


@pytest.mark.parametrize("to, shown", [("group:team", "is a group; only a user can review"),
                                       ("user:cat", "is disabled; only an active user can review"),
                                       ("user:nobody", "is not in the directory")])
def test_a_hand_on_nobody_could_decide_is_refused_on_the_page(client, lead, campaign, token_for, to, shown):
    sign_in(client, token_for("user:owen"))
    ben = owen_items(client, lead, campaign)[("user:ben", "editor", "project:p1")]
    page = client.get(f"/ui/review-items/{ben['id']}")
    refused = client.post(f"/ui/review-items/{ben['id']}/reassign",
                          data={"to": to, "reason": "on leave", "form_token": form_token(page)})
    assert refused.status_code == 422 and shown in text(refused) and 'aria-invalid="true"' in text(refused)
    assert client.get(f"/v1/review-items/{ben['id']}", headers=lead).get_json()["reviewer"] == "user:owen"


@pytest.mark.parametrize("data, field", [({"to": "user:m\x00ia", "reason": "x"}, "to"),
                                         ({"to": "user:mia", "reason": "x\x00"}, "reason"),
                                         ({"to": "user:mia", "reason": "r" * 4001}, "reason")])
def test_a_hand_on_form_with_nul_or_too_much_text_shows_the_form_again(client, lead, campaign, token_for, data,
                                                                       field):
    sign_in(client, token_for("user:owen"))
    ben = owen_items(client, lead, campaign)[("user:ben", "editor", "project:p1")]
    page = client.get(f"/ui/review-items/{ben['id']}")
    refused = client.post(f"/ui/review-items/{ben['id']}/reassign", data={**data, "form_token": form_token(page)})
    assert refused.status_code == 400 and "Hand it on" in text(refused)
    assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', text(refused))


def test_forms_and_filters_with_nul_are_refused_on_their_page(client, lead, campaign, token_for, admin):
    """On PostgreSQL each of these was a 500."""
    sign_in(client, token_for("user:owen"))
    ben = owen_items(client, lead, campaign)[("user:ben", "editor", "project:p1")]
    page = client.get(f"/ui/review-items/{ben['id']}")
    refused = client.post(f"/ui/review-items/{ben['id']}/decision",
                          data={"decision": "revoke", "justification": "gone\x00", "form_token": form_token(page)})
    assert refused.status_code == 400 and "NUL" in text(refused) and "justification" in text(refused)
    sign_in(client, admin)
    for url in ("/ui/audit?actor=%00", "/ui/decisions?actor=a%00", "/ui/access?principal=user:a%00",
                f"/ui/audit?target={'t' * 256}", "/ui/decisions?cursor=" + "c" * 2000):
        response = client.get(url)  # the log and access filters say it above their form
        assert response.status_code == 400 and 'class="filters' in text(response), url
        assert "NUL" in text(response) or "at most" in text(response) or "cursor" in text(response), url
    for url in (f"/ui/campaigns/{campaign['id']}?reviewer=%00", "/ui/tokens?principal=%00", "/ui/reviews?cursor=%00"):
        response = client.get(url)
        assert response.status_code == 400 and "NUL" in text(response), url
    tokens = client.get("/ui/tokens")
    made = client.post("/ui/tokens", data={"principal": "user:ann", "description": "d\x00",
                                           "form_token": form_token(tokens)})
    assert made.status_code == 400 and "description" in text(made) and "New token" in text(made)
    long = client.post("/ui/tokens", data={"principal": "user:ann", "description": "d" * 256,
                                           "form_token": form_token(tokens)})
    assert long.status_code == 400 and "255" in text(long)
    revoked = client.post("/ui/tokens/ab%00cd/revoke", data={"form_token": form_token(tokens)})
    assert revoked.status_code == 400 and "NUL" in text(revoked)
    client.post("/ui/sign-out", data={"form_token": form_token(tokens)})
    emailed = client.post("/ui/sign-in/email", data={"email": "ann@example.com\x00"})
    assert emailed.status_code == 400 and "e-mail address" in text(emailed)


def test_a_security_lead_closes_signs_off_and_downloads_from_the_pages(client, lead, campaign, auditor):
    sign_in(client, lead)
    url = f"/ui/campaigns/{campaign['id']}"
    listing = client.get("/ui/campaigns")
    assert url in text(listing) and "Launch now" in text(listing)
    page = client.get(url)
    assert "0 of 6 decided" in text(page) and "Close now" in text(page) and "Sign off" not in text(page)
    assert re.search(r'>user:owen</a></td>\s*<td class="num" data-label="To decide">5</td>\s*'
                     r'<td class="num" data-label="Decided">0</td>', text(page))
    owens = text(client.get(f"{url}?reviewer=user:owen&status=pending"))
    assert "Items of user:owen" in owens and owens.count("<td>user:owen</td>") == 5 and "<td>user:lena</td>" not in owens
    confirm = client.get(f"{url}/close")
    token = form_token(confirm)
    early = client.post(f"{url}/sign-off", data={"statement": "all good", "form_token": token})
    assert early.status_code == 409 and "still open" in text(early)
    assert "Close: keep 0, revoke 6" in text(confirm)
    assert client.post(f"{url}/close", data={"form_token": token, "confirm": "close",
                                             "expected": hidden(confirm, "expected")}).status_code == 302
    closed = client.get(url)
    assert "6 of 6 decided" in text(closed) and "Sign-off statement" in text(closed)
    empty = client.post(f"{url}/sign-off", data={"statement": "  ", "form_token": token})
    assert empty.status_code == 400 and client.get(f"/v1/campaigns/{campaign['id']}",
                                                   headers=lead).get_json()["status"] == "closed"
    assert client.post(f"{url}/sign-off", data={"statement": "Reviewed with Owen", "form_token": token}
                       ).status_code == 302
    signed = client.get(url)
    assert "Reviewed with Owen" in text(signed) and "verified" in text(signed)
    reports = client.get(f"/v1/reports?campaign={campaign['id']}", headers=lead).get_json()["items"]
    assert len(reports) == 2 and f"/ui/reports/{reports[0]['id']}/workbook" in text(signed)
    with client.get(f"/ui/reports/{reports[0]['id']}/workbook") as workbook:
        assert workbook.status_code == 200 and workbook.data[:2] == b"PK"
    downloads = client.get("/v1/audit-events?action=report.downloaded", headers=auditor).get_json()["items"]
    assert [d["actor"] for d in downloads] == ["user:lena"]


def test_an_auditor_downloads_and_verifies_a_report(client, lead, campaign, auditor):
    client.post(f"/v1/campaigns/{campaign['id']}/close", headers=lead)
    client.post(f"/v1/campaigns/{campaign['id']}/sign-off", json={"statement": "done"}, headers=lead)
    sign_in(client, auditor)
    page = client.get("/ui/reports")
    report = client.get("/v1/reports", headers=auditor).get_json()["items"][0]
    assert report["sha256"][:16] in text(page)
    workbook, signature = download(client, f"/ui/reports/{report['id']}/workbook"), \
        download(client, f"/ui/reports/{report['id']}/signature")

    def verify(book: bytes, sig: bytes | None):
        files = {"workbook": (io.BytesIO(book), "report.xlsx")}
        if sig is not None:
            files["signature"] = (io.BytesIO(sig), "report.xlsx.sig.json")
        return client.post("/ui/reports/verify", data={"form_token": form_token(page), **files},
                           content_type="multipart/form-data")

    valid = verify(workbook, signature)
    assert valid.status_code == 200 and "<strong>Valid:</strong>" in text(valid)
    assert text(valid).index("<strong>Valid:</strong>") < text(valid).index("<table"), "the verdict is at the top"
    altered = verify(workbook[:-1] + bytes([workbook[-1] ^ 1]), signature)
    assert "<strong>Not valid:</strong>" in text(altered)
    assert verify(workbook, None).status_code == 400
    assert client.post(f"/ui/campaigns/{campaign['id']}/close", data={"form_token": form_token(page)}
                       ).status_code == 403, "auditors look; they do not manage campaigns"


def download(client, url: str) -> bytes:
    with client.get(url) as response:
        assert response.status_code == 200
        return response.data


def test_signing_out_revokes_a_web_session_but_not_a_pasted_api_token(client, mail, lead, make_principal):
    make_principal("user:owen", name="Owen", email="owen@example.com")
    client.post("/ui/sign-in/email", data={"email": "owen@example.com"})
    link = links_in(mail[-1][1])[0].removeprefix(PUBLIC_URL)
    confirm = client.get(link)
    signed_in = client.post("/ui/sign-in/link", data={"token": hidden(confirm, "token"), "next": "/ui/"})
    session_cookie = re.search(r"accessreview_session=([^;]+)", signed_in.headers["Set-Cookie"]).group(1)
    assert client.get("/ui/").status_code == 200
    signed_out = client.post("/ui/sign-out")
    assert signed_out.status_code == 302 and "accessreview_session=;" in signed_out.headers["Set-Cookie"]
    client.set_cookie("accessreview_session", session_cookie, path="/ui")
    assert client.get("/ui/").status_code == 302, "the old cookie no longer signs anyone in"
    assert client.get("/v1/review-items?reviewer=me",
                      headers={"Authorization": f"Bearer {session_cookie}"}).status_code == 401

    sign_in(client, lead)
    client.post("/ui/sign-out")
    assert client.get("/v1/campaigns", headers=lead).status_code == 200, "an API token outlives a page's sign-out"


def test_a_link_a_minute_at_most_however_often_the_form_is_sent(client, mail, directory, clock):  # noqa: F811
    for _ in range(3):
        assert "Check your e-mail" in text(client.post("/ui/sign-in/email", data={"email": "ann@example.com"}))
    assert len(mail) == 1
    clock.advance(seconds=61)
    client.post("/ui/sign-in/email", data={"email": "ann@example.com"})
    assert len(mail) == 2 and links_in(mail[0][1]) != links_in(mail[1][1])
    assert client.get(links_in(mail[0][1])[0].removeprefix(PUBLIC_URL)).status_code == 200, "the first still works"


def test_asking_for_a_link_tells_nobody_who_has_an_account(client, mail, directory, unchanged):  # noqa: F811
    answers = []
    with unchanged():
        for address in ("nobody@example.com", "cat@example.com"):  # unknown; a disabled user
            answers.append(client.post("/ui/sign-in/email", data={"email": address}))
    assert [a.status_code for a in answers] == [200, 200] and mail == []
    assert all("If an active account has the address" in text(a) for a in answers)
    bad = client.post("/ui/sign-in/email", data={"email": "not an address"})
    assert bad.status_code == 400 and 'aria-invalid="true"' in text(bad)
    assert client.get("/ui/sign-in/link?token=ar_0_made-up").status_code == 410


def test_signing_in_never_sends_anyone_to_another_site(client, token_for):
    owen = token_for("user:owen")
    for elsewhere in ("https://evil.example/", "//evil.example/ui", "/v1/campaigns", "/ui\\\\evil.example"):
        assert sign_in(client, owen, elsewhere).headers["Location"] == "/ui/"
    wrong = client.post("/ui/sign-in/token", data={"token": "ar_nothing_like_it"})
    assert wrong.status_code == 401 and "unknown, revoked or expired" in text(wrong)


def test_bad_addresses_get_a_page_that_says_so(client, lead, campaign):
    sign_in(client, lead)
    for url, status in (("/ui/reviews?campaign=abc", 400), ("/ui/reviews?status=everything", 400),
                        ("/ui/reviews?page=made-up", 400), (f"/ui/campaigns/{campaign['id']}?cursor=x", 400),
                        ("/ui/review-items/99999999999", 404), ("/ui/campaigns/424242", 404),
                        ("/ui/reports/424242/workbook", 404)):
        response = client.get(url)
        assert response.status_code == status, url
        assert response.mimetype == "text/html" and 'class="problem"' in text(response), url


DEFINITION_FORM = {"name": "Acme by owners, then managers", "subtrees": "organization:acme\n",
                   "resource_types": ["project", "document"], "roles": "editor viewer",
                   "principal_kinds": ["user", "group"], "reviewer_rule": "resource_owner", "stage_rule": "manager",
                   "fallback_reviewer": "user:lena", "duration_days": "21", "days_before_due": "7, 3",
                   "on_due_day": "on", "justify_revoke": "on", "justify_keep": "on", "escalate_after": "2",
                   "escalate_to": "fallback", "on_no_response": "recommendation", "unused_days": "60",
                   "schedule": "cron", "cron": "0 9 1 1,4,7,10 *", "timezone": "Europe/Paris"}


def test_a_security_lead_defines_a_campaign_with_the_form(client, lead, auditor, directory, unchanged):  # noqa: F811
    sign_in(client, lead)
    new = client.get("/ui/campaign-definitions/new")
    token = form_token(new)
    assert re.findall(r'name="resource_types" value="(\w+)"', text(new)) == ["document", "invoice", "organization",
                                                                              "project", "todo"], "the directory's types"
    with unchanged():
        bad_cron = client.post("/ui/campaign-definitions", data={**DEFINITION_FORM, "cron": "every tuesday",
                                                                 "form_token": token})
        assert bad_cron.status_code == 400 and "cron" in text(bad_cron)
        assert 'value="Acme by owners, then managers"' in text(bad_cron), "what was typed stays in the form"
        ghost = client.post("/ui/campaign-definitions", data={**DEFINITION_FORM, "fallback_reviewer": "user:ghost",
                                                              "form_token": token})
        assert ghost.status_code == 422 and "user:ghost is not a known principal" in text(ghost)
        undecided = client.post("/ui/campaign-definitions", data={**DEFINITION_FORM, "on_no_response": "",
                                                                  "form_token": token})
        assert undecided.status_code == 400
        assert re.search(r'id="on_no_response"[^>]*aria-invalid="true"[\s\S]*?</select>\s*<p class="field-error">'
                         r"Please fill this in.", text(undecided)), "said beside the field"
        several = client.post("/ui/campaign-definitions", data={**DEFINITION_FORM, "name": "", "duration_days": "0",
                                                                "cron": "every tuesday", "form_token": token})
        body = text(several)
        assert several.status_code == 400 and "Not saved: 3 problems" in body and body.count('class="field-error"') == 3
        assert "Please fill this in." in body and "^" not in body.split("<main")[1], "in words, all at once"
    created = client.post("/ui/campaign-definitions", data={**DEFINITION_FORM, "form_token": token})
    assert created.status_code == 302
    [definition] = client.get("/v1/campaign-definitions", headers=lead).get_json()["items"]
    assert definition["scope"] == {"subtrees": ["organization:acme"], "resources": [],
                                   "resource_types": ["project", "document"], "roles": ["editor", "viewer"],
                                   "principal_kinds": ["user", "group"], "membership_groups": None}
    assert definition["reviewer"] == {"rule": "resource_owner", "principal": None}
    assert definition["stages"] == [{"rule": "manager", "principal": None}]
    assert (definition["duration_days"], definition["on_no_response"]) == (21, "recommendation")
    assert definition["reminders"] == {"days_before_due": [7, 3], "on_due_day": True, "daily_overdue": False}
    assert definition["justification"] == {"revoke": True, "keep": True, "keep_against_revoke_advice": False}
    assert definition["escalation"] == {"after_days_overdue": 2, "to": "fallback"}
    assert definition["schedule"]["cron"] == "0 9 1 1,4,7,10 *" and definition["schedule"]["timezone"] == "Europe/Paris"
    assert definition["recommendation"] == {"unused_days": 60}

    listing = client.get("/ui/campaigns")
    assert "Pause schedule" in text(listing)
    pause = f"/ui/campaign-definitions/{definition['id']}/schedule"
    assert client.post(pause, data={"enabled": "false", "form_token": token}).status_code == 302
    assert client.get(f"/v1/campaign-definitions/{definition['id']}", headers=lead).get_json()["enabled"] is False
    assert "paused" in text(client.get("/ui/campaigns")) and "Resume schedule" in text(client.get("/ui/campaigns"))
    client.post(pause, data={"enabled": "true", "form_token": token})
    assert client.get(f"/v1/campaign-definitions/{definition['id']}", headers=lead).get_json()["enabled"] is True

    sign_in(client, auditor)
    assert client.get("/ui/campaign-definitions/new").status_code == 403
    assert client.post(pause, data={"enabled": "false", "form_token": form_token(client.get("/ui/audit"))}
                       ).status_code == 403
    assert "New definition" not in text(client.get("/ui/campaigns"))


def test_an_auditor_reads_and_verifies_the_audit_trail(client, lead, campaign, auditor, portal, db):
    from test_audit import tamper

    sign_in(client, auditor)
    page = client.get("/ui/audit?action=campaign.launched")
    seqs = re.findall(r'<td class="num">(\d+)</td>', text(page))
    assert page.status_code == 200 and len(seqs) == 1 and "<td>campaign.launched</td>" in text(page)
    intact = client.post("/ui/audit/verify", data={"form_token": form_token(page)})
    assert "The chain is intact" in text(intact)
    tamper(db, "UPDATE audit_events SET actor = 'user:mallory' WHERE seq = 2")
    broken = client.post("/ui/audit/verify", data={"form_token": form_token(page)})
    assert "The chain is broken</strong> at seq 2" in text(broken) and "edited" in text(broken)
    assert client.get("/ui/audit?since=yesterday").status_code == 400
    assert client.put("/v1/principals/user:ann", json={"name": "Ann Smith", "email": "ann@example.com",
                                                       "manager": "user:mia"}, headers=portal).status_code == 200
    edit = text(client.get("/ui/audit?action=principal.updated&target=user:ann"))
    assert "name: Ann → Ann Smith" in edit and "email:" not in edit, "an edit shows only what changed"

    sign_in(client, lead)  # security leads read it too
    assert client.get("/ui/audit").status_code == 200


def test_an_auditor_signs_reports_of_access_and_decisions_from_the_page(client, auditor, portal, campaign, clock):
    client.post("/v1/authorize", json={"actor": "user:ann", "action": "read", "resource": "project:p1"},
                headers=portal)
    sign_in(client, auditor)
    token = form_token(client.get("/ui/reports"))
    unknown = client.post("/ui/reports/access", data={"resources": "organization:acme\nproject:nowhere",
                                                      "form_token": token})
    assert unknown.status_code == 400 and "unknown resources: project:nowhere" in text(unknown)
    assert "project:nowhere" in text(unknown), "what was typed stays in the form"
    backwards = client.post("/ui/reports/decisions", data={"first_day": "2026-03-02", "last_day": "2026-03-01",
                                                          "form_token": token})
    assert backwards.status_code == 400 and "later than since" in text(backwards)
    for first, last in (("March", "2026-03-02"), ("2026-03-02", "9999-12-31")):
        assert client.post("/ui/reports/decisions", data={"first_day": first, "last_day": last,
                                                          "form_token": token}).status_code == 400
    assert client.get("/v1/reports", headers=auditor).get_json()["items"] == []

    assert client.post("/ui/reports/access", data={"resources": "organization:acme", "form_token": token}
                       ).status_code == 302
    assert client.post("/ui/reports/decisions", data={"first_day": "2026-03-02", "last_day": "2026-03-02",
                                                      "form_token": token}).status_code == 302
    made = client.get("/v1/reports", headers=auditor).get_json()["items"]
    assert [r["kind"] for r in made] == ["access", "decisions"]
    assert made[1]["parameters"]["since"].startswith("2026-03-02T00:00:00")
    assert made[1]["parameters"]["until"].startswith("2026-03-03T00:00:00")
    page = text(client.get("/ui/reports"))
    assert all(f"/ui/reports/{r['id']}/workbook" in page for r in made)


def test_a_reviewer_decides_ticked_items_at_once_all_or_nothing(client, lead, campaign, token_for, unchanged):
    sign_in(client, token_for("user:owen"))
    queue = f"/ui/reviews?campaign={campaign['id']}"
    page = client.get(queue)
    owens = owen_items(client, lead, campaign)
    ticked = [owens[("user:ann", "editor", "project:p1")]["id"], owens[("user:ben", "editor", "project:p1")]["id"]]
    assert all(f'name="items" value="{i}" aria-label="Tick item {i}:' in text(page) for i in ticked)
    lena_item = next(i for i in items(client, lead, campaign["id"]).values() if i["reviewer"] == "user:lena")
    with unchanged():
        unjustified = client.post("/ui/reviews", data={"items": ticked, "bulk": "decide", "decision": "revoke",
                                                       "next": queue, "form_token": form_token(page)})
        body = text(unjustified)
        assert unjustified.status_code == 422 and "nothing was saved" in body
        assert re.search(r'bulk-justification"[^>]*aria-invalid="true"', body), "marked at the bulk justification"
        assert body.index("bulk-justification") < body.index("a justification is required to revoke") \
            < body.index(f'id="item-{ticked[0]}"'), "the problem is said beside the field, above the items"
        assert all(f'value="{i}" aria-label="Tick item {i}:' in body and "checked" in body for i in ticked)
        nothing = client.post("/ui/reviews", data={"bulk": "decide", "decision": "keep", "next": queue,
                                                   "form_token": form_token(page)})
        assert nothing.status_code == 400 and "Tick the items to decide first." in text(nothing)
        undecided = client.post("/ui/reviews", data={"items": ticked, "bulk": "decide", "next": queue,
                                                     "justification": "kept text", "form_token": form_token(page)})
        assert undecided.status_code == 400 and "Choose keep or revoke for the ticked items." in text(undecided)
        assert ">kept text</textarea>" in text(undecided), "what was typed is kept"
        not_owens = client.post("/ui/reviews", data={"items": [*ticked, lena_item["id"]], "bulk": "decide",
                                                     "decision": "keep", "next": queue,
                                                     "form_token": form_token(page)})
        assert not_owens.status_code == 404 and "nothing was saved" in text(not_owens)
    decided = client.post("/ui/reviews", data={"items": ticked, "bulk": "decide", "decision": "revoke",
                                               "justification": "project over", "next": queue,
                                               "form_token": form_token(page)})
    assert decided.status_code == 302 and decided.headers["Location"] == f"{queue}&saved=2"
    assert "Saved 2 decisions." in text(client.get(decided.headers["Location"]))
    for item in ticked:
        state = client.get(f"/v1/review-items/{item}", headers=lead).get_json()
        assert (state["decision"], state["justification"], state["decided_by"]) == ("revoke", "project over",
                                                                                     "user:owen")


def test_accepting_the_recommendations_shows_each_outcome_first_then_records_each_reason(
        client, lead, campaign, token_for, unchanged):
    sign_in(client, token_for("user:owen"))
    page = client.get("/ui/reviews")
    owens = owen_items(client, lead, campaign)
    ticked = [item["id"] for item in owens.values()]
    with unchanged():
        confirm = client.post("/ui/reviews", data={"items": ticked, "bulk": "accept", "next": "/ui/reviews",
                                                   "form_token": form_token(page)})
        body = text(confirm)
        assert confirm.status_code == 200 and "Nothing is saved until you confirm" in body
    acceptable = [i for i in owens.values() if i["recommendation"] in ("keep", "revoke")]
    assert acceptable, "the fixture has recommendations"
    for item in acceptable:
        assert f'name="items" value="{item["id"]}"' in body and item["recommendation_reason"] in body
    for item in owens.values():
        if item not in acceptable:
            assert f"Item {item['id']} (" in body and "no recommendation to accept" in body
    done = client.post("/ui/reviews/accept", data={"items": [i["id"] for i in acceptable], "next": "/ui/reviews",
                                                   "form_token": form_token(page)})
    assert done.status_code == 302 and done.headers["Location"] == f"/ui/reviews?saved={len(acceptable)}"
    for item in acceptable:
        state = client.get(f"/v1/review-items/{item['id']}", headers=lead).get_json()
        assert (state["decision"], state["justification"], state["decided_by"]) == (
            item["recommendation"], item["recommendation_reason"], "user:owen")
    again = client.post("/ui/reviews/accept", data={"items": [acceptable[0]["id"]], "next": "/ui/reviews",
                                                    "form_token": form_token(page)})
    assert again.status_code == 409 and "None of those items has a recommendation left to accept." in text(again)


def test_the_queue_summarizes_filters_and_pages_keeping_the_filter(app, client, lead, campaign, token_for):
    sign_in(client, token_for("user:owen"))
    owens = owen_items(client, lead, campaign)
    body = text(client.get("/ui/reviews"))
    assert f"0 of {len(owens)}</strong> decided" in body
    revoke = sum(1 for i in owens.values() if i["recommendation"] == "revoke")
    assert f"{revoke} recommended revoke" in body
    no_advice = [i for i in owens.values() if i["recommendation"] not in ("keep", "revoke")]
    assert f"{len(no_advice)} no recommendation" in body
    listed = text(client.get("/ui/reviews?recommendation=none"))
    assert all(f'id="item-{i["id"]}"' in listed for i in no_advice) and listed.count('<article class="item"') == \
        len(no_advice), "'no recommendation' lists the items with nothing to accept"
    only_ann = text(client.get("/ui/reviews?person=ANN"))
    assert "user:ann" in only_ann and "user:ben" not in only_ann
    assert "user:ann" not in text(client.get("/ui/reviews?person=%25"))
    assert "project:p1" in text(client.get("/ui/reviews?resource=p1&role=editor"))
    app.config["PAGE_SIZE"] = 1
    first = text(client.get("/ui/reviews?resource=p1"))
    matching = sum(1 for key in owens if key[2] == "project:p1")
    assert f"Page 1 of {matching}" in first and "Previous page" not in first
    assert 'href="/ui/reviews?status=pending&amp;resource=p1&amp;page=2" rel="next"' in first, "the next page keeps the filter"
    last = text(client.get(f"/ui/reviews?resource=p1&page={matching + 5}"))
    assert f"Page {matching} of {matching}" in last and "Next page" not in last and "Previous page" in last


def test_recording_one_item_keeps_the_drafts_of_the_others(client, lead, campaign, token_for):
    sign_in(client, token_for("user:owen"))
    page = client.get("/ui/reviews")
    owens = owen_items(client, lead, campaign)
    ann, ben = owens[("user:ann", "editor", "project:p1")]["id"], owens[("user:ben", "editor", "project:p1")]["id"]
    refused = client.post("/ui/reviews", data={
        "record": ann, f"decision-{ann}": "revoke", f"decision-{ben}": "keep",
        f"justification-{ben}": "half-typed for ben", "next": "/ui/reviews", "form_token": form_token(page)})
    body = text(refused)
    assert refused.status_code == 422 and "a justification is required to revoke" in body
    assert re.search(rf'id="justification-{ann}"[^>]*aria-invalid="true"', body)
    assert ">half-typed for ben</textarea>" in body
    saved = client.post("/ui/reviews", data={
        "record": ann, f"decision-{ann}": "revoke", f"justification-{ann}": "left", f"decision-{ben}": "keep",
        f"justification-{ben}": "half-typed for ben", "next": "/ui/reviews", "form_token": form_token(page)})
    body = text(saved)
    assert saved.status_code == 200 and f"Saved for item {ann}." in body and ">half-typed for ben</textarea>" in body
    assert re.search(rf'name="decision-{ben}" value="keep"\s+checked', body)
    assert client.get(f"/v1/review-items/{ann}", headers=lead).get_json()["decision"] == "revoke"
    nul = client.post("/ui/reviews", data={"record": ben, f"decision-{ben}": "keep", f"justification-{ben}": "a\x00b",
                                           "next": "/ui/reviews", "form_token": form_token(page)})
    assert nul.status_code == 400 and "\x00" not in text(nul) and ">ab</textarea>" in text(nul)
    assert re.search(rf'id="justification-{ben}"[^>]*aria-invalid="true"', text(nul)), "said beside the field"
    too_many = client.post("/ui/reviews", data={"items": [str(i) for i in range(1, 1002)], "bulk": "decide",
                                                "decision": "keep", "next": "/ui/reviews", "form_token": form_token(page)})
    assert too_many.status_code == 413 and "Tick at most 1,000 items at once." in text(too_many)
    alone = client.post("/ui/reviews", data={"record": ben, f"decision-{ben}": "keep", "next": "/ui/reviews?status=all",
                                             "form_token": form_token(page)})
    assert alone.status_code == 302 and alone.headers["Location"] == f"/ui/reviews?status=all&done={ben}#item-{ben}"


def test_an_auditor_pages_through_the_decision_log(client, auditor, portal, campaign, token_for):
    for actor, resource in (("user:ann", "project:p1"), ("user:cat", "project:p1"), ("user:ann", "document:d1")):
        client.post("/v1/authorize", json={"actor": actor, "action": "read", "resource": resource}, headers=portal)
    sign_in(client, auditor)
    everything = text(client.get("/ui/decisions"))
    assert everything.count("<td>user:ann</td>") == 2 and everything.count("<td>user:cat</td>") == 1
    denied = text(client.get("/ui/decisions?actor=user:cat&allowed=false&resource="))
    assert "<td>user:cat</td>" in denied and "denied</span>" in denied and "<td>user:ann</td>" not in denied
    assert client.get("/ui/decisions?since=last+week").status_code == 400
    sign_in(client, token_for("user:owen"))
    assert client.get("/ui/decisions").status_code == 403


def test_what_people_typed_is_shown_as_text_never_as_markup(client, lead, campaign, token_for):
    sign_in(client, token_for("user:owen"))
    ann = owen_items(client, lead, campaign)[("user:ann", "editor", "project:p1")]
    page = client.get(f"/ui/review-items/{ann['id']}")
    client.post(f"/ui/review-items/{ann['id']}/decision", data={
        "decision": "keep", "justification": "<script>alert(1)</script>", "form_token": form_token(page)})
    shown = text(client.get(f"/ui/review-items/{ann['id']}"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown and "<script>" not in shown


def test_a_security_lead_explores_who_has_access_and_why(client, lead, directory, token_for):  # noqa: F811
    sign_in(client, lead)
    project = text(client.get("/ui/access?resource=project:p1"))
    # Ann (editor), Ben (editor, and viewer through group:team), Owen (admin of the organization).
    for who in ("user:ann", "user:ben", "user:owen"):
        assert f">{who}</a>" in project
    assert "user:cat" not in project.split("<tbody>")[1], "disabled: no permission at all"
    assert re.search(r"grant \d+: user:owen is admin on organization:acme", project)
    ben = text(client.get("/ui/access?principal=user:ben"))
    assert ">group:team</a>" in ben and ">document:d1</a>" in ben and ">project:p1</a>" in ben
    why = text(client.get("/ui/access?principal=user:cat&resource=document:d1&action=read"))
    assert "denied</span>" in why and "principal disabled" in why
    why = text(client.get("/ui/access?principal=user:ann&resource=document:d1&action=edit"))
    assert "allowed</span>" in why and "granted" in why
    typo = client.get("/ui/access?resource=project:nowhere&principal=user:ann&action=read")
    assert typo.status_code == 404, "said on the explorer's own page, the form kept"
    assert re.search(r'id="resource" name="resource" value="project:nowhere"[^>]*aria-invalid="true"', text(typo))
    assert 'id="resource-problem">project:nowhere is not in the directory' in text(typo)
    assert 'value="user:ann"' in text(typo) and 'value="read"' in text(typo)
    both = client.get("/ui/access?resource=not-a-key&principal=nobody")
    assert both.status_code == 400 and text(both).count('class="field-error"') == 2, "every problem at once"
    assert "^" not in text(both).split("<main")[1], "in words, not a pattern"
    denied = text(client.get("/ui/access?principal=user:ben&resource=organization:acme&action=read"))
    assert "denied</span>" in denied and "would allow it" in denied and "{" not in denied.split("<main")[1]
    sign_in(client, token_for("user:owen"))
    assert client.get("/ui/access?resource=project:p1").status_code == 403


def test_an_admin_makes_lists_and_revokes_tokens(client, admin, lead, make_principal, token_for, db):
    make_principal("service:portal", name="Client portal")
    sign_in(client, admin)
    page = client.get("/ui/tokens")
    assert page.status_code == 200 and "user:ada" in text(page) and "user:lena" in text(page)
    token = form_token(page)
    unknown = client.post("/ui/tokens", data={"principal": "service:ghost", "expires_in": "90d", "form_token": token})
    assert unknown.status_code == 422 and 'value="service:ghost"' in text(unknown)
    assert client.post("/ui/tokens", data={"principal": "service:portal", "expires_in": "soon",
                                           "form_token": token}).status_code == 400
    made = client.post("/ui/tokens", data={"principal": "service:portal", "expires_in": "90d",
                                           "description": "portal, production", "form_token": token})
    secret = re.search(r'<code class="secret">(ar_[^<]+)</code>', text(made)).group(1)
    assert client.get("/v1/directory/status", headers={"Authorization": f"Bearer {secret}"}).status_code == 403
    assert secret not in text(client.get("/ui/tokens")), "shown once"

    [lenas] = db.scalars(select(ServiceToken.id).where(ServiceToken.principal_key == "user:lena")).all()
    assert f"/ui/tokens/{lenas}/revoke" in text(client.get("/ui/tokens?principal=user:lena"))
    asked = text(client.get(f"/ui/tokens/{lenas}/revoke"))
    assert f"Revoke token <code>{lenas}</code> of user:lena?" in asked and "is refused from then on" in asked
    assert "the token you are signed in with" not in asked
    assert client.post(f"/ui/tokens/{lenas}/revoke", data={"form_token": token}).status_code == 302
    assert client.get("/v1/campaigns", headers=lead).status_code == 401, "revoked: it stops at once"
    assert "user:lena" not in text(client.get("/ui/tokens?principal=user:lena")).split("<tbody>")[1]
    assert "user:lena" in text(client.get("/ui/tokens?principal=user:lena&all=true")).split("<tbody>")[1]
    sign_in(client, token_for("user:lena", "security_lead"))
    assert client.get("/ui/tokens").status_code == 403, "admins only"
    sign_in(client, admin)
    [adas] = db.scalars(select(ServiceToken.id).where(ServiceToken.principal_key == "user:ada")).all()
    own = text(client.get(f"/ui/tokens/{adas}/revoke"))
    assert "This is the token you are signed in with." in own and "Revoke it and sign me out" in own
    out = client.post(f"/ui/tokens/{adas}/revoke", data={"form_token": form_token(client.get("/ui/tokens"))})
    assert out.status_code == 302 and out.headers["Location"] == "/ui/sign-in?revoked=own"
    assert "you are signed out" in text(client.get(out.headers["Location"]))
    assert "/ui/sign-in" in client.get("/ui/tokens").headers["Location"]


def hidden_fields(page) -> list[tuple[str, str]]:
    """A confirmation form's hidden fields, as a browser sends them back."""
    return re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', text(page))


def test_a_reviewer_decides_every_item_matching_the_filter_after_seeing_them(app, client, lead, campaign, token_for,
                                                                           unchanged, monkeypatch):
    sign_in(client, token_for("user:owen"))
    app.config["PAGE_SIZE"] = 1
    owens = owen_items(client, lead, campaign)
    users = sorted(i["id"] for key, i in owens.items() if key[0].startswith("user:"))  # what the filter matches
    queue = "/ui/reviews?person=user"
    page = client.get(queue)
    assert f"Select all {len(users)} items that match the filter, on every page" in text(page)
    assert text(page).count('name="items"') == 1, "one box on this page; the others are on other pages"
    sent = {"matching": "all", "next": queue, "form_token": form_token(page)}
    with unchanged():
        confirm = client.post("/ui/reviews", data={**sent, "bulk": "accept"})
        body = text(confirm)
        assert confirm.status_code == 200 and "Nothing is saved until you confirm" in body
        acceptable = [i for i in owens.values() if i["id"] in users and i["recommendation"] in ("keep", "revoke")]
        keeps = sum(1 for i in acceptable if i["recommendation"] == "keep")
        assert f"Accept the recommendation for {len(acceptable)} item" in body
        assert f"{keeps} kept,\n  {len(acceptable) - keeps} revoked" in body
        assert f"{len(users) - len(acceptable)} left out" in body
        assert sorted(int(v) for k, v in hidden_fields(confirm) if k == "items") == sorted(i["id"] for i in acceptable)
        undecided = client.post("/ui/reviews", data={**sent, "bulk": "decide", "justification": "kept text"})
        assert undecided.status_code == 400 and "Choose keep or revoke for the items that match." in text(undecided)
        assert ">kept text</textarea>" in text(undecided)
        nothing = client.post("/ui/reviews", data={**sent, "bulk": "accept", "next": "/ui/reviews?person=nobody"})
        assert nothing.status_code == 409 and "No item still to decide matches this filter." in text(nothing)
        monkeypatch.setattr("accessreview.web.reviews.MAX_TICKED", 2)
        capped = client.post("/ui/reviews", data={**sent, "bulk": "decide", "decision": "keep",
                                                  "justification": "still needed"})
        assert capped.status_code == 200 and f"{len(users)} items still to decide match your filter" in text(capped)
        assert [int(v) for k, v in hidden_fields(capped) if k == "items"] == users[:2], "the oldest first"
        monkeypatch.undo()
    accepted = client.post("/ui/reviews/accept", data=dict_of(hidden_fields(confirm)))
    assert accepted.status_code == 302 and accepted.headers["Location"] == f"{queue}&saved={len(acceptable)}"
    for item in acceptable:
        state = client.get(f"/v1/review-items/{item['id']}", headers=lead).get_json()
        assert (state["decision"], state["justification"]) == (item["recommendation"], item["recommendation_reason"])

    rest = [i for i in users if i not in {a["id"] for a in acceptable}]
    confirm = client.post("/ui/reviews", data={**sent, "bulk": "decide", "decision": "keep",
                                               "justification": "still needed"})
    assert f"Keep {len(rest)} item" in text(confirm) and "still needed" in text(confirm)
    decided = client.post("/ui/reviews", data=dict_of(hidden_fields(confirm)))
    assert decided.status_code == 302 and decided.headers["Location"] == f"{queue}&saved={len(rest)}"
    for item in rest:
        state = client.get(f"/v1/review-items/{item}", headers=lead).get_json()
        assert (state["decision"], state["justification"], state["decided_by"]) == ("keep", "still needed", "user:owen")


def dict_of(fields: list[tuple[str, str]]) -> dict[str, list[str]]:
    sent: dict[str, list[str]] = {}
    for name, value in fields:
        sent.setdefault(name, []).append(value)
    return sent


def signed_in_by_link(app, mail, address: str):
    """A browser of its own, signed in with a link e-mailed to ``address``; and that session's token."""
    browser = app.test_client()
    browser.post("/ui/sign-in/email", data={"email": address})
    confirm = browser.get(links_in(mail[-1][1])[0].removeprefix(PUBLIC_URL))
    signed_in = browser.post("/ui/sign-in/link", data={"token": hidden(confirm, "token"), "next": "/ui/"})
    return browser, re.search(r"accessreview_session=([^;]+)", signed_in.headers["Set-Cookie"]).group(1)


def test_signing_out_everywhere_says_what_it_revokes_then_ends_every_session_of_ones_own(
        app, client, mail, clock, lead, make_principal, token_for, unchanged):
    make_principal("user:owen", name="Owen", email="owen@example.com")
    laptop, laptop_session = signed_in_by_link(app, mail, "owen@example.com")
    clock.advance(minutes=2)
    phone, phone_session = signed_in_by_link(app, mail, "owen@example.com")
    clock.advance(minutes=2)
    client.post("/ui/sign-in/email", data={"email": "owen@example.com"})  # a link left unused
    api = token_for("user:owen")
    unused_link = links_in(mail[-1][1])[0].removeprefix(PUBLIC_URL)
    with unchanged():
        confirm = phone.get("/ui/sign-out-everywhere")
        body = text(confirm)
        assert confirm.status_code == 200 and "<strong>2</strong> web sessions" in body
        assert "<strong>1</strong> sign-in link" in body and "this one included" in body
        assert "Also revoke my 1 API token" in body and "stop working" in body
    done = phone.post("/ui/sign-out-everywhere", data={"form_token": form_token(confirm)})
    assert done.status_code == 200 and "You are signed out everywhere: 3 of your sessions" in text(done)
    assert "accessreview_session=;" in done.headers["Set-Cookie"]
    for browser in (laptop, phone):
        assert browser.get("/ui/reviews").status_code == 302, "every browser is asked to sign in again"
    for token in (laptop_session, phone_session):
        assert client.get("/v1/review-items?reviewer=me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert client.get("/v1/review-items?reviewer=me", headers=api).status_code == 200, "API tokens only when asked"
    assert client.get("/v1/review-items?reviewer=me", headers=lead).status_code == 200, "nobody else's"
    assert "This sign-in link no longer works" in text(client.get(unused_link)), "the unused link is revoked"

    sign_in(client, api)  # signed in with the API token itself: told so, and it goes when ticked
    confirm = client.get("/ui/sign-out-everywhere")
    assert "it is signed in with one of your API tokens" in text(confirm)
    done = client.post("/ui/sign-out-everywhere", data={"api_tokens": "revoke", "form_token": form_token(confirm)})
    assert done.status_code == 200 and "1 of your sessions, links and tokens were revoked" in text(done)
    assert client.get("/v1/review-items?reviewer=me", headers=api).status_code == 401
