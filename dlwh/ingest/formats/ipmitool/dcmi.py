"""ipmitool dcmi power reading (one reading or a log of them) → one node sensor, power in W.

Layouts, recognised by content:
- ipmitool ≤ 1.8.17: unindented ``Label:   value`` lines, the IPMI timestamp in ctime form
  (``Mon Aug  1 21:22:51 2016``);
- 1.8.18: the same lines indented by four spaces, a blank line before and after each reading;
- 1.8.19 and later: indented, the timestamp as ``%x %X %Z`` (``10/12/23 13:29:17 CEST``; locale
  dependent, e.g. ``03/06/2025 07:40:35 PM UTC``; slashes are read month/day/year as in the C and
  US locales unless a first number above 12 shows day/month/year; dots are day.month.year) and, through an ipmitool bug, ``Sampling period:``
  on the same line as the timestamp;
- dlwh's collector (ipmi.log, docs/run-format.md): each poll preceded by a line
  ``# timestamp_utc: 2026-11-21T10:15:00.123456Z``.

Per activated reading the sensor ``dcmi`` (kind ``node``, tool ``ipmitool``) gets ``power``
(the instantaneous reading) and ``power_min``, ``power_max``, ``power_avg_period`` (W) over the
BMC's sampling period (their duration_s, when the BMC states one). A reading whose state is
``deactivated`` yields no samples: the BMC is not measuring and its numbers are stale or zero.

The time of a reading is, of those that exist:
1. the collector's ``# timestamp_utc:`` line before it (UTC; it wins over the IPMI timestamp);
2. the IPMI timestamp. ipmitool prints the BMC's clock converted to the local time of the host
   that ran ipmitool, so it is read in ctx.tz (run.json's zone, --tz, or this machine's zone; a
   note says which) unless it names UTC/GMT. A zone abbreviation that does not match ctx.tz is
   reported as a warning. Timestamps before 2000 (a BMC whose clock was never set prints
   ``Thu Jan  1 00:00:00 1970``) and ``Unspecified`` are unusable;
3. ctx.start_utc + index x interval, the interval from the format option ``interval_s`` or the
   manifest's ``sources`` entry for ipmi (``interval_ms``); a file with a single reading takes
   ctx.start_utc itself.
Otherwise the file is refused with a message saying how to anchor it.
"""

from __future__ import annotations

import re
from datetime import timedelta, timezone
from pathlib import Path

import numpy as np
from dlwh._lazy import pandas as pd

from dlwh.errors import ParseError
from dlwh.ingest.timeutil import local_to_utc
from dlwh.ingest.formats.ipmitool._common import (
    COLLECTOR_TS_RE,
    IPMITOOL_ERROR_RE,
    collector_times,
    manifest_interval_s,
    text_lines,
)
from dlwh.ingest.lines import noise_warning
from dlwh.ingest.trace import IngestContext, Trace

NAME = "ipmitool-dcmi"
DESCRIPTION = "ipmitool dcmi power reading, one reading or a log of them: node power"
EXTENSIONS = (".txt", ".log")
SENSOR_KEY = "dcmi"

_SNIFF = re.compile(r"^[ \t]*Instantaneous power reading[ \t]*:[ \t]*\d+[ \t]*Watts", re.MULTILINE)

# field label -> metric (all W)
_WATTS_FIELDS = {
    "Instantaneous power reading": "power",
    "Minimum during sampling period": "power_min",
    "Maximum during sampling period": "power_max",
    "Average power reading over sample period": "power_avg_period",
}
_WATTS_RE = (r"^\s*(?P<field>" + "|".join(_WATTS_FIELDS) + r")\s*:\s*(?P<watts>.*?)\s*$")
_TS_RE = r"^\s*IPMI timestamp\s*:\s*(?P<ipmi_ts>.*?)\s*(?:Sampling period\s*:.*)?$"
_SP_RE = r"(?:^|\s)Sampling period\s*:\s*(?P<sp>.*?)\s*$"       # case-sensitive: not '... sampling period'
_STATE_RE = r"^\s*Power reading state is\s*:?\s*(?P<state>.*?)\s*$"

_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_UTC_ZONES = {"UTC", "GMT", "Z", "UCT", "UT"}


def sniff(head: str, path: Path) -> bool:
    """An ``Instantaneous power reading: N Watts`` line (any indentation)."""
    return bool(_SNIFF.search(head))


def _ends_a_reading(line: str) -> bool:
    """A last line without its newline is complete when it is the state line that ends a reading (any
    other last line belongs to a reading the recording stopped inside)."""
    found = re.match(_STATE_RE, line)
    return bool(found) and found.group("state").lower() in ("activated", "deactivated", "active", "inactive")


def parse(ctx: IngestContext) -> Trace:
    """Readings → samples of the sensor ``dcmi``; see the module docstring for times."""
    warnings: list[str] = []
    lines = text_lines(ctx, _ends_a_reading, warnings)
    line_no = pd.Series(np.arange(1, len(lines) + 1), index=lines.index)
    watts = lines.str.extract(_WATTS_RE)
    ipmi_ts = lines.str.extract(_TS_RE)["ipmi_ts"]
    sp = lines.str.extract(_SP_RE)["sp"]
    state = lines.str.extract(_STATE_RE)["state"]
    cts = lines.str.extract(COLLECTOR_TS_RE)["cts"]

    known = watts["field"].notna() | ipmi_ts.notna() | sp.notna() | state.notna() | cts.notna()
    blank = lines.str.strip().eq("") | lines.str.lstrip().str.startswith("#")
    other = ~known & ~blank
    errors = other & lines[other].str.contains(IPMITOOL_ERROR_RE).reindex(lines.index, fill_value=False)
    garbage = other & ~errors
    if garbage.any():
        first = garbage.idxmax()
        raise ParseError(f"not part of ipmitool dcmi power reading output: {lines[first].strip()[:80]!r}",
                         line=int(line_no[first]))

    is_instant = watts["field"].eq("Instantaneous power reading")
    reading = is_instant.cumsum()
    data = watts["field"].notna() | ipmi_ts.notna() | sp.notna() | state.notna()
    orphan = data & reading.eq(0)
    if orphan.any():
        first = orphan.idxmax()
        raise ParseError("reading field before any 'Instantaneous power reading' line", line=int(line_no[first]))

    values = pd.to_numeric(watts["watts"].str.replace(r"\s*Watts$", "", regex=True), errors="coerce")
    bad = watts["field"].notna() & values.isna()
    if bad.any():
        first = bad.idxmax()
        raise ParseError(f"'{watts['watts'][first]}' is not a number of Watts", line=int(line_no[first]))

    starts = line_no[is_instant].to_numpy()
    n = len(starts)
    if n == 0:
        raise ParseError("no 'Instantaneous power reading' line: nothing to load")
    ids = np.arange(1, n + 1)
    frame = pd.DataFrame({"reading": reading, "state": state, "ipmi_ts": ipmi_ts, "sp": sp})
    per = frame[frame["reading"] > 0].groupby("reading")[["state", "ipmi_ts", "sp"]].first().reindex(ids)
    per["line"] = starts

    missing_state = per["state"].isna()
    if missing_state.iloc[:-1].any():
        raise ParseError("reading has no 'Power reading state is' line",
                         line=int(per.loc[missing_state.idxmax(), "line"]))
    if missing_state.iloc[-1]:  # the recording stopped inside its last reading: that reading is left out
        if n == 1:
            raise ParseError("the only reading is incomplete (no 'Power reading state is' line; file truncated?)",
                             line=int(starts[-1]))
        warnings[:] = [f"the last reading (from line {int(starts[-1])}) is incomplete "
                       "(the recording stopped mid-reading?): skipped"]
        n, starts, ids = n - 1, starts[:-1], ids[:-1]
        per = per.iloc[:-1]
    state_word = per["state"].str.lower()
    unknown = ~state_word.isin(["activated", "deactivated", "active", "inactive"])
    if unknown.any():
        raise ParseError(f"unknown power reading state {per.loc[unknown.idxmax(), 'state']!r}",
                         line=int(per.loc[unknown.idxmax(), "line"]))
    active = state_word.isin(["activated", "active"])

    # collector time lines apply to the reading that follows them; the last one before it wins
    next_reading = reading + 1
    ct_rows = cts.notna()
    ctimes = collector_times(cts[ct_rows], line_no[ct_rows])
    by_reading = pd.Series(ctimes.to_numpy(), index=next_reading[ct_rows].to_numpy())
    by_reading = by_reading[~by_reading.index.duplicated(keep="last")]
    per["t_collector"] = by_reading.reindex(ids).to_numpy()

    notes: list[str] = []
    per["t_ipmi"] = _ipmi_times(per, ctx, notes, warnings)
    per["duration_s"] = _sampling_period_s(per["sp"], per["line"])

    ts = per["t_collector"].fillna(per["t_ipmi"])
    missing = ts.isna() & active           # deactivated readings load nothing and need no time
    if missing.any():
        interval = manifest_interval_s(ctx, "ipmi")
        if ctx.start_utc is None or (interval is None and n > 1):
            where = int(per.loc[missing.idxmax(), "line"])
            raise ParseError(
                "reading has no time: no '# timestamp_utc:' line before it and no usable IPMI timestamp; "
                "keep the file next to its run.json, pass --start (a single reading), or record with "
                "`dlwh collect`, which writes a time line before each poll", line=where)
        offsets = pd.to_timedelta((ids - 1) * (interval or 0.0), unit="s")
        ts = ts.where(~missing, pd.Timestamp(ctx.start_utc) + offsets)
        notes.append(f"{int(missing.sum())} readings timed from the start ({ctx.start_source})"
                     + (f" every {interval:g} s" if n > 1 else ""))
    if per["t_collector"].notna().any():
        notes.append("times from the '# timestamp_utc:' lines")
    per["ts"] = ts
    skipped = int((~active).sum())
    if skipped:
        notes.append(f"{skipped} deactivated readings skipped")
    if errors.any():
        warnings.append(noise_warning(int(errors.sum()), int(line_no[errors.idxmax()]), "ipmitool error"))

    # samples: one row per (activated reading, Watts field)
    rows = pd.DataFrame({"reading": reading, "field": watts["field"], "value": values})
    rows = rows[rows["field"].notna() & rows["reading"].le(n)].drop_duplicates(["reading", "field"], keep="first")
    rows = rows[active.reindex(rows["reading"]).to_numpy()]
    rows = rows.join(per[["ts", "duration_s"]], on="reading")
    metric = rows["field"].map(_WATTS_FIELDS)
    samples = pd.DataFrame({
        "sensor_key": SENSOR_KEY,
        "ts": pd.to_datetime(rows["ts"]).astype("datetime64[us]"),
        "metric": metric,
        "unit": "W",
        "value": rows["value"].astype(float),
        "duration_s": rows["duration_s"].where(metric != "power"),
    })
    sensors = pd.DataFrame([{"sensor_key": SENSOR_KEY, "kind": "node", "name": "DCMI power reading",
                             "device_index": None, "device_uuid": None, "device_name": None, "tool": "ipmitool"}])
    return Trace(format=NAME, sensors=sensors, samples=samples, notes=notes, warnings=warnings)


def _sampling_period_s(sp: pd.Series, lines: pd.Series) -> pd.Series:
    """'00699043 Seconds.' / '1000 Milliseconds' / '5_sec' / '1_min' → seconds (NaN where 0 or absent)."""
    parts = sp.str.extract(r"^(?P<n>\d+)\s*(?P<u>Seconds?|Milliseconds?|_sec|_min|_hour)\b", flags=re.IGNORECASE)
    scale = parts["u"].str.lower().map({"seconds": 1.0, "second": 1.0, "_sec": 1.0, "milliseconds": 1e-3,
                                         "millisecond": 1e-3, "_min": 60.0, "_hour": 3600.0})
    seconds = pd.to_numeric(parts["n"], errors="coerce") * scale
    bad = sp.notna() & sp.str.strip().ne("") & seconds.isna()
    if bad.any():
        raise ParseError(f"sampling period {sp[bad.idxmax()]!r} is not understood", line=int(lines[bad.idxmax()]))
    return seconds.where(seconds > 0)


def _ipmi_times(per: pd.DataFrame, ctx: IngestContext, notes: list[str], warnings: list[str]) -> pd.Series:
    """IPMI timestamps → naive UTC (NaT where absent or unusable); see the module docstring."""
    text = per["ipmi_ts"].fillna("").str.replace(r"\s+", " ", regex=True).str.strip()
    zone_re = r"(?: (?P<zone>[A-Za-z][A-Za-z0-9+:\-]*))?$"
    ctime = text.str.extract(r"^[A-Z][a-z]{2} (?P<mon>[A-Z][a-z]{2}) (?P<day>\d{1,2}) (?P<H>\d{1,2}):(?P<M>\d{2}):(?P<S>\d{2}) "
                             r"(?P<year>\d{4})" + zone_re)
    numeric = text.str.extract(r"^(?P<a>\d{1,2})(?P<sep>[/.])(?P<b>\d{1,2})[/.](?P<year>\d{2,4}) "
                               r"(?P<H>\d{1,2}):(?P<M>\d{2}):(?P<S>\d{2})(?: ?(?P<ampm>[AaPp][Mm]))?" + zone_re)
    iso = text.str.extract(r"^(?P<year>\d{4})-(?P<mon>\d{2})-(?P<day>\d{2})[ T](?P<H>\d{2}):(?P<M>\d{2}):(?P<S>\d{2})" + zone_re)

    # %x is month/day/year in the C and US locales, day/month/year in some others (en_GB), day.month.year
    # with dots: slashes are read month/day unless a first number above 12 shows the file is day/month
    first_num = pd.to_numeric(numeric["a"], errors="coerce")
    second_num = pd.to_numeric(numeric["b"], errors="coerce")
    slash = numeric["sep"].eq("/")
    day_first = bool((first_num[slash] > 12).any() and not (second_num[slash] > 12).any())
    us = slash & (not day_first)
    year = pd.to_numeric(ctime["year"].fillna(numeric["year"]).fillna(iso["year"]), errors="coerce")
    year = year.where(year >= 100, year + 2000)
    month = (ctime["mon"].map(_MONTHS).astype(float)
             .fillna(pd.to_numeric(numeric["a"].where(us, numeric["b"]), errors="coerce"))
             .fillna(pd.to_numeric(iso["mon"], errors="coerce")))
    day = (pd.to_numeric(ctime["day"], errors="coerce")
           .fillna(pd.to_numeric(numeric["b"].where(us, numeric["a"]), errors="coerce"))
           .fillna(pd.to_numeric(iso["day"], errors="coerce")))
    hour = pd.to_numeric(ctime["H"].fillna(numeric["H"]).fillna(iso["H"]), errors="coerce")
    ampm = numeric["ampm"].str.upper()
    hour = hour.where(ampm.isna(), hour % 12 + ampm.eq("PM").astype(int) * 12)
    minute = pd.to_numeric(ctime["M"].fillna(numeric["M"]).fillna(iso["M"]), errors="coerce")
    second = pd.to_numeric(ctime["S"].fillna(numeric["S"]).fillna(iso["S"]), errors="coerce")
    zone = ctime["zone"].fillna(numeric["zone"]).fillna(iso["zone"])

    local = pd.to_datetime(pd.DataFrame({"year": year, "month": month, "day": day, "hour": hour,
                                         "minute": minute, "second": second}), errors="coerce")
    present = text.ne("")
    unreadable = present & local.isna() & ~text.str.lower().isin(["unspecified", "unknown"])
    if unreadable.any():
        first = unreadable.idxmax()
        warnings.append(f"IPMI timestamp {per.loc[first, 'ipmi_ts']!r} (line {int(per.loc[first, 'line'])}) "
                        "is not a time format dlwh knows; such readings are timed otherwise")
    unset = local.notna() & (local.dt.year < 2000)
    needed = per["t_collector"].isna()
    if (unset & needed).any():
        notes.append(f"{int((unset & needed).sum())} IPMI timestamps before 2000 (BMC clock not set) ignored")
    local = local.where(~unset)
    is_utc = zone.str.upper().isin(_UTC_ZONES)
    out = pd.Series(pd.NaT, index=per.index, dtype="datetime64[ns]")
    out[is_utc] = local[is_utc]
    in_zone = local.notna() & ~is_utc
    if in_zone.any():
        out[in_zone] = local_to_utc(local[in_zone], ctx.tz)
        if (in_zone & needed).any():
            notes.append(f"IPMI timestamps read as local time in {ctx.tz_name} ({ctx.tz_source})")
            _check_zone_names(local[in_zone & needed], zone[in_zone & needed], ctx, warnings)
    return out


def _check_zone_names(local: pd.Series, zone: pd.Series, ctx: IngestContext, warnings: list[str]) -> None:
    """Warn where ipmitool's zone abbreviation (e.g. CEST) is not what ctx.tz calls that moment."""
    named = zone.notna()
    if not named.any():
        return
    firsts = pd.DataFrame({"local": local[named], "zone": zone[named]}).drop_duplicates("zone")
    for when, abbrev in zip(firsts["local"], firsts["zone"]):   # one check per distinct abbreviation
        expected = when.to_pydatetime().replace(tzinfo=ctx.tz).tzname()
        offset = when.to_pydatetime().replace(tzinfo=ctx.tz).utcoffset() or timedelta(0)
        if expected and expected.upper() != abbrev.upper() and not _same_offset(abbrev, offset):
            warnings.append(f"IPMI timestamps say {abbrev} but were read in {ctx.tz_name} ({expected}); "
                            "pass --tz with the zone of the host that ran ipmitool if that is wrong")


def _same_offset(abbrev: str, offset: timedelta) -> bool:
    """True for numeric abbreviations such as '+01' or '+0100' equal to ``offset``."""
    match = re.fullmatch(r"([+-])(\d{2}):?(\d{2})?", abbrev)
    if not match:
        return False
    sign = 1 if match.group(1) == "+" else -1
    return timezone(sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3) or 0))).utcoffset(None) == offset
