"""Signed evidence: the workbook matches the campaign row by row; any change breaks the signature."""

from __future__ import annotations

import io
import json

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from accessreview.cli import cli
from test_campaigns import DIRECTORY, definition, items, launch


@pytest.fixture
def signed_off(client, portal, lead, token_for):
    tricky = json.loads(json.dumps(DIRECTORY))
    tricky["grants"][0]["reason"] = "=HYPERLINK(\"http://evil\",\"click\")"
    assert client.post("/v1/directory/import", json=tricky, headers=portal).status_code == 200
    campaign = launch(client, lead, definition(client, lead, on_no_response="keep"))
    owen = token_for("user:owen")
    found = items(client, lead, campaign["id"])
    client.post(f"/v1/review-items/{found[('user:ann', 'editor', 'project:p1')]['id']}/decision",
                json={"decision": "revoke", "justification": "+left the team"}, headers=owen)
    client.post(f"/v1/campaigns/{campaign['id']}/close", headers=lead)
    signed = client.post(f"/v1/campaigns/{campaign['id']}/sign-off", json={"statement": "@all reviewed"},
                         headers=lead)
    assert signed.status_code == 200, signed.get_json()
    return signed.get_json()


def workbook_of(client, headers, report_id):
    with client.get(f"/v1/reports/{report_id}", headers=headers) as response:
        assert response.status_code == 200
        return response.data


def test_sign_off_and_remediation_make_two_signed_versions(client, lead, auditor, signed_off, app):
    listed = client.get(f"/v1/reports?campaign={signed_off['id']}", headers=auditor).get_json()["items"]
    assert [r["stage"] for r in listed] == ["sign_off", "remediation"]
    assert len({r["file_name"] for r in listed}) == 2 and all(len(r["sha256"]) == 64 for r in listed)
    reports_dir = app.config["REPORTS_DIR"]
    for report in listed:
        assert (reports_dir / report["file_name"]).exists()
        assert (reports_dir / f"{report['file_name']}.sig.json").exists()


def test_the_workbook_matches_the_campaign_row_by_row(client, lead, auditor, signed_off):
    report = client.get(f"/v1/reports?campaign={signed_off['id']}", headers=auditor).get_json()["items"][-1]
    with client.get(f"/v1/reports/{report['id']}", headers=auditor) as response:
        assert response.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        assert report["file_name"] in response.headers["Content-Disposition"]
        book = load_workbook(io.BytesIO(response.data))
    assert book.sheetnames == ["Summary", "Items", "Exceptions", "Reviewers", "Audit trail", "How to verify", "Holds",
                               "Remaining access", "Access after remediation"]
    summary = {row[0]: row[1] for row in book["Summary"].iter_rows(min_row=2, values_only=True)}
    assert summary["Population: count"] == signed_off["population_count"]
    assert summary["Population: SHA-256"] == signed_off["population_hash"]
    assert summary["Signed off by"] == "user:lena" and summary["Sign-off statement"] == "@all reviewed"
    sheet = book["Items"]
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref.startswith("A1:")
    header = [c.value for c in sheet[1]]
    rows = [dict(zip(header, row)) for row in sheet.iter_rows(min_row=2, values_only=True)]
    expected = items(client, lead, signed_off["id"])
    assert len(rows) == len(expected) == signed_off["population_count"]
    for row in rows:
        item = expected[(row["Principal"], None if row["Kind"] == "membership" else row["Role"], row["Resource"])]
        assert row["Item"] == item["id"] and row["Decision"] == item["decision"]
        assert row["Reviewer of record"] == item["reviewer_of_record"]
        assert row["Recommendation"] == item["recommendation"] and row["Why"] == item["recommendation_reason"]
        assert row["Remediation"] == item["remediation_state"]
        assert row["Granted at (UTC)"] is not None and row["Granted at (UTC)"].year == 2026  # a real date
    ann = next(r for r in rows if r["Principal"] == "user:ann" and r["Role"] == "editor")
    assert ann["Justification"] == "+left the team" and ann["Decision"] == "revoke"
    exceptions = [row[0] for row in book["Exceptions"].iter_rows(min_row=2, values_only=True)]
    assert "automated" in exceptions
    trail = [row[4] for row in book["Audit trail"].iter_rows(min_row=2, values_only=True)]
    assert {"campaign.launched", "review.decided", "campaign.closed", "campaign.signed_off", "grant.deleted"} <= set(trail)
    held = [row for row in book["Holds"].iter_rows(min_row=2, values_only=True)]
    assert ann["Item"] in [row[1] for row in held] and all(row[7] == "active" for row in held)


def test_text_that_looks_like_a_formula_stays_text(client, auditor, signed_off):
    report = client.get(f"/v1/reports?campaign={signed_off['id']}", headers=auditor).get_json()["items"][0]
    book = load_workbook(io.BytesIO(workbook_of(client, auditor, report["id"])))
    cells = [c for row in book["Items"].iter_rows(min_row=2) for c in row
             if isinstance(c.value, str) and c.value.startswith(("=", "+", "-", "@"))]
    assert cells, "the tricky texts are in the report"
    assert all(c.data_type == "s" and c.quotePrefix for c in cells)


def test_verification_offline_and_online(client, auditor, signed_off, app, tmp_path):
    report = client.get(f"/v1/reports?campaign={signed_off['id']}", headers=auditor).get_json()["items"][0]
    data = workbook_of(client, auditor, report["id"])
    with client.get(f"/v1/reports/{report['id']}/signature", headers=auditor) as response:
        signature = response.data
    keys = client.get("/v1/signing-keys", headers=auditor).get_json()
    pem = next(k["public_key"] for k in keys["items"] if k["key_id"] == keys["current"])
    (tmp_path / "r.xlsx").write_bytes(data)
    (tmp_path / "r.xlsx.sig.json").write_bytes(signature)
    (tmp_path / "key.pem").write_text(pem)
    run = CliRunner()
    ok = run.invoke(cli, ["report", "verify", str(tmp_path / "r.xlsx"), "--public-key", str(tmp_path / "key.pem")])
    assert ok.exit_code == 0 and "valid" in ok.output and f"campaign {signed_off['id']}" in ok.output
    online = client.post("/v1/reports/verify", data={"workbook": (io.BytesIO(data), "r.xlsx"),
                                                     "signature": (io.BytesIO(signature), "r.sig")},
                         headers=auditor, content_type="multipart/form-data").get_json()
    assert online["valid"] is True and online["campaign"] == signed_off["id"] and online["key_id"] == keys["current"]

    # One byte changed: refused.
    tampered = bytearray(data)
    tampered[len(tampered) // 2] ^= 0xFF
    (tmp_path / "r.xlsx").write_bytes(bytes(tampered))
    bad = run.invoke(cli, ["report", "verify", str(tmp_path / "r.xlsx")])
    assert bad.exit_code != 0 and "changed" in bad.output

    # One cell changed and the file saved again: refused too.
    book = load_workbook(io.BytesIO(data))
    book["Items"]["W2"] = "keep"
    book.save(tmp_path / "r.xlsx")
    assert run.invoke(cli, ["report", "verify", str(tmp_path / "r.xlsx")]).exit_code != 0

    # A signature file edited to match: the signature itself no longer verifies.
    (tmp_path / "r.xlsx").write_bytes(data)
    forged = json.loads(signature)
    forged["campaign"] = 999
    (tmp_path / "r.xlsx.sig.json").write_text(json.dumps(forged))
    assert run.invoke(cli, ["report", "verify", str(tmp_path / "r.xlsx")]).exit_code != 0


def test_downloads_are_audited_and_for_auditors_only(client, auditor, portal, signed_off):
    report = client.get(f"/v1/reports?campaign={signed_off['id']}", headers=auditor).get_json()["items"][0]
    assert client.get(f"/v1/reports/{report['id']}", headers=portal).status_code == 403
    workbook_of(client, auditor, report["id"])
    events = client.get(f"/v1/audit-events?target=report:{report['id']}", headers=auditor).get_json()["items"]
    assert [e["action"] for e in events] == ["report.created", "report.downloaded"]
    assert events[1]["actor"] == "user:audrey"


def test_a_name_with_dot_dot_cannot_escape_the_store(client, auditor, signed_off, app, db, tmp_path):
    from accessreview.models import Report

    secret = app.config["REPORTS_DIR"].parent / "outside.xlsx"
    secret.write_bytes(b"not for auditors")
    report = db.get(Report, client.get("/v1/reports", headers=auditor).get_json()["items"][0]["id"])
    report.file_name = "../outside.xlsx"
    db.commit()
    response = client.get(f"/v1/reports/{report.id}", headers=auditor)
    assert response.status_code == 404 and b"not for auditors" not in response.data


def test_reports_are_never_overwritten(app, client, lead, signed_off):
    before = sorted(p.name for p in app.config["REPORTS_DIR"].glob("*.xlsx"))
    again = client.post(f"/v1/campaigns/{signed_off['id']}/remediate", headers=lead).get_json()
    after = sorted(p.name for p in app.config["REPORTS_DIR"].glob("*.xlsx"))
    assert set(before) < set(after), "a new file, the old ones untouched"
    assert [(r["stage"], r["version"]) for r in again["reports"]] == [("remediation", 2)]


def test_ad_hoc_access_and_decision_reports(client, auditor, portal, signed_off):
    client.post("/v1/authorize", json={"actor": "user:ben", "action": "read", "resource": "project:p1"},
                headers=portal)
    access = client.post("/v1/reports/access", json={"resources": ["organization:acme"]}, headers=auditor)
    assert access.status_code == 201
    book = load_workbook(io.BytesIO(workbook_of(client, auditor, access.get_json()["id"])))
    rows = list(book["Access"].iter_rows(min_row=2, values_only=True))
    assert ("project:p1", "user:ben") in {(r[0], r[1]) for r in rows}
    decisions = client.post("/v1/reports/decisions", json={"since": "2026-01-01T00:00:00Z",
                                                           "until": "2027-01-01T00:00:00Z"}, headers=auditor)
    assert decisions.status_code == 201
    book = load_workbook(io.BytesIO(workbook_of(client, auditor, decisions.get_json()["id"])))
    assert ("user:ben", "read", "project:p1") in {(r[3], r[4], r[5]) for r in
                                                  book["Decisions"].iter_rows(min_row=2, values_only=True)}
    assert client.post("/v1/reports/access", json={"resources": ["organization:nope"]},
                       headers=auditor).status_code == 400
    empty = client.post("/v1/reports/access", json={"resources": [""]}, headers=auditor)
    assert empty.status_code == 400 and empty.get_json()["error"]["field"] == "resources.0"


def test_a_full_sheet_continues_on_the_next(tmp_path):
    from accessreview.reports.workbook import Book

    book = Book()
    sheet = book.sheet("Items", [("N", 8)], max_rows=4)
    for n in range(7):
        sheet.append([n])
    book.save(tmp_path / "w.xlsx")
    loaded = load_workbook(tmp_path / "w.xlsx")
    assert loaded.sheetnames == ["Items", "Items (2)", "Items (3)"]
    values = [r[0] for name in loaded.sheetnames for r in loaded[name].iter_rows(min_row=2, values_only=True)]
    assert values == list(range(7))



def test_cells_keep_their_types_and_text_exactly(tmp_path):
    from datetime import date, datetime, timedelta, timezone

    from accessreview.reports.workbook import Book

    book = Book()
    sheet = book.sheet("Cells", [("A", 8), ("B", 8), ("C", 8), ("D", 8), ("E", 8), ("F", 8), ("G", 8), ("H", 8)])
    aware = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=2)))
    sheet.append([42, 2.5, True, aware, date(2026, 1, 2), ["edit", "read"], {"via": ["g1", "g2"]}, None])
    sheet.append(["  padded ", "a < b & c > d", "line\nbreak", "", "=1+1", "tab\tinside", "ünïcødé ✓", "x"])
    sheet.append(["bell\x07", "_x0041_ stays", None, None, None, None, None, "last"])
    book.save(tmp_path / "c.xlsx")

    loaded = load_workbook(tmp_path / "c.xlsx")["Cells"]
    assert loaded.column_dimensions["A"].width == 8 and all(c.font.bold for c in loaded[1])
    assert loaded.auto_filter.ref == "A1:H4" and loaded.freeze_panes == "A2"
    numbers, texts, escaped = list(loaded.iter_rows(min_row=2, values_only=True))
    assert numbers == (42, 2.5, True, datetime(2026, 3, 4, 3, 6, 7), datetime(2026, 1, 2), "edit, read",
                       "via: g1, g2", None)
    assert loaded["D2"].is_date and loaded["D2"].number_format == "yyyy-mm-dd h:mm:ss"
    assert texts == ("  padded ", "a < b & c > d", "line\nbreak", None, "=1+1", "tab\tinside", "ünïcødé ✓", "x")
    assert loaded["E3"].data_type == "s" and loaded["E3"].quotePrefix and not loaded["A3"].quotePrefix
    # XML cannot carry a bell: OOXML's escape is written (Excel shows the character), and text that
    # looks like that escape is itself escaped so Excel shows it as typed.
    assert escaped[:2] == ("bell_x0007_", "_x005F_x0041_ stays") and escaped[-1] == "last"
