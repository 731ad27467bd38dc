"""``python -m dlwh.collect [options] -- CMD ...``: the collector without the full CLI.

For GPU nodes that have only Python, torch and nvidia-ml-py (no typer): same options as
``dlwh collect``; ``python -m dlwh.collect sweep --power-limits 150,200 -- CMD`` for sweeps and
``python -m dlwh.collect restore [RECORD ...]`` to put back the limits a killed sweep left.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from dlwh.errors import DlwhError


def _parser(prog: str, sweep: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__)
    if sweep:
        p.add_argument("--power-limits", "-p", required=True, help="watts, comma-separated: 150,200,250")
        p.add_argument("--gpu", action="append", type=int, help="GPU index (repeat; default all)")
    p.add_argument("--out", "-o", help="run directory (default traces/<UTC>-<name>)")
    p.add_argument("--source", "-s", default="auto", help="auto or a comma list of nvml,nvidia-smi,perf,ipmi,powermetrics")
    p.add_argument("--interval-ms", "-i", type=int, default=100)
    p.add_argument("--tag", "-t", action="append", default=[], help="key=value (repeat)")
    p.add_argument("--layers", action="store_true", help="per-layer spans (DLWH_LAYER_SPANS=1)")
    p.add_argument("--save-output", action="store_true", help="also write stdout.log/stderr.log")
    p.add_argument("--quiet", "-q", action="store_true")
    p.add_argument("--no-redact", action="store_true", help="keep secrets of the command line in run.json")
    p.add_argument("command", nargs=argparse.REMAINDER)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; returns the exit status."""
    from dlwh.collect.options import parse_tags

    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["restore"]:
        return _restore(args[1:])
    is_sweep = bool(args) and args[0] == "sweep"
    if is_sweep:
        args = args[1:]
    ns = _parser("python -m dlwh.collect" + (" sweep" if is_sweep else ""), is_sweep).parse_args(args)
    command = ns.command[1:] if ns.command[:1] == ["--"] else ns.command
    try:
        from dlwh.collect.runner import CollectOptions, collect

        opts = CollectOptions(out=ns.out, sources=ns.source, interval_ms=ns.interval_ms,
                              tags=parse_tags(ns.tag), layers=ns.layers,
                              save_output=ns.save_output, quiet=ns.quiet, redact=not ns.no_redact)
        if is_sweep:
            from dlwh.collect.sweep import parse_limits, sweep

            results = sweep(command, parse_limits(ns.power_limits), opts, gpus=ns.gpu)
            bad = [r for r in results if r.exit_code != 0]
            return bad[0].shell_exit_code if bad else 0
        return collect(command, opts).shell_exit_code
    except DlwhError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code


def _restore(args: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m dlwh.collect restore",
                                description="Put back the GPU power limits a killed sweep left changed.")
    p.add_argument("record", nargs="*", help="record files (default: every record of this host)")
    p.add_argument("--force", action="store_true", help="also records whose sweep still seems to run")
    ns = p.parse_args(list(args))
    from dlwh.collect.limitstate import state_dir
    from dlwh.collect.restore import restore_recorded

    try:
        report = restore_recorded(ns.record, force=ns.force)
    except DlwhError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    for line in report.restored:
        print(f"restored {line}")
    for line in report.skipped:
        print(f"skipped: {line}", file=sys.stderr)
    for line in report.failed:
        print(f"error: {line}", file=sys.stderr)
    if not report.records:
        print(f"nothing to restore: no power-limit record of this host in {state_dir()}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
