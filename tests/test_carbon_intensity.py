"""resolve_intensity / resolve_pue: constant, warehouse as-of value, shipped yearly average, settings."""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from importlib import resources

import pytest

from dlwh.carbon.intensity import (DEFAULT_PUE, emissions_g, resolve_intensity, resolve_pue,
                                   yearly_average, zone_for_run)
from dlwh.carbon.settings import set_setting
from dlwh.errors import DlwhError, UsageError


def _add(con, zone, ts, value, period_s=3600.0, estimated=False, source="electricitymaps-api"):
    con.execute("INSERT INTO carbon_intensity (zone, ts, period_s, intensity_g_per_kwh, is_estimated, source) "
                "VALUES (?, ?, ?, ?, ?, ?)", [zone, ts, period_s, value, estimated, source])


def test_constant_wins(con):
    _add(con, "DE", datetime(2026, 1, 1, 10), 300.0)
    assert resolve_intensity(con, "DE", 450, datetime(2026, 1, 1, 10, 30)) == (450.0, "constant 450 gCO2eq/kWh (given)")


def test_constant_out_of_range(con):
    with pytest.raises(UsageError, match="outside 0-2000"):
        resolve_intensity(con, None, -3, None)


def test_warehouse_value_as_of(con):
    _add(con, "DE", datetime(2021, 8, 18, 13), 413.0)
    _add(con, "DE", datetime(2021, 8, 18, 14), 338.0, estimated=True)
    value, source = resolve_intensity(con, "de", None, datetime(2021, 8, 18, 13, 59, 59))
    assert value == 413.0 and source == "electricitymaps-api DE measured 2021-08-18T13:00Z"
    value, source = resolve_intensity(con, "DE", None, datetime(2021, 8, 18, 14, 0))
    assert value == 338.0 and "estimated" in source
    # an aware time is converted to UTC: 16:30+02:00 is 14:30Z
    aware = datetime(2021, 8, 18, 16, 30, tzinfo=timezone.utc).astimezone()
    assert resolve_intensity(con, "DE", None, aware)[0] in (338.0, 341.0)


def test_past_the_period_falls_back_to_yearly(con):
    _add(con, "KR", datetime(2026, 3, 1, 0), 500.0)
    value, source = resolve_intensity(con, "KR", None, datetime(2026, 3, 1, 1, 0))  # period over
    assert value == 423.0 and source == "yearly average KR 2024 (Electricity Maps 2024 yearly average)"


def test_subzone_falls_back_to_country(con):
    assert resolve_intensity(con, "US-XYZ-ABC", None, datetime(2026, 1, 1))[0] == 409.0
    assert resolve_intensity(con, "US-CAL-CISO", None, datetime(2026, 1, 1))[0] == 229.0


def test_settings_zone_and_constant(con):
    set_setting(con, "zone", "fr")
    assert resolve_intensity(con, None, None, datetime(2026, 1, 1))[0] == 33.0
    set_setting(con, "zone", None)
    set_setting(con, "intensity_g_per_kwh", "450")
    assert resolve_intensity(con, None, None, None) == (450.0, "constant 450 gCO2eq/kWh (setting)")
    # an unknown zone with a constant setting uses the constant
    assert resolve_intensity(con, "XX", None, None)[0] == 450.0


def test_nothing_applies(con):
    with pytest.raises(DlwhError, match="pass --zone ZONE"):
        resolve_intensity(con, None, None, None)
    with pytest.raises(DlwhError, match="dlwh carbon fetch --zone XX"):
        resolve_intensity(con, "XX", None, None)
    with pytest.raises(UsageError, match="not a zone key"):
        resolve_intensity(con, "D E", None, None)


def test_pue_order(con):
    assert resolve_pue(con) == (DEFAULT_PUE, "default") == (1.0, "default")
    set_setting(con, "pue", "1.4")
    assert resolve_pue(con) == (1.4, "setting")
    con.execute("INSERT INTO runs (run_id, source) VALUES ('r1', 'file')")
    con.execute("INSERT INTO run_tags VALUES ('r1', 'pue', '1.2', NULL), ('r1', 'zone', 'kr', NULL)")
    assert resolve_pue(con, None, "r1") == (1.2, "run tag")
    assert resolve_pue(con, 1.1, "r1") == (1.1, "given")
    assert zone_for_run(con, "r1") == "KR"
    with pytest.raises(UsageError, match="between 1.0 and 10"):
        resolve_pue(con, 0.9)
    with pytest.raises(UsageError):
        set_setting(con, "pue", "0.5")


def test_emissions_formula():
    assert emissions_g(2.0, 400.0, 1.5) == pytest.approx(1200.0)


def test_yearly_csv_matches_warehouse_table(con):
    text = resources.files("dlwh.carbon").joinpath("data", "yearly_intensity.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    assert 20 <= len(rows) <= 40
    table = {(z, y): (v, s) for z, y, v, s in
             con.execute("SELECT zone, year, intensity_g_per_kwh, source FROM carbon_intensity_yearly").fetchall()}
    assert len(table) == len(rows)
    for r in rows:
        assert table[(r["zone"], int(r["year"]))] == (float(r["intensity_g_per_kwh"]), r["source"])
        assert r["reference"] and r["source"] and r["emission_factor_type"] == "lifecycle"
    assert yearly_average("KR") == (423.0, "yearly average KR 2024 (Electricity Maps 2024 yearly average)")
