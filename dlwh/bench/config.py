"""What one ``dlwh bench`` run does: :class:`BenchConfig` (validated, no torch needed)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional, Union

from dlwh.errors import UsageError

WORKLOAD_TAG = "dlwh-bench"
"""Value of the ``workload`` run tag every bench run carries (the ``bench_results`` view keys on it)."""

Tags = dict[str, Union[str, int, float]]


@dataclass
class BenchConfig:
    """One benchmark: train ``model`` on synthetic data for ``epochs`` epochs.

    Each epoch is ``steps`` steps, or, when ``epoch_seconds`` is set, as many steps as fit in that
    many seconds (at least one). The first epoch is the warm-up; the others are the steady state.
    ``trace_every``: write step and phase spans for every k-th step only (epoch spans always);
    ``idle_s``: seconds recorded with the GPU idle before and after training (NVML's averaged power
    then settles inside the recording).
    """

    model: str
    batch_size: int = 32
    steps: int = 20
    epochs: int = 2
    epoch_seconds: Optional[float] = None
    device: Optional[str] = None  # 'cuda', 'cuda:1', 'cpu'; None: cuda when available
    amp: bool = False  # bf16 autocast
    sync: bool = False  # synchronise at every phase edge
    layers: bool = False  # per-layer spans
    power_limit_tag: Optional[float] = None  # W, recorded as tag power_limit_w (never set on the GPU)
    out: Optional[Union[str, os.PathLike]] = None
    traces_dir: Union[str, os.PathLike] = "traces"
    interval_ms: int = 100
    sources: str = "auto"
    trace_every: int = 1
    idle_s: Optional[float] = None  # None: 1.0 on a GPU, 0 on the CPU
    lr: float = 0.01
    seed: int = 0
    tags: Tags = field(default_factory=dict)  # extra run tags
    quiet: bool = False

    def validate(self) -> None:
        """Raise UsageError for values that cannot run."""
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, not {self.batch_size}")
        if self.steps < 1:
            raise UsageError(f"--steps must be at least 1, not {self.steps}")
        if self.epochs < 2:
            raise UsageError(f"--epochs must be at least 2, not {self.epochs} "
                             "(the first epoch is the warm-up, the others are measured)")
        if self.epoch_seconds is not None and not self.epoch_seconds > 0:
            raise UsageError(f"--seconds must be positive, not {self.epoch_seconds}")
        if self.interval_ms < 1:
            raise UsageError("--interval-ms must be at least 1")
        if self.trace_every < 1:
            raise UsageError(f"--trace-every must be at least 1, not {self.trace_every}")
        if self.idle_s is not None and self.idle_s < 0:
            raise UsageError(f"--idle-s must not be negative, not {self.idle_s}")
        if self.power_limit_tag is not None and not self.power_limit_tag > 0:
            raise UsageError(f"--power-limit-tag must be a positive number of watts, "
                             f"not {self.power_limit_tag}")
        if self.device is not None and not (self.device == "cpu" or self.device == "cuda"
                                            or (self.device.startswith("cuda:")
                                                and self.device[5:].isdigit())):
            raise UsageError(f"--device must be cuda, cuda:N or cpu, not {self.device!r}")
        reserved = set(self.tags) & set(RESERVED_TAGS)
        if reserved:
            raise UsageError(f"--tag {sorted(reserved)[0]} is set by bench itself; choose another key")

    @property
    def precision(self) -> str:
        """'amp-bf16' with --amp, else 'fp32'."""
        return "amp-bf16" if self.amp else "fp32"

    def argv(self, model_name: Optional[str] = None) -> list[str]:
        """The ``dlwh bench`` command line that repeats this run (stored as the run's command)."""
        a = ["dlwh", "bench", model_name or self.model, "--batch-size", str(self.batch_size),
             "--epochs", str(self.epochs)]
        if self.epoch_seconds is not None:
            a += ["--seconds", f"{self.epoch_seconds:g}"]
        else:
            a += ["--steps", str(self.steps)]
        if self.device:
            a += ["--device", self.device]
        if self.amp:
            a.append("--amp")
        a.append("--sync" if self.sync else "--no-sync")
        if self.layers:
            a.append("--layers")
        if self.power_limit_tag is not None:
            a += ["--power-limit-tag", f"{self.power_limit_tag:g}"]
        if self.interval_ms != 100:
            a += ["--interval-ms", str(self.interval_ms)]
        if self.sources != "auto":
            a += ["--source", self.sources]
        if self.trace_every != 1:
            a += ["--trace-every", str(self.trace_every)]
        if self.idle_s is not None:
            a += ["--idle-s", f"{self.idle_s:g}"]
        for k, v in self.tags.items():
            a += ["--tag", f"{k}={v}"]
        return a


RESERVED_TAGS = ("workload", "model", "batch_size", "epochs", "steps", "epoch_seconds", "precision",
                 "device", "sync", "layers", "power_limit_w", "input", "dataset", "optimizer",
                 "trace_every", "warmup_epochs")
