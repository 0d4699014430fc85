"""The portal's role model (policies/portal.polar), rule by rule, each with allowed and denied cases.

Resource tree and the ``world`` builder: see conftest.py. Keys used below:
organization:acme > project:apollo > document:roadmap, organization:acme > invoice:acme-0001, and
the same shape under organization:globex (project:hermes, document:brief, invoice:globex-0001).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from accessreview.authz.index import ResourceRecord

ACME = "organization:acme"
GLOBEX = "organization:globex"
APOLLO = "project:apollo"
HERMES = "project:hermes"
ROADMAP = "document:roadmap"
BRIEF = "document:brief"
ACME_INVOICE = "invoice:acme-0001"
GLOBEX_INVOICE = "invoice:globex-0001"

ORG_PERMISSIONS = {"read", "manage_members", "view_billing"}
PROJECT_PERMISSIONS = {"read", "upload", "manage"}
DOCUMENT_PERMISSIONS = {"read", "edit", "delete", "share"}
INVOICE_PERMISSIONS = {"read", "pay"}


# --- organization --------------------------------------------------------------------------------


class TestOrganization:
    def test_member_can_read(self, world):
        authz = world(f"user:alice member {ACME}", "user:bob member organization:globex")
        assert authz.can("user:alice", "read", ACME)
        assert not authz.can("user:bob", "read", ACME)

    def test_admin_is_member_so_can_read(self, world):
        authz = world(f"user:alice admin {ACME}")
        assert authz.can("user:alice", "read", ACME)
        assert not authz.can("user:alice", "read", GLOBEX)

    def test_account_manager_is_member_so_can_read(self, world):
        authz = world(f"user:alice account_manager {ACME}")
        assert authz.can("user:alice", "read", ACME)
        assert not authz.can("user:alice", "read", GLOBEX)

    def test_admin_is_billing_admin_so_can_view_billing(self, world):
        authz = world(f"user:alice admin {ACME}", f"user:bob member {ACME}")
        assert authz.can("user:alice", "view_billing", ACME)
        assert not authz.can("user:bob", "view_billing", ACME)

    def test_admin_can_manage_members(self, world):
        authz = world(f"user:alice admin {ACME}")
        assert authz.can("user:alice", "manage_members", ACME)

    @pytest.mark.parametrize("role", ["member", "billing_admin", "account_manager"])
    def test_only_admin_can_manage_members(self, world, role):
        authz = world(f"user:bob {role} {ACME}")
        assert not authz.can("user:bob", "manage_members", ACME)

    def test_billing_admin_can_view_billing(self, world):
        authz = world(f"user:carol billing_admin {ACME}")
        assert authz.can("user:carol", "view_billing", ACME)

    @pytest.mark.parametrize("role", ["member", "account_manager"])
    def test_member_and_account_manager_cannot_view_billing(self, world, role):
        authz = world(f"user:bob {role} {ACME}")
        assert not authz.can("user:bob", "view_billing", ACME)

    def test_billing_admin_is_not_member(self, world):
        authz = world(f"user:carol billing_admin {ACME}")
        assert not authz.can("user:carol", "read", ACME)


# --- project -------------------------------------------------------------------------------------


class TestProject:
    def test_org_admin_is_project_manager(self, world):
        authz = world(f"user:alice admin {ACME}")
        assert authz.can("user:alice", "manage", APOLLO)
        assert not authz.can("user:alice", "manage", HERMES)

    def test_org_account_manager_is_project_editor(self, world):
        authz = world(f"user:dave account_manager {ACME}")
        assert authz.can("user:dave", "upload", APOLLO)
        assert not authz.can("user:dave", "manage", APOLLO)
        assert not authz.can("user:dave", "upload", HERMES)

    def test_org_member_is_project_viewer(self, world):
        authz = world(f"user:bob member {ACME}")
        assert authz.can("user:bob", "read", APOLLO)
        assert not authz.can("user:bob", "upload", APOLLO)
        assert not authz.can("user:bob", "read", HERMES)

    def test_org_billing_admin_gets_nothing_on_projects(self, world):
        authz = world(f"user:carol billing_admin {ACME}")
        assert authz.actions("user:carol", APOLLO) == set()

    def test_manager_is_editor_so_can_upload(self, world):
        authz = world(f"user:erin manager {APOLLO}")
        assert authz.can("user:erin", "upload", APOLLO)

    def test_editor_is_viewer_so_can_read(self, world):
        authz = world(f"user:frank editor {APOLLO}")
        assert authz.can("user:frank", "read", APOLLO)

    def test_viewer_can_read(self, world):
        authz = world(f"user:grace viewer {APOLLO}")
        assert authz.can("user:grace", "read", APOLLO)
        assert not authz.can("user:grace", "read", HERMES)

    def test_editor_can_upload_viewer_cannot(self, world):
        authz = world(f"user:frank editor {APOLLO}", f"user:grace viewer {APOLLO}")
        assert authz.can("user:frank", "upload", APOLLO)
        assert not authz.can("user:grace", "upload", APOLLO)

    def test_manager_can_manage_editor_cannot(self, world):
        authz = world(f"user:erin manager {APOLLO}", f"user:frank editor {APOLLO}")
        assert authz.can("user:erin", "manage", APOLLO)
        assert not authz.can("user:frank", "manage", APOLLO)

    @pytest.mark.parametrize("role", ["viewer", "editor", "manager"])
    def test_project_role_gives_nothing_on_the_organization(self, world, role):
        authz = world(f"user:erin {role} {APOLLO}")
        assert authz.actions("user:erin", ACME) == set()

    @pytest.mark.parametrize("role", ["viewer", "editor", "manager"])
    def test_project_role_gives_nothing_on_another_project(self, world, role):
        authz = world(f"user:erin {role} {APOLLO}")
        assert authz.actions("user:erin", HERMES) == set()


# --- document ------------------------------------------------------------------------------------


class TestDocument:
    def test_project_viewer_is_document_viewer(self, world):
        authz = world(f"user:grace viewer {APOLLO}")
        assert authz.can("user:grace", "read", ROADMAP)
        assert not authz.can("user:grace", "edit", ROADMAP)
        assert not authz.can("user:grace", "read", BRIEF)

    def test_project_editor_is_document_editor(self, world):
        authz = world(f"user:frank editor {APOLLO}")
        assert authz.can("user:frank", "edit", ROADMAP)
        assert authz.can("user:frank", "share", ROADMAP)
        assert not authz.can("user:frank", "edit", BRIEF)

    def test_editor_is_viewer_so_can_read(self, world):
        authz = world(f"user:heidi editor {ROADMAP}")
        assert authz.can("user:heidi", "read", ROADMAP)

    def test_viewer_can_read(self, world):
        authz = world(f"user:ivan viewer {ROADMAP}")
        assert authz.can("user:ivan", "read", ROADMAP)
        assert not authz.can("user:ivan", "read", BRIEF)

    @pytest.mark.parametrize("action", ["edit", "share"])
    def test_editor_can_edit_and_share_viewer_cannot(self, world, action):
        authz = world(f"user:heidi editor {ROADMAP}", f"user:ivan viewer {ROADMAP}")
        assert authz.can("user:heidi", action, ROADMAP)
        assert not authz.can("user:ivan", action, ROADMAP)

    def test_project_manager_can_delete(self, world):
        authz = world(f"user:erin manager {APOLLO}")
        assert authz.can("user:erin", "delete", ROADMAP)
        assert not authz.can("user:erin", "delete", BRIEF)

    def test_org_admin_can_delete_through_project_manager(self, world):
        authz = world(f"user:alice admin {ACME}")
        assert authz.can("user:alice", "delete", ROADMAP)

    @pytest.mark.parametrize(
        "grant",
        [
            f"user:heidi editor {ROADMAP}",  # document editor
            f"user:heidi editor {APOLLO}",  # project editor
            f"user:heidi account_manager {ACME}",  # project editor through the organization
        ],
    )
    def test_editor_cannot_delete_unless_project_manager(self, world, grant):
        authz = world(grant)
        assert authz.can("user:heidi", "edit", ROADMAP)
        assert not authz.can("user:heidi", "delete", ROADMAP)

    @pytest.mark.parametrize("role", ["viewer", "editor"])
    def test_document_role_gives_nothing_on_the_project(self, world, role):
        authz = world(f"user:heidi {role} {ROADMAP}")
        assert authz.actions("user:heidi", APOLLO) == set()


# --- invoice -------------------------------------------------------------------------------------


class TestInvoice:
    @pytest.mark.parametrize("action", ["read", "pay"])
    def test_org_billing_admin_can_read_and_pay(self, world, action):
        authz = world(f"user:carol billing_admin {ACME}")
        assert authz.can("user:carol", action, ACME_INVOICE)
        assert not authz.can("user:carol", action, GLOBEX_INVOICE)

    @pytest.mark.parametrize("action", ["read", "pay"])
    def test_org_admin_can_read_and_pay_as_billing_admin(self, world, action):
        authz = world(f"user:alice admin {ACME}")
        assert authz.can("user:alice", action, ACME_INVOICE)

    def test_org_account_manager_can_read_but_not_pay(self, world):
        authz = world(f"user:dave account_manager {ACME}")
        assert authz.can("user:dave", "read", ACME_INVOICE)
        assert not authz.can("user:dave", "pay", ACME_INVOICE)
        assert not authz.can("user:dave", "read", GLOBEX_INVOICE)

    def test_org_member_cannot_read(self, world):
        authz = world(f"user:bob member {ACME}")
        assert authz.actions("user:bob", ACME_INVOICE) == set()

    @pytest.mark.parametrize("role", ["viewer", "editor", "manager"])
    def test_project_role_cannot_read_invoices(self, world, role):
        authz = world(f"user:grace {role} {APOLLO}")
        assert not authz.can("user:grace", "read", ACME_INVOICE)

    @pytest.mark.parametrize("role", ["billing_admin", "admin", "account_manager", "viewer", "read", "pay"])
    def test_direct_grant_on_an_invoice_gives_nothing(self, world, role):
        # Invoice declares no roles: whatever a grant on one says, it confers nothing.
        authz = world(f"user:judy {role} {ACME_INVOICE}")
        assert authz.actions("user:judy", ACME_INVOICE) == set()
        assert not authz.can("user:judy", "read", ACME_INVOICE)


# --- cross-organization isolation ----------------------------------------------------------------


@pytest.mark.parametrize("role", ["member", "billing_admin", "admin", "account_manager"])
@pytest.mark.parametrize("resource", [GLOBEX, HERMES, BRIEF, GLOBEX_INVOICE])
def test_grant_on_one_organization_gives_nothing_under_another(world, role, resource):
    authz = world(f"user:alice {role} {ACME}")
    assert authz.actions("user:alice", resource) == set()


# --- exact permission sets -----------------------------------------------------------------------

# For a representative grant, everything it yields on each resource of organization:acme. An
# unintended extra permission (or a missing one) anywhere in the tree fails here.
EXACT = {
    f"member {ACME}": {
        ACME: {"read"}, APOLLO: {"read"}, ROADMAP: {"read"}, ACME_INVOICE: set(),
    },
    f"billing_admin {ACME}": {
        ACME: {"view_billing"}, APOLLO: set(), ROADMAP: set(), ACME_INVOICE: {"read", "pay"},
    },
    f"account_manager {ACME}": {
        ACME: {"read"}, APOLLO: {"read", "upload"}, ROADMAP: {"read", "edit", "share"}, ACME_INVOICE: {"read"},
    },
    f"admin {ACME}": {
        ACME: ORG_PERMISSIONS, APOLLO: PROJECT_PERMISSIONS, ROADMAP: DOCUMENT_PERMISSIONS,
        ACME_INVOICE: INVOICE_PERMISSIONS,
    },
    f"viewer {APOLLO}": {
        ACME: set(), APOLLO: {"read"}, ROADMAP: {"read"}, ACME_INVOICE: set(),
    },
    f"editor {APOLLO}": {
        ACME: set(), APOLLO: {"read", "upload"}, ROADMAP: {"read", "edit", "share"}, ACME_INVOICE: set(),
    },
    f"manager {APOLLO}": {
        ACME: set(), APOLLO: PROJECT_PERMISSIONS, ROADMAP: DOCUMENT_PERMISSIONS, ACME_INVOICE: set(),
    },
    f"viewer {ROADMAP}": {
        ACME: set(), APOLLO: set(), ROADMAP: {"read"}, ACME_INVOICE: set(),
    },
    f"editor {ROADMAP}": {
        ACME: set(), APOLLO: set(), ROADMAP: {"read", "edit", "share"}, ACME_INVOICE: set(),
    },
}


@pytest.mark.parametrize("grant", list(EXACT))
def test_exact_permissions_of_a_grant(world, grant):
    authz = world(f"user:alice {grant}")
    assert {resource: authz.actions("user:alice", resource) for resource in EXACT[grant]} == EXACT[grant]


@pytest.mark.parametrize("grant", list(EXACT))
def test_exact_permissions_agree_with_is_allowed(world, grant):
    authz = world(f"user:alice {grant}")
    every_action = ORG_PERMISSIONS | PROJECT_PERMISSIONS | DOCUMENT_PERMISSIONS | INVOICE_PERMISSIONS
    for resource, expected in EXACT[grant].items():
        assert {a for a in every_action if authz.can("user:alice", a, resource)} == expected, resource


def test_no_grant_no_permission(world):
    authz = world(principals=["user:mallory"])
    for resource in (ACME, APOLLO, ROADMAP, ACME_INVOICE):
        assert authz.actions("user:mallory", resource) == set()


# --- groups --------------------------------------------------------------------------------------


class TestGroups:
    def test_member_of_group_holds_its_role(self, world):
        authz = world(
            f"group:finance billing_admin {ACME}",
            members=["user:carol in group:finance"],
            principals=["user:bob"],
        )
        assert authz.can("user:carol", "view_billing", ACME)
        assert authz.can("user:carol", "pay", ACME_INVOICE)
        assert not authz.can("user:bob", "view_billing", ACME)

    def test_group_role_is_inherited_down_the_tree(self, world):
        authz = world(f"group:staff admin {ACME}", members=["user:alice in group:staff"])
        assert authz.actions("user:alice", APOLLO) == PROJECT_PERMISSIONS
        assert authz.actions("user:alice", ROADMAP) == DOCUMENT_PERMISSIONS

    def test_two_levels_of_nesting(self, world):
        authz = world(
            f"group:delivery editor {APOLLO}",
            members=["group:apollo-team in group:delivery", "user:frank in group:apollo-team"],
        )
        assert authz.can("user:frank", "upload", APOLLO)
        assert not authz.can("user:frank", "manage", APOLLO)

    def test_three_levels_of_nesting(self, world):
        authz = world(
            f"group:company member {ACME}",
            members=[
                "group:engineering in group:company",
                "group:backend in group:engineering",
                "user:grace in group:backend",
            ],
        )
        assert authz.can("user:grace", "read", ACME)
        assert not authz.can("user:grace", "manage_members", ACME)

    def test_roles_flow_down_to_members_not_up_to_parent_groups(self, world):
        # bob is in the outer group only; a grant to the inner group is not his.
        authz = world(
            f"group:backend manager {APOLLO}",
            members=["user:grace in group:backend", "group:backend in group:engineering", "user:bob in group:engineering"],
        )
        assert authz.can("user:grace", "manage", APOLLO)
        assert not authz.can("user:bob", "read", APOLLO)

    def test_roles_from_user_and_groups_combine(self, world):
        authz = world(
            f"user:dave member {ACME}",
            f"group:finance billing_admin {ACME}",
            members=["user:dave in group:finance"],
        )
        assert authz.actions("user:dave", ACME) == {"read", "view_billing"}

    def test_membership_cycle_terminates(self, world):
        authz = world(
            f"group:a viewer {APOLLO}",
            members=["group:a in group:b", "group:b in group:a", "user:ivan in group:b"],
        )
        assert authz.actions("user:ivan", APOLLO) == {"read"}


# --- disabled principals -------------------------------------------------------------------------


class TestDisabled:
    def test_disabled_user_holds_nothing(self, world):
        authz = world(f"user:alice admin {ACME}", f"user:alice manager {APOLLO}", disabled=["user:alice"])
        for resource in (ACME, APOLLO, ROADMAP, ACME_INVOICE):
            assert authz.actions("user:alice", resource) == set(), resource
        assert not authz.can("user:alice", "read", ACME)

    def test_disabled_users_grants_stay_and_count_again_once_active(self, world):
        grant = f"user:alice admin {ACME}"
        disabled = world(grant, disabled=["user:alice"])
        assert [g.role for g in disabled.index.grants_on("user:alice", ACME)] == ["admin"]
        assert not disabled.can("user:alice", "manage_members", ACME)
        assert world(grant).can("user:alice", "manage_members", ACME)

    def test_disabled_user_gets_nothing_from_groups(self, world):
        authz = world(
            f"group:staff admin {ACME}",
            members=["user:alice in group:staff", "user:bob in group:staff"],
            disabled=["user:alice"],
        )
        assert authz.actions("user:alice", ACME) == set()
        assert authz.actions("user:bob", ACME) == ORG_PERMISSIONS

    def test_disabled_service_holds_nothing(self, world):
        authz = world(f"service:sync editor {APOLLO}", disabled=["service:sync"])
        assert authz.actions("service:sync", APOLLO) == set()


# --- expiry --------------------------------------------------------------------------------------


class TestExpiry:
    @pytest.mark.parametrize(
        "offset, allowed",
        [
            pytest.param(timedelta(seconds=-1), False, id="expired-one-second-ago"),
            pytest.param(timedelta(0), False, id="expires-exactly-now"),
            pytest.param(timedelta(seconds=1), True, id="expires-in-one-second"),
        ],
    )
    def test_expiry_boundary(self, world, now, offset, allowed):
        authz = world(("user:bob", "member", ACME, now + offset))
        assert authz.can("user:bob", "read", ACME) is allowed
        assert authz.can("user:bob", "read", APOLLO) is allowed

    @pytest.mark.parametrize(
        "offset, allowed",
        [
            pytest.param(timedelta(seconds=-1), False, id="expired-one-second-ago"),
            pytest.param(timedelta(0), False, id="expires-exactly-now"),
            pytest.param(timedelta(seconds=1), True, id="expires-in-one-second"),
        ],
    )
    def test_expiry_boundary_for_a_service(self, world, now, offset, allowed):
        authz = world(("service:uploader", "editor", APOLLO, now + offset))
        assert authz.can("service:uploader", "upload", APOLLO) is allowed

    def test_grant_without_expiry_never_expires(self, world):
        assert world(f"user:bob member {ACME}").can("user:bob", "read", ACME)

    def test_expired_org_grant_gives_nothing_down_the_tree(self, world, now):
        authz = world(("user:alice", "admin", ACME, now))
        for resource in (ACME, APOLLO, ROADMAP, ACME_INVOICE):
            assert authz.actions("user:alice", resource) == set(), resource

    def test_expired_group_grant_gives_nothing(self, world, now):
        authz = world(("group:finance", "billing_admin", ACME, now), members=["user:carol in group:finance"])
        assert not authz.can("user:carol", "view_billing", ACME)

    def test_only_the_unexpired_grant_counts(self, world, now):
        authz = world(
            ("user:erin", "manager", APOLLO, now - timedelta(days=1)),
            ("user:erin", "viewer", APOLLO, now + timedelta(days=1)),
        )
        assert authz.actions("user:erin", APOLLO) == {"read"}

    def test_same_grant_is_judged_at_the_evaluation_moment(self, world, now):
        grant = ("user:bob", "member", ACME, now)
        assert world(grant, now=now - timedelta(seconds=1)).can("user:bob", "read", ACME)
        assert not world(grant, now=now).can("user:bob", "read", ACME)


# --- actors --------------------------------------------------------------------------------------


class TestActors:
    def test_service_holds_roles_from_grants(self, world):
        authz = world(f"service:uploader editor {APOLLO}", principals=["service:idle"])
        assert authz.can("service:uploader", "upload", APOLLO)
        assert not authz.can("service:uploader", "manage", APOLLO)
        assert not authz.can("service:idle", "read", APOLLO)

    def test_service_holds_inherited_roles(self, world):
        authz = world(f"service:billing-bot billing_admin {ACME}")
        assert authz.actions("service:billing-bot", ACME_INVOICE) == {"read", "pay"}

    def test_group_is_not_an_actor(self, world):
        authz = world(f"group:staff admin {ACME}", members=["user:alice in group:staff"])
        assert authz.can("user:alice", "read", ACME)
        assert not authz.can("group:staff", "read", ACME)
        assert authz.actions("group:staff", ACME) == set()

    def test_unknown_actor_is_denied(self, world):
        authz = world(f"user:alice admin {ACME}")
        assert not authz.can("user:nobody", "read", ACME)
        assert authz.actions("user:nobody", ACME) == set()

    def test_unknown_resource_is_denied(self, world):
        authz = world(f"user:alice admin {ACME}")
        assert not authz.can("user:alice", "read", "document:missing")
        assert authz.actions("user:alice", "document:missing") == set()

    def test_resource_of_undeclared_type_is_denied(self, world):
        authz = world(f"user:alice admin {ACME}", resources=[ResourceRecord("folder:shared", "folder", ACME)])
        assert not authz.can("user:alice", "read", "folder:shared")

    def test_undeclared_action_is_denied(self, world):
        authz = world(f"user:alice admin {ACME}")
        assert not authz.can("user:alice", "delete", ACME)
        assert not authz.can("user:alice", "admin", ACME)
