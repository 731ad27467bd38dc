"""External sources (nvidia-smi, perf, ipmitool, powermetrics) with fake tools that replay real output.

nvidia-smi replays output recorded on an H200; perf, ipmitool and powermetrics replay the public
outputs in ../shared/fixtures (skipped, saying why, where ../shared is absent).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "data" / "collect" / "fakes"))
from harness import DATA, fake_sysfs, load_fake_pynvml, make_bin, shared_fixture  # noqa: E402

from dlwh.collect.manifest import KEYS  # noqa: E402
from dlwh.collect.runner import SourceError, collect  # noqa: E402
from dlwh.collect.sources import perf as perf_mod  # noqa: E402
from dlwh.collect.sources import powermetrics as pm_mod  # noqa: E402

SMI = json.loads((DATA / "h200" / "nvidia-smi.json").read_text())
SMI_ROWS = (DATA / "h200" / "nvidia-smi-lms100.csv").read_text().splitlines()
PERF_FIXTURE = "perf/raplvalidation-csv-I100-pmu-uncore-rapl.csv"
IPMI_FIXTURE = "ipmitool/telegraf-ipmitool-dcmi-power-reading.txt"
PM_FIXTURE = "powermetrics/codecarbon-m1-macbookair.txt"


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    """All four fake tools first on PATH; no fake pynvml (real nvidia-ml-py, no driver here)."""
    bindir = make_bin(tmp_path, ["nvidia-smi", "perf", "ipmitool", "powermetrics"])
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv(perf_mod.ENV_SYSFS, str(fake_sysfs(tmp_path, [], [])))
    for var in ("FAKE_SMI_DROP", "FAKE_SMI_FAIL", "FAKE_IPMI_NO_BMC", "FAKE_IPMI_FIXTURE",
                "FAKE_PERF_FIXTURE", "FAKE_POWERMETRICS_FIXTURE", "TZ"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setitem(sys.modules, "pynvml", None)  # NVML: "nvidia-ml-py is not installed"
    return tmp_path


def run(tmp_path: Path, sources, seconds: float = 0.6, **kw):
    logs: list[str] = []
    res = collect([sys.executable, "-c", f"import time; time.sleep({seconds})"], out=tmp_path / "run",
                  sources=sources, log=logs.append, **kw)
    return res, logs


def complete_lines(path: Path) -> list[str]:
    text = path.read_text()
    assert text.endswith("\n"), f"{path.name} ends mid-line"
    return text.splitlines()


# -- nvidia-smi ----------------------------------------------------------------------------------
def test_nvidia_smi_writes_its_own_output(fakes):
    res, logs = run(fakes, ["nvidia-smi"], interval_ms=50)
    lines = complete_lines(res.run_dir / "nvidia-smi.csv")
    assert lines[0] == SMI_ROWS[0]  # the header exactly as nvidia-smi prints it
    assert len(lines) >= 6
    for got, want in zip(lines[1:], SMI_ROWS[1:]):
        g, w = got.split(", "), want.split(", ")
        assert g[:2] + g[3:] == w[:2] + w[3:]
        assert re.fullmatch(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{3}", g[2])
    m = res.manifest
    assert list(m) == list(KEYS)
    (e,) = m["sources"]
    assert e["name"] == "nvidia-smi" and e["file"] == "nvidia-smi.csv" and e["interval_ms"] == 50
    assert e["command"][:1] == ["nvidia-smi"] and e["command"][-2:] == ["-lms", "50"]
    assert e["command"][1] == "--query-gpu=index,uuid,timestamp,power.draw,power.draw.instant,power.limit," \
        "enforced.power.limit,clocks.sm,clocks.mem,clocks.gr,temperature.gpu,utilization.gpu," \
        "utilization.memory,memory.used"
    assert e["notes"] == [] and e["exit_code"] is not None and "anchor" in e
    assert m["tools"]["nvidia-smi"] == "580.159.04"
    # NVML is not importable here, so the GPU list comes from nvidia-smi's recorded answer
    assert m["gpus"] == [{"index": 0, "uuid": "GPU-fd8c29ce-70ee-9f9e-54b9-5183a3f0b0f2", "name": "NVIDIA H200",
                          "driver": "580.159.04",
                          "power_limit_w": {"min": 200.0, "default": 700.0, "max": 700.0, "current": 700.0,
                                            "enforced": 700.0}}]
    assert not (res.run_dir / "nvidia-smi.stderr.log").exists()


@pytest.mark.slow
def test_nvidia_smi_drops_fields_an_older_driver_lacks(fakes, monkeypatch):
    monkeypatch.setenv("FAKE_SMI_DROP", "power.draw.instant")
    res, _ = run(fakes, ["nvidia-smi"], interval_ms=50)
    lines = complete_lines(res.run_dir / "nvidia-smi.csv")
    assert "power.draw.instant" not in lines[0] and "power.draw [W]" in lines[0]
    assert len(lines[1].split(", ")) == 13
    (e,) = res.manifest["sources"]
    assert e["notes"] == ["fields this driver lacks, dropped: power.draw.instant"]
    assert "power.draw.instant" not in e["command"][1]


def test_nvidia_smi_without_driver_is_an_error_when_named(fakes, monkeypatch):
    monkeypatch.setenv("FAKE_SMI_FAIL", "NVIDIA-SMI has failed because it couldn't communicate with the "
                       "NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.")
    with pytest.raises(SourceError, match="source nvidia-smi is unavailable: nvidia-smi failed: NVIDIA-SMI has failed"):
        run(fakes, ["nvidia-smi"])
    assert not (fakes / "run").exists()


# -- perf ----------------------------------------------------------------------------------------
def test_perf_rapl_and_pmu(fakes, monkeypatch):
    fixture = shared_fixture(PERF_FIXTURE)
    monkeypatch.setenv("FAKE_PERF_FIXTURE", str(fixture))
    monkeypatch.setenv(perf_mod.ENV_SYSFS, str(fake_sysfs(
        fakes, ["energy-cores", "energy-pkg", "energy-ram"],
        ["cpu-cycles", "instructions", "cache-references", "cache-misses", "branch-instructions", "branch-misses"])))
    monkeypatch.setattr(perf_mod.os, "geteuid", lambda: 0)
    res, _ = run(fakes, ["perf"], seconds=0.7, interval_ms=100)
    lines = complete_lines(res.run_dir / "perf.csv")
    assert re.fullmatch(r"# started on \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}", lines[0])
    assert lines[1] == ""
    fixture_lines = fixture.read_text().splitlines()
    data = lines[2:]
    assert len(data) >= 7  # at least one interval group of 7 events
    for line in data:  # each line is the fixture's own, unchanged
        assert line in fixture_lines
    events = {line.split(",")[3] for line in data}
    assert events == {"power/energy-cores/", "power/energy-pkg/", "power/energy-ram/", "cycles",
                      "instructions", "cache-references", "cache-misses"}
    (e,) = res.manifest["sources"]
    argv = e["command"]
    assert argv[:6] == ["perf", "stat", "-a", "-x,", "-I", "100"]
    assert argv[6:8] == ["-e", "power/energy-cores/,power/energy-pkg/,power/energy-ram/"]
    assert argv[8:10] == ["-e", "cycles,instructions,cache-references,cache-misses"]
    assert argv[10:] == ["-o", "perf.csv"]
    assert "events perf does not support here, dropped: branch-misses, branches" in e["notes"]
    assert set(e["anchor"]) == {"utc", "monotonic_ns"}
    assert res.manifest["tools"]["perf"] == "6.1.187"


def test_perf_without_rapl_is_unavailable(fakes):
    res, logs = run(fakes, "auto")
    u = {x["name"]: x for x in res.unavailable}
    assert "no RAPL energy events" in u["perf"]["reason"]
    assert "bare metal" in u["perf"]["fix"]


def test_perf_permission(fakes, monkeypatch):
    monkeypatch.setenv(perf_mod.ENV_SYSFS, str(fake_sysfs(fakes, ["energy-pkg"], [])))
    monkeypatch.setattr(perf_mod.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(perf_mod, "paranoid_level", lambda: 2)
    with pytest.raises(SourceError, match=r"perf RAPL needs kernel.perf_event_paranoid <= 0 or root \(it is 2\); "
                                          r"run as root, or: sudo sysctl kernel.perf_event_paranoid=0"):
        run(fakes, "perf")


# -- ipmitool ------------------------------------------------------------------------------------
def test_ipmi_polls_with_timestamp_lines(fakes, monkeypatch):
    fixture = shared_fixture(IPMI_FIXTURE)
    monkeypatch.setenv("FAKE_IPMI_FIXTURE", str(fixture))
    res, _ = run(fakes, ["ipmi"], seconds=0.8, intervals_ms={"ipmi": 200})
    text = (res.run_dir / "ipmi.log").read_text()
    body = fixture.read_text()
    body = body if body.endswith("\n") else body + "\n"
    polls = re.findall(r"# timestamp_utc: (\S+)\n", text)
    assert len(polls) >= 3
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", p) for p in polls)
    assert text == "".join(f"# timestamp_utc: {p}\n{body}" for p in polls)
    (e,) = res.manifest["sources"]
    assert e["command"] == ["ipmitool", "dcmi", "power", "reading"] and e["interval_ms"] == 200
    assert e["polls"] == len(polls)
    assert res.manifest["tools"]["ipmitool"] == "1.8.19"


def test_ipmi_default_interval_is_one_second(fakes, monkeypatch):
    monkeypatch.setenv("FAKE_IPMI_FIXTURE", str(shared_fixture(IPMI_FIXTURE)))
    res, _ = run(fakes, ["ipmi"], seconds=0.1, interval_ms=100)
    (e,) = res.manifest["sources"]
    assert e["interval_ms"] == 1000 and "polled every 1000 ms" in e["notes"][0]


def test_ipmi_without_bmc(fakes, monkeypatch):
    monkeypatch.setenv("FAKE_IPMI_NO_BMC", "1")
    with pytest.raises(SourceError) as err:
        run(fakes, ["ipmi"])
    assert str(err.value).startswith("source ipmi is unavailable: ipmitool dcmi power reading failed: "
                                     "Could not open device at /dev/ipmi0")
    assert "needs a BMC" in str(err.value) and "\n" not in str(err.value)


# -- powermetrics --------------------------------------------------------------------------------
def test_powermetrics_on_macos(fakes, monkeypatch):
    fixture = shared_fixture(PM_FIXTURE)
    monkeypatch.setenv("FAKE_POWERMETRICS_FIXTURE", str(fixture))
    monkeypatch.setattr(pm_mod, "_platform", lambda: "darwin")
    monkeypatch.setattr(pm_mod, "_euid", lambda: 0)
    res, _ = run(fakes, ["powermetrics"], seconds=0.8, interval_ms=100)
    text = (res.run_dir / "powermetrics.txt").read_text()
    assert text.endswith("\n")
    assert fixture.read_text().startswith(text)  # a prefix of the real output, unchanged
    assert text.count("*** Sampled system activity") >= 3
    (e,) = res.manifest["sources"]
    assert e["command"] == ["powermetrics", "--samplers", "cpu_power,gpu_power", "-i", "100"]


def test_powermetrics_needs_macos_and_root(fakes, monkeypatch):
    res, _ = run(fakes, "auto", seconds=0.1)
    u = {x["name"]: x for x in res.unavailable}
    assert u["powermetrics"]["reason"] == "powermetrics needs macOS"
    monkeypatch.setattr(pm_mod, "_platform", lambda: "darwin")
    monkeypatch.setattr(pm_mod, "_euid", lambda: 501)
    with pytest.raises(SourceError, match="powermetrics needs root; run dlwh collect with sudo"):
        run(fakes, "powermetrics")


# -- auto ----------------------------------------------------------------------------------------
def test_auto_uses_what_is_available_and_says_why_not_the_rest(fakes, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", load_fake_pynvml())
    monkeypatch.setenv("FAKE_IPMI_NO_BMC", "1")
    res, logs = run(fakes, "auto", interval_ms=50)
    assert res.sources == ["nvml", "nvidia-smi"]
    assert [u["name"] for u in res.unavailable] == ["perf", "ipmi", "powermetrics"]
    assert logs[1] == "sources used: nvml (50 ms), nvidia-smi (50 ms)"
    for name in ("perf", "ipmi", "powermetrics"):
        assert sum(line.startswith(f"source {name} unavailable: ") and "(fix: " in line for line in logs) == 1
    m = json.loads((res.run_dir / "run.json").read_text())
    assert [s["name"] for s in m["sources"]] == ["nvml", "nvidia-smi"]
    assert all(set(u) == {"name", "reason"} and "; fix: " in u["reason"] for u in m["unavailable_sources"])
    assert m["tools"]["nvidia-smi"] == "580.159.04" and "nvidia-ml-py" in m["tools"]
    assert m["gpus"][0]["name"] == "NVIDIA H200"
    assert complete_lines(res.run_dir / "nvml.csv")[0].startswith("timestamp_utc,monotonic_ns,gpu_index")
