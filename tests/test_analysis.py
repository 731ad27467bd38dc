"""Training data from collected runs (steady state), helpers, and dlwh fit / predict end to end."""

from __future__ import annotations

import json

from pathlib import Path

import pytest

from dlwh.ingest.loader import ingest_paths
from tests.conftest import invoke
from tests.runfactory import make_run


def one(con, sql, params=()):
    return con.execute(sql, list(params)).fetchone()


# -- training data from collected runs --------------------------------------------------------

def test_epoch_run_excludes_the_first_epoch(con, tmp_path):
    # 150 W during warm-up (until 3 s), then 100 W; epochs of 2 s from 1 s to 9 s
    spans = [{"id": f"e{k}", "start_s": 1 + 2 * k, "end_s": 3 + 2 * k, "kind": "epoch"} for k in range(4)]
    folder = make_run(tmp_path / "r1", run_id="r1", seconds=9.0, power=lambda s: 150.0 if s < 3 else 100.0,
                      spans=spans, tags={"model": "ResNet-50", "batch_size": 32, "samples_per_epoch": 6400,
                                         "precision": "amp"})
    assert {r.outcome for r in ingest_paths(con, [folder])} == {"loaded"}
    assert [r[0] for r in con.execute("SELECT span_id FROM steady_spans ORDER BY start_ts").fetchall()] == ["e1", "e2", "e3"]
    row = one(con, "SELECT gpu, model, precision, batch_size, power_limit_w, n_gpus, work_unit, time_per_epoch_s, "
                   "energy_per_epoch_j, avg_power_w, samples_per_epoch, throughput_sps, energy_per_sample_j, "
                   "macs_per_sample, params FROM training_data WHERE source = 'run'")
    # steady epochs e1..e3: 2 s each at 100 W -> 200 J per epoch; 6400 samples per epoch
    assert row[:7] == ("TEST GPU", "resnet50", "amp", 32, 700.0, 1, "epoch")
    assert row[7] == pytest.approx(2.0)
    assert row[8] == pytest.approx(200.0)
    assert row[9] == pytest.approx(100.0)
    assert row[10:13] == pytest.approx((6400.0, 3200.0, 200.0 / 6400))
    assert row[13:] == (4089184256.0, 25557032.0)


def test_step_run_excludes_ten_steps_and_scales_to_an_epoch(con, tmp_path):
    # 15 steps of 0.5 s from 1 s; 120 W throughout; 100 steps per epoch of 64 samples
    spans = [{"id": f"s{k:02d}", "start_s": 1 + 0.5 * k, "end_s": 1.5 + 0.5 * k, "kind": "step"} for k in range(15)]
    folder = make_run(tmp_path / "r2", run_id="r2", seconds=10.0, power=lambda s: 120.0, spans=spans, gpus=2,
                      tags={"model": "mynet", "batch_size": 64, "steps_per_epoch": 100, "power_limit_w": 250})
    ingest_paths(con, [folder])
    assert one(con, "SELECT count(*), min(span_id) FROM steady_spans") == (5, "s10")
    row = one(con, "SELECT model, power_limit_w, n_gpus, work_unit, samples_per_epoch, time_per_epoch_s, "
                   "avg_power_w, energy_per_epoch_j, throughput_sps, macs_per_sample FROM training_data")
    # per step: 0.5 s, 2 GPUs x 120 W x 0.5 s = 120 J; an epoch = 100 steps
    assert row[:5] == ("mynet", 250.0, 2, "epoch", 6400.0)
    assert row[5] == pytest.approx(50.0)
    assert row[6] == pytest.approx(120.0)
    assert row[7] == pytest.approx(12000.0)
    assert row[8] == pytest.approx(128.0)
    assert row[9] is None


def test_partial_last_epoch_is_left_out_and_steps_give_the_epoch_size(con, tmp_path):
    # epochs of 5 steps (1 s each) except the last, stopped after 3 steps
    spans, t = [], 0.0
    for e, steps in enumerate((5, 5, 5, 3)):
        spans.append({"id": f"e{e}", "start_s": t, "end_s": t + steps, "kind": "epoch"})
        spans += [{"id": f"e{e}s{k}", "parent": f"e{e}", "start_s": t + k, "end_s": t + k + 1, "kind": "step"}
                  for k in range(steps)]
        t += steps
    folder = make_run(tmp_path / "r4", run_id="r4", seconds=18.0, power=lambda s: 200.0, spans=spans,
                      tags={"model": "mynet", "batch_size": 16})
    ingest_paths(con, [folder])
    assert [r[0] for r in con.execute("SELECT span_id FROM steady_spans ORDER BY start_ts").fetchall()] == ["e1", "e2"]
    row = one(con, "SELECT samples_per_epoch, time_per_epoch_s, energy_per_epoch_j, throughput_sps FROM training_data")
    assert row == pytest.approx((80.0, 5.0, 1000.0, 16.0))


def test_the_collected_h200_example_run(con):
    import json

    folder = Path(__file__).resolve().parent.parent / "examples" / "h200-train"
    if not folder.is_dir():
        pytest.skip("examples/h200-train is absent")
    ingest_paths(con, [folder])
    # from the raw spans: epochs 1..6 (epoch 0 is warm-up, epoch 7 stopped after 73 of 100 steps)
    spans = [json.loads(line) for line in (folder / "spans.jsonl").read_text().splitlines()]
    epochs = sorted((s for s in spans if s["kind"] == "epoch"), key=lambda s: s["start_mono_ns"])
    durations = [(s["end_mono_ns"] - s["start_mono_ns"]) / 1e9 for s in epochs[1:7]]
    row = one(con, "SELECT gpu, model, batch_size, precision, power_limit_w, samples_per_epoch, time_per_epoch_s, "
                   "avg_power_w, energy_per_epoch_j FROM training_data")
    assert row[:6] == ("H200", "examples/train.py:cnn-w64", 3328, "bf16-autocast", 700.0, 332800.0)
    assert row[6] == pytest.approx(sum(durations) / 6, abs=1e-5)
    # one tool per run: the NVML sensor (the run also has nvidia-smi's readings of the same GPU)
    energy = one(con, "SELECT sum(e.energy_j) FROM span_energy e JOIN sensors s USING (sensor_id) WHERE e.kind = 'epoch' "
                      "AND e.metric = 'power' AND s.tool = 'nvml' AND e.span_id IN (SELECT span_id FROM steady_spans)")[0]
    assert row[8] == pytest.approx(energy / 6)
    assert row[7] == pytest.approx(row[8] / row[6])
    assert 500 < row[7] < 700


def test_fit_with_one_collected_run_says_what_is_missing(runner, db_path, tmp_path):
    pytest.importorskip("sklearn")
    spans = [{"id": f"e{k}", "start_s": 1 + 2 * k, "end_s": 3 + 2 * k} for k in range(3)]
    folder = make_run(tmp_path / "r5", run_id="r5", seconds=8.0, spans=spans, tags={"model": "resnet50", "batch_size": 8})
    assert invoke(runner, "ingest", str(folder), "--db", str(db_path)).exit_code == 0
    result = invoke(runner, "fit", "--db", str(db_path))
    assert result.exit_code == 0, result.stderr
    # the power-limit response comes from the shipped prior (one run, one limit); the learners need more rows
    assert ("warning: TEST GPU: only 1 training row(s); gbr/poly/ols not fitted (measure at least 5, e.g. one run "
            "per power limit)") in result.stderr
    assert "warning: TEST GPU: measured at one power limit only; the response comes from the shipped prior" in result.stderr
    assert "stored 3 models" in result.stdout


def test_run_without_enough_spans_gives_no_row(con, tmp_path):
    folder = make_run(tmp_path / "r3", run_id="r3", spans=[{"id": "e0", "start_s": 1, "end_s": 5, "kind": "epoch"}])
    ingest_paths(con, [folder])
    assert one(con, "SELECT count(*) FROM training_data") == (0,)


# -- helpers --------------------------------------------------------------------------------------

def test_parse_limits():
    from dlwh.analysis.data import parse_limits
    from dlwh.errors import UsageError

    assert parse_limits("200") == [200.0]
    assert parse_limits("150, 200,250") == [150.0, 200.0, 250.0]
    assert parse_limits("100:300:25") == [100.0, 125.0, 150.0, 175.0, 200.0, 225.0, 250.0, 275.0, 300.0]
    assert parse_limits("100:190:50") == [100.0, 150.0]
    for bad in ("abc", "300:100:25", "100:300:0", "-5", "100:300"):
        with pytest.raises(UsageError, match="power limits"):
            parse_limits(bad)


@pytest.mark.parametrize("name, expected", [
    ("NVIDIA A100-SXM4-80GB", "A100"), ("Tesla V100-SXM2-16GB", "V100"), ("NVIDIA H200", "H200"),
    ("a40", "A40"), ("NVIDIA GeForce RTX 3090", "RTX 3090"), ("NVIDIA H100 80GB HBM3", "H100"),
    ("NVIDIA A100-PCIE-40GB", "A100"),
])
def test_normalise_gpu_python_and_sql_agree(con, name, expected):
    from dlwh.analysis.data import normalise_gpu

    assert normalise_gpu(name) == expected
    assert one(con, "SELECT normalise_gpu(?)", [name]) == (expected,)


def test_mape_and_r2():
    from dlwh.analysis.data import mape_pct, r2_log

    assert mape_pct([110, 90, 100], [100, 100, 100]) == pytest.approx(20 / 3)
    assert mape_pct([float("nan"), 50], [10, 100]) == pytest.approx(50.0)
    assert r2_log([1, 10, 100], [1, 10, 100]) == pytest.approx(1.0)


# -- fit and predict on the real A40 sweep -------------------------------------------------------

@pytest.fixture
def a40_db(shared_dir: Path, db_path: Path) -> Path:
    path = shared_dir / "datasets" / "zeus_nsdi23" / "summary_power_a40.csv"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    from dlwh.warehouse import open_warehouse

    con = open_warehouse(db_path)
    assert ingest_paths(con, [path])[0].outcome == "loaded"
    con.close()
    return db_path


def test_predict_before_fit_says_to_run_fit(runner, a40_db):
    result = invoke(runner, "predict", "--gpu", "A40", "--model", "resnet50", "--batch-size", "128",
                    "--power-limit", "200", "--db", str(a40_db))
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: no fitted models in this warehouse; run dlwh fit first"


def test_fit_on_an_empty_warehouse(runner, db_path):
    pytest.importorskip("sklearn")
    result = invoke(runner, "fit", "--db", str(db_path))
    assert result.exit_code == 1
    assert "no training data in this warehouse" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_fit_then_predict_on_the_a40_sweep(runner, a40_db):
    pytest.importorskip("sklearn")
    result = invoke(runner, "fit", "--n-estimators", "30", "--db", str(a40_db))
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("cross-validated accuracy (kfold")
    table = {line.split()[1]: line.split() for line in lines[2:6]}
    assert set(table) == {"physics", "gbr", "poly", "ols"}
    assert "stored 12 models" in result.stdout

    from dlwh.warehouse import open_warehouse

    con = open_warehouse(a40_db)
    stored = con.execute("SELECT model_id, n_rows, data_sha256, feature_ranges, metrics FROM fitted_models "
                         "ORDER BY 1").fetchall()
    assert [r[0] for r in stored][:3] == ["A40/avg_power_w/gbr", "A40/avg_power_w/ols", "A40/avg_power_w/physics"]
    from dlwh.analysis.data import data_hash, load_training_data

    assert {r[2] for r in stored} == {data_hash(load_training_data(con, "A40"))}
    assert '"power_limit_w": [100.0, 300.0]' in stored[0][3]
    assert one(con, "SELECT count(*) FROM fit_scores WHERE gpu_scope = 'A40' AND cv = 'kfold'") == (9,)
    # physics is scored by predicting new limits of a configuration from one run (each workload's sweeps
    # left out): better than 'nothing changes' on time and power
    physics = {t: json.loads(m) for t, m in con.execute(
        "SELECT target, metrics FROM fitted_models WHERE algo = 'physics'").fetchall()}
    for t in ("time_per_epoch_s", "avg_power_w"):
        assert physics[t]["mape_pct"] < physics[t]["baseline_mape_pct"]
    assert physics["avg_power_w"]["mape_pct"] < 5 and physics["time_per_epoch_s"]["mape_pct"] < 10
    measured = one(con, "SELECT time_per_epoch_s, avg_power_w FROM zeus_power_summary WHERE dataset = 'imagenet' "
                        "AND batch_size = 128 AND power_limit_w = 200")
    con.close()

    result = invoke(runner, "predict", "--gpu", "A40", "--model", "resnet50", "--batch-size", "128",
                    "--power-limit", "200", "--epochs", "90", "--algo", "physics", "--csv", "--db", str(a40_db))
    assert result.exit_code == 0, result.stderr
    import io

    import pandas as pd

    frame = pd.read_csv(io.StringIO(result.stdout))
    row = frame.iloc[0]
    # the physics model interpolates this measured configuration closely
    assert row["time_per_epoch_s"] == pytest.approx(measured[0], rel=0.05)
    assert row["avg_power_w"] == pytest.approx(measured[1], rel=0.05)
    assert row["time_per_epoch_s_lo"] < row["time_per_epoch_s"] < row["time_per_epoch_s_hi"]
    assert row["energy_per_epoch_j"] == pytest.approx(row["time_per_epoch_s"] * row["avg_power_w"])
    assert row["throughput_sps"] == pytest.approx(1281167 / row["time_per_epoch_s"])
    assert row["total_energy_j"] == pytest.approx(90 * row["energy_per_epoch_j"])
    assert "as in the training data: dataset imagenet, optimizer adadelta" in result.stderr

    result = invoke(runner, "predict", "--gpu", "A40", "--model", "resnet50", "--batch-size", "128",
                    "--power-limit", "200", "--db", str(a40_db))
    assert result.exit_code == 0
    out = result.stdout
    assert out.startswith("A40, resnet50, imagenet, batch 128, power limit 200 W")
    for label in ("throughput", "time per epoch", "average power", "energy per epoch", "(90 %:"):
        assert label in out

    result = invoke(runner, "predict", "--gpu", "a40", "--model", "resnet50", "--batch-size", "128",
                    "--power-limit", "100:300:50", "--db", str(a40_db))
    assert result.exit_code == 0
    body = result.stdout.splitlines()
    assert body[1].split()[:2] == ["limit", "W"] and [b.split()[0] for b in body[2:]] == ["100", "150", "200", "250", "300"]

    # outside the training range: a warning, still a prediction
    result = invoke(runner, "predict", "--gpu", "A40", "--model", "resnet50", "--batch-size", "2048",
                    "--power-limit", "350", "--algo", "gbr", "--db", str(a40_db))
    assert result.exit_code == 0
    assert "warning: power_limit_w 350 is outside the training data's range 100..300: extrapolating" in result.stderr

    # a model the training data lacks: zoo MACs, a note
    result = invoke(runner, "predict", "--gpu", "A40", "--model", "vgg16", "--batch-size", "64",
                    "--power-limit", "250", "--algo", "gbr", "--db", str(a40_db))
    assert result.exit_code == 0, result.stderr
    assert "vgg16 is not in the training data of A40; MACs and parameters from the zoo (3x224x224)" in result.stderr
    assert "model 'vgg16' is not in the training data" in result.stderr

    # physics cannot predict a configuration without a measured run (or an unconstrained estimate): one line
    result = invoke(runner, "predict", "--gpu", "A40", "--model", "vgg16", "--batch-size", "64",
                    "--power-limit", "250", "--algo", "physics", "--db", str(a40_db))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: the power-limit response predicts configurations with a measured run")


def test_predict_usage_errors(runner, a40_db):
    result = invoke(runner, "predict", "--power-limit", "abc", "--model", "resnet50", "--db", str(a40_db))
    assert result.exit_code == 2 and "power limits 'abc'" in result.stderr
    result = invoke(runner, "predict", "--power-limit", "200", "--model", "resnet50", "--macs", "5",
                    "--db", str(a40_db))
    assert result.exit_code == 2 and "not both" in result.stderr
    result = invoke(runner, "fit", "--cv", "loo", "--db", str(a40_db))
    assert result.exit_code == 2 and "--cv 'loo' is not one of" in result.stderr
    result = invoke(runner, "fit", "--algo", "svm", "--db", str(a40_db))
    assert result.exit_code == 2 and "--algo 'svm'" in result.stderr


@pytest.mark.slow
def test_group_model_cv_scores_physics_from_one_run_of_the_held_out_model(a40_db):
    """Leaving a model out, physics keeps that model's highest-limit runs (its one input) and is scored
    on the others; the statistical models see nothing of it and are scored on every row."""
    pytest.importorskip("sklearn")
    from dlwh.analysis import cv
    from dlwh.analysis.data import load_training_data
    from dlwh.analysis.fit import fit
    from dlwh.warehouse import open_warehouse

    con = open_warehouse(a40_db)
    rows = load_training_data(con, "A40")
    report = fit(con, target="speed", algo="all", gpu="A40", cv="group-model", n_estimators=20, store=False)
    con.close()
    scores = report.scores.set_index("algo")
    tops = rows.sort_values("power_limit_w").groupby("config").tail(1)
    assert scores.loc["physics", "n"] == len(rows) - len(tops)
    assert scores.loc["gbr", "n"] == len(rows)
    assert scores.loc["physics", "mape_pct"] < 10  # A40 leave-one-workload-out: 8.1 % in docs/accuracy.md
    for train, test, label in cv.physics_splits(rows, "group-model"):
        held = rows.loc[test, "model"].fillna("-").unique()
        assert list(held) == [label]
        in_train = rows.loc[train]
        assert set(in_train.index[in_train["model"].fillna("-") == label]) == \
            set(tops.index[tops["model"].fillna("-") == label])
