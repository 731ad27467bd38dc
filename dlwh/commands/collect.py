"""CLI: ``dlwh collect [OPTIONS] -- CMD ...`` and ``dlwh collect sweep --power-limits ... -- CMD``.

Only parses arguments and calls :mod:`dlwh.collect` (imported when a command runs).
"""

from __future__ import annotations

from typing import Any, List, Optional

import typer
from typer.core import TyperCommand, TyperGroup

from dlwh.commands._common import friendly_errors

SOURCES_HELP = ("auto (every source available here) or a comma list of "
                "nvml,nvidia-smi,perf,ipmi,powermetrics; a source named here that cannot record "
                "is an error before the command starts.")
CTX = {"allow_interspersed_args": False, "help_option_names": ["-h", "--help"]}


class _DefaultRun(TyperGroup):
    """``dlwh collect ARGS`` means ``dlwh collect run ARGS`` unless ARGS start with a subcommand."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args or args[0] not in self.commands:
            args = ["run", *args]
        return super().parse_args(ctx, args)


class _UsageAsCollect(TyperCommand):
    """Help shows ``dlwh collect [sweep] [OPTIONS] -- CMD [ARGS]...`` (``run`` is implied)."""

    def get_usage(self, ctx: Any) -> str:
        parent = ctx.parent.command_path if ctx.parent is not None else "dlwh collect"
        sub = "" if self.name == "run" else f" {self.name}"
        return f"Usage: {parent}{sub} [OPTIONS] -- CMD [ARGS]..."

    def format_usage(self, ctx: Any, formatter: Any) -> None:
        formatter.write(self.get_usage(ctx) + "\n")


collect_app = typer.Typer(
    cls=_DefaultRun,
    help="Run a command while recording power, clocks and spans into a run directory.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _options(out: Optional[str], source: str, interval_ms: int, tag: Optional[List[str]],
             layers: bool, save_output: bool, quiet: bool, gpu: Optional[List[int]] = None,
             no_redact: bool = False) -> Any:
    from dlwh.collect.options import parse_tags
    from dlwh.collect.runner import CollectOptions

    return CollectOptions(out=out, sources=source, interval_ms=interval_ms,
                          tags=parse_tags(tag or []), layers=layers, save_output=save_output,
                          quiet=quiet, gpus=gpu, redact=not no_redact)


OutOpt = typer.Option(None, "--out", "-o", help="Run directory to create (default traces/<UTC time>-<name>).")
SourceOpt = typer.Option("auto", "--source", "-s", help=SOURCES_HELP)
IntervalOpt = typer.Option(100, "--interval-ms", "-i", min=1,
                           help="Sampling interval in ms (NVML holds 10; ipmi polls at least every 1000).")
TagOpt = typer.Option(None, "--tag", "-t", help="key=value stored in the manifest (repeatable), e.g. model=resnet18.")
LayersOpt = typer.Option(False, "--layers", help="Ask the workload for per-layer spans (sets DLWH_LAYER_SPANS=1).")
SaveOpt = typer.Option(False, "--save-output", help="Also copy the command's stdout/stderr to stdout.log/stderr.log.")
QuietOpt = typer.Option(False, "--quiet", "-q", help="Print nothing but errors.")
NoRedactOpt = typer.Option(False, "--no-redact",
                           help="Keep the command line in run.json as given (by default values of --password, "
                                "--token, --api-key, *_KEY=, *_TOKEN=, URL passwords... are stored as ***).")
CommandArg = typer.Argument(..., metavar="CMD", help="The command to run and its arguments, after --.",
                            show_default=False)


@collect_app.command("run", cls=_UsageAsCollect, context_settings=CTX)
@friendly_errors
def run_cmd(
    command: List[str] = CommandArg,
    out: Optional[str] = OutOpt,
    source: str = SourceOpt,
    interval_ms: int = IntervalOpt,
    tag: Optional[List[str]] = TagOpt,
    layers: bool = LayersOpt,
    save_output: bool = SaveOpt,
    quiet: bool = QuietOpt,
    no_redact: bool = NoRedactOpt,
) -> None:
    """Run CMD while recording; exit with CMD's exit code.

    Example: dlwh collect --tag model=cnn -- python train.py

    Ctrl-C or SIGTERM stops CMD and still completes the run directory.

    Power-limit sweeps: dlwh collect sweep --help
    """
    from dlwh.collect.runner import collect

    result = collect(command, _options(out, source, interval_ms, tag, layers, save_output, quiet,
                                       no_redact=no_redact))
    raise typer.Exit(result.shell_exit_code)


@collect_app.command("sweep", cls=_UsageAsCollect, context_settings=CTX)
@friendly_errors
def sweep_cmd(
    command: List[str] = CommandArg,
    power_limits: str = typer.Option(..., "--power-limits", "-p",
                                     help="GPU power limits in W, comma-separated, e.g. 150,200,250."),
    gpu: Optional[List[int]] = typer.Option(None, "--gpu", help="GPU index to limit (repeatable; default all)."),
    out: Optional[str] = typer.Option(None, "--out", "-o",
                                      help="Parent directory; each run goes to <out>/pl<W>W (default traces/...)."),
    source: str = SourceOpt,
    interval_ms: int = IntervalOpt,
    tag: Optional[List[str]] = TagOpt,
    layers: bool = LayersOpt,
    save_output: bool = SaveOpt,
    quiet: bool = QuietOpt,
    no_redact: bool = NoRedactOpt,
) -> None:
    """Run CMD once per GPU power limit, recording each run (tagged power_limit_w).

    Example: sudo dlwh collect sweep --power-limits 200,300,400 -- python train.py

    Needs root. Limits outside a GPU's range are refused before anything runs.

    The original limits are restored afterwards, also after an error or Ctrl-C.
    """
    from dlwh.collect.sweep import parse_limits, sweep

    limits = parse_limits(power_limits)
    results = sweep(command, limits,
                    _options(out, source, interval_ms, tag, layers, save_output, quiet, gpu, no_redact), gpus=gpu)
    failed = [r for r in results if r.exit_code != 0]
    raise typer.Exit(failed[0].shell_exit_code if failed else (130 if len(results) < len(limits) else 0))


@collect_app.command("restore", context_settings={"help_option_names": ["-h", "--help"]})
@friendly_errors
def restore_cmd(
    record: Optional[List[str]] = typer.Argument(
        None, metavar="RECORD", show_default=False,
        help="Record files to restore from (default: every record of this host in the state directory)."),
    force: bool = typer.Option(False, "--force", help="Also restore records whose sweep still seems to run."),
) -> None:
    """Put back the GPU power limits that a killed or crashed sweep left changed.

    Example: sudo dlwh collect restore

    A sweep records the original limits before changing any, in $XDG_STATE_HOME/dlwh and beside its runs.

    Exits 1 when a GPU could not be restored.
    """
    from pathlib import Path

    from dlwh.collect.limitstate import state_dir
    from dlwh.collect.restore import restore_recorded

    report = restore_recorded([Path(r) for r in record or []], force=force)
    for line in report.restored:
        typer.echo(f"restored {line}")
    for line in report.skipped:
        typer.echo(f"skipped: {line}", err=True)
    for line in report.failed:
        typer.echo(f"error: {line}", err=True)
    if not report.records:
        typer.echo(f"nothing to restore: no power-limit record of this host in {state_dir()}")
    raise typer.Exit(1 if report.failed else 0)


def register(app: typer.Typer) -> None:
    """Add ``dlwh collect`` (and ``dlwh collect sweep``) to ``app``."""
    app.add_typer(collect_app, name="collect")
