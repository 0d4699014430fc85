"""Reading bulk-import files (JSON, CSV, XLSX) into the shape of :class:`ImportPayload`.

The readers only reshape: values stay strings (datetimes as ISO 8601 text) and every non-blank row
is kept, in file order, so that validation of the payload reports problems as
``(section, index, field)`` with ``index`` the row's position in its section. Alongside the payload,
:func:`read_import_files_with_origins` says where each row came from (``"grants.csv:12"``,
``"book.xlsx[grants]:7"``, ``"dump.json#3"``) so a caller can turn an index back into a file line.

What the readers refuse instead of guessing: unknown, duplicate or missing required columns, values
in columns without a header, cells of ``attributes`` that are not a JSON object, files that are not
UTF-8, malformed CSV quoting, and files without a header row.

An import is bounded (:class:`ImportLimits`): by the bytes of its files once decompressed, and by
the cells it reads. Both are counted before the bytes or cells are held: a workbook's declared sizes
before anything is inflated, its real sizes while it is inflated in small pieces (and its cells,
shared strings included, counted in the XML) before openpyxl reads it, and every row's cells as
the rows stream. Past a limit the import stops at once with :class:`ImportTooLarge`.
"""

from __future__ import annotations

import csv
import io
import json
import re
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import IO, Any

__all__ = ["COLUMNS", "SECTIONS", "ImportFileError", "ImportLimits", "ImportTooLarge", "read_import_files",
           "read_import_files_with_origins"]

SECTIONS = ("principals", "resources", "grants")

COLUMNS: dict[str, tuple[str, ...]] = {
    "principals": ("id", "name", "email", "department", "manager", "status", "last_seen_at", "members",
                   "attributes"),
    "resources": ("id", "name", "parent", "owner", "attributes"),
    "grants": ("principal", "role", "resource", "granted_by", "granted_at", "reason", "expires_at"),
}

# Columns without which no row of the section can be valid: a file lacking one is refused as a whole.
REQUIRED: dict[str, tuple[str, ...]] = {
    "principals": ("id",),
    "resources": ("id",),
    "grants": ("principal", "role", "resource"),
}

SUPPORTED = (".json", ".csv", ".xlsx")

# A group's members cell can be long (ids separated by ";"); the csv module's default cap is 128 KiB.
_CSV_FIELD_LIMIT = 64 * 1024 * 1024


class ImportFileError(Exception):
    """An import file cannot be read; the message names the file and, where relevant, the line and column."""


class ImportTooLarge(ImportFileError):
    """The import passes one of its limits; ``setting`` names it (``IMPORT_MAX_BYTES``, ``IMPORT_MAX_CELLS``)."""

    def __init__(self, message: str, setting: str, limit: int) -> None:
        super().__init__(message)
        self.setting = setting
        self.limit = limit


@dataclass(frozen=True)
class ImportLimits:
    """The most an import may hold: bytes of its files once decompressed, and cells read."""

    max_bytes: int = 64 * 1024 * 1024
    max_cells: int = 1_000_000


class _Budget:
    """What the import has used of its limits so far, across all of its files."""

    def __init__(self, limits: ImportLimits) -> None:
        self.limits = limits
        self.bytes = 0
        self.cells = 0

    def expect_bytes(self, size: int, where: str, what: str = "is") -> None:
        """Refuse before reading when ``size`` more bytes would pass the limit."""
        if self.bytes + size > self.limits.max_bytes:
            raise self._too_many_bytes(where, what)

    def add_bytes(self, size: int, where: str) -> None:
        self.bytes += size
        if self.bytes > self.limits.max_bytes:
            raise self._too_many_bytes(where, "is")

    def add_cells(self, count: int, where: str) -> None:
        self.cells += count
        self.expect_cells(0, where)

    def expect_cells(self, count: int, where: str) -> None:
        """Refuse when ``count`` more cells would pass the limit."""
        if self.cells + count > self.limits.max_cells:
            raise ImportTooLarge(f"{where}: the import has more than {self.limits.max_cells} cells "
                                 "(ACCESSREVIEW_IMPORT_MAX_CELLS); split it or raise the limit",
                                 "IMPORT_MAX_CELLS", self.limits.max_cells)

    def _too_many_bytes(self, where: str, what: str) -> ImportTooLarge:
        return ImportTooLarge(f"{where}: the import {what} larger than {self.limits.max_bytes} bytes "
                              "once decompressed (ACCESSREVIEW_IMPORT_MAX_BYTES); split it or raise the limit",
                              "IMPORT_MAX_BYTES", self.limits.max_bytes)


def read_import_files(paths: Iterable[Path | str], section: str | None = None,
                      limits: ImportLimits | None = None) -> dict[str, Any]:
    """Read one or more files into the import payload shape: {"principals": [...], "resources": [...], "grants": [...]}.

    Top-level keys like source/mode/dry_run present in a JSON file are passed through; the CLI sets them
    otherwise. ``section`` names the section of every CSV file given (otherwise the file name says it).
    """
    return read_import_files_with_origins(paths, section, limits)[0]


def read_import_files_with_origins(paths: Iterable[Path | str], section: str | None = None,
                                   limits: ImportLimits | None = None
                                   ) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Like :func:`read_import_files`, plus, per section, where each row came from (aligned with the rows)."""
    budget = _Budget(limits or ImportLimits())
    paths = [Path(p) for p in paths]
    if not paths:
        raise ImportFileError("no import files given")
    if section is not None and section not in SECTIONS:
        raise ImportFileError(f"unknown section {section!r}; expected one of {', '.join(SECTIONS)}")
    seen: dict[Path, Path] = {}
    for path in paths:
        suffix = path.suffix.lower()
        if suffix not in SUPPORTED:
            raise ImportFileError(f"{path}: unsupported file type {suffix or '(no extension)'}; "
                                  f"supported: {', '.join(SUPPORTED)}")
        if not path.exists():
            raise ImportFileError(f"{path}: no such file")
        if not path.is_file():
            raise ImportFileError(f"{path}: not a regular file")
        key = path.resolve()
        if key in seen:
            raise ImportFileError(f"{path}: given more than once (also as {seen[key]}); its rows would be imported twice")
        seen[key] = path

    if len(paths) == 1 and paths[0].suffix.lower() == ".json":
        document = _read_json(paths[0], budget)
        origins = {}
        for name in SECTIONS:
            rows = document.get(name)
            origins[name] = [f"{paths[0]}#{i}" for i in range(len(rows))] if isinstance(rows, list) else []
        return document, origins

    payload: dict[str, Any] = {name: [] for name in SECTIONS}
    origins = {name: [] for name in SECTIONS}
    extras: dict[str, Any] = {}
    extras_from: dict[str, Path] = {}
    for path in paths:
        suffix = path.suffix.lower()
        if suffix == ".json":
            document = _read_json(path, budget)
            for key, value in document.items():
                if key in SECTIONS:
                    if not isinstance(value, list):
                        raise ImportFileError(f"{path}: {key!r} must be a JSON array of rows, "
                                              f"not {_json_kind(value)}")
                    payload[key].extend(value)
                    origins[key].extend(f"{path}#{i}" for i in range(len(value)))
                    continue
                if key in extras and extras[key] != value:
                    raise ImportFileError(f"{path}: {key!r} is {json.dumps(value)} here but "
                                          f"{json.dumps(extras[key])} in {extras_from[key]}")
                extras[key] = value
                extras_from[key] = path
        elif suffix == ".csv":
            name = _csv_section(path, section)
            rows, where = _read_csv(path, name, budget)
            payload[name].extend(rows)
            origins[name].extend(where)
        else:
            for name, (rows, where) in _read_xlsx(path, budget).items():
                payload[name].extend(rows)
                origins[name].extend(where)
    payload.update(extras)
    return payload, origins


# -- JSON -------------------------------------------------------------------------------------------

class _NonFiniteConstant(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NonFiniteConstant(name)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number")


def _json_loads(text: str, where: str, decode_error: Callable[[json.JSONDecodeError], str]) -> Any:
    """JSON as the importer accepts it (no NaN or Infinity), every failure an ImportFileError."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ImportFileError(decode_error(exc)) from exc
    except _NonFiniteConstant as exc:
        raise ImportFileError(f"{where}: invalid JSON: {exc} is not a JSON value") from exc
    except RecursionError as exc:
        raise ImportFileError(f"{where}: invalid JSON: nested too deeply") from exc


def _read_json(path: Path, budget: _Budget) -> dict[str, Any]:
    document = _json_loads(_read_text(path, budget), str(path),
                           lambda exc: f"{path}: line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}")
    if not isinstance(document, dict):
        raise ImportFileError(f"{path}: expected a JSON object with principals, resources and grants, "
                              f"not {_json_kind(document)}")
    return document


def _read_text(path: Path, budget: _Budget) -> str:
    try:
        budget.expect_bytes(path.stat().st_size, str(path), "would be")
        data = path.read_bytes()
        budget.add_bytes(len(data), str(path))
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ImportFileError(f"{path}: line {line}: not valid UTF-8 (byte 0x{data[exc.start]:02x}); "
                              "save the file as UTF-8") from exc


# -- tables (CSV and XLSX) --------------------------------------------------------------------------

Cells = list[str | None]  # one row; None is an empty (or whitespace-only) cell


def _counted(rows: Iterator[tuple[int, Cells]], budget: _Budget, where: Callable[[int], str]
             ) -> Iterator[tuple[int, Cells]]:
    """The rows, each one's cells counted against the import's limit before it is used (an empty
    row counts one: a sheet may skip a million rows in a few bytes)."""
    for line, cells in rows:
        budget.add_cells(len(cells) or 1, where(line))
        yield line, cells


def _table(section: str, rows: Iterator[tuple[int, Cells]], where: Callable[[int], str],
           column: Callable[[int, str | None], str], origin: Callable[[int], str], budget: _Budget
           ) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of one section from a table whose first non-blank row is the header."""
    rows = _counted(rows, budget, where)
    for line, cells in rows:
        if any(cell is not None for cell in cells):
            names = _header(section, cells, where(line), column)
            break
    else:
        raise ImportFileError(f"{where(1)}: no header row; expected columns of {section}: "
                              f"{', '.join(COLUMNS[section])}")
    out: list[dict[str, Any]] = []
    origins: list[str] = []
    for line, cells in rows:
        if all(cell is None for cell in cells):
            continue
        row: dict[str, Any] = {}
        for index, value in enumerate(cells):
            if value is None:
                continue
            name = names[index] if index < len(names) else None
            if name is None:
                raise ImportFileError(f"{where(line)}, {column(index, None)}: value {_clip(value)!r} "
                                      "in a column without a header")
            if name == "members":
                row[name] = [member.strip() for member in value.split(";") if member.strip()]
            elif name == "attributes":
                row[name] = _attributes(value, f"{where(line)}, {column(index, name)}")
            else:
                row[name] = value
        out.append(row)
        origins.append(origin(line))
    return out, origins


def _header(section: str, cells: Cells, where: str, column: Callable[[int, str | None], str]) -> list[str | None]:
    known = COLUMNS[section]
    names: list[str | None] = []
    for index, cell in enumerate(cells):
        if cell is None:
            names.append(None)
            continue
        name = cell.strip().lower()
        if name not in known:
            hint = " (only comma-separated CSV is read)" if ";" in name or "\t" in name else ""
            raise ImportFileError(f"{where}: unknown column {cell.strip()!r} for {section}{hint}; "
                                  f"known columns: {', '.join(known)}")
        if name in names:
            raise ImportFileError(f"{where}: column {name!r} appears twice ({column(names.index(name), name)} "
                                  f"and {column(index, name)})")
        names.append(name)
    missing = [name for name in REQUIRED[section] if name not in names]
    if missing:
        raise ImportFileError(f"{where}: header lacks required column(s) {', '.join(missing)} for {section}")
    return names


def _attributes(text: str, where: str) -> dict[str, Any]:
    value = _json_loads(text, where, lambda exc: f"{where}: invalid JSON: {exc.msg} (character {exc.pos + 1})")
    if not isinstance(value, dict):
        raise ImportFileError(f"{where}: expected a JSON object, not {_json_kind(value)}")
    return value


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# -- CSV --------------------------------------------------------------------------------------------

def _csv_section(path: Path, section: str | None) -> str:
    if section is not None:
        return section
    stem = path.stem.lower()
    for name in SECTIONS:
        if stem.startswith(name):
            return name
    raise ImportFileError(f"{path}: cannot tell the section from the file name; name the file "
                          "principals*.csv, resources*.csv or grants*.csv, or pass --section")


def _read_csv(path: Path, section: str, budget: _Budget) -> tuple[list[dict[str, Any]], list[str]]:
    text = _read_text(path, budget)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)

    def rows() -> Iterator[tuple[int, Cells]]:
        while True:
            start = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise ImportFileError(f"{path}: line {reader.line_num}: malformed CSV: {exc}") from exc
            yield start, [cell if cell.strip() else None for cell in cells]

    limit = csv.field_size_limit()
    if limit < _CSV_FIELD_LIMIT:
        csv.field_size_limit(_CSV_FIELD_LIMIT)
    try:
        return _table(section, rows(),
                      where=lambda line: f"{path}: line {line}",
                      column=lambda index, name: f"column {name}" if name else f"column {index + 1}",
                      origin=lambda line: f"{path}:{line}", budget=budget)
    finally:
        csv.field_size_limit(limit)


# -- XLSX -------------------------------------------------------------------------------------------

def _xlsx_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat() + ("+00:00" if value.tzinfo is None else "")
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# An element of a worksheet's or the shared strings' XML that openpyxl makes an object of: a cell
# (<c …>) or a shared string (<si>), with or without a namespace prefix.
_CELL_ELEMENT = re.compile(rb"<(?:[A-Za-z_][\w.-]{0,15}:)?(?:c|si)[\s>/]")
_CELL_OVERLAP = 24  # longer than any match, so a match cut between two pieces is found once
_INFLATE_PIECE = 64 * 1024


def _check_workbook(path: Path, handle: IO[bytes], budget: _Budget) -> None:
    """Refuse a workbook past the import's limits before openpyxl holds any of it: its declared
    sizes first, then its real ones while inflating it a piece at a time, counting the cells and
    shared strings in its XML (each becomes an object in openpyxl, a whole row of them at once)."""
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ImportFileError(f"{path}: not a readable .xlsx workbook: {exc}") from exc
    with archive:
        members = archive.infolist()
        budget.expect_bytes(sum(member.file_size for member in members), str(path), "would be")
        elements = 0
        for member in members:
            where = f"{path} ({member.filename})"
            counted = member.filename.endswith(".xml") and (member.filename.startswith("xl/worksheets/")
                                                          or member.filename == "xl/sharedStrings.xml")
            try:
                with archive.open(member) as stream:
                    tail = b""
                    while piece := stream.read(_INFLATE_PIECE):
                        budget.add_bytes(len(piece), where)
                        if counted:
                            text = tail + piece
                            elements += sum(1 for match in _CELL_ELEMENT.finditer(text) if match.end() > len(tail))
                            budget.expect_cells(elements, where)
                            tail = text[-_CELL_OVERLAP:]
            except ImportTooLarge:
                raise
            except Exception as exc:  # a bad CRC, an unknown compression, a truncated member
                raise ImportFileError(f"{path}: not a readable .xlsx workbook: {exc}") from exc


def _read_xlsx(path: Path, budget: _Budget) -> dict[str, tuple[list[dict[str, Any]], list[str]]]:
    from openpyxl import load_workbook
    from openpyxl.utils import get_column_letter

    try:
        handle = open(path, "rb")  # one file for the check and the reading: what was checked is read
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    with warnings.catch_warnings(), handle:
        # Excel features openpyxl does not keep (data validation, conditional formats...) only warn.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"openpyxl(\.|$)")
        _check_workbook(path, handle, budget)
        try:
            handle.seek(0)
            workbook = load_workbook(handle, read_only=True, data_only=True)
        except Exception as exc:  # zip, XML and openpyxl errors alike: the file is not a usable workbook
            raise ImportFileError(f"{path}: not a readable .xlsx workbook: {exc}") from exc
        try:
            sheets: dict[str, Any] = {}
            for sheet in workbook.worksheets:
                name = sheet.title.strip().lower()
                if name in SECTIONS:
                    if name in sheets:
                        raise ImportFileError(f"{path}: two sheets for {name}: {sheets[name].title!r} "
                                              f"and {sheet.title!r}")
                    sheets[name] = sheet
            if not sheets:
                raise ImportFileError(f"{path}: no sheet named principals, resources or grants "
                                      f"(sheets: {', '.join(workbook.sheetnames) or 'none'})")
            result = {}
            for name in SECTIONS:
                if name in sheets:
                    result[name] = _read_sheet(path, sheets[name], name, get_column_letter, budget)
            return result
        finally:
            workbook.close()


def _read_sheet(path: Path, sheet: Any, section: str, letter: Callable[[int], str], budget: _Budget
                ) -> tuple[list[dict[str, Any]], list[str]]:
    title = sheet.title
    # A stale <dimension> in the file would otherwise cut rows or columns off without a word.
    sheet.reset_dimensions()

    def rows() -> Iterator[tuple[int, Cells]]:
        values = sheet.iter_rows(min_row=1, min_col=1, values_only=True)
        line = 0
        while True:
            try:
                cells = next(values)
            except StopIteration:
                return
            except Exception as exc:
                raise ImportFileError(f"{path}: sheet {title!r} after row {line}: cannot read: {exc}") from exc
            line += 1
            yield line, [_xlsx_text(value) for value in cells]

    return _table(section, rows(),
                  where=lambda line: f"{path}: sheet {title!r} row {line}",
                  column=lambda index, name: (f"column {name} ({letter(index + 1)})" if name
                                              else f"column {letter(index + 1)}"),
                  origin=lambda line: f"{path}[{title}]:{line}", budget=budget)
