"""What nvprof's trace and metrics parsers share: units, quantities ('454.89ms') and the file's table layout."""

from __future__ import annotations

import csv
import re

import duckdb
import numpy as np
from dlwh._lazy import pandas as pd

from dlwh.ingest.lines import drop_cut_line, shaped_like

TIME_S = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0}
SIZE_B = {"B": 1.0, "KB": 1024.0, "MB": 1024.0 ** 2, "GB": 1024.0 ** 3, "TB": 1024.0 ** 4}
RATE_BPS = {f"{k}/s": v for k, v in SIZE_B.items()}

NUMBER_UNIT = r"^([-+]?(?:[0-9]+[.]?[0-9]*|[.][0-9]+)(?:[eE][-+]?[0-9]+)?)[ ]*([A-Za-z%/]*)$"
UNITS: dict[str, tuple[float, str]] = {
    **{k: (v, "s") for k, v in TIME_S.items()}, **{k: (v, "B") for k, v in SIZE_B.items()},
    **{k: (v, "B/s") for k, v in RATE_BPS.items()}, "%": (1.0, "%"), "": (1.0, ""),
}


def quantity(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """'454.89ms' / '5.6367GB/s' / '3.12%' / '1024' → (number scaled to its base unit, base unit).

    Base units: s, B, B/s, % or '' (a count). '-' and '' give NULL; so does an unknown suffix (its
    unit is then kept as printed). Runs in DuckDB (regexp_extract), fast for millions of rows.
    """
    frame = pd.DataFrame({"t": text.to_numpy(dtype=object)})
    with duckdb.connect() as con:
        parts = con.execute(
            "SELECT TRY_CAST(regexp_extract(trim(t), ?, 1) AS DOUBLE) AS num, regexp_extract(trim(t), ?, 2) AS unit "
            "FROM frame", [NUMBER_UNIT, NUMBER_UNIT]).df()
    number = pd.Series(parts["num"].to_numpy(), index=text.index)
    unit = pd.Series(parts["unit"].to_numpy(dtype=object), index=text.index)
    factor = unit.map({k: v[0] for k, v in UNITS.items()})
    base = unit.map({k: v[1] for k, v in UNITS.items()}).where(factor.notna(), unit)
    return number * factor, base.where(number.notna(), None)


def layout(text: str) -> tuple[list[str], np.ndarray]:
    """The file's lines and, per line, whether it ends a table (blank or an '==PID==' banner)."""
    lines = text.split("\n")
    series = pd.Series(lines, dtype=object)
    breaks = ((series.str.strip() == "") | series.str.startswith("==")).to_numpy(dtype=bool)
    return lines, breaks


def table_end(breaks: np.ndarray, first_row: int) -> int:
    """Index of the first line at or after ``first_row`` that ends the table (or the number of lines)."""
    rest = breaks[first_row:]
    return first_row + int(rest.argmax()) if rest.any() else len(breaks)


def header_lines(text: str, pattern: re.Pattern, keyword: str) -> list[int]:
    """0-based numbers of the lines that contain ``keyword`` and match ``pattern`` (found with str.find)."""
    found, pos, counted, newlines = [], 0, 0, 0
    while (pos := text.find(keyword, pos)) != -1:
        start = text.rfind("\n", 0, pos) + 1
        stop = text.find("\n", pos)
        line = text[start:stop if stop != -1 else len(text)]
        if pattern.match(line):
            newlines += text.count("\n", counted, start)
            counted = start
            found.append(newlines)
        pos = stop if stop != -1 else len(text)
    return found


_NOT_ROWS = ("==", "Regs", "SSMem", "DSMem", "SrcMemType", "DstMemType")


def complete_text(text: str, cut: list[str]) -> str:
    """``text`` without a last table row cut mid-write (``cut`` gets the warning). A last line without its
    newline is complete when it is no table row (a banner, a legend), a CSV row with balanced quotes and
    the fields of the line above, or a human row shaped like one above it."""
    recent = text[max(0, len(text) - 65536):].split("\n")[-201:-1]
    shaped = shaped_like(recent)
    above = next((ln for ln in reversed(recent) if ln.strip()), "")

    def complete(line: str) -> bool:
        if line.startswith(_NOT_ROWS):
            return True
        if '"' in line or '"' in above:
            fields = lambda s: len(next(csv.reader([s]), []))
            return line.count('"') % 2 == 0 and fields(line) == fields(above)
        return shaped(line)

    return drop_cut_line(text, complete, cut)
