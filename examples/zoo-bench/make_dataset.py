"""Record the examples/<gpu>-zoo datasets: `dlwh bench` over 24 zoo models on one GPU, at its own limit.

Run on a GPU node (torch and nvidia-ml-py; no duckdb, pandas or fvcore needed), from the repository root:

    PYTHONPATH=. python3 examples/zoo-bench/make_dataset.py --out /tmp/zoo-bench --deadline-s 380

Every run: --no-sync, 3 epochs of 2 s (epoch 0 is the warm-up: its first step, which holds cuDNN's
autotuning, then 2 s; epochs 1-2 are the steady state), NVML at 100 ms on the GPU trained on, 1 s of
idle GPU before and after, at the GPU's own power limit (never changed). The plan is ordered by
priority (every architecture at two batch sizes in fp32, then the GoogLeNet variants at one, then
bf16 autocast) and no run starts after --deadline-s. Results go to OUT/runs/<model>-bs<B>[-bf16]/ and
one JSON line per run to OUT/results.jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from dlwh.bench import BenchConfig, format_summary, run_bench
from dlwh.errors import DlwhError

# model: (batch sizes, trace every k-th step): step and phase spans are sampled to keep files small.
FP32: dict[str, tuple[tuple[int, ...], int]] = {
    "vit_b_16": ((32, 64), 2),
    "convnext_tiny": ((64, 128), 2),
    "densenet121": ((64, 128), 3),
    "efficientnet_b0": ((64, 128), 3),
    "resnet50": ((64, 128), 3),
    "bert_base": ((32, 64), 3),
    "mobilenet_v2": ((128, 256), 5),
    "resnet18": ((128, 256), 5),
    "alexnet": ((128, 256), 5),
    "vgg16": ((32, 64), 2),
    "googlenet": ((64, 128), 5),
    "shufflenet_v2_x1_0": ((128, 256), 5),
    "resnet34": ((64, 128), 5),
    "vgg11": ((32, 64), 2),
    "lenet5": ((2048, 8192), 20),
}
GOOGLENET_MODS = tuple(f"googlenet_mod{i}" for i in range(1, 10))
BF16 = {"resnet50": 128, "vit_b_16": 64, "bert_base": 64, "convnext_tiny": 128, "mobilenet_v2": 256,
        "efficientnet_b0": 128, "densenet121": 128, "vgg16": 64}


def plan(seconds: float, epochs: int, device: str | None) -> list[tuple[str, BenchConfig]]:
    """(run name, config) in priority order."""
    out: list[tuple[str, BenchConfig]] = []

    def add(name: str, model: str, bs: int, every: int, amp: bool = False) -> None:
        out.append((name, BenchConfig(model=model, batch_size=bs, epochs=epochs, epoch_seconds=seconds,
                                      device=device, sources="nvml", trace_every=every, amp=amp,
                                      quiet=True)))

    for model, (sizes, every) in FP32.items():
        add(f"{model}-bs{sizes[0]}", model, sizes[0], every)
    for model, (sizes, every) in FP32.items():
        for bs in sizes[1:]:
            add(f"{model}-bs{bs}", model, bs, every)
    for model in GOOGLENET_MODS:
        add(f"{model}-bs128", model, 128, 5)
    for model, bs in BF16.items():
        add(f"{model}-bs{bs}-bf16", model, bs, FP32[model][1], amp=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--seconds", type=float, default=2.0, help="seconds per epoch")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--device", default=None)
    p.add_argument("--deadline-s", type=float, default=380.0, help="start no run after this many seconds")
    ns = p.parse_args()
    out = Path(ns.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    todo = plan(ns.seconds, ns.epochs, ns.device)
    failed = 0
    with open(out / "results.jsonl", "a", encoding="utf-8") as results:
        for i, (name, cfg) in enumerate(todo, 1):
            elapsed = time.monotonic() - t0
            if elapsed > ns.deadline_s:
                print(f"deadline: {len(todo) - i + 1} runs not started", flush=True)
                break
            cfg.out = out / "runs" / name
            try:
                res = run_bench(cfg)
            except DlwhError as err:
                failed += 1
                print(f"[{i}/{len(todo)}] {name}: error: {err}", flush=True)
                results.write(json.dumps({"name": name, "error": str(err)}) + "\n")
                continue
            print(f"[{i}/{len(todo)}] {elapsed:.0f} s\n{format_summary(res.summary)}", flush=True)
            results.write(json.dumps({"name": name, **res.summary.to_dict()}) + "\n")
            results.flush()
    print(f"done in {time.monotonic() - t0:.0f} s, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
