# The client portal's role model. This file is the only place that says what a role means:
# the directory validates grants against the types, parents and roles declared here, and every
# check, list and review derives effective permissions from these rules.
#
# Resource type names are the portal's, in snake_case: `Organization` is `organization`.

actor User {}
actor Service {}

allow(actor, action, resource) if
    has_permission(actor, action, resource);

# A client account.
resource Organization {
    roles = ["member", "billing_admin", "admin", "account_manager"];
    permissions = ["read", "manage_members", "view_billing"];

    "billing_admin" if "admin";
    "member" if "admin";
    # Internal staff looking after the account.
    "member" if "account_manager";

    "read" if "member";
    "manage_members" if "admin";
    "view_billing" if "billing_admin";
}

# An engagement for a client.
resource Project {
    roles = ["viewer", "editor", "manager"];
    permissions = ["read", "upload", "manage"];
    relations = { parent: Organization };

    "manager" if "admin" on "parent";
    "editor" if "account_manager" on "parent";
    "viewer" if "member" on "parent";

    "editor" if "manager";
    "viewer" if "editor";

    "read" if "viewer";
    "upload" if "editor";
    "manage" if "manager";
}

has_relation(organization: Organization, "parent", project: Project) if
    project.parent = organization;

resource Document {
    roles = ["viewer", "editor"];
    permissions = ["read", "edit", "delete", "share"];
    relations = { parent: Project };

    "viewer" if "viewer" on "parent";
    "editor" if "editor" on "parent";
    "viewer" if "editor";

    "read" if "viewer";
    "edit" if "editor";
    "share" if "editor";
    "delete" if "manager" on "parent";
}

has_relation(project: Project, "parent", document: Document) if
    document.parent = project;

resource Invoice {
    roles = [];
    permissions = ["read", "pay"];
    relations = { parent: Organization };

    "read" if "billing_admin" on "parent";
    "pay" if "billing_admin" on "parent";
    "read" if "account_manager" on "parent";
}

has_relation(organization: Organization, "parent", invoice: Invoice) if
    invoice.parent = organization;

# A to-do, one of the portal's own objects: the portal need not sync its todos. A check names the
# todo with its properties, and the rules below read them: `ownerID`, the id of the user who made
# it, and `department` or `team`, one it is shared with. A todo synced to the directory (its properties then
# layered over its attributes) is also read by its project's viewers and edited by its editors.
resource Todo {
    permissions = ["read", "edit", "delete"];
    relations = { parent: Project };

    "read" if "viewer" on "parent";
    "edit" if "editor" on "parent";
    "delete" if "manager" on "parent";
}

has_relation(project: Project, "parent", todo: Todo) if
    todo.parent = project;

# Attribute rules, so todos are evaluated by oso (every other type keeps the compiled table).
# Whoever made a todo may do anything with it, while their account is active.
has_permission(user: User, action: String, todo: Todo) if
    user.is_active() and
    todo.ownerID = user.id and
    action in ["read", "edit", "delete"];

# A todo shared with a department is read by that department's active users (the user's department
# is the directory's; a user or todo without one matches nothing).
has_permission(user: User, "read", todo: Todo) if
    user.is_active() and
    user.department != nil and
    todo.department = user.department;

# A todo shared with a team is read by the team's active users. `team` is one of the user's custom
# attributes (the directory's `attributes` of the user, or the check's subject properties); like
# a department, none on either side matches nothing.
has_permission(user: User, "read", todo: Todo) if
    user.is_active() and
    user.team != nil and
    todo.team = user.team;

# Roles come from grants. A principal holds a role when a grant gives it to the principal itself or
# to any group it belongs to (groups nest), as long as the grant has not expired and the principal
# is active: a disabled user holds nothing, though their grants stay on record for review.
has_role(user: User, role: String, resource: Resource) if
    user.is_active() and
    grant in user.grants_on(resource) and
    grant.role = role and
    not grant.is_expired();

has_role(service: Service, role: String, resource: Resource) if
    service.is_active() and
    grant in service.grants_on(resource) and
    grant.role = role and
    not grant.is_expired();
