"""The campaign workbook states what happened: how items got automated outcomes, who decided, what was
overdue (one definition everywhere), totals by hand and automated, and what the recommendations rest on."""

from __future__ import annotations

import io

from openpyxl import load_workbook

from accessreview.campaigns.measures import OVERDUE_DEFINITION
from accessreview.scheduler import run_once
from test_campaigns import definition, directory, items, launch  # noqa: F401 - directory is a fixture


def campaign_workbook(client, auditor, campaign_id, stage="sign_off"):
    listed = client.get(f"/v1/reports?campaign={campaign_id}", headers=auditor).get_json()["items"]
    report = next(r for r in listed if r["stage"] == stage)
    with client.get(f"/v1/reports/{report['id']}", headers=auditor) as response:
        assert response.status_code == 200
        return load_workbook(io.BytesIO(response.data))


def summary_of(book):
    return {row[0]: row[1] for row in book["Summary"].iter_rows(min_row=2, values_only=True)}


def table(sheet):
    header = [c.value for c in sheet[1]]
    return [dict(zip(header, row)) for row in sheet.iter_rows(min_row=2, values_only=True)]


def audit(client, auditor, action):
    return client.get(f"/v1/audit-events?action={action}&limit=1000", headers=auditor).get_json()["items"]


def signed_off_with_ann_revoked(client, lead, token_for):
    """A campaign whose reviewer revoked ann's editor grant on p1 (the rest kept at the due date), closed
    and signed off: its remediation has run. Returns the campaign and ann's item."""
    campaign = launch(client, lead, definition(client, lead, on_no_response="keep"))
    ann = items(client, lead, campaign["id"])[("user:ann", "editor", "project:p1")]
    client.post(f"/v1/review-items/{ann['id']}/decision", json={"decision": "revoke", "justification": "left"},
                headers=token_for("user:owen"))
    client.post(f"/v1/campaigns/{campaign['id']}/close", headers=lead)
    client.post(f"/v1/campaigns/{campaign['id']}/sign-off", json={"statement": "ok"}, headers=lead)
    return campaign, ann


def test_closed_early_items_say_who_closed_and_when(client, lead, auditor, directory, token_for, clock):
    campaign = launch(client, lead, definition(client, lead, on_no_response="revoke"))
    owen, mia = token_for("user:owen"), token_for("user:mia")
    found = items(client, lead, campaign["id"])
    delegated = found[("user:ann", "editor", "project:p1")]
    assert client.post(f"/v1/review-items/{delegated['id']}/reassign", json={"to": "user:mia", "reason": "leave"},
                       headers=owen).status_code == 200
    clock.advance(hours=3)
    assert client.post(f"/v1/review-items/{delegated['id']}/decision", json={"decision": "keep"},
                       headers=mia).status_code == 200
    kept = found[("user:ben", "editor", "project:p1")]
    assert client.post(f"/v1/review-items/{kept['id']}/decision", json={"decision": "revoke", "justification": "x"},
                       headers=owen).status_code == 200
    clock.advance(days=2)  # long before the due date (14 days)
    assert client.post(f"/v1/campaigns/{campaign['id']}/close", headers=lead).status_code == 200
    assert client.post(f"/v1/campaigns/{campaign['id']}/sign-off", json={"statement": "ok"},
                       headers=lead).status_code == 200

    after = items(client, lead, campaign["id"])
    automated = [i for i in after.values() if i["automated_rule"]]
    assert automated and all("closed early by user:lena" in i["justification"] and "due date" not in
                             i["justification"].split(";")[0].replace("(due", "") for i in automated)
    # One audit event per automated item, naming its campaign, decision and why.
    events = [e for e in audit(client, auditor, "review.automated") if e["after"]["campaign"] == campaign["id"]]
    assert sorted(e["target"] for e in events) == sorted(f"review_item:{i['id']}" for i in automated)
    assert all(e["after"]["decision"] == "revoke" and "closed early" in e["after"]["justification"]
               for e in events)

    book = campaign_workbook(client, auditor, campaign["id"])
    summary = summary_of(book)
    assert "closed by user:lena" in summary["Close"] and "closed early" in summary["Close"]
    assert "closed early by user:lena" in summary["No-response outcome: why"]
    # Totals: by hand and automated, "Revoked (all)" includes the automated revocations.
    assert summary["Revoked by hand"] == 1 and summary["Kept by hand"] == 1
    assert summary["Revoked by the no-response rule"] == len(automated)
    assert summary["Revoked (all)"] == 1 + len(automated)
    assert summary["Kept (all)"] == 1
    assert summary["Overdue"] == 0 and summary["Overdue: definition"] == OVERDUE_DEFINITION
    assert "decision log" in summary["Recommendations: decision log coverage"]
    assert summary["Decision log: retention (days)"] == 400
    assert summary["Recommendations on complete data"] + summary["Recommendations on incomplete data"] == \
        len(after)
    confidence = {row["Item"]: row["Recommendation confidence"] for row in table(book["Items"])}
    assert {confidence[i["id"]] for i in after.values()} <= {"complete", "incomplete"}
    assert all(confidence[i["id"]] == (i.get("recommendation_confidence") or "incomplete") for i in after.values())

    reviewers = {row["Reviewer"]: row for row in table(book["Reviewers"]) if row["Reviewer"] != "Overdue means"}
    # Mia decided an item assigned to Owen: she is credited, Owen's row says someone else decided it.
    assert reviewers["user:mia"]["Decided by hand"] == 1 and reviewers["user:mia"]["of which assigned to others"] == 1
    assert reviewers["user:mia"]["Assigned (of record)"] == 0
    assert reviewers["user:owen"]["Decided by hand"] == 1
    assert reviewers["user:owen"]["Their items decided by others"] == 1
    assert sum(r["Their items automated"] for r in reviewers.values()) == len(automated)
    assert sum(r["Overdue"] for r in reviewers.values()) == 0
    assert table(book["Reviewers"])[-1]["Assigned (of record)"] == OVERDUE_DEFINITION
    rows = {row["Item"]: row for row in table(book["Items"])}
    assert rows[delegated["id"]]["Decided by"] == "user:mia"
    assert rows[delegated["id"]]["Reviewer of record"] == "user:owen"


def test_items_left_at_the_due_date_say_so_and_count_as_overdue_everywhere(app, client, lead, auditor, directory,
                                                                           token_for, clock):
    campaign = launch(client, lead, definition(client, lead, on_no_response="keep"))
    owen = token_for("user:owen")
    found = items(client, lead, campaign["id"])
    clock.advance(days=15)  # one day past due: decided late, by hand
    late = found[("user:ann", "editor", "project:p1")]
    assert client.post(f"/v1/review-items/{late['id']}/decision", json={"decision": "keep"},
                       headers=owen).status_code == 200
    open_measures = client.get(f"/v1/campaigns/{campaign['id']}/metrics", headers=lead).get_json()
    assert open_measures["overdue"] == len(found), "the late decision and the still undecided ones"
    run_once(app)  # the scheduler closes the campaign: its due date has passed
    closed = client.get(f"/v1/campaigns/{campaign['id']}", headers=lead).get_json()
    assert closed["status"] == "closed"
    automated = [i for i in items(client, lead, campaign["id"]).values() if i["automated_rule"]]
    assert automated and all(i["justification"].startswith("no decision by the due date") for i in automated)
    assert len([e for e in audit(client, auditor, "review.automated")
                if e["after"]["campaign"] == campaign["id"]]) == len(automated)
    assert client.post(f"/v1/campaigns/{campaign['id']}/sign-off", json={"statement": "ok"},
                       headers=lead).status_code == 200
    measures = client.get(f"/v1/campaigns/{campaign['id']}/metrics", headers=lead).get_json()

    book = campaign_workbook(client, auditor, campaign["id"])
    summary = summary_of(book)
    reviewers = [r for r in table(book["Reviewers"]) if r["Reviewer"] != "Overdue means"]
    rows = table(book["Items"])
    overdue_items = [r for r in rows if r["Overdue"] == "yes"]
    exceptions = [r for r in table(book["Exceptions"]) if r["Exception"] == "overdue"]
    assert summary["Overdue"] == measures["overdue"] == len(found)
    assert sum(r["Overdue"] for r in reviewers) == len(overdue_items) == len(exceptions) == len(found)
    assert summary["Kept (all)"] == len(found) and summary["Kept by the no-response rule"] == len(automated)
    assert "due date reached" in summary["Close"] and "at or after the due date" in summary["Close"]


def test_the_population_hash_is_recomputed_from_the_workbook_alone(client, lead, auditor, portal, token_for,
                                                                   tmp_path):
    import json
    import subprocess
    import sys

    from test_campaigns import DIRECTORY
    with_expiry = json.loads(json.dumps(DIRECTORY))
    with_expiry["grants"][4]["expires_at"] = "2027-03-31T17:30:00Z"  # group:team's grant
    with_expiry["principals"].append({"id": "user:zed", "name": "Zoë Zed"})
    with_expiry["principals"][6]["members"] = ["user:ben", "user:zed"]
    assert client.post("/v1/directory/import", json=with_expiry, headers=portal).status_code == 200
    campaign = launch(client, lead, definition(client, lead, on_no_response="keep",
                                               scope={"subtrees": ["organization:acme"], "membership_groups": []}))
    client.post(f"/v1/campaigns/{campaign['id']}/close", headers=lead)
    client.post(f"/v1/campaigns/{campaign['id']}/sign-off", json={"statement": "ok"}, headers=lead)
    book = campaign_workbook(client, auditor, campaign["id"])
    rows = table(book["Items"])
    group = next(r for r in rows if r["Principal"] == "group:team")
    assert sorted(group["Group members"].split(", ")) == ["user:ben", "user:zed"] and group["Grant"] is not None
    assert group["Expires at (UTC)"].isoformat() == "2027-03-31T17:30:00"
    assert any(r["Kind"] == "membership" for r in rows)

    # The recipe the workbook itself states, run as written on the saved file: it prints True.
    how = {row[0]: row[1] for row in book["How to verify"].iter_rows(min_row=2, values_only=True)}
    book.save(tmp_path / "REPORT.xlsx")
    run = subprocess.run([sys.executable, "-c", how["Population hash: recompute in Python"]], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.stdout.strip() == "True", run.stderr
    # ... and it notices a changed item.
    changed = load_workbook(tmp_path / "REPORT.xlsx")
    header = [c.value for c in changed["Items"][1]]
    changed["Items"].cell(row=2, column=header.index("Resource") + 1, value="project:elsewhere")
    changed.save(tmp_path / "REPORT.xlsx")
    run = subprocess.run([sys.executable, "-c", how["Population hash: recompute in Python"]], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.stdout.strip() == "False", run.stderr

    summary = summary_of(book)
    total = summary["Directory at launch: grants"]
    assert total >= len(with_expiry["grants"])  # and the grants the test tokens hold
    assert summary["Directory at launch: grants in scope"] == 6 == len([r for r in rows if r["Kind"] == "grant"])
    assert summary["Directory at launch: grants out of scope"] == total - 6
    assert sum(v for k, v in summary.items() if k.startswith("Out of scope: ")) == total - 6
    assert summary["Out of scope: resource outside the scope's resources and subtrees"] >= 1  # ann on other
    assert summary["Directory at launch: memberships in scope"] == 2
    assert "openssl pkeyutl -verify -pubin -inkey KEY.pem -rawin -in REPORT.xlsx -sigfile REPORT.xlsx.sig" in \
        how["Verify with OpenSSL 3"]
    keys = client.get("/v1/signing-keys", headers=auditor).get_json()
    current = next(k for k in keys["items"] if k["key_id"] == keys["current"])
    assert current["fingerprint"] in how["This file's signature"] and summary["Signing key fingerprint (SHA-256)"] \
        == current["fingerprint"]


def run_recipe(code, cwd):
    import subprocess
    import sys
    run = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_the_audit_sheet_is_checked_on_its_own(client, lead, auditor, directory, token_for, tmp_path):
    campaign = launch(client, lead, definition(client, lead, on_no_response="revoke"))
    owen = token_for("user:owen")
    found = items(client, lead, campaign["id"])
    client.post(f"/v1/review-items/{found[('user:ann', 'editor', 'project:p1')]['id']}/decision",
                json={"decision": "keep", "justification": "needs it — für Ärzte"}, headers=owen)
    client.post(f"/v1/campaigns/{campaign['id']}/close", headers=lead)
    client.post(f"/v1/campaigns/{campaign['id']}/sign-off", json={"statement": "ok"}, headers=lead)
    listed = client.get(f"/v1/reports?campaign={campaign['id']}", headers=auditor).get_json()["items"]
    book = campaign_workbook(client, auditor, campaign["id"])
    trail = table(book["Audit trail"])
    assert {"campaign.launched", "review.decided", "review.automated", "campaign.closed"} <= {e["Action"] for e in trail}
    decided = next(e for e in trail if e["Action"] == "review.decided")
    assert len(decided["Event id"]) == 36 and len(decided["Prev hash"]) == 64 and decided["Request id"]
    assert "für Ärzte" in decided["After"] and decided["Before"] == "null"
    # The chain head in the Summary is where the trail stood: the report's own event follows it.
    summary = summary_of(book)
    created = client.get(f"/v1/audit-events?target=report:{listed[0]['id']}", headers=auditor).get_json()["items"][0]
    assert created["action"] == "report.created"
    assert (summary["Audit chain head at generation: seq"], summary["Audit chain head at generation: hash"]) == \
        (created["seq"] - 1, created["prev_hash"])

    how = {row[0]: row[1] for row in book["How to verify"].iter_rows(min_row=2, values_only=True)}
    recipe = how["Audit trail: check in Python"]
    book.save(tmp_path / "REPORT.xlsx")
    assert run_recipe(recipe, tmp_path) == f"{len(trail)} events verified"
    header = [c.value for c in book["Audit trail"][1]]
    column = {name: index + 1 for index, name in enumerate(header)}
    # An edited state: named by its seq.
    edited = load_workbook(tmp_path / "REPORT.xlsx")
    row = next(i for i, e in enumerate(trail, start=2) if e["Action"] == "review.decided")
    edited["Audit trail"].cell(row=row, column=column["After"], value=decided["After"].replace("keep", "revoke"))
    edited.save(tmp_path / "edited.xlsx")
    (tmp_path / "REPORT.xlsx").rename(tmp_path / "original.xlsx")
    (tmp_path / "edited.xlsx").rename(tmp_path / "REPORT.xlsx")
    assert run_recipe(recipe, tmp_path) == f"seq {decided['Seq']}: its content does not match its hash (edited)"
    # An event edited and its hash recomputed to match: the next event's link names the break.
    import hashlib
    import json
    i = next(i for i in range(len(trail) - 1) if trail[i + 1]["Seq"] == trail[i]["Seq"] + 1)
    event = trail[i]
    forged_after = json.dumps({**(json.loads(event["After"]) or {}), "forged": True}, sort_keys=True)
    content = {"seq": event["Seq"], "id": event["Event id"], "occurred_at": event["Time (UTC)"],
               "actor": event["Actor"], "action": event["Action"], "target": event["Target"] or None,
               "before": json.loads(event["Before"]), "after": json.loads(forged_after),
               "request_id": event["Request id"] or None, "prev_hash": event["Prev hash"]}
    forged_hash = hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":"),
                                            ensure_ascii=False).encode()).hexdigest()
    forged = load_workbook(tmp_path / "original.xlsx")
    forged["Audit trail"].cell(row=i + 2, column=column["After"], value=forged_after)
    forged["Audit trail"].cell(row=i + 2, column=column["Hash"], value=forged_hash)
    forged.save(tmp_path / "REPORT.xlsx")
    assert run_recipe(recipe, tmp_path) == \
        f"seq {trail[i + 1]['Seq']}: does not follow seq {event['Seq']} (removed or reordered)"


def _all_events(client, auditor):
    events, cursor = [], None
    while True:
        page = client.get("/v1/audit-events?limit=1000" + (f"&cursor={cursor}" if cursor else ""),
                          headers=auditor).get_json()
        events += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return events


def test_the_audit_sheet_holds_the_campaign_s_own_events_in_their_canonical_text(app, client, lead, auditor, portal,
                                                                                 directory, token_for, db, clock,
                                                                                 tmp_path):
    import json
    from pathlib import Path

    from accessreview.audit import WriteContext
    from accessreview.models import Campaign
    from accessreview.reports import signer_of
    from accessreview.reports.service import campaign_report
    from test_audit import tamper
    from test_campaigns import DIRECTORY

    campaign = launch(client, lead, definition(client, lead, on_no_response="keep"))
    other = launch(client, lead, definition(client, lead, name="Another", on_no_response="revoke"))
    owen = token_for("user:owen")
    for found, decision in ((items(client, lead, campaign["id"]), "revoke"), (items(client, lead, other["id"]), "keep")):
        assert client.post(f"/v1/review-items/{found[('user:ann', 'editor', 'project:p1')]['id']}/decision",
                           json={"decision": decision, "justification": "für Ärzte"}, headers=owen).status_code == 200
    # An event stored in another JSON text than its hash's (json.dumps' spaced form), as events written
    # before states were stored in their canonical text are: the same content, so it still verifies.
    launched = next(e for e in _all_events(client, auditor)
                    if e["action"] == "campaign.launched" and e["target"] == f"campaign:{campaign['id']}")
    as_json = "CAST(:text AS json)" if db.get_bind().dialect.name == "postgresql" else ":text"
    tamper(db, f"UPDATE audit_events SET after = {as_json} WHERE seq = :seq", text=json.dumps(launched["after"]),
           seq=launched["seq"])
    client.post(f"/v1/campaigns/{campaign['id']}/close", headers=lead)
    client.post(f"/v1/campaigns/{campaign['id']}/sign-off", json={"statement": "ok"}, headers=lead)
    # Afterwards the sync brings ann's grant back (held: an event on the hold) and the hold is lifted.
    synced = client.post("/v1/directory/import", json=DIRECTORY, headers=portal).get_json()
    (held,) = synced["held"]
    assert client.post(f"/v1/holds/{held['hold']['id']}/lift", json={"justification": "back on the project"},
                       headers=lead).status_code == 200
    with app.app_context():
        session = app.extensions["db"].session()
        made = campaign_report(session, WriteContext("user:lena", clock.now()), signer_of(app),
                               Path(app.config["REPORTS_DIR"]), session.get(Campaign, campaign["id"]), "remediation")
        session.commit()
        session.close()
    book = load_workbook(Path(app.config["REPORTS_DIR"]) / made["file_name"])

    head = summary_of(book)["Audit chain head at generation: seq"]
    events = [e for e in _all_events(client, auditor) if e["seq"] <= head]
    first = min(e["seq"] for e in events if e["target"] == f"campaign:{campaign['id']}")

    def ours(e):
        before = e["before"] if isinstance(e["before"], dict) else {}
        after = e["after"] if isinstance(e["after"], dict) else {}
        target = e["target"] or ""
        return (target == f"campaign:{campaign['id']}"
                or (target.startswith("review_item:") and after.get("campaign") == campaign["id"])
                or before.get("removed_by_review") == campaign["id"]
                or (target.startswith("hold:")
                    and campaign["id"] in (after.get("campaign"), (after.get("hold") or {}).get("campaign"))))

    expected = [e for e in events if e["seq"] >= first and ours(e)]
    trail = table(book["Audit trail"])
    assert [r["Seq"] for r in trail] == [e["seq"] for e in expected]
    assert {r["Action"] for r in trail} >= {"campaign.launched", "review.decided", "grant.deleted", "grant.held",
                                             "hold.lifted"}
    assert any(e["target"] == f"campaign:{other['id']}" for e in events if e["seq"] > first), "interleaved"
    assert f"campaign:{other['id']}" not in {r["Target"] for r in trail}
    canonical = {"ensure_ascii": False, "sort_keys": True, "separators": (",", ":")}
    for row, event in zip(trail, expected):
        assert (row["Before"], row["After"]) == (json.dumps(event["before"], **canonical),
                                                 json.dumps(event["after"], **canonical)), row["Seq"]
    assert any("für Ärzte" in r["After"] for r in trail)
    how = {row[0]: row[1] for row in book["How to verify"].iter_rows(min_row=2, values_only=True)}
    book.save(tmp_path / "REPORT.xlsx")
    assert run_recipe(how["Audit trail: check in Python"], tmp_path) == f"{len(trail)} events verified"


def test_the_workbook_prints_with_its_facts(client, lead, auditor, directory, token_for, tmp_path):
    import shutil
    import subprocess

    if not (shutil.which("libreoffice") and shutil.which("pdftotext")):
        import pytest
        pytest.skip("needs LibreOffice (libreoffice-calc-nogui) and poppler-utils")
    campaign = launch(client, lead, definition(client, lead, on_no_response="revoke"))
    client.post(f"/v1/campaigns/{campaign['id']}/close", headers=lead)
    client.post(f"/v1/campaigns/{campaign['id']}/sign-off", json={"statement": "reviewed"}, headers=lead)
    book = campaign_workbook(client, auditor, campaign["id"])
    for sheet in book.worksheets:
        assert sheet.page_setup.orientation == "landscape" and sheet.page_setup.fitToWidth >= 1
        assert sheet.sheet_properties.pageSetUpPr.fitToPage
        assert str(sheet.print_title_rows) == "$1:$1" and str(sheet.print_title_cols) == "$A:$A"
    header = [c.value for c in book["Items"][1]]
    why = book["Items"].cell(row=2, column=header.index("Why") + 1)
    assert why.value and why.alignment.wrap_text  # long text wraps
    book.save(tmp_path / "report.xlsx")
    subprocess.run(["libreoffice", f"-env:UserInstallation=file://{tmp_path}/lo", "--headless", "--convert-to",
                    "pdf", "--outdir", str(tmp_path), str(tmp_path / "report.xlsx")], check=True,
                   capture_output=True, timeout=180)
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "report.pdf"), "-"], check=True,
                          capture_output=True, text=True).stdout
    summary = summary_of(book)
    for field in ("Launched at (UTC)", "Due at (UTC)", "Closed at (UTC)", "Signed off at (UTC)"):
        assert f"{summary[field]:%Y-%m-%d}" in text, field
    assert "Population: count" in text and summary["Population: SHA-256"] in text
    assert "Revoked (all)" in text and summary["Signing key fingerprint (SHA-256)"] in text
    # The Items sheet prints in strips, each starting with the item id.
    items_pages = [page for page in text.split("\f") if page.strip().startswith("Items")]
    assert len(items_pages) > 1
    assert all([line for line in page.splitlines() if line.strip()][1].split()[0] == "Item" for page in items_pages)


def test_independence_and_changes_are_columns_and_exceptions(client, lead, auditor, directory, token_for):
    campaign = launch(client, lead, definition(client, lead, on_no_response="keep"))
    owen, mia = token_for("user:owen"), token_for("user:mia")
    found = items(client, lead, campaign["id"])
    handed = found[("user:ann", "editor", "project:p1")]
    assert client.post(f"/v1/review-items/{handed['id']}/reassign", json={"to": "user:mia", "reason": "on leave"},
                       headers=owen).status_code == 200
    assert client.post(f"/v1/review-items/{handed['id']}/decision", json={"decision": "keep"},
                       headers=mia).status_code == 200
    against = found[("user:cat", "member", "organization:acme")]
    assert against["recommendation"] == "revoke", "a disabled user"
    assert client.post(f"/v1/review-items/{against['id']}/decision", json={"decision": "keep"},
                       headers=owen).status_code == 200
    changed = found[("user:ben", "editor", "project:p1")]
    client.post(f"/v1/review-items/{changed['id']}/decision", json={"decision": "revoke", "justification": "gone"},
                headers=owen)
    overridden = client.post(f"/v1/review-items/{changed['id']}/decision",
                             json={"decision": "keep", "justification": "still needed"},
                             headers=lead)
    assert overridden.status_code == 200, overridden.get_json()
    client.post(f"/v1/campaigns/{campaign['id']}/close", headers=lead)
    client.post(f"/v1/campaigns/{campaign['id']}/sign-off", json={"statement": "ok"}, headers=lead)

    book = campaign_workbook(client, auditor, campaign["id"])
    rows = {row["Item"]: row for row in table(book["Items"])}
    row = rows[handed["id"]]
    assert row["Assigned at close"] == "user:mia" and row["Assignment note"] == "on leave"
    assert row["Handed on"].startswith("delegated from user:owen to user:mia by user:owen at ")
    assert row["Handed on"].endswith(": on leave")
    row = rows[changed["id"]]
    assert row["Decision changes"].startswith("overridden from revoke to keep by user:lena at ")
    assert row["Decision changes"].endswith(": still needed")
    assert row["Signer decided"] == "yes" and rows[handed["id"]]["Signer decided"] == "no"
    summary = summary_of(book)
    assert summary["Signer also decided items"].startswith("1 (flagged")
    assert summary["Signer overrode a reviewer"] == 1
    exceptions = table(book["Exceptions"])
    kinds = {(e["Exception"], e["Item"]) for e in exceptions}
    assert ("signer decided", changed["id"]) in kinds
    assert ("kept against advice", against["id"]) in kinds, "kept by Owen without a justification"
    assert ("kept against advice", handed["id"]) not in kinds, "not advised to revoke"
    assert ("kept against advice", changed["id"]) not in kinds, "kept with a justification"
    assert ("reassigned", handed["id"]) in kinds


def test_remediation_outcomes_say_whether_access_remains(client, lead, auditor, directory, token_for):
    campaign = launch(client, lead, definition(client, lead, on_no_response="keep"))
    owen = token_for("user:owen")
    found = items(client, lead, campaign["id"])
    ben = found[("user:ben", "editor", "project:p1")]  # ben reads p1 through group:team too
    ann = found[("user:ann", "editor", "project:p1")]
    team_grant = found[("group:team", "viewer", "project:p1")]["grant"]["id"]
    own_grant = found[("user:ben", "viewer", "document:d1")]["grant"]["id"]  # and reads d1 through his own
    via = "grants " + ", ".join(map(str, sorted((team_grant, own_grant))))
    for item in (ben, ann):
        assert client.post(f"/v1/review-items/{item['id']}/decision",
                           json={"decision": "revoke", "justification": "left"}, headers=owen).status_code == 200
    client.post(f"/v1/campaigns/{campaign['id']}/close", headers=lead)
    client.post(f"/v1/campaigns/{campaign['id']}/sign-off", json={"statement": "ok"}, headers=lead)
    book = campaign_workbook(client, auditor, campaign["id"], stage="remediation")
    rows = {row["Item"]: row for row in table(book["Items"])}
    assert rows[ann["id"]]["Remediation outcome"] == "removed"
    assert rows[ben["id"]]["Remediation outcome"] == f"removed, access remains via {via} (finding)"
    # Every access that remains, in full: the item's detail, and one row each in the listing.
    detail = rows[ben["id"]]["Remediation detail"]
    assert detail.startswith(f"access remains via {via}: ") and "more)" not in detail
    remaining = [r for r in table(book["Remaining access"]) if r["Item"] == ben["id"]]
    assert remaining and {r["Who still has it"] for r in remaining} == {"user:ben"}
    assert {g for r in remaining for g in r["Through grants"].split(", ")} == {str(team_grant), str(own_grant)}
    assert {(r["Permission"], r["On"]) for r in remaining} >= {("read", "project:p1"), ("read", "document:d1")}
    assert all(f"still has {r['Permission']} on {r['On']} via {r['Via']}" in detail for r in remaining)
    assert [r for r in table(book["Remaining access"]) if r["Item"] == ann["id"]] == []
    exceptions = [e for e in table(book["Exceptions"]) if e["Item"] in (ann["id"], ben["id"])]
    assert [(e["Exception"], e["Item"]) for e in exceptions] == [("access remains", ben["id"])]
    assert exceptions[0]["Detail"].startswith(f"removed, access remains via {via} (finding): ")
    summary = summary_of(book)
    assert summary["Remediation outcome: removed"] == 1
    assert summary["Remediation outcome: removed, access remains via another grant (finding)"] == 1
    assert summary["Remediation outcome: not removed (error)"] == 0
    signed = campaign_workbook(client, auditor, campaign["id"], stage="sign_off")
    assert {row["Item"]: row for row in table(signed["Items"])}[ann["id"]]["Remediation outcome"] == "not removed yet"
    assert summary_of(signed)["Remediation outcome: not removed yet"] == 2


def test_remediation_is_applied_by_the_service_on_the_sign_off(client, lead, auditor, directory, token_for):
    campaign, ann = signed_off_with_ann_revoked(client, lead, token_for)
    (signed_off,) = [e for e in audit(client, auditor, "campaign.signed_off") if e["target"] == f"campaign:{campaign['id']}"]
    assert signed_off["actor"] == "user:lena"
    (deleted,) = [e for e in audit(client, auditor, "grant.deleted")
                  if e["target"] == f"grant:{ann['grant']['id']}"]
    assert deleted["actor"] == "system:accessreview"
    on_sign_off = deleted["before"]["on_sign_off"]
    assert on_sign_off["signed_off_by"] == "user:lena" and on_sign_off["campaign"] == campaign["id"]
    assert on_sign_off["event"] == signed_off["id"] and on_sign_off["event_seq"] == signed_off["seq"]
    assert deleted["before"]["review_item"] == ann["id"] and deleted["before"]["removed_by_review"] == campaign["id"]
    assert not [e for e in audit(client, auditor, "review.revoked") if e["target"] == f"review_item:{ann['id']}"], \
        "the deletion is the revocation's one audit event"
    (verified,) = [e for e in audit(client, auditor, "campaign.revocations_verified")
                   if e["target"] == f"campaign:{campaign['id']}"]
    assert verified["actor"] == "system:accessreview" and ann["id"] in verified["after"]["items"]
    history = client.get(f"/v1/review-items/{ann['id']}", headers=lead).get_json()["history"]
    assert [h["kind"] for h in history][-2:] == ["revoked", "verified"]
    assert history[-2]["actor"] == "system:accessreview" and history[-2]["on_sign_off"] == on_sign_off
    assert not [e for e in audit(client, auditor, "grant.deleted") if e["actor"] == "user:lena"]

    book = campaign_workbook(client, auditor, campaign["id"], stage="remediation")
    trail = {(row["Action"], row["Target"]): row for row in table(book["Audit trail"])}
    row = trail[("grant.deleted", f"grant:{ann['grant']['id']}")]
    assert row["Actor"] == "system:accessreview" and signed_off["id"] in row["Before"]
    applied_by = {row["Item"]: row for row in table(book["Items"])}[ann["id"]]["Applied by"]
    assert applied_by.startswith("system:accessreview, carrying out the sign-off by user:lena at ")
    assert signed_off["id"] in applied_by
    summary = summary_of(book)
    assert summary["Remediation applied by"].startswith("system:accessreview (1 items), carrying out the sign-off")


def test_the_access_left_in_scope_is_listed_and_the_stage_signed(client, lead, auditor, directory, token_for):
    import hashlib
    import json

    campaign, _ = signed_off_with_ann_revoked(client, lead, token_for)
    found = items(client, lead, campaign["id"])
    book = campaign_workbook(client, auditor, campaign["id"], stage="remediation")
    summary = summary_of(book)
    listing = table(book["Access after remediation"])
    held = {(r["Principal"], r["Role"], r["Resource"]) for r in listing}
    assert ("user:ann", "editor", "project:p1") not in held
    assert {("user:ben", "editor", "project:p1"), ("group:team", "viewer", "project:p1")} <= held
    assert len(listing) == summary["Access after remediation: count"] == len(found) - 1
    team = next(r for r in listing if r["Principal"] == "group:team")
    assert team["Group members"] == "user:ben" and team["Via"].startswith(f"grant {team['Grant']} to group:team")
    # The listing's hash is recomputed from the sheet alone, as the population's is from Items.
    identities = [[r["Kind"], r["Grant"], r["Principal"], None if r["Kind"] == "membership" else r["Role"],
                   r["Resource"], r["Expires at (UTC)"].isoformat() + "+00:00" if r["Expires at (UTC)"] else None,
                   r["Group members"].split(", ") if r["Group members"] else []] for r in listing]
    canonical = json.dumps({"revision": summary["Access after remediation: directory revision"],
                            "items": identities}, sort_keys=True, separators=(",", ":"))
    assert hashlib.sha256(canonical.encode()).hexdigest() == summary["Access after remediation: SHA-256"]
    assert "the same as this listing" in summary["Access after remediation: as recorded at remediation"]

    # The stage, in the Summary and in the signed claims: the two workbooks are not the same evidence.
    assert summary["Stage"].startswith("remediation: after remediation")
    signed = campaign_workbook(client, auditor, campaign["id"], stage="sign_off")
    assert summary_of(signed)["Stage"].startswith("sign_off: at sign-off")
    assert "Access after remediation" not in signed.sheetnames
    reports = client.get(f"/v1/reports?campaign={campaign['id']}", headers=auditor).get_json()["items"]
    for report in reports:
        with client.get(f"/v1/reports/{report['id']}/signature", headers=auditor) as response:
            assert json.loads(response.data)["stage"] == report["stage"]


def test_a_group_too_large_for_one_cell_keeps_every_member_in_the_workbook(app, client, lead, auditor, portal,
                                                                         token_for, tmp_path):
    """Excel holds 32,767 characters a cell: a group of 5,000 members with long ids is listed one member a
    row on a sheet of its own, printed like every sheet, and both hashes are recomputed from the workbook."""
    import hashlib
    import json

    from test_campaigns import DIRECTORY

    from accessreview import jobs
    crowd = [f"user:member-with-a-rather-long-identifier-from-the-portal-{n:05d}" for n in range(5_000)]
    large = json.loads(json.dumps(DIRECTORY))
    large["principals"] += [{"id": member} for member in crowd]
    large["principals"].append({"id": "group:crowd", "name": "Crowd", "members": crowd})
    large["grants"].append({"principal": "group:crowd", "role": "viewer", "resource": "project:p1"})
    imported = client.post("/v1/directory/import", json=large, headers=portal)
    if imported.status_code == 202:  # more than 1,000 rows: a job, which a busy machine may not finish inline
        assert jobs.Runner(app).run(imported.get_json()["job"]["id"]) == "done"
    else:
        assert imported.status_code == 200, imported.get_json()
    campaign, _ = signed_off_with_ann_revoked(client, lead, token_for)

    book = campaign_workbook(client, auditor, campaign["id"])
    row = next(r for r in table(book["Items"]) if r["Principal"] == "group:crowd")
    assert "one a row in the sheet 'Group members'" in row["Group members"]
    listed = table(book["Group members"])
    assert sorted(r["Member"] for r in listed) == crowd
    assert {(r["Item"], r["Grant"], r["Group"]) for r in listed} == {(row["Item"], row["Grant"], "group:crowd")}
    members = book["Group members"]  # printed as every sheet: one page wide, header and item on each page
    assert members.page_setup.orientation == "landscape" and members.page_setup.fitToWidth == 1
    assert (members.print_title_rows, members.print_title_cols) == ("$1:$1", "$A:$A")
    assert all(len(str(c)) <= 32_767 for r in table(book["Items"]) for c in r.values() if c)
    how = {r[0]: r[1] for r in book["How to verify"].iter_rows(min_row=2, values_only=True)}
    assert "sheet 'Group members'" in how["Population hash: canonical form"]
    book.save(tmp_path / "REPORT.xlsx")
    assert run_recipe(how["Population hash: recompute in Python"], tmp_path) == "True"
    # A member removed from the sheet is noticed.
    changed = load_workbook(tmp_path / "REPORT.xlsx")
    changed["Group members"].delete_rows(2)
    changed.save(tmp_path / "REPORT.xlsx")
    assert run_recipe(how["Population hash: recompute in Python"], tmp_path) == "False"

    after = campaign_workbook(client, auditor, campaign["id"], stage="remediation")
    summary = summary_of(after)
    apart = {}
    for r in table(after["Members after remediation"]):
        apart.setdefault(r["Grant"], []).append(r["Member"])
    listing = table(after["Access after remediation"])
    crowd_after = next(r for r in listing if r["Principal"] == "group:crowd")
    assert list(apart) == [crowd_after["Grant"]] and sorted(apart[crowd_after["Grant"]]) == crowd
    assert "Members after remediation" in crowd_after["Group members"]
    identities = [[r["Kind"], r["Grant"], r["Principal"], None if r["Kind"] == "membership" else r["Role"],
                   r["Resource"], r["Expires at (UTC)"].isoformat() + "+00:00" if r["Expires at (UTC)"] else None,
                   apart[r["Grant"]] if r["Grant"] in apart else
                   r["Group members"].split(", ") if r["Group members"] else []] for r in listing]
    canonical = json.dumps({"revision": summary["Access after remediation: directory revision"],
                            "items": identities}, sort_keys=True, separators=(",", ":"))
    assert hashlib.sha256(canonical.encode()).hexdigest() == summary["Access after remediation: SHA-256"]


def test_a_removal_that_did_not_take_is_not_removed_and_a_retry_takes_it_up(app, client, lead, auditor, directory,
                                                                            token_for):
    from support import write

    from accessreview.audit import SERVICE_ACTOR, WriteContext, lock_state
    from accessreview.campaigns import remediation
    from accessreview.campaigns.review import get_campaign
    from accessreview.models import Grant, ReviewItem
    from accessreview.reports import signer_of
    from accessreview.reports.service import campaign_report
    from accessreview.revisions import new_revision

    campaign, ann = signed_off_with_ann_revoked(client, lead, token_for)
    grant_id = ann["grant"]["id"]
    # As if the removal had not taken: the grant is back under its own id, and the item awaits verification.
    with write(app) as (session, ctx):
        session.add(Grant(id=grant_id, principal_key="user:ann", role="editor", resource_key="project:p1",
                          granted_by="test", granted_at=ctx.now, source="portal"))
        new_revision(session, ctx, lock_state(session), [("grant", grant_id)])
        session.get(ReviewItem, ann["id"]).remediation_state = "applied"
    with write(app) as (session, ctx):
        service = WriteContext(SERVICE_ACTOR, ctx.now)
        counts, _, _ = remediation.verify(session, service, app.extensions["authz"],
                                          get_campaign(session, campaign["id"]))
        assert counts == {"not_removed": 1}
    after = items(client, lead, campaign["id"])[("user:ann", "editor", "project:p1")]
    assert after["remediation_state"] == "failed" and after["applied_at"] is None
    assert after["remediation_detail"].startswith(f"not removed: grant {grant_id} is still in the directory; ")
    with write(app) as (session, ctx):
        made = campaign_report(session, WriteContext(SERVICE_ACTOR, ctx.now), signer_of(app),
                               app.config["REPORTS_DIR"], get_campaign(session, campaign["id"]), "remediation")
    book = load_workbook(app.config["REPORTS_DIR"] / made["file_name"])
    assert {r["Item"]: r for r in table(book["Items"])}[ann["id"]]["Remediation outcome"] == "not removed (error)"
    assert [(e["Exception"], e["Detail"].split(":")[0]) for e in table(book["Exceptions"]) if e["Item"] == ann["id"]
            ] == [("not removed", "not removed (error)")]
    assert summary_of(book)["Remediation outcome: not removed (error)"] == 1
    assert ("user:ann", "editor", "project:p1") in {(r["Principal"], r["Role"], r["Resource"])
                                                   for r in table(book["Access after remediation"])}

    # A retry removes it again, and verifies it.
    retried = client.post(f"/v1/campaigns/{campaign['id']}/remediate", headers=lead)
    assert retried.status_code in (200, 202), retried.get_json()
    assert items(client, lead, campaign["id"])[("user:ann", "editor", "project:p1")]["remediation_state"] == "verified"


def test_a_definition_may_require_a_reason_to_keep_against_the_advice_to_revoke(client, lead, directory, token_for):
    campaign = launch(client, lead, definition(client, lead, justification={
        "revoke": False, "keep": False, "keep_against_revoke_advice": True}))
    owen = token_for("user:owen")
    found = items(client, lead, campaign["id"])
    cat = found[("user:cat", "member", "organization:acme")]  # disabled: advised revoke
    ann = found[("user:ann", "editor", "project:p1")]
    assert cat["recommendation"] == "revoke" and ann["recommendation"] != "revoke"
    refused = client.post(f"/v1/review-items/{cat['id']}/decision", json={"decision": "keep"}, headers=owen)
    assert refused.status_code == 422
    assert refused.get_json()["error"]["code"] == "justification_required"
    assert "against the advice to revoke" in refused.get_json()["error"]["message"]
    assert client.post(f"/v1/review-items/{cat['id']}/decision",
                       json={"decision": "keep", "justification": "returns next month"},
                       headers=owen).status_code == 200
    assert client.post(f"/v1/review-items/{ann['id']}/decision", json={"decision": "keep"},
                       headers=owen).status_code == 200


def test_a_definition_may_refuse_a_sign_off_by_someone_who_decided_items(client, lead, admin, directory, token_for):
    """``sign_off.refuse_signer_who_decided``: whoever decided items by hand (here: overrode one) cannot
    sign the campaign off; another security lead can. Off by default, where the signer is only flagged."""
    definition_id = definition(client, lead, on_no_response="keep",
                               sign_off={"refuse_signer_who_decided": True})
    shown = client.get(f"/v1/campaign-definitions/{definition_id}", headers=lead).get_json()
    assert shown["sign_off"] == {"refuse_signer_who_decided": True}
    campaign = launch(client, lead, definition_id)
    item = next(iter(items(client, lead, campaign["id"]).values()))
    assert client.post(f"/v1/review-items/{item['id']}/decision", json={"decision": "keep", "justification": "needed"},
                       headers=lead).status_code == 200
    client.post(f"/v1/campaigns/{campaign['id']}/close", headers=lead)
    refused = client.post(f"/v1/campaigns/{campaign['id']}/sign-off", json={"statement": "ok"}, headers=lead)
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "signer_decided"
    assert "decided 1 item" in refused.get_json()["error"]["message"]
    assert client.get(f"/v1/campaigns/{campaign['id']}", headers=lead).get_json()["status"] == "closed"
    other = token_for("user:sam", "security_lead")
    signed = client.post(f"/v1/campaigns/{campaign['id']}/sign-off", json={"statement": "ok"}, headers=other)
    assert signed.status_code in (200, 202), signed.get_json()

    default = client.get(f"/v1/campaign-definitions/{definition(client, lead)}", headers=lead).get_json()
    assert default["sign_off"] == {"refuse_signer_who_decided": False}


def test_a_group_grant_revoked_is_verified_for_each_member(client, lead, auditor, directory, token_for):
    """A group cannot act: verifying its revocation checks each member it had, whose own grants may still
    give the access."""
    campaign = launch(client, lead, definition(client, lead, on_no_response="keep"))
    found = items(client, lead, campaign["id"])
    team = found[("group:team", "viewer", "project:p1")]
    bens_own = found[("user:ben", "editor", "project:p1")]["grant"]["id"]
    assert client.post(f"/v1/review-items/{team['id']}/decision", json={"decision": "revoke", "justification": "x"},
                       headers=token_for("user:owen")).status_code == 200
    client.post(f"/v1/campaigns/{campaign['id']}/close", headers=lead)
    client.post(f"/v1/campaigns/{campaign['id']}/sign-off", json={"statement": "ok"}, headers=lead)
    book = campaign_workbook(client, auditor, campaign["id"], stage="remediation")
    row = {row["Item"]: row for row in table(book["Items"])}[team["id"]]
    assert row["Remediation outcome"].startswith("removed, access remains via grant")
    remaining = [r for r in table(book["Remaining access"]) if r["Item"] == team["id"]]
    assert {r["Who still has it"] for r in remaining} == {"user:ben"}
    assert ("read", "project:p1", str(bens_own)) in {(r["Permission"], r["On"], r["Through grants"]) for r in remaining}
