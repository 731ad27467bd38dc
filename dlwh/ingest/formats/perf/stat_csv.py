"""``perf stat -x,`` (CSV) output, with or without ``-I``, in every column layout → counters and RAPL samples.

Layouts (told apart per line by content, so appended runs of different modes work):
``[time,][label,[cpus,]]value,unit,event[,run_time[,enabled_pct[,metric_value,metric_unit]]]`` where
``time`` is the ``-I`` interval end (``   1.001048308``), ``label`` the CPU, socket, die, core, node or
thread of ``-A``/``--per-*`` modes (``CPU3``, ``S0``, ``S0-D0-C1``, ``N0``, ``perf-1234``) and
``cpus`` the number of CPUs aggregated (per-socket/die/core/node modes). This covers the old
4-column ``value,unit,event,run_time`` (and 3- and 5-column) files and the newer ones with metric
columns; fields may be empty; ``<not counted>``/``<not supported>`` stand in the value field. The
``-r`` noise field (``0.12%``) and a ``-G`` cgroup name after the event are skipped. Lines
with neither value nor event are extra metric lines and are skipped; ``#`` lines are comments (a
``# started on`` line starts a run and anchors it). The separator may be ``,`` (``-x,``), ``;`` or a tab;
with ``;`` or a tab a decimal comma is read. Runs, time anchoring, RAPL energy → samples: see
``_perf_common``.

Large files (a long ``-I`` recording has millions of lines): the lines are split in Python once, and
the layout detection, field extraction and number conversion run as one DuckDB query over all of
them (vectorised, multi-threaded); no Python code runs per line.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import duckdb
import numpy as np
from dlwh._lazy import pandas as pd

from dlwh.errors import ParseError
from dlwh.ingest.formats.perf import _common as common
from dlwh.ingest.formats.perf import _interval_sql as interval_sql
from dlwh.ingest.lines import cut_warning, file_tail, shaped_like
from dlwh.ingest.trace import IngestContext, Trace, drop_scratch

NAME = "perf-stat-csv"
DESCRIPTION = "perf stat -x, (CSV), with or without -I, every column layout: counters and RAPL energy"
EXTENSIONS = (".csv", ".txt")
SEPARATORS = (",", ";", "\t")
_AFTER_EVENT = 4  # run_time, enabled_pct, metric_value, metric_unit
_SNIFF_LINES = 200
HEAD_BYTES = 64 * 1024  # what the separator is sniffed from (as the loader's format detection)
FORCE_PANDAS = False  # tests set it to compare the DuckDB -I path with the pandas one
USE_CSV_READER = True  # tests clear it to compare DuckDB's CSV reader with lines split in Python

_LABEL = r"\s*(?:CPU\d+|S\d+(?:-D\d+)?(?:-C\d+|-L\d+-ID\d+|-CLS\d+)?|N\d+|\S.*-\d+)\s*"
_EVENT = r"[A-Za-z_]\S*"


def _dec(expr: str, sep: str) -> str:
    """SQL: the field with a decimal comma made a point where the separator is not ','."""
    return expr if sep == "," else f"replace({expr}, ',', '.')"


def _lit(text: str) -> str:
    """A SQL string literal for one of this module's constant patterns."""
    return "'" + text.replace("'", "''") + "'"


def _layout_sql(sep: str, table: str) -> str:
    """SQL over ``table(line, text)``: per data line its layout and fields, numbers converted.

    Two steps: cheap tests on the first four fields decide each line's layout (time? label? CPU
    count?); then one SELECT picks the fields at positions computed from that layout (no per-layout scans).
    Number tests are casts, not regular expressions. This is what keeps a million lines fast.
    """
    not_counted = "('<not counted>', '<not supported>')"

    def num(expr: str) -> str:
        return f"TRY_CAST({_dec(expr, sep)} AS DOUBLE)"

    def val(i: int) -> str:  # a number or <not counted>; perf pads no field but the time
        return (f"(TRY_CAST({_dec(f'f[{i}]', sep)} AS DOUBLE) IS NOT NULL "
                f"OR coalesce(trim(f[{i}]) IN {not_counted}, false))")

    def empty(i: int) -> str:
        return f"(coalesce(f[{i}], '') = '')"

    def integer(i: int) -> str:
        return f"(NOT coalesce(contains(f[{i}], '.'), false) AND TRY_CAST(f[{i}] AS BIGINT) IS NOT NULL)"

    # CASE evaluates a branch only for its rows: a plain -I line costs two casts here
    base = f"""
        SELECT line, f, len(f) AS nf,
               CASE WHEN coalesce(contains(f[1], '.'), false) AND TRY_CAST(f[1] AS DOUBLE) IS NOT NULL
                    THEN CASE WHEN {val(2)} THEN 1
                              WHEN {empty(2)} AND {empty(3)} THEN 1
                              WHEN coalesce(regexp_full_match(f[2], {_lit(_LABEL)}), false) THEN 1
                              ELSE 0 END
                    ELSE 0 END AS k0
        FROM (SELECT line, string_split(text, {_lit(sep)}) AS f
              FROM (SELECT line, text, ltrim(text) AS lt FROM {table})
              WHERE lt <> '' AND NOT starts_with(lt, '#'))"""
    layout = f"""
        SELECT *, CASE WHEN k0 = 0 THEN NOT {val(1)} AND NOT {empty(1)}
                       ELSE NOT {val(2)} AND NOT {empty(2)} END AS lab
        FROM base"""
    counted = f"""
        SELECT *, CASE WHEN NOT lab THEN false
                       WHEN k0 = 0 THEN {integer(2)} AND {val(3)}
                       ELSE {integer(3)} AND {val(4)} END AS cnt
        FROM layout"""
    # the fields at positions that depend on the line's layout: k = fields before the value,
    # x = '-r' noise / '-G' cgroup fields after the event; one SELECT (no per-layout scans)
    def field(i: int) -> str:
        return f"coalesce(trim(f[k + {i}]), '')"

    def extra(i: int) -> str:  # a '-r' noise ('0.12%') or '-G' cgroup field after the event
        return f"(coalesce(trim(f[k + {i}]), '') <> '' AND {num(f'f[k + {i}]')} IS NULL)"

    picked = f"""
        SELECT line, nf, k, x,
               CASE WHEN k0 = 1 THEN {num('f[1]')} END AS t,
               CASE WHEN lab THEN trim(f[k0 + 1]) END AS cpu,
               {field(1)} AS value_s, {num('f[k + 1]')} AS value,
               {field(2)} AS unit, {field(3)} AS event,
               {num('f[k + 4 + x]')} AS run_time_ns, {num('f[k + 5 + x]')} AS enabled_pct,
               {num('f[k + 6 + x]')} AS metric_value, coalesce(trim(f[k + 7 + x]), '') AS metric_unit
        FROM (SELECT *, CASE WHEN {extra(4)} THEN CASE WHEN {extra(5)} THEN 2 ELSE 1 END ELSE 0 END AS x
              FROM (SELECT *, k0 + CAST(lab AS INTEGER) + CAST(cnt AS INTEGER) AS k FROM counted))"""
    return f"""
    WITH base AS ({base}
    ), layout AS ({layout}
    ), counted AS ({counted}
    ), picked AS ({picked}
    )
    {_finish_sql(sep)}
    """


def _finish_sql(sep: str, extra: str = "") -> str:
    """SQL over ``picked``: the output columns of the layout queries, with the reason and the checks
    (and ``extra`` columns of ``picked``)."""
    not_counted = "('<not counted>', '<not supported>')"
    return f"""
    SELECT line, nf, k + x AS k, t, cpu, value, unit, event, run_time_ns, enabled_pct, metric_value, metric_unit,
           CASE value_s WHEN '<not counted>' THEN 'not counted' WHEN '<not supported>' THEN 'not supported'
           END AS reason,
           value_s = '' AND event = '' AS metric_only,
           NOT (value_s = '' AND event = '')
             AND ((value IS NULL AND value_s NOT IN {not_counted})
                  OR event = '' OR TRY_CAST(event AS DOUBLE) IS NOT NULL OR nf < k + 3) AS bad,
           nf > k + 3 + {_AFTER_EVENT} + x AS too_many{extra}
    FROM picked"""


def _interval_layout_sql(sep: str, source: str, field, nf: str) -> str:
    """SQL: as ``_layout_sql`` for the common ``-I`` layout without labels (``time,value,unit,event,...``),
    plus ``fits``: whether ``_layout_sql`` would read the line the same way (its layout tests give a
    time, then a value or two empty fields, and no '-r'/'-G' field after the event).

    ``source`` yields the data lines (``line`` and what ``field(i)``, the i-th field's SQL, reads);
    ``nf`` is the SQL of the field count. About a third of the work of the general query.
    """
    not_counted = "('<not counted>', '<not supported>')"

    def num(expr: str) -> str:
        return f"TRY_CAST({_dec(expr, sep)} AS DOUBLE)"

    f = field
    return f"""
    WITH base AS (
        SELECT *, {nf} AS nf, {num(f(1))} AS t, {num(f(2))} AS value FROM ({source})
    ), picked AS (
        SELECT line, nf, 1 AS k, 0 AS x, t, NULL::VARCHAR AS cpu,
               coalesce(trim({f(2)}), '') AS value_s, value,
               coalesce(trim({f(3)}), '') AS unit, coalesce(trim({f(4)}), '') AS event,
               {num(f(5))} AS run_time_ns, {num(f(6))} AS enabled_pct,
               {num(f(7))} AS metric_value, coalesce(trim({f(8)}), '') AS metric_unit,
               coalesce(contains({f(1)}, '.'), false) AND t IS NOT NULL
                 AND (value IS NOT NULL OR coalesce(trim({f(2)}) IN {not_counted}, false)
                      OR (coalesce({f(2)}, '') = '' AND coalesce({f(3)}, '') = ''))
                 AND (coalesce(trim({f(5)}), '') = '' OR {num(f(5))} IS NOT NULL) AS fits
        FROM base
    )
    {_finish_sql(sep, ", fits")}
    """


def _typed_layout_sql(reader: str, labels: int) -> str:
    """SQL: the columns of ``_interval_layout_sql`` from DuckDB's CSV reader over a ``-x,`` file of
    ``-I`` lines with ``labels`` fields between time and value (0; 1: a CPU/thread label; 2: a label
    and a CPU count), less ``line`` and what is the same on every line (``_typed_rows_sql`` adds them),
    and ``data``: false for comment lines.

    ``fits`` repeats ``_layout_sql``'s layout tests, so it is true exactly where that query would find
    this layout (run times are numbers, no '-r'/'-G' field: else the reader rejected the line). Unlike
    the other layout queries, ``bad`` leaves out events that are numbers: ``_check`` tests the distinct
    events instead.
    """
    not_counted = "('<not counted>', '<not supported>')"
    c = [f"c{i}" for i in range(1, _typed_fields(labels) + 1)]
    value, unit, event, run_time, share, metric, metric_unit = c[labels + 1:]

    def val(col: str) -> str:  # a number or <not counted>, as _layout_sql's val()
        return f"(TRY_CAST({col} AS DOUBLE) IS NOT NULL OR coalesce(trim({col}) IN {not_counted}, false))"

    def integer(col: str) -> str:
        return f"(NOT coalesce(contains({col}, '.'), false) AND TRY_CAST({col} AS BIGINT) IS NOT NULL)"

    if labels == 0:
        layout = (f"(value IS NOT NULL OR value_s IN {not_counted} "
                  f"OR (coalesce(c2, '') = '' AND coalesce(c3, '') = ''))")
        cpu = "NULL::VARCHAR"
    else:
        counted = f"{integer('c3')} AND {val('c4')}"
        layout = (f"(NOT {val('c2')} AND coalesce(c2, '') <> '' AND coalesce(regexp_full_match(c2, {_lit(_LABEL)}), false)"
                  f" AND {'' if labels == 2 else 'NOT '}({counted}))")
        cpu = "trim(c2)"
    return f"""
    SELECT t, {cpu} AS cpu, value, coalesce(trim({unit}), '') AS unit, event, {run_time} AS run_time_ns,
           {share} AS enabled_pct, {metric} AS metric_value, coalesce(trim({metric_unit}), '') AS metric_unit,
           CASE value_s WHEN '<not counted>' THEN 'not counted' WHEN '<not supported>' THEN 'not supported'
           END AS reason,
           value_s = '' AND event = '' AS metric_only,
           NOT (value_s = '' AND event = '') AND ((value IS NULL AND value_s NOT IN {not_counted}) OR event = '')
             AS bad,
           coalesce(contains(c1, '.'), false) AND t IS NOT NULL AND {layout} AS fits,
           NOT coalesce(starts_with(ltrim(c1), '#'), false) AS data
    FROM (SELECT *, TRY_CAST(c1 AS DOUBLE) AS t, TRY_CAST({value} AS DOUBLE) AS value,
                 coalesce(trim({value}), '') AS value_s, coalesce(trim({event}), '') AS event
          FROM {reader})"""


def _split_lines_source(sep: str, table: str) -> str:
    """SQL: the data lines of ``table(line, text)`` split into a list ``f`` (comments and blank lines dropped)."""
    return (f"SELECT line, string_split(text, {_lit(sep)}) AS f "
            f"FROM (SELECT line, text, ltrim(text) AS lt FROM {table}) WHERE lt <> '' AND NOT starts_with(lt, '#')")


# time, value, unit, event, run time, enabled share, metric value, metric unit: an -I line without labels
FIELDS = 8


def _typed_fields(labels: int) -> int:
    return FIELDS + labels


def _typed_columns(labels: int) -> dict[str, str]:
    """Column types for DuckDB's CSV reader: the run time, share and metric value as numbers (a line where
    they are not is rejected, and the file goes the way of split lines); the rest as text (the time's
    layout test wants its '.', the value may be <not counted>, labels are text)."""
    n = _typed_fields(labels)
    numeric = {n - 3, n - 2, n - 1}
    return {f"c{i}": "DOUBLE" if i in numeric else "VARCHAR" for i in range(1, n + 1)}


def _read_typed(con: duckdb.DuckDBPyConnection, ctx: IngestContext, data: bytes, n_file_lines: int,
                table: str) -> tuple[int | None, int, str]:
    """Lay out a ``-x,`` file with DuckDB's CSV reader into ``table`` (``_typed_layout_sql``) where it is a
    head of comment and blank lines followed by lines with one field count: 8 (``-I`` without labels),
    9 (a label: ``-A``, ``--per-thread``) or 10 (a label and a CPU count: ``--per-socket`` and the like).
    Returns what to add to a row id to get its line number (None, and no table, where the file is not
    like that), the number of label fields, and the head's text.

    The reader must return every line after the head, and the file must hold exactly that many
    separators per such line (no line skipped, split or padded). Faster than splitting lines in Python
    and SQL: the text never becomes Python strings, and numbers are parsed as they are read.
    """
    head, pos = 0, 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end
        stripped = data[pos:end].strip()
        if stripped and not stripped.startswith(b"#"):
            break
        head, pos = head + 1, end + 1
    head_text = data[:pos].decode("utf-8", errors="replace")
    n_lines = n_file_lines - head  # every head line ends with a line end
    first_end = data.find(b"\n", pos)
    labels = data.count(b",", pos, len(data) if first_end < 0 else first_end) - (FIELDS - 1)
    if n_lines == 0 or labels not in (0, 1, 2) or data.count(b",", pos) != (_typed_fields(labels) - 1) * n_lines:
        return None, 0, head_text
    reader = ("read_csv(?, columns = ?, header = false, delim = ',', quote = '', escape = '', skip = ?, "
              "auto_detect = false, ignore_errors = true, null_padding = false, strict_mode = true, "
              "new_line = '\\n')")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS " + _typed_layout_sql(reader, labels),
                [str(ctx.path), _typed_columns(labels), head])
    # row ids follow the reader's output order (insertion order is preserved); inside a transaction
    # they start at an offset, so a line's number is its row id less the first one, plus the head
    count, first, last = con.execute(f"SELECT count(*), min(rowid), max(rowid) FROM {table}").fetchall()[0]
    if count != n_lines or last - first + 1 != count:
        con.execute(f"DROP TABLE {table}")
        return None, 0, head_text
    return head + 1 - first, labels, head_text


def _typed_rows_sql(table: str, offset: int, labels: int) -> str:
    """SQL: the data lines of a ``_read_typed`` table with their line numbers and the columns that are
    the same on every line of this layout."""
    return (f"SELECT rowid + ({int(offset)}) AS line, * EXCLUDE (data), {_typed_fields(int(labels))} AS nf, "
            f"{1 + int(labels)} AS k, false AS too_many FROM {table} WHERE data")


def _lines_frame(lines: list[str]) -> dict[str, np.ndarray]:
    """A table of numbered lines (line 1-based, text) for ``con.register`` (NumPy arrays: no pandas)."""
    return {"line": np.arange(1, len(lines) + 1, dtype=np.int64), "text": np.array(lines, dtype=object)}


def sniff(head: str, path: Path) -> bool:
    """The first and at least half of the head's non-comment lines are perf stat -x lines (one separator)."""
    return _separator(head) is not None


@lru_cache(maxsize=4)  # detection and parse ask for the same head
def _separator(head: str) -> str | None:
    lines = head.replace("\r\n", "\n").split("\n")
    if not head.endswith("\n"):
        lines = lines[:-1]  # possibly cut by the head limit
    lines = lines[:_SNIFF_LINES * 2]
    data = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")][:_SNIFF_LINES]
    if not data:
        return None
    con = duckdb.connect(":memory:")
    try:
        frame = _lines_frame(data)
        con.register("_perf_head", frame)
        for sep in SEPARATORS:
            if sep not in data[0]:
                continue
            good, first_good, counters = con.execute(
                "WITH r AS (SELECT line, NOT (bad OR too_many OR nf < 3 "
                f"OR NOT (metric_only OR regexp_full_match(event, {_lit(_EVENT)}))) AS good, metric_only "
                "FROM (" + _layout_sql(sep, "_perf_head") + ")) "
                "SELECT count(*) FILTER (WHERE good), arg_min(good, line), count(*) FILTER (WHERE NOT metric_only) "
                "FROM r").fetchall()[0]
            # the first line and most lines must be perf's: a bad line further on is then an error
            # reported with its line number, not a file of unknown format
            if first_good and counters > 0 and good * 2 >= len(data):
                return sep
        return None
    finally:
        con.close()


def parse(ctx: IngestContext) -> Trace:
    """Lay out the lines in DuckDB; build the trace there (``-I`` only) or in ``_perf_common``.

    The layout: DuckDB's CSV reader where every line after the head has the fields of one ``-I``
    layout (8 without labels, 9 with a CPU/thread label, 10 with a label and a CPU count); else the lines split in Python, the same layout tested per line in SQL; else
    the general layout query (every layout, told apart per line).
    """
    data = ctx.read_bytes()
    sep = _separator(data[:HEAD_BYTES].decode("utf-8", errors="replace")) or ","
    cut: list[str] = []
    tail = file_tail(ctx.path, data)
    if tail.cut:
        before = data[max(0, tail.start - 65536):tail.start].decode("utf-8", errors="replace")
        recent = before.replace("\r\n", "\n").split("\n")[-201:-1]
        if not shaped_like(recent, sep)(tail.text):
            data = data[:tail.start]  # the typed reader checks its rows against these lines
            cut.append(cut_warning(tail.line))
    crlf = b"\r" in data
    n_lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    text: str | None = None  # decoded only where needed (not by DuckDB's reader)
    lines: list[str] | None = None

    def full_text() -> str:
        nonlocal text
        if text is None:
            text = data.decode("utf-8", errors="replace")
            if crlf:
                text = text.replace("\r\n", "\n")
        return text

    def all_lines() -> list[str]:
        nonlocal lines
        if lines is None:
            lines = _split(full_text())
        return lines

    def line_text(number: int) -> str:
        return all_lines()[number - 1]

    notes = [] if sep == "," else [f"separator {sep!r}; decimal comma read"]
    con = ctx.con
    view, fields, table = "_perf_csv_lines", "_perf_csv_fields", "_perf_csv_rows"
    scratch: list[str] = []  # what the trace's relations read from, if built in DuckDB
    try:
        offset = None
        if sep == "," and not crlf and USE_CSV_READER:
            offset, labels, head_text = _read_typed(con, ctx, data, n_lines, fields)
        check = None
        if offset is not None:
            starts = common.started_on_lines(head_text)  # no comment line follows the head
            con.execute(f"CREATE OR REPLACE TEMP VIEW {table} AS " + _typed_rows_sql(fields, offset, labels))
            check = _check(con, table, sep, line_text, fits=True)
            if check is None:
                con.execute(f"DROP VIEW {table}")
                con.execute(f"DROP TABLE {fields}")
            else:
                scratch = [f"VIEW {table}", f"TABLE {fields}"]
        if check is None:
            starts = common.started_on_lines(full_text())
            con.register(view, _lines_frame(all_lines()))
            con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS "
                        + _interval_layout_sql(sep, _split_lines_source(sep, view), lambda i: f"f[{i}]", "len(f)"))
            check = _check(con, table, sep, line_text, fits=True)
            if check is None:
                con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS " + _layout_sql(sep, view))
                check = _check(con, table, sep, line_text, fits=False)
            con.unregister(view)
            scratch = [f"TABLE {table}"]
        if check["totals"] == 0 and not FORCE_PANDAS:
            # every row is an -I interval: built in DuckDB, never fetched (see _perf_interval_sql)
            trace = interval_sql.build(ctx, NAME, table, starts, check["values"]["event"], notes)
            trace.warnings.extend(cut)
            trace.scratch.extend(scratch)
            scratch = []
            return trace
        rows = _fetch(con, table, check["values"])
    except duckdb.Error as err:
        raise ParseError(f"cannot read as perf stat -x{sep} output ({str(err).splitlines()[0]})") from None
    finally:
        try:
            con.unregister(view)
        except duckdb.Error:
            pass
        drop_scratch(con, scratch)
    starts_frame = pd.DataFrame(starts, columns=["line", "local"])
    rows["seg"] = common.segments(rows["line"].to_numpy(), starts_frame["line"].to_numpy())
    return common.build_trace(ctx, NAME, rows[list(common.ROW_COLUMNS)], starts=starts_frame, split_repeats=True,
                              notes=notes, warnings=cut)


def _split(text: str) -> list[str]:
    """The file's lines (no trailing empty line after a final newline)."""
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return lines


TEXT_COLUMNS = ("cpu", "unit", "event", "metric_unit", "reason")


def _check(con: duckdb.DuckDBPyConnection, table: str, sep: str, line_text, fits: bool) -> dict | None:
    """Check the parsed lines (ParseError naming the first bad one); counts and each text column's values.

    One scan: whether every line fits the layout (``fits``: the table has that column; None if not all
    do, and nothing is checked), the checks, the number of totals rows (no -I time), the last counter
    line, and the distinct events, units and labels (few).
    """
    distinct = ", ".join(f"list_sort(list(DISTINCT {col}) FILTER (WHERE NOT metric_only AND nullif({col}, '') "
                         "IS NOT NULL))" for col in TEXT_COLUMNS)
    all_fit, total, too_many_at, bad_at, n_rows, totals, last_line, *lists = con.execute(
        f"SELECT {'coalesce(bool_and(fits), false)' if fits else 'true'}, "
        f"count(*), min(line) FILTER (WHERE too_many AND NOT bad), min(line) FILTER (WHERE bad), "
        f"count(*) FILTER (WHERE NOT metric_only), count(*) FILTER (WHERE NOT metric_only AND t IS NULL), "
        f"max(line) FILTER (WHERE NOT metric_only), {distinct} FROM {table}").fetchall()[0]
    if not all_fit:
        return None
    if fits and con.execute("SELECT count(*) FROM unnest(?::VARCHAR[]) AS u(e) WHERE TRY_CAST(e AS DOUBLE) IS NOT NULL",
                            [list(lists[TEXT_COLUMNS.index("event")] or [])]).fetchall()[0][0]:
        return None  # a number where the event should be: the general query says which line
    if total == 0:
        raise ParseError("no perf stat counter lines (only comments or blank lines)")
    if bad_at is not None and (too_many_at is None or bad_at < too_many_at):
        raise ParseError(f"not a perf stat -x{sep} counter line ([time,][cpu,]value,unit,event,...): "
                         f"{line_text(int(bad_at)).strip()[:80]!r}", line=int(bad_at))
    if too_many_at is not None:
        nf, k = con.execute(f"SELECT nf, k FROM {table} WHERE line = ?", [too_many_at]).fetchall()[0]
        raise ParseError(f"line has {nf} fields, more than perf stat -x{sep} prints for this layout "
                         f"({k + 3 + _AFTER_EVENT}); an event name containing '{sep}' needs another "
                         "separator (perf stat -x';')", line=int(too_many_at))
    if n_rows == 0:
        raise ParseError("no perf stat counter lines (only metric lines)")
    return {"totals": totals, "last_line": last_line,
            "values": {col: list(found or []) for col, found in zip(TEXT_COLUMNS, lists)}}


def _fetch(con: duckdb.DuckDBPyConnection, table: str, values: dict[str, list[str]]) -> pd.DataFrame:
    """The counter rows as a frame: numbers as arrays, strings as categoricals.

    The strings (events, units, CPU labels) repeat; they are fetched once each and the rows carry
    codes, so that a million rows never become a million Python strings here.
    """
    codes = ", ".join(f"coalesce(list_position(?, nullif({col}, '')), 0) - 1 AS {col}_code" for col in TEXT_COLUMNS)
    # the table is written in line order (one pipeline over the lines in order); sorted here only if not
    found = con.execute(
        f"SELECT line, t, value, run_time_ns, enabled_pct, metric_value, {codes} FROM {table} "
        "WHERE NOT metric_only", [values[col] for col in TEXT_COLUMNS]).df()
    line_no = found["line"].to_numpy()
    if len(line_no) > 1 and not (line_no[1:] > line_no[:-1]).all():
        found = found.iloc[np.argsort(line_no, kind="stable")].reset_index(drop=True)
    rows = found[["line", "t", "value", "run_time_ns", "enabled_pct", "metric_value"]].copy()
    for col in TEXT_COLUMNS:
        code = found[f"{col}_code"].to_numpy(dtype=np.int64)
        rows[col] = pd.Categorical.from_codes(code, categories=values[col]) if values[col] else \
            pd.Series(np.full(len(found), None, dtype=object), dtype=object)
    rows["value"] = rows["value"].where(rows["reason"].isna())
    return rows
