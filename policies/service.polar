# Who may use accessreview itself. The service is a resource, `system:accessreview`, and these roles
# are ordinary grants in the directory, so the service's own access is reviewable like any other.
# (`allow`, the actors and `has_role` come from portal.polar; all files load into one policy.)

resource System {
    roles = ["portal_client", "security_lead", "auditor", "admin"];
    permissions = [
        "check",            # authorization checks for the portal
        "sync_directory",   # principal, resource and grant writes; bulk imports
        "read_directory",
        "explain_access",   # who has access to a resource and why one check is allowed: /ui/access and its API
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

    # The portal is a program: it checks and syncs, and reads the directory it syncs. Who has access
    # to a resource and why (`explain_access`) is what people investigate: not the portal's.
    "check" if "portal_client";
    "sync_directory" if "portal_client";
    "read_directory" if "portal_client";

    "read_directory" if "security_lead";
    "explain_access" if "security_lead";
    "manage_campaigns" if "security_lead";
    "view_campaigns" if "security_lead";
    "read_reports" if "security_lead";
    "read_decisions" if "security_lead";
    "read_audit" if "security_lead";

    "read_directory" if "auditor";
    "explain_access" if "auditor";
    "read_audit" if "auditor";
    "read_decisions" if "auditor";
    "read_reports" if "auditor";
    "view_campaigns" if "auditor";

    "manage_tokens" if "admin";
    "reload_policy" if "admin";
}

# A review item of an access-review campaign. Its reviewer decides it; security leads may override
# or reassign; auditors and security leads may look. Auditors read every item, never change one: each
# item's decision and justification are in the audit trail and the signed report already, and the
# item is where an auditor traces one of them (who held what, what was recommended, who decided). Review items are the service's own objects
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

# The web pages are for people: any active user may open them (what each page shows is then up to the
# permissions above and the review items'), never a service, whatever roles it holds: the portal's
# token, or an admin's automation token, opens no page.
resource Pages {
    permissions = ["open"];
    relations = { parent: System };
}

has_relation(system: System, "parent", pages: Pages) if
    pages.parent = system;

has_permission(user: User, "open", _pages: Pages) if
    user.is_active();
