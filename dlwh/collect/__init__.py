"""dlwh.collect: record power and time while deep-learning work runs.

Light to import (no duckdb, pandas, fvcore, scikit-learn; torch only when layer hooks are used).

In the workload::

    from dlwh.collect import span, record_layers
    with span("epoch", epoch=e):
        with span("step", step=i):
            ...

Around a command (what ``dlwh collect -- CMD`` does)::

    from dlwh.collect import collect
    result = collect(["python", "train.py"], sources="auto", interval_ms=100, tags={"model": "cnn"})
"""

from __future__ import annotations

from typing import Any

from dlwh.collect.spans import enabled, get_run_dir, set_run_dir, span, write_span

_LAZY = {
    "record_layers": "dlwh.collect.layers",
    "LayerRecorder": "dlwh.collect.layers",
    "collect": "dlwh.collect.runner",
    "record": "dlwh.collect.runner",
    "CollectOptions": "dlwh.collect.runner",
    "RunResult": "dlwh.collect.runner",
    "available_sources": "dlwh.collect.runner",
    "sweep": "dlwh.collect.sweep",
    "parse_limits": "dlwh.collect.sweep",
}

__all__ = ["span", "set_run_dir", "get_run_dir", "enabled", "write_span", *_LAZY]


def __getattr__(name: str) -> Any:
    """Import the heavier parts (runner, sources, layer hooks) on first use."""
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'dlwh.collect' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(mod), name)
