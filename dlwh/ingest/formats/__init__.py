"""The registry of trace formats. Adding a format: one new module and one line in FORMAT_MODULES.

A format module defines:
    NAME: str                                   the format's name (stored in files.format)
    sniff(head: str, path: Path) -> bool        True if the first 64 KiB (text) look like this format
    parse(ctx: IngestContext) -> Trace          the file's content as normalised tables
Formats are tried in this order; the first whose sniff() says yes parses the file.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

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
    """The first format whose sniff() accepts ``head``, or None (modules imported as they are tried)."""
    for name in FORMAT_MODULES:
        module = importlib.import_module(name)
        try:
            if module.sniff(head, path):
                return module
        except Exception:  # a sniffer must never stop detection of the others
            continue
    return None
