"""The held-out style span workload: synchronised busy (bf16 matmul) and idle (sleep) spans.

    python -m dlwh.collect -q --source auto --interval-ms 10 --out RUN -- \
        python tests/data/spans/workload.py --seed 1

Three sets (kind ``epoch``): 1 s, 0.2 s and 0.05 s spans (kind ``phase``, names ``busy`` and
``idle``), each busy/idle pair inside a ``pair`` span (kind ``step``). Lengths are jittered by
±10 % (seeded), so span edges fall at random phases of the sensors' 10/100 ms updates. Every
busy/idle span is opened with ``energy=True``: the GPU energy counter read in this process at both
edges (after a CUDA synchronise) is the truth the estimators are scored against
(benchmarks/bench_spans.py); the collector's own counter reads (every 100 ms) are separate reads.
A thread also polls the counter every ~2 ms and writes each change to ``counter_poll.csv``
(monotonic ns of the read before and of the read that saw the new value, the value in mJ): it
shows the counter's own update period.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import threading
import time

import torch

from dlwh.collect import get_run_dir, span


def poller(stop: threading.Event, path: str) -> None:
    import pynvml as N

    N.nvmlInit()
    h = N.nvmlDeviceGetHandleByIndex(0)
    prev_t = time.monotonic_ns()
    prev = N.nvmlDeviceGetTotalEnergyConsumption(h)
    with open(path, "w") as f:
        f.write("prev_read_mono_ns,read_mono_ns,energy_mj\n")
        while not stop.is_set():
            t = time.monotonic_ns()
            v = N.nvmlDeviceGetTotalEnergyConsumption(h)
            if v != prev:
                f.write(f"{prev_t},{t},{v}\n")
                prev = v
            prev_t = t
            time.sleep(0.002)
    N.nvmlShutdown()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sets", default="1.0:20,0.2:50,0.05:100", help="length_s:pairs,...")
    p.add_argument("--size", type=int, default=8192)
    p.add_argument("--device", default="cuda", help="cpu: a dry run (with the fake pynvml)")
    a = p.parse_args()
    rnd = random.Random(a.seed)
    dev = torch.device(a.device)
    x = torch.randn(a.size, a.size, device=dev, dtype=torch.bfloat16)
    y = torch.randn_like(x)

    def busy(secs: float) -> int:
        t0 = time.perf_counter()
        n = 0
        while time.perf_counter() - t0 < secs:
            for _ in range(2):
                x @ y
            if dev.type == "cuda":
                torch.cuda.synchronize()
            n += 2
        return n

    run_dir = get_run_dir()
    stop = threading.Event()
    th = None
    if run_dir is not None:
        th = threading.Thread(target=poller, args=(stop, str(run_dir / "counter_poll.csv")), daemon=True)
        th.start()
    with span("warmup", kind="phase", sync=True):
        busy(2.0)
        time.sleep(1.0)
    out = []
    for item in a.sets.split(","):
        length, pairs = float(item.split(":")[0]), int(item.split(":")[1])
        with span(f"set_{length:g}s", kind="epoch", energy=True, length_s=length) as es:
            for k in range(pairs):
                with span(f"pair_{length:g}s", kind="step", pair=k, length_s=length):
                    with span("busy", kind="phase", energy=True, length_s=length, pair=k) as s:
                        n = busy(length * rnd.uniform(0.9, 1.1))
                        s.set(matmuls=n)
                    with span("idle", kind="phase", energy=True, length_s=length, pair=k):
                        time.sleep(length * rnd.uniform(0.9, 1.1))
        out.append({"set": length, "pairs": pairs, "energy_j": es.energy_j})
        time.sleep(0.5)
    stop.set()
    if th is not None:
        th.join(timeout=5)
    print(json.dumps({"sets": out, "pid": os.getpid()}))


if __name__ == "__main__":
    main()
