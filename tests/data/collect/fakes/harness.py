"""Helpers for the collector's tests: fake tools on PATH, the fake pynvml, ../shared fixtures."""

from __future__ import annotations

import importlib.util
import os
import stat
import sys
from pathlib import Path
from types import ModuleType

import pytest

FAKES = Path(__file__).resolve().parent
DATA = FAKES.parent
REPO = FAKES.parents[3]
PYLIB = FAKES / "pylib"
SHARED = Path(os.environ.get("DLWH_SHARED_DIR", REPO.parent / "shared"))
TOOLS = {"nvidia-smi": "nvidia_smi.py", "perf": "perf.py", "ipmitool": "ipmitool.py",
         "powermetrics": "powermetrics.py"}


def shared_fixture(rel: str) -> Path:
    """A file under ../shared/fixtures, or skip the test saying why."""
    path = SHARED / "fixtures" / rel
    if not path.is_file():
        pytest.skip(f"{path} is absent (the ../shared fixtures are not checked out beside the repo)")
    return path


def make_bin(tmp: Path, tools: list[str]) -> Path:
    """A directory of executables that run the fake tools with this Python."""
    bindir = tmp / "fakebin"
    bindir.mkdir(exist_ok=True)
    for tool in tools:
        script = bindir / tool
        script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKES / "bin" / TOOLS[tool]}" "$@"\n')
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return bindir


def load_fake_pynvml() -> ModuleType:
    """A fresh instance of the fake pynvml module."""
    spec = importlib.util.spec_from_file_location("pynvml", PYLIB / "pynvml.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def fake_sysfs(tmp: Path, rapl: list[str], pmu: list[str]) -> Path:
    """A /sys/bus/event_source/devices look-alike with these RAPL and PMU event files."""
    root = tmp / "event_source"
    (root / "software" / "events").mkdir(parents=True, exist_ok=True)
    if rapl:
        d = root / "power" / "events"
        d.mkdir(parents=True, exist_ok=True)
        for ev in rapl:
            (d / ev).write_text("event=0x02\n")
            (d / f"{ev}.scale").write_text("2.3283064365386962890625e-10\n")
            (d / f"{ev}.unit").write_text("Joules\n")
    if pmu:
        d = root / "cpu" / "events"
        d.mkdir(parents=True, exist_ok=True)
        for ev in pmu:
            (d / ev).write_text("event=0x3c\n")
    return root
