"""Stage 1: structure features, the per-layer-type roofline, estimate_unconstrained on real bench runs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from dlwh.analysis import unconstrained as U
from dlwh.errors import DlwhError, UsageError
from dlwh.models.structure import CATEGORIES, read_structure_table
from tests.conftest import ROOT

RUNS = ROOT / "examples" / "h200-bench" / "runs"
# resnet34 is never ingested: it is the "new model" of these tests
INGESTED = [f"{m}-bs{b}" for m, sizes in {
    "resnet18": (64, 128, 256), "vgg11": (32, 64, 128), "mobilenet_v2": (64, 128),
    "googlenet": (64, 128), "resnet50": (64, 128), "alexnet": (128, 256)}.items() for b in sizes]


def _features(macs=(0, 0, 0, 0), elems=(0,) * 8, kernels=0, params=0, batch=1):
    return U.StepFeatures(np.array([macs], float), np.array([elems], float), np.array([float(kernels)]),
                          np.array([float(params)]), np.array([float(batch)]))


def _theta(conv=1e12, dw=1e11, linear=5e11, attention=5e11, bw_matrix=1e12, bw_other=5e11, g=1e-6, cpu_k=2e-5,
           cpu_step=1e-4):
    return np.log([conv, dw, linear, attention, bw_matrix, bw_other, g, cpu_k, cpu_step])


def test_roofline_compute_bound_step_is_macs_over_rate():
    # 2e12 conv MACs at 1e12 MAC/s: 2 s of compute; 1e9 elements * 4 B at 1e12 B/s = 4 ms of memory
    f = _features(macs=(2e12, 0, 0, 0), elems=(1e9, 0, 0, 0, 0, 0, 0, 0), kernels=0)
    parts = U.roofline_parts(f, _theta())
    matrix = (2.0 ** 4 + 0.004 ** 4) ** 0.25
    gpu = matrix + U.EXTRA_KERNELS * 1e-6
    launch = 1e-4 + U.EXTRA_KERNELS * 2e-5
    assert parts["compute_s"][0] == pytest.approx(2.0)
    assert parts["memory_s"][0] == pytest.approx(0.004)
    assert parts["gpu_s"][0] == pytest.approx(gpu)
    assert parts["time_s"][0] == pytest.approx((gpu ** 4 + launch ** 4) ** 0.25)
    assert parts["time_s"][0] == pytest.approx(2.0, rel=1e-4)


def test_roofline_memory_bound_layers_cost_bytes_over_bandwidth():
    # norm + elementwise: 1e11 elements * 4 B at 5e11 B/s = 0.8 s, no MACs; depthwise 1e9 MACs at 1e11 = 10 ms
    # but its 1e10 elements * 4 B at 1e12 B/s = 40 ms of memory: memory-bound
    f = _features(macs=(0, 1e9, 0, 0), elems=(0, 1e10, 0, 0, 5e10, 5e10, 0, 0))
    parts = U.roofline_parts(f, _theta())
    expected = 0.8 + (0.01 ** 4 + 0.04 ** 4) ** 0.25 + U.EXTRA_KERNELS * 1e-6
    assert parts["gpu_s"][0] == pytest.approx(expected)


def test_roofline_launch_bound_step_is_kernels_times_cpu_cost():
    # 1000 kernels of nothing: the CPU launches them at 20 us each plus 0.1 ms per step
    f = _features(kernels=1000)
    parts = U.roofline_parts(f, _theta())
    launch = 1e-4 + (1000 + U.EXTRA_KERNELS) * 2e-5
    assert parts["launch_s"][0] == pytest.approx(launch)
    gpu = (1000 + U.EXTRA_KERNELS) * 1e-6
    assert parts["time_s"][0] == pytest.approx((gpu ** 4 + launch ** 4) ** 0.25)
    assert parts["time_s"][0] == pytest.approx(launch, rel=1e-4)


def test_fit_roofline_recovers_rates_it_can_see():
    rng = np.random.default_rng(0)
    n = 40
    f = U.StepFeatures(
        macs=np.column_stack([rng.uniform(1e10, 1e12, n), rng.uniform(0, 1e9, n), rng.uniform(1e9, 5e11, n),
                              np.zeros(n)]),
        elems=np.column_stack([rng.uniform(1e8, 1e9, n), np.zeros(n), rng.uniform(1e7, 1e8, n), np.zeros(n),
                               rng.uniform(1e8, 2e9, n), rng.uniform(1e8, 2e9, n), np.zeros(n), np.zeros(n)]),
        kernels=rng.uniform(50, 800, n), params=np.full(n, 1e7), batch=np.full(n, 64.0))
    truth = _theta(conv=8e13, linear=2e13, bw_other=1.5e12)
    t = U.roofline_parts(f, truth)["time_s"]
    theta = U.fit_roofline(f, t)
    rates, true_rates = np.exp(theta), np.exp(truth)
    assert rates[0] == pytest.approx(true_rates[0], rel=0.1)  # conv
    assert rates[2] == pytest.approx(true_rates[2], rel=0.1)  # linear
    assert rates[5] == pytest.approx(true_rates[5], rel=0.1)  # other bandwidth
    assert np.allclose(U.roofline_parts(f, theta)["time_s"], t, rtol=0.02)


def test_power_share_model_stays_between_floor_and_limit():
    parts = {"time_s": np.array([1.0, 1.0]), "compute_s": np.array([0.9, 0.0]), "memory_s": np.array([0.1, 0.2]),
             "launch_s": np.array([0.0, 0.9])}
    coef = U.fit_power(parts, np.array([0.9, 0.3]))
    frac = U.predict_power(parts, coef)
    assert frac == pytest.approx([0.9, 0.3], abs=0.02)
    assert U.predict_power(parts, np.array([2.0, 0, 0, 0])).tolist() == [1.0, 1.0]


@pytest.mark.slow
def test_structure_of_lenet5_by_hand():
    torch = pytest.importorskip("torch")  # noqa: F841
    from dlwh.models.structure import profile_structure

    s = profile_structure("lenet5")
    assert (s.model, s.input_desc) == ("lenet5", "1x32x32")
    assert set(s.counts) == {"conv", "linear", "elementwise", "pooling"}
    conv1, conv2 = 6 * 28 * 28 * 25, 16 * 10 * 10 * 150  # forward MACs per sample
    # forward + weight gradient for both, input gradient for conv2 only (the image needs none)
    assert s.counts["conv"].macs_per_sample == 2 * conv1 + 3 * conv2
    assert s.counts["linear"].macs_per_sample == 3 * (400 * 120 + 120 * 84 + 84 * 10)
    assert s.counts["conv"].kernels == 4 and s.counts["linear"].kernels == 9
    assert s.counts["conv"].macs_fixed == 0 and s.counts["conv"].elems_fixed > 0  # weights are per step
    # avg pools: forward in + out, backward grad-out + input + grad-in, for 6x28x28 -> 14 and 16x10x10 -> 5
    assert s.counts["pooling"].elems_per_sample == (4704 + 1176) + (1176 + 2 * 4704) + (1600 + 400) + (400 + 2 * 1600)
    assert s.total("params") == 61_706


def test_shipped_structure_covers_the_zoo_and_its_macs():
    from dlwh.models import list_models, read_zoo_table

    rows = read_structure_table()
    assert {r["model"] for r in rows} == {s.name for s in list_models()}
    assert {r["category"] for r in rows} <= set(CATEGORIES)
    zoo = {r.model: r for r in read_zoo_table()}
    for model in ("resnet50", "vit_b_16", "bert_base", "mobilenet_v2"):
        mine = [r for r in rows if r["model"] == model]
        head = 768 * 2 + 2 if model == "bert_base" else 0  # bench trains BERT with a 2-class head
        assert sum(r["params"] for r in mine) == zoo[model].params + head
        train_macs = sum(r["macs_per_sample"] for r in mine)
        # forward + both gradients is about 3x forward (less the first layer's input gradient)
        assert 2.7 * zoo[model].macs_per_sample < train_macs <= 3.0 * zoo[model].macs_per_sample + 3 * head
    vit = {r["category"]: r for r in rows if r["model"] == "vit_b_16"}
    assert vit["attention"]["macs_per_sample"] == 3 * 12 * 2 * 197 * 197 * 768  # QK^T and PV, fwd + 2 grads
    assert "depthwise" in {r["category"] for r in rows if r["model"] == "mobilenet_v2"}


@pytest.fixture(scope="module")
def h200(tmp_path_factory):
    from dlwh.ingest.loader import ingest_paths
    from dlwh.warehouse import open_warehouse

    if not RUNS.is_dir():
        pytest.skip(f"{RUNS} is absent")
    con = open_warehouse(tmp_path_factory.mktemp("uc") / "h200.duckdb")
    results = ingest_paths(con, [RUNS / name for name in INGESTED])
    assert not [r for r in results if r.outcome == "failed"]
    yield con
    con.close()


@pytest.mark.slow
def test_measured_configuration_is_the_runs_mean(h200):
    r = U.estimate_unconstrained(h200, "H200", "ResNet-18", 128)
    truth_t, truth_p = h200.execute(
        "SELECT throughput_samples_per_s, avg_power_w FROM bench_results WHERE model = 'resnet18' "
        "AND batch_size = 128").fetchone()
    assert r.method == "measured"
    assert r.throughput_sps == pytest.approx(truth_t) and r.power_w == pytest.approx(truth_p)
    assert (r.throughput_sps_lo, r.throughput_sps_hi) == pytest.approx((0.97 * truth_t, 1.03 * truth_t))
    assert r.energy_per_sample_j == pytest.approx(truth_p / truth_t)


@pytest.mark.slow
def test_new_model_is_predicted_by_the_roofline_within_its_interval(h200):
    r = U.estimate_unconstrained(h200, "NVIDIA H200", "resnet34", 64, precision="fp32")
    assert r.method == "roofline"
    assert "fitted on 14 fp32 bench runs of 6 models on H200" in r.notes[0]
    truth = 3072.4, 522.4  # examples/h200-bench/runs/resnet34-bs64 (not ingested)
    assert r.throughput_sps_lo < truth[0] < r.throughput_sps_hi
    assert abs(r.throughput_sps / truth[0] - 1) < 0.25
    assert r.power_w_lo < truth[1] < r.power_w_hi <= 700 * 1.05
    assert abs(r.power_w / truth[1] - 1) < 0.15


@pytest.mark.slow
def test_other_batch_size_of_a_measured_model_is_scaled_to_its_runs(h200):
    r = U.estimate_unconstrained(h200, "H200", "mobilenet_v2", 256)
    assert r.method == "roofline-calibrated"
    truth = 2596.8  # examples/h200-bench/runs/mobilenet_v2-bs256 (not ingested)
    assert abs(r.throughput_sps / truth - 1) < 0.15
    assert r.throughput_sps_lo < truth < r.throughput_sps_hi


@pytest.mark.slow
def test_model_known_only_by_size_uses_macs(h200):
    r = U.estimate_unconstrained(h200, "H200", None, 64, macs=3.66e9, params=21.8e6)
    assert r.method == "macs-loglinear" and r.throughput_sps > 0
    assert r.throughput_sps_lo < r.throughput_sps < r.throughput_sps_hi
    assert 0 < r.power_w <= 700


@pytest.mark.slow
def test_unknown_model_names_close_ones_and_the_size_options(h200):
    with pytest.raises(UsageError) as err:
        U.estimate_unconstrained(h200, "H200", "resnt50", 64)
    assert str(err.value) == (
        "unknown model 'resnt50': not in the zoo or the warehouse; did you mean resnet50, resnet34, resnet18, "
        "lenet5? Or give its size with --macs MACS_PER_SAMPLE --params PARAMS (forward multiply-accumulates "
        "per sample, parameters)")


@pytest.mark.slow
def test_unknown_gpu_and_bad_arguments(h200):
    with pytest.raises(DlwhError) as err:
        U.estimate_unconstrained(h200, "A100", "resnet50", 64)
    assert str(err.value) == (
        "no unconstrained 'dlwh bench' runs of GPU 'A100' in the warehouse (GPUs with runs: H200); run "
        "'dlwh bench MODEL --batch-size B' on that GPU and ingest the run directory")
    with pytest.raises(UsageError, match="batch size must be a positive whole number, not 0"):
        U.estimate_unconstrained(h200, "H200", "resnet50", 0)
    with pytest.raises(UsageError, match=r"--macs must be a positive number, not nan"):
        U.estimate_unconstrained(h200, "H200", None, 64, macs=math.nan, params=1e6)
    with pytest.raises(UsageError, match="give a model name, or its size"):
        U.estimate_unconstrained(h200, "H200", None, 64)
    with pytest.raises(UsageError, match="precision 'fp64' is not one of"):
        U.estimate_unconstrained(h200, "H200", "resnet50", 64, precision="fp64")
    with pytest.raises(DlwhError, match="no amp-bf16 bench runs of GPU H200"):
        U.estimate_unconstrained(h200, "H200", "resnet50", 64, precision="bf16")


def test_empty_warehouse_says_which_gpus_have_runs(con):
    with pytest.raises(DlwhError) as err:
        U.estimate_unconstrained(con, "H100", "resnet50", 64)
    assert str(err.value) == (
        "no unconstrained 'dlwh bench' runs of GPU 'H100' in the warehouse (GPUs with runs: none); run "
        "'dlwh bench MODEL --batch-size B' on that GPU and ingest the run directory")
    with pytest.raises(UsageError, match="batch size must be a positive whole number, not -3"):
        U.estimate_unconstrained(con, "H100", "resnet50", -3)


def test_user_structure_rows_override_the_shipped_ones(con):
    con.execute("INSERT INTO model_structure (model, input_desc, category, macs_per_sample, macs_fixed, "
                "elems_per_sample, elems_fixed, kernels, params) VALUES ('mynet', '3x64x64', 'conv', 10, 0, 5, 1, 2, 3)")
    table = U.structure_table(con)
    mine = table[table["model"] == "mynet"]
    assert mine[["category", "macs_per_sample", "kernels"]].values.tolist() == [["conv", 10, 2]]
    assert "resnet50" in set(table["model"])
    wide = U._wide(table)
    f = U.step_features(wide, ["mynet"], [4])
    assert f.macs[0].tolist() == [40.0, 0.0, 0.0, 0.0]
    assert f.elems[0, 0] == 21.0 and f.kernels[0] == 2.0
    assert f.elems[0, CATEGORIES.index("elementwise")] == 15.0  # optimizer: 5 x 3 parameters


def test_collect_still_imports_without_fvcore_and_the_analysis_stack():
    import subprocess
    import sys

    code = ("import sys; import dlwh.collect, dlwh.models.structure; "
            "bad = [m for m in ('fvcore', 'duckdb', 'pandas', 'sklearn', 'torch') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(ROOT))
    assert out.returncode == 0, out.stdout + out.stderr


def test_transfer_recovers_a_gpu_twice_as_fast():
    ref = U.ReferenceFit("REF", "fp32", _theta(conv=5e13, linear=2e13, bw_matrix=2e12, bw_other=1e12),
                         np.array([0.3, 0.6, 0.2, 0.0]), np.array([-0.2, 0.2]), np.array([-0.1, 0.1]), "test")
    wide = U._wide(U.structure_table())
    import pandas as pd

    runs = pd.DataFrame({"model": ["resnet18", "vgg11"], "batch_size": [64, 32]})
    fast = ref.theta + np.log(2.0) * U._SCALE_SIGN  # every rate doubled, every per-kernel cost halved
    f = U.step_features(wide, runs["model"], runs["batch_size"])
    runs["throughput_sps"] = runs["batch_size"] / U.roofline_parts(f, fast)["time_s"]
    runs["power_w"] = 0.9 * 300.0 * U.predict_power(U.roofline_parts(f, fast), ref.power_coef)
    fitted = U.fit_transfer(ref, runs, wide, 300.0)
    assert math.exp(fitted.scale) == pytest.approx(2.0, rel=1e-3)
    tp, pw = fitted.predict(["resnet34"], [64])
    g = U.step_features(wide, ["resnet34"], [64])
    assert tp[0] == pytest.approx(64 / U.roofline_parts(g, fast)["time_s"][0], rel=1e-3)
    assert pw[0] == pytest.approx(0.9 * 300.0 * U.predict_power(U.roofline_parts(g, fast), ref.power_coef)[0], rel=1e-3)


def test_shipped_reference_is_read():
    refs = U.read_reference()
    assert [(r.gpu, r.precision) for r in refs] == [("H200", "fp32")]
    assert refs[0].theta.shape == (len(U.PARAM_NAMES),) and refs[0].q_throughput[0] < 0 < refs[0].q_throughput[1]
    assert "python benchmarks/bench_new_model.py --write-prior" in refs[0].source


@pytest.mark.slow
def test_gpu_with_two_models_borrows_the_shipped_fit(tmp_path):
    from dlwh.ingest.loader import ingest_paths
    from dlwh.warehouse import open_warehouse

    con = open_warehouse(tmp_path / "few.duckdb")
    ingest_paths(con, [RUNS / "resnet18-bs64", RUNS / "vgg11-bs32"])
    r = U.estimate_unconstrained(con, "H200", "resnet34", 64)
    con.close()
    assert r.method == "roofline-transfer"
    assert r.notes[0].startswith("only 2 model(s) measured on H200 (3 needed for its own fit): the roofline fitted "
                                 "on H200 (33 runs of 11 networks in examples/h200-bench;")
    truth = 3072.4  # examples/h200-bench/runs/resnet34-bs64 (in the shipped fit: this checks the mechanics)
    assert r.throughput_sps_lo < truth < r.throughput_sps_hi


@pytest.mark.slow
def test_only_runs_at_the_gpus_highest_limit_are_unconstrained(tmp_path):
    from dlwh.ingest.loader import ingest_paths
    from dlwh.warehouse import open_warehouse

    con = open_warehouse(tmp_path / "limits.duckdb")
    ingest_paths(con, [RUNS / "resnet18-bs64", RUNS / "resnet18-bs128", RUNS / "resnet18-bs32-layers"])
    capped = con.execute("SELECT run_id FROM bench_results WHERE batch_size = 128").fetchone()[0]
    con.execute("INSERT INTO run_tags (run_id, key, value) VALUES (?, 'power_limit_w', '300')", [capped])
    runs = U.bench_runs(con)
    con.close()
    # the 300 W run is capped, the --layers --sync run is not a throughput measurement
    assert runs[["model", "batch_size", "power_limit_w", "gpu_key"]].values.tolist() == [["resnet18", 64, 700.0, "H200"]]


@pytest.mark.slow
def test_predict_uses_the_estimate_for_a_model_never_measured(h200, runner):
    from tests.conftest import invoke

    db = h200.execute("SELECT file FROM pragma_database_list WHERE name = current_database()").fetchone()[0]
    h200.execute("CHECKPOINT")
    fit = invoke(runner, "fit", "--db", db)
    assert fit.exit_code == 0, fit.output
    out = invoke(runner, "predict", "--gpu", "H200", "--model", "vit_b_16", "--batch-size", "64",
                 "--power-limit", "700", "--db", db)
    assert out.exit_code == 0, out.output
    est = U.estimate_unconstrained(h200, "H200", "vit_b_16", 64)
    assert (f"note: no run of this configuration on H200: unconstrained throughput {est.throughput_sps:.4g} "
            f"samples/s and power {est.power_w:.4g} W estimated (roofline); no --samples-per-epoch: an epoch "
            "here is one step of 64 samples (pass --samples-per-epoch N for your dataset)") in out.output


def test_store_structure_writes_one_model_and_replaces_it(con):
    from dlwh.models.structure import CategoryCount, ModelStructure, store_structure

    s = ModelStructure("mynet", "3x64x64", {
        "conv": CategoryCount("conv", 3e9, 0, 2e6, 1e6, 40, 1_000_000),
        "linear": CategoryCount("linear", 1e6, 0, 1e3, 2e6, 6, 500_000)})
    assert store_structure(con, s) == 2
    assert store_structure(con, s) == 2  # a re-run replaces, never duplicates
    rows = con.execute("SELECT category, macs_per_sample, elems_fixed, kernels, params, torch_version IS NOT NULL "
                       "FROM model_structure ORDER BY category").fetchall()
    assert rows == [("conv", 3_000_000_000, 1_000_000, 40, 1_000_000, True), ("linear", 1_000_000, 2_000_000, 6, 500_000, True)]
    assert "mynet" in set(U.structure_table(con)["model"])


def test_conformal_quantiles_take_the_finite_sample_order_statistics():
    e = np.arange(1, 40, dtype=float)  # 39 errors: ceil(0.95 * 40) = 38th smallest, floor(0.05 * 40) = 2nd
    assert U.conformal_quantiles(e[::-1]).tolist() == [2.0, 38.0]
    assert U.conformal_quantiles(np.array([0.3, -0.1, 0.2])).tolist() == [-0.1, 0.3]  # few errors: the extremes
