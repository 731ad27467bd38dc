"""Collector overhead and accuracy on a real GPU (how docs/performance.md and docs/accuracy.md were made).

    PYTHONPATH=. python3 tests/data/collect/measure_h200.py OUTDIR

Read-only on the GPU: no power-limit, clock, persistence or compute-mode change. ``python3 -m
dlwh.collect`` is ``dlwh collect`` without the rest of the CLI (the GPU machine has no duckdb).
Writes OUTDIR/results.json (updated after every step) and OUTDIR/h200-train/ (the example run).
"""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PY = sys.executable
OUT = Path(sys.argv[1])
OUT.mkdir(parents=True, exist_ok=True)
TMP = Path(tempfile.mkdtemp(prefix="dlwh-measure-"))
RES: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
COLLECT = [PY, "-m", "dlwh.collect", "-q"]
DRY = os.environ.get("MEASURE_DRY") == "1"  # a quick run on a CPU machine with the fake NVML
TINY = ["--image-size", "16", "--width", "8", "--batch-size", "8"] if DRY else []
SCALE = 0.2 if DRY else 1.0


def save() -> None:
    (OUT / "results.json").write_text(json.dumps(RES, indent=1))


def run(argv: list[str], timeout: float = 300) -> dict:
    """Run argv; wall time and CPU time of it and its children."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    if p.returncode != 0:
        print("FAILED", argv, p.stdout[-2000:], p.stderr[-3000:], flush=True)
    return {"rc": p.returncode, "wall_s": wall, "cpu_s": cpu, "stdout": p.stdout, "stderr": p.stderr}


def train(args: list[str], collect_args: list[str] | None = None, out: Path | None = None) -> dict:
    cmd = ["python3" if not DRY else PY, "examples/train.py", *args, *TINY]
    if collect_args is not None:
        cmd = COLLECT + collect_args + (["--out", str(out)] if out else []) + ["--"] + cmd
    r = run(cmd, timeout=400)
    lines = [x for x in r["stdout"].splitlines() if x.startswith("{")]
    r["train"] = json.loads(lines[-1]) if lines else None
    return r


def step(name: str):
    print(f"== {name} ({time.strftime('%H:%M:%S')})", flush=True)


# 1. calibrate: choose a batch size for ~100 ms steps --------------------------------------------
step("calibrate")
cal = train(["--seconds", "2" if DRY else "5", "--batch-size", "256", "--accum", "1", "--warmup", "5"])
ms256 = cal["train"]["ms_per_step"]
mult = max(1, min(16, round(100 / ms256)))
BATCH = 256 * mult
RES["calibration"] = {"ms_per_step_at_256": ms256, "batch_size": BATCH}
save()
check = train(["--steps", "3" if DRY else "20", "--batch-size", str(BATCH), "--accum", "1", "--warmup", "5"])
MS = check["train"]["ms_per_step"]
STEPS = max(5 if DRY else 50, int(12_000 * SCALE / MS))
RES["calibration"].update({"ms_per_step": MS, "steps_for_slowdown": STEPS})
save()

# 1b. the example run: a real training workload of over a minute under the collector, with spans ----
step("example run")
ex = OUT / "h200-train"
r = train(["--seconds", "3" if DRY else "70", "--batch-size", str(BATCH), "--accum", "1", "--warmup", "10",
           "--layer-steps", "2", "--steps-per-epoch", "100"],
          ["--source", "auto", "--interval-ms", "100", "--tag", "model=examples/train.py:cnn-w64",
           "--tag", f"batch_size={BATCH}", "--tag", "precision=bf16-autocast", "--tag", "image_size=64"], ex)
from dlwh.collect.check import energy_check  # noqa: E402

RES["example"] = {"rc": r["rc"], "wall_s": r["wall_s"], "train": r["train"], "energy": energy_check(ex),
                  "files": {p.name: p.stat().st_size for p in ex.iterdir()}}
save()

# 2. span cost ----------------------------------------------------------------------------------
step("span cost")
SPAN_BENCH = r"""
import json, sys, tempfile, time
import torch
from dlwh.collect import span, set_run_dir
def per(n, **kw):
    for i in range(min(n, 2000)):
        with span("step", step=i, **kw): pass
    best = []
    for _ in range(3):
        t0 = time.perf_counter_ns()
        for i in range(n):
            with span("step", step=i, **kw): pass
        best.append((time.perf_counter_ns() - t0) / n)
    return min(best), sorted(best)[1]
out = {}
set_run_dir(None); out["off_ns"] = per(200000)
set_run_dir(tempfile.mkdtemp()); out["on_ns"] = per(100000)
if torch.cuda.is_available():
    torch.zeros(1, device="cuda"); torch.cuda.synchronize()
    out["on_sync_idle_gpu_ns"] = per(20000, sync=True)
@span("f")
def f(): return 1
t0 = time.perf_counter_ns()
for i in range(100000): f()
out["decorator_on_ns"] = (time.perf_counter_ns() - t0) / 100000
print(json.dumps(out))
"""
r = run([PY, "-c", SPAN_BENCH])
RES["span_cost"] = json.loads(r["stdout"].strip().splitlines()[-1]) if r["rc"] == 0 else r["stderr"][-2000:]
save()

# 3. collector CPU use: sleep workloads of two lengths; steady-state CPU = difference / difference ---
step("collector cpu")
cpu = {}
for src, iv in (("nvml", 100), ("nvml", 10), ("nvidia-smi", 100), ("nvidia-smi", 10)):
    pair = []
    for secs in ((1, 3) if DRY else (2, 12)):
        d = TMP / f"cpu-{src}-{iv}-{secs}"
        r = run(COLLECT + ["--source", src, "--interval-ms", str(iv), "--out", str(d), "--", "sleep", str(secs)])
        m = json.loads((d / "run.json").read_text())
        pair.append((r, m))
    (r1, m1), (r2, m2) = pair
    e2 = m2["sources"][0]
    cpu[f"{src}@{iv}ms"] = {
        "steady_cpu_pct": 100 * (r2["cpu_s"] - r1["cpu_s"]) / (r2["wall_s"] - r1["wall_s"]),
        "startup_cpu_s": r1["cpu_s"], "startup_wall_s": r1["wall_s"] - (1 if DRY else 2),
        "samples": e2.get("samples"), "achieved_interval_ms": e2.get("achieved_interval_ms"),
        "read_time_ms": e2.get("read_time_ms"), "missed_deadlines": e2.get("missed_deadlines"),
        "thread_cpu_pct": (100 * e2["thread_cpu_s"] / (3 if DRY else 12)) if "thread_cpu_s" in e2 else None,
        "rows": sum(1 for _ in open(d / e2["file"])) - 1 if (d / e2["file"]).exists() else None,
    }
    RES["collector_cpu"] = cpu
    save()

# 4. slowdown of the training workload: baseline / collect@100 ms / collect@10 ms, interleaved --------
step("slowdown")
args = ["--steps", str(STEPS), "--batch-size", str(BATCH), "--accum", "1", "--warmup", "10"]
cfgs = {"baseline": None, "collect_auto_100ms": ["--interval-ms", "100"],
        "collect_auto_10ms": ["--interval-ms", "10"]}
slow: dict = {k: [] for k in cfgs}
energy10 = []
for rep in range(1 if DRY else 3):
    for name, ca in cfgs.items():
        d = TMP / f"slow-{name}-{rep}" if ca is not None else None
        r = train(args, ca, d)
        slow[name].append({"ms_per_step": r["train"]["ms_per_step"] if r["train"] else None,
                           "train_s": r["train"]["seconds"] if r["train"] else None, "wall_s": r["wall_s"]})
        if ca is not None and rep == 0:
            from dlwh.collect.check import energy_check
            m = json.loads((d / "run.json").read_text())
            energy10.append({"config": name, "energy": energy_check(d),
                             "sources": [{k: s.get(k) for k in ("name", "interval_ms", "samples",
                                          "achieved_interval_ms", "missed_deadlines", "thread_cpu_s")}
                                         for s in m["sources"]]})
    RES["slowdown_runs"] = slow
    save()
summary = {}
base = statistics.median(x["ms_per_step"] for x in slow["baseline"])
for name, runs in slow.items():
    med = statistics.median(x["ms_per_step"] for x in runs)
    summary[name] = {"median_ms_per_step": med, "slowdown_pct": 100 * (med - base) / base,
                     "spread_pct": 100 * (max(x["ms_per_step"] for x in runs) - min(x["ms_per_step"] for x in runs)) / med,
                     "median_wall_s": statistics.median(x["wall_s"] for x in runs)}
RES["slowdown"] = summary
RES["energy_short_runs"] = energy10
save()

# 5. layer hooks: cost per step with per-layer spans on (forward and backward hooks on every leaf) ---
step("layer hooks")
lay = {}
for name, extra in (("off", []), ("layers", ["--layer-steps", "1000"])):
    d = TMP / f"layers-{name}"
    r = train(["--steps", "5" if DRY else "40", "--batch-size", str(BATCH), "--accum", "1", "--warmup", "5", *extra],
              ["--source", "nvml"], d)
    lines = sum(1 for _ in open(d / "spans.jsonl")) if (d / "spans.jsonl").exists() else 0
    lay[name] = {"ms_per_step": r["train"]["ms_per_step"] if r["train"] else None, "span_lines": lines}
RES["layer_hooks"] = lay
save()

# 7. NVML energy as a field value (cheaper?) vs the API call ------------------------------------------
step("nvml energy field")
FIELD = r"""
import json, time, statistics, pynvml as N
N.nvmlInit(); h = N.nvmlDeviceGetHandleByIndex(0)
def lat(fn, n=100):
    ts = []
    for _ in range(n):
        t0 = time.perf_counter_ns(); v = fn(); ts.append(time.perf_counter_ns() - t0)
    return statistics.median(ts) / 1000, v
out = {}
out["api_us"], api = lat(lambda: N.nvmlDeviceGetTotalEnergyConsumption(h))
for name, fid in (("fi83_total_energy", 83), ("fi191_energy", 191)):
    try:
        us, v = lat(lambda: N.nvmlDeviceGetFieldValues(h, [fid])[0])
        out[name] = {"us": us, "ret": v.nvmlReturn, "value": v.value.ullVal, "api_now": N.nvmlDeviceGetTotalEnergyConsumption(h)}
    except Exception as e:
        out[name] = repr(e)
print(json.dumps(out))
"""
r = run([PY, "-c", FIELD])
RES["nvml_energy_field"] = json.loads(r["stdout"].strip().splitlines()[-1]) if r["rc"] == 0 else r["stderr"][-1500:]
RES["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
save()
print(json.dumps({k: RES[k] for k in ("calibration", "span_cost", "slowdown", "layer_hooks")}, indent=1))
print(json.dumps(RES["collector_cpu"], indent=1))
print(json.dumps(RES["example"], indent=1))
shutil.rmtree(TMP, ignore_errors=True)
