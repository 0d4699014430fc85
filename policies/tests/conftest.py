"""Shared fixtures for the policy tests: the loaded policy and a terse directory builder.

Every test evaluates the real policy files in ``policies/`` (found from this file, never from the
working directory) against a small, fixed resource tree plus the grants the test describes:

    organization:acme                      organization:globex
    ├── project:apollo                     ├── project:hermes
    │   └── document:roadmap               │   └── document:brief
    └── invoice:acme-0001                  └── invoice:globex-0001

    system:accessreview

A test writes ``world("user:alice admin organization:acme")`` and gets back an ``Authz`` that answers
``can(actor, action, resource)`` and ``actions(actor, resource)`` at a fixed ``NOW``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import pytest

from accessreview.authz.index import DirectoryIndex, GrantRecord, PrincipalRecord, ResourceRecord
from accessreview.authz.policy import Policy
from accessreview.authz.properties import given

POLICY_DIR = Path(__file__).resolve().parents[1]

NOW = datetime(2025, 6, 2, 9, 30, tzinfo=timezone.utc)

RESOURCES = (
    ResourceRecord("organization:acme", "organization"),
    ResourceRecord("project:apollo", "project", "organization:acme"),
    ResourceRecord("document:roadmap", "document", "project:apollo"),
    ResourceRecord("invoice:acme-0001", "invoice", "organization:acme"),
    ResourceRecord("organization:globex", "organization"),
    ResourceRecord("project:hermes", "project", "organization:globex"),
    ResourceRecord("document:brief", "document", "project:hermes"),
    ResourceRecord("invoice:globex-0001", "invoice", "organization:globex"),
    ResourceRecord("system:accessreview", "system"),
)

# A grant is "principal role resource", or (principal, role, resource, expires_at) when it expires.
GrantSpec = str | tuple[str, str, str, datetime | None]


class Authz:
    """One directory at one moment, evaluated by the policy."""

    def __init__(self, policy: Policy, index: DirectoryIndex, now: datetime) -> None:
        self.policy = policy
        self.index = index
        self.now = now

    def can(self, actor: str, action: str, resource: str, *, properties: dict | None = None,
            subject_properties: dict | None = None, context: dict | None = None) -> bool:
        """``properties`` (of the resource), ``subject_properties`` and ``context``: as a check's request gives them."""
        return self.policy.is_allowed(self.index, self.now, actor, action, resource,
                                      given=given(subject_properties, properties, context))

    def actions(self, actor: str, resource: str) -> set[str]:
        return self.policy.authorized_actions(self.index, self.now, actor, resource)


def _kind(principal: str) -> str:
    return principal.split(":", 1)[0]


def build_index(
    grants: Iterable[GrantSpec] = (),
    *,
    members: Iterable[str] = (),
    disabled: Iterable[str] = (),
    principals: Iterable[str] = (),
    resources: Iterable[ResourceRecord] = (),
    attributes: Mapping[str, Mapping[str, Any]] | None = None,
) -> DirectoryIndex:
    """Principals are created for every key mentioned, with their kind taken from the key's prefix.

    ``members`` are "member in group" strings, e.g. ``"user:alice in group:finance"``; ``attributes``
    are the directory's attributes of principals and resources, by key.
    """
    grant_records = []
    for number, spec in enumerate(grants, start=1):
        if isinstance(spec, str):
            principal, role, resource = spec.split()
            expires_at = None
        else:
            principal, role, resource, expires_at = spec
        grant_records.append(GrantRecord(number, principal, role, resource, expires_at))
    memberships = []
    for spec in members:
        member, keyword, group = spec.split()
        assert keyword == "in", f"membership must read 'member in group': {spec!r}"
        memberships.append((group, member))
    disabled = set(disabled)
    keys = {g.principal for g in grant_records} | set(principals) | disabled
    keys |= {key for pair in memberships for key in pair}
    attributes = dict(attributes or {})
    keys |= {key for key in attributes if _kind(key) in ("user", "service", "group")}
    principal_records = [
        PrincipalRecord(key, _kind(key), "disabled" if key in disabled else "active") for key in sorted(keys)
    ]
    resource_records = [*RESOURCES, *resources]
    resource_keys = {r.key for r in resource_records}
    return DirectoryIndex(principal_records, resource_records, grant_records, memberships,
                          principal_attributes={k: v for k, v in attributes.items() if k in keys},
                          resource_attributes={k: v for k, v in attributes.items() if k in resource_keys})


@pytest.fixture(scope="session")
def policy() -> Policy:
    return Policy.load(POLICY_DIR)


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture
def world(policy: Policy) -> Callable[..., Authz]:
    """``world(*grants, members=(), disabled=(), principals=(), resources=(), now=NOW) -> Authz``.

    ``using=`` evaluates with another ``Policy`` instead of the real one.
    """

    def make(*grants: GrantSpec, now: datetime = NOW, using: Policy | None = None, **directory) -> Authz:
        return Authz(using or policy, build_index(grants, **directory), now)

    return make
