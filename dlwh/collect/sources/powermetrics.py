"""``powermetrics --samplers cpu_power,gpu_power -i N`` (macOS, root), unchanged in ``powermetrics.txt``."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from dlwh.collect.hostinfo import tool_version
from dlwh.collect.sources.base import ExternalSource, SourceUnavailable, which_or_unavailable


def _platform() -> str:
    """sys.platform (a function so tests can pretend to be macOS)."""
    return sys.platform


def _euid() -> int:
    return os.geteuid()


class PowermetricsSource(ExternalSource):
    """Apple's powermetrics sampling CPU and GPU power for the whole run."""

    name = "powermetrics"
    file_name = "powermetrics.txt"
    stop_signal = signal.SIGINT

    def check(self) -> None:
        if _platform() != "darwin":
            raise SourceUnavailable("powermetrics needs macOS", "run on a Mac (with sudo)")
        which_or_unavailable("powermetrics", "powermetrics ships with macOS; check PATH (/usr/bin)")
        if _euid() != 0:
            raise SourceUnavailable("powermetrics needs root", "run dlwh collect with sudo")
        version = tool_version("powermetrics")
        if version:
            self.tools["powermetrics"] = version

    def argv(self, out_file: Path) -> list[str]:
        return ["powermetrics", "--samplers", "cpu_power,gpu_power", "-i", str(self.interval_ms)]
