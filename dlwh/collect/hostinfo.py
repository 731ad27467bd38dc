"""Facts about the recording host for the manifest: name, CPU model, time zone, tool versions."""

from __future__ import annotations

import os
import platform
import re
import shutil
import socket
import subprocess
import sys
from typing import Optional


def hostname() -> str:
    """The host's name."""
    return socket.gethostname()


def cpu_model() -> str:
    """The CPU model string (``/proc/cpuinfo`` model name, sysctl on macOS), or ``""``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("model name", "Model", "Hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        out = _output(["sysctl", "-n", "machdep.cpu.brand_string"])
        if out:
            return out.strip()
    return platform.processor() or ""


def _valid_zone(name: str) -> bool:
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(name)
        return True
    except Exception:  # noqa: BLE001 - any failure means: not a usable IANA name
        return False


def _zone_from_path(path: str) -> Optional[str]:
    m = re.search(r"zoneinfo/(.+)$", path)
    return m.group(1) if m else None


def timezone_name() -> tuple[str, bool]:
    """The host's IANA time zone name and whether it was determined (else ``("UTC", False)``).

    Looks at ``TZ``, ``/etc/timezone`` and the ``/etc/localtime`` link, in that order.
    """
    tz = os.environ.get("TZ")
    if tz:
        cand = tz[1:] if tz.startswith(":") else tz
        cand = _zone_from_path(cand) or cand
        if _valid_zone(cand):
            return cand, True
        return "UTC", False  # a POSIX rule string we cannot name
    try:
        with open("/etc/timezone", encoding="utf-8") as f:
            cand = f.read().strip()
        if cand and _valid_zone(cand):
            return cand, True
    except OSError:
        pass
    try:
        cand = _zone_from_path(os.path.realpath("/etc/localtime"))
        if cand and _valid_zone(cand):
            return cand, True
    except OSError:
        pass
    return "UTC", False


def _output(argv: list[str], timeout: float = 10) -> Optional[str]:
    """stdout+stderr of argv, or None if it cannot run."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           env={**os.environ, "LC_ALL": "C"})
    except (OSError, subprocess.SubprocessError):
        return None
    return (p.stdout or "") + (p.stderr or "")


def tool_version(tool: str) -> Optional[str]:
    """The version string of an external tool (nvidia-smi, perf, ipmitool), or None."""
    if tool == "nvidia-smi":
        out = _output(["nvidia-smi", "--version"])
        if out:
            m = re.search(r"NVIDIA-SMI version\s*:\s*(\S+)", out)
            if m:
                return m.group(1)
        out = _output(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
        return out.strip().splitlines()[0] if out and out.strip() else None
    if tool == "perf":
        out = _output(["perf", "--version"])
        m = re.search(r"perf version (\S+)", out or "")
        return m.group(1) if m else None
    if tool == "ipmitool":
        out = _output(["ipmitool", "-V"])
        m = re.search(r"version (\S+)", out or "")
        return m.group(1) if m else None
    if tool == "powermetrics":
        ver = platform.mac_ver()[0]
        return f"macOS {ver}" if ver else None
    return None


def package_version(name: str) -> Optional[str]:
    """An installed Python distribution's version, without importing it."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(name)
        except PackageNotFoundError:
            return None
    except ImportError:  # pragma: no cover
        return None


def python_tools() -> dict[str, str]:
    """Versions of Python, dlwh, nvidia-ml-py and torch (those installed)."""
    from dlwh import __version__

    out = {"python": platform.python_version(), "dlwh": __version__}
    for dist, key in (("nvidia-ml-py", "nvidia-ml-py"), ("torch", "torch")):
        v = package_version(dist)
        if v:
            out[key] = v
    return out
