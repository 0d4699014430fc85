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
    "read_reports" if "security_lead";
    "read_decisions" if "security_lead";
    "read_audit" if "security_lead";

    "read_directory" if "auditor";
    "read_audit" if "auditor";
    "read_decisions" if "auditor";
    "read_reports" if "auditor";

    "manage_tokens" if "admin";
    "reload_policy" if "admin";
}
