"""The run manifest (``run.json``, docs/run-format.md): built once, rewritten atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from dlwh.collect.clock import Anchor, iso_utc

FORMAT = "dlwh-run"
FORMAT_VERSION = 1
FILE = "run.json"
KEYS = ("format", "format_version", "run_id", "host", "start_utc", "end_utc", "monotonic_anchor",
        "timezone", "command", "exit_code", "gpus", "cpu_model", "tools", "sources",
        "unavailable_sources", "tags")
"""The manifest's keys, in the order written (exactly those of docs/run-format.md)."""


def build(*, run_id: str, host: str, anchor: Anchor, timezone: str, command: Sequence[str],
          gpus: list[dict[str, Any]], cpu_model: str, tools: dict[str, str],
          sources: list[dict[str, Any]], unavailable: list[dict[str, str]],
          tags: dict[str, Any]) -> dict[str, Any]:
    """A manifest for a run that starts at ``anchor`` (``end_utc`` and ``exit_code`` null)."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "run_id": run_id,
        "host": host,
        "start_utc": iso_utc(anchor.utc_ns),
        "end_utc": None,
        "monotonic_anchor": anchor.to_manifest(),
        "timezone": timezone,
        "command": list(command),
        "exit_code": None,
        "gpus": gpus,
        "cpu_model": cpu_model,
        "tools": tools,
        "sources": sources,
        "unavailable_sources": unavailable,
        "tags": tags,
    }


def write(run_dir: Path, manifest: dict[str, Any]) -> Path:
    """Write ``run_dir``/run.json atomically (temporary file, fsync, rename)."""
    path = run_dir / FILE
    tmp = run_dir / f".{FILE}.{os.getpid()}.tmp"
    data = json.dumps(manifest, indent=2, default=str) + "\n"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def read(run_dir: Path) -> dict[str, Any]:
    """The manifest of a run directory."""
    with open(Path(run_dir) / FILE, encoding="utf-8") as f:
        return json.load(f)  # type: ignore[no-any-return]
