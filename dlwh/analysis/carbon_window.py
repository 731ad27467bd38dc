"""`dlwh simulate --carbon ZONE`: when, within a window, the simulated training would emit least."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb

from dlwh.analysis.simulate import Simulation
from dlwh.errors import UsageError


def parse_window_time(text: str, name: str) -> datetime:
    """An ISO 8601 time (naive = UTC) → naive UTC; a clear UsageError otherwise (dlwh.timeparse)."""
    from dlwh.timeparse import parse_time_option

    return parse_time_option(text, name, example="2026-11-22T00:00")


def schedule_for_simulation(con: duckdb.DuckDBPyConnection, sim: Simulation, zone: str, window_start: datetime,
                            window_end: datetime, step_h: float = 1.0, limit_w: float | None = None):
    """Best start for the run the simulation recommends (least energy limit, or ``limit_w``).

    The job spends the whole budget (J) over epochs_in_budget × time_per_epoch_s at that limit.
    Returns (limit_w, dlwh.carbon.schedule.Schedule).
    """
    from dlwh.carbon.schedule import best_window

    table = sim.table.set_index("power_limit_w")
    limit = sim.best_energy_limit_w if limit_w is None else float(limit_w)
    if limit not in table.index:
        raise UsageError(f"{limit:g} W is not among the simulated limits ({', '.join(f'{v:g}' for v in table.index)})")
    row = table.loc[limit]
    duration_s = float(row["epochs_in_budget"] * row["time_per_epoch_s"])
    energy_kwh = sim.budget_j / 3.6e6
    schedule = best_window(con, zone, energy_kwh, duration_s, window_start, window_end,
                           timedelta(hours=step_h), pue=sim.pue)
    return limit, schedule
