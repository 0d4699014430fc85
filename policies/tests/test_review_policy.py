"""Review items and review queues (policies/service.polar): the reviewer decides; security leads
override and reassign; auditors and security leads look; nobody else learns anything."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from accessreview.authz.index import DirectoryIndex, GrantRecord, PrincipalRecord, ResourceRecord

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
SYSTEM = "system:accessreview"


@pytest.fixture
def ask(policy):
    people = {"user:rita": "active", "user:lead": "active", "user:aud": "active", "user:off": "disabled",
              "user:nobody": "active", "user:portal": "active"}
    roles = {"user:lead": "security_lead", "user:aud": "auditor", "user:portal": "portal_client"}
    index = DirectoryIndex([PrincipalRecord(k, "user", s) for k, s in people.items()],
                           [ResourceRecord(SYSTEM, "system")],
                           [GrantRecord(n, k, r, SYSTEM) for n, (k, r) in enumerate(roles.items())], [])

    def ask(actor: str, permission: str, kind: str = "review_item", reviewer: str = "user:rita") -> bool:
        key = f"{kind}:1"
        record = ResourceRecord(key, kind, SYSTEM)
        return policy.is_allowed(index, NOW, actor, permission, key, {key: (record, {"reviewer": reviewer})})

    return ask


@pytest.mark.parametrize("permission", ["view", "decide", "reassign"])
def test_the_reviewer_of_an_item(ask, permission):
    assert ask("user:rita", permission)
    assert not ask("user:nobody", permission)
    assert not ask("user:rita", permission, reviewer="user:nobody")


def test_the_reviewer_cannot_override(ask):
    assert not ask("user:rita", "override")


@pytest.mark.parametrize("permission, allowed", [("view", True), ("override", True), ("reassign", True),
                                                 ("decide", False)])
def test_a_security_lead(ask, permission, allowed):
    assert ask("user:lead", permission) is allowed


@pytest.mark.parametrize("permission, allowed", [("view", True), ("override", False), ("reassign", False),
                                                 ("decide", False)])
def test_an_auditor(ask, permission, allowed):
    assert ask("user:aud", permission) is allowed


def test_the_portal_client_sees_no_review_item(ask):
    assert not any(ask("user:portal", p) for p in ("view", "decide", "override", "reassign"))


def test_a_disabled_reviewer_holds_nothing(ask):
    assert not any(ask("user:off", p, reviewer="user:off") for p in ("view", "decide", "reassign"))


def test_review_queues(ask):
    assert ask("user:rita", "view", "review_queue")
    assert not ask("user:nobody", "view", "review_queue")
    assert ask("user:lead", "view", "review_queue") and ask("user:aud", "view", "review_queue")
    assert not ask("user:portal", "view", "review_queue")
    assert not ask("user:off", "view", "review_queue", reviewer="user:off")


# -- the web pages: people open them, programs do not -------------------------------------------------

@pytest.fixture
def may_open(policy):
    people = {"user:rita": "active", "user:off": "disabled", "service:portal": "active", "service:ops": "active",
              "user:lead": "active", "user:aud": "active", "user:root": "active", "user:admin-off": "disabled"}
    roles = {"service:portal": "portal_client", "service:ops": "admin", "user:lead": "security_lead",
             "user:aud": "auditor", "user:root": "admin", "user:admin-off": "admin"}
    index = DirectoryIndex([PrincipalRecord(k, k.split(":")[0], s) for k, s in people.items()],
                           [ResourceRecord(SYSTEM, "system")],
                           [GrantRecord(n, k, r, SYSTEM) for n, (k, r) in enumerate(roles.items())], [])

    def may_open(actor: str) -> bool:
        key = "pages:ui"
        return policy.is_allowed(index, NOW, actor, "open", key, {key: (ResourceRecord(key, "pages", SYSTEM), {})})

    return may_open


@pytest.mark.parametrize("person", ["user:rita", "user:lead", "user:aud", "user:root"])
def test_an_active_person_opens_the_pages_whatever_their_roles(may_open, person):
    assert may_open(person)


@pytest.mark.parametrize("program", ["service:portal", "service:ops"])
def test_a_program_opens_no_page_even_as_admin(may_open, program):
    assert not may_open(program)


@pytest.mark.parametrize("disabled", ["user:off", "user:admin-off"])
def test_a_disabled_person_opens_no_page(may_open, disabled):
    assert not may_open(disabled)


def test_nobody_unknown_opens_the_pages(may_open):
    assert not may_open("user:ghost")
