"""Streaming Excel workbooks for people: frozen header, autofilter, widths, real dates, no formulas.

openpyxl makes the workbook in write-only mode: its package, styles, sheets, header rows, column
widths, frozen panes and filters. The data rows are serialised here instead of through openpyxl's
cell objects. That path costs about 6 µs per cell, which for a 33-column review item limits
openpyxl to about 5,000 rows/s on our machines; this one writes the same cells (inline strings,
numbers, dates as serials with openpyxl's own date style) several times faster. Rows wait in a
temporary file per sheet and are spliced into the sheet's XML when the workbook is saved, so
memory stays flat however many rows there are. A sheet that fills up continues on a next sheet
("Items (2)").
"""

from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from datetime import date, datetime, timezone
from io import BytesIO
from pathlib import Path
from typing import IO, Any, Iterable

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import to_excel

MAX_ROWS = 1_048_576  # Excel's limit, header included
MAX_CELL_CHARS = 32_767  # Excel's limit for one cell's text: longer text makes it call the file corrupt
FORMULA_START = ("=", "+", "-", "@")
_SPACES = (" ", "\t", "\n", "\r")
_ROWS_PER_WRITE = 512
_CACHED_TEXTS, _CACHED_TEXT_CHARS = 20_000, 80  # short texts a sheet remembers the XML of
_LINE_HEIGHT = 15  # points, a line of the default 11-point font
_MAX_HEIGHT = 409  # Excel's tallest row
_PAGE_WIDTH = 200  # column-width units a landscape page holds with its text still readable (~8 points)
_COMPRESS_LEVEL = 1  # about twice as fast as zlib's default on sheet XML, for a file ~15% larger
# Characters XML 1.0 cannot carry, and text that already looks like OOXML's _xHHHH_ escape.
_UNWRITABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_LITERAL_ESCAPE = re.compile("_x[0-9A-Fa-f]{4}_")
# Text written as it is (with no "_x" in it): printable ASCII with no markup character, no space at
# either end and no formula's first character (the checks below, at once).
_PLAIN = re.compile(r"(?![=+\-@])[!-%'-;=?-~](?:[ -%'-;=?-~]*[!-%'-;=?-~])?\Z")


class Book:
    """A write-only workbook; ``sheet`` adds a table, ``save`` writes the .xlsx file."""

    def __init__(self) -> None:
        self.workbook = Workbook(write_only=True)
        self._parts: list[_Part] = []
        self._styles: dict[str, int] | None = None

    def sheet(self, title: str, columns: list[tuple[str, int]], max_rows: int = MAX_ROWS) -> Sheet:
        return Sheet(self, title, columns, max_rows)

    def _new_part(self, title: str, columns: list[tuple[str, int]]) -> _Part:
        worksheet = self.workbook.create_sheet(title[:31])
        for index, (_, width) in enumerate(columns, start=1):
            worksheet.column_dimensions[get_column_letter(index)].width = width
        worksheet.freeze_panes = "A2"
        _print_layout(worksheet, sum(width for _, width in columns))
        header = []
        for name, _ in columns:
            cell = WriteOnlyCell(worksheet, value=name)
            cell.font = Font(bold=True)
            cell.alignment = _WRAP
            header.append(cell)
        lines = max(len(name) // max(width - 2, 4) + 1 for name, width in columns)
        if lines > 1:
            worksheet.row_dimensions[1].height = _LINE_HEIGHT * lines
        worksheet.append(header)
        if self._styles is None:
            self._styles = _register_styles(worksheet)
        part = _Part(worksheet, [width for _, width in columns], self._styles)
        self._parts.append(part)
        return part

    def save(self, path: Path) -> None:
        for part in self._parts:
            part.finish()
        package = BytesIO()
        self.workbook.save(package)  # every sheet holds its header row only
        by_path = {part.worksheet.path.lstrip("/"): part for part in self._parts}
        try:
            with zipfile.ZipFile(package) as source, \
                    zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=_COMPRESS_LEVEL) as target:
                for info in source.infolist():
                    data = source.read(info)
                    part = by_path.get(info.filename)
                    if part is None:
                        target.writestr(info, data)
                        continue
                    head, separator, tail = data.partition(b"</sheetData>")
                    if not separator:
                        raise RuntimeError(f"{info.filename} has no sheetData to put the rows in")
                    with target.open(info.filename, "w", force_zip64=True) as out:
                        out.write(head)
                        part.copy_rows(out)
                        out.write(separator + tail)
        finally:
            for part in self._parts:
                part.discard()


_WRAP = Alignment(wrap_text=True, vertical="top")
_TOP = Alignment(vertical="top")


def _print_layout(worksheet, width: int) -> None:
    """Printed or saved as PDF, every sheet keeps its facts: landscape; as few pages wide as keep the text
    readable (one for most sheets; a wide table in strips, each row's strips on consecutive pages); the
    header row and the first column (the item, event or field) on every page; the sheet's name and page
    numbers."""
    worksheet.page_setup.orientation = "landscape"
    worksheet.page_setup.fitToWidth = -(-width // _PAGE_WIDTH)
    worksheet.page_setup.pageOrder = "overThenDown"
    worksheet.page_setup.fitToHeight = 0  # as many pages down as it takes
    worksheet.sheet_properties.pageSetUpPr.fitToPage = True
    worksheet.print_title_rows = "1:1"
    worksheet.print_title_cols = "A:A"
    worksheet.page_margins.left = worksheet.page_margins.right = 0.4
    worksheet.oddHeader.center.text = "&A"
    worksheet.oddFooter.center.text = "page &P of &N"


def _register_styles(worksheet) -> dict[str, int]:
    """The style ids openpyxl gives a date cell and a (quote-prefixed) wrapping text cell, registered in the
    workbook."""
    date_cell = WriteOnlyCell(worksheet, value=datetime(2000, 1, 1))
    date_cell.alignment = _TOP
    text_cell = WriteOnlyCell(worksheet, value="a")
    text_cell.alignment = _WRAP
    number_cell = WriteOnlyCell(worksheet, value=1)
    number_cell.alignment = _TOP
    quoted_cell = WriteOnlyCell(worksheet, value="=")
    quoted_cell.alignment = _WRAP
    quoted_cell.quotePrefix = True  # shown and edited as text even in Excel's formula bar
    return {"date": date_cell.style_id, "text": text_cell.style_id, "quoted": quoted_cell.style_id,
            "number": number_cell.style_id}


class Sheet:
    """One table: a header and rows, continued on a next sheet when one is full."""

    def __init__(self, book: Book, title: str, columns: list[tuple[str, int]], max_rows: int = MAX_ROWS) -> None:
        self.book = book
        self.title = title
        self.columns = columns
        self.max_rows = max_rows
        self.parts = 0
        self._open()

    def _open(self) -> None:
        self.parts += 1
        title = self.title if self.parts == 1 else f"{self.title} ({self.parts})"
        self.part = self.book._new_part(title, self.columns)

    def append(self, values: Iterable[Any]) -> None:
        if self.part.rows + 1 >= self.max_rows:
            self._open()
        self.part.append(values)


class _Part:
    """One openpyxl sheet and the temporary file its serialised rows wait in."""

    def __init__(self, worksheet, widths: list[int], styles: dict[str, int]) -> None:
        self.worksheet = worksheet
        self.letters = [get_column_letter(i) for i in range(1, len(widths) + 1)]
        # Characters a wrapped line holds in each column (a width is about that many digits).
        self.line_chars = [max(width - 2, 4) for width in widths]
        self.date_style = styles["date"]
        self.number_style = styles["number"]
        self.text_style = f' s="{styles["text"]}"'
        self.quoted_style = f' s="{styles["quoted"]}"'
        self._starts = [f'<c r="{letter}' for letter in self.letters]  # a cell's XML up to its row number
        self._number = f'" s="{self.number_style}"><v>'
        self.rows = 0
        self._file: IO[bytes] = tempfile.TemporaryFile()
        self._pending: list[str] = []
        self._texts: dict[str, str] = {}  # text -> its cell's XML after the reference
        self._dates: dict[datetime, str] = {}  # likewise for dates, which repeat as much (a close, an import)

    def append(self, values: Iterable[Any]) -> None:
        self.rows += 1
        number = str(self.rows + 1)  # the header is row 1
        cells: list[str] = []
        add = cells.append
        lines = 1
        texts = self._texts
        for start, width, value in zip(self._starts, self.line_chars, values):
            if value is None:
                continue
            kind = type(value)
            if kind is not str:
                if kind is int:
                    add(f'{start}{number}{self._number}{value}</v></c>')
                    continue
                if kind is not dict and kind is not list and kind is not tuple:
                    cell = self._cell(start + number, value)
                    if cell:
                        add(cell)
                    continue
                value = joined(value)
            if not value:
                continue
            # Most text cells repeat (yes/no, decisions, rules, reviewers, types): each short one is escaped once.
            tail = texts.get(value)
            if tail is None:
                tail = self._new_text(value)
            if len(value) > width or "\n" in value:
                needed = _lines(value, width)
                if needed > lines:
                    lines = needed
            add(f"{start}{number}{tail}")
        # Rows of wrapped text are given their height: spreadsheets do not all fit it when they open a file,
        # and a row too short prints its text over the next one.
        height = f' ht="{min(_MAX_HEIGHT, _LINE_HEIGHT * lines)}" customHeight="1"' if lines > 1 else ""
        self._pending.append(f'<row r="{number}"{height}>{"".join(cells)}</row>')
        if len(self._pending) >= _ROWS_PER_WRITE:
            self._write_pending()

    def _cell(self, ref: str, value: Any) -> str:
        """The XML of a cell of any kind; ``ref`` is its reference without the closing quote."""
        kind = type(value)
        if kind is str:
            return (ref + (self._texts.get(value) or self._new_text(value))) if value else ""
        if value is None:
            return ""
        if kind is int or kind is float:
            return f'{ref}{self._number}{value!r}</v></c>'
        if kind is bool:
            return f'{ref}" s="{self.number_style}" t="b"><v>{int(value)}</v></c>'
        if isinstance(value, datetime):  # real dates, in UTC (Excel has no time zones)
            tail = self._dates.get(value)
            if tail is None:
                plain = value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo is not None else value
                tail = f'" s="{self.date_style}"><v>{to_excel(plain)!r}</v></c>'
                if len(self._dates) < _CACHED_TEXTS:
                    self._dates[value] = tail
            return ref + tail
        if isinstance(value, date):
            return self._cell(ref, datetime(value.year, value.month, value.day))
        if isinstance(value, (list, tuple, set, frozenset, dict)):
            return self._cell(ref, joined(value))
        return self._cell(ref, str(value))

    def _new_text(self, value: str) -> str:
        """A text cell's XML after its reference, remembered when the text is short."""
        tail = self._text_tail(value)
        if len(value) <= _CACHED_TEXT_CHARS and len(self._texts) < _CACHED_TEXTS:
            self._texts[value] = tail
        return tail

    def _text_tail(self, value: str) -> str:
        """A text cell's XML after its reference (from the reference's closing quote)."""
        if len(value) > MAX_CELL_CHARS:
            # The last resort, so the file still opens: reports put long lists in listings of their own.
            marker = f" … [cut: {len(value)} characters do not fit in one cell]"
            value = value[:MAX_CELL_CHARS - len(marker)] + marker
        if "_x" not in value and _PLAIN.match(value):  # most text: nothing to escape or to keep as text
            return f'"{self.text_style} t="inlineStr"><is><t>{value}</t></is></c>'
        if not value.isprintable() or "_x" in value:  # rare: control characters or escape look-alikes
            value = _escape_for_ooxml(value)
        text = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        space = ' xml:space="preserve"' if value[0] in _SPACES or value[-1] in _SPACES else ""
        # Text from people or the portal stays text: an inline string is never a formula, and the
        # quote prefix keeps Excel from turning a leading =, +, - or @ into one when the cell is edited.
        style = self.quoted_style if value[0] in FORMULA_START else self.text_style
        return f'"{style} t="inlineStr"><is><t{space}>{text}</t></is></c>'

    def _write_pending(self) -> None:
        if self._pending:
            self._file.write("".join(self._pending).encode("utf-8"))
            self._pending = []

    def finish(self) -> None:
        self._write_pending()
        last = get_column_letter(len(self.letters))
        self.worksheet.auto_filter.ref = f"A1:{last}{self.rows + 1}"

    def copy_rows(self, out: IO[bytes]) -> None:
        self._file.seek(0)
        shutil.copyfileobj(self._file, out, 1 << 20)

    def discard(self) -> None:
        self._file.close()


def _lines(text: str, width: int) -> int:
    """How many lines a wrapped text takes in a column that holds ``width`` characters a line."""
    if "\n" not in text:
        return len(text) // width + 1
    return sum(len(line) // width + 1 for line in text.split("\n"))


def joined(value: Any) -> str:
    """A list as "a, b"; a mapping as "key: a, b; key: c"."""
    if isinstance(value, dict):
        return "; ".join(f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in value.items())
    return ", ".join(str(v) for v in value)


def _escape_for_ooxml(value: str) -> str:
    """OOXML's own escape (ECMA-376 ST_Xstring): a character XML cannot carry becomes _xHHHH_, and
    text that already reads like such an escape has its underscore escaped, so Excel shows the original."""
    value = _LITERAL_ESCAPE.sub(lambda m: "_x005F" + m.group(), value)
    return _UNWRITABLE.sub(lambda m: f"_x{ord(m.group()):04X}_", value)


# Narrow enough that a value wraps within a printed page rather than running off it.
KEY_VALUE_COLUMNS = [("Field", 34), ("Value", 90)]


def key_value_sheet(book: Book, title: str, rows: Iterable[tuple[str, Any]]) -> None:
    sheet = book.sheet(title, KEY_VALUE_COLUMNS)
    for key, value in rows:
        sheet.append([key, value])


def summary_sheet(book: Book) -> Sheet:
    """A workbook's Summary, made first so that it is the first sheet; its rows may come last."""
    return book.sheet("Summary", KEY_VALUE_COLUMNS)
