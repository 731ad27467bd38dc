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

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from dlwh.errors import ParseError
from dlwh.ingest.formats import _perf_common as common
from dlwh.ingest.formats import _perf_interval_sql as interval_sql
from dlwh.ingest.trace import IngestContext, Trace

NAME = "perf-stat-csv"
SEPARATORS = (",", ";", "\t")
_AFTER_EVENT = 4  # run_time, enabled_pct, metric_value, metric_unit
_SNIFF_LINES = 200
FORCE_PANDAS = False  # tests set it to compare the DuckDB -I path with the pandas one

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
    SELECT line, nf, k + x AS k, t, cpu, value, unit, event, run_time_ns, enabled_pct, metric_value, metric_unit,
           CASE value_s WHEN '<not counted>' THEN 'not counted' WHEN '<not supported>' THEN 'not supported'
           END AS reason,
           value_s = '' AND event = '' AS metric_only,
           NOT (value_s = '' AND event = '')
             AND ((value IS NULL AND value_s NOT IN {not_counted})
                  OR event = '' OR TRY_CAST(event AS DOUBLE) IS NOT NULL OR nf < k + 3) AS bad,
           nf > k + 3 + {_AFTER_EVENT} + x AS too_many
    FROM picked
    """


def _lines_frame(lines: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"line": np.arange(1, len(lines) + 1, dtype=np.int64),
                         "text": np.array(lines, dtype=object)})


def sniff(head: str, path: Path) -> bool:
    """The first and at least half of the head's non-comment lines are perf stat -x lines (one separator)."""
    return _separator(head) is not None


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
    """Split lines, run the layout query in DuckDB, hand the rows to _perf_common."""
    text = ctx.read_text()
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    sep = _separator(text[:65536]) or ","
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    starts = common.started_on_in_text(text)
    notes = [] if sep == "," else [f"separator {sep!r}; decimal comma read"]
    con = ctx.con
    view, table = "_perf_csv_lines", "_perf_csv_rows"
    con.register(view, _lines_frame(lines))
    keep = False
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS " + _layout_sql(sep, view))
        con.unregister(view)
        check = _check(con, table, sep, lines)
        common.check_line_end(text, check["last_line"], len(lines))
        if check["totals"] == 0 and not FORCE_PANDAS:
            # every row is an -I interval: built in DuckDB, never fetched (see _perf_interval_sql)
            trace = interval_sql.build(ctx, NAME, table, starts, notes)
            trace.scratch.append(table)
            keep = True
            return trace
        rows = _fetch(con, table, check["values"])
    except duckdb.Error as err:
        raise ParseError(f"cannot read as perf stat -x{sep} output ({str(err).splitlines()[0]})") from None
    finally:
        try:
            con.unregister(view)
        except duckdb.Error:
            pass
        if not keep:
            con.execute(f"DROP TABLE IF EXISTS {table}")
    rows["seg"] = common.segments(rows["line"].to_numpy(), starts["line"].to_numpy())
    return common.build_trace(ctx, NAME, rows[list(common.ROW_COLUMNS)], starts=starts, split_repeats=True,
                              notes=notes)


TEXT_COLUMNS = ("cpu", "unit", "event", "metric_unit", "reason")


def _check(con: duckdb.DuckDBPyConnection, table: str, sep: str, lines: list[str]) -> dict:
    """Check the parsed lines (ParseError naming the first bad one); counts and each text column's values.

    One scan: the checks, the number of totals rows (no -I time), the last counter line, and the
    distinct events, units and labels (few).
    """
    distinct = ", ".join(f"list_sort(list(DISTINCT {col}) FILTER (WHERE NOT metric_only AND nullif({col}, '') "
                         "IS NOT NULL))" for col in TEXT_COLUMNS)
    total, too_many_at, bad_at, n_rows, totals, last_line, *lists = con.execute(
        f"SELECT count(*), min(line) FILTER (WHERE too_many AND NOT bad), min(line) FILTER (WHERE bad), "
        f"count(*) FILTER (WHERE NOT metric_only), count(*) FILTER (WHERE NOT metric_only AND t IS NULL), "
        f"max(line) FILTER (WHERE NOT metric_only), {distinct} FROM {table}").fetchall()[0]
    if total == 0:
        raise ParseError("no perf stat counter lines (only comments or blank lines)")
    if bad_at is not None and (too_many_at is None or bad_at < too_many_at):
        raise ParseError(f"not a perf stat -x{sep} counter line ([time,][cpu,]value,unit,event,...): "
                         f"{lines[bad_at - 1].strip()[:80]!r}", line=int(bad_at))
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
