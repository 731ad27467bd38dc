"""Strict CSV reading for small tool exports: the header decides the columns, every row must match."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import duckdb
from dlwh._lazy import pandas as pd

from dlwh.errors import ParseError
from dlwh.ingest.lines import complete_part, cut_warning, file_tail, lines_before, shaped_like


def read_csv_strict(con: duckdb.DuckDBPyConnection, path: Path, what: str, warnings: list[str],
                    data: bytes | None = None) -> pd.DataFrame:
    """All columns as text (empty fields ''), named by the header; ParseError with the line for a row
    with the wrong number of fields or broken quoting. ``what`` names the format in messages. A last
    line cut mid-write (not shaped like the rows above it) is left out, and ``warnings`` says so."""
    tail = file_tail(path, data)
    if tail.cut and tail.line > 1 and not shaped_like(lines_before(path, tail, data), ",")(tail.text):
        warnings.append(cut_warning(tail.line))
        with complete_part(path, tail) as part:
            return _read(con, part, what)
    return _read(con, path, what)


def _read(con: duckdb.DuckDBPyConnection, path: Path, what: str) -> pd.DataFrame:
    with path.open("r", encoding="utf-8", errors="replace", newline="") as handle:
        first = handle.readline()
    header = next(csv.reader([first.lstrip("\ufeff")]), [])
    names = [h.strip() for h in header]
    if not names or len(set(names)) != len(names) or any(not n for n in names):
        raise ParseError(f"{what} header is empty or repeats a column name", line=1)
    columns = {name: "VARCHAR" for name in names}
    try:
        frame = con.read_csv(str(path), header=True, auto_detect=False, sep=",", quotechar='"', escapechar='"',
                             columns=columns, strict_mode=True, all_varchar=True).df()
    except duckdb.Error as err:
        text = str(err)
        line = re.search(r"Line: (\d+)", text)
        count = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", text)
        if count:
            message = f"row has {count.group(2)} fields, the header {count.group(1)} (file truncated or edited?)"
        else:
            message = f"cannot read the {what} ({text.strip().splitlines()[0][:160]})"
        raise ParseError(message, line=int(line.group(1)) if line else None) from None
    return frame.fillna("")
