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
    "dlwh.ingest.formats.dlwh_manifest",
    "dlwh.ingest.formats.dlwh_spans",
    "dlwh.ingest.formats.dlwh_nvml",
    "dlwh.ingest.formats.perf_stat_json",
    "dlwh.ingest.formats.perf_stat_csv",
    "dlwh.ingest.formats.perf_stat_text",
    "dlwh.ingest.formats.nvidia_smi_dmon",
    "dlwh.ingest.formats.nvidia_smi_query",
    "dlwh.ingest.formats.ipmitool_dcmi",
    "dlwh.ingest.formats.ipmitool_sensors",
    "dlwh.ingest.formats.powermetrics_plist",
    "dlwh.ingest.formats.powermetrics_text",
    "dlwh.ingest.formats.zeus_summary_power",
    "dlwh.ingest.formats.zeus_summary_train",
    "dlwh.ingest.formats.zeus_profile",
    "dlwh.ingest.formats.perseus_global",
    "dlwh.ingest.formats.codecarbon_csv",
    "dlwh.ingest.formats.carbontracker_log",
    "dlwh.ingest.formats.nvprof_trace",
    "dlwh.ingest.formats.nvprof_metrics",
    "dlwh.ingest.formats.electricitymaps_json",
    "dlwh.ingest.formats.electricitymaps_csv",
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
