"""A small CNN training loop instrumented with dlwh spans (the quickstart's workload).

    dlwh collect --tag model=cnn -- python examples/train.py --seconds 60

Synthetic data (no download), a ResNet-style CNN, bf16 autocast on CUDA. Each optimizer step is one
``step`` span (synchronised, so it covers the GPU work) inside an ``epoch`` span, with ``data``,
``forward``, ``backward`` and ``optimizer`` phases. ``--layer-steps N`` records per-layer spans for
the first N steps. Outside ``dlwh collect`` the spans cost next to nothing.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn

from dlwh.collect import record_layers, span


def block(c_in: int, c_out: int, stride: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )


def make_model(width: int, classes: int) -> nn.Module:
    w = width
    return nn.Sequential(
        nn.Conv2d(3, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
        block(w, w, 1), block(w, 2 * w, 2), block(2 * w, 4 * w, 2), block(4 * w, 8 * w, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8 * w, classes),
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, help="optimizer steps to run (after warm-up)")
    p.add_argument("--seconds", type=float, help="or: train for this long (after warm-up)")
    p.add_argument("--steps-per-epoch", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--accum", type=int, default=4, help="micro-batches per optimizer step")
    p.add_argument("--warmup", type=int, default=5, help="steps before timing starts")
    p.add_argument("--layer-steps", type=int, default=0, help="per-layer spans for the first N steps")
    p.add_argument("--sync-phases", action="store_true", help="synchronise at phase edges too")
    p.add_argument("--energy", action="store_true",
                   help="epoch spans read the GPU energy counter at their edges (span(energy=True))")
    p.add_argument("--result", help="write timings as JSON here")
    a = p.parse_args()
    if a.steps is None and a.seconds is None:
        a.steps = 100

    torch.manual_seed(0)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = make_model(a.width, 1000).to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    n_batches = 8
    xs = torch.randn(n_batches, a.batch_size, 3, a.image_size, a.image_size, device=dev)
    xs = xs.contiguous(memory_format=torch.channels_last) if xs.dim() == 4 else xs
    ys = torch.randint(0, 1000, (n_batches, a.batch_size), device=dev)
    amp = torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda")
    layers = None
    sync = a.sync_phases

    def train_step(i: int, epoch: int) -> float:
        with span("step", step=i, epoch=epoch, sync=True) as s:
            opt.zero_grad(set_to_none=True)
            total = 0.0
            for k in range(a.accum):
                with span("data", sync=sync):
                    j = (i * a.accum + k) % n_batches
                    x, y = xs[j], ys[j]
                with span("forward", sync=sync):
                    with amp:
                        loss = loss_fn(model(x), y) / a.accum
                with span("backward", sync=sync):
                    loss.backward()
                total += float(loss.detach()) if k == a.accum - 1 else 0.0
            with span("optimizer", sync=sync):
                opt.step()
            s.set(loss=round(total * a.accum, 4))
        return total

    with span("warmup", kind="phase"):
        for i in range(a.warmup):
            train_step(i, -1)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    if a.layer_steps > 0:
        layers = record_layers(model, enabled=True)
    t0 = time.perf_counter()
    step = 0
    epoch = 0
    while True:
        with span("epoch", epoch=epoch, energy=a.energy):
            for _ in range(a.steps_per_epoch):
                if layers is not None and step >= a.layer_steps:
                    layers.remove()
                    layers = None
                train_step(step, epoch)
                step += 1
                if a.steps is not None and step >= a.steps:
                    break
                if a.seconds is not None and time.perf_counter() - t0 >= a.seconds:
                    break
        epoch += 1
        if (a.steps is not None and step >= a.steps) or (
                a.seconds is not None and time.perf_counter() - t0 >= a.seconds):
            break
    if dev.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    out = {"steps": step, "epochs": epoch, "seconds": elapsed, "ms_per_step": 1000 * elapsed / step,
           "batch_size": a.batch_size, "accum": a.accum, "device": str(dev)}
    print(json.dumps(out))
    if a.result:
        with open(a.result, "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    main()
