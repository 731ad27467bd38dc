"""ipmitool sdr / sdr elist / sensor output → one sensor per Watts reading, metric ``power`` (W).

Layouts, recognised by their ``|``-separated columns and status column:
- ``ipmitool sdr`` (sdr list):   ``PSU1 Power       | 120 Watts         | ok``
- ``ipmitool sdr elist`` / ``sdr type``: ``PS1 Power In     | 52h | ok  | 10.1 | 132 Watts``
- ``ipmitool sensor``:  ``Pwr Consumption  | 240.000    | Watts      | ok    | na | ... (10 columns)``

Only readings in Watts are stored (temperatures, fans, voltages and discrete ``0x00`` sensors are
counted in a note and left out). Sensor kinds by name: ``psu`` for one supply (``PSU1``, ``PS2 ...``,
``Power Supply 1``), ``cpu`` / ``gpu`` / ``dram`` for CPU, GPU or memory power, ``node`` for the
whole machine (``Total``, ``Consumption``, ``System Level``, ``Avg Power``, ``Power Meter``,
``Sys``, ``Node``, ``Platform``, ``Chassis``, or a bare ``Power``), else ``other``. A name seen twice
in one snapshot becomes ``name #2``.

These outputs carry no time. A snapshot is timed by, of those that exist:
1. a ``# timestamp_utc: <ISO 8601 UTC>`` line before it (as dlwh's collector writes before each
   poll; every such line starts a new snapshot);
2. ctx.start_utc (--start or run.json) for a file holding one snapshot, or start + k x interval for
   snapshots repeated without time lines (the interval from the format option ``interval_s`` or
   run.json's sources[ipmi].interval_ms; a snapshot's length is the period at which the whole list
   of names repeats).
Otherwise the file is refused with a message saying how to anchor it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from dlwh._lazy import pandas as pd

from dlwh.errors import ParseError
import dlwh.ingest.validate as validate
from dlwh.ingest.formats.ipmitool._common import (
    COLLECTOR_TS_RE,
    IPMITOOL_ERROR_RE,
    collector_times,
    is_error_line,
    manifest_interval_s,
    text_lines,
)
from dlwh.ingest.lines import head_lines, mostly_records, noise_warning
from dlwh.ingest.trace import IngestContext, Trace

NAME = "ipmitool-sensors"
DESCRIPTION = "ipmitool sdr / sdr elist / sensor listings: every Watts sensor"
EXTENSIONS = (".txt", ".log")
_STATUS = {"ok", "ns", "nr", "cr", "nc", "lnr", "lcr", "lnc", "unr", "ucr", "unc", "na"}
_NUMBER_UNIT = r"^(?P<v>-?\d+(?:\.\d+)?)\s+(?P<unit>\S.*)$"

# (kind, name pattern), first match wins
_KINDS: tuple[tuple[str, str], ...] = (
    ("psu", r"(?i)\bpsu?\s*\d|\bpws\s*\d|\bpsu\b|power supply"),
    ("cpu", r"(?i)\bcpu"),
    ("gpu", r"(?i)\bgpu"),
    ("dram", r"(?i)\bmem|\bdimm|\bdram"),
    ("node", r"(?i)total|consumption|system|\bsys\b|node|avg power|average power|power meter|pwr meter|"
             r"platform|chassis|^\s*(?:power|pwr)\s*$"),
)


def _row_columns(line: str) -> list[str] | None:
    """The stripped columns of an sdr/elist/sensor row, or None if the line is not one."""
    cols = [c.strip() for c in line.split("|")]
    if not cols[0]:
        return None
    if len(cols) in (3, 5) and cols[2].lower() in _STATUS:
        return cols
    if len(cols) == 10 and cols[3].lower() in _STATUS:
        return cols
    return None


def sniff(head: str, path: Path) -> bool:
    """Most lines are ipmitool sdr / elist / sensor rows, not counting blank lines, comments and
    ipmitool's own error lines between them (the last line may be cut)."""
    return mostly_records(head_lines(head), lambda ln: _row_columns(ln) is not None, is_error_line)


# ipmitool's unit names (lib/ipmi_sdr.c, unit_desc), to tell a reading cut inside its unit
_UNITS = frozenset((
    "unspecified", "degrees C", "degrees F", "degrees K", "Volts", "Amps", "Watts", "Joules", "Coulombs", "VA",
    "Nits", "lumen", "lux", "Candela", "kPa", "PSI", "Newton", "CFM", "RPM", "Hz", "microsecond", "millisecond",
    "second", "minute", "hour", "day", "week", "mil", "inches", "feet", "cu in", "cu feet", "mm", "cm", "m",
    "cu cm", "cu m", "liters", "fluid ounce", "radians", "steradians", "revolutions", "cycles", "gravities",
    "ounce", "pound", "ft-lb", "oz-in", "gauss", "gilberts", "henry", "millihenry", "farad", "microfarad",
    "ohms", "siemens", "mole", "becquerel", "PPM", "reserved", "Decibels", "DbA", "DbC", "gray", "sievert",
    "color temp deg K", "bit", "kilobit", "megabit", "gigabit", "byte", "kilobyte", "megabyte", "gigabyte",
    "word", "dword", "qword", "line", "hit", "miss", "retry", "reset", "overflow", "underrun", "collision",
    "packets", "messages", "characters", "error", "correctable error", "uncorrectable error", "percent",
))


def _complete_row(line: str) -> bool:
    """A last line without its newline is complete when it is a whole row: its columns and status, and
    a reading that is not cut inside its unit ('132 Wat') or before it ('13')."""
    cols = _row_columns(line)
    if cols is None:
        return False
    reading = cols[1] if len(cols) == 3 else cols[4] if len(cols) == 5 else None
    if reading is None:
        return True
    parts = reading.split(None, 1)
    try:
        float(parts[0])
    except (ValueError, IndexError):
        return True  # 'no reading', 'Not Readable', '0x00', 'disabled'
    if len(parts) == 1:
        return False  # '13': cut before its unit
    return parts[1] in _UNITS or not any(unit.startswith(parts[1]) for unit in _UNITS)


def _repeated_snapshots(name: pd.Series, piped: pd.Series) -> tuple[pd.Series, int]:
    """Snapshot number (1..) of each row when the same list of names repeats, and the count.

    The period is the smallest p at which the first name recurs, that divides the rows, and for
    which every name equals the one p rows before; else the file is one snapshot.
    """
    names = name[piped].to_numpy()
    period = len(names)
    for p in np.flatnonzero(names == names[0])[1:]:   # a handful of candidates
        if len(names) % p == 0 and (names[p:] == names[:-p]).all():
            period = int(p)
            break
    snapshot = pd.Series(0, index=name.index)
    snapshot[piped] = np.arange(len(names)) // period + 1
    return snapshot, len(names) // period


def parse(ctx: IngestContext) -> Trace:
    """Watts rows → one sensor per name; see the module docstring for times and kinds."""
    warnings: list[str] = []
    lines = text_lines(ctx, _complete_row, warnings)
    line_no = pd.Series(np.arange(1, len(lines) + 1), index=lines.index)
    ncols = lines.str.count(r"\|") + 1
    cols = lines.str.split("|", expand=True, regex=False)
    cols = cols.apply(lambda c: c.str.strip())
    cts = lines.str.extract(COLLECTOR_TS_RE)["cts"]
    blank = lines.str.strip().eq("") | lines.str.lstrip().str.startswith("#")

    piped = ncols.gt(1) & ~blank
    wrong = piped & ~ncols.isin([3, 5, 10])
    if wrong.any():
        first = wrong.idxmax()
        raise ParseError(f"{int(ncols[first])} columns; ipmitool sdr rows have 3, sdr elist 5, sensor 10",
                         line=int(line_no[first]))
    others = ~piped & ~blank
    errors = others & lines[others].str.contains(IPMITOOL_ERROR_RE).reindex(lines.index, fill_value=False)
    garbage = others & ~errors
    if garbage.any():
        first = garbage.idxmax()
        raise ParseError(f"not an ipmitool sdr/sensor row: {lines[first].strip()[:80]!r}", line=int(line_no[first]))
    if not piped.any():
        raise ParseError("no ipmitool sdr/sensor rows: nothing to load")

    name = cols[0].where(piped)
    reading = cols[1].where(ncols.eq(3))
    if 4 in cols:  # sdr elist: the reading is the fifth column
        reading = reading.fillna(cols[4].where(ncols.eq(5)))
    parts = reading.str.extract(_NUMBER_UNIT)
    value = pd.to_numeric(parts["v"], errors="coerce")
    unit = parts["unit"]
    if 2 in cols:  # sensor layout: value and unit in their own columns ('na' when there is no reading)
        sensor_layout = ncols.eq(10)
        value = value.where(~sensor_layout, pd.to_numeric(cols[1], errors="coerce"))
        unit = unit.where(~sensor_layout, cols[2])
        bad = sensor_layout & cols[2].str.lower().eq("watts") & value.isna() & cols[1].str.lower().ne("na")
        if bad.any():
            first = bad.idxmax()
            raise ParseError(f"sensor value {cols[1][first]!r} is not a number", line=int(line_no[first]))
    is_watts = piped & unit.str.lower().eq("watts")

    # snapshots: each '# timestamp_utc:' line starts one; without any, the first sensor name recurring does
    has_ct = cts.notna()
    notes: list[str] = []
    if has_ct.any():
        snapshot = has_ct.cumsum()
        early = piped & snapshot.eq(0)
        if early.any():
            raise ParseError("sensor rows before the first '# timestamp_utc:' line have no time",
                             line=int(line_no[early.idxmax()]))
        times = collector_times(cts[has_ct], line_no[has_ct])
        snap_ts = pd.Series(times.to_numpy(), index=np.arange(1, int(has_ct.sum()) + 1))
        notes.append("times from the '# timestamp_utc:' lines")
    else:
        snapshot, count = _repeated_snapshots(name, piped)
        interval = manifest_interval_s(ctx, "ipmi")
        if ctx.start_utc is None or (count > 1 and interval is None):
            what = "this snapshot has" if count == 1 else f"these {count} snapshots have"
            raise ParseError(
                f"{what} no time (ipmitool sdr/sensor print none): pass --start with the time it was taken, "
                "keep the file next to its run.json, or record with `dlwh collect`, which writes a "
                "'# timestamp_utc:' line before each poll")
        snap_ts = pd.Series(pd.Timestamp(ctx.start_utc) + pd.to_timedelta(np.arange(count) * (interval or 0.0), unit="s"),
                            index=np.arange(1, count + 1))
        notes.append(f"snapshot time from the start ({ctx.start_source})"
                     + (f", one every {interval:g} s" if count > 1 else ""))

    rows = pd.DataFrame({"snapshot": snapshot, "name": name, "value": value})[is_watts]
    occurrence = rows.groupby(["snapshot", "name"]).cumcount()
    rows["key"] = rows["name"].where(occurrence.eq(0), rows["name"] + " #" + (occurrence + 1).astype(str))
    skipped = int((piped & ~is_watts).sum())
    if skipped:
        notes.append(f"{skipped} rows not in Watts (temperatures, fans, voltages, discrete) not stored")
    if errors.any():
        warnings.append(noise_warning(int(errors.sum()), int(line_no[errors.idxmax()]), "ipmitool error"))
    if rows.empty:
        return Trace(format=NAME, notes=notes, warnings=warnings)

    samples = pd.DataFrame({
        "sensor_key": rows["key"],
        "ts": snap_ts.reindex(rows["snapshot"]).to_numpy().astype("datetime64[us]"),
        "metric": "power",
        "unit": "W",
        "value": rows["value"].astype(float),
        "duration_s": np.nan,
    })
    keys = pd.Series(rows["key"].unique())
    kind = pd.Series("other", index=keys.index)
    for label, pattern in reversed(_KINDS):       # reversed: the first pattern in _KINDS wins
        kind = kind.mask(keys.str.contains(pattern, regex=True), label)
    index = keys.str.extract(r"(\d+)", expand=False)
    sensors = pd.DataFrame({
        "sensor_key": keys, "kind": kind, "name": keys,
        "device_index": validate.whole(index.where(kind.eq("psu"))),
        "device_uuid": None, "device_name": None, "tool": "ipmitool",
    })
    return Trace(format=NAME, sensors=sensors, samples=samples, notes=notes, warnings=warnings)
