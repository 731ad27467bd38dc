"""What the three `perf stat` parsers share: numbers, the `# started on` line, runs, anchoring, RAPL.

Each parser (``perf_stat_csv``, ``perf_stat_text``, ``perf_stat_json``) turns its file into one
DataFrame of event rows (see ``ROW_COLUMNS``) and hands it to ``build_trace``, which does the rest the
same way for all three:

Runs. A file may hold several perf runs appended to each other (``perf stat -o f --append``, or
output of several commands pasted together). A new run starts at every ``# started on`` line (and,
in text output, every ``Performance counter stats for`` header), where ``-I`` times go backwards, and
where output switches between ``-I`` and totals. In a file without such markers (CSV and JSON
totals), a new run starts where an event (on the same CPU/socket) repeats. Runs are numbered 0, 1, …
in file order (``counters.perf_run``).

Time. ``-I`` rows carry the end of their interval in seconds since perf started; ``interval_s`` is
the time since the previous interval of the same run (the first interval: its own time). Rows
without ``-I`` are one total per event; their ``interval_s`` is the run's elapsed time: the
``seconds time elapsed`` line in text output; in CSV and JSON, which print no elapsed time, it is
estimated as ``cpu-clock``/``task-clock`` msec ÷ its ``CPUs utilized`` metric where printed, else the
shortest counter running time of the run (the run time column; for ``-a`` runs on several sockets
without ``--per-socket`` this is a multiple of the elapsed time), and a note says which.

Anchor. Times become UTC with an anchor per run. ``--start`` wins: it anchors the first run, and later
runs that have their own ``# started on`` line keep their distance to the first run's line (runs
without one get the ``--start`` time too). Otherwise a run's own ``# started on`` line (local time,
read in ``ctx.tz``) is used, else ``start_utc`` of the ``run.json`` beside the file. ``-I`` output
without any anchor is refused (ParseError saying how to anchor it). Totals without an anchor still
load: their counters get a NULL ``ts``; their RAPL energy stays in ``counters`` only (samples need a
time) and a note says so. ``ts`` is anchor + interval end (``-I``) or anchor + elapsed (totals).

RAPL. Events ``energy-pkg``, ``energy-cores`` (also AMD's per-core ``energy-core``), ``energy-gpu``,
``energy-ram`` and ``energy-psys`` (normally ``power/energy-*/``, in Joules) also become sensors
(key ``perf:[runN:][CPU/socket:]energy-pkg``, one per domain and per CPU/socket where perf splits
them; the ``runN:`` part only when the file holds several runs, so that runs stay apart) with two
samples per interval: ``energy`` (J over the interval, ``ts`` = interval end, ``duration_s`` = interval
length) and ``power`` (energy ÷ interval length, in W) placed at the interval's MIDPOINT
(``ts - interval/2``, ``duration_s`` = interval length). The energy views integrate power with the
trapezoidal rule between samples and never extrapolate past the first or last sample, so each run
(per sensor) also gets two edge power samples with ``duration_s`` NULL: the first interval's average
power at that interval's start and the last interval's average at its end. With averages at the
midpoints plus these edges, the trapezoids reproduce perf's Joules exactly for equal intervals (off
by a quarter of the second difference of neighbouring interval lengths otherwise), and a run
without ``-I`` (one total) integrates to its total over its elapsed time instead of to nothing.
``run_energy.reported_energy_j`` carries perf's own sum beside the integral.

Values. ``<not counted>`` and ``<not supported>`` become NULL values with ``reason`` 'not counted' /
'not supported'. ``pmu`` is the prefix before the first ``/`` of the event name (``cpu_core``,
``cpu_atom``, ``power``, ``uncore_imc``), NULL for plain events, so hybrid core and atom events stay
apart.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Callable, Sequence

import numpy as np
from dlwh._lazy import pandas as pd

from dlwh.errors import ParseError
import dlwh.ingest.validate as validate
from dlwh.ingest.timeutil import local_to_utc
from dlwh.metrics import unit_of
from dlwh.ingest.lines import drop_cut_line, shaped_like
from dlwh.ingest.trace import IngestContext, Trace

# Columns of the event-row frame each parser builds (one row per printed event value):
#   line (1-based int), seg (count of run markers before the row), t (interval end in s, NaN
#   without -I), cpu (label or None), value (float, NaN for not counted/supported), reason,
#   unit (None if empty), event, run_time_ns (float), enabled_pct (float), metric_value (float),
#   metric_unit (str or None)
ROW_COLUMNS = ("line", "seg", "t", "cpu", "value", "reason", "unit", "event", "run_time_ns",
               "enabled_pct", "metric_value", "metric_unit")

NOT_COUNTED = {"<not counted>": "not counted", "<not supported>": "not supported"}

# RAPL domain (as in the event name) -> sensor kind
RAPL_KINDS: dict[str, str] = {
    "pkg": "cpu_package",
    "cores": "cpu_cores",
    "core": "cpu_cores",
    "gpu": "cpu_gpu",
    "ram": "dram",
    "psys": "psys",
}
_RAPL_EVENT_PD = r"(?:^|/)energy-(pkg|cores|core|gpu|ram|psys)(?:/|$)"
JOULE_UNITS = ("Joules", "J", "joules")

_STARTED_ON_TEXT = re.compile(r"^[ \t]*#[ \t]*started on[ \t]+(.*\S)[ \t]*$", re.M)
_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_CTIME = re.compile(r"^(?:[A-Za-z]{3}\s+)?([A-Za-z]{3})\s+(\d{1,2})\s+(\d{1,2}):(\d{2}):(\d{2})\s+(\d{4})$")

ANCHOR_HINT = ("pass --start with the time perf started (ISO 8601, e.g. --start 2024-10-30T18:42:33; naive = "
               "the --tz zone), or keep the file next to its run.json, or record with perf stat -o FILE "
               "(it writes a '# started on' line)")


def started_on_lines(text: str) -> list[tuple[int, datetime]]:
    """The ``# started on <ctime>`` lines of a whole file: (line number, 1-based; naive local datetime).

    Found by one regex over the text (a few matches; line numbers counted between them).
    Raises ParseError for a ``# started on`` line whose date cannot be read.
    """
    out: list[tuple[int, datetime]] = []
    line, pos = 1, 0
    if "started on" not in text:
        return out
    for match in _STARTED_ON_TEXT.finditer(text):
        line += text.count("\n", pos, match.start())
        pos = match.start()
        local = parse_ctime(match.group(1))
        if local is None:
            raise ParseError(f"'# started on {match.group(1)}' is not a date like 'Mon Oct 30 18:42:33 2024'",
                             line=line)
        out.append((line, local))
    return out


def started_on_in_text(text: str) -> pd.DataFrame:
    """``started_on_lines`` as a frame: columns line and local."""
    return pd.DataFrame(started_on_lines(text), columns=["line", "local"])


def parse_ctime(text: str) -> datetime | None:
    """'Fri May 16 23:03:33 2025' (C locale ctime, as perf writes it) → naive datetime, or None."""
    match = _CTIME.match(" ".join(text.split()))
    if not match:
        return None
    month = _MONTHS.get(match.group(1).lower())
    if month is None:
        return None
    day, hh, mm, ss, year = (int(match.group(i)) for i in (2, 3, 4, 5, 6))
    try:
        return datetime(year, month, day, hh, mm, ss)
    except ValueError:
        return None


def segments(row_lines: np.ndarray, marker_lines: np.ndarray) -> np.ndarray:
    """For each row line: how many run markers (sorted line numbers) come before it."""
    return np.searchsorted(np.sort(marker_lines), row_lines, side="left")


def codes_of(values: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """(integer code per row, -1 for null; the distinct values) without touching every string twice."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.codes.to_numpy(dtype=np.int64), pd.Series(values.cat.categories, dtype=object)
    codes, uniques = pd.factorize(values.to_numpy(dtype=object), use_na_sentinel=True)
    return codes, pd.Series(uniques, dtype=object)


def by_unique(values: pd.Series, func) -> pd.Series:
    """``func`` applied to the distinct values only (events, units, labels repeat a lot), spread back.

    ``func`` takes and returns a Series over the distinct non-null values; nulls map to None.
    """
    codes, uniques = codes_of(values)
    if len(uniques) == 0:
        return pd.Series([None] * len(values), index=values.index, dtype=object)
    mapped = _none_for_nan(func(uniques.astype(str))).to_numpy(dtype=object)
    out = np.append(mapped, None)[np.where(codes < 0, len(mapped), codes)]
    return pd.Series(out, index=values.index, dtype=object)


def _none_for_nan(series: pd.Series) -> pd.Series:
    return series.astype(object).where(series.notna(), None)


PMU_PATTERN = r"^([^/\s]+)/"


def pmu_of(events: pd.Series) -> pd.Series:
    """'cpu_core/cycles/' → 'cpu_core'; 'cycles' → None."""
    return by_unique(events, lambda u: _none_for_nan(u.str.extract(PMU_PATTERN, expand=False)))


def rapl_domain(events: pd.Series) -> pd.Series:
    """'power/energy-pkg/' → 'pkg'; other events → None."""
    return by_unique(events, lambda u: _none_for_nan(u.str.extract(_RAPL_EVENT_PD, expand=False)))


def reasons_and_values(raw: pd.Series, numbers: pd.Series) -> tuple[pd.Series, pd.Series]:
    """``<not counted>``/``<not supported>`` → (reason, NaN); other entries keep their number."""
    stripped = raw.str.strip()
    reason = stripped.map(NOT_COUNTED)
    reason = reason.astype(object).where(reason.notna(), None)
    return reason, numbers.where(reason.isna())


MAX_OFFSET_S = 1e9  # ~31 years: the most seconds since perf started that a real file prints


def _ns_delta(seconds: pd.Series) -> pd.Series:
    """Seconds (float) → timedelta, rounded to the nanosecond."""
    return pd.to_timedelta(np.round(seconds.to_numpy(dtype="float64") * 1e9), unit="ns")


def _estimate_elapsed(rows: pd.DataFrame, run: pd.Series) -> tuple[pd.Series, list[str]]:
    """Per run (index: perf_run) the elapsed seconds of a run without -I, and how it was found."""
    notes: list[str] = []
    ev = by_unique(rows["event"], lambda u: u.str.replace(r"^[^/]+/(.*)/$", r"\1", regex=True))
    util = by_unique(rows["metric_unit"], lambda u: u.str.contains("CPUs utilized", regex=False))
    clock = ev.isin(["cpu-clock", "task-clock"]) & util.eq(True) & (rows["metric_value"] > 0) & (rows["value"] > 0)
    unit = rows["unit"]
    scale = np.where(unit.eq("msec"), 1e-3, np.where(unit.eq("usec"), 1e-6, np.where(unit.eq("nsec"), 1e-9, np.nan)))
    from_clock = (rows["value"] * scale / rows["metric_value"]).where(clock)
    by_clock = from_clock.groupby(run).first()
    pct = rows["enabled_pct"]
    enabled = (rows["run_time_ns"] * 100.0 / pct).where(pct > 0, rows["run_time_ns"]) / 1e9
    by_runtime = enabled.where(enabled > 0).groupby(run).min()
    elapsed = by_clock.combine_first(by_runtime)
    if by_clock.notna().any():
        notes.append("run length of totals (no -I) estimated as cpu-clock/task-clock ÷ 'CPUs utilized'")
    if (by_clock.isna() & by_runtime.notna()).any():
        notes.append("run length of totals (no -I) estimated from the shortest counter running time "
                     "(perf prints no elapsed time in this mode)")
    return elapsed, notes


def build_trace(ctx: IngestContext, name: str, rows: pd.DataFrame, *, starts: pd.DataFrame | None = None,
                elapsed: pd.DataFrame | None = None, split_repeats: bool = False,
                notes: list[str] | None = None, warnings: list[str] | None = None) -> Trace:
    """Event rows (ROW_COLUMNS, in file order) → counters, RAPL sensors and samples.

    ``starts``: '# started on' lines (columns line, local). ``elapsed``: 'seconds time elapsed' lines
    (columns line, seconds), each closing the run of the rows before it. ``split_repeats``: start a
    new run where a (cpu, event) repeats in totals output (formats without run headers).
    """
    notes = list(notes or [])
    warnings = list(warnings or [])
    if rows.empty:
        raise ParseError("no perf stat counter lines found")
    rows = rows.reset_index(drop=True)
    n = len(rows)
    t = rows["t"].astype("float64")
    has_t = t.notna()
    seg = rows["seg"].to_numpy()
    new = np.zeros(n, dtype=bool)
    new[0] = True
    new[1:] = (seg[1:] != seg[:-1]) | (has_t.to_numpy()[1:] != has_t.to_numpy()[:-1]) | (
        has_t.to_numpy()[1:] & (t.to_numpy()[1:] < t.to_numpy()[:-1]))
    block = pd.Series(np.cumsum(new) - 1)
    if split_repeats and (~has_t).any():
        cpu_code = codes_of(rows["cpu"])[0]
        event_code = codes_of(rows["event"])[0]
        occ = pd.Series(0, index=rows.index).groupby([block, cpu_code, event_code], sort=False).cumcount()
        sub = occ.where(~has_t, 0).groupby(block).cummax()
    else:
        sub = pd.Series(0, index=rows.index)
    run = pd.Series(pd.factorize(block * (n + 1) + sub)[0], index=rows.index)
    n_runs = int(run.max()) + 1

    # -- interval lengths ---------------------------------------------------------------------
    first_of_time = has_t & ((t != t.shift()) | (run != run.shift()))
    times = t[first_of_time]
    step = (times - times.groupby(run[first_of_time]).shift()).fillna(times)
    interval = step.reindex(rows.index).where(has_t)
    interval = interval.groupby(run).ffill().where(has_t)
    run_elapsed = pd.Series(np.nan, index=range(n_runs))
    if elapsed is not None and len(elapsed):
        idx = np.searchsorted(rows["line"].to_numpy(), elapsed["line"].to_numpy(), side="left") - 1
        ok = idx >= 0
        runs_of = run.to_numpy()[idx[ok]]
        run_elapsed = pd.Series(elapsed["seconds"].to_numpy()[ok], index=runs_of).groupby(level=0).last() \
            .reindex(range(n_runs))
    totals = ~has_t
    if totals.any():
        missing = run_elapsed.isna() & totals.groupby(run).any().reindex(range(n_runs), fill_value=False)
        if missing.any():
            pick = totals & run.map(missing).astype(bool)
            estimate, how = _estimate_elapsed(rows[pick], run[pick])
            if len(estimate.dropna()):
                run_elapsed = run_elapsed.combine_first(estimate)
                notes.extend(how)
        unknown = sorted(set(run[totals & run.map(run_elapsed).isna()].tolist()))
        if unknown:
            notes.append(f"perf run(s) {', '.join(map(str, unknown))}: no elapsed time printed, so no ts "
                         "and no interval_s for their totals")
        interval = interval.where(has_t, run.map(run_elapsed))
    offset = t.where(has_t, run.map(run_elapsed))  # seconds from perf's start to the row's ts

    # -- anchors ------------------------------------------------------------------------------
    start_runs = None
    if starts is not None and len(starts):
        # a start line belongs to the first row after it
        idx = np.searchsorted(rows["line"].to_numpy(), starts["line"].to_numpy(), side="left")
        start_runs = np.where(idx < len(rows), run.to_numpy()[np.minimum(idx, len(rows) - 1)], -1)
    anchors = anchors_of_runs(ctx, n_runs, starts, start_runs, notes)
    anchor = run.map(anchors)
    unanchored_i = has_t & anchor.isna()
    if unanchored_i.any():
        first = int(rows.loc[unanchored_i.idxmax(), "line"])
        raise ParseError("perf stat -I times count from when perf started and nothing says when that was; "
                         + ANCHOR_HINT, line=first)
    far = offset.notna() & ~(offset.abs() <= MAX_OFFSET_S)  # inf, 1e300: not a time perf printed
    if far.any():
        raise ParseError(f"time {offset[far].iloc[0]:g} s since perf started is not a plausible time",
                         line=int(rows.loc[far.idxmax(), "line"]))
    try:
        ts = pd.to_datetime(anchor) + _ns_delta(offset)
    except (OverflowError, ValueError) as err:  # pandas' OutOfBounds* are ValueErrors: a far-off anchor
        raise ParseError(f"times out of range: {str(err).splitlines()[0][:120]}; check the start time") from None
    ts = pd.Series(ts, index=rows.index).dt.round("us")  # the warehouse keeps microseconds
    if (totals & anchor.isna()).any():
        notes.append("no start time: totals (no -I) have no ts; " + ANCHOR_HINT)

    counters = pd.DataFrame({
        "perf_run": run.astype("int32"),
        "ts": ts,
        "interval_s": interval.astype("float64"),
        "cpu": rows["cpu"],
        "pmu": pmu_of(rows["event"]),
        "event": rows["event"],
        "value": rows["value"].astype("float64"),
        "unit": rows["unit"],
        "reason": rows["reason"],
        "run_time_ns": validate.whole(rows["run_time_ns"].round()),  # inf/1e300 refused at the boundary
        "enabled_pct": rows["enabled_pct"].astype("float64"),
        "line": rows["line"].to_numpy(),  # for the loader's messages (not stored)
    })
    if n_runs > 1:
        notes.append(f"{n_runs} perf runs in this file (counters.perf_run 0..{n_runs - 1})")
    sensors, samples = _rapl(rows, counters, n_runs, notes, warnings)
    return Trace(format=name, counters=counters, sensors=sensors, samples=samples, notes=notes,
                 warnings=warnings)


def anchors_of_runs(ctx: IngestContext, n_runs: int, starts: pd.DataFrame | None, start_runs: np.ndarray | None,
                    notes: list[str]) -> pd.Series:
    """``run_anchors`` as a Series (naive datetime64, NaT where nothing anchors a run)."""
    pairs = list(zip(starts["line"], starts["local"])) if starts is not None and len(starts) else []
    anchors = run_anchors(ctx, n_runs, pairs, start_runs, notes)
    return pd.Series([pd.NaT if a is None else pd.Timestamp(a) for a in anchors], dtype="datetime64[ns]")


def run_anchors(ctx: IngestContext, n_runs: int, starts: list[tuple[int, datetime]],
                start_runs: Sequence[int] | None, notes: list[str]) -> list[datetime | None]:
    """The UTC start (naive datetime) of each run, None where nothing anchors it (see the module's doc).

    ``starts``: the '# started on' lines (line, local time); ``start_runs``: for each, the run it starts
    (-1: no counter row after it).
    """
    file_start: list[datetime | None] = [None] * n_runs
    limits = validate.limits_of(ctx)
    first_ok, last_ok = validate.local_window(limits)
    for line, local in starts or []:
        if not first_ok <= local <= last_ok:  # before pandas' nanoseconds overflow on it
            raise ParseError(validate.outside_message(f"'# started on' time {local}", limits), line=line)
    if starts:
        for run_no, when in zip(start_runs, _local_starts_to_utc([local for _, local in starts], ctx.tz)):
            if run_no >= 0:  # runs are separated by rows, so where two lines start one run the last one wins
                file_start[int(run_no)] = when
        notes.append(f"'# started on' read as local time in {ctx.tz_name} ({ctx.tz_source})")
    anchors = list(file_start)
    if ctx.start_utc is not None and ctx.start_source == "--start":
        base = ctx.start_utc
        first = file_start[0]
        anchors = [base if first is None or when is None else base + (when - first) for when in file_start]
        notes.append(f"anchored at {base.isoformat()} UTC from --start")
    elif ctx.start_utc is not None:
        source = ctx.start_source or "run.json"
        used = [when is None for when in anchors]
        anchors = [ctx.start_utc if when is None else when for when in anchors]
        if any(used):
            notes.append(f"anchored at {ctx.start_utc.isoformat()} UTC from {source}"
                         + (" (runs without their own '# started on' line)" if not all(used) else ""))
    if n_runs > 1 and all(a is not None for a in anchors) and len(set(anchors)) < len(anchors):
        notes.append("several runs share one start time (nothing in the file says when each began)")
    return anchors


def _local_starts_to_utc(values: list[datetime], tz) -> list[datetime]:
    """Naive local times → naive UTC, by ``local_to_utc``'s rules (pandas only off UTC)."""
    if tz is timezone.utc:
        return list(values)
    utc = local_to_utc(pd.Series(pd.to_datetime(values)).astype("datetime64[ns]"), tz)
    return [ts.to_pydatetime() for ts in utc]


def _rapl(rows: pd.DataFrame, counters: pd.DataFrame, n_runs: int, notes: list[str],
          warnings: list[str]) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """RAPL energy rows → (sensors, samples); None, None where the file has none placed in time."""
    domain = rapl_domain(counters["event"])
    is_rapl = domain.notna()
    if not is_rapl.any():
        return None, None
    unit = counters["unit"]
    wrong_unit = is_rapl & unit.notna() & ~unit.isin(JOULE_UNITS)
    if wrong_unit.any():
        at = wrong_unit.idxmax()
        warnings.append(f"RAPL event {counters.loc[at, 'event']} is in {unit[at]!r}, not Joules: "
                        "kept in counters only")
        is_rapl &= ~wrong_unit
    placed = is_rapl & counters["ts"].notna()
    if (is_rapl & ~placed).any():
        warnings.append(f"{int((is_rapl & ~placed).sum())} RAPL energy readings have no time (no start time "
                        "or no elapsed time) and are kept in counters only, not as energy samples")
    if not placed.any():
        return None, None
    r = counters[placed]
    # one sensor per (run if several, CPU/socket label, domain): keys built once per sensor
    # (integer codes per row, the few distinct values as objects: no groupby over row strings)
    run_no = r["perf_run"].to_numpy(dtype=np.int64) if n_runs > 1 else np.zeros(len(r), dtype=np.int64)
    cpu_codes, cpu_uniques = codes_of(r["cpu"])
    cpu_names = np.append(_none_for_nan(cpu_uniques).fillna("").to_numpy(dtype=object), "")
    cpu_merge, cpu_values = pd.factorize(cpu_names)  # a null label and '' are the same sensor
    cpu_no = cpu_merge[np.where(cpu_codes < 0, len(cpu_uniques), cpu_codes)].astype(np.int64)
    dom_no, dom_values = pd.factorize(domain[placed].to_numpy(dtype=object))
    combined = (run_no * (len(cpu_values) + 1) + cpu_no) * (len(dom_values) + 1) + dom_no
    sensor_no = pd.Series(pd.factorize(combined)[0], index=r.index)  # numbered in order of first appearance
    first = np.sort(np.unique(sensor_no.to_numpy(), return_index=True)[1])
    sensors = pd.DataFrame({"run": run_no[first],
                            "cpu": np.asarray(cpu_values, dtype=object)[cpu_no[first]],
                            "dom": np.asarray(dom_values, dtype=object)[dom_no[first]]})
    keys = ["perf:" + (f"run{run}:" if n_runs > 1 else "") + (f"{cpu}:" if cpu else "") + f"energy-{dom}"
            for run, cpu, dom in zip(sensors["run"], sensors["cpu"], sensors["dom"])]  # per sensor: few
    names = [f"energy-{dom}" + (f" {cpu}" if cpu else "") + (f" (perf run {run})" if n_runs > 1 else "")
             for run, cpu, dom in zip(sensors["run"], sensors["cpu"], sensors["dom"])]
    socket = sensors["cpu"].astype(str).str.extract(r"^S(\d+)", expand=False)
    key = pd.Series(np.asarray(keys, dtype=object)[sensor_no.to_numpy()], index=r.index)
    sensors = pd.DataFrame({
        "sensor_key": keys,
        "kind": sensors["dom"].map(RAPL_KINDS).to_numpy(),
        "name": names,
        "device_index": pd.array(pd.to_numeric(socket, errors="coerce"), dtype="Int64"),
        "device_uuid": None,
        "device_name": None,
        "tool": "perf",
    })
    iv = r["interval_s"]
    energy = pd.DataFrame({"sensor_key": key, "ts": r["ts"], "metric": "energy", "unit": unit_of("energy"),
                           "value": r["value"], "duration_s": iv})
    power = pd.DataFrame({"sensor_key": key, "ts": r["ts"] - _ns_delta(iv / 2).to_numpy(),
                          "metric": "power", "unit": unit_of("power"),
                          "value": (r["value"] / iv).where(iv > 0), "duration_s": iv})
    # the run's edges: the first interval's average at its start, the last one's at its end, so
    # that the trapezoids cover the whole run and add up to perf's Joules (duration_s NULL marks them)
    ordered = pd.DataFrame({"sensor_key": key, "start": r["ts"] - _ns_delta(iv).to_numpy(), "end": r["ts"],
                            "value": power["value"], "sensor_no": sensor_no}).dropna(subset=["start"])
    head = ordered.groupby("sensor_no", sort=False).head(1)
    tail = ordered.groupby("sensor_no", sort=False).tail(1)
    edges = pd.concat([
        pd.DataFrame({"sensor_key": head["sensor_key"], "ts": head["start"], "value": head["value"]}),
        pd.DataFrame({"sensor_key": tail["sensor_key"], "ts": tail["end"], "value": tail["value"]}),
    ], ignore_index=True).assign(metric="power", unit=unit_of("power"), duration_s=np.nan)
    samples = pd.concat([energy, power, edges[list(energy.columns)]], ignore_index=True)
    samples = samples[samples["ts"].notna()]
    samples["ts"] = samples["ts"].dt.round("us")
    return sensors, samples


# -- locale-aware numbers (text output) ------------------------------------------------------------
GROUPING_SPACES = "\u00a0\u202f\u2009 '\u2019"


def decimal_mark(*, elapsed: pd.Series, pct: pd.Series, values: pd.Series,
                 metrics: pd.Series) -> tuple[str, str, list[str]]:
    """The file's decimal separator ('.' or ','), what showed it, and conflicting evidence (if any).

    Evidence, strongest first: the 'seconds time elapsed' numbers and the '(58,73%)' multiplexing
    shares (never grouped); values holding both '.' and ',' (the last is decimal); values whose only
    separator is followed by other than 3 digits (decimal: groups are always 3 digits); values with a
    repeated separator (grouping, so the other is decimal); metric numbers after '#' (never grouped).
    """
    found: list[tuple[str, str]] = []

    def first_sep(series: pd.Series, pattern: str) -> str | None:
        marks = series.dropna().astype(str).str.extract(pattern, expand=False).dropna()
        return str(marks.iloc[0]) if len(marks) else None

    for series, pattern, what in (
        (elapsed, r"\d([.,])\d", "the 'seconds time elapsed' line"),
        (pct, r"\d([.,])\d", "the multiplexing percentages"),
    ):
        mark = first_sep(series, pattern)
        if mark:
            found.append((mark, what))
    v = values.dropna().astype(str).str.replace(f"[{GROUPING_SPACES}]", "", regex=True)
    both = v[v.str.contains(".", regex=False) & v.str.contains(",", regex=False)]
    mark = first_sep(both, r"([.,])\d*$")
    if mark:
        found.append((mark, f"a value like {both.iloc[0]}"))
    single = v[v.str.match(r"^\d+[.,](?:\d{1,2}|\d{4,})$")]
    mark = first_sep(single, r"([.,])")
    if mark:
        found.append((mark, f"a value like {single.iloc[0]}"))
    repeated = v[v.str.match(r"^\d{1,3}([.,])\d{3}(?:\1\d{3})+$")]
    mark = first_sep(repeated, r"([.,])")
    if mark:
        found.append(("," if mark == "." else ".", f"digit grouping like {repeated.iloc[0]}"))
    mark = first_sep(metrics, r"#\s*-?\d+([.,])\d")
    if mark:
        found.append((mark, "the metric numbers after '#'"))
    if not found:
        return ".", "no evidence either way; read as '.'", []
    chosen, why = found[0]
    conflicts = [f"{what} suggests '{m}'" for m, what in found[1:] if m != chosen]
    return chosen, why, conflicts


def locale_numbers(tokens: pd.Series, decimal: str) -> pd.Series:
    """Locale-formatted numbers ('1,473.81', '39.293.025.980', '1\u202f473,81') → float (NaN if not)."""
    grouping = ("," if decimal == "." else ".") + GROUPING_SPACES
    clean = tokens.astype(str).str.replace(f"[{re.escape(grouping)}]", "", regex=True)
    if decimal == ",":
        clean = clean.str.replace(",", ".", regex=False)
    return pd.to_numeric(clean, errors="coerce")


def complete_text(text: str, cut: list[str], is_complete: Callable[[str], bool] | None = None) -> str:
    """``text`` without a last line cut mid-write (``cut`` gets the warning). perf ends every line; a last
    line without its newline is complete when ``is_complete`` says so, by default when it has the shape
    of one of the lines before it (numbers aside: '1,234 cycles # 1.2 GHz') and only their words."""
    recent = text[max(0, len(text) - 65536):].replace("\r\n", "\n").split("\n")[-201:-1]
    return drop_cut_line(text, is_complete or shaped_like(recent, known_words=True), cut)


def split_lines(text: str) -> tuple[pd.Series, pd.Series, pd.Series]:
    """The file's lines (CRLF folded, no trailing empty line), their stripped form, and which are comments."""
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    lines = pd.Series(text.split("\n"))
    if text.endswith("\n"):
        lines = lines.iloc[:-1]
    stripped = lines.str.strip()
    return lines, stripped, stripped.str.startswith("#")
