"""``perf stat -I`` rows → counters, RAPL sensors and samples, computed in DuckDB (no pandas per row).

A long ``-I`` recording has millions of counter lines. ``_perf_common.build_trace`` does the same
work in pandas for every perf format and layout; this module does it in SQL over the table of parsed
lines (``perf_stat_csv``'s layout query) when every counter row carries an interval time, so that
the rows never leave DuckDB: the loader inserts the relations returned here. The rules are those of
``_perf_common`` (runs, interval lengths, anchors, RAPL energy and power at interval midpoints with
edge samples, microsecond rounding half to even), and the tests check that both give identical tables.

The input table has one row per data line: ``line``, ``seg`` (number of ``# started on`` lines before
it), ``t``, ``cpu``, ``value``, ``reason``, ``unit``, ``event``, ``run_time_ns``, ``enabled_pct`` and
``metric_only``; empty strings stand for missing text.
"""

from __future__ import annotations

import re
from datetime import datetime

import duckdb
import numpy as np

from dlwh.errors import ParseError
from dlwh.ingest.formats.perf import _common as common
from dlwh.ingest.trace import IngestContext, Trace
from dlwh.metrics import unit_of

RAPL_KIND_SQL = "CASE dom " + " ".join(f"WHEN '{dom}' THEN '{kind}'" for dom, kind in common.RAPL_KINDS.items()) + " END"


def _round_us_ns(ns: np.ndarray) -> np.ndarray:
    """Epoch nanoseconds → epoch microseconds, ties to even (as pandas ``Series.dt.round('us')``)."""
    q, r = np.divmod(ns, 1000)
    return q + ((r > 500) | ((r == 500) & (q % 2 == 1)))


def _ns(seconds: np.ndarray) -> np.ndarray:
    """Seconds → integer nanoseconds, rounded half to even (as ``_perf_common._ns_delta``)."""
    return np.round(seconds * 1e9).astype(np.int64)


def _sql_round_us(ns: str) -> str:
    """SQL: an epoch-nanosecond BIGINT expression → a microsecond TIMESTAMP, ties to even (as _round_us_ns)."""
    return (f"make_timestamp(({ns}) // 1000 + CASE WHEN ({ns}) % 1000 > 500 "
            f"OR (({ns}) % 1000 = 500 AND (({ns}) // 1000) % 2 = 1) THEN 1 ELSE 0 END)")


def _sql_ns(seconds: str) -> str:
    """SQL: seconds (DOUBLE) → nanoseconds (BIGINT), rounded half to even (as _ns)."""
    return f"CAST(round_even(({seconds}) * 1e9, 0) AS BIGINT)"


def build(ctx: IngestContext, name: str, table: str, starts: list[tuple[int, datetime]], event_names: list[str],
          notes: list[str]) -> Trace:
    """Counters, RAPL sensors and samples from the parsed lines in ``table`` (every counter row has ``t``).

    The per-row time arithmetic (runs, interval lengths, timestamps) runs in numpy over the fetched
    line numbers and times; its result is joined back by line, so text columns never leave DuckDB.
    ``event_names``: the distinct events. The counters are a view the loader's insert reads;
    ``Trace.scratch`` names what it reads from.
    """
    con = ctx.con
    got = con.execute(f"SELECT line, t FROM {table} WHERE NOT metric_only").fetchnumpy()
    line = np.asarray(got["line"], dtype=np.int64)
    t = np.asarray(got["t"], dtype=np.float64)
    if len(line) > 1 and not (line[1:] > line[:-1]).all():  # written in line order: sorted only if not
        order = np.argsort(line, kind="stable")
        line, t = line[order], t[order]
    # runs: a '# started on' line, or time going backwards; blocks: rows of one interval
    start_lines = np.array([at for at, _ in starts], dtype=np.int64)
    seg = common.segments(line, start_lines) if starts else np.zeros(len(line), np.int64)
    new_run = np.ones(len(line), dtype=bool)
    new_run[1:] = (seg[1:] != seg[:-1]) | (t[1:] < t[:-1])
    new_time = new_run.copy()
    new_time[1:] |= t[1:] != t[:-1]
    run = np.cumsum(new_run) - 1
    n_runs = int(run[-1]) + 1
    # interval length: the time since the run's previous interval (the first one: its own time)
    first = np.flatnonzero(new_time)
    step = t[first].copy()
    step[1:] -= np.where(new_run[first[1:]], 0.0, t[first[:-1]])
    interval = step[np.cumsum(new_time) - 1]

    run_first = line[new_run]
    run_last = np.append(line[np.flatnonzero(new_run)[1:] - 1], line[-1])
    start_runs = None
    if starts:
        at = np.searchsorted(run_last, start_lines, side="left")
        start_runs = np.where(at < n_runs, at, -1)
    anchors = common.run_anchors(ctx, n_runs, starts, start_runs, notes)
    if any(a is None for a in anchors):
        first = next(i for i, a in enumerate(anchors) if a is None)
        raise ParseError("perf stat -I times count from when perf started and nothing says when that was; "
                         + common.ANCHOR_HINT, line=int(run_first[first]))
    anchor_ns = np.array([np.datetime64(a, "us") for a in anchors]).astype("datetime64[ns]").astype(np.int64)
    ts_us = _round_us_ns(anchor_ns[run] + _ns(t))

    counters, timing, events = "_perf_iv_counters", "_perf_iv_timing", "_perf_iv_events"
    scratch = [f"VIEW {counters}", f"TABLE {timing}", f"TABLE {events}"]
    con.register("_perf_iv_arrays", {"line_no": line, "perf_run": run.astype(np.int32),
                                      "ts": ts_us.astype("datetime64[us]"), "interval_s": interval})
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {timing} AS SELECT * FROM _perf_iv_arrays")
    finally:
        con.unregister("_perf_iv_arrays")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {events} (event VARCHAR, pmu VARCHAR, dom VARCHAR)")
    con.executemany(f"INSERT INTO {events} (event, pmu, dom) VALUES (?, ?, ?)", _event_rows(event_names))
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW {counters} AS
        SELECT i.perf_run, i.ts, i.interval_s, nullif(r.cpu, '') AS cpu, e.pmu, r.event,
               CASE WHEN r.reason IS NULL THEN r.value END AS value, nullif(r.unit, '') AS unit, r.reason,
               CAST(round_even(r.run_time_ns, 0) AS BIGINT) AS run_time_ns, r.enabled_pct, i.line_no AS line, e.dom
        FROM (SELECT line AS line_no, * FROM {table} WHERE NOT metric_only) r
             JOIN {timing} i USING (line_no) JOIN {events} e ON e.event = r.event
        """)
    if n_runs > 1:
        notes.append(f"{n_runs} perf runs in this file (counters.perf_run 0..{n_runs - 1})")
    warnings: list[str] = []
    sensors, samples = _rapl(con, counters, n_runs, warnings, scratch)
    return Trace(format=name, counters=con.table(counters).select(
                     "perf_run, ts, interval_s, cpu, pmu, event, value, unit, reason, run_time_ns, enabled_pct"),
                 sensors=sensors, samples=samples, notes=notes, warnings=warnings, scratch=scratch)


def _event_rows(event_names: list[str]) -> list[tuple[str, str | None, str | None]]:
    """(event, PMU, RAPL domain) per distinct event name, by ``_perf_common.pmu_of`` and ``rapl_domain``'s
    regular expressions (run per name)."""
    rows = []
    for event in event_names:
        pmu = re.search(common.PMU_PATTERN, event)
        domain = re.search(common._RAPL_EVENT_PD, event)
        rows.append((event, pmu.group(1) if pmu else None, domain.group(1) if domain else None))
    return rows


def _rapl(con: duckdb.DuckDBPyConnection, counters: str, n_runs: int, warnings: list[str],
          scratch: list[str]) -> tuple[duckdb.DuckDBPyRelation | None, duckdb.DuckDBPyRelation | None]:
    """RAPL energy rows of ``counters`` → (sensors, samples) relations, as ``_perf_common._rapl``."""
    joules = "(" + ", ".join(f"'{u}'" for u in common.JOULE_UNITS) + ")"
    wrong = con.execute(
        f"SELECT arg_min(event, line), arg_min(unit, line) FROM {counters} "
        f"WHERE dom IS NOT NULL AND unit IS NOT NULL AND unit NOT IN {joules}").fetchall()[0]
    if wrong[0] is not None:
        warnings.append(f"RAPL event {wrong[0]} is in {wrong[1]!r}, not Joules: kept in counters only")
    rapl, edges = "_perf_iv_rapl", "_perf_iv_edges"
    run_part = "'run' || perf_run || ':'" if n_runs > 1 else "''"
    run_name = "' (perf run ' || perf_run || ')'" if n_runs > 1 else "''"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {rapl} AS
        SELECT line, ts, interval_s, value, perf_run, coalesce(cpu, '') AS cpu, dom,
               'perf:' || {run_part} || CASE WHEN coalesce(cpu, '') <> '' THEN cpu || ':' ELSE '' END
                 || 'energy-' || dom AS sensor_key
        FROM {counters}
        WHERE dom IS NOT NULL AND (unit IS NULL OR unit IN {joules}) AND ts IS NOT NULL
        """)
    # per sensor: its first and last interval (the edges of its power series) and what names it
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {edges} AS
        SELECT sensor_key, min(line) AS first_line, any_value(dom) AS dom, any_value(cpu) AS cpu,
               any_value(perf_run) AS perf_run,
               arg_min_null(ts, line) AS first_ts, arg_min_null(interval_s, line) AS first_interval_s,
               arg_min_null(value, line) AS first_value,
               arg_max_null(ts, line) AS last_ts, arg_max_null(interval_s, line) AS last_interval_s,
               arg_max_null(value, line) AS last_value
        FROM {rapl} GROUP BY sensor_key
        """)
    scratch[:0] = [f"TABLE {rapl}", f"TABLE {edges}"]
    if not con.execute(f"SELECT count(*) FROM {edges}").fetchall()[0][0]:
        return None, None
    sensors = con.sql(f"""
        SELECT sensor_key, {RAPL_KIND_SQL} AS kind,
               'energy-' || dom || CASE WHEN cpu <> '' THEN ' ' || cpu ELSE '' END || {run_name} AS name,
               TRY_CAST(regexp_extract(cpu, '^S(\\d+)', 1) AS INTEGER) AS device_index,
               NULL::VARCHAR AS device_uuid, NULL::VARCHAR AS device_name, 'perf' AS tool
        FROM {edges} ORDER BY first_line
        """)
    energy, power = unit_of("energy"), unit_of("power")
    midpoint = _sql_round_us(f"epoch_ns(ts) - {_sql_ns('interval_s / 2')}")
    start = _sql_round_us(f"epoch_ns(first_ts) - {_sql_ns('first_interval_s')}")
    samples = con.sql(f"""
        SELECT sensor_key, ts, 'energy' AS metric, '{energy}' AS unit, value, interval_s AS duration_s
        FROM {rapl}
        UNION ALL
        SELECT sensor_key, {midpoint}, 'power', '{power}', CASE WHEN interval_s > 0 THEN value / interval_s END,
               interval_s
        FROM {rapl}
        UNION ALL
        SELECT sensor_key, {start}, 'power', '{power}',
               CASE WHEN first_interval_s > 0 THEN first_value / first_interval_s END, NULL
        FROM {edges} WHERE first_interval_s IS NOT NULL
        UNION ALL
        SELECT sensor_key, last_ts, 'power', '{power}',
               CASE WHEN last_interval_s > 0 THEN last_value / last_interval_s END, NULL
        FROM {edges} WHERE last_interval_s IS NOT NULL
        """)
    return sensors, samples
