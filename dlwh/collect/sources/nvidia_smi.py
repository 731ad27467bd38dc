"""``nvidia-smi --query-gpu=... --format=csv -lms N``, its output unchanged in ``nvidia-smi.csv``.

Fields this driver does not know are dropped (probed with ``nvidia-smi --query-gpu=FIELD
--format=csv``) and named in the manifest. nvidia-smi prints local time: the manifest's
``timezone`` says which.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Optional

from dlwh.collect.hostinfo import tool_version
from dlwh.collect.sources.base import ExternalSource, SourceUnavailable, first_line, which_or_unavailable

FIELDS = (
    "index", "uuid", "timestamp", "power.draw", "power.draw.instant", "power.limit",
    "enforced.power.limit", "clocks.sm", "clocks.mem", "clocks.gr", "temperature.gpu",
    "utilization.gpu", "utilization.memory", "memory.used",
)
FIX = "install the NVIDIA driver (it brings nvidia-smi), or run on a node with an NVIDIA GPU"


class NvidiaSmiSource(ExternalSource):
    """Runs nvidia-smi in loop mode for the whole run."""

    name = "nvidia-smi"
    file_name = "nvidia-smi.csv"

    def __init__(self, interval_ms: int = 100, env: Optional[dict[str, str]] = None) -> None:
        super().__init__(interval_ms, env)
        self.fields: list[str] = list(FIELDS)

    def _probe(self, fields: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv"],
                              capture_output=True, text=True, timeout=30, env=self.env)

    def check(self) -> None:
        which_or_unavailable("nvidia-smi", FIX)
        try:
            p = self._probe(list(FIELDS))
        except (OSError, subprocess.SubprocessError) as err:
            raise SourceUnavailable(f"nvidia-smi failed to run ({err})", FIX) from None
        if p.returncode != 0:
            text = p.stdout + p.stderr
            if "is not a valid field" not in text:
                raise SourceUnavailable(f"nvidia-smi failed: {first_line(text) or 'exit code %d' % p.returncode}",
                                        FIX)
            keep, dropped = [], []
            for f in FIELDS:
                q = self._probe([f])
                (keep if q.returncode == 0 else dropped).append(f)
            if not keep or "timestamp" not in keep:
                raise SourceUnavailable("nvidia-smi knows none of the fields dlwh records", FIX)
            self.fields = keep
            self.note("fields this driver lacks, dropped: " + ", ".join(dropped))
        version = tool_version("nvidia-smi")
        if version:
            self.tools["nvidia-smi"] = version

    def gpu_inventory(self) -> Optional[list[dict]]:
        """NVML's description of the GPUs where NVML works from Python, else nvidia-smi's."""
        from dlwh.collect.nvml import gpu_inventory as nvml_inventory

        return nvml_inventory() or gpu_inventory(self.env) or None

    def argv(self, out_file: Path) -> list[str]:
        return ["nvidia-smi", f"--query-gpu={','.join(self.fields)}", "--format=csv",
                "-lms", str(self.interval_ms)]


def gpu_inventory(env: Optional[dict[str, str]] = None) -> list[dict]:
    """Manifest GPU entries from nvidia-smi (used when NVML is not available in Python)."""
    fields = ("index,uuid,name,driver_version,power.min_limit,power.default_limit,"
              "power.max_limit,power.limit,enforced.power.limit")
    try:
        p = subprocess.run(["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
                           capture_output=True, text=True, timeout=30, env=env)
    except (OSError, subprocess.SubprocessError):
        return []
    if p.returncode != 0:
        return []

    def num(s: str) -> Optional[float]:
        try:
            return float(s)
        except ValueError:
            return None

    out = []
    for line in p.stdout.splitlines():
        c = [x.strip() for x in line.split(",")]
        if len(c) != 9 or not c[0].isdigit():
            continue
        out.append({"index": int(c[0]), "uuid": c[1], "name": c[2], "driver": c[3],
                    "power_limit_w": {"min": num(c[4]), "default": num(c[5]), "max": num(c[6]),
                                      "current": num(c[7]), "enforced": num(c[8])}})
    return out
