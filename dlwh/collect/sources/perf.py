"""``perf stat -a -x, -I N -e <RAPL events> [-e <PMU events>] -o perf.csv``.

RAPL energy (``power/energy-*/``) is what this source is for; PMU counters (cycles, instructions,
cache and branch events, idle/stalled cycles) are added where the CPU has them. Events are found in
sysfs (``/sys/bus/event_source/devices``) and confirmed with one ``perf stat ... -- true``; events
perf reports as ``<not supported>`` are dropped and noted. perf's interval times are seconds since
perf started: the manifest's ``anchor`` for this source is the moment dlwh started perf (perf also
writes a ``# started on`` line, to the second).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Optional

from dlwh.collect.hostinfo import tool_version
from dlwh.collect.sources.base import ExternalSource, SourceUnavailable, first_line, which_or_unavailable

SYSFS = Path("/sys/bus/event_source/devices")
ENV_SYSFS = "DLWH_SYSFS_EVENT_SOURCES"
"""Overrides SYSFS (tests point it at a recorded tree)."""
PMU_EVENTS = (  # perf's generic name, sysfs name
    ("cycles", "cpu-cycles"),
    ("instructions", "instructions"),
    ("cache-references", "cache-references"),
    ("cache-misses", "cache-misses"),
    ("branches", "branch-instructions"),
    ("branch-misses", "branch-misses"),
    ("stalled-cycles-frontend", "stalled-cycles-frontend"),  # perf's alias: idle-cycles-frontend
    ("stalled-cycles-backend", "stalled-cycles-backend"),  # idle-cycles-backend
)
CPU_PMUS = ("cpu", "cpu_core", "cpu_atom")
MIN_INTERVAL_MS = 10
PERMISSION_FIX = "run as root, or: sudo sysctl kernel.perf_event_paranoid=0"


def sysfs_root(env: dict[str, str]) -> Path:
    return Path(env.get(ENV_SYSFS) or SYSFS)


def rapl_events(root: Path) -> list[str]:
    """RAPL events the kernel offers, as perf names them (``power/energy-pkg/``, ...)."""
    d = root / "power" / "events"
    if not d.is_dir():
        return []
    names = sorted(p.name for p in d.iterdir() if p.name.startswith("energy-") and "." not in p.name)
    return [f"power/{n}/" for n in names]


def pmu_events(root: Path) -> list[str]:
    """Generic PMU events whose sysfs entry exists on a CPU PMU."""
    have = set()
    for pmu in CPU_PMUS:
        d = root / pmu / "events"
        if d.is_dir():
            have.update(p.name for p in d.iterdir())
    return [perf_name for perf_name, sys_name in PMU_EVENTS if sys_name in have]


def paranoid_level() -> Optional[int]:
    try:
        with open("/proc/sys/kernel/perf_event_paranoid") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


class PerfSource(ExternalSource):
    """perf stat in interval mode, system-wide, until SIGINT."""

    name = "perf"
    file_name = "perf.csv"
    stop_signal = signal.SIGINT
    output_via_stdout = False

    def __init__(self, interval_ms: int = 100, env: Optional[dict[str, str]] = None) -> None:
        super().__init__(max(MIN_INTERVAL_MS, interval_ms), env)
        if interval_ms < MIN_INTERVAL_MS:
            self.note(f"interval raised to perf's minimum of {MIN_INTERVAL_MS} ms")
        self.env["LC_ALL"] = "C"  # no locale digit grouping in the numbers
        self.rapl: list[str] = []
        self.pmu: list[str] = []

    def check(self) -> None:
        which_or_unavailable("perf", "install perf (Debian: apt-get install linux-perf; "
                                     "Ubuntu: apt-get install linux-tools-$(uname -r))")
        root = sysfs_root(self.env)
        rapl = rapl_events(root)
        if not rapl:
            raise SourceUnavailable(
                f"no RAPL energy events ({root}/power is absent: this CPU or VM exposes no RAPL)",
                "run on bare metal with an Intel or AMD CPU that has RAPL")
        level = paranoid_level()
        if os.geteuid() != 0 and (level is None or level > 0):
            raise SourceUnavailable(
                f"perf RAPL needs kernel.perf_event_paranoid <= 0 or root (it is {level})",
                PERMISSION_FIX)
        pmu = pmu_events(root)
        p = self._probe(rapl + pmu)
        text = p.stderr + p.stdout
        if p.returncode != 0:
            raise SourceUnavailable(f"perf stat failed: {first_line(text)}", PERMISSION_FIX)
        unsupported = {ev for ev in rapl + pmu if _line_for(text, ev, "<not supported>")}
        unsupported |= {ev for ev in rapl + pmu if _line_for(text, ev, "<not counted>")}
        self.rapl = [e for e in rapl if e not in unsupported]
        self.pmu = [e for e in pmu if e not in unsupported]
        if not self.rapl:
            raise SourceUnavailable("perf cannot count this machine's RAPL events (not supported)",
                                    PERMISSION_FIX)
        if unsupported:
            self.note("events perf does not support here, dropped: " + ", ".join(sorted(unsupported)))
        missing = [g for g, _ in PMU_EVENTS if g not in pmu]
        if missing:
            self.note("PMU events this CPU does not offer: " + ", ".join(missing))
        version = tool_version("perf")
        if version:
            self.tools["perf"] = version

    def _probe(self, events: list[str]) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(["perf", "stat", "-a", "-x,", "-e", ",".join(events), "--", "true"],
                                  capture_output=True, text=True, timeout=30, env=self.env)
        except (OSError, subprocess.SubprocessError) as err:
            raise SourceUnavailable(f"perf failed to run ({err})", PERMISSION_FIX) from None

    def argv(self, out_file: Path) -> list[str]:
        argv = ["perf", "stat", "-a", "-x,", "-I", str(self.interval_ms), "-e", ",".join(self.rapl)]
        if self.pmu:
            argv += ["-e", ",".join(self.pmu)]
        return argv + ["-o", str(out_file)]


def _line_for(text: str, event: str, marker: str) -> bool:
    for line in text.splitlines():
        cols = line.split(",")
        if marker in line and event in cols:
            return True
    return False
