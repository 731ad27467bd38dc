"""The in-process NVML source, driven by a fake pynvml replaying values recorded on an H200."""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "data" / "collect" / "fakes"))
from harness import DATA, load_fake_pynvml  # noqa: E402

from dlwh.collect.clock import iso_utc, take_anchor  # noqa: E402
from dlwh.collect.nvml import NvmlSession, NvmlUnavailable, gpu_inventory  # noqa: E402
from dlwh.collect.sources.base import SourceUnavailable  # noqa: E402
from dlwh.collect.sources.nvml_source import COLUMNS, NvmlSource  # noqa: E402

RECORDED = json.loads((DATA / "h200" / "nvml.json").read_text())
SERIES = RECORDED["series_gpu0"]["samples"]


@pytest.fixture
def fake_nvml(monkeypatch):
    mod = load_fake_pynvml()
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    for var in ("FAKE_NVML_GPUS", "FAKE_NVML_INIT_ERROR", "FAKE_NVML_NO_FIELDS", "FAKE_NVML_STATE"):
        monkeypatch.delenv(var, raising=False)
    return mod


def run_source(tmp_path: Path, interval_ms: int, seconds: float, **kw) -> tuple[NvmlSource, list[dict]]:
    src = NvmlSource(interval_ms, **kw)
    src.check()
    anchor = take_anchor()
    src.start(tmp_path, anchor)
    time.sleep(seconds)
    src.stop()
    with open(tmp_path / "nvml.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return src, rows


def test_rows_replay_recorded_values(tmp_path, fake_nvml):
    src, rows = run_source(tmp_path, 100, 0.55)
    header = (tmp_path / "nvml.csv").read_text().splitlines()[0]
    assert header == ",".join(COLUMNS)
    assert 5 <= len(rows) <= 9
    for i, row in enumerate(rows):
        s = SERIES[i]
        assert row["gpu_index"] == "0" and row["gpu_uuid"] == RECORDED["gpus"][0]["uuid"]["ok"]
        assert float(row["power_w"]) == s["power_mw"] / 1000
        assert float(row["power_instant_w"]) == s["power_instant_mw"] / 1000
        assert float(row["power_average_w"]) == s["power_average_mw"] / 1000
        assert int(row["energy_total_mj"]) == s["energy_mj"]  # 100 ms: every row
        assert float(row["power_limit_w"]) == 700.0 and float(row["enforced_power_limit_w"]) == 700.0
        assert (int(row["clock_sm_mhz"]), int(row["clock_mem_mhz"]), int(row["clock_gr_mhz"])) == (
            s["clock_sm"], s["clock_mem"], s["clock_gr"])
        assert int(row["utilization_gpu_pct"]) == s["util_gpu"]
        assert int(row["temperature_gpu_c"]) == s["temp"]
        assert float(row["memory_used_mib"]) == s["mem_used_bytes"] / 1048576
        assert row["timestamp_utc"] == iso_utc(src.anchor.utc_ns_of(int(row["monotonic_ns"])))
    e = src.entry()
    assert e["name"] == "nvml" and e["file"] == "nvml.csv" and e["interval_ms"] == 100
    assert e["samples"] == len(rows)
    assert e["achieved_interval_ms"]["n"] == len(rows) - 1


def test_holds_10ms(tmp_path, fake_nvml):
    """Deadlines, not fixed sleeps: the mean interval stays at 10 ms even with 3 ms energy reads.

    (This machine is shared and loaded, so the bounds are loose; the H200 figures are in
    docs/performance.md.)"""
    src, rows = run_source(tmp_path, 10, 1.5)
    st = src.entry()["achieved_interval_ms"]
    assert 9.0 < st["mean"] < 13.5, st
    assert abs(st["p50"] - 10.0) < 2.0, st
    assert len(rows) >= 90
    # the slow reads happen about every 100 ms, not every row, and in the first and last row
    with_energy = [i for i, r in enumerate(rows) if r["energy_total_mj"]]
    assert with_energy[0] == 0 and with_energy[-1] == len(rows) - 1
    assert len(rows) / 20 < len(with_energy) < len(rows) / 4
    assert any("read every 100 ms" in n for n in src.notes)


def test_deadlines_skip_rather_than_burst(tmp_path, fake_nvml, monkeypatch):
    """A sample slower than the interval skips the missed deadlines and counts them."""
    slow = fake_nvml.nvmlDeviceGetTemperature

    def slow_temp(h, sensor):
        time.sleep(0.025)
        return slow(h, sensor)

    monkeypatch.setattr(fake_nvml, "nvmlDeviceGetTemperature", slow_temp)
    src, rows = run_source(tmp_path, 10, 0.5)
    e = src.entry()
    assert e["missed_deadlines"] > 10
    assert e["achieved_interval_ms"]["min"] >= 20


def test_several_gpus(tmp_path, fake_nvml, monkeypatch):
    monkeypatch.setenv("FAKE_NVML_GPUS", "3")
    src, rows = run_source(tmp_path, 50, 0.3)
    idx = [r["gpu_index"] for r in rows]
    assert idx[:6] == ["0", "1", "2", "0", "1", "2"]
    assert len({r["gpu_uuid"] for r in rows}) == 3


def test_gpu_filter(tmp_path, fake_nvml, monkeypatch):
    monkeypatch.setenv("FAKE_NVML_GPUS", "2")
    src, rows = run_source(tmp_path, 50, 0.2, gpus=[1])
    assert {r["gpu_index"] for r in rows} == {"1"}
    with pytest.raises(SourceUnavailable, match="no GPU with index 5"):
        NvmlSource(50, gpus=[5]).check()


def test_no_field_values_falls_back_to_power_usage(tmp_path, fake_nvml, monkeypatch):
    monkeypatch.setenv("FAKE_NVML_NO_FIELDS", "1")
    src, rows = run_source(tmp_path, 50, 0.2)
    assert rows[0]["power_instant_w"] == "" and rows[0]["power_average_w"] == ""
    assert float(rows[0]["power_w"]) == SERIES[0]["power_mw"] / 1000
    assert any("no instant/average power" in n for n in src.notes)


def test_not_supported_read_is_noted_once_and_left_empty(tmp_path, fake_nvml, monkeypatch):
    def unsupported(h):
        raise fake_nvml.NVMLError(fake_nvml.NVML_ERROR_NOT_SUPPORTED)

    monkeypatch.setattr(fake_nvml, "nvmlDeviceGetTotalEnergyConsumption", unsupported)
    src, rows = run_source(tmp_path, 50, 0.2)
    assert all(r["energy_total_mj"] == "" for r in rows)
    assert all(r["power_w"] for r in rows)
    assert sum("energy not supported" in n for n in src.notes) == 1


def test_driver_not_loaded_is_unavailable(fake_nvml, monkeypatch):
    monkeypatch.setenv("FAKE_NVML_INIT_ERROR", "9")
    with pytest.raises(SourceUnavailable) as err:
        NvmlSource(100).check()
    assert "no NVIDIA driver (NVML: Driver Not Loaded)" in err.value.reason
    assert "install the NVIDIA driver" in err.value.fix


def test_real_pynvml_without_driver():
    """On a machine without the NVIDIA driver the real nvidia-ml-py says so (as on dlwh's dev VM)."""
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("this machine has an NVIDIA driver")
    with pytest.raises(SourceUnavailable, match="no NVIDIA driver"):
        NvmlSource(100).check()
    assert gpu_inventory() == []


def test_missing_nvidia_ml_py(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    with pytest.raises(NvmlUnavailable, match="nvidia-ml-py is not installed") as err:
        NvmlSession()
    assert err.value.fix == "pip install nvidia-ml-py"


def test_inventory_from_recorded_gpu(fake_nvml):
    (g,) = gpu_inventory()
    assert g == {"index": 0, "uuid": "GPU-fd8c29ce-70ee-9f9e-54b9-5183a3f0b0f2", "name": "NVIDIA H200",
                 "driver": "580.159.04",
                 "power_limit_w": {"min": 200.0, "default": 700.0, "max": 700.0, "current": 700.0,
                                   "enforced": 700.0}}
