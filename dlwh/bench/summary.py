"""A bench run's results read straight from its run directory (standard library only).

Used where the warehouse is not (GPU nodes without duckdb): the same numbers as the
``bench_results`` view, by the same rules.

* Steady state: every epoch span but the first (by start time); the first epoch is the warm-up,
  reported on its own. Throughput = steady samples / steady seconds; time per step = steady
  seconds / steady steps (epoch spans synchronise the GPU at their edges).
* GPU energy: the ``power_w`` column of ``nvml.csv`` (the ``power`` metric), integrated with the
  trapezoidal rule over each epoch, interpolating linearly at its edges; a step between samples
  longer than max(5 x the median step, 1 s) is a gap and adds nothing (the warehouse's rule).
  Summed over the GPUs in the file (bench records only the GPU it trains on).
* The NVML energy counter (``energy_total_mj``), interpolated at the same edges, is reported
  beside it as a check.
"""

from __future__ import annotations

import bisect
import csv
import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from dlwh.errors import DlwhError

NVML_FILE = "nvml.csv"
SPANS_FILE = "spans.jsonl"


@dataclass
class Series:
    """One GPU's readings: times (monotonic ns) and values, in time order."""

    t_ns: list[int] = field(default_factory=list)
    v: list[float] = field(default_factory=list)


def read_nvml(path: Path) -> tuple[dict[str, Series], dict[str, Series]]:
    """(power W per GPU, energy counter J per GPU) from an nvml.csv; keys are GPU indices."""
    power: dict[str, Series] = {}
    energy: dict[str, Series] = {}
    with open(path, newline="", encoding="ascii") as f:
        for row in csv.DictReader(f):
            try:
                t = int(row["monotonic_ns"])
            except (TypeError, ValueError, KeyError):
                continue  # a truncated last line
            gpu = row.get("gpu_index") or "0"
            p = row.get("power_w") or ""
            if p:
                s = power.setdefault(gpu, Series())
                s.t_ns.append(t)
                s.v.append(float(p))
            e = row.get("energy_total_mj") or ""
            if e:
                s = energy.setdefault(gpu, Series())
                s.t_ns.append(t)
                s.v.append(float(e) / 1000.0)
    return power, energy


def _cumulative(s: Series) -> tuple[list[float], list[bool], float]:
    """Running trapezoid integral (J at each sample), gap flags per step, gap threshold (s)."""
    steps = [(b - a) / 1e9 for a, b in zip(s.t_ns, s.t_ns[1:])]
    positive = [d for d in steps if d > 0]
    limit = max(5 * statistics.median(positive), 1.0) if positive else 1.0
    cum = [0.0]
    gaps = []
    for i, d in enumerate(steps):
        gap = d > limit
        gaps.append(gap)
        cum.append(cum[-1] + (0.0 if gap else (s.v[i] + s.v[i + 1]) / 2 * d))
    return cum, gaps, limit


def _energy_at(s: Series, cum: list[float], gaps: list[bool], t: int) -> Optional[float]:
    """Integral from the first sample to ``t`` (None outside the samples)."""
    if not s.t_ns or t < s.t_ns[0] or t > s.t_ns[-1]:
        return None
    i = bisect.bisect_right(s.t_ns, t) - 1
    if i >= len(s.t_ns) - 1 or gaps[i]:
        return cum[i]
    dt = (t - s.t_ns[i]) / 1e9
    step = (s.t_ns[i + 1] - s.t_ns[i]) / 1e9
    p_t = s.v[i] + (s.v[i + 1] - s.v[i]) * dt / step if step > 0 else s.v[i]
    return cum[i] + dt * (s.v[i] + p_t) / 2


def _interp(s: Series, t: int) -> Optional[float]:
    """The counter linearly interpolated at ``t`` (None outside its readings)."""
    if not s.t_ns or t < s.t_ns[0] or t > s.t_ns[-1]:
        return None
    i = bisect.bisect_right(s.t_ns, t) - 1
    if i >= len(s.t_ns) - 1:
        return s.v[i]
    step = s.t_ns[i + 1] - s.t_ns[i]
    return s.v[i] + (s.v[i + 1] - s.v[i]) * (t - s.t_ns[i]) / step if step else s.v[i]


class EnergyMeter:
    """GPU energy (J) between two monotonic times, from the power curve and from the counter."""

    def __init__(self, power: dict[str, Series], counter: dict[str, Series]) -> None:
        self.power = {g: (s, *_cumulative(s)[:2]) for g, s in power.items() if len(s.t_ns) >= 2}
        self.counter = {g: s for g, s in counter.items() if len(s.t_ns) >= 2}

    @property
    def gpus(self) -> int:
        return len(self.power)

    def integral(self, a: int, b: int) -> Optional[float]:
        """Integrated power over [a, b], summed over GPUs; None when any GPU does not cover it."""
        if not self.power:
            return None
        total = 0.0
        for s, cum, gaps in self.power.values():
            ea, eb = _energy_at(s, cum, gaps, a), _energy_at(s, cum, gaps, b)
            if ea is None or eb is None:
                return None
            total += eb - ea
        return total

    def counted(self, a: int, b: int) -> Optional[float]:
        """Energy counter difference over [a, b], summed over GPUs."""
        if not self.counter:
            return None
        total = 0.0
        for s in self.counter.values():
            ea, eb = _interp(s, a), _interp(s, b)
            if ea is None or eb is None:
                return None
            total += eb - ea
        return total


@dataclass
class Epoch:
    """One epoch span: index, monotonic edges (ns), steps and samples."""

    epoch: int
    start_ns: int
    end_ns: int
    steps: int
    samples: int

    @property
    def seconds(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


def read_epochs(path: Path) -> list[Epoch]:
    """The epoch spans of a spans.jsonl, by start time (lines of other kinds are skipped unread)."""
    out: list[Epoch] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if '"kind": "epoch"' not in line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue  # a torn last line
            if obj.get("kind") != "epoch" or obj.get("start_mono_ns") is None:
                continue
            attrs = obj.get("attrs") or {}
            out.append(Epoch(int(attrs.get("epoch", len(out))), int(obj["start_mono_ns"]),
                             int(obj["end_mono_ns"]), int(attrs.get("steps", 0)),
                             int(attrs.get("samples", 0))))
    out.sort(key=lambda e: (e.start_ns, e.epoch))
    return out


def read_phase_means(path: Path, skip_epoch: int = 0) -> dict[str, float]:
    """Mean seconds per traced step of each phase, epoch ``skip_epoch`` (the warm-up) left out."""
    steady_steps: set[str] = set()
    phases: list[tuple[str, Optional[str], float]] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if '"kind": "step"' in line or '"kind": "phase"' in line:
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if obj.get("start_mono_ns") is None:
                    continue
                dur = (int(obj["end_mono_ns"]) - int(obj["start_mono_ns"])) / 1e9
                if obj["kind"] == "step":
                    if (obj.get("attrs") or {}).get("epoch") != skip_epoch:
                        steady_steps.add(obj["span_id"])
                else:
                    phases.append((obj["name"], obj.get("parent_id"), dur))
    sums: dict[str, list[float]] = {}
    for name, parent, dur in phases:
        if parent in steady_steps:
            sums.setdefault(name, []).append(dur)
    return {name: sum(v) / len(v) for name, v in sums.items()}


@dataclass
class BenchSummary:
    """Results of one bench run. Times in s, energy in J, power in W; None where unknown."""

    run_dir: str
    run_id: str
    model: Optional[str]
    batch_size: Optional[int]
    device: Optional[str]
    gpu: Optional[str]
    precision: Optional[str]
    sync: Optional[bool]
    warmup_s: float
    warmup_steps: int
    warmup_energy_j: Optional[float]
    steady_epochs: int
    steady_steps: int
    steady_samples: int
    steady_s: float
    throughput_samples_per_s: float
    time_per_step_s: float
    steady_energy_j: Optional[float]
    avg_power_w: Optional[float]
    energy_per_sample_j: Optional[float]
    counter_energy_j: Optional[float]  # NVML energy counter over the same window
    counter_diff_pct: Optional[float]  # 100 x (integral - counter) / counter
    power_gpus: int
    phase_s: dict[str, float] = field(default_factory=dict)  # mean per steady traced step

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarise_run(run_dir: str | Path) -> BenchSummary:
    """Compute the results of the bench run in ``run_dir`` (see the module docstring for the rules)."""
    d = Path(run_dir)
    try:
        manifest = json.loads((d / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DlwhError(f"cannot read {d / 'run.json'}: {err}; is {d} a run directory?") from None
    tags = manifest.get("tags") or {}
    spans_path = d / SPANS_FILE
    epochs = read_epochs(spans_path) if spans_path.is_file() else []
    if len(epochs) < 2:
        raise DlwhError(f"{d} has {len(epochs)} epoch span(s); a bench run needs the warm-up epoch "
                        "and at least one more (did training fail? see the run's exit code)")
    warm, steady = epochs[0], epochs[1:]
    nvml = d / NVML_FILE
    meter = EnergyMeter(*read_nvml(nvml)) if nvml.is_file() else EnergyMeter({}, {})

    steady_s = sum(e.seconds for e in steady)
    steady_steps = sum(e.steps for e in steady)
    steady_samples = sum(e.samples for e in steady)
    energies = [meter.integral(e.start_ns, e.end_ns) for e in steady]
    steady_j = None if any(x is None for x in energies) else sum(energies)  # type: ignore[misc]
    counters = [meter.counted(e.start_ns, e.end_ns) for e in steady]
    counter_j = None if any(x is None for x in counters) else sum(counters)  # type: ignore[misc]
    gpus = manifest.get("gpus") or []
    gpu_name = None
    if meter.gpus:
        recorded = sorted(meter.power)
        names = {str(g.get("index")): g.get("name") for g in gpus}
        gpu_name = names.get(recorded[0])
    return BenchSummary(
        run_dir=str(d), run_id=str(manifest.get("run_id", d.name)),
        model=tags.get("model"), batch_size=_int(tags.get("batch_size")),
        device=tags.get("device"), gpu=gpu_name, precision=tags.get("precision"),
        sync=_bool(tags.get("sync")),
        warmup_s=warm.seconds, warmup_steps=warm.steps,
        warmup_energy_j=meter.integral(warm.start_ns, warm.end_ns),
        steady_epochs=len(steady), steady_steps=steady_steps, steady_samples=steady_samples,
        steady_s=steady_s,
        throughput_samples_per_s=steady_samples / steady_s if steady_s > 0 else 0.0,
        time_per_step_s=steady_s / steady_steps if steady_steps else 0.0,
        steady_energy_j=steady_j,
        avg_power_w=steady_j / steady_s if steady_j is not None and steady_s > 0 else None,
        energy_per_sample_j=steady_j / steady_samples if steady_j is not None and steady_samples else None,
        counter_energy_j=counter_j,
        counter_diff_pct=(100 * (steady_j - counter_j) / counter_j
                          if steady_j is not None and counter_j else None),
        power_gpus=meter.gpus,
        phase_s=read_phase_means(spans_path, warm.epoch) if spans_path.is_file() else {},
    )


def _int(v: Any) -> Optional[int]:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _bool(v: Any) -> Optional[bool]:
    if isinstance(v, bool):
        return v
    if v is None:
        return None
    return str(v).strip().lower() in ("1", "true", "yes", "on")


def format_summary(s: BenchSummary) -> str:
    """The lines ``dlwh bench`` prints at the end of a run."""
    where = f"{s.device} ({s.gpu})" if s.gpu else f"{s.device}"
    lines = [f"{s.model} batch {s.batch_size} on {where}, {s.precision}, "
             f"{'sync' if s.sync else 'no-sync'}: run {s.run_id}",
             f"  warm-up (epoch 0): {s.warmup_steps} steps in {s.warmup_s:.2f} s"
             + (f", {s.warmup_energy_j:.1f} J" if s.warmup_energy_j is not None else ""),
             f"  steady state ({s.steady_epochs} epoch(s), {s.steady_steps} steps, "
             f"{s.steady_samples} samples in {s.steady_s:.2f} s):",
             f"    throughput     {s.throughput_samples_per_s:.1f} samples/s",
             f"    time per step  {s.time_per_step_s * 1000:.2f} ms"]
    if s.phase_s:
        order = ["data", "forward", "backward", "optimizer"]
        parts = [f"{k} {s.phase_s[k] * 1000:.2f}" for k in order if k in s.phase_s]
        on_gpu = str(s.device or "").startswith("cuda")
        how = ("GPU-synchronised" if s.sync else "launch times") if on_gpu else "CPU"
        lines.append(f"    phases (ms per step, {how}): " + ", ".join(parts))
    if s.energy_per_sample_j is not None:
        lines.append(f"    GPU power      {s.avg_power_w:.1f} W (NVML, {s.power_gpus} GPU)")
        lines.append(f"    energy         {s.steady_energy_j:.1f} J, "
                     f"{s.energy_per_sample_j:.4f} J per sample")
        if s.counter_energy_j is not None:
            lines.append(f"    NVML energy counter over the same time: {s.counter_energy_j:.1f} J "
                         f"({s.counter_diff_pct:+.2f}% vs integrated power)")
    else:
        lines.append("    energy per sample: no GPU power recorded here (no NVML source)")
    return "\n".join(lines)
