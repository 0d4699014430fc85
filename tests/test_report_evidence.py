"""Evidence an auditor can check with their own trust: verification needs a trusted key (a PEM or the
published fingerprint), stock openssl and a bare Python with ``cryptography`` verify a report, and a
stored report that changed on disk is refused rather than served."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask.cli import ScriptInfo
from openpyxl import load_workbook

from accessreview.cli import cli
from accessreview.models import Report, SigningKey
from accessreview.reports import verify_report
from accessreview.reports.signing import public_pem, sign
from test_reports import signed_off, workbook_of  # noqa: F401 (signed_off: a fixture)

VERIFIER = Path(verify_report.__file__)


def raw_fingerprint(pem: str) -> str:
    key = serialization.load_pem_public_key(pem.encode())
    return hashlib.sha256(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).hexdigest()


def get(client, url, headers):
    with client.get(url, headers=headers) as response:
        return response.status_code, response.data, response


@pytest.fixture
def evidence(client, auditor, signed_off, tmp_path):  # noqa: F811 (signed_off: the fixture)
    """A sign-off report downloaded as an auditor keeps it: the workbook, its two signatures and the key."""
    report = client.get(f"/v1/reports?campaign={signed_off['id']}", headers=auditor).get_json()["items"][0]
    folder = tmp_path / "evidence"
    folder.mkdir()
    book = folder / "report.xlsx"
    book.write_bytes(workbook_of(client, auditor, report["id"]))
    (folder / "report.xlsx.sig.json").write_bytes(get(client, f"/v1/reports/{report['id']}/signature", auditor)[1])
    (folder / "report.xlsx.sig").write_bytes(get(client, f"/v1/reports/{report['id']}/signature.bin", auditor)[1])
    keys = client.get("/v1/signing-keys", headers=auditor).get_json()
    current = next(k for k in keys["items"] if k["key_id"] == keys["current"])
    (folder / "key.pem").write_text(current["public_key"])
    return {"report": report, "book": book, "folder": folder, "pem": folder / "key.pem",
            "fingerprint": current["fingerprint"], "campaign": signed_off["id"]}


def forge(book: Path) -> str:
    """Edit a decision in the workbook and re-sign it, both ways, with a fresh key; returns its fingerprint."""
    workbook = load_workbook(book)
    sheet = workbook["Items"]
    decision = [c.value for c in sheet[1]].index("Decision") + 1
    sheet.cell(row=2, column=decision, value="keep")
    workbook.save(book)
    key = Ed25519PrivateKey.generate()
    claims = json.loads(book.with_name(book.name + ".sig.json").read_text())
    document, raw = sign(key, book.read_bytes(), report=claims["file"], campaign=claims["campaign"],
                         signed_at=datetime.now(timezone.utc), kind=claims["kind"], stage=claims["stage"])
    book.with_name(book.name + ".sig.json").write_text(json.dumps(document))
    book.with_name(book.name + ".sig").write_bytes(raw)
    return verify_report.fingerprint(key.public_key())


def verify_cli(*args):
    result = CliRunner().invoke(cli, ["report", "verify", *map(str, args)])
    return result.exit_code, result.output


# -- trust is explicit ---------------------------------------------------------------------------------

def test_valid_only_with_a_trusted_key_or_fingerprint(evidence):
    book = evidence["book"]
    code, output = verify_cli(book, "--public-key", evidence["pem"])
    assert code == 0 and output.startswith("valid: the signature and the raw signature are valid, by trusted key")
    assert f"campaign {evidence['campaign']} report" in output and evidence["report"]["sha256"] in output

    code, output = verify_cli(book, "--fingerprint", evidence["fingerprint"])
    assert code == 0 and output.startswith("valid:") and evidence["fingerprint"] in output
    spaced = ":".join(evidence["fingerprint"][i:i + 2] for i in range(0, 64, 2)).upper()
    assert verify_cli(book, "--fingerprint", spaced)[0] == 0, "a fingerprint as people copy it"
    assert verify_cli(book, "--public-key", evidence["pem"], "--fingerprint", evidence["fingerprint"])[0] == 0

    code, output = verify_cli(book)
    assert code == 3 and output.startswith("UNTRUSTED: the signature and the raw signature are consistent, but key")
    assert "untrusted" in output and "--fingerprint" in output and "valid:" not in output


def test_a_forged_re_signed_workbook_is_refused_with_the_published_fingerprint(evidence):
    book = evidence["book"]
    forged = forge(book)
    code, output = verify_cli(book, "--fingerprint", evidence["fingerprint"])
    assert code == 1 and output.startswith("NOT VALID:") and "not a trusted key" in output and forged in output
    assert verify_cli(book, "--public-key", evidence["pem"])[0] == 1
    code, output = verify_cli(book)
    assert code == 3 and "UNTRUSTED" in output, "consistent with its own key, which is exactly why that is not enough"
    # The raw signature alone, checked with the service's key, refuses the forgery too.
    book.with_name(book.name + ".sig.json").unlink()
    assert verify_cli(book, "--public-key", evidence["pem"])[0] == 1


def test_bad_trust_input_is_a_usage_error(evidence, tmp_path):
    book = evidence["book"]
    code, output = verify_cli(book, "--fingerprint", "abc")
    assert code == 2 and "64 hex digits" in output
    other = tmp_path / "other.pem"
    other.write_text(public_pem(Ed25519PrivateKey.generate().public_key()))
    code, output = verify_cli(book, "--public-key", other, "--fingerprint", evidence["fingerprint"])
    assert code == 2 and "not the one given" in output
    (tmp_path / "junk.pem").write_text("not a key")
    assert verify_cli(book, "--public-key", tmp_path / "junk.pem")[0] == 2
    for name in ("report.xlsx.sig.json", "report.xlsx.sig"):
        (evidence["folder"] / name).unlink()
    code, output = verify_cli(book, "--fingerprint", evidence["fingerprint"])
    assert code == 2 and "no signature" in output


def test_the_fingerprint_is_published_everywhere_the_same(app, client, auditor, evidence):
    fingerprint = evidence["fingerprint"]
    keys = client.get("/v1/signing-keys", headers=auditor).get_json()
    assert keys["current_fingerprint"] == fingerprint == raw_fingerprint(evidence["pem"].read_text())
    assert all(k["fingerprint"] == raw_fingerprint(k["public_key"]) for k in keys["items"])
    summary = dict(load_workbook(evidence["book"])["Summary"].iter_rows(min_row=2, values_only=True))
    assert summary["Signing key fingerprint (SHA-256)"] == fingerprint
    assert summary["Signing key id"] == fingerprint[:16]

    shell = CliRunner().invoke(cli, ["keys", "fingerprint", "--pem"], obj=ScriptInfo(create_app=lambda: app))
    assert shell.exit_code == 0 and f"SHA-256 fingerprint {fingerprint}" in shell.output
    assert evidence["pem"].read_text().strip() in shell.output
    offline = CliRunner().invoke(cli, ["keys", "fingerprint", "--public-key", str(evidence["pem"])])
    assert offline.exit_code == 0 and fingerprint in offline.output

    from test_web import sign_in, text

    sign_in(client, auditor)
    page = text(client.get("/ui/reports"))
    assert f'<code id="current-fingerprint">{fingerprint}</code>' in page
    assert "--fingerprint PUBLISHED_FINGERPRINT" in page and "-rawin -in REPORT.xlsx -sigfile REPORT.xlsx.sig" in page
    assert "accessreview report verify FILE.xlsx</code>" not in page, "no untrusted way is offered"
    pem = get(client, f"/ui/reports/keys/{fingerprint[:16]}.pem", {})[1].decode()
    assert raw_fingerprint(pem) == fingerprint
    assert get(client, "/ui/reports/keys/0000000000000000.pem", {})[0] == 404
    assert get(client, "/ui/reports/verify_report.py", {})[1] == VERIFIER.read_bytes()


def test_ad_hoc_reports_say_what_they_are(client, auditor, evidence, tmp_path):
    made = client.post("/v1/reports/access", json={"resources": ["organization:acme"]}, headers=auditor).get_json()
    book = tmp_path / "access.xlsx"
    book.write_bytes(workbook_of(client, auditor, made["id"]))
    book.with_name("access.xlsx.sig.json").write_bytes(get(client, f"/v1/reports/{made['id']}/signature", auditor)[1])
    code, output = verify_cli(book, "--fingerprint", evidence["fingerprint"])
    assert code == 0 and "ad-hoc report of current access" in output and "None" not in output
    summary = dict(load_workbook(book)["Summary"].iter_rows(min_row=2, values_only=True))
    assert summary["Signing key fingerprint (SHA-256)"] == evidence["fingerprint"]


def test_online_verification_trusts_only_the_services_keys(client, auditor, evidence):
    book = evidence["book"]

    def upload(*, raw: bool) -> dict:
        files = {"workbook": (io.BytesIO(book.read_bytes()), "r.xlsx"),
                 "signature": (io.BytesIO(book.with_name("report.xlsx.sig.json").read_bytes()), "r.sig.json")}
        if raw:
            files["raw_signature"] = (io.BytesIO(book.with_name("report.xlsx.sig").read_bytes()), "r.xlsx.sig")
        return client.post("/v1/reports/verify", data=files, headers=auditor,
                           content_type="multipart/form-data").get_json()

    genuine = upload(raw=True)
    assert genuine["valid"] is True and genuine["raw_signature"] is True
    assert genuine["fingerprint"] == evidence["fingerprint"] and genuine["campaign"] == evidence["campaign"]
    genuine_sig = book.with_name("report.xlsx.sig").read_bytes()
    book.with_name("report.xlsx.sig").write_bytes(genuine_sig[:-1] + bytes([genuine_sig[-1] ^ 1]))
    bad_raw = upload(raw=True)
    assert bad_raw["valid"] is False and "raw signature does not match" in bad_raw["reason"]
    forge(book)
    answer = upload(raw=False)
    assert answer["valid"] is False and answer["status"] == "invalid" and "not a trusted key" in answer["reason"]


# -- stock tools verify --------------------------------------------------------------------------------

def test_the_raw_signature_is_64_bytes_audited_and_for_auditors_only(client, auditor, portal, evidence):
    report = evidence["report"]
    status, data, response = get(client, f"/v1/reports/{report['id']}/signature.bin", auditor)
    assert status == 200 and len(data) == 64 and response.mimetype == "application/octet-stream"
    assert f"{report['file_name']}.sig" in response.headers["Content-Disposition"]
    assert get(client, f"/v1/reports/{report['id']}/signature.bin", portal)[0] == 403
    assert get(client, "/v1/reports/424242/signature.bin", auditor)[0] == 404
    events = client.get(f"/v1/audit-events?target=report:{report['id']}&action=report.downloaded",
                        headers=auditor).get_json()["items"]
    raw = [e["after"] for e in events if e["after"]["what"] == "raw_signature"]
    assert raw and raw[-1]["sha256"] == hashlib.sha256(data).hexdigest() and raw[-1]["size"] == 64
    assert report["raw_signature"] is True


def _openssl_has_rawin() -> bool:
    if shutil.which("openssl") is None:
        return False
    helptext = subprocess.run(["openssl", "pkeyutl", "-help"], capture_output=True, text=True)
    return "-rawin" in helptext.stdout + helptext.stderr


@pytest.mark.skipif(not _openssl_has_rawin(), reason="openssl with pkeyutl -rawin (OpenSSL 3) is not installed")
def test_openssl_alone_verifies_the_report(evidence):
    folder = evidence["folder"]
    command = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "key.pem", "-rawin", "-in", "report.xlsx",
               "-sigfile", "report.xlsx.sig"]
    checked = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Signature Verified Successfully" in checked.stdout
    # The fingerprint, as the reports page tells an auditor to compute it with stock tools.
    printed = subprocess.run("openssl pkey -pubin -in key.pem -outform DER | tail -c 32 | sha256sum", shell=True,
                             cwd=folder, capture_output=True, text=True)
    assert printed.stdout.split()[0] == evidence["fingerprint"]

    forge(evidence["book"])  # edited and re-signed with another key: the trusted key refuses it
    refused = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    assert refused.returncode != 0 and "Signature Verified Successfully" not in refused.stdout


@pytest.fixture(scope="session")
def bare_python(tmp_path_factory) -> Path:
    """A fresh virtual environment holding cryptography (and what it needs), nothing of the project's."""
    home = tmp_path_factory.mktemp("bare-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(home)], check=True)
    python = home / "bin" / "python"
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                                "--disable-pip-version-check", "cryptography"], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-2000:]
    return python


def test_the_standalone_verifier_runs_with_only_cryptography(bare_python, evidence, tmp_path):
    names = subprocess.run([str(bare_python), "-I", "-c", "import importlib.metadata as m; "
                            "print(sorted(d.metadata['Name'].lower() for d in m.distributions()))"],
                           capture_output=True, text=True, check=True).stdout
    assert set(eval(names)) <= {"cryptography", "cffi", "pycparser"}, names
    script = tmp_path / "verify_report.py"  # copied alone, as an auditor gets it from the reports page
    shutil.copy(VERIFIER, script)

    def run(*args):
        done = subprocess.run([str(bare_python), "-I", str(script), *map(str, args)], capture_output=True, text=True)
        return done.returncode, done.stdout + done.stderr

    book = evidence["book"]
    code, output = run(book, "--fingerprint", evidence["fingerprint"])
    assert code == 0 and output.startswith("valid: the signature and the raw signature are valid"), output
    assert run(book, "--public-key", evidence["pem"])[0] == 0
    code, output = run(book)
    assert code == 3 and output.startswith("UNTRUSTED:")
    forge(book)
    code, output = run(book, "--fingerprint", evidence["fingerprint"])
    assert code == 1 and output.startswith("NOT VALID:") and "not a trusted key" in output


# -- serving checks the file ---------------------------------------------------------------------------

def test_a_workbook_changed_on_disk_is_refused_and_recorded(app, client, auditor, evidence):
    report = evidence["report"]
    stored = app.config["REPORTS_DIR"] / report["file_name"]
    original = stored.read_bytes()
    stored.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    status, data, response = get(client, f"/v1/reports/{report['id']}", auditor)
    error = json.loads(data)["error"]
    assert status == 409 and error["code"] == "report_file_changed" and original[:2] not in data[:2]
    assert error["recorded_sha256"] == report["sha256"]
    assert error["actual_sha256"] == hashlib.sha256(stored.read_bytes()).hexdigest()
    events = client.get(f"/v1/audit-events?target=report:{report['id']}", headers=auditor).get_json()["items"]
    assert events[-1]["action"] == "report.refused" and events[-1]["actor"] == "user:audrey"
    assert events[-1]["after"]["actual_sha256"] == error["actual_sha256"]
    downloads = [e for e in events if e["action"] == "report.downloaded" and e["after"]["what"] == "workbook"]

    stored.unlink()
    status, data, _ = get(client, f"/v1/reports/{report['id']}", auditor)
    assert status == 409 and json.loads(data)["error"]["actual_sha256"] is None and b"missing" in data

    stored.write_bytes(original)  # put back as it was: served again, and the event has the hash sent
    status, data, response = get(client, f"/v1/reports/{report['id']}", auditor)
    assert status == 200 and data == original and response.content_length == len(original)
    after = client.get(f"/v1/audit-events?target=report:{report['id']}&action=report.downloaded",
                       headers=auditor).get_json()["items"]
    assert len([e for e in after if e["after"]["what"] == "workbook"]) == len(downloads) + 1
    assert after[-1]["after"]["sha256"] == hashlib.sha256(data).hexdigest() == report["sha256"]


def test_a_signature_file_changed_on_disk_is_refused(app, client, auditor, evidence):
    from test_web import sign_in

    report = evidence["report"]
    stored = app.config["REPORTS_DIR"] / f"{report['file_name']}.sig.json"
    document = json.loads(stored.read_text())
    sent = get(client, f"/v1/reports/{report['id']}/signature", auditor)[1]
    events = client.get(f"/v1/audit-events?target=report:{report['id']}&action=report.downloaded",
                        headers=auditor).get_json()["items"]
    assert events[-1]["after"] == {"file": f"{report['file_name']}.sig.json", "what": "signature",
                                   "sha256": hashlib.sha256(sent).hexdigest(), "size": len(sent)}
    for changed in ({**document, "campaign": 999}, {**document, "signature": base64.b64encode(b"x" * 64).decode()},
                    {"format": "nonsense"}):
        stored.write_text(json.dumps(changed))
        status, data, _ = get(client, f"/v1/reports/{report['id']}/signature", auditor)
        assert status == 409 and json.loads(data)["error"]["code"] == "report_file_changed"
    sign_in(client, auditor)
    page = get(client, f"/ui/reports/{report['id']}/signature", {})
    assert page[0] == 409 and b"was changed" in page[1]


# -- reports stored before raw signatures ------------------------------------------------------------

def test_an_older_report_gets_its_raw_signature_only_when_its_bytes_are_the_signed_ones(app, client, auditor,
                                                                                         evidence, db):
    report = evidence["report"]
    original = (evidence["folder"] / "report.xlsx.sig").read_bytes()
    row = db.get(Report, report["id"])
    row.raw_signature = None
    db.commit()

    # The workbook changed: nothing is signed for it.
    stored = app.config["REPORTS_DIR"] / report["file_name"]
    good = stored.read_bytes()
    stored.write_bytes(good + b"\0")
    status, data, _ = get(client, f"/v1/reports/{report['id']}/signature.bin", auditor)
    assert status == 409 and json.loads(data)["error"]["code"] == "report_file_changed"
    db.rollback()  # a new read, not the session's own copies
    db.expire_all()
    assert db.get(Report, report["id"]).raw_signature is None

    # Back as signed: the raw signature is made, the very one made with the report (Ed25519 is deterministic).
    stored.write_bytes(good)
    status, data, _ = get(client, f"/v1/reports/{report['id']}/signature.bin", auditor)
    assert status == 200 and data == original
    db.rollback()  # a new read, not the session's own copies
    db.expire_all()
    assert db.get(Report, report["id"]).raw_signature == original
    actions = [e["action"] for e in client.get(f"/v1/audit-events?target=report:{report['id']}",
                                               headers=auditor).get_json()["items"]]
    assert actions[-2:] == ["report.raw_signature_made", "report.downloaded"]

    # Signed by a key the service no longer holds: it cannot be made, and says why.
    other = Ed25519PrivateKey.generate().public_key()
    other_id = verify_report.key_id(other)
    db.add(SigningKey(key_id=other_id, public_key_pem=public_pem(other), first_used_at=datetime.now(timezone.utc)))
    db.flush()
    row = db.get(Report, report["id"])
    row.key_id, row.raw_signature = other_id, None
    db.commit()
    status, data, _ = get(client, f"/v1/reports/{report['id']}/signature.bin", auditor)
    error = json.loads(data)["error"]
    assert status == 404 and error["code"] == "raw_signature_unavailable" and ".sig.json" in error["message"]
