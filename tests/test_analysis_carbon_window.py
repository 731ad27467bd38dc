"""`dlwh simulate --carbon`: the least-emitting start for the simulated least-energy run."""

from __future__ import annotations

import pytest

from tests.conftest import invoke

pytest.importorskip("sklearn")


@pytest.mark.slow
def test_simulate_carbon_window_on_real_data(tmp_path, runner, shared_dir):
    db = str(tmp_path / "w.duckdb")
    zeus = shared_dir / "datasets" / "zeus_nsdi23" / "summary_power_a40.csv"
    history = shared_dir / "fixtures" / "electricitymaps" / "voltorb-tests-history-DE.json"
    assert invoke(runner, "ingest", str(zeus), str(history), "--db", db).exit_code == 0
    assert invoke(runner, "fit", "--algo", "physics", "--db", db).exit_code == 0
    result = invoke(runner, "simulate", "--budget-epochs", "2", "--algo", "physics", "--no-plot", "--db", db,
                    "--carbon", "DE", "--window-start", "2021-08-18T13:00", "--window-end", "2021-08-19T13:00")
    assert result.exit_code == 0, result.stderr
    line = [ln for ln in result.stdout.splitlines() if ln.startswith("carbon (DE")][0]
    assert "emits least starting 2021-08-1" in line and "kg saved" in line

    # by hand: the history holds 413 g/kWh for 2021-08-18 13:00-14:00 and 338 g/kWh for 2021-08-19
    # 12:00-13:00; the run (< 1 h) fits inside either hour, so emissions = budget kWh x that intensity.
    from datetime import datetime

    from dlwh.analysis.carbon_window import schedule_for_simulation
    from dlwh.analysis.predict import Query
    from dlwh.analysis.simulate import simulate
    from dlwh.warehouse import open_warehouse

    con = open_warehouse(db)
    try:
        sim = simulate(con, Query(power_limits=[], algo="physics"), budget_epochs=2, budget_kwh=None,
                       reference_limit="max", eta=0.5, target_metric=None, zone=None, intensity=None, pue=None)
        limit, sch = schedule_for_simulation(con, sim, "DE", datetime(2021, 8, 18, 13), datetime(2021, 8, 19, 13))
    finally:
        con.close()
    kwh = sim.budget_j / 3.6e6
    assert limit == sim.best_energy_limit_w
    assert sch.duration_s < 3600
    assert sch.best["start_ts"] == datetime(2021, 8, 19, 12)
    assert sch.best["emissions_g"] == pytest.approx(kwh * 338.0, rel=1e-6)
    assert sch.worst["emissions_g"] == pytest.approx(kwh * 413.0, rel=1e-6)


def test_carbon_needs_a_window(tmp_path, runner):
    result = invoke(runner, "simulate", "--carbon", "DE", "--db", str(tmp_path / "w.duckdb"))
    assert result.exit_code == 2
    assert "--carbon needs --window-start and --window-end" in result.stderr
