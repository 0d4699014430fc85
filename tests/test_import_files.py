"""Reading bulk-import files (JSON, CSV, XLSX) into the import payload shape."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from openpyxl import Workbook
from pydantic import ValidationError

from accessreview.directory.files import (ImportFileError, ImportLimits, ImportTooLarge, read_import_files,
                                         read_import_files_with_origins)
from accessreview.directory.schemas import ImportPayload

PAYLOAD = {
    "principals": [
        {"id": "user:alice", "name": "Alice", "email": "alice@example.com", "status": "active",
         "last_seen_at": "2026-03-01T09:30:00+00:00"},
        {"id": "group:finance", "name": "Finance", "members": ["user:alice"]},
    ],
    "resources": [
        {"id": "organization:acme", "name": "Acme", "attributes": {"tier": "gold", "seats": 40}},
        {"id": "project:apollo", "parent": "organization:acme", "owner": "user:alice"},
    ],
    "grants": [
        {"principal": "group:finance", "role": "viewer", "resource": "project:apollo",
         "granted_at": "2026-02-01T00:00:00+00:00", "reason": "quarterly close"},
    ],
    "source": "hr_sync",
    "mode": "replace",
    "dry_run": True,
}


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def validate(payload: dict) -> ImportPayload:
    return ImportPayload.model_validate_json(json.dumps(payload))


def error_locations(payload: dict) -> list[tuple]:
    with pytest.raises(ValidationError) as caught:
        validate(payload)
    return [error["loc"] for error in caught.value.errors()]


# -- JSON -------------------------------------------------------------------------------------------

def test_json_round_trip(tmp_path):
    path = write(tmp_path / "dump.JSON", json.dumps(PAYLOAD))
    payload, origins = read_import_files_with_origins([path])
    assert payload == PAYLOAD
    assert origins == {"principals": [f"{path}#0", f"{path}#1"], "resources": [f"{path}#0", f"{path}#1"],
                       "grants": [f"{path}#0"]}
    assert read_import_files([path]) == PAYLOAD
    assert validate(payload).mode == "replace"


def test_json_invalid_names_line_and_column(tmp_path):
    path = write(tmp_path / "dump.json", '{\n  "principals": [\n    {"id": "user:a",}\n  ]\n}\n')
    with pytest.raises(ImportFileError) as caught:
        read_import_files([path])
    assert str(path) in str(caught.value)
    assert "line 3, column 21" in str(caught.value)


@pytest.mark.parametrize("text", ["[]", '"principals"', "null"])
def test_json_must_be_an_object(tmp_path, text):
    path = write(tmp_path / "dump.json", text)
    with pytest.raises(ImportFileError, match="JSON object"):
        read_import_files([path])


def test_json_nan_refused(tmp_path):
    path = write(tmp_path / "dump.json", '{"resources": [{"id": "project:x", "attributes": {"n": NaN}}]}')
    with pytest.raises(ImportFileError, match="NaN"):
        read_import_files([path])


# -- CSV --------------------------------------------------------------------------------------------

def test_csv_sections_from_file_names(tmp_path):
    principals = write(tmp_path / "Principals-2026-11.csv",
                       "id,name,email,status,last_seen_at\n"
                       "user:alice,Alice,alice@example.com,active,2026-03-01T09:30:00+00:00\n")
    resources = write(tmp_path / "resources.csv", "id,name\norganization:acme,Acme\n")
    grants = write(tmp_path / "grants-2026-11.csv",
                   "principal,role,resource,granted_at\nuser:alice,member,organization:acme,2026-02-01T00:00:00Z\n")
    payload = read_import_files([principals, resources, grants])
    assert payload == {
        "principals": [{"id": "user:alice", "name": "Alice", "email": "alice@example.com", "status": "active",
                        "last_seen_at": "2026-03-01T09:30:00+00:00"}],
        "resources": [{"id": "organization:acme", "name": "Acme"}],
        "grants": [{"principal": "user:alice", "role": "member", "resource": "organization:acme",
                    "granted_at": "2026-02-01T00:00:00Z"}],
    }
    parsed = validate(payload)
    assert parsed.principals[0].last_seen_at == datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc)
    assert parsed.source == "import" and parsed.mode == "merge"


def test_csv_section_argument(tmp_path):
    path = write(tmp_path / "export.csv", "principal,role,resource\nuser:bob,viewer,project:apollo\n")
    with pytest.raises(ImportFileError, match="--section") as caught:
        read_import_files([path])
    assert str(path) in str(caught.value)
    payload = read_import_files([path], section="grants")
    assert payload["grants"] == [{"principal": "user:bob", "role": "viewer", "resource": "project:apollo"}]
    assert payload["principals"] == [] and payload["resources"] == []
    # The argument wins over the file name.
    named = write(tmp_path / "principals.csv", "principal,role,resource\nuser:bob,viewer,project:apollo\n")
    assert read_import_files([named], section="grants")["grants"] == payload["grants"]


def test_csv_members_attributes_and_empty_cells(tmp_path):
    principals = write(tmp_path / "principals.csv",
                       "id,name,email,members\n"
                       "group:ops,Ops,, user:alice ; user:bob;;service:ci ;\n"
                       "user:alice,,alice@example.com,\n"
                       "user:bob,   ,,\n")
    resources = write(tmp_path / "resources.csv",
                      'id,name,attributes\n'
                      'project:apollo,Apollo,"{""tier"": ""gold"", ""tags"": [""a"", ""b""]}"\n'
                      'project:zeus,,\n')
    payload = read_import_files([principals, resources])
    assert payload["principals"] == [
        {"id": "group:ops", "name": "Ops", "members": ["user:alice", "user:bob", "service:ci"]},
        {"id": "user:alice", "email": "alice@example.com"},
        {"id": "user:bob"},
    ]
    assert payload["resources"] == [
        {"id": "project:apollo", "name": "Apollo", "attributes": {"tier": "gold", "tags": ["a", "b"]}},
        {"id": "project:zeus"},
    ]
    validate(payload)


def test_csv_bom_and_crlf(tmp_path):
    path = write(tmp_path / "principals.csv", "\ufeffid,name\r\nuser:zoë,Zoë\r\n")
    payload, origins = read_import_files_with_origins([path])
    assert payload["principals"] == [{"id": "user:zoë", "name": "Zoë"}]
    assert origins["principals"] == [f"{path}:2"]


def test_csv_header_case_and_blank_lines(tmp_path):
    path = write(tmp_path / "principals.csv",
                 "\n ID , Name\n\nuser:a,A\n\n,\nuser:b,\"B\nsecond line\"\nuser:c,C\n")
    payload, origins = read_import_files_with_origins([path])
    assert payload["principals"] == [{"id": "user:a", "name": "A"}, {"id": "user:b", "name": "B\nsecond line"},
                                     {"id": "user:c", "name": "C"}]
    assert origins["principals"] == [f"{path}:4", f"{path}:7", f"{path}:9"]


def test_csv_unknown_column_refused(tmp_path):
    path = write(tmp_path / "principals.csv", "id,name,nickname\nuser:a,A,Al\n")
    with pytest.raises(ImportFileError) as caught:
        read_import_files([path])
    message = str(caught.value)
    assert str(path) in message and "'nickname'" in message and "line 1" in message


def test_csv_semicolon_separated_gets_a_hint(tmp_path):
    path = write(tmp_path / "principals.csv", "id;name\nuser:a;A\n")
    with pytest.raises(ImportFileError, match="comma-separated"):
        read_import_files([path])


@pytest.mark.parametrize("text, fragment", [
    ("id,name,id\nuser:a,A,user:b\n", "appears twice"),
    ("name,email\nA,a@example.com\n", "required column(s) id"),
    ("id,name\nuser:a,A,extra\n", "line 2, column 3"),
    ("", "no header row"),
    ('id,name\nuser:a,"A\nuser:b,B\n', "malformed CSV"),
])
def test_csv_refusals(tmp_path, text, fragment):
    path = write(tmp_path / "principals.csv", text)
    with pytest.raises(ImportFileError) as caught:
        read_import_files([path])
    assert fragment in str(caught.value) and str(path) in str(caught.value)


def test_csv_trailing_empty_columns_are_fine(tmp_path):
    path = write(tmp_path / "principals.csv", "id,name,,\nuser:a,A,,\n")
    assert read_import_files([path])["principals"] == [{"id": "user:a", "name": "A"}]


def test_csv_principals_attributes(tmp_path):
    path = write(tmp_path / "principals.csv",
                 'id,name,attributes\nuser:alice,Alice,"{""team"": ""north"", ""level"": 3}"\nuser:bob,Bob,\n')
    payload = read_import_files([path])
    assert payload["principals"] == [{"id": "user:alice", "name": "Alice", "attributes": {"team": "north", "level": 3}},
                                     {"id": "user:bob", "name": "Bob"}]
    assert validate(payload).principals[0].attributes == {"team": "north", "level": 3}
    bad = write(tmp_path / "principals-bad.csv", 'id,attributes\nuser:alice,"[1]"\n')
    with pytest.raises(ImportFileError, match=r"line 2, column attributes: expected a JSON object"):
        read_import_files([bad])


def test_csv_bad_attributes_json_names_line(tmp_path):
    path = write(tmp_path / "resources.csv",
                 'id,attributes\nproject:a,"{""ok"": 1}"\nproject:b,"{tier: gold}"\n')
    with pytest.raises(ImportFileError) as caught:
        read_import_files([path])
    assert f"{path}: line 3, column attributes: invalid JSON" in str(caught.value)


def test_csv_attributes_must_be_an_object(tmp_path):
    path = write(tmp_path / "resources.csv", 'id,attributes\nproject:a,"[1, 2]"\n')
    with pytest.raises(ImportFileError, match=r"line 2, column attributes: expected a JSON object"):
        read_import_files([path])


def test_csv_not_utf8(tmp_path):
    path = write(tmp_path / "principals.csv", "id,name\nuser:a,Zoë\n", encoding="latin-1")
    with pytest.raises(ImportFileError, match="line 2: not valid UTF-8"):
        read_import_files([path])


def test_csv_junk_rows_are_kept_so_validation_can_report_them(tmp_path):
    path = write(tmp_path / "grants.csv",
                 "principal,role,resource\n"
                 "user:a,viewer,project:x\n"
                 "not a principal,???,\n"
                 ",,project:y\n"
                 "user:b,viewer,project:x\n")
    payload, origins = read_import_files_with_origins([path])
    assert len(payload["grants"]) == 4
    assert origins["grants"] == [f"{path}:2", f"{path}:3", f"{path}:4", f"{path}:5"]
    locations = error_locations(payload)
    assert {loc[:2] for loc in locations} == {("grants", 1), ("grants", 2)}
    assert ("grants", 1, "resource") in locations and ("grants", 2, "principal") in locations


def test_csv_large_members_cell(tmp_path):
    members = [f"user:u{i:06d}" for i in range(20_000)]  # ~260 KB, over the csv module's default limit
    path = write(tmp_path / "principals.csv", "id,members\ngroup:everyone," + ";".join(members) + "\n")
    assert read_import_files([path])["principals"][0]["members"] == members


# -- XLSX -------------------------------------------------------------------------------------------

def make_workbook(path: Path, sheets: dict[str, list[list]]) -> Path:
    workbook = Workbook()
    workbook.remove(workbook.active)
    for title, rows in sheets.items():
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(row)
    workbook.save(path)
    workbook.close()
    return path


def test_xlsx_three_sheets(tmp_path):
    path = make_workbook(tmp_path / "Directory.XLSX", {
        "README": [["ignored sheet"], ["id", "anything"]],
        "Principals": [
            ["id", "name", "email", "last_seen_at", "members", "department"],
            ["user:alice", "Alice", "alice@example.com", datetime(2026, 3, 1, 9, 30), None, "  "],
            [12345, 3.0, None, None, None, 2.5],
            [],
            ["group:finance", "Finance", None, None, "user:alice; user:bob", None],
            ["user:bob", "Bob", None, "2026-03-02T08:00:00Z", None, None],  # text stays text
        ],
        "resources": [
            ["id", "name", "attributes"],
            ["organization:acme", "Acme", '{"tier": "gold"}'],
        ],
        "GRANTS": [
            ["principal", "role", "resource", "granted_at", "reason"],
            ["group:finance", "member", "organization:acme", datetime(2026, 2, 1), 42],
        ],
    })
    payload, origins = read_import_files_with_origins([path])
    assert payload["principals"] == [
        {"id": "user:alice", "name": "Alice", "email": "alice@example.com",
         "last_seen_at": "2026-03-01T09:30:00+00:00"},
        {"id": "12345", "name": "3", "department": "2.5"},
        {"id": "group:finance", "name": "Finance", "members": ["user:alice", "user:bob"]},
        {"id": "user:bob", "name": "Bob", "last_seen_at": "2026-03-02T08:00:00Z"},
    ]
    assert payload["resources"] == [{"id": "organization:acme", "name": "Acme", "attributes": {"tier": "gold"}}]
    assert payload["grants"] == [{"principal": "group:finance", "role": "member", "resource": "organization:acme",
                                  "granted_at": "2026-02-01T00:00:00+00:00", "reason": "42"}]
    assert origins == {
        "principals": [f"{path}[Principals]:2", f"{path}[Principals]:3", f"{path}[Principals]:5",
                       f"{path}[Principals]:6"],
        "resources": [f"{path}[resources]:2"],
        "grants": [f"{path}[GRANTS]:2"],
    }
    # The numeric id is kept as a row and reported at its index; everything else validates.
    assert error_locations(payload) == [("principals", 1, "id")]
    del payload["principals"][1]
    parsed = validate(payload)
    assert parsed.principals[0].last_seen_at == datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc)
    assert parsed.grants[0].granted_at == datetime(2026, 2, 1, tzinfo=timezone.utc)


def test_xlsx_principals_attributes(tmp_path):
    path = make_workbook(tmp_path / "book.xlsx", {"principals": [["id", "attributes"],
                                                                 ["user:alice", '{"team": "north"}']]})
    assert read_import_files([path])["principals"] == [{"id": "user:alice", "attributes": {"team": "north"}}]


def test_xlsx_needs_a_known_sheet(tmp_path):
    path = make_workbook(tmp_path / "book.xlsx", {"Sheet1": [["id"], ["user:a"]]})
    with pytest.raises(ImportFileError, match="no sheet named principals, resources or grants") as caught:
        read_import_files([path])
    assert "Sheet1" in str(caught.value)


def test_xlsx_unknown_column_and_bad_attributes(tmp_path):
    path = make_workbook(tmp_path / "book.xlsx", {"principals": [["id", "nickname"], ["user:a", "Al"]]})
    with pytest.raises(ImportFileError, match=r"sheet 'principals' row 1: unknown column 'nickname'"):
        read_import_files([path])
    path = make_workbook(tmp_path / "book2.xlsx", {"resources": [["id", "attributes"], ["project:a", "{"],
                                                                 ["project:b", "{}"]]})
    with pytest.raises(ImportFileError, match=r"sheet 'resources' row 2, column attributes \(B\): invalid JSON"):
        read_import_files([path])


def test_xlsx_not_a_workbook(tmp_path):
    path = write(tmp_path / "book.xlsx", "id,name\n")
    with pytest.raises(ImportFileError, match="not a readable .xlsx workbook"):
        read_import_files([path])


# -- several files ----------------------------------------------------------------------------------

def test_several_files_concatenated_with_aligned_origins(tmp_path):
    first = write(tmp_path / "principals-a.csv", "id,name\nuser:alice,Alice\n\nuser:bob,Bob\n")
    dump = write(tmp_path / "dump.json", json.dumps({
        "principals": [{"id": "group:finance", "members": ["user:alice"]}],
        "resources": [{"id": "organization:acme"}],
        "source": "hr_sync",
    }))
    book = make_workbook(tmp_path / "more.xlsx", {
        "grants": [["principal", "role", "resource"], ["group:finance", "member", "organization:acme"]],
        "principals": [["id"], ["user:carol"]],
    })
    grants = write(tmp_path / "grants.csv", "principal,role,resource\nuser:bob,billing_admin,organization:acme\n")
    payload, origins = read_import_files_with_origins([first, dump, book, grants])
    assert [row["id"] for row in payload["principals"]] == ["user:alice", "user:bob", "group:finance", "user:carol"]
    assert origins["principals"] == [f"{first}:2", f"{first}:4", f"{dump}#0", f"{book}[principals]:2"]
    assert payload["resources"] == [{"id": "organization:acme"}]
    assert origins["resources"] == [f"{dump}#0"]
    assert [row["principal"] for row in payload["grants"]] == ["group:finance", "user:bob"]
    assert origins["grants"] == [f"{book}[grants]:2", f"{grants}:2"]
    assert payload["source"] == "hr_sync"
    for name in ("principals", "resources", "grants"):
        assert len(origins[name]) == len(payload[name])
    parsed = validate(payload)
    assert parsed.source == "hr_sync" and len(parsed.principals) == 4
    assert read_import_files([first, dump, book, grants]) == payload


def test_combined_json_conflicts_and_non_list_sections(tmp_path):
    a = write(tmp_path / "a.json", json.dumps({"source": "hr", "principals": []}))
    b = write(tmp_path / "b.json", json.dumps({"source": "crm"}))
    with pytest.raises(ImportFileError, match="'source'"):
        read_import_files([a, b])
    c = write(tmp_path / "c.json", json.dumps({"grants": {"principal": "user:a"}}))
    csv_file = write(tmp_path / "principals.csv", "id\nuser:a\n")
    with pytest.raises(ImportFileError, match="'grants' must be a JSON array"):
        read_import_files([csv_file, c])


def test_same_file_twice_refused(tmp_path):
    path = write(tmp_path / "principals.csv", "id\nuser:a\n")
    with pytest.raises(ImportFileError, match="more than once"):
        read_import_files([path, tmp_path / "." / "principals.csv"])


# -- what is not a readable file ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["principals.txt", "principals.xls", "principals"])
def test_unsupported_extension(tmp_path, name):
    path = write(tmp_path / name, "id\nuser:a\n")
    with pytest.raises(ImportFileError) as caught:
        read_import_files([path])
    message = str(caught.value)
    assert str(path) in message and ".json" in message and ".csv" in message and ".xlsx" in message


def test_missing_file(tmp_path):
    path = tmp_path / "principals.csv"
    with pytest.raises(ImportFileError, match="no such file") as caught:
        read_import_files([path])
    assert str(path) in str(caught.value)


def test_no_files_and_bad_section(tmp_path):
    with pytest.raises(ImportFileError):
        read_import_files([])
    path = write(tmp_path / "x.csv", "id\nuser:a\n")
    with pytest.raises(ImportFileError, match="unknown section"):
        read_import_files([path], section="users")


# -- limits: decompressed bytes and cells, refused before they are held ------------------------------

def _shared_strings_bomb(path: Path, strings: int) -> Path:
    """A real workbook with a shared-string table of ``strings`` tiny strings: a few hundred KB on
    disk, tens of MB once inflated, and (to openpyxl) millions of objects read before any row."""
    import zipfile
    plain = make_workbook(path.with_name("plain.xlsx"), {"grants": [["principal", "role", "resource"],
                                                                     ["user:a", "viewer", "project:p"]]})
    kind = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bomb:
        for member in source.infolist():
            data = source.read(member)
            if member.filename == "[Content_Types].xml":
                data = data.replace(b"</Types>", f'<Override PartName="/xl/sharedStrings.xml" '
                                                 f'ContentType="{kind}"/></Types>'.encode())
            bomb.writestr(member, data)
        with bomb.open("xl/sharedStrings.xml", "w") as out:
            out.write(b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">')
            pad = b"<si><t>x</t></si>" * 10_000
            for _ in range(strings // 10_000):
                out.write(pad)
            out.write(b"</sst>")
    return path


def _one_row_bomb(path: Path, cells: int) -> Path:
    """A workbook whose sheet is one row of ``cells`` cells, which openpyxl would build whole."""
    import zipfile
    plain = make_workbook(path.with_name("plain.xlsx"), {"grants": [["principal", "role", "resource"]]})
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bomb:
        for member in source.infolist():
            if member.filename != "xl/worksheets/sheet1.xml":
                bomb.writestr(member, source.read(member))
                continue
            head, _, tail = source.read(member).partition(b"</sheetData>")
            with bomb.open(member.filename, "w") as out:
                out.write(head + b'<row r="2">')
                pad = b"<c><v>1</v></c>" * 10_000
                for _ in range(cells // 10_000):
                    out.write(pad)
                out.write(b"</row></sheetData>" + tail)
    return path


def _peak_memory(call) -> tuple[Exception, int]:
    import tracemalloc
    tracemalloc.start()
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - returned for the test to look at
        caught = exc
    else:
        caught = None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return caught, peak


@pytest.mark.parametrize("bomb", [lambda path: _shared_strings_bomb(path, 3_000_000),  # 51 MB of XML
                                  lambda path: _one_row_bomb(path, 1_500_000)])  # 22 MB of XML
def test_a_zip_bomb_workbook_is_refused_before_it_is_held(tmp_path, bomb):
    """Millions of strings or cells in a workbook of a few hundred KB: refused at the default cell
    limit while it is inflated, with a few MB in use, before openpyxl sees it."""
    path = bomb(tmp_path / "bomb.xlsx")
    assert path.stat().st_size < 1_000_000
    caught, peak = _peak_memory(lambda: read_import_files([path]))
    assert isinstance(caught, ImportTooLarge) and caught.setting == "IMPORT_MAX_CELLS", caught
    assert "ACCESSREVIEW_IMPORT_MAX_CELLS" in str(caught) and "1000000" in str(caught)
    assert peak < 16 * 1024 * 1024, f"{peak} bytes held"


def test_a_workbook_larger_than_the_limit_once_inflated_is_refused_unread(tmp_path):
    path = _shared_strings_bomb(tmp_path / "bomb.xlsx", 200_000)  # 3.4 MB of XML
    caught, peak = _peak_memory(lambda: read_import_files([path], limits=ImportLimits(max_bytes=1024 * 1024)))
    assert isinstance(caught, ImportTooLarge) and caught.setting == "IMPORT_MAX_BYTES", caught
    assert "ACCESSREVIEW_IMPORT_MAX_BYTES" in str(caught) and "1048576 bytes" in str(caught)
    assert peak < 4 * 1024 * 1024, "refused on the sizes the archive declares, before inflating"


def test_a_sheet_that_skips_a_million_rows_counts_them(tmp_path):
    """A row number far down costs openpyxl an empty row for each row skipped: each counts."""
    from openpyxl import Workbook
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "grants"
    sheet.append(["principal", "role", "resource"])
    sheet.cell(row=1_000_000, column=1, value="user:a")
    workbook.save(tmp_path / "far.xlsx")
    with pytest.raises(ImportTooLarge, match="row 1002") as caught:  # 3 cells, then 1 a row
        read_import_files([tmp_path / "far.xlsx"], limits=ImportLimits(max_cells=1003))
    assert caught.value.setting == "IMPORT_MAX_CELLS"


def test_a_wide_row_counts_every_cell_up_to_its_last(tmp_path):
    path = make_workbook(tmp_path / "wide.xlsx", {"grants": [["principal", "role", "resource"]]})
    from openpyxl import load_workbook
    workbook = load_workbook(path)
    workbook["grants"].cell(row=2, column=16_000, value="far right")
    workbook.save(path)
    with pytest.raises(ImportTooLarge, match="row 2"):
        read_import_files([path], limits=ImportLimits(max_cells=10_000))


def test_an_oversize_csv_is_refused_before_it_is_read(tmp_path):
    path = write(tmp_path / "grants.csv", "principal,role,resource\n" + "user:a,viewer,project:p\n" * 100_000)
    caught, peak = _peak_memory(lambda: read_import_files([path], limits=ImportLimits(max_bytes=1024 * 1024)))
    assert isinstance(caught, ImportTooLarge) and caught.setting == "IMPORT_MAX_BYTES", caught
    assert str(path) in str(caught) and peak < 512 * 1024, "refused on the file's size, unread"


def test_a_csv_with_too_many_cells_names_the_line(tmp_path):
    path = write(tmp_path / "grants.csv", "principal,role,resource\n" + "user:a,viewer,project:p\n" * 100)
    with pytest.raises(ImportTooLarge, match=r"grants.csv: line 34: the import has more than 100 cells"):
        read_import_files([path], limits=ImportLimits(max_cells=100))
    assert read_import_files([path], limits=ImportLimits(max_cells=303))["grants"][99]["principal"] == "user:a"


def test_the_limits_hold_for_all_the_files_of_one_import(tmp_path):
    first = write(tmp_path / "principals.csv", "id\n" + "user:a\n" * 60)
    second = write(tmp_path / "grants.csv", "principal,role,resource\n" + "user:a,viewer,project:p\n" * 20)
    with pytest.raises(ImportTooLarge, match="grants.csv"):
        read_import_files([first, second], limits=ImportLimits(max_cells=100))
