"""dlwh.bench: train a zoo model on synthetic data under the collector and report its cost.

Importing this package imports no torch, duckdb or pandas; running a benchmark needs torch (and
nvidia-ml-py for GPU power). Public API:

* :class:`BenchConfig` (what to run), :func:`run_bench` (record one run, returns :class:`BenchResult`)
* :func:`summarise_run` / :class:`BenchSummary` / :func:`format_summary`: a bench run's throughput,
  time per step and energy per sample read straight from its run directory (standard library only)
* :func:`ingest_and_query`: ingest a run and read its ``bench_results`` row (needs duckdb)
"""

from __future__ import annotations

from typing import Any

from dlwh.bench.config import WORKLOAD_TAG, BenchConfig
from dlwh.bench.summary import BenchSummary, format_summary, summarise_run

_LAZY = {"run_bench": "dlwh.bench.runner", "BenchResult": "dlwh.bench.runner",
         "ingest_and_query": "dlwh.bench.runner", "build_tags": "dlwh.bench.runner"}

__all__ = ["WORKLOAD_TAG", "BenchConfig", "BenchSummary", "format_summary", "summarise_run", *_LAZY]


def __getattr__(name: str) -> Any:
    """Import the runner (and through it the collector) on first use."""
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'dlwh.bench' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(mod), name)
