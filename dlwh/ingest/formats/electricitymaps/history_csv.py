"""Electricity Maps CSV exports (data portal: hourly, daily, monthly, yearly files) → carbon_intensity.

Both header generations are read: ``Carbon Intensity gCO₂eq/kWh (LCA)`` / ``Zone Id`` / ``Data Estimated``
(older) and ``Carbon intensity gCO₂eq/kWh (Life cycle)`` / ``Zone id`` (newer). The life-cycle value is
stored when present (as the API's default), else the direct one. Times are UTC. A row holds until the
next row of its zone; the last row for as long as the file's usual spacing (or its calendar period:
a year for Jan 1 stamps, a month for 1st-of-month, a day for midnight, else an hour).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

from dlwh._lazy import pandas as pd

from dlwh.ingest.csvread import read_csv_strict
from dlwh.errors import ParseError
from dlwh.ingest.trace import IngestContext, Trace

NAME = "electricitymaps-csv"
DESCRIPTION = "Electricity Maps data-portal CSV exports (hourly, daily, monthly, yearly)"
EXTENSIONS = (".csv",)
SOURCE = "electricitymaps-csv"
_HEADER = re.compile(r"^\ufeff?\"?Datetime \(UTC\)\"?,.*carbon intensity", re.IGNORECASE)


def _norm(name: str) -> str:
    return re.sub(r"\s+", " ", name.strip().lower().replace("₂", "2"))


def sniff(head: str, path: Path) -> bool:
    """The header starts with 'Datetime (UTC)' and names a carbon intensity column."""
    return bool(_HEADER.match(head.split("\n", 1)[0]))


def _pick(columns: dict[str, str], *candidates: str) -> str | None:
    for c in candidates:
        if c in columns:
            return columns[c]
    return None


def parse(ctx: IngestContext) -> Trace:
    """Read with DuckDB's CSV reader (all text), convert vectorised, check every row."""
    cut: list[str] = []
    frame = read_csv_strict(ctx.con, ctx.path, "Electricity Maps CSV", cut, ctx.data)
    if frame.empty:
        raise ParseError("no rows after the header", line=2)
    columns = {_norm(c): c for c in frame.columns}
    ts_col = _pick(columns, "datetime (utc)")
    zone_col = _pick(columns, "zone id", "zone_id")
    lca = _pick(columns, "carbon intensity gco2eq/kwh (lca)", "carbon intensity gco2eq/kwh (life cycle)")
    direct = _pick(columns, "carbon intensity gco2eq/kwh (direct)")
    value_col, factor = (lca, "lifecycle") if lca else (direct, "direct")
    if not ts_col or not zone_col or not value_col:
        raise ParseError("header lacks Datetime (UTC), Zone Id or a Carbon Intensity gCO₂eq/kWh column")
    lines = pd.RangeIndex(2, len(frame) + 2)
    ts = pd.to_datetime(frame[ts_col].str.strip(), format="ISO8601", errors="coerce", utc=True)
    bad = ts.isna().to_numpy()
    if bad.any():
        i = int(bad.argmax())
        raise ParseError(f"time {frame[ts_col].iloc[i]!r} is not a date and time", line=int(lines[i]))
    ts = ts.dt.tz_localize(None).astype("datetime64[us]")
    text = frame[value_col].fillna("").str.strip()
    value = pd.to_numeric(text, errors="coerce")
    bad = (value.isna() & (text != "")).to_numpy()
    if bad.any():
        i = int(bad.argmax())
        raise ParseError(f"carbon intensity {text.iloc[i]!r} is not a number", line=int(lines[i]))
    out_of_range = ((value < 0) | (value > 5000)).to_numpy()
    if out_of_range.any():
        i = int(out_of_range.argmax())
        raise ParseError(f"carbon intensity {value.iloc[i]:g} gCO2eq/kWh is out of range", line=int(lines[i]))
    zone = frame[zone_col].fillna("").str.strip().str.upper()
    if (zone == "").any():
        i = int((zone == "").to_numpy().argmax())
        raise ParseError("row without a Zone Id", line=int(lines[i]))
    est_col = _pick(columns, "data estimated")
    method_col = _pick(columns, "data estimation method")
    estimated = (frame[est_col].fillna("").str.strip().str.lower().map({"true": True, "false": False})
                 if est_col else pd.Series(pd.NA, index=frame.index)).astype("boolean")
    out = pd.DataFrame({
        "zone": zone, "ts": ts, "intensity_g_per_kwh": value,
        "emission_factor_type": factor,
        "is_estimated": estimated,
        "estimation_method": frame[method_col].str.strip().replace("", None) if method_col else None,
        "is_forecast": False, "source": SOURCE,
        "fetched_at": datetime.now(timezone.utc).replace(tzinfo=None),
    })
    skipped = int(out["intensity_g_per_kwh"].isna().sum())
    out = out[out["intensity_g_per_kwh"].notna()].sort_values(["zone", "ts"], kind="stable").reset_index(drop=True)
    if out.empty:
        raise ParseError("no carbon intensity values (the intensity column is empty in every row)")
    if out.duplicated(["zone", "ts"]).any():
        raise ParseError(f"time {out.loc[out.duplicated(['zone', 'ts']).idxmax(), 'ts']} appears twice for one zone")
    out["period_s"] = _periods(out)
    notes = [f"{len(out)} intensity values ({factor}) for {', '.join(sorted(set(out['zone'])))}, "
             f"{out['ts'].min():%Y-%m-%d %H:%M}..{out['ts'].max():%Y-%m-%d %H:%M} UTC"]
    warnings = [f"{skipped} rows without an intensity value were skipped"] if skipped else []
    warnings += cut
    return Trace(format=NAME, tables={"carbon_intensity": out}, notes=notes, warnings=warnings)


def _periods(out: pd.DataFrame) -> pd.Series:
    """Seconds each row holds: to the next row of its zone; the last row as described in the module doc."""
    nxt = out.groupby("zone")["ts"].shift(-1)
    period = (nxt - out["ts"]).dt.total_seconds()
    usual = period.groupby(out["zone"]).transform("median")
    ts = out["ts"]
    midnight = (ts.dt.hour == 0) & (ts.dt.minute == 0) & (ts.dt.second == 0)
    year_len = pd.Series((ts + pd.DateOffset(years=1) - ts).dt.total_seconds(), index=out.index)
    month_len = pd.Series((ts + pd.DateOffset(months=1) - ts).dt.total_seconds(), index=out.index)
    calendar = pd.Series(3600.0, index=out.index)
    calendar = calendar.mask(midnight, 86400.0)
    calendar = calendar.mask(midnight & (ts.dt.day == 1), month_len)
    calendar = calendar.mask(midnight & (ts.dt.day == 1) & (ts.dt.month == 1), year_len)
    last = period.isna()
    # monthly / yearly files: the calendar period is exact where the usual spacing is about a month or a year
    use_calendar = last & (usual.isna() | (usual > 27 * 86400))
    period = period.mask(last, usual).mask(use_calendar, calendar)
    return period.astype("float64")
