"""The one check every parsed table passes before it is inserted (the loader calls it for every file).

Rules (what breaks one refuses the whole file, naming the value, where it is and, where the table
carries its line, the line number):

* times (``ts``, ``start_ts``, ``end_ts``, every TIMESTAMP column) lie inside a window, by default
  2000-01-01 up to seven days after now (UTC; carbon-intensity forecasts reach three days ahead); ``DLWH_INGEST_TS_MIN`` / ``DLWH_INGEST_TS_MAX`` (ISO dates
  or times, UTC) or ``Limits`` change it;
* numbers are finite (NaN and ±inf are refused; the markers tools write for "no value", such as
  ``[N/A]`` or ``<not counted>``, are NULL already and stay NULL);
* samples are physically possible for their unit: W within 0 and the sensor kind's ceiling
  (``POWER_CEILING_W``), J, MHz, MiB, MB/s not negative, % within 0..100, C above absolute zero;
  cumulative energy counters (``energy_total``) never go down within a sensor;
* columns stored as INTEGER / BIGINT receive whole numbers in range (never Infinity or 1e300);
* other tables' columns by name: ``*power_w`` within 0..1 MW, ``*energy_j`` / ``*_kwh`` / durations not
  negative, ``*_pct`` within 0..100.

The checks are SQL expressions the loader puts into its ``INSERT ... SELECT``: one streaming pass, the
same one that inserts (DuckDB's ``error()`` stops the statement at the first bad row), so they cost
next to nothing on 10 million rows. A failed check surfaces as a DuckDB error whose text starts with
``CHECK_TAG``; ``dlwh.ingest.failure`` turns it back into the message and line.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import duckdb
import numpy as np
from dlwh._lazy import pandas as pd

from dlwh.errors import ParseError, UsageError

CHECK_TAG = "dlwh-check"
_CHECK = re.compile(CHECK_TAG + r"\|(\d*)\|([^\n]*)")

# The most a single sensor of each kind can draw (W): far above any real device, far below what a
# corrupted reading gives (a 1e300 W or a counter read as watts).
POWER_CEILING_W: dict[str, float] = {
    "gpu": 5_000.0, "cpu_package": 5_000.0, "cpu_cores": 5_000.0, "cpu": 5_000.0, "dram": 2_000.0,
    "psys": 10_000.0, "soc": 2_000.0, "cpu_gpu": 2_000.0, "ane": 2_000.0, "node": 200_000.0,
}
DEFAULT_POWER_CEILING_W = 1_000_000.0  # 1 MW: sensors of a kind not listed, and *power_w columns
FUTURE_DAYS = 7  # the default window ends this many days after now (forecasts reach 3 days ahead)
MAX_DURATION_S = 1e9  # ~31.7 years: the longest duration any column may hold
INT_RANGES = {"TINYINT": 2**7, "SMALLINT": 2**15, "INTEGER": 2**31, "BIGINT": 2**63,
              "UTINYINT": 2**8, "USMALLINT": 2**16, "UINTEGER": 2**32, "UBIGINT": 2**64, "HUGEINT": 2**127}


def _env_time(name: str) -> datetime | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{name}={text!r} is not an ISO 8601 date or time such as 2000-01-01") from None
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value


@dataclass(frozen=True)
class Limits:
    """What the check accepts. Times are naive UTC; ``ts_max`` None means FUTURE_DAYS after now."""

    ts_min: datetime = datetime(2000, 1, 1)
    ts_max: datetime | None = None
    power_ceiling_w: dict[str, float] = field(default_factory=lambda: dict(POWER_CEILING_W))

    @classmethod
    def from_env(cls) -> "Limits":
        """The default window, moved by DLWH_INGEST_TS_MIN / DLWH_INGEST_TS_MAX where set."""
        lo, hi = _env_time("DLWH_INGEST_TS_MIN"), _env_time("DLWH_INGEST_TS_MAX")
        limits = cls(ts_min=lo or cls.ts_min, ts_max=hi)
        if lo and hi and hi <= lo:
            raise UsageError("DLWH_INGEST_TS_MAX must be after DLWH_INGEST_TS_MIN")
        return limits

    def window(self) -> tuple[datetime, datetime]:
        """(earliest, latest) accepted time, naive UTC."""
        hi = self.ts_max or (datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(days=FUTURE_DAYS))
        return self.ts_min, hi

    def describe_window(self) -> str:
        lo, hi = self.window()
        return f"{lo:%Y-%m-%d %H:%M} .. {hi:%Y-%m-%d %H:%M} UTC"


def limits_of(ctx) -> Limits:
    """The Limits of an IngestContext (the defaults where it has none)."""
    return getattr(ctx, "limits", None) or Limits.from_env()


def local_window(limits: Limits) -> tuple[datetime, datetime]:
    """The window for LOCAL times of any zone: the UTC window widened by a day on each side."""
    lo, hi = limits.window()
    return lo - timedelta(days=1), hi + timedelta(days=1)


def outside_message(what: str, limits: Limits) -> str:
    """'<what> is outside <window>; ...' for a time refused by the window."""
    return (f"{what} is outside {limits.describe_window()}; a clock not yet set, or a damaged line? "
            "(DLWH_INGEST_TS_MIN / DLWH_INGEST_TS_MAX widen the window)")


# ---------------------------------------------------------------------------------------- SQL pieces
def _lit(text: str) -> str:
    """A constant text of ours as an SQL literal (never used for file content)."""
    return "'" + text.replace("'", "''") + "'"


def _ts_lit(value: datetime) -> str:
    return f"TIMESTAMP '{value:%Y-%m-%d %H:%M:%S}'"


def _fail(line: str, *parts: str) -> str:
    """SQL raising the check error; ``parts`` are SQL expressions (columns, or _lit constants)."""
    text = ", ".join(f"coalesce(CAST({p} AS VARCHAR), 'NULL')" for p in parts)
    return f"error(concat('{CHECK_TAG}|', coalesce(CAST({line} AS VARCHAR), ''), '|', {text}))"


def check_time(expr: str, what: str, limits: Limits, line: str = "NULL", where: str | None = None) -> str:
    """``expr`` (a TIMESTAMP, NULL allowed) if inside the window, else the check error."""
    lo, hi = limits.window()
    at = [_lit(" ("), where, _lit(")")] if where else []
    return (f"CASE WHEN {expr} < {_ts_lit(lo)} OR {expr} > {_ts_lit(hi)} THEN "
            f"{_fail(line, _lit(what + ' '), expr, _lit(' UTC'), *at, _lit(' is outside ' + limits.describe_window() + '; a clock not yet set, or a damaged line? (DLWH_INGEST_TS_MIN / DLWH_INGEST_TS_MAX widen the window)'))} "
            f"ELSE {expr} END")


def check_number(expr: str, what: str, lo: float | None = None, hi: float | None = None,
                 line: str = "NULL", where: str | None = None, unit: str = "") -> str:
    """``expr`` as DOUBLE if NULL or finite and within [lo, hi], else the check error."""
    v = f"CAST({expr} AS DOUBLE)"
    at = [_lit(" ("), where, _lit(")")] if where else []
    suffix = f" {unit}" if unit else ""
    cases = [f"WHEN NOT isfinite({v}) THEN {_fail(line, _lit(what + ' is '), v, *at, _lit(': not a finite number'))}"]
    if lo is not None or hi is not None:
        bounds = " OR ".join(c for c in (f"{v} < {lo!r}" if lo is not None else "",
                                         f"{v} > {hi!r}" if hi is not None else "") if c)
        rng = (f"within {lo:g}..{hi:g}{suffix}" if lo is not None and hi is not None
               else f"at least {lo:g}{suffix}" if lo is not None else f"at most {hi:g}{suffix}")
        cases.append(f"WHEN {bounds} THEN {_fail(line, _lit(what + ' is '), v, _lit(suffix), *at, _lit('; must be ' + rng))}")
    return f"CASE WHEN {v} IS NULL THEN NULL {' '.join(cases)} ELSE {v} END"


def check_integer(expr: str, what: str, sql_type: str, line: str = "NULL", where: str | None = None,
                  source_type: str | None = None) -> str:
    """``expr`` cast to ``sql_type`` (an integer type) if it holds a whole number in range, else the check
    error. ``source_type``: the staged column's DuckDB type (integers of a type that fits need no check)."""
    bound = INT_RANGES.get(sql_type.upper(), 2**63)
    if source_type and source_type.upper() in INT_RANGES and INT_RANGES[source_type.upper()] <= bound:
        return f"CAST({expr} AS {sql_type})"
    v = f"TRY_CAST({expr} AS DOUBLE)"
    at = [_lit(" ("), where, _lit(")")] if where else []
    bad = f"{expr} IS NOT NULL AND ({v} IS NULL OR NOT isfinite({v}) OR {v} <> floor({v}) OR abs({v}) >= {float(bound)!r})"
    return (f"CASE WHEN {bad} THEN {_fail(line, _lit(what + ' is '), f'left(CAST({expr} AS VARCHAR), 40)', *at, _lit(f': not a whole number that fits {sql_type}'))} "
            f"ELSE CAST({expr} AS {sql_type}) END")


def sample_value(limits: Limits, kinds: dict[str, str], line: str = "NULL") -> tuple[str, dict[str, object]]:
    """The checked ``value`` of a samples stage (columns sensor_key, ts, metric, unit, value) and its
    named parameters: bounds by unit, W up to the ceiling of the sensor's kind."""
    ceilings = {key: limits.power_ceiling_w.get(kind, DEFAULT_POWER_CEILING_W) for key, kind in kinds.items()}
    params: dict[str, object] = {}
    if len(set(ceilings.values())) <= 1:
        watts = repr(next(iter(ceilings.values()), DEFAULT_POWER_CEILING_W))
    else:
        whens = []
        for n, (key, ceiling) in enumerate(sorted(ceilings.items())):
            params[f"ck{n}"] = key
            whens.append(f"WHEN $ck{n} THEN {ceiling!r}")
        watts = f"(CASE sensor_key {' '.join(whens)} ELSE {DEFAULT_POWER_CEILING_W!r} END)"
    v = "CAST(value AS DOUBLE)"
    lo = ("(CASE unit WHEN 'W' THEN 0.0 WHEN 'J' THEN 0.0 WHEN 'MHz' THEN 0.0 WHEN '%' THEN 0.0 "
          "WHEN 'MiB' THEN 0.0 WHEN 'MB/s' THEN 0.0 WHEN 'C' THEN -273.15 ELSE '-inf'::DOUBLE END)")
    hi = f"(CASE unit WHEN 'W' THEN {watts} WHEN '%' THEN 100.0 WHEN 'MHz' THEN 1e6 WHEN 'C' THEN 1e4 ELSE 'inf'::DOUBLE END)"
    where = ["metric", _lit(" of "), "sensor_key", _lit(" is ")]
    at = [_lit(" at "), "ts", _lit(" UTC")]
    sql = (f"CASE WHEN {v} IS NULL THEN NULL "
           f"WHEN NOT isfinite({v}) THEN {_fail(line, *where, v, _lit(' '), 'unit', *at, _lit(': not a finite number'))} "
           f"WHEN {v} < {lo} OR {v} > {hi} THEN {_fail(line, *where, v, _lit(' '), 'unit', *at, _lit('; must be within '), lo, _lit('..'), hi, _lit(' '), 'unit')} "
           f"ELSE {v} END")
    return sql, params


def parse_check_error(text: str) -> tuple[str, int | None] | None:
    """(message, line) of a failed check in a DuckDB error's text, or None if it is another error."""
    found = _CHECK.search(text)
    if not found:
        return None
    return found.group(2).strip(), int(found.group(1)) if found.group(1) else None


def column_check(name: str, target_type: str, source_type: str | None, table: str, limits: Limits,
                 line: str = "NULL") -> str:
    """The checked SQL for column ``name`` of a staged table going to column ``name`` of type ``target_type``."""
    col = f'"{name}"'
    what = f"{table}.{name}"
    upper = target_type.upper()
    if upper in INT_RANGES:
        return check_integer(col, what, upper, line, source_type=source_type)
    if upper.startswith("TIMESTAMP"):
        if source_type and not source_type.upper().startswith(("TIMESTAMP", "DATE")):
            return col  # text times: DuckDB's cast (a failure is reported as an unreadable value)
        return check_time(col, what, limits, line)
    if upper in ("DOUBLE", "FLOAT", "REAL") or upper.startswith("DECIMAL"):
        lo = hi = None
        low = name.lower()
        if low.endswith("power_w"):
            lo, hi = 0.0, DEFAULT_POWER_CEILING_W
        elif low.endswith(("duration_s", "elapsed_s", "time_per_epoch_s")):
            lo, hi = 0.0, MAX_DURATION_S
        elif low.endswith(("energy_j", "_kwh", "_bytes")):
            lo = 0.0
        elif low.endswith("_pct"):
            lo, hi = 0.0, 100.0
        return check_number(col, what, lo, hi, line)
    return col


def stage_types(con: duckdb.DuckDBPyConnection, view: str) -> dict[str, str]:
    """{column: DuckDB type} of a registered frame or view."""
    return {row[0]: row[1] for row in con.execute(f'DESCRIBE "{view}"').fetchall()}


# ---------------------------------------------------------------------------------- Python-side checks
def check_run(run, limits: Limits) -> None:
    """A manifest's run row: times inside the window, exit code an INTEGER. Raises ParseError."""
    lo, hi = limits.window()
    for label, value in (("start_utc", run.start_ts), ("end_utc", run.end_ts)):
        if value is not None and not (lo <= value <= hi):
            raise ParseError(f"{label} {value:%Y-%m-%d %H:%M:%S} UTC is outside {limits.describe_window()}; "
                             "a clock not yet set? (DLWH_INGEST_TS_MIN / DLWH_INGEST_TS_MAX widen the window)")
    if run.start_ts is not None and run.end_ts is not None and run.end_ts < run.start_ts:
        raise ParseError(f"end_utc {run.end_ts:%Y-%m-%d %H:%M:%S} is before start_utc {run.start_ts:%Y-%m-%d %H:%M:%S}")
    code = run.exit_code
    if code is not None and (not isinstance(code, int) or isinstance(code, bool) or abs(code) >= 2**31):
        raise ParseError(f"exit_code {str(code)[:40]!r} is not a whole number")


def may_hold_energy_counters(table) -> bool:
    """Whether a samples table may hold energy_total rows: a frame that does, or a relation whose SQL names
    the metric (relations are not scanned twice just to find out: nvidia-smi's never do)."""
    if isinstance(table, duckdb.DuckDBPyRelation):
        try:
            return "energy_total" in table.sql_query()
        except duckdb.Error:
            return True
    return bool((table["metric"] == "energy_total").any())


def check_energy_counters(con: duckdb.DuckDBPyConnection, view: str, line: str = "NULL") -> None:
    """Cumulative energy counters (metric energy_total) never go down within a sensor. Raises ParseError.

    Runs only on materialised frames (counters come from NVML's frames); a window over the rows of
    this metric alone."""
    found = con.execute(
        f"SELECT sensor_key, ts, value, before, {line} FROM (SELECT sensor_key, ts, CAST(value AS DOUBLE) AS value, "
        f"{line}, lag(CAST(value AS DOUBLE)) OVER (PARTITION BY sensor_key ORDER BY ts) AS before FROM \"{view}\" "
        f"WHERE metric = 'energy_total' AND value IS NOT NULL AND ts IS NOT NULL) WHERE value < before "
        f"ORDER BY ts LIMIT 1").fetchall()
    if found:
        key, ts, value, before, at = found[0]
        raise ParseError(f"energy counter of {key} goes down at {ts} UTC (from {before:g} J to {value:g} J): "
                         "a counter never runs backwards within one recording; the file is damaged or "
                         "joins two recordings (split it there)", line=int(at) if at is not None else None)


def check_times(values, lines, limits: Limits, what: str) -> None:
    """ParseError at the first of ``values`` (naive UTC datetimes, a Series or array; NaT passes) outside
    the window; ``lines``: the line number of each value (or None). For parsers that compute with times
    in pandas (whose nanoseconds end in 2262) before the loader's check would see them."""
    lo, hi = limits.window()
    series = pd.Series(values)
    bad = (series.notna() & ((series < lo) | (series > hi))).to_numpy()
    if bad.any():
        i = int(bad.argmax())
        line = int(lines[i]) if lines is not None else None
        raise ParseError(outside_message(f"{what} {series.iloc[i]} UTC", limits), line=line)


def check_numbers(values, lines, what: str, lo: float | None = None, hi: float | None = None) -> None:
    """ParseError at the first of ``values`` (floats; NaN passes) that is infinite or outside [lo, hi]."""
    series = pd.Series(values, dtype="float64")
    bad = series.notna() & ~np.isfinite(series)
    if lo is not None:
        bad |= series < lo
    if hi is not None:
        bad |= series > hi
    bad = bad.to_numpy()
    if bad.any():
        i = int(bad.argmax())
        rng = "" if lo is None and hi is None else f" (must be within {lo if lo is not None else '-inf'}..{hi if hi is not None else 'inf'})"
        raise ParseError(f"{what} {series.iloc[i]:g} is not plausible{rng}",
                         line=int(lines[i]) if lines is not None else None)


def whole(values) -> pd.Series:
    """Numbers (text or numbers; what is not a number is NA) as Int64 where every one is a whole number that
    fits 64 bits; else as float64, so that the check at the boundary refuses the file naming the value
    and its line, where ``astype("Int64")`` would raise a bare TypeError."""
    numbers = pd.to_numeric(values, errors="coerce")
    as_float = pd.Series(numbers, dtype="float64") if not isinstance(numbers, pd.Series) else numbers.astype("float64")
    ok = as_float.isna() | (np.isfinite(as_float) & (as_float == np.floor(as_float)) & (as_float.abs() < 2.0**63))
    if not ok.all():
        return as_float
    return numbers.astype("Int64") if numbers.dtype.kind in "iu" or numbers.dtype == "Int64" else as_float.astype("Int64")


def finite_or_none(value: float | None) -> bool:
    """True for None or a finite float (Python-side checks of single values)."""
    return value is None or (isinstance(value, (int, float)) and math.isfinite(value))
