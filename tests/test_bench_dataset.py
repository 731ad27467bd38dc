"""The committed H200 dataset (examples/h200-bench): ingests in one call and gives energy per sample and
throughput for every model and batch size, next to MACs and parameters; NVML's integrated power agrees
with its energy counter; the warehouse's numbers equal those bench printed on the GPU node."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, invoke

DATASET = EXAMPLES / "h200-bench"
RUNS = DATASET / "runs"

# The query of docs/models-and-bench.md ("Example: energy per sample against MACs"): keep it in step with the docs.
HEADLINE = """
SELECT model, batch_size,
       round(throughput_samples_per_s, 1) AS samples_per_s,
       round(time_per_step_s * 1000, 2)   AS step_ms,
       round(avg_power_w)                 AS power_w,
       round(energy_per_sample_j * 1000, 2) AS mj_per_sample,
       round(macs_per_sample / 1e9, 3)    AS gmacs_per_sample,
       params
FROM bench_results
WHERE NOT sync
ORDER BY macs_per_sample, batch_size
"""


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    from dlwh.ingest.loader import ingest_paths
    from dlwh.warehouse import open_warehouse

    if not RUNS.is_dir():
        pytest.skip(f"{RUNS} is absent")
    db = tmp_path_factory.mktemp("h200") / "h200.duckdb"
    con = open_warehouse(db)
    results = ingest_paths(con, [DATASET])
    failed = [(str(r.path), r.message) for r in results if r.outcome == "failed"]
    assert not failed, failed
    yield con, db
    con.close()


@pytest.mark.slow
def test_every_model_and_batch_size(warehouse):
    con, _ = warehouse
    rows = con.execute(HEADLINE).fetchall()
    by_model: dict[str, set[int]] = {}
    for model, bs, thr, step_ms, power, mj, gmacs, params in rows:
        by_model.setdefault(model, set()).add(bs)
        assert thr > 0 and step_ms > 0
        assert mj is not None and mj > 0
        assert 50 < power <= 720  # an H200 at its own 700 W limit
        assert gmacs is not None and params is not None and params > 0
    assert len(by_model) >= 10
    assert all(len(sizes) >= 3 for sizes in by_model.values()), by_model
    assert len(rows) == sum(len(v) for v in by_model.values())  # one run per model and batch size


def test_runs_are_h200_fp32_at_the_default_limit(warehouse):
    con, _ = warehouse
    rows = con.execute("SELECT gpu, n_gpus, power_tool, power_limit_w, precision, device, "
                       "steady_epochs, steady_s, warmup_s FROM bench_results").fetchall()
    assert len(rows) == len(list(RUNS.iterdir()))
    for gpu, n, tool, limit, precision, device, epochs, steady_s, warm_s in rows:
        assert (gpu, n, tool, limit, precision, device) == ("NVIDIA H200", 1, "nvml", 700.0, "fp32", "cuda:0")
        assert epochs >= 1 and warm_s > 0 and steady_s > 0


def test_known_values(warehouse):
    """A few rows against the raw files: resnet50 at batch 64 and bert_base at 32."""
    con, _ = warehouse
    for name in ("resnet50-bs64", "bert_base-bs32"):
        run = RUNS / name
        run_id = json.loads((run / "run.json").read_text())["run_id"]
        epochs = sorted((json.loads(line) for line in (run / "spans.jsonl").read_text().splitlines()
                         if '"kind": "epoch"' in line), key=lambda s: s["start_mono_ns"])
        steady = epochs[1:]
        secs = sum(e["end_mono_ns"] - e["start_mono_ns"] for e in steady) / 1e9
        samples = sum(e["attrs"]["samples"] for e in steady)
        steps = sum(e["attrs"]["steps"] for e in steady)
        thr, tps, warm_steps, macs, params = con.execute(
            "SELECT throughput_samples_per_s, time_per_step_s, warmup_steps, macs_per_sample, params "
            "FROM bench_results WHERE run_id = ?", [run_id]).fetchone()
        assert thr == pytest.approx(samples / secs, rel=1e-5)
        assert tps == pytest.approx(secs / steps, rel=1e-5)
        assert warm_steps == epochs[0]["attrs"]["steps"]
        expected = {"resnet50-bs64": (4089184256, 25557032), "bert_base-bs32": (11174215680, 109482240)}
        assert (macs, params) == expected[name]


def test_nvml_integral_agrees_with_its_energy_counter(warehouse):
    """Per run, over the whole recording: trapezoid of NVML power vs the NVML energy counter."""
    con, _ = warehouse
    rows = con.execute("SELECT run_id, energy_j, reported_energy_j, energy_diff_pct, n_gaps "
                       "FROM run_energy WHERE metric = 'power'").fetchall()
    assert len(rows) == len(list(RUNS.iterdir()))
    for run_id, energy, reported, diff, gaps in rows:
        assert reported > 0 and gaps == 0
        assert abs(diff) < 2.0, (run_id, energy, reported, diff)


@pytest.mark.slow
def test_warehouse_equals_what_bench_printed_on_the_gpu(warehouse):
    """results.jsonl was written on the GPU node (no duckdb) from the run directories."""
    con, _ = warehouse
    printed = [json.loads(line) for line in (DATASET / "results.jsonl").read_text().splitlines()]
    assert len(printed) == len(list(RUNS.iterdir()))
    for p in printed:
        thr, eps, warm_j = con.execute(
            "SELECT throughput_samples_per_s, energy_per_sample_j, warmup_energy_j "
            "FROM bench_results WHERE run_id = ?", [p["run_id"]]).fetchone()
        assert thr == pytest.approx(p["throughput_samples_per_s"], rel=1e-4)
        assert eps == pytest.approx(p["energy_per_sample_j"], rel=2e-3)
        assert warm_j == pytest.approx(p["warmup_energy_j"], rel=2e-3)
        if not p["name"].endswith("-layers"):  # steady windows of seconds: counter agrees too
            assert abs(p["counter_diff_pct"]) < 1.0, p["name"]


def test_cli_shows_the_table(warehouse, runner):
    _, db = warehouse
    res = invoke(runner, "sql", HEADLINE, "--db", str(db))
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert lines[0].split() == ["model", "batch_size", "samples_per_s", "step_ms", "power_w", "mj_per_sample",
                                "gmacs_per_sample", "params"]
    assert any(line.split()[:2] == ["resnet50", "64"] for line in lines)


def test_dataset_is_small():
    if not RUNS.is_dir():
        pytest.skip(f"{RUNS} is absent")
    size = sum(f.stat().st_size for f in DATASET.rglob("*") if f.is_file())
    assert size < 20 * 2**20
