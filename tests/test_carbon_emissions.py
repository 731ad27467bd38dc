"""Emissions views and commands: energy per interval x intensity in force (as-of), per run and per span."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from dlwh.carbon.emissions import run_emissions, span_emissions
from dlwh.carbon.schedule import best_window
from dlwh.carbon.settings import set_setting
from dlwh.errors import DlwhError, UsageError
from dlwh.ingest.loader import IngestOptions, ingest_paths
from tests.conftest import invoke
from tests.runfactory import T0, make_run

T = T0.replace(tzinfo=None)
EPOCHS = [{"id": "e1", "start_s": 0, "end_s": 4, "kind": "epoch"},
          {"id": "e2", "start_s": 4, "end_s": 10, "kind": "epoch"},
          {"id": "s1", "parent": "e2", "start_s": 4, "end_s": 6, "kind": "step"},
          {"id": "s2", "parent": "e2", "start_s": 6, "end_s": 10, "kind": "step"}]


def _intensity(con, zone, at, value, period_s=None, estimated=False):
    con.execute("INSERT INTO carbon_intensity (zone, ts, period_s, intensity_g_per_kwh, is_estimated, source) "
                "VALUES (?, ?, ?, ?, ?, 'test')", [zone, at, period_s, value, estimated])


def _ramp_run(tmp_path, con, tags, **kw):
    run = make_run(tmp_path / "run", seconds=10, power=lambda s: 100.0 + 10 * s, spans=EPOCHS, tags=tags, **kw)
    ingest_paths(con, [run])
    return run


def _kwh(joules):
    return joules / 3.6e6


@pytest.mark.slow
def test_intensity_change_inside_run_and_spans(tmp_path, con):
    _ramp_run(tmp_path, con, {"zone": "DE"})
    _intensity(con, "DE", T - timedelta(hours=1), 400.0)            # point value: holds until the next one
    _intensity(con, "DE", T + timedelta(seconds=3), 200.0, period_s=3600)
    # power 100 + 10 t W: E(0..3) = 345 J, E(3..10) = 1155 J
    total = run_emissions(con).iloc[0]
    assert total["energy_kwh"] == pytest.approx(_kwh(1500.0))
    assert total["emissions_g"] == pytest.approx(_kwh(345.0) * 400 + _kwh(1155.0) * 200)
    assert total["avg_intensity_g_per_kwh"] == pytest.approx((345 * 400 + 1155 * 200) / 1500)
    assert total["intensity_source"] == "test DE measured" and total["zone"] == "DE" and total["pue"] == 1.0
    spans = span_emissions(con).set_index("span_id")
    # e1 [0, 4]: 345 J at 400 + E(3..4) = 135 J at 200
    assert spans.loc["e1", "emissions_g"] == pytest.approx(_kwh(345) * 400 + _kwh(135) * 200)
    assert spans.loc["e2", "energy_kwh"] == pytest.approx(_kwh(1020.0))
    # nested steps add up to their epoch, and epochs to the run
    assert spans.loc["s1", "emissions_g"] + spans.loc["s2", "emissions_g"] == pytest.approx(spans.loc["e2", "emissions_g"])
    assert spans.loc[["e1", "e2"], "emissions_g"].sum() == pytest.approx(total["emissions_g"])
    epochs = span_emissions(con, kind="epoch")
    assert list(epochs["span_id"]) == ["e1", "e2"]


@pytest.mark.slow
def test_emissions_energy_matches_run_energy_with_gap(tmp_path, con):
    _ramp_run(tmp_path, con, {"zone": "DE"}, skip=(3.0, 6.0))
    _intensity(con, "DE", T, 300.0, period_s=3600)
    energy = con.execute("SELECT energy_j FROM run_energy").fetchone()[0]
    row = con.execute("SELECT energy_j, emissions_g FROM run_emissions").fetchone()
    assert row[0] == pytest.approx(energy) and row[1] == pytest.approx(_kwh(energy) * 300)
    spans = dict(con.execute("SELECT span_id, energy_j FROM span_emissions").fetchall())
    span_energy = dict(con.execute("SELECT span_id, energy_j FROM span_energy").fetchall())
    assert spans == pytest.approx(span_energy)


@pytest.mark.slow
def test_tags_settings_and_fallbacks(tmp_path, con):
    _ramp_run(tmp_path, con, {"zone": "kr", "pue": "1.2"})
    row = run_emissions(con).iloc[0]
    # no KR values in the warehouse: the shipped 2024 yearly average
    assert row["intensity_source"] == "yearly average KR 2024 (Electricity Maps 2024 yearly average)"
    assert row["pue"] == 1.2 and row["facility_energy_kwh"] == pytest.approx(_kwh(1500) * 1.2)
    assert row["emissions_g"] == pytest.approx(_kwh(1500) * 1.2 * 423)
    # overrides for every run
    row = run_emissions(con, intensity_g_per_kwh=450, pue=1.5).iloc[0]
    assert row["emissions_g"] == pytest.approx(_kwh(1500) * 1.5 * 450)
    assert row["intensity_source"] == "constant 450.0 (given)"
    assert run_emissions(con, zone="FR").iloc[0]["emissions_g"] == pytest.approx(_kwh(1500) * 1.2 * 33)
    with pytest.raises(UsageError):
        run_emissions(con, pue=0.5)


def test_constant_tag_and_no_intensity(tmp_path, con):
    run = make_run(tmp_path / "a", run_id="const", seconds=10, power=lambda s: 100.0, tags={"intensity_g_per_kwh": "500"})
    other = make_run(tmp_path / "b", run_id="none", seconds=10, power=lambda s: 200.0, tags={})
    ingest_paths(con, [run, other])
    rows = run_emissions(con).set_index("run_id")
    assert rows.loc["const", "emissions_g"] == pytest.approx(_kwh(1000) * 500)
    assert rows.loc["const", "intensity_source"] == "constant 500.0 (run tag)"
    assert rows.loc["none", "emissions_g"] != rows.loc["none", "emissions_g"]       # NULL
    assert rows.loc["none", "energy_without_intensity_kwh"] == pytest.approx(_kwh(2000))
    assert rows.loc["none", "intensity_source"].startswith("none: tag the run zone=ZONE")
    set_setting(con, "intensity_g_per_kwh", "250")
    set_setting(con, "pue", "1.1")
    rows = run_emissions(con).set_index("run_id")
    assert rows.loc["none", "emissions_g"] == pytest.approx(_kwh(2000) * 1.1 * 250)
    assert rows.loc["none", "intensity_source"] == "constant 250.0 (setting)"
    set_setting(con, "zone", "SE")
    assert run_emissions(con, run_id="none").iloc[0]["emissions_g"] == pytest.approx(_kwh(2000) * 1.1 * 23)


def test_total_prefers_node_sensors(con):
    con.execute("INSERT INTO runs (run_id, source) VALUES ('n', 'file')")
    con.execute("INSERT INTO run_tags VALUES ('n', 'intensity_g_per_kwh', '100', NULL)")
    for key, kind, watts in (("node", "node", 500.0), ("gpu", "gpu", 300.0), ("cores", "cpu_cores", 50.0)):
        con.execute("INSERT INTO sensors VALUES (?, 'n', 'x', ?, ?, NULL, NULL, NULL, 't')", [key, kind, key])
        for s in range(11):
            con.execute("INSERT INTO samples VALUES (?, ?, 'power', 'W', ?, NULL, 'x')", [key, T + timedelta(seconds=s), watts])
    per_sensor = run_emissions(con, per_sensor=True)
    assert len(per_sensor) == 3
    total = run_emissions(con).iloc[0]
    assert (total["sensor_kinds"], total["n_sensors"]) == ("node", 1)
    assert total["emissions_g"] == pytest.approx(_kwh(5000) * 100)
    con.execute("DELETE FROM samples WHERE sensor_id = 'node'")
    total = run_emissions(con).iloc[0]
    assert total["sensor_kinds"] == "gpu" and total["energy_kwh"] == pytest.approx(_kwh(3000))  # cpu_cores left out


@pytest.mark.slow
def test_codecarbon_run_gets_emissions(con, fixtures_dir):
    [result] = ingest_paths(con, [fixtures_dir / "codecarbon" / "codecarbon-tests-emissions-valid-headers.csv"],
                            IngestOptions(tz="UTC", tags={"zone": "MA"}))
    row = run_emissions(con, run_id=result.run_id).iloc[0]
    assert row["energy_kwh"] == pytest.approx(0.00057442898176)
    # MA has no shipped yearly average: nothing applies
    assert row["intensity_source"].startswith("none:")
    row = run_emissions(con, run_id=result.run_id, zone="FR").iloc[0]
    assert row["emissions_g"] == pytest.approx(0.00057442898176 * 33)


@pytest.mark.slow
def test_new_user_flow_with_the_cli(tmp_path, runner, db_path):
    """Ingest a run, ingest intensity for its zone, and `dlwh sql` gives gCO2eq per run and per epoch."""
    run = make_run(tmp_path / "run", seconds=10, power=lambda s: 100.0, spans=EPOCHS[:2], tags={"zone": "DE"})
    history = {"zone": "DE", "history": [
        {"zone": "DE", "carbonIntensity": 300, "datetime": "2026-11-21T09:00:00.000Z", "isEstimated": False},
        {"zone": "DE", "carbonIntensity": 400, "datetime": "2026-11-21T10:00:00.000Z", "isEstimated": True}]}
    (tmp_path / "de.json").write_text(json.dumps(history))
    assert invoke(runner, "ingest", str(run), "--db", str(db_path)).exit_code == 0
    result = invoke(runner, "ingest", str(tmp_path / "de.json"), "--db", str(db_path))
    assert result.exit_code == 0, result.output
    result = invoke(runner, "sql", "SELECT run_id, round(emissions_g, 6) AS g, intensity_source FROM run_emissions_total",
                    "--csv", "--db", str(db_path))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines() == ["run_id,g,intensity_source",
                                                  f"run-1,{round(_kwh(1000) * 400, 6)},electricitymaps-json DE estimated"]
    result = invoke(runner, "sql", "SELECT span_id, round(emissions_g, 6) AS g FROM span_emissions_total "
                    "WHERE kind = 'epoch' ORDER BY span_id", "--csv", "--db", str(db_path))
    assert result.stdout.strip().splitlines() == ["span_id,g", f"e1,{round(_kwh(400) * 400, 6)}",
                                                  f"e2,{round(_kwh(600) * 400, 6)}"]
    result = invoke(runner, "carbon", "emissions", "--spans", "--kind", "epoch", "--pue", "1.5", "--json",
                    "--db", str(db_path))
    rows = json.loads(result.stdout)
    assert [r["span_id"] for r in rows] == ["e1", "e2"]
    assert rows[0]["emissions_g"] == pytest.approx(_kwh(400) * 1.5 * 400)
    result = invoke(runner, "carbon", "emissions", "--run", "nope", "--db", str(db_path))
    assert result.exit_code == 2 and "no power readings for run 'nope'" in result.stderr


@pytest.mark.slow
def test_settings_and_intensity_commands(runner, db_path):
    assert invoke(runner, "carbon", "set", "pue", "1.3", "--db", str(db_path)).exit_code == 0
    result = invoke(runner, "carbon", "settings", "--db", str(db_path))
    assert "pue" in result.stdout and "1.3" in result.stdout and "(not set)" in result.stdout
    result = invoke(runner, "carbon", "set", "pue", "0.8", "--db", str(db_path))
    assert result.exit_code == 2 and "between 1.0 and 10" in result.stderr
    result = invoke(runner, "carbon", "set", "colour", "red", "--db", str(db_path))
    assert result.exit_code == 2 and "unknown setting 'colour'" in result.stderr
    result = invoke(runner, "carbon", "intensity", "--zone", "KR", "--db", str(db_path))
    assert result.stdout.strip() == "423 gCO2eq/kWh  (yearly average KR 2024 (Electricity Maps 2024 yearly average))"
    result = invoke(runner, "carbon", "intensity", "--db", str(db_path))
    assert result.exit_code == 1 and result.stderr.startswith("error: no zone and no carbon intensity given")
    assert invoke(runner, "carbon", "unset", "pue", "--db", str(db_path)).exit_code == 0
    result = invoke(runner, "carbon", "zones", "--csv")
    assert "KR,2024,423,lifecycle" in result.stdout and "co2.js" in result.stdout


# -- scheduling ------------------------------------------------------------------------------------------
def _day(con, zone="DE", start=datetime(2026, 1, 1), hours=48, forecast=False):
    for h in range(hours):
        value = 200.0 if (h % 24) in (12, 13) else 400.0 + h
        con.execute("INSERT INTO carbon_intensity (zone, ts, period_s, intensity_g_per_kwh, is_forecast, source) "
                    "VALUES (?, ?, 3600, ?, ?, 'test')", [zone, start + timedelta(hours=h), value, forecast])


def test_best_window_from_history(con):
    _day(con)
    plan = best_window(con, "de", 10.0, 7200, datetime(2026, 1, 1), datetime(2026, 1, 2, 12), timedelta(hours=1))
    assert len(plan.candidates) == 35 and plan.basis == "warehouse values"
    assert plan.best["start_ts"] == datetime(2026, 1, 1, 12)
    assert plan.best["avg_intensity_g_per_kwh"] == pytest.approx(200.0)
    assert plan.best["emissions_g"] == pytest.approx(10.0 * 200.0)
    assert plan.candidates["is_best"].sum() == 1
    # a start at 11:30 runs half an hour at 411 g and 1.5 h at 200 g
    half = best_window(con, "DE", 10.0, 7200, datetime(2026, 1, 1, 11, 30), datetime(2026, 1, 1, 13, 30), 1800)
    assert half.candidates.iloc[0]["avg_intensity_g_per_kwh"] == pytest.approx((0.5 * 411 + 1.5 * 200) / 2)
    assert plan.saving_g == pytest.approx(plan.worst["emissions_g"] - 2000.0)
    set_setting(con, "pue", "1.25")
    assert best_window(con, "DE", 10.0, 7200, datetime(2026, 1, 1), datetime(2026, 1, 2), 3600).best[
        "emissions_g"] == pytest.approx(2500.0)


def test_best_window_uses_forecast_and_profile(con):
    _day(con, hours=24)
    _day(con, start=datetime(2026, 1, 3), hours=6, forecast=True)
    plan = best_window(con, "DE", 1.0, 3600, datetime(2026, 1, 3), datetime(2026, 1, 3, 18), 3600)
    assert plan.basis == "warehouse values, gaps filled with the zone's hourly profile"
    first = plan.candidates.iloc[0]
    assert first["coverage_pct"] == pytest.approx(100.0) and first["avg_intensity_g_per_kwh"] == pytest.approx(400.0)
    # 12:00 has no value on Jan 3: the profile (mean of 12:00 values) says 200
    noon = plan.candidates[plan.candidates["start_ts"] == datetime(2026, 1, 3, 12)].iloc[0]
    assert noon["coverage_pct"] == 0.0 and noon["avg_intensity_g_per_kwh"] == pytest.approx(200.0)
    assert plan.best["start_ts"] == datetime(2026, 1, 3, 12)


def test_best_window_errors(con):
    with pytest.raises(UsageError, match="shorter than the job"):
        best_window(con, "DE", 1.0, 7200, datetime(2026, 1, 1), datetime(2026, 1, 1, 1), 3600)
    with pytest.raises(UsageError, match="must be positive"):
        best_window(con, "DE", 0, 7200, datetime(2026, 1, 1), datetime(2026, 1, 2), 3600)
    with pytest.raises(DlwhError, match="no carbon intensity for zone XX"):
        best_window(con, "XX", 1.0, 3600, datetime(2026, 1, 1), datetime(2026, 1, 2), 3600)
    plan = best_window(con, "KR", 1.0, 3600, datetime(2026, 1, 1), datetime(2026, 1, 2), 3600)
    assert plan.basis.startswith("the yearly average only") and plan.best["emissions_g"] == pytest.approx(423.0)


@pytest.mark.slow
def test_schedule_command(runner, db_path, con):
    _day(con)
    con.close()
    result = invoke(runner, "carbon", "schedule", "--zone", "DE", "--energy-kwh", "10", "--duration", "2h",
                    "--start", "2026-01-01T00:00", "--end", "2026-01-02T00:00Z", "--db", str(db_path))
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "best start 2026-01-01 12:00 UTC: 2000.0 gCO2eq (200 gCO2eq/kWh, PUE 1)"
    assert lines[1].startswith("worst start 2026-01-01 22:00 UTC: 4225.0 gCO2eq; saving 2225.0 g")
    result = invoke(runner, "carbon", "schedule", "--zone", "DE", "--energy-kwh", "10", "--duration", "2 weeks",
                    "--start", "2026-01-01", "--end", "2026-01-02", "--db", str(db_path))
    assert result.exit_code == 2 and "is not a duration" in result.stderr
    result = invoke(runner, "carbon", "schedule", "--zone", "DE", "--energy-kwh", "10", "--duration", "90m",
                    "--step", "30m", "--start", "2026-01-01", "--end", "2026-01-01T03:00", "--csv", "--db", str(db_path))
    assert result.stdout.splitlines()[0] == "start_ts,end_ts,avg_intensity_g_per_kwh,emissions_g,coverage_pct,is_best"
    assert len(result.stdout.strip().splitlines()) == 1 + 4
