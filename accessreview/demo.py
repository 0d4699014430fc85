"""Deterministic demo data: a professional-services firm's client portal, as one bulk-import payload.

:func:`build_demo_payload` is pure: no database, no Flask, no clock of its own. Given the same
``now`` and ``seed`` it returns the same payload, byte for byte once serialised. Everything is
relative to ``now`` (grant dates over the past year, last sign-ins over the past 90 days, a few
grants already expired and a few expiring soon), so a demo loaded today looks current.

The firm, "Harbour & Vale", runs tax, audit and advisory engagements for four client
organizations. Its staff (Tax, Audit, Advisory, Client Service, IT, Security, Risk & Compliance)
and the clients' own users share the portal. The data deliberately contains what an access review
should find: disabled users who still hold grants, expired grants, temporary access close to its
end date, redundant grants through groups, and document-level sharing outside the engagement team.

Run ``python -m accessreview.demo`` to print the payload as JSON.
"""

from __future__ import annotations

import random
import re
import unicodedata
from datetime import datetime, timedelta, timezone
from typing import Any

FIRM_NAME = "Harbour & Vale"
FIRM_DOMAIN = "example.com"
SYSTEM_RESOURCE = "system:accessreview"
PORTAL_SERVICE = "service:portal"

# Pinned so demos can say "sign in as Alice"; everyone else is drawn from the pools below.
_PINNED_NAMES = {"tax_partner": ("Alice", "Moreau")}

_FIRST_NAMES = (
    "Amélie", "Arjun", "Beatriz", "Benjamin", "Camille", "Chloé", "Daniel", "Dmitri", "Eleanor",
    "Elif", "Emma", "Farah", "Felix", "Freya", "Gabriel", "Hannah", "Hugo", "Ingrid", "Isabel",
    "Jakob", "James", "Jonas", "Julia", "Kenji", "Laura", "Leila", "Liam", "Lucas", "Maja", "Marco",
    "Margot", "Mateo", "Maya", "Mehdi", "Mia", "Nadia", "Naomi", "Nathan", "Nina", "Noah", "Olivia",
    "Omar", "Oskar", "Paul", "Priya", "Rafael", "Rania", "Rohan", "Ruth", "Samuel", "Sara", "Sofia",
    "Søren", "Tariq", "Theo", "Thomas", "Valentina", "Victor", "Wei", "Yasmin", "Yusuf", "Zoë",
    "Adrien", "Bianca", "Colm", "Esther", "Ivan", "Lena",
)

_LAST_NAMES = (
    "Abara", "Andersen", "Bakker", "Bauer", "Bernard", "Blackwood", "Brennan", "Castillo", "Chen",
    "Costa", "Dubois", "Dufresne", "Eriksen", "Fernández", "Fischer", "Fontaine", "Gallagher",
    "Garcia", "Greco", "Hartmann", "Haddad", "Hughes", "Ibrahim", "Janssen", "Kapoor", "Keller",
    "Kowalski", "Laurent", "Lindqvist", "Marchetti", "Mehta", "Mendes", "Meyer", "Murphy", "Nakamura",
    "Nguyen", "Novak", "Okafor", "Olsen", "Ortega", "Patel", "Peeters", "Petit", "Quinn", "Rahman",
    "Ramos", "Reyes", "Richter", "Rossi", "Schmidt", "Silva", "Sørensen", "Suzuki", "Tanaka",
    "Thompson", "Van Dijk", "Varga", "Vogel", "Walsh", "Weber", "Whitfield", "Yilmaz", "Zielińska",
    "Zimmermann", "Achterberg", "Byrne", "Cardoso", "Delacroix", "Engström", "Lefèvre",
)

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")

# Client organizations: slug, name, email domain, attributes.
_ORGS: tuple[dict[str, Any], ...] = (
    {"slug": "acme", "name": "Acme Logistics", "domain": "acme-logistics.example",
     "industry": "Logistics", "country": "FR", "currency": "EUR", "tier": "key account",
     "client_since": "2017-03-01", "users": 8},
    {"slug": "northwind", "name": "Northwind Foods", "domain": "northwindfoods.example",
     "industry": "Food and beverage", "country": "GB", "currency": "GBP", "tier": "standard",
     "client_since": "2020-09-15", "users": 7},
    {"slug": "bluepeak", "name": "Bluepeak Energy", "domain": "bluepeak-energy.example",
     "industry": "Renewable energy", "country": "US", "currency": "USD", "tier": "key account",
     "client_since": "2021-01-11", "users": 7},
    {"slug": "lumen", "name": "Lumen Health", "domain": "lumenhealth.example",
     "industry": "Healthcare", "country": "NL", "currency": "EUR", "tier": "standard",
     "client_since": "2022-06-01", "users": 7},
)

# Engagements: id template, org, kind, title template, status. {y} is now's year, {fy} the last one.
_PROJECTS: tuple[tuple[str, str, str, str, str], ...] = (
    ("acme-tax-{y}", "acme", "tax", "{y} corporate tax compliance", "active"),
    ("acme-vat-{y}", "acme", "vat", "{y} VAT compliance", "active"),
    ("acme-audit-fy{fy}", "acme", "audit", "FY{fy} statutory audit", "active"),
    ("acme-tp-review", "acme", "tp", "Transfer pricing review", "closed"),
    ("northwind-audit-fy{fy}", "northwind", "audit", "FY{fy} statutory audit", "active"),
    ("northwind-tax-{y}", "northwind", "tax", "{y} corporate tax compliance", "active"),
    ("northwind-erp-advisory", "northwind", "erp", "ERP finance transformation", "active"),
    ("bluepeak-audit-fy{fy}", "bluepeak", "audit", "FY{fy} financial statement audit", "active"),
    ("bluepeak-rd-credits-{y}", "bluepeak", "rd", "{y} R&D tax credit claim", "active"),
    ("bluepeak-kestrel-dd", "bluepeak", "dd", "Project Kestrel: acquisition due diligence", "active"),
    ("lumen-tax-{y}", "lumen", "tax", "{y} corporate tax compliance", "planning"),
    ("lumen-audit-fy{fy}", "lumen", "audit", "FY{fy} statutory audit", "active"),
)

_KIND_DEPARTMENT = {"tax": "Tax", "vat": "Tax", "rd": "Tax", "audit": "Audit",
                    "tp": "Advisory", "erp": "Advisory", "dd": "Advisory"}
_KIND_SERVICE_LINE = {"tax": "Corporate tax compliance", "vat": "Indirect tax", "rd": "Tax incentives",
                      "audit": "Statutory audit", "tp": "Transfer pricing", "erp": "Finance transformation",
                      "dd": "Transaction services"}

# The firm's staff: slot, department, manager slot (None: top of the hierarchy).
_INTERNAL: tuple[tuple[str, str, str | None], ...] = (
    ("managing_partner", "Client Service", None),
    ("cs_head", "Client Service", "managing_partner"),
    ("am_1", "Client Service", "cs_head"),
    ("am_2", "Client Service", "cs_head"),
    ("am_3", "Client Service", "cs_head"),
    ("am_4", "Client Service", "cs_head"),
    ("tax_partner", "Tax", "managing_partner"),
    ("tax_sm_1", "Tax", "tax_partner"),
    ("tax_sm_2", "Tax", "tax_partner"),
    ("tax_1", "Tax", "tax_sm_1"),
    ("tax_2", "Tax", "tax_sm_2"),
    ("tax_3", "Tax", "tax_sm_1"),
    ("tax_4", "Tax", "tax_sm_2"),
    ("tax_5", "Tax", "tax_sm_1"),
    ("audit_partner", "Audit", "managing_partner"),
    ("audit_sm_1", "Audit", "audit_partner"),
    ("audit_sm_2", "Audit", "audit_partner"),
    ("audit_1", "Audit", "audit_sm_1"),
    ("audit_2", "Audit", "audit_sm_2"),
    ("audit_3", "Audit", "audit_sm_1"),
    ("audit_4", "Audit", "audit_sm_2"),
    ("audit_5", "Audit", "audit_sm_2"),
    ("adv_partner", "Advisory", "managing_partner"),
    ("adv_sm_1", "Advisory", "adv_partner"),
    ("adv_sm_2", "Advisory", "adv_partner"),
    ("adv_1", "Advisory", "adv_sm_1"),
    ("adv_2", "Advisory", "adv_sm_2"),
    ("adv_3", "Advisory", "adv_sm_1"),
    ("it_head", "IT", "managing_partner"),
    ("it_admin", "IT", "it_head"),
    ("it_1", "IT", "it_head"),
    ("it_2", "IT", "it_admin"),
    ("sec_head", "Security", "managing_partner"),
    ("sec_analyst", "Security", "sec_head"),
    ("compliance", "Risk & Compliance", "managing_partner"),
)

# Each client's own users: slot, team, manager slot. The CFO tops each client's hierarchy.
_CLIENT: tuple[tuple[str, str, str | None], ...] = (
    ("cfo", "Finance", None),
    ("controller", "Finance", "cfo"),
    ("accountant_1", "Finance", "controller"),
    ("accountant_2", "Finance", "controller"),
    ("legal", "Legal", "cfo"),
    ("operations", "Operations", "cfo"),
    ("people", "People", "cfo"),
    ("ap_clerk", "Finance", "controller"),  # only in orgs with 8 users
)
_FINANCE_SLOTS = ("cfo", "controller", "accountant_1", "accountant_2", "ap_clerk")

# Leavers: disabled, but their grants are still on record for the review to find.
_DISABLED_INTERNAL = ("tax_5", "audit_5")
_DISABLED_CLIENT = (("acme", "accountant_2"), ("lumen", "operations"))

_CONTENT_TYPES = {
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "csv": "text/csv",
    "zip": "application/zip",
    "msg": "application/vnd.ms-outlook",
}
_SIZE_RANGE = {"pdf": (80_000, 4_500_000), "xlsx": (25_000, 2_800_000), "docx": (20_000, 900_000),
               "pptx": (400_000, 9_000_000), "csv": (2_000, 600_000), "zip": (1_000_000, 45_000_000),
               "msg": (15_000, 300_000)}

_DOCS_PER_PROJECT_MIN = 14
_DOCS_TOTAL = 240


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _slug(text: str) -> str:
    """``Zieli\u0144ska`` → ``zielinska``; ``Van Dijk`` → ``vandijk``; ids stay within [a-z0-9.-]."""
    folded = text.lower().translate(str.maketrans({"ø": "o", "æ": "ae", "ł": "l", "ß": "ss", "đ": "d"}))
    ascii_text = unicodedata.normalize("NFKD", folded).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9-]", "", ascii_text)


def _doc_candidates(kind: str, y: int, fy: int, now: datetime) -> list[str]:
    """Plausible, distinct file names for an engagement of this kind."""
    quarters_this_year = (now.month - 1) // 3 + 1
    common = [
        f"Engagement letter {y} (signed).pdf",
        f"Engagement letter {y} - draft.docx",
        "Client acceptance checklist.pdf",
        "Kick-off meeting notes.docx",
        "Key contacts.xlsx",
        "Information request list.xlsx",
        "Fee estimate.pdf",
        f"Group structure chart {fy}.pdf",
    ]
    names: list[str] = []
    if kind == "tax":
        names += [
            f"{fy} trial balance.xlsx", f"{fy} corporate tax return - draft.pdf",
            f"{fy} corporate tax return - final.pdf", f"{fy} corporate tax computation.xlsx",
            f"{fy} capital allowances schedule.xlsx", f"{fy} fixed asset register.xlsx",
            f"Tax provision workpapers FY{fy}.xlsx", f"Deferred tax reconciliation FY{fy}.xlsx",
            f"Withholding tax certificates {fy}.pdf", f"Intercompany recharges {fy}.xlsx",
            f"Board minutes - dividend {fy}.pdf", f"{y} instalment payment schedule.xlsx",
            f"Thin capitalisation analysis {fy}.xlsx", "Tax residency certificate.pdf",
            f"Statutory accounts FY{fy}.pdf", f"Interest deductibility memo {fy}.docx",
        ]
        names += [f"Tax authority correspondence - {m} {fy}.pdf" for m in _MONTHS[3:]]
        names += [f"Payroll summary {m} {fy}.xlsx" for m in _MONTHS]
    elif kind == "vat":
        for year, last_q in ((fy, 4), (y, quarters_this_year)):
            for q in range(1, last_q + 1):
                names += [f"{year} Q{q} VAT return.pdf", f"{year} Q{q} VAT reconciliation.xlsx",
                          f"{year} Q{q} VAT payment confirmation.pdf"]
        names += [f"EC sales list {m} {fy}.csv" for m in _MONTHS]
        names += [f"Purchase ledger {m} {fy}.xlsx" for m in _MONTHS[::2]]
        names += [f"Sales ledger {m} {fy}.xlsx" for m in _MONTHS[1::2]]
        names += ["VAT registration certificate.pdf", "Partial exemption calculation.xlsx",
                  "Reverse charge review.docx", "Import VAT statements.zip"]
    elif kind == "audit":
        banks = ("BNP Paribas", "HSBC", "Barclays", "ING", "Rabobank", "Citibank", "Deutsche Bank")
        customers = ("Carrefour", "Maersk", "Tesco", "DHL", "Unilever", "Siemens", "Philips", "Nestlé")
        names += [
            f"FY{fy} audit planning memo.docx", f"FY{fy} audit strategy presentation.pptx",
            f"PBC list FY{fy}.xlsx", f"FY{fy} trial balance.xlsx",
            f"Management representation letter FY{fy}.pdf", f"FY{fy} inventory count instructions.pdf",
            f"FY{fy} inventory count results.xlsx", "Revenue cut-off testing.xlsx",
            "Related parties questionnaire.docx", "Fixed asset additions sample.xlsx",
            "Journal entry testing extract.csv", "IT general controls walkthrough.docx",
            f"Going concern assessment FY{fy}.docx", f"Lease schedule IFRS 16 FY{fy}.xlsx",
            f"Legal confirmation - outside counsel FY{fy}.pdf", f"Audit committee report FY{fy}.pdf",
            "Payroll reconciliation.xlsx", "Accruals listing.xlsx", "Aged debtors report.xlsx",
        ]
        names += [f"FY{fy} draft financial statements v{n}.docx" for n in range(1, 6)]
        names += [f"Bank confirmation - {bank} FY{fy}.pdf" for bank in banks]
        names += [f"Debtor circularisation - {customer}.pdf" for customer in customers]
    elif kind == "rd":
        names += [
            f"{y} R&D claim report - draft.docx", f"{y} R&D claim report - final.pdf",
            f"{fy} qualifying expenditure schedule.xlsx", "Project narratives - solar forecasting.docx",
            "Project narratives - battery storage.docx", "Project narratives - grid balancing.docx",
            "Technical interview notes.docx", "Staff time allocation.xlsx", "Subcontractor invoices.zip",
            "Competent professional statement.pdf", f"{fy} R&D tax credit computation.xlsx",
            "Prior year claim correspondence.pdf", "Grant funding analysis.xlsx",
        ]
        names += [f"Timesheets {m} {fy}.csv" for m in _MONTHS]
        names += [f"Cloud computing costs {m} {fy}.xlsx" for m in _MONTHS[::3]]
    elif kind == "tp":
        names += [
            f"Transfer pricing master file {fy}.docx", "Functional analysis interviews.docx",
            "Benchmarking study - logistics services.xlsx", "Intercompany agreements.zip",
            "Management fee allocation model.xlsx", f"Country-by-country report {fy}.xlsx",
            "Transfer pricing policy v2.pdf", "Closing memo.pdf", "Final report.pdf",
            "Steering committee deck.pptx",
        ]
        names += [f"Local file - {country} {fy}.docx"
                  for country in ("France", "Germany", "Spain", "Italy", "Belgium", "Poland", "Netherlands")]
        names += [f"Segmented P&L - {country} {fy}.xlsx"
                  for country in ("France", "Germany", "Spain", "Italy", "Belgium", "Poland")]
    elif kind == "erp":
        names += [
            "Current state assessment.pdf", "Chart of accounts mapping.xlsx", "Data migration plan.docx",
            "Vendor selection scorecard.xlsx", "Target operating model.pptx", "Process map - order to cash.pdf",
            "Process map - procure to pay.pdf", "Process map - record to report.pdf", "RACI matrix.xlsx",
            "User acceptance test scripts.xlsx", "Cutover plan.xlsx", "Risk and issues log.xlsx",
            "Business case.pdf",
        ]
        names += [f"Steering committee deck - {m} {y if i < now.month else fy}.pptx"
                  for i, m in enumerate(_MONTHS)]
        names += [f"Requirements workshop notes - {area}.docx"
                  for area in ("finance", "procurement", "inventory", "sales", "payroll", "reporting")]
    elif kind == "dd":
        names += [
            "Project Kestrel - information memorandum.pdf", "Project Kestrel - NDA (signed).pdf",
            "Data room index.xlsx", "Quality of earnings analysis.xlsx", "Net debt schedule.xlsx",
            "Working capital analysis.xlsx", "Tax due diligence findings.docx", "Red flag report.pdf",
            "Management presentation.pptx", "Customer contracts summary.xlsx", "Sell-side Q&A log.xlsx",
            "Sale and purchase agreement - markup.docx", "Locked box mechanism memo.docx",
            "Synergies model.xlsx", "Pension liabilities review.pdf", "Site visit notes.docx",
        ]
        names += [f"Financial due diligence report - draft v{n}.docx" for n in range(1, 5)]
        names += [f"Target monthly management accounts {m} {fy}.xlsx" for m in _MONTHS]
        names += [f"Expert call notes {n:02d}.msg" for n in range(1, 6)]
    else:  # pragma: no cover - every kind above has a list
        raise ValueError(kind)
    return common + names


def build_demo_payload(now: datetime, seed: int = 7) -> dict[str, Any]:
    """The demo directory as a bulk-import payload (``mode: merge``), the same for the same arguments.

    ``now`` anchors every timestamp (naive datetimes are taken as UTC); ``seed`` picks names, dates,
    document lists and which documents are shared. Nothing is read from the environment.
    """
    rng = random.Random(seed)
    now = _utc(now).replace(microsecond=0)
    y, fy = now.year, now.year - 1

    def days_ago(low: float, high: float) -> datetime:
        return now - timedelta(seconds=rng.randint(int(low * 86400), int(high * 86400)))

    def days_ahead(low: float, high: float) -> datetime:
        return now + timedelta(seconds=rng.randint(int(low * 86400), int(high * 86400)))

    # -- names ---------------------------------------------------------------------------------
    pinned = set(_PINNED_NAMES.values())
    first_pool = [n for n in _FIRST_NAMES if n not in {f for f, _ in pinned}]
    last_pool = [n for n in _LAST_NAMES if n not in {last for _, last in pinned}]
    client_slot_count = sum(org["users"] for org in _ORGS)
    needed = len(_INTERNAL) + client_slot_count - len(_PINNED_NAMES)
    firsts = rng.sample(first_pool, needed)
    lasts = rng.sample(last_pool, needed)  # distinct surnames keep ids and emails distinct
    drawn = iter(zip(firsts, lasts))

    principals: list[dict[str, Any]] = []
    users: dict[str, dict[str, Any]] = {}  # slot key ("tax_partner", "acme/cfo") -> principal
    disabled: set[str] = set()

    def add_user(slot: str, department: str, manager_slot: str | None, domain: str,
                 is_disabled: bool) -> None:
        first, last = _PINNED_NAMES.get(slot) or next(drawn)
        handle = f"{_slug(first)}.{_slug(last)}"
        user: dict[str, Any] = {
            "id": f"user:{handle}",
            "name": f"{first} {last}",
            "email": f"{handle}@{domain}",
            "department": department,
        }
        if manager_slot is not None:
            user["manager"] = users[manager_slot]["id"]
        user["status"] = "disabled" if is_disabled else "active"
        # Active users signed in within the past 90 days; leavers last did months ago.
        seen = days_ago(120, 300) if is_disabled else days_ago(0.02, 90)
        user["last_seen_at"] = _iso(seen)
        if is_disabled:
            disabled.add(user["id"])
        users[slot] = user
        principals.append(user)

    for slot, department, manager_slot in _INTERNAL:
        add_user(slot, department, manager_slot, FIRM_DOMAIN, slot in _DISABLED_INTERNAL)
    for org in _ORGS:
        for slot, team, manager_slot in _CLIENT[: org["users"]]:
            add_user(f"{org['slug']}/{slot}", team,
                     None if manager_slot is None else f"{org['slug']}/{manager_slot}",
                     org["domain"], (org["slug"], slot) in _DISABLED_CLIENT)

    def uid(slot: str) -> str:
        return users[slot]["id"]

    def client_slots(org_slug: str) -> list[str]:
        return [slot for slot in users if slot.startswith(f"{org_slug}/")]

    # -- groups (member groups before the groups that contain them) -----------------------------
    def group(gid: str, name: str, members: list[str]) -> str:
        principals.append({"id": gid, "name": name, "members": members})
        return gid

    tax_seniors = group("group:tax-seniors", "Tax partners and senior managers",
                        [uid("tax_partner"), uid("tax_sm_1"), uid("tax_sm_2")])
    tax_team = group("group:tax-team", "Tax team",
                     [tax_seniors] + [uid(f"tax_{i}") for i in range(1, 6)])
    audit_team = group("group:audit-team", "Audit team",
                       [uid(s) for s in ("audit_partner", "audit_sm_1", "audit_sm_2")]
                       + [uid(f"audit_{i}") for i in range(1, 6)])
    advisory_team = group("group:advisory-team", "Advisory team",
                          [uid(s) for s in ("adv_partner", "adv_sm_1", "adv_sm_2", "adv_1", "adv_2", "adv_3")])
    client_service = group("group:client-service", "Client service and account management",
                           [uid(s) for s in ("managing_partner", "cs_head", "am_1", "am_2", "am_3", "am_4")])
    group("group:all-staff", f"All {FIRM_NAME} staff",
          [tax_team, audit_team, advisory_team, client_service]
          + [uid(s) for s in ("it_head", "it_admin", "it_1", "it_2", "sec_head", "sec_analyst", "compliance")])
    finance_groups: dict[str, str] = {}
    for org in _ORGS:
        finance_groups[org["slug"]] = group(
            f"group:{org['slug']}-finance", f"{org['name']} finance team",
            [uid(s) for s in client_slots(org["slug"]) if s.split("/")[1] in _FINANCE_SLOTS])

    principals.append({"id": PORTAL_SERVICE, "name": "Client portal"})

    # -- resources ------------------------------------------------------------------------------
    resources: list[dict[str, Any]] = []
    account_manager = {org["slug"]: uid(f"am_{i}") for i, org in enumerate(_ORGS, start=1)}

    for org in _ORGS:
        resources.append({
            "id": f"organization:{org['slug']}",
            "name": org["name"],
            "parent": None,
            "owner": account_manager[org["slug"]],
            "attributes": {
                "industry": org["industry"],
                "country": org["country"],
                "billing_currency": org["currency"],
                "tier": org["tier"],
                "client_since": org["client_since"],
                "portal_domain": org["domain"],
            },
        })

    seniors = {"Tax": ["tax_sm_1", "tax_sm_2"], "Audit": ["audit_sm_1", "audit_sm_2"],
               "Advisory": ["adv_sm_1", "adv_sm_2"]}
    partner = {"Tax": "tax_partner", "Audit": "audit_partner", "Advisory": "adv_partner"}
    team_group = {"Tax": tax_team, "Audit": audit_team, "Advisory": advisory_team}
    projects: list[dict[str, Any]] = []  # working records, not payload
    for template, org_slug, kind, title, status in _PROJECTS:
        department = _KIND_DEPARTMENT[kind]
        manager_slot = seniors[department].pop(0)
        seniors[department].append(manager_slot)  # rotate engagements between senior managers
        start = days_ago(300, 420) if status == "closed" else days_ago(60, 330)
        if status == "planning":
            start = days_ago(10, 40)
        attributes: dict[str, Any] = {
            "engagement_type": department.lower(),
            "service_line": _KIND_SERVICE_LINE[kind],
            "status": status,
            "lead_partner": uid(partner[department]),
            "start_date": start.date().isoformat(),
        }
        if kind in ("tax", "audit", "tp", "rd"):
            attributes["fiscal_year"] = f"FY{fy}"
        if status == "closed":
            attributes["end_date"] = (start + timedelta(days=rng.randint(150, 220))).date().isoformat()
        project = {
            "id": f"project:{template.format(y=y, fy=fy)}",
            "name": title.format(y=y, fy=fy),
            "parent": f"organization:{org_slug}",
            "owner": uid(manager_slot),
            "attributes": attributes,
        }
        resources.append(project)
        projects.append({"resource": project, "org": org_slug, "kind": kind, "department": department,
                         "manager_slot": manager_slot, "start": start, "status": status, "docs": []})

    # Spread the documents: a floor per project, the rest at random (capped by each candidate list).
    candidates = [_doc_candidates(p["kind"], y, fy, now) for p in projects]
    counts = [_DOCS_PER_PROJECT_MIN] * len(projects)
    while sum(counts) < _DOCS_TOTAL:
        i = rng.randrange(len(projects))
        if counts[i] < min(len(candidates[i]), 32):
            counts[i] += 1
    documents: list[dict[str, Any]] = []
    for project, names, count in zip(projects, candidates, counts):
        pid = project["resource"]["id"].split(":", 1)[1]
        engagement_staff = [project["manager_slot"]] + [
            slot for slot, department, _ in _INTERNAL
            if department == project["department"] and slot not in _DISABLED_INTERNAL
            and not slot.endswith("partner") and slot != project["manager_slot"]]
        client_uploaders = [s for s in client_slots(project["org"])
                            if s.split("/")[1] in ("controller", "accountant_1", "accountant_2", "ap_clerk")]
        window_start = max(project["start"], now - timedelta(days=360))
        window = int((now - window_start).total_seconds())
        for n, filename in enumerate(sorted(rng.sample(names, count)), start=1):
            ext = filename.rsplit(".", 1)[1]
            uploaded_at = window_start + timedelta(seconds=rng.randint(0, max(window - 3600, 1)))
            uploader = rng.choice(client_uploaders if rng.random() < 0.45 else engagement_staff)
            classification = "restricted" if project["kind"] == "dd" else rng.choice(
                ("client confidential", "client confidential", "internal", "client confidential"))
            document = {
                "id": f"document:{pid}-{n:03d}",
                "name": filename,
                "parent": project["resource"]["id"],
                "owner": project["resource"]["owner"],
                "attributes": {
                    "content_type": _CONTENT_TYPES[ext],
                    "size_bytes": rng.randint(*_SIZE_RANGE[ext]),
                    "uploaded_by": uid(uploader),
                    "uploaded_at": _iso(uploaded_at),
                    "classification": classification,
                },
            }
            documents.append(document)
            project["docs"].append(document)
    resources.extend(documents)

    invoice_number = 1000 + rng.randint(100, 400)
    for org in _ORGS:
        org_projects = [p for p in projects if p["org"] == org["slug"]]
        for _ in range(rng.randint(2, 4)):
            invoice_number += rng.randint(3, 40)
            issued = days_ago(5, 330).date()
            due = issued + timedelta(days=30)
            if due < now.date() - timedelta(days=10):
                status = "paid" if rng.random() < 0.8 else "overdue"
            elif due < now.date():
                status = "overdue"
            else:
                status = "open"
            engagement = rng.choice(org_projects)["resource"]["id"]
            attributes: dict[str, Any] = {
                "number": f"HV-{issued.year}-{invoice_number:05d}",
                "amount": f"{rng.randint(45, 980) * 50}.00",
                "currency": org["currency"],
                "issued_on": issued.isoformat(),
                "due_date": due.isoformat(),
                "status": status,
                "engagement": engagement,
            }
            if status == "paid":
                paid = min(due + timedelta(days=rng.randint(-20, 12)), now.date())
                attributes["paid_on"] = max(paid, issued).isoformat()
            resources.append({
                "id": f"invoice:{org['slug']}-{invoice_number}",
                "name": f"Invoice HV-{issued.year}-{invoice_number:05d}",
                "parent": f"organization:{org['slug']}",
                "owner": account_manager[org["slug"]],
                "attributes": attributes,
            })

    resources.append({"id": SYSTEM_RESOURCE, "name": "accessreview"})

    # -- grants ---------------------------------------------------------------------------------
    grants: list[dict[str, Any]] = []
    seen_grants: set[tuple[str, str, str]] = set()

    def grant(principal: str, role: str, resource: str, granted_by: str, reason: str, *,
              expires: str | None = None, after: datetime | None = None) -> None:
        """``expires``: None, "past" (already expired) or "future" (still running, ends soon)."""
        key = (principal, role, resource)
        if key in seen_grants:
            return
        seen_grants.add(key)
        if granted_by == principal:
            granted_by = uid("managing_partner")
        earliest = max(after or now - timedelta(days=365), now - timedelta(days=365))
        if expires == "past":
            earliest = min(earliest, now - timedelta(days=60))
            latest = now - timedelta(days=35)
        else:
            latest = now - timedelta(hours=2)
        span = max(int((latest - earliest).total_seconds()), 1)
        granted_at = earliest + timedelta(seconds=rng.randint(0, span))
        record: dict[str, Any] = {
            "principal": principal, "role": role, "resource": resource,
            "granted_by": granted_by, "granted_at": _iso(granted_at), "reason": reason,
        }
        if expires == "past":
            low = (now - granted_at).total_seconds() / 86400
            record["expires_at"] = _iso(now - timedelta(seconds=rng.randint(3 * 86400, int(min(low - 1, 30) * 86400))))
        elif expires == "future":
            record["expires_at"] = _iso(days_ahead(5, 120))
        grants.append(record)

    # The service itself.
    grant(PORTAL_SERVICE, "portal_client", SYSTEM_RESOURCE, uid("it_admin"),
          "Client portal: authorization checks and nightly directory sync")
    grant(uid("it_admin"), "admin", SYSTEM_RESOURCE, uid("it_head"), "Service administrator (IT operations)")
    grant(uid("sec_head"), "security_lead", SYSTEM_RESOURCE, uid("it_head"),
          "Owns access review campaigns for the client portal")
    grant(uid("compliance"), "auditor", SYSTEM_RESOURCE, uid("sec_head"),
          "Annual ISAE 3402 controls testing: read access to audit trail and reports")
    grant(uid("sec_analyst"), "security_lead", SYSTEM_RESOURCE, uid("sec_head"),
          "Cover for the security lead during annual leave", expires="past")
    grant(uid("it_1"), "auditor", SYSTEM_RESOURCE, uid("sec_head"),
          "External penetration test support, read-only", expires="future")

    for org in _ORGS:
        slug = org["slug"]
        org_id = f"organization:{slug}"
        am = account_manager[slug]
        grant(am, "account_manager", org_id, uid("cs_head"), f"Account manager for {org['name']}")
        grant(uid(f"{slug}/cfo"), "admin", org_id, am, "Client administrator nominated in the engagement letter")
        grant(uid(f"{slug}/controller"), "billing_admin", org_id, am, "Receives and approves invoices")
        grant(finance_groups[slug], "member", org_id, am, "Client finance team access to the portal")
        for slot in client_slots(slug):
            if slot.split("/")[1] not in _FINANCE_SLOTS:
                grant(uid(slot), "member", org_id, uid(f"{slug}/cfo"), "Requested by the client administrator")
    # Lead partners also look after their key accounts; one temporary billing cover.
    grant(uid("tax_partner"), "account_manager", "organization:acme", uid("managing_partner"),
          "Lead partner for Acme Logistics")
    grant(uid("audit_partner"), "account_manager", "organization:bluepeak", uid("managing_partner"),
          "Lead partner for Bluepeak Energy")
    grant(uid("acme/ap_clerk"), "billing_admin", "organization:acme", account_manager["acme"],
          "Covering invoice approval while the controller is on parental leave", expires="future")
    # A leaver's direct membership, still on record (their finance-group membership too).
    grant(uid("acme/accountant_2"), "member", "organization:acme", uid("acme/cfo"),
          "Direct access requested before the finance group existed")
    grant(uid("am_2"), "account_manager", "organization:lumen", uid("cs_head"),
          "Handover cover while the Lumen Health account manager was on leave", expires="past")

    for project in projects:
        resource = project["resource"]
        pid = resource["id"]
        department = project["department"]
        slug = project["org"]
        start = project["start"]
        manager = uid(project["manager_slot"])
        grant(manager, "manager", pid, uid(partner[department]), "Engagement manager", after=start)
        grant(team_group[department], "editor", pid, manager, f"{department} engagement team", after=start)
        grant(uid(f"{slug}/controller"), "editor", pid, manager,
              "Client contact: uploads ledgers and supporting documents", after=start)
        if project["status"] == "closed":
            grant(uid("adv_1"), "editor", pid, manager, "Benchmarking analyst for the review",
                  expires="past", after=start)
            grant(uid(f"{slug}/legal"), "viewer", pid, manager, "Review of intercompany agreements",
                  expires="past", after=start)
        if department == "Audit":
            tax_sm = seniors["Tax"][0]
            grant(uid(tax_sm), "viewer", pid, manager, "Tax provision review for the audit file", after=start)
        if project["kind"] == "dd":
            # Deal work is ring-fenced: named people only, time-boxed.
            grant(uid(f"{slug}/legal"), "editor", pid, manager, "Client counsel: SPA markup",
                  expires="future", after=start)
            grant(uid("tax_sm_2"), "viewer", pid, manager, "Tax due diligence workstream",
                  expires="future", after=start)

    grant(uid("tax_5"), "editor", projects[0]["resource"]["id"], projects[0]["resource"]["owner"],
          "Prepares the corporate tax computation")
    grant(uid("audit_5"), "editor", "project:northwind-audit-fy" + str(fy), uid("audit_sm_1"),
          "Fieldwork team")
    grant(uid("audit_3"), "editor", "project:lumen-audit-fy" + str(fy), uid("audit_sm_2"),
          "Fieldwork cover until sign-off", expires="future")
    grant(uid("lumen/operations"), "viewer", "project:lumen-audit-fy" + str(fy), uid("lumen/cfo"),
          "Inventory count coordination")

    # Document-level sharing: specialists outside the engagement team, and client staff who need to
    # correct one file rather than edit the whole engagement.
    specialists = [slot for slot, department, _ in _INTERNAL
                   if department in ("Tax", "Audit", "Advisory") and not slot.endswith("partner")]
    shared = rng.sample(documents, 26)
    by_project = {p["resource"]["id"]: p for p in projects}
    for i, document in enumerate(shared):
        project = by_project[document["parent"]]
        uploaded = datetime.fromisoformat(document["attributes"]["uploaded_at"])
        expires = "past" if i < 4 else ("future" if i < 10 else None)
        if expires == "past" and (now - uploaded).days < 62:
            expires = "future"
        if i % 3 == 2:
            accountant = rng.choice([s for s in client_slots(project["org"])
                                     if s.split("/")[1] in ("accountant_1", "accountant_2", "ap_clerk")])
            grant(uid(accountant), "editor", document["id"], project["resource"]["owner"],
                  "Client to replace the file with a corrected version", expires=expires, after=uploaded)
        else:
            outsiders = [s for s in specialists if _department_of(s) != project["department"]]
            specialist = rng.choice(outsiders)
            role = "viewer" if rng.random() < 0.7 else "editor"
            grant(uid(specialist), role, document["id"], project["resource"]["owner"],
                  f"Second review by {_department_of(specialist).lower()} specialist",
                  expires=expires, after=uploaded)
    # The acme leaver still holds a document grant.
    acme_doc = next(d for d in documents if d["parent"] == projects[1]["resource"]["id"])
    grant(uid("acme/accountant_2"), "editor", acme_doc["id"], projects[1]["resource"]["owner"],
          "Uploads the quarterly VAT workings",
          after=datetime.fromisoformat(acme_doc["attributes"]["uploaded_at"]))

    return {
        "source": "demo",
        "mode": "merge",
        "dry_run": False,
        "principals": principals,
        "resources": resources,
        "grants": grants,
    }


def _department_of(slot: str) -> str:
    return next(department for s, department, _ in _INTERNAL if s == slot)


if __name__ == "__main__":  # pragma: no cover
    import json
    import sys

    print(json.dumps(build_demo_payload(datetime.now(timezone.utc)), indent=2, ensure_ascii=False))
    sys.exit(0)
