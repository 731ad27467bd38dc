"""Run SQL on the warehouse and format the result (table, CSV, JSON), streaming where it can.

``run_sql`` returns a whole result as a DataFrame (for library code with small results);
``write_query`` is ``dlwh sql``: it fetches at most ``max_rows`` (+1, to say there are more) for a
table, streams the CSV of a SELECT from DuckDB's own writer (``COPY``) and other CSV/JSON in chunks of
about 100,000 rows, so memory does not grow with the result.
"""

from __future__ import annotations

import codecs
import os
import threading
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
    100,000 rows in memory, unless ``max_rows`` is given; CSV of one SELECT is DuckDB's own CSV writer
    (``COPY``) streaming through a pipe. Errors become one-line DlwhErrors.
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
        statements = duckdb.extract_statements(sql)
    except duckdb.Error:
        statements = []  # DuckDB says what is wrong when it runs
    if fmt == "csv" and len(statements) == 1 and statements[0].type.name == "SELECT" and os.path.isdir("/dev/fd"):
        return _csv_select(con, _without_tail(statements[0].query), out, max_rows)
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
        return _more_note(limit, fmt) if more else None
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


def _without_tail(query: str) -> str:
    """One statement without the semicolons and comments that end it (to nest it in ``COPY (...)``)."""
    cut = len(query)
    for position, kind in reversed(duckdb.tokenize(query)):
        if kind == duckdb.token_type.comment or (kind == duckdb.token_type.operator and query[position] == ";"):
            cut = position
        else:
            break
    return query[:cut]


def _more_note(limit: int, fmt: str) -> str:
    return (f"showing the first {limit} rows; there are more (raise --max-rows"
            + (", or use --csv / --json for all)" if fmt == "table" else ")"))


def _csv_select(con: duckdb.DuckDBPyConnection, select: str, out: TextIO, max_rows: int | None) -> str | None:
    """CSV of one SELECT by DuckDB's COPY; with ``max_rows``, its first rows (one more, kept in a temp table,
    says whether there are more)."""
    if max_rows is None:
        copy_csv(con, select, out)
        return None
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _dlwh_head AS SELECT * FROM (\n{select}\n) LIMIT {max_rows + 1:d}")
        try:
            count = con.execute("SELECT count(*) FROM _dlwh_head").fetchone()[0]
            copy_csv(con, f"SELECT * FROM _dlwh_head LIMIT {max_rows:d}", out)
        finally:
            con.execute("DROP TABLE IF EXISTS _dlwh_head")
    except duckdb.Error as err:
        raise translate(err, sql=True) from None
    return _more_note(max_rows, "csv") if count > max_rows else None


def copy_csv(con: duckdb.DuckDBPyConnection, select: str, out: TextIO) -> None:
    """Write the rows of ``select`` to ``out`` as CSV with a header, as DuckDB's COPY writes them, streamed.

    DuckDB writes into a pipe from a second thread on the same connection (it releases the GIL; this
    thread does not use the connection meanwhile); this thread copies 1 MiB blocks to ``out``. If
    ``out`` is closed (``| head``), the query is interrupted and BrokenPipeError raised.
    """
    out.flush()
    read_fd, write_fd = os.pipe()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            con.execute(f"COPY (\n{select}\n) TO '/dev/fd/{write_fd}' (FORMAT csv, HEADER true)")
        except BaseException as err:  # reported by the reading thread
            failed.append(err)
        finally:
            os.close(write_fd)

    writer = threading.Thread(target=run, name="dlwh-copy-csv", daemon=True)
    binary = getattr(out, "buffer", None)
    decoder = codecs.getincrementaldecoder("utf-8")()
    reader = os.fdopen(read_fd, "rb", buffering=0)
    writer.start()
    try:
        while True:
            block = reader.read(1 << 20)
            if not block:
                break
            if binary is not None:
                binary.write(block)
            else:
                out.write(decoder.decode(block))
        if binary is not None:
            binary.flush()
    except BaseException:
        con.interrupt()
        reader.close()  # DuckDB's next write fails: the thread ends
        writer.join()
        raise
    reader.close()
    writer.join()
    if failed:
        err = failed[0]
        raise translate(err, sql=True) if isinstance(err, duckdb.Error) else err
