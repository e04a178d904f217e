"""CSV exports that a spreadsheet opens as data, never as formulas.

Excel, WPS and LibreOffice run a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and, in
some versions, after a leading tab or carriage return) as a formula: ``=cmd|' /C calc'!A0``
in a name a user typed becomes a command on the reader's machine. Every cell of every export
goes through ``spreadsheet_safe``: such a cell gets a leading apostrophe (shown as text, the
usual escape, OWASP "CSV injection"). Numbers are written as they are unless negative.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")

Cell = str | int | float | bool | None


def spreadsheet_safe(value: Cell) -> str:
    """The cell's text, with a leading apostrophe when a spreadsheet would run it."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> str:
    """A whole CSV document (header first), every cell made safe."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([spreadsheet_safe(h) for h in header])
    for row in rows:
        writer.writerow([spreadsheet_safe(c) for c in row])
    return out.getvalue()
