"""The registry of trace formats. Adding a format: one new module and one line in FORMAT_MODULES.

Formats are grouped by the tool that writes them: ``formats/<tool>/<format>.py``, with what a tool's
parsers share in ``formats/<tool>/_common.py`` and the tool's name in ``formats/<tool>/__init__.py``
(``TOOL``; the folder's name where there is none). A format module provides what ``dlwh.ingest.trace.FormatModule`` says (NAME, DESCRIPTION,
EXTENSIONS, sniff, parse). Formats are tried in this order, each imported only when it is tried; the
first whose sniff() says yes parses the file.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

FORMAT_MODULES: tuple[str, ...] = (
    "dlwh.ingest.formats.dlwh.manifest",
    "dlwh.ingest.formats.dlwh.spans",
    "dlwh.ingest.formats.dlwh.nvml",
    "dlwh.ingest.formats.perf.stat_json",
    "dlwh.ingest.formats.perf.stat_csv",
    "dlwh.ingest.formats.perf.stat_text",
    "dlwh.ingest.formats.nvidia_smi.dmon",
    "dlwh.ingest.formats.nvidia_smi.query",
    "dlwh.ingest.formats.ipmitool.dcmi",
    "dlwh.ingest.formats.ipmitool.sensors",
    "dlwh.ingest.formats.powermetrics.plist",
    "dlwh.ingest.formats.powermetrics.text",
    "dlwh.ingest.formats.zeus.summary_power",
    "dlwh.ingest.formats.zeus.summary_train",
    "dlwh.ingest.formats.zeus.profile",
    "dlwh.ingest.formats.zeus.perseus_global",
    "dlwh.ingest.formats.codecarbon.emissions_csv",
    "dlwh.ingest.formats.carbontracker.log",
    "dlwh.ingest.formats.nvprof.trace",
    "dlwh.ingest.formats.nvprof.metrics",
    "dlwh.ingest.formats.electricitymaps.api_json",
    "dlwh.ingest.formats.electricitymaps.history_csv",
)


def load_formats() -> list[ModuleType]:
    """The format modules, in sniffing order (modules that fail to import are an error)."""
    return [importlib.import_module(name) for name in FORMAT_MODULES]


def detect(head: str, path: Path) -> ModuleType | None:
    """The first format whose sniff() accepts ``head``, or None (modules imported as they are tried).

    A sniffer that raises is a bug (tests/test_formats_registry.py calls each one directly, so that it
    fails there); here it must not stop the detection of the others, unless DLWH_DEBUG is set.
    """
    for name in FORMAT_MODULES:
        module = importlib.import_module(name)
        try:
            if module.sniff(head, path):
                return module
        except Exception:
            if os.environ.get("DLWH_DEBUG"):
                raise
            continue
    return None


class FormatInfo(NamedTuple):
    """One registered format, for docs and listings."""

    name: str
    tool: str
    description: str
    extensions: tuple[str, ...]
    module: str


def list_formats() -> list[FormatInfo]:
    """Every registered format in sniffing order (imports them all; docs/formats.md's table comes from it)."""
    out = []
    for name in FORMAT_MODULES:
        module = importlib.import_module(name)
        package_name = name.rsplit(".", 1)[0]
        tool = getattr(importlib.import_module(package_name), "TOOL", package_name.rsplit(".", 1)[-1])
        out.append(FormatInfo(module.NAME, tool, module.DESCRIPTION, tuple(module.EXTENSIONS), name))
    return out
