"""Streaming Excel sheets for people: frozen header, autofilter, widths, real dates, no formulas.

openpyxl's write-only mode keeps memory flat however many rows; a sheet that fills up continues on
a next sheet ("Items (2)").
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

MAX_ROWS = 1_048_576  # Excel's limit, header included
FORMULA_START = ("=", "+", "-", "@")


class Sheet:
    def __init__(self, workbook: Workbook, title: str, columns: list[tuple[str, int]],
                 max_rows: int = MAX_ROWS) -> None:
        self.workbook = workbook
        self.title = title
        self.columns = columns
        self.max_rows = max_rows
        self.part = 0
        self._open()

    def _open(self) -> None:
        self.part += 1
        title = self.title if self.part == 1 else f"{self.title} ({self.part})"
        self.sheet = self.workbook.create_sheet(title[:31])
        for index, (_, width) in enumerate(self.columns, start=1):
            self.sheet.column_dimensions[get_column_letter(index)].width = width
        self.sheet.freeze_panes = "A2"
        self.rows = 0
        self.sheet.append([self._cell(header, bold=True) for header, _ in self.columns])

    def _cell(self, value: Any, bold: bool = False) -> Any:
        """The value as openpyxl should write it; a cell object only where plain values would not do."""
        if isinstance(value, datetime):  # real dates, in UTC (Excel has no time zones)
            return value.astimezone(timezone.utc).replace(tzinfo=None)
        if isinstance(value, (list, tuple, set)):
            value = ", ".join(str(v) for v in value)
        elif isinstance(value, dict):
            value = "; ".join(f"{k}: {', '.join(v) if isinstance(v, list) else v}" for k, v in value.items())
        if not bold and not (isinstance(value, str) and value.startswith(FORMULA_START)):
            return value
        cell = WriteOnlyCell(self.sheet, value=value)
        if isinstance(value, str):
            # Text from people or the portal stays text: a leading =, +, - or @ never becomes a formula.
            cell.data_type = "s"
            cell.quotePrefix = value.startswith(FORMULA_START)
        if bold:
            cell.font = Font(bold=True)
        return cell

    def append(self, values: Iterable[Any]) -> None:
        if self.rows + 1 >= self.max_rows:
            self._close()
            self._open()
        self.sheet.append([self._cell(v) for v in values])
        self.rows += 1

    def _close(self) -> None:
        last = get_column_letter(len(self.columns))
        self.sheet.auto_filter.ref = f"A1:{last}{self.rows + 1}"

    def close(self) -> None:
        self._close()


def key_value_sheet(workbook: Workbook, title: str, rows: Iterable[tuple[str, Any]]) -> None:
    sheet = Sheet(workbook, title, [("Field", 34), ("Value", 100)])
    for key, value in rows:
        sheet.append([key, value])
    sheet.close()
