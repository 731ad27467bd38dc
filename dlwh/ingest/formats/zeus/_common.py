"""Shared reading of the small Zeus CSV files (summary_power, summary_train, power-limit profiles).

The files are plain comma-separated tables without quoting. They are small by nature (hundreds or
a few thousand rows), so they are read whole with pandas; checks are vectorised over the lines.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import duckdb
import numpy as np
from dlwh._lazy import pandas as pd

from dlwh.errors import ParseError
from dlwh.ingest.lines import drop_cut_line, shaped_like


def header_columns(head: str) -> list[str]:
    """The column names of the first line of ``head`` (BOM and surrounding spaces removed)."""
    first = head.lstrip("\ufeff").split("\n", 1)[0].rstrip("\r")
    return [c.strip() for c in first.split(",")]


def read_table(text: str, what: str, warnings: list[str]) -> pd.DataFrame:
    """The CSV ``text`` as strings, one column per header field; ParseError on a malformed line.

    Every data line must have as many fields as the header; blank lines are ignored. ``what`` names
    the file kind in messages. Columns keep their header names; the frame's index is the 1-based
    line number in the file. A last line cut mid-write (not shaped like the rows above it) is left
    out, and ``warnings`` says so.
    """
    text = text.lstrip("\ufeff")
    text = drop_cut_line(text, shaped_like(text[max(0, len(text) - 65536):].split("\n")[-201:-1], ","), warnings)
    lines = pd.Series(text.split("\n"))
    if len(lines) and lines.iloc[-1] == "":
        lines = lines.iloc[:-1]
    lines = lines.str.rstrip("\r")
    if lines.empty or not lines.iloc[0].strip():
        raise ParseError(f"{what}: the first line must be the header", line=1)
    columns = [c.strip() for c in lines.iloc[0].split(",")]
    body = lines.iloc[1:]
    body = body[body.str.strip() != ""]
    if body.empty:
        raise ParseError(f"{what}: no data rows after the header", line=1)
    if '"' in text:
        raise ParseError(f"{what}: quoted fields are not expected in this format",
                         line=int(body.index[body.str.contains('"', regex=False)][0]) + 1)
    fields = body.str.count(",") + 1
    wrong = fields != len(columns)
    if wrong.any():
        number = int(body.index[wrong.to_numpy()][0]) + 1
        got = int(fields[wrong].iloc[0])
        raise ParseError(f"{what}: expected {len(columns)} fields, found {got}", line=number)
    frame = pd.read_csv(io.StringIO("\n".join(body)), header=None, names=columns, dtype=str,
                        keep_default_na=False, skipinitialspace=True)
    frame.index = body.index + 1
    return frame.apply(lambda s: s.str.strip())


def numbers(frame: pd.DataFrame, column: str, what: str, *, required: bool = True,
            positive: bool = False) -> pd.Series:
    """Column ``column`` as floats; ParseError (with the line) for text that is not a number.

    Empty fields (and pandas' 'nan', as Zeus writes a missing value) are NaN when ``required`` is
    False, an error otherwise. ``positive`` also rejects values <= 0.
    """
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce")
    empty = (raw == "") | (raw.str.lower() == "nan")
    bad = values.isna() & ~empty
    if bad.any():
        line = int(bad.idxmax())
        raise ParseError(f"{what}: {column} {raw[line]!r} is not a number", line=line)
    if required and empty.any():
        raise ParseError(f"{what}: {column} is empty", line=int(empty.idxmax()))
    infinite = values.notna() & ~np.isfinite(values.astype(float))  # 'inf', '1e999'
    if infinite.any():
        line = int(infinite.idxmax())
        raise ParseError(f"{what}: {column} {raw[line][:40]!r} is not a finite number", line=line)
    if positive:
        nonpositive = values.notna() & (values <= 0)
        if nonpositive.any():
            line = int(nonpositive.idxmax())
            raise ParseError(f"{what}: {column} must be positive, found {raw[line]!r}", line=line)
    return values.astype(float)


def text_column(frame: pd.DataFrame, column: str, what: str) -> pd.Series:
    """Column ``column`` as non-empty strings; ParseError with the line of the first empty one."""
    values = frame[column]
    empty = values == ""
    if empty.any():
        raise ParseError(f"{what}: {column} is empty", line=int(empty.idxmax()))
    return values


def gpu_name(option: object, path: Path, pattern: str, what: str) -> tuple[str, str]:
    """The GPU (upper case) and where it came from: --gpu, else the file name's ``pattern`` group 1.

    The Zeus files do not name their GPU inside; their published file names do.
    """
    if option:
        return str(option).strip().upper(), "--gpu"
    match = re.search(pattern, path.name, flags=re.IGNORECASE)
    if match:
        return match.group(1).upper(), f"the file name {path.name}"
    raise ParseError(f"{what}: the file does not say which GPU it was measured on; "
                     "pass --gpu NAME (e.g. --gpu A40)")


def canonical_model(con: duckdb.DuckDBPyConnection, network: pd.Series) -> pd.Series:
    """Zoo model names for Zeus network names where the zoo knows them, else the name in lower case.

    Resolved through the warehouse's ``model_aliases`` table (the zoo's alias table, seeded whenever the
    warehouse is opened for writing), matched on the same key as the SQL views use.
    """
    lowered = network.str.strip().str.lower()
    names = pd.DataFrame({"name": lowered.dropna().unique()})
    try:
        rows = con.execute(
            "SELECT n.name, a.model FROM names n JOIN model_aliases a "
            "ON a.alias_key = regexp_replace(lower(n.name), '[^a-z0-9]', '', 'g')").fetchall()
    except duckdb.CatalogException:  # a connection without the warehouse schema: names as given
        return lowered
    return lowered.map(dict(rows)).fillna(lowered)
