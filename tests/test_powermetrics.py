"""macOS powermetrics text (macOS 12 and 14 layouts, Intel) and -f plist, through the real loader and warehouse."""

from __future__ import annotations

import plistlib
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from dlwh.ingest.loader import IngestOptions, ingest_paths
from tests.helpers import counts, write

DATA = Path(__file__).resolve().parent / "data" / "powermetrics"
FIXTURE = "codecarbon-m1-macbookair.txt"


def ingest_one(con, path, **options):
    results = ingest_paths(con, [path], IngestOptions(**options))
    assert len(results) == 1, [r.describe() for r in results]
    return results[0]


def series(con, sensor: str, metric: str):
    """(ts, value, duration_s) of one sensor's metric, in time order."""
    return con.execute(
        "SELECT s.ts, s.value, s.duration_s FROM samples s JOIN sensors se USING (sensor_id) "
        "WHERE se.name = ? AND s.metric = ? ORDER BY s.ts", [sensor, metric]).fetchall()




def at(h, m, s, us=0):
    return datetime(2023, 11, 10, h, m, s, us)


# --- the shared fixture: M1, macOS 12 layout -------------------------------------------------------

def test_fixture_macos12_layout(con, fixtures_dir):
    result = ingest_one(con, fixtures_dir / "powermetrics" / FIXTURE)
    assert result.outcome == "loaded", result.describe()
    assert result.format == "powermetrics-text"
    # 10 samples x (7 power + 10 frequency + 10 residency lines)
    assert result.rows == 270
    assert con.execute("SELECT name, kind FROM sensors WHERE name IN ('CPU', 'GPU', 'ANE', 'DRAM', 'Package', "
                       "'E-Cluster', 'CPU 3') ORDER BY name").fetchall() == [
        ("ANE", "ane"), ("CPU", "cpu"), ("CPU 3", "cpu"), ("DRAM", "dram"), ("E-Cluster", "cpu"),
        ("GPU", "gpu"), ("Package", "soc")]
    assert {r[0] for r in con.execute("SELECT DISTINCT tool FROM sensors").fetchall()} == {"powermetrics"}
    # Headers: 7 samples say 12:37:08 +0100, then 12:37:09 (elapsed 104.51, 104.81, ... ms). The header time
    # is the window's end; window 1 starts at T0, and T0 + cumulative elapsed must stay within each header's
    # second: T0 in [08.14374, 08.25046) → 08.19710. Window 1 ends 08.30161, its middle is 08.249355.
    cpu = series(con, "CPU", "power")
    assert cpu[0] == (at(11, 37, 8, 249355), 0.947, 0.10451)                       # CPU Power: 947 mW
    assert cpu[1] == (at(11, 37, 8, 354015), 0.420, 0.10481)                       # CPU Power: 420 mW
    assert cpu[7] == (at(11, 37, 9, 0), 0.272, 0.10672)                            # line 419: 272 mW
    assert cpu[9] == (at(11, 37, 9, 216700), 0.239, 0.10892)                       # line 523: 239 mW
    assert len({ts for ts, _, _ in cpu}) == 10                                      # one distinct time per sample
    assert series(con, "Package", "power")[9][1] == 0.321                           # Package Power: 321 mW
    assert series(con, "DRAM", "power")[0][1] == 0.220
    assert series(con, "E-Cluster", "power")[1][1] == 0.067
    assert series(con, "CPU 0", "frequency")[8][1] == 1734.0                        # line 435
    assert series(con, "CPU 0", "residency")[0][1] == 20.74
    assert series(con, "P-Cluster", "frequency")[0][1] == 2247.0
    assert "UTC offset +0100" in result.message and "window's end" in result.message


def test_fixture_energy_is_integrated(con, fixtures_dir):
    ingest_one(con, fixtures_dir / "powermetrics" / FIXTURE)
    row = con.execute("SELECT n_samples, energy_j, first_ts FROM run_energy WHERE sensor_name = 'Package'").fetchone()
    # readings cover their window (0010): the run starts where the first window starts
    # (its midpoint 11:37:08.249355 minus half of its elapsed time) and each reading adds P x window
    first_mid, first_window, pw_sum = con.execute(
        "SELECT arg_min(ts, ts), arg_min(duration_s, ts), sum(value * duration_s) FROM samples "
        "JOIN sensors USING (sensor_id) WHERE name = 'Package' AND metric = 'power'").fetchone()
    assert first_mid == at(11, 37, 8, 249355)
    assert row[0] == 10 and abs((row[2] - (first_mid - timedelta(seconds=first_window / 2))).total_seconds()) <= 1e-6
    assert row[1] == pytest.approx(pw_sum)   # < 1 s of at most 1.473 W


@pytest.mark.parametrize("keep_lines, chop", [
    (522, 0),   # the last sample (from line 476) lacks its CPU, GPU and Package Power lines
    (525, 3),   # and here its last line is cut too: one warning, for the sample
])
def test_fixture_truncated_loads_the_complete_samples_and_warns(tmp_path, con, fixtures_dir, keep_lines, chop):
    lines = (fixtures_dir / "powermetrics" / FIXTURE).read_text().split("\n")[:keep_lines]
    text = "\n".join(lines) + "\n"
    path = write(tmp_path, "cut.txt", text[:-1 - chop] if chop else text)
    result = ingest_one(con, path)
    assert result.outcome == "loaded-with-warnings", result.describe()
    assert result.message.endswith("the last sample (from line 476) is incomplete "
                                   "(the recording stopped mid-sample?): skipped")
    assert "cut off" not in result.message
    row = con.execute("SELECT n_samples FROM run_energy WHERE sensor_name = 'Package'").fetchone()
    assert row == (9,)   # the fixture's 10 samples but the last


def test_cut_last_line_outside_a_reading_is_skipped_with_a_warning(tmp_path, con, fixtures_dir):
    text = (fixtures_dir / "powermetrics" / FIXTURE).read_text()
    path = write(tmp_path, "cut.txt", text + "*** Sampled system act")
    result = ingest_one(con, path)
    assert result.outcome == "loaded-with-warnings", result.describe()
    assert result.message.endswith(f"line {text.count(chr(10)) + 1} is cut off (the recording stopped mid-line?): skipped")
    assert con.execute("SELECT n_samples FROM run_energy WHERE sensor_name = 'Package'").fetchone() == (10,)


def test_complete_last_line_without_newline_is_complete(tmp_path, con, fixtures_dir):
    text = (fixtures_dir / "powermetrics" / FIXTURE).read_text()
    result = ingest_one(con, write(tmp_path, "whole.txt", text.rstrip("\n")))
    assert result.outcome == "loaded", result.describe()


# --- macOS 14 layout (hand-made, tests/data/powermetrics) ------------------------------------------

def test_macos14_layout(con):
    result = ingest_one(con, DATA / "macos14-cpu-gpu-power.txt")
    assert result.outcome == "loaded", result.describe()
    assert result.rows == 78   # 3 samples x (4 power + 11 frequency + 11 residency)
    assert "3 repeated lines (e.g. GPU Power in the GPU usage section) ignored" in result.message
    # headers 11:15:01, :02, :03 +0100 with 1003.52, 1001.87, 1004.10 ms: T0 = 11:15:00.493495 local
    combined = series(con, "Combined (CPU + GPU + ANE)", "power")
    assert combined == [(datetime(2023, 11, 21, 10, 15, 0, 995255), 0.339, 1.00352),
                        (datetime(2023, 11, 21, 10, 15, 1, 997950), 2.963, 1.00187),
                        (datetime(2023, 11, 21, 10, 15, 3, 935), 0.265, 1.0041)]
    assert [v for _, v, _ in series(con, "CPU", "power")] == [0.312, 2.851, 0.246]
    assert [v for _, v, _ in series(con, "GPU", "power")] == [0.027, 0.112, 0.019]
    assert [v for _, v, _ in series(con, "GPU", "frequency")] == [444.0, 444.0, 389.0]
    assert [v for _, v, _ in series(con, "GPU", "residency")] == [4.63, 16.2, 2.88]
    assert series(con, "P-Cluster", "residency")[1][1] == 38.47
    assert con.execute("SELECT kind FROM sensors WHERE name = 'Combined (CPU + GPU + ANE)'").fetchone() == ("soc",)


def test_first_of_repeated_lines_counts(tmp_path, con):
    text = ("*** Sampled system activity (Tue Nov 21 11:15:01 2023 +0100) (1000.00ms elapsed) ***\n\n"
            "**** Processor usage ****\n\nCPU Power: 100 mW\nGPU Power: 200 mW\nANE Power: 3 mW\n"
            "Combined Power (CPU + GPU + ANE): 303 mW\n\n**** GPU usage ****\n\nGPU HW active frequency: 618 MHz\n"
            "GPU HW active residency:  25.00% (338 MHz: 1%)\nGPU idle residency:  75.00%\nGPU Power: 190 mW\n")
    result = ingest_one(con, write(tmp_path, "dup.txt", text))
    assert result.outcome == "loaded", result.describe()
    # one sample: the window ends in the middle of its stated second (11:15:01.5), its middle is 0.5 s earlier
    assert series(con, "GPU", "power") == [(datetime(2023, 11, 21, 10, 15, 1), 0.2, 1.0)]


def test_intel_mac_package_power(tmp_path, con):
    text = ("Machine model: MacBookPro16,2\nOS version: 20D91\n\n"
            "*** Sampled system activity (Sat Oct 30 20:25:28 2021 -0600) (501.25ms elapsed) ***\n\n"
            "**** Processor usage ****\n\nIntel energy model derived package power (CPUs+GT+SA): 1.23W\n\n"
            "LLC flushed residency: 82.1%\n\nSystem Average frequency as fraction of nominal: 72.83% (1529.48 Mhz)\n")
    result = ingest_one(con, write(tmp_path, "intel.txt", text))
    assert result.outcome == "loaded", result.describe()
    assert con.execute("SELECT name, kind FROM sensors").fetchall() == [("Package (CPUs+GT+SA)", "soc")]
    assert series(con, "Package (CPUs+GT+SA)", "power") == [(datetime(2021, 10, 31, 2, 25, 28, 249375), 1.23, 0.50125)]


def test_headers_without_a_date_need_an_anchor(tmp_path, con):
    text = "".join(f"*** Sampled system activity ({ms}ms elapsed) ***\n\nCPU Power: {mw} mW\nGPU Power: 5 mW\n\n"
                   for ms, mw in (("104.51", 947), ("104.81", 420)))
    path = write(tmp_path, "nodate.txt", text)
    failed = ingest_one(con, path)
    assert failed.outcome == "failed"
    assert "only elapsed times" in failed.message and "--start" in failed.message and "run.json" in failed.message
    assert counts(con) == (0, 0, 0, 0)
    result = ingest_one(con, path, start="2023-11-10T11:37:08Z")
    assert result.outcome == "loaded", result.describe()
    assert series(con, "CPU", "power") == [(datetime(2023, 11, 10, 11, 37, 8, 52255), 0.947, 0.10451),
                                           (datetime(2023, 11, 10, 11, 37, 8, 156915), 0.42, 0.10481)]


def test_two_recordings_in_one_file_are_two_stretches(tmp_path, con):
    block = "*** Sampled system activity (Fri Nov 10 {t} 2023 +0100) (500.00ms elapsed) ***\n\nCPU Power: 100 mW\n\n"
    text = "".join(block.format(t=t) for t in ("12:37:08", "12:37:08", "13:00:00", "13:00:01"))
    result = ingest_one(con, write(tmp_path, "two.txt", text))
    assert result.outcome == "loaded", result.describe()
    assert "2 stretches of contiguous samples" in result.message
    assert [ts for ts, _, _ in series(con, "CPU", "power")] == [
        at(11, 37, 8, 0), at(11, 37, 8, 500000), at(12, 0, 0, 500000), at(12, 0, 1, 0)]


def test_bad_header_names_its_line(tmp_path, con):
    text = ("*** Sampled system activity (Fri Nov 10 12:37:08 2023 +0100) (104.51ms elapsed) ***\nCPU Power: 1 mW\n"
            "*** Sampled system activity (yesterday at noon) (104.51ms elapsed) ***\nCPU Power: 1 mW\n")
    result = ingest_one(con, write(tmp_path, "bad.txt", text))
    assert (result.outcome, result.line) == ("failed", 3) and "sample date 'yesterday at noon' not understood" in result.message
    assert counts(con) == (0, 0, 0, 0)


# --- -f plist --------------------------------------------------------------------------------------

def test_plist_stream_with_nul_separators(con):
    assert b"\x00" in (DATA / "plist-stream.plist").read_bytes()   # as powermetrics writes it: not 'binary'
    result = ingest_one(con, DATA / "plist-stream.plist")
    assert result.outcome == "loaded", result.describe()
    assert result.format == "powermetrics-plist" and result.rows == 51
    # timestamps 21:07:07, :08, :09 Z with elapsed_ns 1023685416, 1001203125, 1002551208:
    # T0 = 21:07:06.474437417, window 1 ends 07.498122833, its middle is 06.986280...
    cpu = series(con, "CPU", "power")
    assert cpu[0] == (datetime(2026, 1, 22, 21, 7, 6, 986280), pytest.approx(2.97845), 1.023685416)
    assert [v for _, v, _ in cpu][1:] == [pytest.approx(1.5102), pytest.approx(3.32)]
    assert series(con, "CPU", "energy")[0] == (datetime(2026, 1, 22, 21, 7, 7, 498122), 3.049, 1.023685416)
    assert series(con, "Combined (CPU + GPU + ANE)", "power")[2][1] == pytest.approx(4.57075)
    assert [v for _, v, _ in series(con, "GPU", "frequency")] == [338.0, 338.0, 1398.0]   # freq_hz is MHz for GPUs
    assert series(con, "E-Cluster", "frequency")[0][1] == pytest.approx(1182.0)            # ... and Hz for CPUs
    assert series(con, "GPU", "residency")[0][1] == pytest.approx(12.2657)
    assert series(con, "CPU 4", "residency")[0][1] == pytest.approx(25.0)
    assert [v for _, v, _ in series(con, "GPU", "energy")] == [0.276, 0.097, 1.254]       # counted once per sample
    reported = con.execute("SELECT reported_energy_j FROM run_energy WHERE sensor_name = 'CPU'").fetchone()[0]
    assert reported == pytest.approx(3.049 + 1.512 + 3.328)
    assert "plist timestamps (UTC)" in result.message


def test_plist_truncated_is_refused_and_changes_nothing(tmp_path, con):
    data = (DATA / "plist-stream.plist").read_bytes()
    cut = tmp_path / "cut.plist"
    cut.write_bytes(data[: len(data) - 200])
    third = data[: data.rindex(b"\x00") + 1].count(b"\n") + 1     # the line where the third document starts
    ingest_one(con, DATA / "macos14-cpu-gpu-power.txt")
    before = counts(con)
    result = ingest_one(con, cut)
    assert result.outcome == "failed" and "incomplete plist document (file truncated?)" in result.message
    assert result.line == third
    assert counts(con) == before


def test_plist_without_timestamps_needs_an_anchor(tmp_path, con):
    docs = [plistlib.dumps({"is_delta": True, "elapsed_ns": 500_000_000, "hw_model": "Mac14,2",
                            "processor": {"cpu_power": mw, "combined_power": mw}}) for mw in (1000.0, 3000.0)]
    path = tmp_path / "nots.plist"
    path.write_bytes(b"\x00".join(docs))
    failed = ingest_one(con, path)
    assert failed.outcome == "failed" and "--start" in failed.message and counts(con) == (0, 0, 0, 0)
    result = ingest_one(con, path, start="2026-01-22T21:07:00Z")
    assert result.outcome == "loaded", result.describe()
    assert series(con, "CPU", "power") == [(datetime(2026, 1, 22, 21, 7, 0, 250000), 1.0, 0.5),
                                           (datetime(2026, 1, 22, 21, 7, 0, 750000), 3.0, 0.5)]


def test_nul_bytes_outside_a_plist_stream_are_still_binary(tmp_path, con):
    path = tmp_path / "blob.bin"
    path.write_bytes(b"<?xml version='1.0'?>\x00\x01\x02\x03 not text \x00\xff\xfe")
    assert ingest_one(con, path).outcome == "failed"
    path.write_bytes(b"\x00\x00*** Sampled system activity \x00")
    result = ingest_one(con, path)
    assert result.outcome == "failed" and "binary" in result.message
