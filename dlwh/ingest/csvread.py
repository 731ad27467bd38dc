"""Strict CSV reading for small tool exports: the header decides the columns, every row must match."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import duckdb
from dlwh._lazy import pandas as pd

from dlwh.errors import ParseError


def read_csv_strict(con: duckdb.DuckDBPyConnection, path: Path, what: str) -> pd.DataFrame:
    """All columns as text (empty fields ''), named by the header; ParseError with the line for a row
    with the wrong number of fields or broken quoting. ``what`` names the format in messages."""
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
