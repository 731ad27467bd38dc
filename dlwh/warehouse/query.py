"""Run SQL on the warehouse and format the result (table, CSV, JSON)."""

from __future__ import annotations

import duckdb
from dlwh._lazy import pandas as pd

from dlwh.errors import DlwhError


def run_sql(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pd.DataFrame:
    """The result of ``sql`` as a DataFrame; a SQL error becomes a one-line DlwhError."""
    try:
        result = con.execute(sql, params or [])
    except duckdb.Error as err:
        first = str(err).strip().splitlines()[0]
        raise DlwhError(f"SQL error: {first}") from None
    if result.description is None:
        return pd.DataFrame()
    return result.df()


def format_frame(frame: pd.DataFrame, fmt: str = "table", max_rows: int | None = None) -> str:
    """Render a result as an aligned table, CSV or JSON (records, ISO times)."""
    if fmt == "csv":
        return frame.to_csv(index=False).rstrip("\n")
    if fmt == "json":
        return frame.to_json(orient="records", date_format="iso", indent=1)
    if frame.empty:
        return "(no rows)" if len(frame.columns) else "ok"
    with pd.option_context("display.max_columns", None, "display.width", 250,
                           "display.max_colwidth", 60, "display.max_rows", max_rows or 10_000):
        return frame.to_string(index=False, max_rows=max_rows)
