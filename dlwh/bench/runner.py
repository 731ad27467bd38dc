"""``run_bench``: record one bench run (the library behind ``dlwh bench``).

The model is built and moved to the device first; then :func:`dlwh.collect.record` records this
process (NVML sampled in a thread, spans written in line) while :func:`dlwh.bench.train.train`
runs, with ``idle_s`` seconds of idle GPU before and after. The run directory is a normal dlwh
run (docs/run-format.md) whose tags say what was trained; its results are then read back from the
directory (:func:`dlwh.bench.summary.summarise_run`).
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from dlwh.bench.config import WORKLOAD_TAG, BenchConfig
from dlwh.bench.summary import BenchSummary, summarise_run
from dlwh.errors import DlwhError
from dlwh.models import get_spec

Log = Callable[[str], None]


@dataclass
class BenchResult:
    """One recorded bench run: its directory, id, exit code and results."""

    run_dir: Path
    run_id: str
    summary: BenchSummary
    sources: list[str]


def _nvml_index(torch: Any, device: Any) -> Optional[int]:
    """The NVML index of a CUDA device (matched by UUID), or None when it cannot be matched."""
    try:
        uuid = str(torch.cuda.get_device_properties(device).uuid)
    except Exception:  # noqa: BLE001 - older torch, odd driver: record every GPU instead
        return None
    from dlwh.collect.nvml import gpu_inventory

    for g in gpu_inventory():
        if str(g.get("uuid", "")).lower().removeprefix("gpu-") == uuid.lower().removeprefix("gpu-"):
            return int(g["index"])
    return None


def build_tags(cfg: BenchConfig, model: str, input_desc: str, device: str) -> dict[str, Any]:
    """The run tags of a bench run (docs/models-and-bench.md, "dlwh bench", lists them)."""
    tags: dict[str, Any] = {
        "workload": WORKLOAD_TAG, "model": model, "batch_size": cfg.batch_size,
        "epochs": cfg.epochs, "warmup_epochs": 1, "precision": cfg.precision, "device": device,
        "sync": "true" if cfg.sync else "false", "layers": "true" if cfg.layers else "false",
        "input": input_desc, "dataset": "synthetic", "optimizer": "sgd",
        "trace_every": cfg.trace_every,
    }
    if cfg.epoch_seconds is not None:
        tags["epoch_seconds"] = cfg.epoch_seconds
    else:
        tags["steps"] = cfg.steps
    if cfg.power_limit_tag is not None:
        tags["power_limit_w"] = cfg.power_limit_tag
    tags.update(cfg.tags)
    return tags


def run_bench(cfg: BenchConfig, log: Optional[Log] = None) -> BenchResult:
    """Train ``cfg.model`` on synthetic data under the collector; return the recorded run.

    Raises DlwhError for a bad configuration (unknown model, no CUDA, out of memory...).
    """
    cfg.validate()
    spec = get_spec(cfg.model)
    say: Log = log or (lambda m: None)
    import torch

    from dlwh.bench.train import build_workload, resolve_device, train
    from dlwh.collect.runner import CollectOptions, record

    device = resolve_device(cfg.device)
    cuda = device.type == "cuda"
    idle_s = cfg.idle_s if cfg.idle_s is not None else (1.0 if cuda else 0.0)
    gpus = None
    if cuda:
        idx = _nvml_index(torch, device)
        gpus = [idx] if idx is not None else None
    tags = build_tags(cfg, spec.name, spec.default_input_desc, str(device))
    opts = CollectOptions(out=cfg.out, traces_dir=cfg.traces_dir,
                          name=f"bench-{spec.name}-bs{cfg.batch_size}", sources=cfg.sources,
                          interval_ms=cfg.interval_ms, tags=tags, layers=cfg.layers, gpus=gpus,
                          quiet=cfg.quiet)
    say(f"building {spec.name} ({spec.description}) on {device}")
    try:
        w = build_workload(spec, cfg, device)
    except torch.cuda.OutOfMemoryError:
        raise DlwhError(f"out of GPU memory building {spec.name}; free the GPU or use another") from None
    run_dir: Optional[Path] = None
    try:
        with record(opts, command=cfg.argv(spec.name)) as rec:
            run_dir = rec.run_dir
            run_id = rec.run_id
            sources = [s.name for s in rec.sources]
            time.sleep(idle_s)
            train(w, cfg, say)
            if cuda:
                torch.cuda.synchronize(device)
            time.sleep(idle_s)
    except torch.cuda.OutOfMemoryError:
        raise DlwhError(f"out of GPU memory training {spec.name} at batch size {cfg.batch_size}; "
                        f"try a smaller --batch-size (the partial run is in {run_dir})") from None
    finally:
        del w
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
    assert run_dir is not None
    return BenchResult(run_dir=run_dir, run_id=run_id, summary=summarise_run(run_dir), sources=sources)


def ingest_and_query(run_dir: Path, run_id: str, db: Optional[str]) -> Any:
    """Ingest the run into the warehouse ``db`` and return its ``bench_results`` row (a DataFrame).

    Needs duckdb and pandas (not on the training path).
    """
    from dlwh.ingest.loader import ingest_paths
    from dlwh.warehouse import warehouse

    with warehouse(db) as con:
        results = ingest_paths(con, [run_dir])
        bad = [r for r in results if r.outcome == "failed"]
        if bad:
            raise DlwhError(f"ingesting {bad[0].path} failed: {bad[0].message}")
        return con.execute(
            "SELECT model, batch_size, gpu, throughput_samples_per_s, time_per_step_s, avg_power_w, "
            "energy_per_sample_j, macs_per_sample, params FROM bench_results WHERE run_id = ?",
            [run_id]).df()
