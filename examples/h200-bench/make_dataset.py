"""Record the examples/h200-bench dataset: `dlwh bench` over a grid of zoo models and batch sizes.

Run on a GPU node (torch and nvidia-ml-py; no duckdb or pandas needed), from the repository root:

    PYTHONPATH=. python3 examples/h200-bench/make_dataset.py --out /tmp/h200-bench

Every run: fp32, --no-sync, 3 epochs of 3 s each (epoch 0 is the warm-up: its first step, which
holds cuDNN's autotuning, then 3 s; epochs 1-2 are the steady state), NVML at 100 ms on the GPU trained on, 1 s of idle GPU recorded before and after, at the
GPU's own power limit (never changed). Right after three of the grid runs the same configuration
runs again with --sync (the cost of synchronising at every phase edge), and one short run records
per-layer spans. Results go to OUT/runs/<model>-bs<B>[-sync|-layers]/ and one JSON line per run
to OUT/results.jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from dlwh.bench import BenchConfig, format_summary, run_bench
from dlwh.errors import DlwhError

# model: (batch sizes, trace every k-th step); step and phase spans are sampled to keep files small.
GRID: dict[str, tuple[tuple[int, ...], int]] = {
    "lenet5": ((512, 2048, 8192), 20),
    "alexnet": ((64, 128, 256), 5),
    "vgg11": ((32, 64, 128), 2),
    "vgg16": ((32, 64, 128), 2),
    "resnet18": ((64, 128, 256), 5),
    "resnet34": ((64, 128, 256), 5),
    "resnet50": ((32, 64, 128), 3),
    "googlenet": ((64, 128, 256), 5),
    "mobilenet_v2": ((64, 128, 256), 5),
    "shufflenet_v2_x1_0": ((64, 128, 256), 5),
    "bert_base": ((16, 32, 64), 3),
}
SYNC_PAIRS = {("resnet50", 64), ("mobilenet_v2", 64), ("bert_base", 32)}
LAYERS_RUN = ("resnet18", 32)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--seconds", type=float, default=3.0, help="seconds per epoch")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--device", default=None)
    p.add_argument("--deadline-s", type=float, default=540.0, help="start no run after this many seconds")
    p.add_argument("--models", default=None, help="comma list (default: the whole grid)")
    p.add_argument("--no-extras", action="store_true", help="skip the --sync and --layers runs")
    ns = p.parse_args()
    out = Path(ns.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    models = ns.models.split(",") if ns.models else list(GRID)
    t0 = time.monotonic()
    plan: list[tuple[str, BenchConfig]] = []
    for model in models:
        sizes, every = GRID[model]
        for bs in sizes:
            base = dict(model=model, batch_size=bs, epochs=ns.epochs, epoch_seconds=ns.seconds,
                        device=ns.device, sources="nvml", trace_every=every, quiet=True)
            plan.append((f"{model}-bs{bs}", BenchConfig(**base)))
            if (model, bs) in SYNC_PAIRS and not ns.no_extras:
                plan.append((f"{model}-bs{bs}-sync", BenchConfig(**base, sync=True)))
    if not ns.no_extras:
        m, bs = LAYERS_RUN
        plan.append((f"{m}-bs{bs}-layers", BenchConfig(model=m, batch_size=bs, epochs=3, steps=10,
                                                       device=ns.device, sources="nvml", sync=True,
                                                       layers=True, quiet=True)))
    failed = 0
    with open(out / "results.jsonl", "a", encoding="utf-8") as results:
        for i, (name, cfg) in enumerate(plan, 1):
            elapsed = time.monotonic() - t0
            if elapsed > ns.deadline_s:
                print(f"deadline: {len(plan) - i + 1} runs not started", flush=True)
                break
            cfg.out = out / "runs" / name
            try:
                res = run_bench(cfg)
            except DlwhError as err:
                failed += 1
                print(f"[{i}/{len(plan)}] {name}: error: {err}", flush=True)
                results.write(json.dumps({"name": name, "error": str(err)}) + "\n")
                continue
            print(f"[{i}/{len(plan)}] {elapsed:.0f} s\n{format_summary(res.summary)}", flush=True)
            results.write(json.dumps({"name": name, **res.summary.to_dict()}) + "\n")
            results.flush()
    print(f"done in {time.monotonic() - t0:.0f} s, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
