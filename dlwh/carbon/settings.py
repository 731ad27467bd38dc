"""Warehouse-wide carbon settings (the ``settings`` table): pue, zone, intensity_g_per_kwh, intensity_max_age_h."""

from __future__ import annotations

from datetime import datetime, timezone

import duckdb

from dlwh.errors import UsageError
from dlwh.ingest.formats.electricitymaps._common import normalise_zone  # noqa: F401 (re-exported)

# key -> (what it means, validator returning the stored text)
KNOWN: dict[str, str] = {
    "pue": "power usage effectiveness of the facility, >= 1.0 (default 1.0)",
    "zone": "Electricity Maps zone of runs without a 'zone' tag, e.g. DE, KR, US-CAL-CISO",
    "intensity_g_per_kwh": "constant gCO2eq/kWh for runs whose zone has no intensity data",
    "intensity_max_age_h": "hours a point value (no period) stays in force (default 3)",
}


def check_pue(value: float) -> float:
    """PUE must be a finite number >= 1.0 (facility energy / IT energy)."""
    if not (value >= 1.0 and value < 10.0):
        raise UsageError(f"PUE {value:g} is not between 1.0 and 10 (facility energy / IT energy); typical: 1.1-1.6")
    return float(value)


def check_intensity(value: float) -> float:
    """gCO2eq/kWh must be finite and between 0 and 2000."""
    if not (0.0 <= value <= 2000.0):
        raise UsageError(f"carbon intensity {value:g} gCO2eq/kWh is outside 0-2000; give gCO2eq/kWh, e.g. 450")
    return float(value)


def _validated(key: str, value: str) -> str:
    if key not in KNOWN:
        raise UsageError(f"unknown setting {key!r}; known: {', '.join(KNOWN)}")
    if key == "zone":
        return normalise_zone(value)
    try:
        number = float(value)
    except ValueError:
        raise UsageError(f"setting {key} needs a number, not {value!r}") from None
    if key == "pue":
        check_pue(number)
    elif key == "intensity_g_per_kwh":
        check_intensity(number)
    elif not (0 < number <= 24 * 366):
        raise UsageError(f"intensity_max_age_h {value} must be between 0 and one year of hours")
    return repr(number) if key != "zone" else value


def get_setting(con: duckdb.DuckDBPyConnection, key: str) -> str | None:
    """The stored text of a setting, or None."""
    row = con.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def set_setting(con: duckdb.DuckDBPyConnection, key: str, value: str | None) -> None:
    """Store (or, with None, remove) a setting after checking it."""
    if value is None:
        if key not in KNOWN:
            raise UsageError(f"unknown setting {key!r}; known: {', '.join(KNOWN)}")
        con.execute("DELETE FROM settings WHERE key = ?", [key])
        return
    text = _validated(key, str(value))
    con.execute("INSERT OR REPLACE INTO settings (key, value, updated_at) VALUES (?, ?, ?)",
                [key, text, datetime.now(timezone.utc).replace(tzinfo=None)])


def all_settings(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Every stored setting."""
    return dict(con.execute("SELECT key, value FROM settings ORDER BY key").fetchall())
