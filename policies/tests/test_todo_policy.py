"""Attribute rules (policies/portal.polar, ``Todo``): a todo is decided on what its check's request says
of it (its properties: ``ownerID``, ``department``, ``team``) and on what the directory holds of the user
(their department, and custom attributes such as ``team``), whether or not the directory holds the todo.

Resource tree and the ``world`` builder: see conftest.py. The todos below are held by the directory
only where a test says so.
"""

from __future__ import annotations

import pytest

from accessreview.authz.index import ResourceRecord

APOLLO = "project:apollo"
HERMES = "project:hermes"
TODO = "todo:call-the-client"  # not in the directory unless a test adds it
SYNCED = ResourceRecord("todo:synced", "todo", APOLLO)
ALL = ("read", "edit", "delete")


class TestOwnerOfATodo:
    @pytest.mark.parametrize("action", ALL)
    def test_its_owner_may_do_anything_with_it(self, world, action):
        authz = world(principals=["user:alice", "user:bob"])
        assert authz.can("user:alice", action, TODO, properties={"ownerID": "alice"})
        assert not authz.can("user:bob", action, TODO, properties={"ownerID": "alice"})

    def test_the_owner_is_named_by_id_not_by_key(self, world):
        authz = world(principals=["user:alice"])
        assert authz.can("user:alice", "edit", TODO, properties={"ownerID": "alice"})
        assert not authz.can("user:alice", "edit", TODO, properties={"ownerID": "user:alice"})

    def test_a_disabled_owner_may_do_nothing(self, world):
        authz = world(principals=["user:alice"], disabled=["user:carl"])
        assert authz.can("user:alice", "read", TODO, properties={"ownerID": "alice"})
        assert not authz.can("user:carl", "read", TODO, properties={"ownerID": "carl"})

    def test_without_properties_nobody_owns_it(self, world):
        authz = world(principals=["user:alice"])
        assert not authz.can("user:alice", "read", TODO)
        assert not authz.can("user:alice", "read", TODO, properties={})

    def test_a_service_owns_nothing_by_this_rule(self, world):
        authz = world(principals=["service:billing", "user:billing"])
        assert authz.can("user:billing", "read", TODO, properties={"ownerID": "billing"})
        assert not authz.can("service:billing", "read", TODO, properties={"ownerID": "billing"})

    def test_an_undeclared_type_is_denied_whatever_it_says(self, world):
        authz = world(principals=["user:alice"])
        assert authz.can("user:alice", "read", TODO, properties={"ownerID": "alice"})
        assert not authz.can("user:alice", "read", "task:call-the-client", properties={"ownerID": "alice"})


class TestSharedWithADepartment:
    def test_the_departments_users_may_read_it_only(self, world):
        authz = world(attributes={"user:dina": {"department": "Tax"}, "user:erin": {"department": "Audit"}})
        shared = {"department": "Tax"}
        assert authz.can("user:dina", "read", TODO, properties=shared)
        assert not authz.can("user:dina", "edit", TODO, properties=shared)
        assert not authz.can("user:erin", "read", TODO, properties=shared)

    def test_no_department_on_either_side_matches_nothing(self, world):
        authz = world(principals=["user:frank"], attributes={"user:dina": {"department": "Tax"}})
        assert not authz.can("user:frank", "read", TODO, properties={})
        assert not authz.can("user:dina", "read", TODO, properties={})
        assert not authz.can("user:frank", "read", TODO, properties={"department": "Tax"})

    def test_the_subjects_properties_layer_over_the_directory(self, world):
        authz = world(attributes={"user:erin": {"department": "Audit"}})
        assert authz.can("user:erin", "read", TODO, properties={"department": "Tax"},
                         subject_properties={"department": "Tax"})
        assert not authz.can("user:erin", "read", TODO, properties={"department": "Tax"},
                             subject_properties={"email": "erin@example.com"})


class TestSharedWithATeam:
    """``team`` is a custom attribute of the user: the directory's ``attributes`` of the principal."""

    def test_the_teams_users_may_read_it_only(self, world):
        authz = world(attributes={"user:dina": {"team": "north", "department": "Tax"},
                                  "user:erin": {"team": "south", "department": "Tax"}})
        shared = {"team": "north"}
        assert authz.can("user:dina", "read", TODO, properties=shared)
        assert not authz.can("user:dina", "edit", TODO, properties=shared)
        assert not authz.can("user:erin", "read", TODO, properties=shared)

    def test_no_team_on_either_side_matches_nothing(self, world):
        authz = world(principals=["user:frank"], attributes={"user:dina": {"team": "north"}})
        assert not authz.can("user:frank", "read", TODO, properties={})
        assert not authz.can("user:dina", "read", TODO, properties={})
        assert not authz.can("user:frank", "read", TODO, properties={"team": "north"})

    def test_a_disabled_member_may_not_read_it(self, world):
        authz = world(disabled=["user:carl"], attributes={"user:carl": {"team": "north"}})
        assert not authz.can("user:carl", "read", TODO, properties={"team": "north"})

    def test_the_subjects_properties_layer_over_the_directory(self, world):
        authz = world(attributes={"user:erin": {"team": "south"}})
        assert authz.can("user:erin", "read", TODO, properties={"team": "north"},
                         subject_properties={"team": "north"})
        assert not authz.can("user:erin", "read", TODO, properties={"team": "south"},
                             subject_properties={"team": "north"})
        assert authz.can("user:erin", "read", TODO, properties={"team": "south"},
                         subject_properties={"email": "erin@example.com"})


class TestATodoTheDirectoryHolds:
    def test_its_projects_roles_reach_it(self, world):
        authz = world(f"user:vera viewer {APOLLO}", f"user:ed editor {APOLLO}", f"user:otto viewer {HERMES}",
                      resources=[SYNCED])
        assert authz.can("user:vera", "read", SYNCED.key) and not authz.can("user:vera", "edit", SYNCED.key)
        assert authz.can("user:ed", "edit", SYNCED.key)
        assert not authz.can("user:otto", "read", SYNCED.key)

    def test_its_directory_attributes_are_read_and_properties_layer_over_them(self, world):
        authz = world(principals=["user:alice", "user:bob"], resources=[SYNCED],
                      attributes={SYNCED.key: {"ownerID": "alice"}})
        assert authz.can("user:alice", "delete", SYNCED.key)
        assert not authz.can("user:bob", "delete", SYNCED.key)
        assert authz.can("user:bob", "delete", SYNCED.key, properties={"ownerID": "bob"})
        assert not authz.can("user:alice", "delete", SYNCED.key, properties={"ownerID": "bob"})

    def test_properties_never_move_it_to_another_project(self, world):
        authz = world(f"user:otto editor {HERMES}", resources=[SYNCED])
        assert not authz.can("user:otto", "edit", SYNCED.key, properties={"parent": HERMES})
        assert not authz.can("user:otto", "edit", TODO, properties={"parent": HERMES})
