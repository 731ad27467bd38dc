"""Which carbon intensity (gCO2eq/kWh) and PUE hold for a zone at a time, and where they come from.

Convention shared by `dlwh carbon`, `dlwh report` and `dlwh simulate`:
    emissions_g = energy_kwh (IT energy) x pue x intensity_g_per_kwh
Intensity, in order: the constant given; the warehouse's ``carbon_intensity`` value for the zone in
force at ``at`` (as-of: the latest value at or before ``at`` whose period still holds); the shipped yearly
average of the zone, else of its country (``dlwh/carbon/data/yearly_intensity.csv``); the setting
``intensity_g_per_kwh``. PUE, in order: the value given; the run tag ``pue``; the setting ``pue``; 1.0.
"""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from functools import lru_cache
from importlib import resources

import duckdb

from dlwh.carbon.settings import check_intensity, check_pue, get_setting, normalise_zone
from dlwh.errors import DlwhError

DEFAULT_PUE = 1.0
"""Facility overhead when none is given: IT energy only."""

YEARLY_CSV = "yearly_intensity.csv"


@lru_cache(maxsize=1)
def yearly_averages() -> tuple[dict[str, str], ...]:
    """The shipped yearly averages: rows of zone, year, intensity_g_per_kwh, emission_factor_type, source, reference."""
    text = resources.files("dlwh.carbon").joinpath("data", YEARLY_CSV).read_text(encoding="utf-8")
    return tuple(csv.DictReader(text.splitlines()))


def yearly_average(zone: str, year: int | None = None) -> tuple[float, str] | None:
    """The shipped yearly average for ``zone`` (else its country, the part before '-') closest to ``year``.

    Prefers the latest year not after ``year``; returns (gCO2eq/kWh, description) or None.
    """
    zone = normalise_zone(zone)
    country = zone.split("-", 1)[0]
    rows = [r for r in yearly_averages() if r["zone"] in (zone, country)]
    if not rows:
        return None
    target = year if year is not None else max(int(r["year"]) for r in rows)
    best = min(rows, key=lambda r: (r["zone"] != zone, int(r["year"]) > target, abs(int(r["year"]) - target)))
    value = float(best["intensity_g_per_kwh"])
    return value, f"yearly average {best['zone']} {best['year']} ({best['source']})"


def _naive_utc(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(timezone.utc).replace(tzinfo=None)
    if at.tzinfo is not None:
        return at.astimezone(timezone.utc).replace(tzinfo=None)
    return at


def warehouse_intensity(con: duckdb.DuckDBPyConnection, zone: str, at: datetime) -> tuple[float, str] | None:
    """The zone's value in force at ``at`` (naive UTC) from ``carbon_intensity_periods``, or None."""
    row = con.execute(
        "SELECT intensity_g_per_kwh, intensity_source, valid_from FROM carbon_intensity_periods "
        "WHERE zone = ? AND valid_from <= ? AND ? < valid_to ORDER BY valid_from DESC LIMIT 1",
        [zone, at, at]).fetchone()
    if row is None:
        return None
    return float(row[0]), f"{row[1]} {row[2]:%Y-%m-%dT%H:%MZ}"


def resolve_intensity(
    con: duckdb.DuckDBPyConnection,
    zone: str | None,
    intensity_g_per_kwh: float | None,
    at: datetime | None,
) -> tuple[float, str]:
    """Carbon intensity in gCO2eq/kWh for ``zone`` at time ``at`` and a description of its source.

    ``intensity_g_per_kwh`` (a constant) wins when given. ``zone`` None means the setting 'zone'.
    ``at`` None means now; an aware datetime is converted to UTC, a naive one is taken as UTC.
    Raises DlwhError, saying what to do, when nothing applies.
    """
    if intensity_g_per_kwh is not None:
        value = check_intensity(float(intensity_g_per_kwh))
        return value, f"constant {value:g} gCO2eq/kWh (given)"
    when = _naive_utc(at)
    zone_key = normalise_zone(zone) if zone else None
    if zone_key is None:
        stored = get_setting(con, "zone")
        zone_key = normalise_zone(stored) if stored else None
    if zone_key:
        found = warehouse_intensity(con, zone_key, when)
        if found:
            return found
        found = yearly_average(zone_key, when.year)
        if found:
            return found
    constant = get_setting(con, "intensity_g_per_kwh")
    if constant is not None:
        value = float(constant)
        return value, f"constant {value:g} gCO2eq/kWh (setting)"
    if zone_key:
        raise DlwhError(
            f"no carbon intensity for zone {zone_key}: it has no data in the warehouse at {when:%Y-%m-%d %H:%M} UTC "
            "and no shipped yearly average; run 'dlwh carbon fetch --zone "
            f"{zone_key}', ingest an Electricity Maps export, or pass --intensity G")
    raise DlwhError("no zone and no carbon intensity given; pass --zone ZONE (e.g. DE) or --intensity G "
                    "(gCO2eq/kWh), or store one with 'dlwh carbon set zone DE'")


def resolve_pue(con: duckdb.DuckDBPyConnection | None, pue: float | None = None,
                run_id: str | None = None) -> tuple[float, str]:
    """PUE (facility / IT energy) and its source: the value given, the run's 'pue' tag, the setting, 1.0."""
    if pue is not None:
        return check_pue(float(pue)), "given"
    if con is not None and run_id is not None:
        row = con.execute("SELECT value FROM run_tags WHERE run_id = ? AND key = 'pue'", [run_id]).fetchone()
        if row and row[0] is not None:
            try:
                return check_pue(float(row[0])), "run tag"
            except ValueError:
                raise DlwhError(f"run {run_id} has tag pue={row[0]!r}, not a number; retag it") from None
    if con is not None:
        stored = get_setting(con, "pue")
        if stored is not None:
            return check_pue(float(stored)), "setting"
    return DEFAULT_PUE, "default"


def zone_for_run(con: duckdb.DuckDBPyConnection, run_id: str) -> str | None:
    """The run's 'zone' tag, else the setting 'zone', else None."""
    row = con.execute("SELECT value FROM run_tags WHERE run_id = ? AND key = 'zone'", [run_id]).fetchone()
    if row and row[0]:
        return normalise_zone(row[0])
    stored = get_setting(con, "zone")
    return normalise_zone(stored) if stored else None


def emissions_g(energy_kwh: float, intensity_g_per_kwh: float, pue: float = DEFAULT_PUE) -> float:
    """gCO2eq for ``energy_kwh`` of IT energy: energy_kwh x pue x intensity_g_per_kwh."""
    return energy_kwh * pue * intensity_g_per_kwh
