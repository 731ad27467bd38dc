"""What nvidia-smi's query and dmon parsers share: the recorded command in run.json, the sample interval and
nvidia-smi's own error lines."""

from __future__ import annotations

import shlex
from typing import Any

from dlwh.ingest.trace import IngestContext

# what nvidia-smi prints (to stderr, often redirected into the log) when a query fails, e.g. a GPU lost mid-run
NOISE_RE = (r"^\s*(?:Unable to |No devices were found|NVIDIA-SMI has failed|Failed to initialize NVML|"
            r"Driver/library version mismatch|GPU [0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-9A-Fa-f]: )")


def source_entry(ctx: IngestContext, mode: str = "--query-gpu") -> dict[str, Any] | None:
    """This file's source in the run's manifest: the one naming this file, else the first nvidia-smi
    source whose command holds ``mode`` ('--query-gpu' or 'dmon')."""
    sources = [s for s in (ctx.manifest or {}).get("sources") or [] if isinstance(s, dict)]
    for source in sources:
        if source.get("file") == ctx.path.name:
            return source
    for source in sources:
        argv = command_argv(source)
        if argv and "nvidia-smi" in argv[0] and any(a == mode or a.startswith(mode + "=") for a in argv):
            return source
    return None


def command_argv(source: dict[str, Any] | None) -> list[str]:
    """The command of a manifest source as an argument list (a string is split like a shell would)."""
    command = (source or {}).get("command")
    if isinstance(command, str):
        try:
            return shlex.split(command)
        except ValueError:
            return command.split()
    return [str(c) for c in command] if isinstance(command, list) else []


def option(argv: list[str], *names: str) -> str | None:
    """The value of ``--name=value`` / ``--name value`` / ``-n value`` in argv."""
    for i, arg in enumerate(argv):
        for name in names:
            if arg.startswith(name + "="):
                return arg[len(name) + 1:]
            if arg == name and i + 1 < len(argv):
                return argv[i + 1]
    return None


def sample_interval(ctx: IngestContext, loop_options: tuple[tuple[str, float], ...],
                    mode: str = "--query-gpu") -> tuple[float, str]:
    """Seconds between readings and where that came from: --interval-s, the manifest, the command, else 1 s."""
    if ctx.options.get("interval_s") is not None:
        return float(ctx.options["interval_s"]), "--interval-s"
    source = source_entry(ctx, mode)
    if source and source.get("interval_ms"):
        return float(source["interval_ms"]) / 1000.0, "run.json"
    argv = command_argv(source)
    for name, scale in loop_options:
        value = option(argv, name)
        if value:
            try:
                return float(value) * scale, "the recorded command"
            except ValueError:
                pass
    return 1.0, "default"
