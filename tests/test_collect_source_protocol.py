"""The runner asks a Source everything and names none: a new source is one class and one registry line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import dlwh.collect.sources as sources_mod
from dlwh.collect.runner import SourceError, collect
from dlwh.collect.sources.base import Source, SourceUnavailable

PKG = Path(__file__).resolve().parents[1] / "dlwh" / "collect"


class Probe(Source):
    """A source that records the calls the runner makes (a stand-in for a new power meter)."""

    name = "probe"
    file_name = "probe.log"
    min_interval_ms = 500
    min_interval_why = "the meter updates twice a second"
    calls: list = []

    @classmethod
    def build(cls, interval_ms, env, *, gpus=None):
        cls.calls.append(("build", interval_ms, gpus))
        return cls(interval_ms, env)

    def check(self):
        self.calls.append(("check",))

    def start(self, run_dir, anchor):
        super().start(run_dir, anchor)
        (run_dir / self.file_name).write_text("started\n")
        self.calls.append(("start",))

    def stop(self):
        self.calls.append(("stop",))

    def release(self):
        self.calls.append(("release",))

    def gpu_inventory(self):
        return [{"index": 0, "uuid": "GPU-probe", "name": "Probe GPU"}]


class Broken(Source):
    name = "broken"
    file_name = "broken.log"

    def check(self):
        raise SourceUnavailable("no meter here", "plug one in")


@pytest.fixture
def registry(monkeypatch):
    Probe.calls = []
    monkeypatch.setitem(sources_mod.SOURCES, "probe", Probe)
    monkeypatch.setitem(sources_mod.SOURCES, "broken", Broken)


def test_a_new_source_records_through_the_protocol(registry, tmp_path):
    res = collect(["true"], out=tmp_path / "r", sources="probe", interval_ms=100, gpus=[0], quiet=True)
    assert res.exit_code == 0 and res.sources == ["probe"]
    assert Probe.calls == [("build", 500, [0]), ("check",), ("start",), ("stop",)]
    m = json.loads((tmp_path / "r" / "run.json").read_text())
    assert m["sources"] == [{"name": "probe", "file": "probe.log", "interval_ms": 500, "command": None,
                             "notes": ["polled every 500 ms (the meter updates twice a second)"]}]
    assert m["gpus"] == [{"index": 0, "uuid": "GPU-probe", "name": "Probe GPU"}]
    assert (tmp_path / "r" / "probe.log").read_text() == "started\n"


def test_a_per_source_interval_wins_and_a_checked_source_is_released_when_another_fails(registry, tmp_path):
    from dlwh.collect.runner import CollectOptions

    collect(["true"], CollectOptions(out=tmp_path / "r", sources="probe", intervals_ms={"probe": 50}, quiet=True))
    assert Probe.calls[0] == ("build", 50, None)
    Probe.calls.clear()
    with pytest.raises(SourceError) as err:
        collect(["true"], out=tmp_path / "r2", sources="probe,broken", quiet=True)
    assert str(err.value) == "source broken is unavailable: no meter here; plug one in"
    assert Probe.calls == [("build", 500, None), ("check",), ("release",)]


def test_the_runner_names_no_concrete_source_and_only_nvml_py_imports_pynvml():
    runner = (PKG / "runner.py").read_text()
    for word in ("NvmlSource", "IpmiSource", "PerfSource", "NvidiaSmiSource", "PowermetricsSource",
                 "ExternalSource", "MIN_INTERVAL", '"ipmi"', '"nvml"', "pynvml"):
        assert word not in runner, word
    users = sorted(p.relative_to(PKG).as_posix() for p in PKG.rglob("*.py")
                   if re.search(r"import pynvml|importlib.import_module\(\"pynvml\"\)|\.N\.nvml", p.read_text()))
    assert users == ["nvml.py"]
