"""CLI: ``dlwh bench MODEL [options]``: train a zoo model on synthetic data under the collector.

Only parses arguments and calls :func:`dlwh.bench.run_bench` (imported when the command runs).
"""

from __future__ import annotations

import json
from typing import List, Optional

import typer

from dlwh.commands._common import friendly_errors


def register(app: typer.Typer) -> None:
    """Add ``bench`` to the app."""

    @app.command("bench")
    @friendly_errors
    def bench(
        model: str = typer.Argument(..., help="Zoo model (see 'dlwh models list'), e.g. resnet18."),
        batch_size: int = typer.Option(32, "--batch-size", "-b", min=1, help="Samples per step."),
        steps: int = typer.Option(20, "--steps", "-n", min=1, help="Steps per epoch."),
        epochs: int = typer.Option(2, "--epochs", "-e",
                                   help="Epochs; the first is the warm-up, the rest are measured (at least 2)."),
        seconds: Optional[float] = typer.Option(None, "--seconds",
                                                help="Run each epoch this many seconds instead of --steps steps."),
        device: Optional[str] = typer.Option(None, "--device", "-d",
                                             help="cuda, cuda:N or cpu (default: cuda when torch sees a GPU)."),
        amp: bool = typer.Option(False, "--amp", help="bf16 autocast (tag precision=amp-bf16; else fp32)."),
        sync: bool = typer.Option(False, "--sync/--no-sync",
                                  help="Synchronise the GPU at every phase edge (GPU phase times; costs throughput)."),
        layers: bool = typer.Option(False, "--layers", help="Also one span per layer and pass (large)."),
        power_limit_tag: Optional[float] = typer.Option(
            None, "--power-limit-tag", metavar="W",
            help="Tag the run power_limit_w=W (the GPU's limit is never changed)."),
        out: Optional[str] = typer.Option(None, "--out", "-o",
                                          help="Run directory (default traces/<UTC>-bench-MODEL-bsB)."),
        interval_ms: int = typer.Option(100, "--interval-ms", "-i", min=1, help="Power sampling interval in ms."),
        source: str = typer.Option("auto", "--source", "-s",
                                   help="Collector sources: auto or a comma list of nvml,nvidia-smi,perf,ipmi,powermetrics."),
        trace_every: int = typer.Option(1, "--trace-every", min=1,
                                        help="Write step and phase spans for every k-th step only."),
        idle_s: Optional[float] = typer.Option(None, "--idle-s",
                                               help="Idle seconds recorded before and after training (default 1 on a GPU, 0 on CPU)."),
        tag: Optional[List[str]] = typer.Option(None, "--tag", "-t", help="Extra run tag key=value (repeatable)."),
        db: Optional[str] = typer.Option(None, "--db",
                                         help="Also ingest the run into this warehouse and print its bench_results row."),
        as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the results."),
    ) -> None:
        """Train MODEL on synthetic data while recording; print throughput, time per step and energy per sample."""
        from dlwh.bench import BenchConfig, format_summary, run_bench
        from dlwh.collect.options import parse_tags

        cfg = BenchConfig(model=model, batch_size=batch_size, steps=steps, epochs=epochs,
                          epoch_seconds=seconds, device=device, amp=amp, sync=sync, layers=layers,
                          power_limit_tag=power_limit_tag, out=out, interval_ms=interval_ms,
                          sources=source, trace_every=trace_every, idle_s=idle_s,
                          tags=parse_tags(tag or []), quiet=quiet)
        log = None if quiet or as_json else (lambda m: typer.echo(m, err=True))
        result = run_bench(cfg, log)
        if as_json:
            typer.echo(json.dumps(result.summary.to_dict()))
        else:
            typer.echo(format_summary(result.summary))
        if db is not None:
            from dlwh.bench import ingest_and_query
            from dlwh.warehouse.query import format_frame

            frame = ingest_and_query(result.run_dir, result.run_id, db)
            if not as_json:
                typer.echo(f"ingested into {db}; bench_results:")
                typer.echo(format_frame(frame))
