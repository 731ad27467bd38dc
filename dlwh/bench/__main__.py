"""``python -m dlwh.bench MODEL [options]``: ``dlwh bench`` without the full CLI.

For GPU nodes that have only Python, torch and nvidia-ml-py (no typer, duckdb or pandas); the
options are those of ``dlwh bench`` (docs/models-and-bench.md), less ``--db``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

from dlwh.errors import DlwhError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dlwh.bench", description=__doc__)
    p.add_argument("model", help="zoo model (dlwh models list), e.g. resnet18")
    p.add_argument("--batch-size", "-b", type=int, default=32)
    p.add_argument("--steps", "-n", type=int, default=20, help="steps per epoch (default 20)")
    p.add_argument("--epochs", "-e", type=int, default=2,
                   help="epochs, the first being the warm-up (default 2, at least 2)")
    p.add_argument("--seconds", type=float, default=None,
                   help="run each epoch this many seconds instead of --steps steps")
    p.add_argument("--device", default=None, help="cuda, cuda:N or cpu (default cuda when available)")
    p.add_argument("--amp", action="store_true", help="bf16 autocast (precision amp-bf16)")
    p.add_argument("--sync", dest="sync", action="store_true", help="synchronise at every phase edge")
    p.add_argument("--no-sync", dest="sync", action="store_false")
    p.set_defaults(sync=False)
    p.add_argument("--layers", action="store_true", help="per-layer spans")
    p.add_argument("--power-limit-tag", type=float, default=None,
                   help="tag the run power_limit_w=W (the GPU is never changed)")
    p.add_argument("--out", "-o", default=None, help="run directory (default traces/<UTC>-bench-MODEL-bsB)")
    p.add_argument("--interval-ms", "-i", type=int, default=100)
    p.add_argument("--source", "-s", default="auto")
    p.add_argument("--trace-every", type=int, default=1,
                   help="step and phase spans for every k-th step only (default 1)")
    p.add_argument("--idle-s", type=float, default=None,
                   help="idle seconds recorded before and after training (default 1 on a GPU, 0 on CPU)")
    p.add_argument("--tag", "-t", action="append", default=[], help="extra tag key=value (repeat)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--quiet", "-q", action="store_true")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; returns the exit status."""
    ns = parser().parse_args(argv)
    try:
        from dlwh.bench.config import BenchConfig
        from dlwh.bench.runner import run_bench
        from dlwh.bench.summary import format_summary
        from dlwh.collect.options import parse_tags

        cfg = BenchConfig(model=ns.model, batch_size=ns.batch_size, steps=ns.steps, epochs=ns.epochs,
                          epoch_seconds=ns.seconds, device=ns.device, amp=ns.amp, sync=ns.sync,
                          layers=ns.layers, power_limit_tag=ns.power_limit_tag, out=ns.out,
                          interval_ms=ns.interval_ms, sources=ns.source, trace_every=ns.trace_every,
                          idle_s=ns.idle_s, tags=parse_tags(ns.tag), quiet=ns.quiet)
        log = None if ns.quiet or ns.json else (lambda m: print(m, file=sys.stderr, flush=True))
        res = run_bench(cfg, log)
        print(json.dumps(res.summary.to_dict()) if ns.json else format_summary(res.summary))
        return 0
    except DlwhError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
