"""Run SQL on the warehouse and format the result (table, CSV, JSON), streaming where it can.

``run_sql`` returns a whole result as a DataFrame (for library code with small results);
``write_query`` is ``dlwh sql``: it fetches at most ``max_rows`` (+1, to say there are more) for a
table and streams CSV/JSON in chunks of about 100,000 rows, so memory does not grow with the result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

import duckdb
from dlwh._lazy import pandas as pd

from dlwh.errors import UsageError
from dlwh.warehouse.errors import translate

if TYPE_CHECKING:
    import pandas

TABLE_ROWS = 10_000          # rows a table shows without --max-rows
_CHUNK_VECTORS = 50          # DuckDB vectors (2,048 rows each) per streamed chunk: about 100k rows
NO_QUERY = 'no SQL statement to run (the query is empty or only comments); e.g. dlwh sql "SELECT * FROM run_energy"'


def check_query(sql: str) -> None:
    """Refuse an empty query or one of comments only (a UsageError); syntax errors are left to DuckDB."""
    if not sql.strip():
        raise UsageError(NO_QUERY)
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error:
        return  # DuckDB reports it, in the same words, when the query runs
    if not statements:
        raise UsageError(NO_QUERY)


_READS = {"SELECT", "EXPLAIN", "PRAGMA", "SET", "VARIABLE_SET", "TRANSACTION", "PREPARE", "EXECUTE", "MULTI",
          "COPY", "ATTACH", "DETACH", "LOAD", "RELATION"}


def refuse_writes(sql: str) -> None:
    """Refuse statements that change a database (for a read-only ``dlwh sql`` on a connection that DuckDB
    itself would let write: this process holds the warehouse open for writing already)."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error:
        return  # DuckDB reports it when the query runs
    for statement in statements:
        kind = statement.type.name
        if kind not in _READS:
            raise UsageError(f"dlwh sql opens the warehouse read-only and {kind} would change it; "
                             "pass --write to allow changes")


def run_sql(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pandas.DataFrame:
    """The result of ``sql`` as a DataFrame; a SQL error becomes a one-line DlwhError."""
    try:
        result = con.execute(sql, params or [])
        if result.description is None:
            return pd.DataFrame()
        return result.df()
    except duckdb.Error as err:
        raise translate(err, sql=True) from None


def format_frame(frame: pandas.DataFrame, fmt: str = "table", max_rows: int | None = None) -> str:
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


def _chunks(result: duckdb.DuckDBPyConnection, vectors: int = _CHUNK_VECTORS):
    """The result as DataFrames of up to ``vectors`` x 2,048 rows; the first is yielded even if empty."""
    first = True
    while True:
        try:
            chunk = result.fetch_df_chunk(vectors)
        except duckdb.Error as err:
            raise translate(err, sql=True) from None
        if chunk is None:
            return
        if chunk.empty and not first:
            return
        yield chunk
        if chunk.empty:
            return
        first = False


def head(result: duckdb.DuckDBPyConnection, max_rows: int) -> tuple[pandas.DataFrame, bool]:
    """The first ``max_rows`` rows of a result and whether there are more (reads at most one chunk more)."""
    frames: list[pandas.DataFrame] = []
    count = 0
    for chunk in _chunks(result, vectors=max(1, min(_CHUNK_VECTORS, max_rows // 2048 + 1))):
        frames.append(chunk)
        count += len(chunk)
        if count > max_rows:
            break
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return frame.iloc[:max_rows], count > max_rows


def write_query(con: duckdb.DuckDBPyConnection, sql: str, out: TextIO, fmt: str = "table",
                max_rows: int | None = None, read_only: bool = False) -> str | None:
    """Run ``sql`` and write its result to ``out`` as a table, CSV or JSON; returns a note for stderr or None.

    A table shows at most ``max_rows`` rows (default ``TABLE_ROWS``), fetched from DuckDB and no more
    (one extra row says whether there are more). CSV and JSON stream every row, with at most about
    100,000 rows in memory, unless ``max_rows`` is given. Errors become one-line DlwhErrors.
    ``read_only`` refuses statements that write even where DuckDB would allow them.
    """
    check_query(sql)
    if read_only:
        from dlwh.warehouse.db import is_read_only

        if not is_read_only(con):
            refuse_writes(sql)
    if max_rows is not None and max_rows < 0:
        raise UsageError(f"--max-rows must be 0 or more, not {max_rows}")
    try:
        result = con.execute(sql)
    except duckdb.Error as err:
        raise translate(err, sql=True) from None
    if result.description is None:  # a statement without a result (with --write)
        if fmt == "table":
            out.write("ok\n")
        return None
    if fmt == "table" or max_rows is not None:
        limit = TABLE_ROWS if max_rows is None else max_rows
        frame, more = head(result, limit)
        if fmt == "table":
            out.write(format_frame(frame, "table") + "\n")
        else:
            _write_chunks(iter([frame]), out, fmt)
        if more:
            return (f"showing the first {limit} rows; there are more (raise --max-rows"
                    + (", or use --csv / --json for all)" if fmt == "table" else ")"))
        return None
    _write_chunks(_chunks(result), out, fmt)
    return None


def _write_chunks(chunks, out: TextIO, fmt: str) -> None:
    """CSV (one header) or a JSON array of records (as ``format_frame`` writes them), chunk by chunk."""
    if fmt == "csv":
        for i, chunk in enumerate(chunks):
            chunk.to_csv(out, index=False, header=i == 0)
        return
    wrote = False
    for chunk in chunks:
        if chunk.empty:
            continue
        text = chunk.to_json(orient="records", date_format="iso", indent=1)
        out.write((",\n" if wrote else "[\n") + text[1:-1].strip("\n"))
        wrote = True
    out.write("\n]\n" if wrote else "[]\n")
