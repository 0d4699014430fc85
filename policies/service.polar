# Who may use accessreview itself. The service is a resource, `system:accessreview`, and these roles
# are ordinary grants in the directory, so the service's own access is reviewable like any other.
# (`allow`, the actors and `has_role` come from portal.polar; all files load into one policy.)

resource System {
    roles = ["portal_client", "security_lead", "auditor", "admin"];
    permissions = [
        "check",            # authorization checks for the portal
        "sync_directory",   # principal, resource and grant writes; bulk imports
        "read_directory",
        "read_audit",
        "read_decisions",
        "read_reports",
        "manage_campaigns",
        "view_campaigns",
        "manage_tokens",
        "reload_policy"
    ];

    "portal_client" if "admin";
    "security_lead" if "admin";
    "auditor" if "admin";

    "check" if "portal_client";
    "sync_directory" if "portal_client";
    "read_directory" if "portal_client";

    "read_directory" if "security_lead";
    "manage_campaigns" if "security_lead";
    "view_campaigns" if "security_lead";
    "read_reports" if "security_lead";
    "read_decisions" if "security_lead";
    "read_audit" if "security_lead";

    "read_directory" if "auditor";
    "read_audit" if "auditor";
    "read_decisions" if "auditor";
    "read_reports" if "auditor";
    "view_campaigns" if "auditor";

    "manage_tokens" if "admin";
    "reload_policy" if "admin";
}

# A review item of an access-review campaign. Its reviewer decides it; security leads may override
# or reassign; auditors and security leads may look. Review items are the service's own objects
# (their parent is the service), so they are never written to the directory.
resource ReviewItem {
    permissions = ["view", "decide", "override", "reassign"];
    relations = { parent: System };

    "view" if "security_lead" on "parent";
    "view" if "auditor" on "parent";
    "override" if "security_lead" on "parent";
    "reassign" if "security_lead" on "parent";
}

has_relation(system: System, "parent", item: ReviewItem) if
    item.parent = system;

has_permission(user: User, "view", item: ReviewItem) if
    user.is_active() and item.reviewer = user.key;

has_permission(user: User, "decide", item: ReviewItem) if
    user.is_active() and item.reviewer = user.key;

has_permission(user: User, "reassign", item: ReviewItem) if
    user.is_active() and item.reviewer = user.key;

# A reviewer's queue of review items: its reviewer sees it, and so do security leads and auditors.
resource ReviewQueue {
    permissions = ["view"];
    relations = { parent: System };

    "view" if "security_lead" on "parent";
    "view" if "auditor" on "parent";
}

has_relation(system: System, "parent", queue: ReviewQueue) if
    queue.parent = system;

has_permission(user: User, "view", queue: ReviewQueue) if
    user.is_active() and queue.reviewer = user.key;
