"""The training loop ``dlwh bench`` times: a zoo model on synthetic data, with spans (needs torch).

Every step has four phases, each a span of kind ``phase``: ``data`` (a fresh random batch made on
the device), ``forward`` (forward pass and loss, under bf16 autocast with ``amp``), ``backward`` and
``optimizer`` (SGD step and zeroing the gradients). Steps are spans of kind ``step`` and epochs of
kind ``epoch``. Epoch spans always synchronise the GPU at their edges, so their times (and so the
throughput) are right with or without ``sync``; ``sync`` adds a synchronisation at every phase
edge, which makes phase times GPU times and costs throughput.

Vision models get ``randn`` images of the zoo's default input and uniform labels over the model's
classes (cross-entropy). BERT gets uniform token ids over its vocabulary and a two-class
classification head on the pooled output (cross-entropy), whose 1,538 parameters and MACs are
negligible next to the encoder's.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
from torch import nn

from dlwh.bench.config import BenchConfig
from dlwh.collect import span
from dlwh.models import ModelSpec, build_model


class _BertClassifier(nn.Module):
    """A BERT encoder with a linear head on the pooled output."""

    def __init__(self, encoder: nn.Module, classes: int = 2) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.hidden_size, classes)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        out = self.encoder(input_ids)
        pooled = out[1] if isinstance(out, tuple) else out[:, 0]
        return self.head(pooled)


@dataclass
class Workload:
    """A model on a device with its optimiser and a maker of synthetic batches."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    make_batch: Callable[[], tuple[torch.Tensor, torch.Tensor]]
    device: torch.device
    classes: int


def _classes(model: nn.Module) -> int:
    """Output classes: the last linear layer's width."""
    last = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            last = m
    if last is None:
        raise ValueError("model has no linear layer to read the number of classes from")
    return int(last.out_features)


def resolve_device(requested: Optional[str]) -> torch.device:
    """torch device for ``--device``: None means cuda when available, else cpu."""
    from dlwh.errors import UsageError

    if requested is None:
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(requested)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("--device cuda asked for, but torch sees no CUDA GPU here; "
                             "use --device cpu or run on a GPU node")
        index = dev.index or 0
        if index >= torch.cuda.device_count():
            raise UsageError(f"--device {requested}: torch sees only {torch.cuda.device_count()} GPU(s)")
        dev = torch.device("cuda", index)
    return dev


def build_workload(spec: ModelSpec, cfg: BenchConfig, device: torch.device) -> Workload:
    """The model (train mode, on ``device``), SGD with momentum 0.9, and a batch maker."""
    torch.manual_seed(cfg.seed)
    B = cfg.batch_size
    if spec.kind == "text":
        encoder = build_model(spec.name)
        model: nn.Module = _BertClassifier(encoder)
        vocab = int(encoder.config.vocab_size)
        (seq_len,) = spec.default_input
        classes = 2

        def make_batch() -> tuple[torch.Tensor, torch.Tensor]:
            ids = torch.randint(0, vocab, (B, seq_len), device=device)
            return ids, torch.randint(0, classes, (B,), device=device)
    else:
        model = build_model(spec.name)
        classes = _classes(model)
        shape = (B, *spec.default_input)

        def make_batch() -> tuple[torch.Tensor, torch.Tensor]:
            x = torch.randn(shape, device=device)
            return x, torch.randint(0, classes, (B,), device=device)

    model = model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9)
    return Workload(model, opt, make_batch, device, classes)


class _SyncEdges:
    """A context manager that only synchronises the GPU at both edges."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __enter__(self) -> "_SyncEdges":
        torch.cuda.synchronize(self.device)
        return self

    def __exit__(self, *exc: Any) -> None:
        torch.cuda.synchronize(self.device)


@dataclass
class EpochStats:
    """What the loop saw of one epoch: steps, samples, wall time (s, GPU synchronised), last loss."""

    epoch: int
    steps: int
    samples: int
    seconds: float
    loss: float


@dataclass
class TrainStats:
    """Per-epoch statistics of one training run (the run directory's spans say the same)."""

    epochs: list[EpochStats] = field(default_factory=list)


def train(w: Workload, cfg: BenchConfig, log: Optional[Callable[[str], None]] = None) -> TrainStats:
    """Run the epochs (spans go to the active run directory, if any)."""
    cuda = w.device.type == "cuda"
    if cuda:
        torch.cuda.set_device(w.device)
        torch.backends.cudnn.benchmark = True
    sync = cfg.sync and cuda
    autocast = (torch.autocast(device_type=w.device.type, dtype=torch.bfloat16) if cfg.amp
                else contextlib.nullcontext())
    model, opt, make_batch = w.model, w.optimizer, w.make_batch
    loss_fn = nn.CrossEntropyLoss()
    null = contextlib.nullcontext()
    edges = _SyncEdges(w.device) if sync else null

    def phase(name: str, traced: bool) -> Any:
        if traced:
            return span(name, "phase", sync=sync)
        return edges

    stats = TrainStats()
    step = 0
    layer_rec = None
    if cfg.layers:
        from dlwh.collect.layers import record_layers

        layer_rec = record_layers(model, enabled=True, sync=sync)
    try:
        for e in range(cfg.epochs):
            with span("epoch", "epoch", sync=cuda, epoch=e, warmup=(e == 0)) as ep:
                t0 = time.monotonic()
                deadline = (t0 + cfg.epoch_seconds if cfg.epoch_seconds is not None and e > 0
                            else None)
                n = 0
                loss = None
                while True:
                    traced = step % cfg.trace_every == 0
                    st = (span("step", "step", sync=sync, epoch=e, step=step, samples=cfg.batch_size)
                          if traced else null)
                    with st:
                        with phase("data", traced):
                            x, y = make_batch()
                        with phase("forward", traced):
                            with autocast:
                                loss = loss_fn(model(x), y)
                        with phase("backward", traced):
                            loss.backward()
                        with phase("optimizer", traced):
                            opt.step()
                            opt.zero_grad(set_to_none=True)
                    step += 1
                    n += 1
                    if cfg.epoch_seconds is None:
                        if n >= cfg.steps:
                            break
                    elif e == 0 and n == 1:
                        # the warm-up's clock starts after its first step (cuDNN autotuning,
                        # allocation), so NVML's 1 s averaged power has settled by epoch 1
                        if cuda:
                            torch.cuda.synchronize(w.device)
                        deadline = time.monotonic() + cfg.epoch_seconds
                    elif deadline is not None and time.monotonic() >= deadline:
                        break
                if cuda:
                    torch.cuda.synchronize(w.device)
                seconds = time.monotonic() - t0
                last = float(loss.detach().float().item()) if loss is not None else float("nan")
                ep.set(steps=n, samples=n * cfg.batch_size, loss=round(last, 6))
            stats.epochs.append(EpochStats(e, n, n * cfg.batch_size, seconds, last))
            if log is not None:
                what = "warm-up" if e == 0 else "steady"
                log(f"epoch {e} ({what}): {n} steps, {seconds:.2f} s, "
                    f"{n * cfg.batch_size / seconds:.1f} samples/s, loss {last:.4f}")
    finally:
        if layer_rec is not None:
            layer_rec.remove()
    return stats
