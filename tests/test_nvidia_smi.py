"""nvidia-smi --query-gpu CSV and dmon parsers, through the real loader and warehouse."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from dlwh.ingest.formats.nvidia_smi import dmon as nvidia_smi_dmon, query as nvidia_smi_query
from dlwh.ingest.loader import IngestOptions, ingest_paths
from tests.conftest import invoke
from tests.helpers import counts, write

START = "2024-01-15T10:00:00+00:00"


def ingest_one(con, path, **options):
    results = ingest_paths(con, [path], IngestOptions(**options))
    assert len(results) == 1, [r.describe() for r in results]
    return results[0]


def series(con, metric: str, sensor: str | None = None):
    """[(ts, value)] of one metric (of one sensor name, if given), in time order."""
    where, params = "s.metric = ?", [metric]
    if sensor is not None:
        where += " AND se.name = ?"
        params.append(sensor)
    return con.execute(
        f"SELECT s.ts, s.value FROM samples s JOIN sensors se USING (sensor_id) WHERE {where} ORDER BY s.ts",
        params).fetchall()


def metrics_at(con, ts: datetime, sensor: str | None = None) -> dict:
    """{metric: value} of the readings at ts."""
    rows = con.execute(
        "SELECT s.metric, s.value, s.unit, se.name FROM samples s JOIN sensors se USING (sensor_id) WHERE s.ts = ?",
        [ts]).fetchall()
    return {m: v for m, v, _, name in rows if sensor is None or name == sensor}




def message(con) -> str:
    return con.execute("SELECT message FROM files").fetchone()[0] or ""


# --- query CSV: the shared fixtures ---------------------------------------------------------------

def test_flame_power_draw_lms50(con, fixtures_dir):
    path = fixtures_dir / "nvidia-smi" / "flame-power-draw-lms50.csv"
    result = ingest_one(con, path, tz="Europe/Berlin")
    assert result.outcome == "loaded", result.describe()
    assert result.format == "nvidia-smi-query" and result.rows == 73
    power = series(con, "power")
    # "2024/10/30 18:42:33.189, 22.89 W": Berlin is on CET (+01:00) after 27 October
    assert power[0] == (datetime(2024, 10, 30, 17, 42, 33, 189000), 22.89)
    assert power[3] == (datetime(2024, 10, 30, 17, 42, 33, 340000), 23.0)
    assert power[-1] == (datetime(2024, 10, 30, 17, 42, 36, 813000), 22.63)
    assert min(v for _, v in power) == 20.92
    assert con.execute("SELECT DISTINCT unit FROM samples").fetchall() == [("W",)]
    assert con.execute("SELECT kind, tool, device_index FROM sensors").fetchall() == [("gpu", "nvidia-smi", None)]
    assert "Europe/Berlin" in message(con) and "--tz" in message(con)


def test_repeated_headers_rtx2070(con, fixtures_dir):
    path = fixtures_dir / "nvidia-smi" / "gpuusage-repeated-headers-rtx2070.csv"
    result = ingest_one(con, path, tz="Europe/Berlin")
    assert result.outcome == "loaded", result.describe()
    assert result.rows == 60 * 5  # 60 data rows (every other line is the header), 5 metrics
    # line 2: "2023/06/22 18:56:56.252, 0, NVIDIA GeForce RTX 2070, 00000000:01:00.0, 22 %, 6 %, 841 MiB, ..."
    assert metrics_at(con, datetime(2023, 6, 22, 16, 56, 56, 252000)) == {
        "utilization_gpu": 22.0, "utilization_memory": 6.0, "memory_used": 841.0, "memory_free": 7140.0,
        "memory_total": 8192.0}
    # line 4 and the last line (120)
    assert metrics_at(con, datetime(2023, 6, 22, 16, 56, 57, 274000))["utilization_memory"] == 13.0
    assert metrics_at(con, datetime(2023, 6, 22, 16, 57, 56, 557000)) == {
        "utilization_gpu": 14.0, "utilization_memory": 5.0, "memory_used": 650.0, "memory_free": 7331.0,
        "memory_total": 8192.0}
    assert con.execute("SELECT name, device_index, device_name, tool FROM sensors").fetchall() == [
        ("GPU 0 NVIDIA GeForce RTX 2070", 0, "NVIDIA GeForce RTX 2070", "nvidia-smi")]
    units = dict(con.execute("SELECT DISTINCT metric, unit FROM samples").fetchall())
    assert units["utilization_gpu"] == "%" and units["memory_used"] == "MiB"


def test_headerless_fixture_infers_fields_from_units_and_says_so(con, fixtures_dir):
    path = fixtures_dir / "nvidia-smi" / "plato-noheader-with-units.csv"
    result = ingest_one(con, path, tz="Europe/Berlin")
    assert result.outcome == "loaded-with-warnings", result.describe()
    assert result.rows == 200 * 5
    assert "assumed" in result.message and "--fields" in result.message and "column(s) 6" in result.message
    # line 1: "2026/04/25 16:06:06.780, 0 %, 0 %, 2 MiB, 20146 MiB, 27, 11.64 W" (CEST, +02:00)
    first = datetime(2026, 4, 25, 14, 6, 6, 780000)
    # the two MiB columns add up to a constant while both vary: used, then free
    assert metrics_at(con, first) == {"utilization_gpu": 0.0, "utilization_memory": 0.0, "memory_used": 2.0,
                                      "memory_free": 20146.0, "power": 11.64}
    # line 175: "2026/04/25 16:20:38.986, 0 %, 0 %, 20137 MiB, 11 MiB, 31, 31.49 W"
    assert metrics_at(con, datetime(2026, 4, 25, 14, 20, 38, 986000))["power"] == 31.49
    assert series(con, "power")[-1] == (datetime(2026, 4, 25, 14, 22, 44, 723000), 11.51)


def test_headerless_fixture_with_fields_option_loads_every_column(tmp_path, runner, fixtures_dir):
    db = tmp_path / "w.duckdb"
    path = fixtures_dir / "nvidia-smi" / "plato-noheader-with-units.csv"
    fields = "timestamp,utilization.gpu,utilization.memory,memory.used,memory.free,temperature.gpu,power.draw"
    result = invoke(runner, "ingest", str(path), "--db", str(db), "--tz", "UTC", "--fields", fields)
    assert result.exit_code == 0, result.output
    from dlwh.warehouse import open_warehouse

    con = open_warehouse(db)
    try:
        assert con.execute("SELECT outcome FROM files").fetchone()[0] == "loaded"
        assert "--fields" in message(con)
        temps = series(con, "temperature_gpu")
        assert len(temps) == 200 and temps[0] == (datetime(2026, 4, 25, 16, 6, 6, 780000), 27.0)
        assert dict(con.execute("SELECT DISTINCT metric, unit FROM samples").fetchall())["temperature_gpu"] == "C"
    finally:
        con.close()


def test_h100_mig_full_query_maps_every_metric(con, fixtures_dir):
    path = fixtures_dir / "nvidia-smi" / "exporter-h100mig-query-gpu-load.csv"
    result = ingest_one(con, path, tz="Europe/Berlin")
    assert result.outcome == "loaded", result.describe()
    at = datetime(2026, 7, 14, 7, 0, 44, 579000)  # 2026/07/14 09:00:44.579 CEST
    got = metrics_at(con, at)
    assert {k: v for k, v in got.items() if v is not None} == {
        "power": 433.78, "power_average": 433.78, "power_instant": 447.35, "power_limit": 700.0,
        "enforced_power_limit": 700.0, "default_power_limit": 700.0, "min_power_limit": 200.0,
        "max_power_limit": 700.0, "clock_gr": 1980.0, "clock_sm": 1980.0, "clock_mem": 2619.0,
        "clock_video": 1545.0, "temperature_gpu": 53.0, "temperature_memory": 59.0, "memory_total": 81559.0,
        "memory_reserved": 479.0, "memory_used": 11125.0, "memory_free": 69956.0}
    # [N/A] in MIG mode: the rows are there, with NULL values
    nulls = {k for k, v in got.items() if v is None}
    assert nulls == {"fan_speed", "utilization_gpu", "utilization_memory", "utilization_encoder",
                     "utilization_decoder", "utilization_jpeg", "utilization_ofa"}
    assert con.execute("SELECT name, device_index, device_uuid, device_name FROM sensors").fetchall() == [
        ("GPU 0 NVIDIA H100 80GB HBM3", 0, "GPU-00000000-0000-0000-0000-000000000000", "NVIDIA H100 80GB HBM3")]
    assert "182 field(s) without a dlwh metric" in result.message


# --- query CSV: layouts the fixtures lack -------------------------------------------------------

TWO_GPUS = """\
index, uuid, name, timestamp, power.draw [W], power.draw.instant [W], clocks.sm [MHz], utilization.gpu [%]
0, GPU-aaaa, NVIDIA H200, 2026/11/21 11:15:00.100, 120.50 W, 131.25 W, 1980 MHz, 97 %
1, GPU-bbbb, NVIDIA H200, 2026/11/21 11:15:00.102, 88.00 W, 90.75 W, 1755 MHz, 40 %
0, GPU-aaaa, NVIDIA H200, 2026/11/21 11:15:00.200, 121.00 W, 140.00 W, 1980 MHz, 98 %
1, GPU-bbbb, NVIDIA H200, 2026/11/21 11:15:00.203, 89.00 W, 85.50 W, 1770 MHz, 41 %
"""


def test_two_gpus_two_sensors_average_and_instant_power_kept_apart(con, tmp_path):
    result = ingest_one(con, write(tmp_path, "smi.csv", TWO_GPUS), tz="Europe/Berlin")
    assert result.outcome == "loaded", result.describe()
    assert result.rows == 4 * 4
    assert con.execute("SELECT name, device_index, device_uuid, device_name, tool FROM sensors ORDER BY 2").fetchall() == [
        ("GPU 0 NVIDIA H200", 0, "GPU-aaaa", "NVIDIA H200", "nvidia-smi"),
        ("GPU 1 NVIDIA H200", 1, "GPU-bbbb", "NVIDIA H200", "nvidia-smi")]
    t0 = datetime(2026, 11, 21, 10, 15, 0, 100000)
    assert series(con, "power", "GPU 0 NVIDIA H200") == [(t0, 120.5), (t0 + timedelta(milliseconds=100), 121.0)]
    assert series(con, "power_instant", "GPU 1 NVIDIA H200") == [
        (datetime(2026, 11, 21, 10, 15, 0, 102000), 90.75), (datetime(2026, 11, 21, 10, 15, 0, 203000), 85.5)]
    assert series(con, "clock_sm", "GPU 1 NVIDIA H200")[1][1] == 1770.0
    # each GPU is its own series in the energy views
    energy = con.execute("SELECT sensor_name, metric, n_samples FROM run_energy ORDER BY 1, 2").fetchall()
    assert energy == [("GPU 0 NVIDIA H200", "power", 2), ("GPU 0 NVIDIA H200", "power_instant", 2),
                      ("GPU 1 NVIDIA H200", "power", 2), ("GPU 1 NVIDIA H200", "power_instant", 2)]


def test_nounits_values(con, tmp_path):
    text = ("timestamp, index, power.draw [W], clocks.current.memory [MHz], temperature.gpu, utilization.gpu [%], "
            "memory.used [MiB], fan.speed [%]\n"
            "2026/11/21 10:00:00.000, 0, 71.36, 9501, 44, 3, 1234, 30\n"
            "2026/11/21 10:00:01.000, 0, 250.12, 9501, 61, 100, 20480, 55\n")
    result = ingest_one(con, write(tmp_path, "nounits.csv", text), tz="UTC")
    assert result.outcome == "loaded", result.describe()
    assert metrics_at(con, datetime(2026, 11, 21, 10, 0, 1)) == {
        "power": 250.12, "clock_mem": 9501.0, "temperature_gpu": 61.0, "utilization_gpu": 100.0,
        "memory_used": 20480.0, "fan_speed": 55.0}


def test_not_supported_and_other_markers_are_null(con, tmp_path):
    text = ("timestamp, index, power.draw [W], power.draw.instant [W], temperature.memory, clocks.current.video [MHz], "
            "utilization.jpeg [%]\n"
            "2026/11/21 10:00:00.000, 0, [Not Supported], [N/A], N/A, [Requested functionality has been deprecated], ERR!\n"
            "2026/11/21 10:00:01.000, 0, 45.10 W, [Unknown Error], 70, 1410 MHz, 0 %\n")
    result = ingest_one(con, write(tmp_path, "markers.csv", text), tz="UTC")
    assert result.outcome == "loaded", result.describe()
    assert result.rows == 10
    assert metrics_at(con, datetime(2026, 11, 21, 10, 0, 0)) == {
        "power": None, "power_instant": None, "temperature_memory": None, "clock_video": None,
        "utilization_jpeg": None}
    assert metrics_at(con, datetime(2026, 11, 21, 10, 0, 1)) == {
        "power": 45.1, "power_instant": None, "temperature_memory": 70.0, "clock_video": 1410.0,
        "utilization_jpeg": 0.0}


def test_headerless_file_with_fields_option(tmp_path, runner):
    db = tmp_path / "w.duckdb"
    path = write(tmp_path, "noheader.csv", "0, 2026/11/21 12:00:00.000, 45.50, 1500\n"
                                          "1, 2026/11/21 12:00:00.003, 46.25, 1410\n"
                                          "0, 2026/11/21 12:00:01.000, 300.00, 1980\n")
    result = invoke(runner, "ingest", str(path), "--db", str(db), "--tz", "America/New_York",
                    "--fields", "index,timestamp,power.draw,clocks.sm")
    assert result.exit_code == 0, result.output
    from dlwh.warehouse import open_warehouse

    con = open_warehouse(db)
    try:
        # EST (-05:00) in November
        assert series(con, "power", "GPU 0") == [(datetime(2026, 11, 21, 17, 0), 45.5),
                                                 (datetime(2026, 11, 21, 17, 0, 1), 300.0)]
        assert series(con, "clock_sm", "GPU 1") == [(datetime(2026, 11, 21, 17, 0, 0, 3000), 1410.0)]
    finally:
        con.close()


def test_headerless_fields_must_match_the_columns(con, tmp_path):
    path = write(tmp_path, "noheader.csv", "2026/11/21 12:00:00.000, 45.50 W, 1500 MHz\n")
    result = ingest_one(con, path, format_options={"fields": "timestamp,power.draw"})
    assert result.outcome == "failed"
    assert "--fields names 2 field(s) but the first row has 3" in result.message
    result = ingest_one(con, path, format_options={"fields": "timestamp,clocks.sm,power.draw"})
    assert result.outcome == "loaded", result.describe()  # MHz/W cells parse whatever the order
    result = ingest_one(con, write(tmp_path, "p.csv", "2026/11/21 12:00:00.000, P0, 1500 MHz\n"),
                        format_options={"fields": "timestamp,power.draw,clocks.sm"})
    assert result.outcome == "failed" and "'P0', not numbers" in result.message


def test_headerless_fields_from_the_run_manifest(con, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    manifest = {
        "format": "dlwh-run", "format_version": 1, "run_id": "r1", "start_utc": "2026-11-21T10:00:00.000000Z",
        "end_utc": "2026-11-21T10:01:00.000000Z", "timezone": "Asia/Tokyo",
        "sources": [{"name": "nvidia-smi", "file": "smi.csv", "interval_ms": 100, "notes": [],
                     "command": ["nvidia-smi", "--query-gpu=timestamp,index,power.draw,temperature.gpu",
                                 "--format=csv,noheader,nounits", "-lms", "100"]}],
    }
    (run / "run.json").write_text(json.dumps(manifest))
    write(run, "smi.csv", "2026/11/21 19:00:00.100, 0, 150.5, 40\n2026/11/21 19:00:00.200, 0, 151.5, 41\n")
    results = ingest_paths(con, [run])
    by = {r.path.name: r for r in results}
    assert by["smi.csv"].outcome == "loaded", by["smi.csv"].describe()
    assert "run's nvidia-smi command" in by["smi.csv"].message and "Asia/Tokyo (run.json)" in by["smi.csv"].message
    assert series(con, "temperature_gpu") == [(datetime(2026, 11, 21, 10, 0, 0, 100000), 40.0),
                                              (datetime(2026, 11, 21, 10, 0, 0, 200000), 41.0)]
    assert con.execute("SELECT DISTINCT run_id FROM sensors").fetchall() == [("r1",)]


def test_no_timestamp_field_uses_start_and_interval(con, tmp_path):
    path = write(tmp_path, "notime.csv", "index, power.draw [W]\n0, 10.00 W\n1, 20.00 W\n0, 11.00 W\n1, 21.00 W\n"
                                         "0, 12.00 W\n1, 22.00 W\n")
    failed = ingest_one(con, path)
    assert failed.outcome == "failed" and "--start" in failed.message
    assert counts(con) == (0, 0, 0, 0)
    result = ingest_one(con, path, start=START, format_options={"interval_s": 0.5})
    assert result.outcome == "loaded", result.describe()
    t0 = datetime(2024, 1, 15, 10, 0)
    assert series(con, "power", "GPU 1") == [(t0, 20.0), (t0 + timedelta(seconds=0.5), 21.0),
                                             (t0 + timedelta(seconds=1), 22.0)]
    assert "every 0.5 s (--interval-s)" in result.message


def test_repeated_local_hour_at_the_end_of_dst_is_read_in_file_order(con, tmp_path):
    # Europe/Berlin, 2026-10-25: 03:00 CEST -> 02:00 CET; 02:00..02:59 happen twice
    lines = ["timestamp, power.draw [W]"]
    local = ["01:59:00", "02:30:00", "02:59:30", "02:00:00", "02:30:00", "02:59:30", "03:00:00"]
    lines += [f"2026/10/25 {t}.000, {100 + i}.00 W" for i, t in enumerate(local)]
    result = ingest_one(con, write(tmp_path, "dst.csv", "\n".join(lines) + "\n"), tz="Europe/Berlin")
    assert result.outcome == "loaded", result.describe()
    utc = [t for t, _ in series(con, "power")]
    assert utc == [datetime(2026, 10, 24, 23, 59), datetime(2026, 10, 25, 0, 30), datetime(2026, 10, 25, 0, 59, 30),
                   datetime(2026, 10, 25, 1, 0), datetime(2026, 10, 25, 1, 30), datetime(2026, 10, 25, 1, 59, 30),
                   datetime(2026, 10, 25, 2, 0)]
    assert [v for _, v in series(con, "power")] == [100.0 + i for i in range(7)]
    assert "repeated hour" in result.message


def test_spring_dst_change_and_fractional_fixed_offsets(con, tmp_path):
    text = "timestamp, power.draw [W]\n2026/03/29 01:59:00.000, 1.00 W\n2026/03/29 03:00:00.000, 2.00 W\n"
    assert ingest_one(con, write(tmp_path, "spring.csv", text), tz="Europe/Berlin").outcome == "loaded"
    assert [t for t, _ in series(con, "power")] == [datetime(2026, 3, 29, 0, 59), datetime(2026, 3, 29, 1, 0)]
    con.execute("DELETE FROM samples")
    text = "timestamp, power.draw [W]\n2026/03/29 12:00:00.250, 1.00 W\n"
    assert ingest_one(con, write(tmp_path, "india.csv", text), tz="+05:30").outcome == "loaded"
    assert series(con, "power") == [(datetime(2026, 3, 29, 6, 30, 0, 250000), 1.0)]


def test_crlf_and_bom_and_comma_without_space(con, tmp_path):
    path = tmp_path / "win.csv"
    path.write_bytes("\ufefftimestamp,index,power.draw [W]\r\n2026/11/21 10:00:00.000,0,45.00 W\r\n"
                     "2026/11/21 10:00:01.000,0,46.50 W\r\n".encode())
    result = ingest_one(con, path, tz="UTC")
    assert result.outcome == "loaded", result.describe()
    assert series(con, "power") == [(datetime(2026, 11, 21, 10, 0), 45.0), (datetime(2026, 11, 21, 10, 0, 1), 46.5)]


# --- query CSV: bad input -------------------------------------------------------------------------

CUT = "line 6 is cut off (the recording stopped mid-line?): skipped"


@pytest.mark.parametrize("tail", [
    "0, GPU-aaaa, NVIDIA H200, 2026/11/21 11:15:00.300, 12",                          # too few cells
    "0, GPU-aaaa, NVIDIA H200, 2026/11/21 11:15:00.300, 122.00 W, 141.00 W, 1980 MHz, 9",  # inside the last
    "0, GPU-aaaa, NVIDIA H200, 2026/11/21 11:15:00.300, 122.00 W, 141.00 W, 1980 MHz, ",   # after a separator
])
def test_truncated_last_line_loads_every_complete_line_and_warns(con, tmp_path, tail):
    path = write(tmp_path, "cut.csv", TWO_GPUS + tail)
    result = ingest_one(con, path, tz="UTC")
    assert result.outcome == "loaded-with-warnings", result.describe()
    assert result.message.endswith(CUT)
    assert series(con, "power", "GPU 0 NVIDIA H200") == [(datetime(2026, 11, 21, 11, 15, 0, 100000), 120.5),
                                                         (datetime(2026, 11, 21, 11, 15, 0, 200000), 121.0)]
    assert counts(con)[0] == 16


def test_nvidia_smi_error_lines_between_rows_are_skipped_with_one_warning(con, tmp_path):
    rows = TWO_GPUS.splitlines()
    lost = "Unable to determine the device handle for GPU 0000:3B:00.0: GPU is lost.  Reboot the system to recover this GPU"
    noisy = [rows[0], rows[1], lost, rows[2], "No devices were found", rows[3], rows[4], lost]
    result = ingest_one(con, write(tmp_path, "noisy.csv", "\n".join(noisy) + "\n"), tz="UTC")
    assert result.outcome == "loaded-with-warnings", result.describe()
    assert result.message.endswith("3 nvidia-smi error lines skipped (first at line 3)")
    assert series(con, "power", "GPU 0 NVIDIA H200") == [(datetime(2026, 11, 21, 11, 15, 0, 100000), 120.5),
                                                         (datetime(2026, 11, 21, 11, 15, 0, 200000), 121.0)]
    assert counts(con)[0] == 16


def test_complete_last_line_without_newline_is_complete(con, tmp_path):
    tail = "0, GPU-aaaa, NVIDIA H200, 2026/11/21 11:15:00.300, 122.00 W, 141.00 W, 1980 MHz, 99 %"
    result = ingest_one(con, write(tmp_path, "whole.csv", TWO_GPUS + tail), tz="UTC")
    assert result.outcome == "loaded", result.describe()
    assert series(con, "power", "GPU 0 NVIDIA H200")[-1] == (datetime(2026, 11, 21, 11, 15, 0, 300000), 122.0)
    assert counts(con)[0] == 20


def test_long_log_killed_mid_write_loads_every_complete_line(con, tmp_path):
    # past the 64 KiB head, on the path DuckDB's typed reader would take for a whole file
    rows = "".join(f"2026/11/21 10:{i // 60:02d}:{i % 60:02d}.000, 0, {100 + i % 7}.00 W\n" for i in range(3000))
    path = write(tmp_path, "long.csv", "timestamp, index, power.draw [W]\n" + rows + "2026/11/21 10:50:00.000, 0, 10")
    result = ingest_one(con, path, tz="UTC")
    assert result.outcome == "loaded-with-warnings", result.describe()
    assert result.message.endswith("line 3002 is cut off (the recording stopped mid-line?): skipped")
    power = series(con, "power")
    assert len(power) == 3000 and power[-1] == (datetime(2026, 11, 21, 10, 49, 59), 100 + 2999 % 7)


def test_wrong_column_count_names_the_line(con, tmp_path):
    bad = TWO_GPUS.splitlines()
    bad.insert(3, "1, GPU-bbbb, NVIDIA H200, 2026/11/21 11:15:00.150, 88.00 W, 90.75 W")
    result = ingest_one(con, write(tmp_path, "cols.csv", "\n".join(bad) + "\n"), tz="UTC")
    assert result.outcome == "failed"
    assert result.line == 4 and "expected 8 comma-separated values, found 6" in result.message
    assert counts(con) == (0, 0, 0, 0)


@pytest.mark.slow
def test_bad_timestamp_and_appended_other_header(con, tmp_path):
    bad = TWO_GPUS.replace("2026/11/21 11:15:00.200", "2026/13/45 11:15:00.200")
    result = ingest_one(con, write(tmp_path, "ts.csv", bad), tz="UTC")
    assert result.outcome == "failed" and result.line == 4 and "not an nvidia-smi timestamp" in result.message
    # an empty timestamp cell in a file DuckDB's typed reader takes (it reads '' as NULL, not an error)
    empty = "timestamp, power.draw [W]\n2026/11/21 11:15:00.000, 1.00 W\n, 2.00 W\n2026/11/21 11:15:02.000, 3.00 W\n"
    result = ingest_one(con, write(tmp_path, "empty.csv", empty), tz="UTC")
    assert result.outcome == "failed" and result.line == 3 and "not an nvidia-smi timestamp" in result.message
    other = TWO_GPUS + "timestamp, power.draw [W]\n2026/11/21 11:16:00.000, 1.00 W\n"
    result = ingest_one(con, write(tmp_path, "two.csv", other), tz="UTC")
    assert result.outcome == "failed" and result.line == 6 and "another header line" in result.message
    assert counts(con) == (0, 0, 0, 0)


def test_cli_reports_bad_input_in_one_line(tmp_path, runner):
    path = write(tmp_path, "bad.csv", "timestamp, power.draw [W]\n2026/11/21 10:00:00.000\n2026/11/21 10:00:01.000, 1 W\n")
    result = invoke(runner, "ingest", str(path), "--db", str(tmp_path / "w.duckdb"))
    assert result.exit_code == 1
    assert f"{path}:2: failed (nvidia-smi-query): expected 2 comma-separated values, found 1" in result.stderr


def test_cli_loads_a_cut_log_and_warns(tmp_path, runner):
    path = write(tmp_path, "cut.csv", "timestamp, power.draw [W]\n2026/11/21 10:00:00.000, 1.00 W\n"
                                      "2026/11/21 10:00:01.000, 2.00 W\n2026/11/21 10:00:0")
    result = invoke(runner, "ingest", str(path), "--db", str(tmp_path / "w.duckdb"), "--tz", "UTC")
    assert result.exit_code == 0, result.output
    assert "line 4 is cut off (the recording stopped mid-line?): skipped" in result.output


def test_header_only_and_no_known_field(con, tmp_path):
    result = ingest_one(con, write(tmp_path, "h.csv", "timestamp, power.draw [W]\n"))
    assert result.outcome == "failed" and "no data rows" in result.message
    result = ingest_one(con, write(tmp_path, "n.csv", "timestamp, index, pstate, driver_version\n"
                                                       "2026/11/21 10:00:00.000, 0, P0, 550.54\n"))
    assert result.outcome == "failed" and "no field dlwh can load" in result.message


def test_sniffers_claim_only_their_own_layouts():
    assert nvidia_smi_query.sniff("timestamp, power.draw [W]\n2024/10/30 18:42:33.189, 22.89 W\n", Path("x"))
    assert nvidia_smi_query.sniff("2026/04/25 16:06:06.780, 0 %, 2 MiB, 11.64 W\n", Path("x"))
    assert nvidia_smi_query.sniff("index, name, utilization.gpu\n", Path("x"))
    assert not nvidia_smi_query.sniff("timestamp,project_name,run_id,duration,emissions\n", Path("x"))
    assert not nvidia_smi_query.sniff("     1.001048308,19.63,Joules,power/energy-pkg/,2002406532,100.00,,\n", Path("x"))
    assert not nvidia_smi_query.sniff("# gpu   pwr gtemp\n", Path("x"))
    assert nvidia_smi_dmon.sniff("# gpu    pwr  gtemp  mtemp     sm    mem\n# Idx W C C % %\n", Path("x"))
    assert nvidia_smi_dmon.sniff("#Date       Time        gpu   pwr gtemp\n", Path("x"))
    assert not nvidia_smi_dmon.sniff("# gpu        pid  type    sm   mem   enc   dec   command\n", Path("x"))


@pytest.mark.slow
def test_bulk_file_takes_the_fast_path_and_matches_the_line_path(tmp_path):
    """The generated benchmark layout (typed CSV reader) and the same rows with a repeated header
    (line-splitting path) load identical samples."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import bench_ingest

    from dlwh.warehouse import open_warehouse

    path = bench_ingest.make_nvidia_smi_csv(2000, tmp_path / "bulk.csv")
    text = path.read_text().splitlines()
    slow = tmp_path / "bulk-repeated-header.csv"
    slow.write_text("\n".join(text[:1001] + [text[0]] + text[1001:]) + "\n")
    got = []
    for name, file in (("fast", path), ("slow", slow)):
        con = open_warehouse(tmp_path / f"{name}.duckdb")
        try:
            result = ingest_one(con, file, tz="Europe/Berlin")
            assert result.outcome == "loaded" and result.rows == 2000 * 11, result.describe()
            got.append(con.execute("SELECT se.device_index, s.ts, s.metric, s.unit, s.value FROM samples s "
                                   "JOIN sensors se USING (sensor_id) ORDER BY ALL").fetchall())
        finally:
            con.close()
    assert got[0] == got[1]
    first = text[1].split(", ")
    assert first[0] == "0" and got[0][0][1] == datetime.strptime(first[2], "%Y/%m/%d %H:%M:%S.%f") - timedelta(hours=1)


# --- dmon ---------------------------------------------------------------------------------------

def test_dmon_fixture_h100_mig(con, fixtures_dir):
    path = fixtures_dir / "nvidia-smi" / "dmon-exporter-h100mig-load.txt"
    failed = ingest_one(con, path)
    assert failed.outcome == "failed" and "--start" in failed.message
    assert counts(con) == (0, 0, 0, 0)
    result = ingest_one(con, path, start=START)
    assert result.outcome == "loaded", result.describe()
    assert result.format == "nvidia-smi-dmon" and result.rows == 5 * 11
    t0 = datetime(2024, 1, 15, 10, 0)
    assert series(con, "power") == [(t0 + timedelta(seconds=k), v) for k, v in enumerate([438, 440, 437, 439, 439])]
    assert [v for _, v in series(con, "temperature_gpu")] == [55, 55, 56, 56, 56]
    assert [v for _, v in series(con, "temperature_memory")] == [61, 60, 60, 60, 62]
    assert {v for _, v in series(con, "clock_mem")} == {2619.0}
    assert {v for _, v in series(con, "clock_sm")} == {1980.0}  # pclk
    assert {v for _, v in series(con, "utilization_gpu")} == {None}  # '-' on MIG
    assert con.execute("SELECT kind, tool, device_index FROM sensors").fetchall() == [("gpu", "nvidia-smi-dmon", 0)]
    assert "every 1 s" in result.message


DMON_DT = """\
#Date       Time        gpu    pwr  gtemp  mtemp     sm    mem    enc    dec   mclk   pclk  pviol  tviol     fb   bar1  rxpci  txpci
#YYYYMMDD   HH:MM:SS    Idx      W      C      C      %      %      %      %    MHz    MHz      %   bool     MB     MB   MB/s   MB/s
 20260701   12:00:00      0    301     60     70     99     45      0      0   2619   1980      0      0  40000      5    120    340
 20260701   12:00:00      1     99     41      -     10      2      0      0   2619   1410      0      0    500      3      1      2

#Date       Time        gpu    pwr  gtemp  mtemp     sm    mem    enc    dec   mclk   pclk  pviol  tviol     fb   bar1  rxpci  txpci
#YYYYMMDD   HH:MM:SS    Idx      W      C      C      %      %      %      %    MHz    MHz      %   bool     MB     MB   MB/s   MB/s
 20260701   12:00:01      0    305     61     71    100     47      0      0   2619   1980      0      0  40100      5    130    350
 20260701   12:00:01      1    101     41      -     12      3      0      0   2619   1410      0      0    510      3      1      2
"""


def test_dmon_date_time_columns_and_pucvmet_selection(con, tmp_path):
    result = ingest_one(con, write(tmp_path, "dmon.txt", DMON_DT), tz="Europe/Berlin")
    assert result.outcome == "loaded", result.describe()
    t = datetime(2026, 7, 1, 10, 0, 0)  # CEST
    assert metrics_at(con, t, "GPU 0") == {
        "power": 301.0, "temperature_gpu": 60.0, "temperature_memory": 70.0, "utilization_gpu": 99.0,
        "utilization_memory": 45.0, "utilization_encoder": 0.0, "utilization_decoder": 0.0, "clock_mem": 2619.0,
        "clock_sm": 1980.0, "memory_used": 40000.0, "pcie_rx": 120.0, "pcie_tx": 340.0}
    assert metrics_at(con, t + timedelta(seconds=1), "GPU 1")["temperature_memory"] is None
    assert series(con, "memory_used", "GPU 1")[1] == (t + timedelta(seconds=1), 510.0)
    units = dict(con.execute("SELECT DISTINCT metric, unit FROM samples").fetchall())
    assert units["pcie_rx"] == "MB/s" and units["memory_used"] == "MiB" and units["power"] == "W"
    assert "pviol, tviol, bar1" in result.message and "Europe/Berlin" in result.message


def test_dmon_old_columns_relative_with_interval(con, tmp_path):
    text = ("# gpu   pwr  temp    sm   mem   enc   dec  mclk  pclk\n"
            "# Idx     W     C     %     %     %     %   MHz   MHz\n"
            "    0    43    35     0     0     0     0  2505  1075\n"
            "    1    42    31    97     9     0     0  2505  1075\n"
            "    0    44    36     1     0     0     0  2505  1075\n"
            "    1    60    33    98     9     0     0  2505  1075\n")
    result = ingest_one(con, write(tmp_path, "old.txt", text), start=START, format_options={"interval_s": 2})
    assert result.outcome == "loaded", result.describe()
    t0 = datetime(2024, 1, 15, 10, 0)
    assert series(con, "power", "GPU 1") == [(t0, 42.0), (t0 + timedelta(seconds=2), 60.0)]
    assert series(con, "temperature_gpu", "GPU 0") == [(t0, 35.0), (t0 + timedelta(seconds=2), 36.0)]
    assert "every 2 s (--interval-s)" in result.message


def test_dmon_time_only_rolls_over_midnight(con, tmp_path):
    text = ("#Time        gpu   pwr\n#HH:MM:SS    Idx     W\n"
            " 23:59:58      0   100\n 23:59:59      0   101\n 00:00:00      0   102\n")
    path = write(tmp_path, "t.txt", text)
    assert "--start" in ingest_one(con, path).message
    result = ingest_one(con, path, start="2026-01-31T23:59:50", tz="UTC")
    assert result.outcome == "loaded", result.describe()
    assert series(con, "power") == [(datetime(2026, 1, 31, 23, 59, 58), 100.0),
                                    (datetime(2026, 1, 31, 23, 59, 59), 101.0), (datetime(2026, 2, 1), 102.0)]


@pytest.mark.parametrize("tail, cut", [("    0   10", True), ("    0   101    51", False)])
def test_dmon_cut_last_line_loads_the_rest_and_warns(con, tmp_path, tail, cut):
    head = "# gpu   pwr gtemp\n# Idx     W     C\n"
    result = ingest_one(con, write(tmp_path, "b.txt", head + "    0   100    50\n" + tail), start=START)
    power = series(con, "power")
    if cut:
        assert result.outcome == "loaded-with-warnings", result.describe()
        assert result.message.endswith("line 4 is cut off (the recording stopped mid-line?): skipped")
        assert power == [(datetime(2024, 1, 15, 10, 0), 100.0)]
    else:  # complete without its newline
        assert result.outcome == "loaded", result.describe()
        assert power == [(datetime(2024, 1, 15, 10, 0), 100.0), (datetime(2024, 1, 15, 10, 0, 1), 101.0)]


def test_dmon_error_lines_between_rows_are_skipped_with_one_warning(con, tmp_path):
    head = "# gpu   pwr gtemp\n# Idx     W     C\n"
    lost = "Unable to determine the device handle for GPU 0000:3B:00.0: GPU is lost.  Reboot the system to recover this GPU"
    result = ingest_one(con, write(tmp_path, "noisy.txt", head + "    0   100    50\n" + lost + "\n    0   101    51\n"),
                        start=START)
    assert result.outcome == "loaded-with-warnings", result.describe()
    assert result.message.endswith("1 nvidia-smi error lines skipped (first at line 4)")
    assert series(con, "power") == [(datetime(2024, 1, 15, 10, 0), 100.0), (datetime(2024, 1, 15, 10, 0, 1), 101.0)]


def test_dmon_bad_input(con, tmp_path):
    head = "# gpu   pwr gtemp\n# Idx     W     C\n"
    result = ingest_one(con, write(tmp_path, "a.txt", head + "    0   100    50\n    0   101\n"), start=START)
    assert result.outcome == "failed" and result.line == 4 and "expected 3 columns" in result.message
    result = ingest_one(con, write(tmp_path, "c.txt", head + "    0   abc    50\n"), start=START)
    assert result.outcome == "failed" and result.line == 3 and "'abc'" in result.message
    result = ingest_one(con, write(tmp_path, "d.txt", head + "    0   1    50\n# gpu   pwr\n    0   1\n"), start=START)
    assert result.outcome == "failed" and result.line == 4 and "column set changes" in result.message
    assert counts(con) == (0, 0, 0, 0)


# --- the benchmark, tiny ----------------------------------------------------------------------------

@pytest.mark.slow
def test_benchmark_smoke(tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, str(root / "benchmarks" / "bench_ingest.py"), "--rows", "4000",
                           "--perf-lines", "2000", "--samples", "40000", "--spans", "2000", "--repeat", "1",
                           "--parts", "nvidia-smi,span_energy", "--data", str(tmp_path), "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["nvidia-smi"]["rows_loaded"] == 4000 * 11
    spans = res["span_energy"]
    assert spans["spans"] == 2000 and spans["span_energy_rows"] == 2000 * 4
    assert spans["epochs_energy_j"] == pytest.approx(spans["run_energy_j"], rel=1e-6)
