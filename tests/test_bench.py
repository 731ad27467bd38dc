"""dlwh bench on the CPU: the run it writes, its spans and tags, the warehouse view, the summary read
from the run directory (with a fake NVML replaying H200 values), errors, and imports without duckdb."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import invoke

pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parent / "data" / "collect" / "fakes"))
from harness import PYLIB, REPO, load_fake_pynvml  # noqa: E402

from dlwh.bench import BenchConfig, summarise_run  # noqa: E402
from dlwh.bench.summary import format_summary  # noqa: E402
from dlwh.ingest.loader import ingest_paths  # noqa: E402


@pytest.fixture
def no_nvml(monkeypatch):
    """NVML absent (as on this machine): the real pynvml fails to load its library."""
    mod = load_fake_pynvml()
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    monkeypatch.setenv("FAKE_NVML_INIT_ERROR", "12")
    monkeypatch.delenv("DLWH_RUN_DIR", raising=False)


@pytest.fixture
def fake_nvml(monkeypatch):
    mod = load_fake_pynvml()
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    for var in ("FAKE_NVML_GPUS", "FAKE_NVML_INIT_ERROR", "FAKE_NVML_NO_FIELDS", "FAKE_NVML_STATE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("DLWH_RUN_DIR", raising=False)
    return mod


def spans_of(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "spans.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_cli_cpu_run_writes_an_ingestible_run(runner, tmp_path, con, no_nvml):
    out = tmp_path / "run"
    res = invoke(runner, "bench", "lenet5", "--device", "cpu", "--steps", "3", "--batch-size", "4",
                 "--out", str(out), "--source", "auto")
    assert res.exit_code == 0, res.output
    assert "lenet5 batch 4 on cpu, fp32, no-sync" in res.stdout
    assert "throughput" in res.stdout and "samples/s" in res.stdout
    assert "no GPU power recorded here" in res.stdout

    manifest = json.loads((out / "run.json").read_text())
    assert manifest["exit_code"] == 0
    assert manifest["command"][:3] == ["dlwh", "bench", "lenet5"]
    tags = manifest["tags"]
    assert tags["workload"] == "dlwh-bench" and tags["model"] == "lenet5"
    assert (tags["batch_size"], tags["epochs"], tags["steps"]) == (4, 2, 3)
    assert (tags["precision"], tags["device"], tags["sync"], tags["input"]) == ("fp32", "cpu", "false", "1x32x32")
    assert "power_limit_w" not in tags

    sp = spans_of(out)
    kinds = [s["kind"] for s in sp]
    assert kinds.count("epoch") == 2 and kinds.count("step") == 6 and kinds.count("phase") == 24
    phases = [s["name"] for s in sp if s["kind"] == "phase"]
    assert phases[:4] == ["data", "forward", "backward", "optimizer"]
    epochs = sorted((s for s in sp if s["kind"] == "epoch"), key=lambda s: s["start_mono_ns"])
    assert [e["attrs"]["warmup"] for e in epochs] == [True, False]
    assert [(e["attrs"]["steps"], e["attrs"]["samples"]) for e in epochs] == [(3, 12), (3, 12)]
    steps = {s["span_id"]: s for s in sp if s["kind"] == "step"}
    for s in sp:
        if s["kind"] == "phase":
            assert s["parent_id"] in steps
        if s["kind"] == "step":
            assert s["attrs"]["samples"] == 4
            assert s["parent_id"] in {e["span_id"] for e in epochs}

    results = ingest_paths(con, [out])
    assert {r.outcome for r in results} == {"loaded"}
    row = con.execute("SELECT model, batch_size, precision, device, sync, layers, steady_epochs, steady_steps, "
                      "steady_samples, steady_s, throughput_samples_per_s, time_per_step_s, warmup_steps, "
                      "energy_per_sample_j, macs_per_sample, params, input_desc FROM bench_results").fetchall()
    assert len(row) == 1
    (model, bs, prec, dev, sync, layers, n_ep, n_steps, n_samples, steady_s, thr, tps, warm_steps,
     eps, macs, params, inp) = row[0]
    assert (model, bs, prec, dev, sync, layers) == ("lenet5", 4, "fp32", "cpu", False, False)
    assert (n_ep, n_steps, n_samples, warm_steps) == (1, 3, 12, 3)
    steady = epochs[1]
    exact_s = (steady["end_mono_ns"] - steady["start_mono_ns"]) / 1e9
    assert steady_s == pytest.approx(exact_s, abs=2e-6)  # warehouse keeps microseconds
    # Span ends are stored to the microsecond, so a ~4 ms CPU epoch can be off by 2 us (5e-4 relative):
    # the derived figures must follow the stored duration exactly and the true one within that rounding.
    assert thr == pytest.approx(12 / steady_s, rel=1e-9)
    assert tps == pytest.approx(steady_s / 3, rel=1e-9)
    assert thr == pytest.approx(12 / exact_s, rel=2e-6 / exact_s + 1e-9)
    assert eps is None  # no power source here
    assert (macs, params, inp) == (416520, 61706, "1x32x32")

    s = summarise_run(out)
    assert s.throughput_samples_per_s == pytest.approx(12 / exact_s, rel=1e-9)
    assert s.energy_per_sample_j is None and s.power_gpus == 0


@pytest.mark.slow
def test_energy_per_sample_from_fake_nvml_matches_the_view(tmp_path, con, fake_nvml):
    from dlwh.bench import run_bench

    cfg = BenchConfig(model="lenet5", batch_size=8, steps=4, epochs=3, device="cpu", out=tmp_path / "r",
                      sources="nvml", interval_ms=20, idle_s=0.15, power_limit_tag=300,
                      tags={"note": "fake"}, quiet=True)
    res = run_bench(cfg)
    s = res.summary
    assert (tmp_path / "r" / "nvml.csv").is_file()
    assert s.power_gpus == 1 and s.gpu == "NVIDIA H200"
    assert s.steady_epochs == 2 and s.steady_steps == 8 and s.steady_samples == 64
    assert s.energy_per_sample_j is not None and s.energy_per_sample_j > 0
    assert s.energy_per_sample_j == pytest.approx(s.steady_energy_j / 64)
    # the average lies within the replayed H200 series' range
    recorded = json.loads((Path(PYLIB).parent.parent / "h200" / "nvml.json").read_text())
    watts = [x["power_mw"] / 1000 for x in recorded["series_gpu0"]["samples"]]
    assert min(watts) <= s.avg_power_w <= max(watts)
    assert s.counter_energy_j is not None
    assert "J per sample" in format_summary(s)
    tags = json.loads((tmp_path / "r" / "run.json").read_text())["tags"]
    assert tags["power_limit_w"] == 300 and tags["note"] == "fake"

    ingest_paths(con, [res.run_dir])
    row = con.execute("SELECT energy_per_sample_j, steady_energy_j, avg_power_w, power_limit_w, gpu, n_gpus, "
                      "power_tool, warmup_energy_j, throughput_samples_per_s FROM bench_results").fetchone()
    eps, energy, power, limit, gpu, n_gpus, tool, warm_j, thr = row
    # same rule in SQL and in Python; SQL times are microseconds, Python's nanoseconds
    assert eps == pytest.approx(s.energy_per_sample_j, rel=2e-3)
    assert energy == pytest.approx(s.steady_energy_j, rel=2e-3)
    assert power == pytest.approx(s.avg_power_w, rel=2e-3)
    assert warm_j == pytest.approx(s.warmup_energy_j, rel=2e-3)
    assert thr == pytest.approx(s.throughput_samples_per_s, rel=2e-6 / s.steady_s + 1e-9)  # us vs ns
    assert (limit, gpu, n_gpus, tool) == (300.0, "NVIDIA H200", 1, "nvml")


@pytest.mark.slow
def test_sync_layers_amp_and_trace_every(tmp_path, no_nvml):
    from dlwh.bench import run_bench

    cfg = BenchConfig(model="lenet5", batch_size=2, steps=2, epochs=2, device="cpu", out=tmp_path / "r",
                      sync=True, layers=True, amp=True, quiet=True)
    run_bench(cfg)
    sp = spans_of(tmp_path / "r")
    layer = [s for s in sp if s["kind"] == "layer"]
    # LeNet-5's 12 leaf modules, once per step (4 steps) forward
    from dlwh.models import build_model

    net = build_model("lenet5")
    leaves = {n for n, m in net.named_modules() if not any(True for _ in m.children())}
    fwd = [s for s in layer if s["attrs"]["pass"] == "forward"]
    assert {s["name"] for s in fwd} == leaves and len(fwd) == 4 * len(leaves)
    assert {s["attrs"]["pass"] for s in layer} == {"forward", "backward"}
    assert {s["attrs"]["layer_type"] for s in fwd if s["name"] == "features.0"} == {"Conv2d"}
    tags = json.loads((tmp_path / "r" / "run.json").read_text())["tags"]
    assert (tags["precision"], tags["sync"], tags["layers"]) == ("amp-bf16", "true", "true")

    cfg = BenchConfig(model="lenet5", batch_size=2, steps=6, epochs=2, device="cpu", out=tmp_path / "t",
                      trace_every=4, quiet=True)
    run_bench(cfg)
    sp = spans_of(tmp_path / "t")
    assert [s["attrs"]["step"] for s in sp if s["kind"] == "step"] == [0, 4, 8]
    assert sum(s["kind"] == "phase" for s in sp) == 12
    assert [s["attrs"]["samples"] for s in sp if s["kind"] == "epoch"] == [12, 12]  # every step counts


@pytest.mark.slow
def test_seconds_mode_runs_each_epoch_for_a_time(tmp_path, no_nvml):
    from dlwh.bench import run_bench

    cfg = BenchConfig(model="lenet5", batch_size=2, epochs=2, epoch_seconds=0.3, device="cpu",
                      out=tmp_path / "r", quiet=True)
    s = run_bench(cfg).summary
    assert s.steady_s >= 0.3 and s.steady_steps >= 1
    tags = json.loads((tmp_path / "r" / "run.json").read_text())["tags"]
    assert tags["epoch_seconds"] == 0.3 and "steps" not in tags


@pytest.mark.slow
def test_default_out_dir_name(tmp_path, monkeypatch, no_nvml):
    from dlwh.bench import run_bench

    monkeypatch.chdir(tmp_path)
    res = run_bench(BenchConfig(model="LeNet-5", batch_size=2, steps=1, device="cpu", quiet=True))
    assert res.run_dir.parent == (tmp_path / "traces").resolve()
    assert res.run_dir.name.endswith("-bench-lenet5-bs2")
    assert json.loads((res.run_dir / "run.json").read_text())["tags"]["model"] == "lenet5"


@pytest.mark.parametrize("args, message", [
    (["--epochs", "1"], "--epochs must be at least 2"),
    (["--device", "tpu"], "--device must be cuda, cuda:N or cpu"),
    (["--seconds", "0"], "--seconds must be positive"),
    (["--tag", "model=x"], "--tag model is set by bench itself"),
    (["--power-limit-tag", "-5"], "--power-limit-tag must be a positive number"),
])
def test_bad_options_are_one_line(runner, tmp_path, args, message):
    res = invoke(runner, "bench", "lenet5", "--out", str(tmp_path / "r"), *args)
    assert res.exit_code == 2
    assert res.stderr.startswith("error: ") and message in res.stderr
    assert res.stderr.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_unknown_model_and_missing_gpu(runner, tmp_path, no_nvml):
    res = invoke(runner, "bench", "resnet-51", "--out", str(tmp_path / "r"))
    assert res.exit_code == 2 and "unknown model 'resnet-51'; did you mean" in res.stderr
    import torch

    if not torch.cuda.is_available():
        res = invoke(runner, "bench", "lenet5", "--device", "cuda", "--out", str(tmp_path / "r"))
        assert res.exit_code == 2
        assert "torch sees no CUDA GPU here; use --device cpu" in res.stderr
    assert not (tmp_path / "r").exists()


def test_existing_out_dir_is_refused(runner, tmp_path, no_nvml):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "x").write_text("x")
    res = invoke(runner, "bench", "lenet5", "--device", "cpu", "--out", str(tmp_path / "r"))
    assert res.exit_code == 2 and "already exists and is not an empty directory" in res.stderr


@pytest.mark.slow
def test_runs_without_duckdb_pandas_or_typer(tmp_path):
    """python -m dlwh.bench on a GPU node that has only torch and nvidia-ml-py."""
    code = (
        "import sys\n"
        "for n in ('duckdb', 'pandas', 'fvcore', 'sklearn', 'typer'):\n"
        "    sys.modules[n] = None\n"
        "from dlwh.bench.__main__ import main\n"
        "rc = main(['lenet5', '--device', 'cpu', '--steps', '2', '--batch-size', '2', '--out', 'r',\n"
        "           '--source', 'nvml', '--interval-ms', '20', '--json'])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('duckdb', 'pandas', 'fvcore', 'sklearn')\n"
        "               and sys.modules[m] is not None)\n"
        "assert not heavy, heavy\n"
        "sys.exit(rc)\n"
    )
    env = dict(os.environ, PYTHONPATH=f"{PYLIB}{os.pathsep}{REPO}")
    env.pop("DLWH_RUN_DIR", None)
    p = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["model"] == "lenet5" and out["power_gpus"] == 1 and out["energy_per_sample_j"] > 0
    assert (tmp_path / "r" / "nvml.csv").is_file()


def test_summary_integrates_like_the_warehouse(tmp_path, con):
    """A hand-written run: known power, a gap, the counter; exact energies in Python and SQL."""
    run = tmp_path / "run"
    run.mkdir()
    anchor_ns = 1_000_000_000_000
    manifest = {
        "format": "dlwh-run", "format_version": 1, "run_id": "handmade-1", "host": "h",
        "start_utc": "2026-11-21T10:00:00.000000Z", "end_utc": "2026-11-21T10:00:20.000000Z",
        "monotonic_anchor": {"utc": "2026-11-21T10:00:00.000000Z", "monotonic_ns": anchor_ns},
        "timezone": "UTC", "command": ["dlwh", "bench"], "exit_code": 0,
        "gpus": [{"index": 0, "uuid": "GPU-1", "name": "NVIDIA H200"}],
        "tags": {"workload": "dlwh-bench", "model": "resnet18", "batch_size": 10, "precision": "fp32",
                 "device": "cuda:0", "sync": "false", "layers": "false", "input": "3x224x224"},
    }
    (run / "run.json").write_text(json.dumps(manifest))
    # power: 100 W to t=2 s, ramp to 300 W at t=3 s, 300 W to t=9 s, no samples 9..16 s (a gap:
    # longer than 5 x the 1 s median step), 300 W from 16 s to 18 s. Counter: that curve's energy.
    times = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 16.0, 17.0, 18.0]
    power = [100, 100, 100, 300, 300, 300, 300, 300, 300, 300, 300, 300, 300]
    lines = ["timestamp_utc,monotonic_ns,gpu_index,gpu_uuid,power_w,power_instant_w,power_average_w,"
             "energy_total_mj,power_limit_w,enforced_power_limit_w,clock_sm_mhz,clock_mem_mhz,clock_gr_mhz,"
             "utilization_gpu_pct,utilization_memory_pct,temperature_gpu_c,memory_used_mib"]
    energy_mj = 0.0
    for i, (t, p) in enumerate(zip(times, power)):
        if i:
            energy_mj += (p + power[i - 1]) / 2 * (t - times[i - 1]) * 1000
        ns = anchor_ns + int(t * 1e9)
        lines.append(f"2026-11-21T10:00:{int(t):02d}.{int(round((t % 1) * 1e6)):06d}Z,{ns},0,GPU-1,{p},,,"
                     f"{int(energy_mj)},700,700,,,,,,,")
    (run / "nvml.csv").write_text("\n".join(lines) + "\n")

    def span(sid, kind, a, b, attrs):
        return json.dumps({"span_id": sid, "parent_id": None, "kind": kind, "name": kind,
                           "start_utc": f"2026-11-21T10:00:{int(a):02d}.{int(round((a % 1) * 1e6)):06d}Z",
                           "end_utc": f"2026-11-21T10:00:{int(b):02d}.{int(round((b % 1) * 1e6)):06d}Z",
                           "start_mono_ns": anchor_ns + int(a * 1e9), "end_mono_ns": anchor_ns + int(b * 1e9),
                           "attrs": attrs})

    (run / "spans.jsonl").write_text("\n".join([
        span("e0", "epoch", 1.5, 3.5, {"epoch": 0, "steps": 2, "samples": 20}),
        span("e1", "epoch", 3.5, 6.0, {"epoch": 1, "steps": 5, "samples": 50}),
        span("e2", "epoch", 6.0, 8.5, {"epoch": 2, "steps": 5, "samples": 50}),
    ]) + "\n")
    s = summarise_run(run)
    # warm-up 1.5..3.5: 100*0.5 + (100+300)/2*1 + 300*0.5 = 50 + 200 + 150
    assert s.warmup_energy_j == pytest.approx(400.0)
    assert s.warmup_s == pytest.approx(2.0) and s.warmup_steps == 2
    # steady 3.5..8.5 at 300 W
    assert s.steady_energy_j == pytest.approx(1500.0)
    assert (s.steady_epochs, s.steady_steps, s.steady_samples) == (2, 10, 100)
    assert s.throughput_samples_per_s == pytest.approx(20.0)
    assert s.time_per_step_s == pytest.approx(0.5)
    assert s.energy_per_sample_j == pytest.approx(15.0)
    assert s.avg_power_w == pytest.approx(300.0)
    assert s.counter_energy_j == pytest.approx(1500.0, abs=1.0)
    assert s.gpu == "NVIDIA H200"

    ingest_paths(con, [run])
    row = con.execute("SELECT steady_energy_j, energy_per_sample_j, warmup_energy_j, avg_power_w, "
                      "throughput_samples_per_s, time_per_step_s, power_limit_w, macs_per_sample, params "
                      "FROM bench_results WHERE run_id = 'handmade-1'").fetchone()
    assert row[:6] == pytest.approx((1500.0, 15.0, 400.0, 300.0, 20.0, 0.5))
    assert row[6] == 700.0
    assert row[7] == 1814073344 and row[8] == 11689512

    # an epoch that crosses the 9..16 s gap adds nothing for the missing part (the warehouse's rule)
    run2 = tmp_path / "run2"
    run2.mkdir()
    manifest["run_id"] = "handmade-2"
    (run2 / "run.json").write_text(json.dumps(manifest))
    # the same curve plus one later sample (a file with identical bytes would be loaded only once)
    last = lines[-1].split(",")
    last[0], last[1] = "2026-11-21T10:00:19.000000Z", str(anchor_ns + 19 * 10**9)
    last[7] = str(int(energy_mj + 300_000))
    (run2 / "nvml.csv").write_text("\n".join(lines + [",".join(last)]) + "\n")
    (run2 / "spans.jsonl").write_text("\n".join([
        span("e0", "epoch", 1.5, 3.5, {"epoch": 0, "steps": 2, "samples": 20}),
        span("e1", "epoch", 8.0, 17.0, {"epoch": 1, "steps": 5, "samples": 50}),
    ]) + "\n")
    assert summarise_run(run2).steady_energy_j == pytest.approx(300.0 + 300.0)
    ingest_paths(con, [run2])
    got = con.execute("SELECT steady_energy_j FROM bench_results WHERE run_id = 'handmade-2'").fetchone()[0]
    assert got == pytest.approx(600.0)


def test_summary_refuses_a_run_without_epochs(tmp_path):
    from dlwh.errors import DlwhError

    (tmp_path / "run.json").write_text(json.dumps({"run_id": "x", "tags": {}}))
    with pytest.raises(DlwhError, match="0 epoch span"):
        summarise_run(tmp_path)
    with pytest.raises(DlwhError, match="cannot read .*run.json"):
        summarise_run(tmp_path / "nope")
