"""Record the span-energy traces on a GPU machine (read-only on the GPU). Written for this issue's
busy/idle and training recordings; NOT run yet (no GPU machine could be started in the session that
wrote it). Then: OUTDIR/busy-idle -> tests/data/spans/busy-idle, OUTDIR/train -> examples/<gpu>-train:

    PYTHONPATH=. python3 tests/data/spans/record.py OUTDIR

1. probe: NVML's energy counter, instant power and 1 s power read back to back for 3 s (idle, busy,
   idle), to see how often each one changes;
2. cost: ``span(energy=True)`` against a plain span, per call, on an idle GPU;
3. busy-idle: tests/data/spans/workload.py under ``dlwh collect`` (NVML at 10 ms: instant power
   every 10 ms, the energy counter every 100 ms; nvidia-smi at 10 ms);
4. train: examples/train.py with synchronised phase spans under ``dlwh collect`` likewise (the
   quickstart example run).

No power limit, clock, persistence or compute-mode change, no reset.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

PY = sys.executable
OUT = Path(sys.argv[1])
OUT.mkdir(parents=True, exist_ok=True)
RES: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
COLLECT = [PY, "-m", "dlwh.collect", "-q"]


def save() -> None:
    (OUT / "results.json").write_text(json.dumps(RES, indent=1))


def probe() -> None:
    import pynvml as N
    import torch

    N.nvmlInit()
    h = N.nvmlDeviceGetHandleByIndex(0)
    RES["gpu"] = N.nvmlDeviceGetName(h)
    RES["driver"] = N.nvmlSystemGetDriverVersion()
    fi = [(N.NVML_FI_DEV_POWER_INSTANT, 0)]
    rows = []
    x = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    torch.cuda.synchronize()
    stop = threading.Event()

    def load() -> None:
        time.sleep(1.0)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 1.0:
            x @ x
            torch.cuda.synchronize()

    th = threading.Thread(target=load)
    th.start()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 3.0:
        t = time.monotonic_ns()
        e = N.nvmlDeviceGetTotalEnergyConsumption(h)
        t2 = time.monotonic_ns()
        inst = N.nvmlDeviceGetFieldValues(h, fi)[0].value.uiVal
        avg = N.nvmlDeviceGetPowerUsage(h)
        rows.append((t, t2, e, inst, avg))
    th.join()
    stop.set()
    N.nvmlShutdown()

    def changes(col: int) -> list[float]:
        ts = [r[0] for k, r in enumerate(rows) if k and r[col] != rows[k - 1][col]]
        return [(b - a) / 1e6 for a, b in zip(ts, ts[1:])]

    def summ(v: list[float]) -> dict:
        v = sorted(v)
        return {"n": len(v), "p10": v[len(v) // 10], "p50": v[len(v) // 2], "p90": v[9 * len(v) // 10]} if v else {}

    RES["probe"] = {"reads": len(rows), "read_ms_p50": sorted((r[1] - r[0]) / 1e6 for r in rows)[len(rows) // 2],
                    "counter_change_ms": summ(changes(2)), "instant_change_ms": summ(changes(3)),
                    "average_change_ms": summ(changes(4))}
    with open(OUT / "probe.csv", "w") as f:
        f.write("mono_ns,counter_read_end_ns,energy_mj,power_instant_mw,power_mw\n")
        f.writelines(",".join(map(str, r)) + "\n" for r in rows)


COST = r"""
import json, tempfile, time, torch
from dlwh.collect import span, set_run_dir
torch.zeros(1, device="cuda"); torch.cuda.synchronize()
set_run_dir(tempfile.mkdtemp())
def per(n, **kw):
    for i in range(20):
        with span("x", **kw): pass
    t0 = time.perf_counter_ns()
    for i in range(n):
        with span("x", **kw) as s: pass
    return (time.perf_counter_ns() - t0) / n / 1e6, getattr(s, "energy_j", None)
print(json.dumps({"plain_ms": per(2000)[0], "sync_ms": per(2000, sync=True)[0],
                  "energy_ms": per(300, energy=True)[0], "last_energy_j": per(5, energy=True)[1]}))
"""


def run(argv: list[str], timeout: float = 240) -> dict:
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    r = {"argv": argv, "rc": p.returncode, "wall_s": time.perf_counter() - t0,
         "stdout": p.stdout[-3000:], "stderr": p.stderr[-3000:]}
    print(json.dumps(r)[:4000], flush=True)
    return r


def main() -> None:
    step = os.environ.get("STEPS", "probe,cost,busy,train").split(",")
    if "probe" in step:
        probe()
        save()
        print(json.dumps(RES["probe"]), flush=True)
    if "cost" in step:
        r = run([PY, "-c", COST])
        RES["cost"] = json.loads(r["stdout"].strip().splitlines()[-1]) if r["rc"] == 0 else r["stderr"]
        save()
    if "busy" in step:
        RES["busy"] = run(COLLECT + ["--source", "auto", "--interval-ms", "10", "--tag", "workload=busy-idle",
                                     "--out", str(OUT / "busy-idle"), "--", PY, "tests/data/spans/workload.py",
                                     "--sets", os.environ.get("SETS", "1.0:20,0.2:50,0.05:100")])
        save()
    if "train" in step:
        batch = os.environ.get("BATCH", "3328")
        RES["train"] = run(COLLECT + [
            "--source", "auto", "--interval-ms", "10", "--tag", "model=examples/train.py:cnn-w64",
            "--tag", f"batch_size={batch}", "--tag", "precision=bf16-autocast", "--tag", "image_size=64",
            "--out", str(OUT / "train"), "--", PY, "examples/train.py", "--steps", os.environ.get("TSTEPS", "400"),
            "--batch-size", batch, "--accum", "1", "--warmup", "10", "--layer-steps", "2",
            "--steps-per-epoch", "100", "--sync-phases", "--energy"], timeout=300)
        save()


if __name__ == "__main__":
    main()
