"""The recording sources, by the name users give them (``--source nvml,perf``)."""

from __future__ import annotations

from typing import Optional

from dlwh.collect.sources.base import Source, SourceUnavailable
from dlwh.collect.sources.ipmi import MIN_INTERVAL_MS as IPMI_MIN_INTERVAL_MS
from dlwh.collect.sources.ipmi import IpmiSource
from dlwh.collect.sources.nvidia_smi import NvidiaSmiSource
from dlwh.collect.sources.nvml_source import NvmlSource
from dlwh.collect.sources.perf import PerfSource
from dlwh.collect.sources.powermetrics import PowermetricsSource

SOURCES: dict[str, type[Source]] = {
    "nvml": NvmlSource,
    "nvidia-smi": NvidiaSmiSource,
    "perf": PerfSource,
    "ipmi": IpmiSource,
    "powermetrics": PowermetricsSource,
}
SOURCE_NAMES = tuple(SOURCES)


def make_source(name: str, interval_ms: int, env: Optional[dict[str, str]] = None) -> Source:
    """A source object by name (not yet checked)."""
    return SOURCES[name](interval_ms, env)


__all__ = ["SOURCES", "SOURCE_NAMES", "Source", "SourceUnavailable", "make_source",
           "IPMI_MIN_INTERVAL_MS"]
