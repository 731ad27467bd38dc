"""carbontracker: log files and stdout, values against the raw text, power samples, bad files."""

from __future__ import annotations

from datetime import datetime

import pytest

from dlwh.ingest.loader import IngestOptions, ingest_paths

LOG = """2022-11-14 15:42:43 - carbontracker version 1.1.6
2022-11-14 15:42:43 - Only predicted and actual consumptions are multiplied by a PUE coefficient of 1.59 (Rhonda Ascierto, 2019, Uptime Institute Global Data Center Survey).
2022-11-14 15:42:43 - The following components were found: GPU with device(s) NVIDIA GeForce RTX 3060, NVIDIA GeForce RTX 3090. CPU with device(s) cpu:0.
2022-11-14 15:42:43 - Monitoring thread started.
2022-11-14 15:44:48 - Epoch 1:
2022-11-14 15:44:48 - Duration: 0:02:05.00
2022-11-14 15:44:48 - Average power usage (W) for gpu: [136.86084615 120.5]
2022-11-14 15:44:48 - Average power usage (W) for cpu: [13.389104]
2022-11-14 15:46:48 - Epoch 2:
2022-11-14 15:46:48 - Duration: 0:01:59.50
2022-11-14 15:46:48 - Average power usage (W) for gpu: [140.0 None]
2022-11-14 15:46:48 - Average power usage (W) for cpu: [12.0]
2022-11-14 15:46:48 - Carbon intensities (gCO2/kWh) fetched every 900 s at detected location Copenhagen, Capital Region, DK: [102.0, 110.0]
2022-11-14 15:46:48 - Average carbon intensity during training was 106.00 gCO2/kWh at detected location: Copenhagen, Capital Region, DK.
2022-11-14 15:46:48 - Monitoring thread ended.
"""

OUTPUT_LOG = """2022-11-14 15:42:43 - CarbonTracker: The following components were found: GPU with device(s) NVIDIA GeForce RTX 3060. CPU with device(s) cpu:0.
2022-11-14 15:43:37 - CarbonTracker: 
Actual consumption for 1 epoch(s):
\tTime:\t0:00:53
\tEnergy:\t0.003504 kWh
\tCO2eq:\t0.357451 g
\tThis is equivalent to:
\t0.002969 km travelled by car
2022-11-14 15:43:37 - CarbonTracker: 
Predicted consumption for 4 epoch(s):
\tTime:\t0:03:33
\tEnergy:\t0.014018 kWh
\tCO2eq:\t1.429803 g
\tThis is equivalent to:
\t0.011875 km travelled by car
2022-11-14 15:43:37 - CarbonTracker: Finished monitoring.
"""


def _records(con):
    return con.execute("SELECT * EXCLUDE (run_id, file_sha256) FROM carbontracker_records ORDER BY line").df()


def test_stdout_fixture(con, fixtures_dir):
    [result] = ingest_paths(con, [fixtures_dir / "carbontracker" / "carbontracker-readme-stdout-default.txt"])
    assert result.outcome == "loaded" and result.format == "carbontracker" and result.rows == 2
    df = _records(con)
    assert list(df["kind"]) == ["actual", "predicted"] and list(df["line"]) == [2, 9]
    # Actual consumption for 1 epoch(s): Time: 0:00:10, Energy: 0.000038 kWh, CO2eq: 0.003130 g
    actual, predicted = df.iloc[0], df.iloc[1]
    assert (actual["epochs"], actual["duration_s"], actual["energy_kwh"], actual["co2eq_g"]) == (1, 10.0, 0.000038, 0.003130)
    assert actual["equivalent"] == "0.000026 km travelled by car" and actual["ts"] is pd_nat()
    # Predicted consumption for 1000 epoch(s): Time: 2:52:22, Energy: 0.038168 kWh, CO2eq: 4.096665 g
    assert (predicted["epochs"], predicted["duration_s"], predicted["energy_kwh"], predicted["co2eq_g"]) == (
        1000, 2 * 3600 + 52 * 60 + 22.0, 0.038168, 4.096665)
    assert predicted["equivalent"] == "0.034025 km travelled by car"
    assert con.execute("SELECT count(*) FROM samples").fetchone()[0] == 0


def pd_nat():
    import pandas as pd

    return pd.NaT


def test_log_fixture_with_none_power(con, fixtures_dir):
    path = fixtures_dir / "carbontracker" / "carbontracker-tests-std-log-rtx3060-none-power.log"
    [result] = ingest_paths(con, [path], IngestOptions(tz="Europe/Copenhagen"))
    assert result.outcome == "loaded" and result.rows == 3, result.describe()
    assert "local times read in zone Europe/Copenhagen (--tz)" in result.message
    df = _records(con)
    epoch = df[df["kind"] == "epoch"].iloc[0]
    # 2022-11-14 15:43:37 - Duration: 0:00:53.25 ; Average power usage (W) for gpu: [None]
    assert epoch["ts"] == datetime(2022, 11, 14, 14, 43, 37) and epoch["epoch"] == 1
    assert epoch["duration_s"] == 53.25 and epoch["line"] == 6
    assert epoch["gpu_power_list"] == "[None]" and epoch["cpu_power_list"] == "[None]"
    assert epoch["gpu_power_w"] != epoch["gpu_power_w"]  # NULL: no readable sensor
    intensity = df[df["kind"] == "intensity"].iloc[0]
    assert (intensity["intensity_g_per_kwh"], intensity["location"], intensity["intensities"]) == (
        102.0, "Copenhagen, Capital Region, DK", "102.0")
    forecast = df[df["kind"] == "intensity_forecast"].iloc[0]
    assert (forecast["duration_s"], forecast["intensity_g_per_kwh"], forecast["line"]) == (213.0, 102.0, 11)
    assert set(df["pue"]) == {1.59} and set(df["version"]) == {"1.1.6"}
    assert df["components"].iloc[0] == "GPU with device(s) NVIDIA GeForce RTX 3060. CPU with device(s) cpu:0."
    assert con.execute("SELECT count(*) FROM samples").fetchone()[0] == 0   # [None] power: no samples


def test_log_with_power_gives_samples(con, tmp_path):
    path = tmp_path / "job_carbontracker.log"
    path.write_text(LOG)
    [result] = ingest_paths(con, [path], IngestOptions(tz="UTC"))
    assert result.outcome == "loaded", result.describe()
    df = _records(con)
    epochs = df[df["kind"] == "epoch"]
    assert list(epochs["gpu_power_w"]) == [pytest.approx(136.86084615 + 120.5), 140.0]
    assert list(epochs["cpu_power_w"]) == [13.389104, 12.0]
    assert list(epochs["duration_s"]) == [125.0, 119.5]
    intensity = df[df["kind"] == "intensity"].iloc[0]
    assert (intensity["intensity_g_per_kwh"], intensity["intensities"]) == (106.0, "102.0, 110.0")
    sensors = con.execute("SELECT name, kind, device_index, device_name, tool FROM sensors ORDER BY name").fetchall()
    assert sensors == [("carbontracker cpu 0 cpu:0", "cpu", 0, "cpu:0", "carbontracker"),
                       ("carbontracker gpu 0 NVIDIA GeForce RTX 3060", "gpu", 0, "NVIDIA GeForce RTX 3060", "carbontracker"),
                       ("carbontracker gpu 1 NVIDIA GeForce RTX 3090", "gpu", 1, "NVIDIA GeForce RTX 3090", "carbontracker")]
    energy = dict(con.execute("SELECT sensor_name, energy_j FROM run_energy").fetchall())
    # GPU 1 was None in epoch 2: only epoch 1 (120.5 W x 125 s)
    assert energy["carbontracker gpu 1 NVIDIA GeForce RTX 3090"] == pytest.approx(120.5 * 125.0)
    # GPU 0: both epochs plus the 0.5 s between them bridged by the integration rule
    assert energy["carbontracker gpu 0 NVIDIA GeForce RTX 3060"] == pytest.approx(
        136.86084615 * 125.0 + 140.0 * 119.5 + (136.86084615 + 140.0) / 2 * 0.5, rel=1e-6)
    first = con.execute("SELECT min(ts), max(ts) FROM samples").fetchone()
    assert first == (datetime(2022, 11, 14, 15, 42, 43), datetime(2022, 11, 14, 15, 46, 48))


def test_output_log_with_times(con, tmp_path):
    path = tmp_path / "job_carbontracker_output.log"
    path.write_text(OUTPUT_LOG)
    [result] = ingest_paths(con, [path], IngestOptions(tz="Europe/Copenhagen"))
    assert result.outcome == "loaded", result.describe()
    df = _records(con)
    assert list(df["kind"]) == ["actual", "predicted"]
    assert list(df["ts"]) == [datetime(2022, 11, 14, 14, 43, 37)] * 2
    assert list(df["energy_kwh"]) == [0.003504, 0.014018] and list(df["co2eq_g"]) == [0.357451, 1.429803]
    assert list(df["duration_s"]) == [53.0, 213.0] and list(df["epochs"]) == [1, 4]


@pytest.mark.parametrize("text, message, line", [
    ("2022-11-14 15:42:43 - carbontracker version 1.1.6\n", "no carbontracker epochs, intensities or consumption", None),
    ("2022-11-14 15:42:43 - carbontracker version 1.1.6\n2022-11-14 15:43:37 - Duration: 0:00:53.25\n",
     "'Duration:' line before any 'Epoch N:' line", 2),
    ("CarbonTracker: \nActual consumption for 1 epoch(s):\n\tTime:\t0:00:10\n", "consumption summary without its Time, Energy and CO2eq", 2),
])
def test_bad_files_change_nothing(con, tmp_path, fixtures_dir, text, message, line):
    ingest_paths(con, [fixtures_dir / "carbontracker"], IngestOptions(tz="UTC"))
    counts = lambda: [con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                      for t in ("carbontracker_records", "samples", "files", "runs")]
    before = counts()
    path = tmp_path / "bad.log"
    path.write_text(text)
    [result] = ingest_paths(con, [path])
    assert result.outcome == "failed" and message in result.message, result.describe()
    assert result.line == line
    assert counts() == before


@pytest.mark.parametrize("chop, cut", [(1, True), (0, False)])
def test_log_cut_mid_line_loads_the_rest_and_warns(con, tmp_path, fixtures_dir, chop, cut):
    lines = (fixtures_dir / "carbontracker" / "carbontracker-tests-std-log-rtx3060-none-power.log").read_text().split("\n")
    at = next(i for i, ln in enumerate(lines) if "fetched every" in ln)     # '... DK: [102.0]'
    path = tmp_path / "carbontracker.log"
    path.write_text("\n".join(lines[:at + 1])[:-chop or None])
    [result] = ingest_paths(con, [path], IngestOptions(tz="UTC"))
    kinds = [r[0] for r in con.execute("SELECT kind FROM carbontracker_records ORDER BY kind").fetchall()]
    if cut:
        assert result.outcome == "loaded-with-warnings", result.describe()
        assert result.message.endswith(f"line {at + 1} is cut off (the recording stopped mid-line?): skipped")
        assert "intensity" not in kinds and "epoch" in kinds
    else:
        assert result.outcome == "loaded", result.describe()
        assert "intensity" in kinds
