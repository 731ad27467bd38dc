"""When, within a window, would a job of known energy and length emit least? (carbon-aware scheduling)

The job draws constant power (energy_kwh / duration_s) from its start. For each candidate start
(every ``step`` from ``window_start`` while the job ends by ``window_end``) its emissions are
energy_kwh x pue x the time-average intensity over [start, start + duration], from the zone's values in
the warehouse (history or forecast, carbon_intensity_periods). Where the warehouse has no value for a
moment, the mean of the zone's values at the same UTC hour of day stands in ('hourly profile'), and
failing that the shipped yearly average; the coverage column says how much of each candidate rested
on real values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import duckdb
import numpy as np
from dlwh._lazy import pandas as pd

from dlwh.carbon.intensity import resolve_pue, yearly_average
from dlwh.carbon.settings import check_pue, normalise_zone
from dlwh.errors import DlwhError, UsageError

MAX_CANDIDATES = 100_000


@dataclass
class Schedule:
    """Candidates (start_ts, end_ts, avg_intensity_g_per_kwh, emissions_g, coverage_pct, is_best) and the best one."""

    zone: str
    energy_kwh: float
    duration_s: float
    pue: float
    candidates: pd.DataFrame
    best: dict
    worst: dict
    basis: str

    @property
    def saving_g(self) -> float:
        """gCO2eq saved by the best start compared with the worst."""
        return float(self.worst["emissions_g"] - self.best["emissions_g"])


def _utc(t: datetime) -> datetime:
    return t.astimezone(timezone.utc).replace(tzinfo=None) if t.tzinfo else t


def best_window(con: duckdb.DuckDBPyConnection, zone: str, energy_kwh: float, duration_s: float,
                window_start: datetime, window_end: datetime, step: timedelta | float = 3600.0,
                pue: float | None = None) -> Schedule:
    """Emissions of the job for every start in the window, and the start that emits least.

    ``step`` is a timedelta or seconds. Times naive = UTC. ``pue`` None uses resolve_pue (setting or 1.0).
    Raises UsageError for impossible arguments and DlwhError when the zone has no intensity at all.
    """
    zone = normalise_zone(zone)
    lo, hi = _utc(window_start), _utc(window_end)
    step_s = step.total_seconds() if isinstance(step, timedelta) else float(step)
    if not energy_kwh > 0:
        raise UsageError(f"energy {energy_kwh} kWh must be positive")
    if not duration_s > 0:
        raise UsageError(f"duration {duration_s} s must be positive")
    if not step_s > 0:
        raise UsageError("the step between candidate starts must be positive")
    if hi - lo < timedelta(seconds=duration_s):
        raise UsageError(f"the window {lo:%Y-%m-%d %H:%M}..{hi:%Y-%m-%d %H:%M} UTC is shorter than the job "
                         f"({duration_s / 3600:.2f} h); widen it")
    n = int(((hi - lo).total_seconds() - duration_s) // step_s) + 1
    if n > MAX_CANDIDATES:
        raise UsageError(f"{n} candidate starts; use a larger step")
    factor = check_pue(pue) if pue is not None else resolve_pue(con)[0]
    periods = con.execute(
        "SELECT valid_from, valid_to, intensity_g_per_kwh, is_forecast FROM carbon_intensity_periods "
        "WHERE zone = ? ORDER BY valid_from", [zone]).df()
    yearly = yearly_average(zone, lo.year)
    if periods.empty and yearly is None:
        raise DlwhError(f"no carbon intensity for zone {zone} in the warehouse and no yearly average; "
                        f"run 'dlwh carbon fetch --zone {zone}' (with --forecast for future windows)")
    profile = (periods.groupby(periods["valid_from"].dt.hour)["intensity_g_per_kwh"].mean()
               if len(periods) else pd.Series(dtype=float))
    # piecewise-constant intensity on a grid of change points: period edges, hour edges, window edges
    edges = {lo, hi}
    edges.update(t for t in periods["valid_from"] if lo < t < hi)
    edges.update(t for t in periods["valid_to"] if lo < t < hi)
    hour = (pd.Timestamp(lo).floor("h") + pd.Timedelta(hours=1))
    edges.update(pd.date_range(hour, hi, freq="h", inclusive="left").to_pydatetime())
    grid = pd.DatetimeIndex(sorted(pd.Timestamp(e) for e in edges)).astype("datetime64[us]")
    left = pd.DataFrame({"t": grid[:-1]})
    measured = pd.merge_asof(left, periods.rename(columns={"valid_from": "t"}).astype({"t": "datetime64[us]"}),
                             on="t", direction="backward") if len(periods) else left.assign(
        valid_to=pd.NaT, intensity_g_per_kwh=np.nan)
    in_force = measured["valid_to"].notna() & (measured["t"] < measured["valid_to"])
    value = measured["intensity_g_per_kwh"].where(in_force)
    covered = in_force.to_numpy()
    fill = left["t"].dt.hour.map(profile) if len(profile) else pd.Series(np.nan, index=left.index)
    value = value.fillna(fill)
    if yearly is not None:
        value = value.fillna(yearly[0])
    if value.isna().any():
        raise DlwhError(f"zone {zone} has intensity values for too few hours to cover the window; fetch more")
    seconds = np.diff(grid.asi8) / 1e6
    cum = np.concatenate([[0.0], np.cumsum(value.to_numpy() * seconds)])   # ∫ intensity dt
    cum_cov = np.concatenate([[0.0], np.cumsum(covered * seconds)])
    t_grid = (grid.asi8 - grid.asi8[0]) / 1e6
    starts = pd.date_range(lo, periods=n, freq=pd.Timedelta(seconds=step_s)).astype("datetime64[us]")
    s0 = (starts.asi8 - grid.asi8[0]) / 1e6
    s1 = s0 + duration_s
    integral = np.interp(s1, t_grid, cum) - np.interp(s0, t_grid, cum)
    coverage = (np.interp(s1, t_grid, cum_cov) - np.interp(s0, t_grid, cum_cov)) / duration_s
    avg = integral / duration_s
    table = pd.DataFrame({
        "start_ts": starts, "end_ts": starts + pd.Timedelta(seconds=duration_s),
        "avg_intensity_g_per_kwh": avg, "emissions_g": energy_kwh * factor * avg,
        "coverage_pct": 100 * coverage,
    })
    table["is_best"] = False
    best_i = int(table["emissions_g"].idxmin())
    table.loc[best_i, "is_best"] = True
    worst_i = int(table["emissions_g"].idxmax())
    basis = ("warehouse values" if coverage.min() > 0.999 else
             "warehouse values, gaps filled with the zone's hourly profile" if len(periods) else
             f"the yearly average only ({yearly[1]}); every start is equal")
    return Schedule(zone, float(energy_kwh), float(duration_s), factor, table,
                    table.loc[best_i].to_dict(), table.loc[worst_i].to_dict(), basis)
