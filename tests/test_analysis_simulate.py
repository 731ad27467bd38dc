"""dlwh simulate against hand-computed numbers (a stand-in prediction with known curves: stored
models load as JSON only, so the stand-in replaces dlwh.analysis.simulate.predict), time to accuracy,
emissions, the energy-optimal decision, and the simulate/plot/report commands on the real A40 sweep."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlwh.ingest.loader import IngestOptions, ingest_paths
from tests.conftest import invoke

pytest.importorskip("sklearn")      # threadpoolctl comes with it
pytest.importorskip("matplotlib")


class KnownCurve:
    """A stored 'model' with closed-form curves: T = 100 + 20000 / L s, P = 0.6 L + 30 W, E = T P."""

    space = None

    def __init__(self, target: str) -> None:
        self.target = target

    def predict(self, rows: pd.DataFrame) -> pd.DataFrame:
        limit = rows["power_limit_w"].to_numpy(float)
        t, p = 100 + 20000 / limit, 0.6 * limit + 30
        value = {"time_per_epoch_s": t, "avg_power_w": p, "energy_per_epoch_j": t * p}[self.target]
        return pd.DataFrame({"pred": value, "lo": value * 0.9, "hi": value * 1.1}, index=rows.index)


SUMMARY = ("dataset,network,batch_size,optimizer,power_limit,time_per_epoch,average_power\n"
           "imagenet,resnet50,256,adadelta,100,3000,100\nimagenet,resnet50,256,adadelta,200,2000,150\n"
           "imagenet,resnet50,256,adadelta,300,1700,200\n")
TRAIN = ("dataset,network,batch_size,optimizer,learning_rate,run,target_metric,target_epoch\n"
         "imagenet,resnet50,256,adadelta,0.1,1,0.6,10\nimagenet,resnet50,256,adadelta,0.1,1,0.7,nan\n"
         "imagenet,resnet50,256,adadelta,0.1,2,0.6,12\nimagenet,resnet50,256,adadelta,0.1,2,0.7,20\n"
         "imagenet,resnet50,256,adadelta,0.1,3,0.6,14\nimagenet,resnet50,256,adadelta,0.1,3,0.7,nan\n")


@pytest.fixture
def known(con, tmp_path: Path):
    """A warehouse with a tiny sweep on GPU 'TESTGPU', epochs-to-target data, and KnownCurve models."""
    (tmp_path / "summary_power_x.csv").write_text(SUMMARY)
    (tmp_path / "summary_train.csv").write_text(TRAIN)
    results = ingest_paths(con, [tmp_path / "summary_power_x.csv", tmp_path / "summary_train.csv"],
                           IngestOptions(format_options={"gpu": "TESTGPU"}))
    assert {r.outcome for r in results} == {"loaded"}
    store_linear_response(con)
    return con


CONFIG = "TESTGPU/imagenet/resnet50/256/adadelta/-/1gpu/epoch"


def store_linear_response(con, k: float = 0.1) -> None:
    """A stored power-limit response with hand-computable curves: cap = L, no static power, clock
    ratio r = y = L / P_hi; the configuration has P_u = 200 W, T_u = 100 s, phi = lam = 0.5, so
    P_hi = 300 W, P_lo = 100 W: T(L) = 100 (0.5 + 150 / L) s below 300 W, P(L) = 200 L / (0.5 L + 150) W,
    E = T P = 20000 J at every limit (power falls exactly as the clock: no limit saves energy)."""
    from dlwh.analysis.physics import KNOTS, PhysicsModel, Shared
    from dlwh.analysis.response import Response

    model = PhysicsModel(gpu="TESTGPU", shared=Shared(1.0, 0.0, 0.0, tuple(float(v) for v in KNOTS)),
                         gpu_phi=0.5, gpu_lam=0.5, ref_w=300.0,
                         configs={CONFIG: {"p_u": 200.0, "t_u": 100.0, "phi": 0.5, "lam": 0.5,
                                           "workload": "imagenet/resnet50", "anchor_limit_w": 300.0}})
    resp = Response(model, "fitted", "a hand-made response", {t: k for t in ("time_per_epoch_s", "avg_power_w",
                                                                              "energy_per_epoch_j")},
                    min_w=100.0, max_w=300.0, range_source="test")
    from dlwh.analysis.data import data_hash, load_training_data

    sha = data_hash(load_training_data(con, "TESTGPU"))
    for target in ("time_per_epoch_s", "avg_power_w", "energy_per_epoch_j"):
        con.execute("INSERT INTO fitted_models (model_id, gpu_scope, target, algo, fitted_at, data_sha256, n_rows, "
                    "metrics, params, versions, blob) VALUES (?, 'TESTGPU', ?, 'physics', ?, ?, 3, ?, '{}', '{}', ?)",
                    [f"TESTGPU/{target}/physics", target, datetime(2026, 1, 1), sha,
                     json.dumps({"mape_pct": 1.0, "baseline_mape_pct": 10.0}),
                     json.dumps({"response": resp.to_json()}).encode()])


@pytest.fixture(autouse=True)
def known_curve(request, monkeypatch):
    """simulate's predictions from KnownCurve (tests of the real model below opt out by name)."""
    if "a40" in request.node.name or "decision" in request.node.name or "power_plot" in request.node.name:
        return
    from dlwh.analysis import simulate as S
    from dlwh.analysis.predict import Prediction, resolve

    def fake_predict(con, q):
        base, notes, gpu = resolve(con, q) if False else ({"n_gpus": 1, "dataset": "imagenet", "model": "resnet50",
                                                            "batch_size": 256, "optimizer": "adadelta"}, [], "TESTGPU")
        rows = pd.DataFrame({"power_limit_w": [float(v) for v in q.power_limits]})
        table = rows.copy()
        for target in ("time_per_epoch_s", "avg_power_w", "energy_per_epoch_j"):
            pred = KnownCurve(target).predict(rows)
            table[target], table[target + "_lo"], table[target + "_hi"] = pred["pred"], pred["lo"], pred["hi"]
        return Prediction(table=table, gpu=gpu, algo={t: "known" for t in ("time_per_epoch_s",)}, scores={},
                          description="TESTGPU, resnet50, imagenet, batch 256", notes=notes, base=base)

    monkeypatch.setattr(S, "predict", fake_predict)


def query(**kw):
    from dlwh.analysis.predict import Query

    return Query(power_limits=[100.0, 200.0, 300.0], gpu="TESTGPU", model="resnet50", batch_size=256, **kw)


def test_simulation_by_hand(known):
    from dlwh.analysis.simulate import simulate

    sim = simulate(known, query(), budget_epochs=10, reference_limit="max", eta=0.5)
    t = sim.table.set_index("power_limit_w")
    # E(100) = 300 s x 90 W = 27000 J; E(200) = 200 x 150 = 30000 J; E(300) = 166.67 x 210 = 35000 J
    assert t["energy_per_epoch_j"].to_list() == pytest.approx([27000, 30000, 35000])
    assert sim.reference_limit_w == 300 and sim.budget_j == pytest.approx(350000)
    assert t["epochs_in_budget"].to_list() == pytest.approx([350000 / 27000, 350000 / 30000, 10])
    assert t["time_for_budget_s"].to_list() == pytest.approx([350000 / 27000 * 300, 350000 / 30000 * 200, 10 * 500 / 3])
    assert t["time_for_n_epochs_s"].to_list() == pytest.approx([3000, 2000, 5000 / 3])
    assert t["saved_per_epoch_j"].to_list() == pytest.approx([8000, 5000, 0])
    assert t["saved_pct"].to_list() == pytest.approx([100 * 8000 / 35000, 100 * 5000 / 35000, 0])
    # cost = 0.5 E + 0.5 x 300 W x T: 13500 + 45000, 15000 + 30000, 17500 + 25000
    assert t["cost_per_epoch"].to_list() == pytest.approx([58500, 45000, 42500])
    assert sim.best_energy_limit_w == 100 and sim.best_cost_limit_w == 300
    # time to accuracy: target 0.6 (reached by 3 of 3 seeds; 0.7 by 1 of 3), median of 10, 12, 14 epochs
    assert (sim.tta.target_metric, sim.tta.epochs, sim.tta.runs_reached, sim.tta.higher_is_better) == (0.6, 12, 3, True)
    assert t["time_to_accuracy_s"].to_list() == pytest.approx([3600, 2400, 2000])
    assert t["energy_to_accuracy_j"].to_list() == pytest.approx([324000, 360000, 420000])


def test_simulation_eta_kwh_budget_and_reference(known):
    from dlwh.analysis.simulate import simulate

    # eta 0.9: 0.9 E + 0.1 x 300 x T = 33300, 33000, 36500 -> 200 W
    sim = simulate(known, query(), budget_kwh=1.0, reference_limit="200", eta=0.9, target_metric=0.7)
    assert sim.best_cost_limit_w == 200
    assert sim.budget_j == 3.6e6 and sim.budget_epochs_at_reference == pytest.approx(3.6e6 / 30000)
    assert sim.table.set_index("power_limit_w")["saved_pct"].to_list() == pytest.approx([10.0, 0.0, -100 * 5000 / 30000])
    assert sim.tta.epochs == 20 and sim.tta.runs_reached == 1


def test_simulation_emissions_with_an_explicit_intensity(known):
    pytest.importorskip("dlwh.carbon.intensity")
    from dlwh.analysis.simulate import simulate

    sim = simulate(known, query(), budget_epochs=10, intensity=400.0, pue=1.5)
    t = sim.table.set_index("power_limit_w")
    assert sim.intensity_g_per_kwh == 400.0 and sim.pue == 1.5
    # 10 epochs at 100 W: 270000 J = 0.075 kWh x 1.5 x 400 g = 45 g
    assert t.loc[100.0, "co2_for_n_epochs_g"] == pytest.approx(45.0)


def test_simulation_usage_errors(known):
    from dlwh.analysis.simulate import simulate
    from dlwh.errors import UsageError

    with pytest.raises(UsageError, match="one budget"):
        simulate(known, query(), budget_epochs=10, budget_kwh=2)
    with pytest.raises(UsageError, match="between 0 and 1"):
        simulate(known, query(), budget_epochs=10, eta=2)


@pytest.mark.slow
def test_simulate_command_prints_the_table_and_writes_the_plot(runner, known, db_path, tmp_path):
    known.close()
    out = tmp_path / "sim.svg"
    result = invoke(runner, "simulate", "--gpu", "TESTGPU", "--model", "resnet50", "--batch-size", "256",
                    "--budget-epochs", "10", "--power-limits", "100:300:100", "--plot", str(out), "--db", str(db_path))
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert "300 (ref)" in text
    assert "least cost (eta 0.5: eta*energy + (1-eta)*300 W*time): 300 W, 0.0 % less energy, 1.00x" in text
    assert "least energy (point prediction): 100 W, 0.0075 kWh/epoch (22.9 % less than at 300 W), 13.0 epochs in the budget, 1.80x the time" in text
    assert "time to accuracy: 12 epochs (median of 3/3 seed runs) to reach at least 0.6" in text
    assert out.read_text().lstrip().startswith("<?xml") and "<svg" in out.read_text()
    # without --model: the configuration measured at the most limits, said in a note
    result = invoke(runner, "simulate", "--gpu", "TESTGPU", "--power-limits", "100,200,300", "--budget-epochs", "10",
                    "--no-plot", "--db", str(db_path))
    assert result.exit_code == 0, result.stderr
    assert ("note: no --model: simulating the configuration measured at the most limits on TESTGPU, "
            "imagenet/resnet50 at batch 256 (3 limits)") in result.stderr
    assert "least energy (point prediction): 100 W" in result.stdout and "plot:" not in result.stdout


# -- the real sweep: simulate, plots, report -----------------------------------------------------------

@pytest.fixture
def fitted_a40(shared_dir: Path, db_path: Path, runner) -> Path:
    pytest.importorskip("sklearn")
    data = shared_dir / "datasets" / "zeus_nsdi23"
    if not data.is_dir():
        pytest.skip(f"{data} is absent")
    result = invoke(runner, "ingest", str(data / "summary_power_a40.csv"), str(data / "summary_train.csv"),
                    "--db", str(db_path))
    assert result.exit_code == 0, result.output
    result = invoke(runner, "fit", "--algo", "physics", "--db", str(db_path))
    assert result.exit_code == 0, result.stderr
    return db_path


@pytest.mark.slow
def test_simulate_plots_and_report_on_the_a40(runner, fitted_a40, tmp_path):
    plot = tmp_path / "simulation.png"
    result = invoke(runner, "simulate", "--gpu", "A40", "--model", "resnet50", "--batch-size", "256",
                    "--budget-epochs", "100", "--plot", str(plot), "--db", str(fitted_a40))
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "A40, resnet50, imagenet, batch 256; models: physics"
    assert len([l for l in lines if l.lstrip()[:3].isdigit()]) == 9  # one row per measured limit, 100..300 W
    assert any(l.startswith("least energy (point prediction): ") for l in lines)
    assert any(l.startswith("time to accuracy: 21 epochs (median of 5/5 seed runs) to reach at least 0.65") for l in lines)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    for kind, extra in (("limits", ["--gpu", "A40", "--model", "resnet50"]), ("pareto", ["--gpu", "A40", "--model", "bert_base", "--dataset", "squad"]),
                        ("macs", [])):
        out = tmp_path / f"{kind}.svg"
        result = invoke(runner, "plot", kind, "--out", str(out), *extra, "--db", str(fitted_a40))
        assert result.exit_code == 0, result.stderr
        assert "<svg" in out.read_text()
    result = invoke(runner, "plot", "pareto", "--out", str(tmp_path / "p.svg"), "--gpu", "A40", "--model", "bert_base",
                    "--db", str(fitted_a40))
    assert result.exit_code == 2 and "several datasets" in result.stderr
    result = invoke(runner, "plot", "limits", "--out", str(tmp_path / "x.jpg"), "--db", str(fitted_a40))
    assert result.exit_code == 2 and "give a .png or .svg" in result.stderr
    result = invoke(runner, "plot", "power", "--run", "nope", "--out", str(tmp_path / "x.png"), "--db", str(fitted_a40))
    assert result.exit_code == 1 and "no run 'nope'" in result.stderr

    report = tmp_path / "report.html"
    result = invoke(runner, "report", "--out", str(report), "--db", str(fitted_a40))
    assert result.exit_code == 0, result.stderr
    page = report.read_text()
    assert page.count("<svg") >= 4
    assert "src=\"http" not in page and "<link" not in page  # self-contained
    assert "Model accuracy (cross-validated)" in page and "Power-limit model, A40" in page
    assert "Simulation: A40, resnet50, imagenet" in page or "Simulation: A40" in page


@pytest.mark.slow
def test_power_plot_of_a_collected_run(runner, db_path, tmp_path):
    from tests.runfactory import make_run

    spans = [{"id": f"e{k}", "start_s": 1 + 2 * k, "end_s": 3 + 2 * k} for k in range(3)]
    folder = make_run(tmp_path / "run", run_id="run-7", seconds=8, power=lambda s: 100 + 10 * np.sin(s), spans=spans)
    assert invoke(runner, "ingest", str(folder), "--db", str(db_path)).exit_code == 0
    out = tmp_path / "power.png"
    result = invoke(runner, "plot", "power", "--run", "run-7", "--out", str(out), "--db", str(db_path))
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes()[:4] == b"\x89PNG"
