"""Emissions of runs and spans (the views run_emissions[_total] / span_emissions[_total]) with optional
overrides of zone, constant intensity and PUE for every run. Energy in kWh, emissions in gCO2eq."""

from __future__ import annotations

import duckdb
from dlwh._lazy import pandas as pd

from dlwh.carbon.settings import check_intensity, check_pue, normalise_zone
from dlwh.warehouse.query import run_sql


def _overrides(zone: str | None, intensity_g_per_kwh: float | None, pue: float | None) -> list:
    return [normalise_zone(zone) if zone else None,
            check_intensity(float(intensity_g_per_kwh)) if intensity_g_per_kwh is not None else None,
            check_pue(float(pue)) if pue is not None else None]


def run_emissions(con: duckdb.DuckDBPyConnection, *, zone: str | None = None,
                  intensity_g_per_kwh: float | None = None, pue: float | None = None,
                  run_id: str | None = None, per_sensor: bool = False) -> pd.DataFrame:
    """Per run (or per run and power series with ``per_sensor``): energy_kwh, facility_energy_kwh,
    emissions_g, avg_intensity_g_per_kwh and intensity_source. Overrides apply to every run."""
    macro = "run_emissions_with" if per_sensor else "run_emissions_total_with"
    sql = f"SELECT * FROM {macro}(?, ?, ?)" + (" WHERE run_id = ?" if run_id else "") + " ORDER BY run_id"
    params = _overrides(zone, intensity_g_per_kwh, pue) + ([run_id] if run_id else [])
    return run_sql(con, sql, params)


def span_emissions(con: duckdb.DuckDBPyConnection, *, zone: str | None = None,
                   intensity_g_per_kwh: float | None = None, pue: float | None = None,
                   run_id: str | None = None, kind: str | None = None, per_sensor: bool = False) -> pd.DataFrame:
    """Per span (or per span and power series): as run_emissions, filtered by run and span kind (epoch, step...)."""
    macro = "span_emissions_with" if per_sensor else "span_emissions_total_with"
    where, params = [], _overrides(zone, intensity_g_per_kwh, pue)
    if run_id:
        where.append("run_id = ?")
        params.append(run_id)
    if kind:
        where.append("kind = ?")
        params.append(kind)
    sql = (f"SELECT * FROM {macro}(?, ?, ?)" + (" WHERE " + " AND ".join(where) if where else "")
           + " ORDER BY run_id, start_ts, span_id")
    return run_sql(con, sql, params)
