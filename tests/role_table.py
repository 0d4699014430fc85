"""Who reaches which endpoint and page: the one table that the README shows and that
tests/test_role_table.py walks with every role's token.

Each row is a set of routes (``METHOD /path``, paths written as in the OpenAPI document) that the same
callers reach. The README's table is rendered from these rows (``python tests/role_table.py --write``
rewrites it) and a test checks that it is; another test sends every route of every row with each
caller's token and compares the answers with the row, and fails on any route of the app that no
row names.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

PORTAL, LEAD, AUDITOR, ADMIN, REVIEWER, NO_ROLE = (
    "portal_client", "security_lead", "auditor", "admin", "reviewer", "no role")
ROLES = (PORTAL, LEAD, AUDITOR, ADMIN, REVIEWER, NO_ROLE)
PEOPLE = frozenset({LEAD, AUDITOR, ADMIN, REVIEWER, NO_ROLE})
EVERYONE = frozenset(ROLES)

# What a caller without a live token (none, revoked, expired) gets: the API says 401, a page sends
# to the sign-in page, a public route answers.
UNAUTHENTICATED, SIGN_IN, PUBLIC = "401", "sign-in", "✓"


@dataclass(frozen=True)
class Row:
    area: str
    routes: tuple[str, ...]
    reach: frozenset[str]
    public: bool = False  # needs no token at all
    hidden: bool = False  # a refusal may be 404: who may not look at the object does not learn it exists
    without_token: str | None = None  # else derived: 401 for the API, the sign-in page for pages

    def unauthenticated(self, route: str) -> str:
        if self.public:
            return PUBLIC
        return self.without_token or (SIGN_IN if path_of(route).startswith("/ui") else UNAUTHENTICATED)


def path_of(route: str) -> str:
    """``GET /v1/review-items?reviewer=me`` → ``/v1/review-items``; ``GET /v1/jobs/{job_id} (an import's)`` →
    ``/v1/jobs/{job_id}``: a query or a note says which case of the endpoint a row is about."""
    return route.split(" ")[1].split("?", 1)[0]


def endpoint_of(route: str) -> str:
    """``GET /v1/review-items?reviewer=me`` → ``GET /v1/review-items``."""
    return f"{method_of(route)} {path_of(route)}"


def method_of(route: str) -> str:
    return route.split(" ", 1)[0]


_VARIABLE = re.compile(r"<(?:[a-z]+:)?([a-z_]+?)_?>")


def route_of_rule(method: str, rule: str) -> str:
    """A Flask rule as the table writes it: ``<int:item_id>`` → ``{item_id}``, ``<type_>`` → ``{type}``."""
    return method + " " + _VARIABLE.sub(r"{\1}", rule)


ROWS = (
    Row("Probes and the API description", (
        "GET /healthz", "GET /readyz", "GET /metrics", "GET /openapi.json",
        "GET /.well-known/authzen-configuration"), EVERYONE, public=True),
    Row("Checks: one, a batch, a principal's resources of a type", (
        "POST /v1/authorize", "POST /v1/authorize/batch", "GET /v1/principals/{principal}/resources"),
        frozenset({PORTAL, ADMIN})),
    Row("AuthZEN 1.0: evaluation, evaluations, subject, resource and action search", (
        "POST /access/v1/evaluation", "POST /access/v1/evaluations", "POST /access/v1/search/subject",
        "POST /access/v1/search/resource", "POST /access/v1/search/action"), frozenset({PORTAL, ADMIN})),
    Row("Directory sync", (
        "PUT /v1/principals/{principal}", "PUT /v1/resources/{type}/{id}", "POST /v1/grants",
        "DELETE /v1/grants/{grant_id}", "POST /v1/directory/import", "GET /v1/jobs/{job_id} (an import's)"),
        frozenset({PORTAL, ADMIN})),
    Row("Directory reads, and the compiled policy", (
        "GET /v1/principals", "GET /v1/principals/{principal}", "GET /v1/resources", "GET /v1/resources/{type}/{id}",
        "GET /v1/grants", "GET /v1/grants/{grant_id}", "GET /v1/directory/status", "GET /v1/policy",
        "GET /v1/holds", "GET /v1/holds/{hold_id}"),
        frozenset({PORTAL, LEAD, AUDITOR, ADMIN})),
    Row("Revocation holds, on pages", ("GET /ui/holds", "GET /ui/holds/{hold_id}"), frozenset({LEAD, AUDITOR, ADMIN})),
    Row("Who has access and why: the access explorer and its API", (
        "GET /v1/resources/{type}/{id}/access", "POST /v1/explain", "GET /ui/access"),
        frozenset({LEAD, AUDITOR, ADMIN})),
    Row("The decision log", ("GET /v1/decisions", "GET /ui/decisions"), frozenset({LEAD, AUDITOR, ADMIN})),
    Row("The audit trail, and verifying its chain", (
        "GET /v1/audit-events", "GET /ui/audit", "POST /ui/audit/verify"), frozenset({LEAD, AUDITOR, ADMIN})),
    Row("Signed evidence: reports, their downloads and keys, verifying, signing ad-hoc reports", (
        "GET /v1/reports", "GET /v1/reports/{report_id}", "GET /v1/reports/{report_id}/signature",
        "GET /v1/signing-keys", "POST /v1/reports/verify", "POST /v1/reports/access", "POST /v1/reports/decisions",
        "GET /ui/reports", "GET /ui/reports/{report_id}/workbook", "GET /ui/reports/{report_id}/signature",
        "POST /ui/reports/verify", "POST /ui/reports/access", "POST /ui/reports/decisions",
        "GET /v1/reports/{report_id}/signature.bin", "GET /ui/reports/{report_id}/signature.bin",
        "GET /ui/reports/keys/{key_id}.pem", "GET /ui/reports/verify_report.py"),
        frozenset({LEAD, AUDITOR, ADMIN})),
    Row("Following campaigns: definitions, campaigns, measures, jobs, every review item", (
        "GET /v1/campaign-definitions", "GET /v1/campaign-definitions/{definition_id}", "GET /v1/campaigns",
        "GET /v1/campaigns/{campaign_id}", "GET /v1/campaigns/{campaign_id}/metrics", "GET /v1/metrics/reviews",
        "GET /v1/jobs/{job_id} (a campaign's)", "GET /v1/review-items", "GET /ui/campaigns",
        "GET /ui/campaigns/{campaign_id}", "GET /ui/jobs/{job_id} (a campaign's)",
        "GET /ui/campaign-definitions/{definition_id}"), frozenset({LEAD, AUDITOR, ADMIN})),
    Row("Jobs, listed: those of the kinds one follows (imports: the directory's sync; the rest: campaigns')", (
        "GET /v1/jobs",), frozenset({PORTAL, LEAD, AUDITOR, ADMIN})),
    Row("Running campaigns: define and edit, launch, pause, remind, close, sign off, remediate, follow up, lift holds", (
        "POST /v1/campaign-definitions", "PATCH /v1/campaign-definitions/{definition_id}",
        "POST /v1/campaign-definitions/{definition_id}/launch", "POST /v1/campaigns/{campaign_id}/close",
        "POST /v1/campaigns/{campaign_id}/sign-off", "POST /v1/campaigns/{campaign_id}/remediate",
        "POST /v1/campaigns/{campaign_id}/follow-up", "POST /v1/holds/{hold_id}/lift", "POST /ui/holds/{hold_id}/lift",
        "GET /ui/campaign-definitions/new", "POST /ui/campaign-definitions",
        "POST /ui/campaign-definitions/{definition_id}/launch", "POST /ui/campaign-definitions/{definition_id}/schedule",
        "GET /ui/campaigns/{campaign_id}/close", "POST /ui/campaigns/{campaign_id}/close",
        "POST /ui/campaigns/{campaign_id}/sign-off",
        "POST /ui/campaigns/{campaign_id}/remediate", "POST /ui/campaign-definitions/{definition_id}",
        "POST /ui/campaigns/{campaign_id}/remind"), frozenset({LEAD, ADMIN})),
    Row("One's own queue (empty for who reviews nothing), and the start page", (
        "GET /v1/review-items?reviewer=me", "GET /ui/", "GET /ui/reviews", "POST /ui/reviews/accept"), PEOPLE,
        hidden=True),
    Row("A reviewer's queue (the reviewer's own, or anyone's)", (
        "GET /v1/review-items?reviewer={principal}",), frozenset({LEAD, AUDITOR, ADMIN, REVIEWER}), hidden=True),
    Row("A review item and its history (the reviewer's own, or any)", (
        "GET /v1/review-items/{item_id}", "GET /ui/review-items/{item_id}"),
        frozenset({LEAD, AUDITOR, ADMIN, REVIEWER}), hidden=True),
    Row("Deciding and handing on items (the reviewer's own; a security lead overrides and reassigns)", (
        "POST /v1/review-items/{item_id}/decision", "POST /v1/review-items/{item_id}/reassign",
        "POST /v1/campaigns/{campaign_id}/decisions", "POST /ui/review-items/{item_id}/decision",
        "POST /ui/review-items/{item_id}/reassign", "POST /ui/reviews"),
        frozenset({LEAD, ADMIN, REVIEWER}), hidden=True),
    Row("Policy reload", ("POST /v1/policy/reload",), frozenset({ADMIN})),
    Row("Bearer tokens: list, make, revoke", (
        "GET /ui/tokens", "POST /ui/tokens", "GET /ui/tokens/{token_id}/revoke", "POST /ui/tokens/{token_id}/revoke"),
        frozenset({ADMIN})),
    Row("Signing in with a pasted token", ("POST /ui/sign-in/token",), PEOPLE, without_token=UNAUTHENTICATED),
    Row("Signing out everywhere: one's own web sessions and sign-in links (one's API tokens when asked)", (
        "GET /ui/sign-out-everywhere", "POST /ui/sign-out-everywhere"), PEOPLE),
    Row("Signing in by e-mail and out; the stylesheet", (
        "GET /ui/sign-in", "POST /ui/sign-in/email", "GET /ui/sign-in/link", "POST /ui/sign-in/link",
        "POST /ui/sign-out", "GET /ui/style.css"), EVERYONE, public=True),
)


def render() -> str:
    """The README's table."""
    head = ["What", "Endpoints and pages", *ROLES, "no live token"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in ROWS:
        routes = "<br>".join(f"`{route}`" for route in row.routes)
        cells = ["✓" if role in row.reach else "—" for role in ROLES]
        without = sorted({row.unauthenticated(route) for route in row.routes})
        lines.append(f"| {row.area} | {routes} | " + " | ".join(cells) + f" | {' / '.join(without)} |")
    return "\n".join(lines) + "\n"


README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN = "<!-- role table: generated from tests/role_table.py (python tests/role_table.py --write) -->\n"
END = "<!-- end of the role table -->\n"


def readme_table(text: str) -> str:
    """The table as the README holds it, between its two markers."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end]


def write_readme() -> None:
    text = README.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    README.write_text(text[:start] + render() + text[end:], encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_readme()
    else:
        sys.stdout.write(render())
