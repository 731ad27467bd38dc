"""ipmitool dcmi power reading and sdr / sensor parsers, through the real loader and warehouse."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest

from dlwh.ingest.loader import IngestOptions, ingest_paths
from dlwh.warehouse import open_warehouse
from tests.conftest import invoke
from tests.runfactory import make_run
from tests.helpers import counts, write

DATA = Path(__file__).resolve().parent / "data" / "ipmitool"


def ingest_one(con, path, **options):
    results = ingest_paths(con, [path], IngestOptions(**options))
    assert len(results) == 1, [r.describe() for r in results]
    return results[0]


def samples(con, where: str = "TRUE", params=()):
    return con.execute(
        "SELECT se.name, se.kind, se.tool, s.ts, s.metric, s.unit, s.value, s.duration_s "
        f"FROM samples s JOIN sensors se USING (sensor_id) WHERE {where} ORDER BY s.ts, se.name, s.metric",
        list(params)).fetchall()




# --- dcmi: the shared fixture (ipmitool ≤ 1.8.17, unindented, ctime timestamp) -------------------

def test_dcmi_fixture_old_unindented_layout(con, fixtures_dir):
    path = fixtures_dir / "ipmitool" / "telegraf-ipmitool-dcmi-power-reading.txt"
    result = ingest_one(con, path, tz="Europe/Berlin")
    assert result.outcome == "loaded", result.describe()
    assert result.format == "ipmitool-dcmi" and result.rows == 4
    # "IPMI timestamp: Mon Aug  1 21:22:51 2016" is host-local time: CEST (+02:00) → 19:22:51 UTC
    t = datetime(2016, 8, 1, 19, 22, 51)
    assert samples(con) == [
        ("DCMI power reading", "node", "ipmitool", t, "power", "W", 167.0, None),
        ("DCMI power reading", "node", "ipmitool", t, "power_avg_period", "W", 156.0, 699043.0),
        ("DCMI power reading", "node", "ipmitool", t, "power_max", "W", 422.0, 699043.0),
        ("DCMI power reading", "node", "ipmitool", t, "power_min", "W", 124.0, 699043.0),
    ]
    message = con.execute("SELECT message FROM files").fetchone()[0]
    assert "Europe/Berlin" in message and "--tz" in message


def test_dcmi_fixture_timestamp_follows_the_zone(tmp_path, fixtures_dir):
    path = fixtures_dir / "ipmitool" / "telegraf-ipmitool-dcmi-power-reading.txt"
    con = open_warehouse(tmp_path / "utc.duckdb")
    try:
        assert ingest_one(con, path, tz="UTC").outcome == "loaded"
        assert con.execute("SELECT DISTINCT ts FROM samples").fetchall() == [(datetime(2016, 8, 1, 21, 22, 51),)]
    finally:
        con.close()


# --- dcmi: 1.8.18 indented layout, a log with a deactivated reading ------------------------------

def test_dcmi_indented_log_skips_the_deactivated_reading(con):
    result = ingest_one(con, DATA / "dcmi-1.8.18-indented-log.txt", tz="Europe/Berlin")
    assert result.outcome == "loaded", result.describe()
    assert result.rows == 8  # 2 activated readings x 4 metrics; the deactivated one loads nothing
    power = samples(con, "s.metric = 'power'")
    assert [(r[3], r[6]) for r in power] == [(datetime(2017, 2, 15, 11, 49, 51), 215.0),
                                             (datetime(2017, 2, 15, 11, 50, 1), 231.0)]
    assert samples(con, "s.metric = 'power_max'")[1][6:] == (298.0, 1131476.0)
    assert con.execute("SELECT count(*) FROM samples WHERE value = 0").fetchone()[0] == 0
    assert "1 deactivated readings skipped" in result.message


# --- dcmi: dlwh's collector log (ipmi.log) around ipmitool 1.8.19 output ----------------------------

def test_dcmi_collector_log_in_a_run_directory(tmp_path, con):
    run = make_run(tmp_path / "run", seconds=1.0)
    shutil.copy(DATA / "ipmi.log", run / "ipmi.log")
    results = {r.path.name: r for r in ingest_paths(con, [run])}
    result = results["ipmi.log"]
    assert result.outcome == "loaded-with-warnings", result.describe()
    assert "1 ipmitool error lines skipped (first at line 20)" in result.message
    rows = samples(con, "se.tool = 'ipmitool' AND s.metric = 'power'")
    # the '# timestamp_utc:' line wins over "IPMI timestamp: 11/21/26 10:14:58 UTC"
    assert [(r[3], r[6]) for r in rows] == [
        (datetime(2026, 11, 21, 10, 15, 0, 123456), 312.0),
        (datetime(2026, 11, 21, 10, 15, 1, 124001), 355.0),
        (datetime(2026, 11, 21, 10, 15, 3, 126002), 402.0),
    ]
    # "Sampling period:" printed on the timestamp's line (ipmitool 1.8.19 bug) is still read
    assert samples(con, "se.tool = 'ipmitool' AND s.metric = 'power_avg_period'")[2][6:] == (309.0, 1.0)
    assert con.execute("SELECT DISTINCT run_id FROM sensors WHERE tool = 'ipmitool'").fetchall() == [("run-1",)]
    energy = con.execute("SELECT energy_j, n_samples FROM run_energy WHERE tool = 'ipmitool'").fetchone()
    expected = (312 + 355) / 2 * 1.000545 + (355 + 402) / 2 * 2.002001
    assert energy[0] == pytest.approx(expected) and energy[1] == 3


def test_dcmi_ipmitool_1_8_19_timestamp_forms(tmp_path, con):
    reading = ("\n    Instantaneous power reading:                   {w} Watts\n"
               "    Minimum during sampling period:                 38 Watts\n"
               "    Maximum during sampling period:                242 Watts\n"
               "    Average power reading over sample period:      102 Watts\n"
               "    IPMI timestamp:                           {ts}    Sampling period:                          00065530 Seconds.\n"
               "    Power reading state is:                   activated\n\n")
    cest = write(tmp_path, "cest.txt", reading.format(w=109, ts="10/12/23 13:29:17 CEST"))
    pm = write(tmp_path, "pm.txt", reading.format(w=143, ts="03/06/2025 07:40:35 PM UTC"))
    assert ingest_one(con, cest, tz="Europe/Berlin").outcome == "loaded"
    assert ingest_one(con, pm, tz="Europe/Berlin").outcome == "loaded"
    power = samples(con, "s.metric = 'power'")
    assert [(r[3], r[6]) for r in power] == [(datetime(2023, 10, 12, 11, 29, 17), 109.0),
                                             (datetime(2025, 3, 6, 19, 40, 35), 143.0)]
    assert samples(con, "s.metric = 'power_min'")[0][7] == 65530.0


def test_dcmi_zone_abbreviation_that_disagrees_is_reported(tmp_path, con):
    path = write(tmp_path, "r.txt", "Instantaneous power reading: 100 Watts\n"
                 "IPMI timestamp: 10/12/23 13:29:17 CEST\nPower reading state is: activated\n")
    result = ingest_one(con, path, tz="America/New_York")
    assert result.outcome == "loaded-with-warnings", result.describe()
    assert "say CEST but were read in America/New_York" in result.message
    assert samples(con)[0][3] == datetime(2023, 10, 12, 17, 29, 17)


def test_dcmi_reading_without_any_time_is_refused_until_anchored(tmp_path, con, db_path, runner):
    # an OpenBMC whose clock was never set prints 1970; here the reading is still activated
    text = ("\n    Instantaneous power reading:                   319 Watts\n"
            "    Minimum during sampling period:                319 Watts\n"
            "    Maximum during sampling period:                319 Watts\n"
            "    Average power reading over sample period:      319 Watts\n"
            "    IPMI timestamp:                           Thu Jan  1 00:00:00 1970\n"
            "    Sampling period:                          00000000 Seconds.\n"
            "    Power reading state is:                   activated\n\n")
    path = write(tmp_path, "openbmc.txt", text)
    before = counts(con)
    result = ingest_one(con, path, tz="UTC")
    assert result.outcome == "failed"
    assert "no usable IPMI timestamp" in result.message and "--start" in result.message
    assert "run.json" in result.message and result.line == 2
    assert counts(con) == before
    result = ingest_one(con, path, tz="UTC", start="2024-01-15T10:00:00Z")
    assert result.outcome == "loaded", result.describe()
    assert samples(con, "s.metric = 'power'") == [
        ("DCMI power reading", "node", "ipmitool", datetime(2024, 1, 15, 10, 0), "power", "W", 319.0, None)]
    assert samples(con, "s.metric = 'power_min'")[0][7] is None  # a sampling period of 0 is no duration


def test_dcmi_cli_says_how_to_anchor(tmp_path, db_path, runner):
    path = write(tmp_path, "r.txt", "Instantaneous power reading: 100 Watts\nPower reading state is: activated\n")
    result = invoke(runner, "ingest", str(path), "--db", str(db_path))
    assert result.exit_code != 0
    assert "r.txt:1: failed (ipmitool-dcmi)" in result.stderr and "pass --start" in result.stderr
    result = invoke(runner, "ingest", str(path), "--db", str(db_path), "--start", "2024-01-15T10:00:00Z")
    assert result.exit_code == 0, result.stderr
    out = invoke(runner, "sql", "SELECT value FROM samples WHERE metric = 'power'", "--db", str(db_path), "--csv")
    assert "100.0" in out.stdout


def test_dcmi_log_without_times_uses_start_and_interval(tmp_path, con):
    one = "Instantaneous power reading: {w} Watts\nIPMI timestamp: Unspecified\nPower reading state is: activated\n\n"
    path = write(tmp_path, "log.txt", one.format(w=200) + one.format(w=210) + one.format(w=190))
    before = counts(con)
    failed = ingest_one(con, path, start="2024-01-15T10:00:00Z")
    assert failed.outcome == "failed" and failed.line == 1 and counts(con) == before
    result = ingest_one(con, path, start="2024-01-15T10:00:00Z", format_options={"interval_s": 5})
    assert result.outcome == "loaded", result.describe()
    assert [(r[3], r[6]) for r in samples(con)] == [(datetime(2024, 1, 15, 10, 0, 0), 200.0),
                                                    (datetime(2024, 1, 15, 10, 0, 5), 210.0),
                                                    (datetime(2024, 1, 15, 10, 0, 10), 190.0)]


@pytest.mark.parametrize("keep, chop", [
    (25, 0),   # the third reading (from line 20) lacks its state line: the recording stopped between lines
    (23, 5),   # cut inside line 23, the third reading's average: that line and its reading are left out
    (26, 1),   # the third reading complete but for its last line end: simply complete
])
def test_dcmi_truncated_log_loads_the_complete_readings_and_warns(tmp_path, con, keep, chop):
    lines = (DATA / "dcmi-1.8.18-indented-log.txt").read_text().split("\n")
    trimmed = "\n".join(lines[:keep]) + "\n"
    path = write(tmp_path, "cut.txt", trimmed[:-chop] if chop else trimmed)
    result = ingest_one(con, path, tz="UTC")
    power = [(r[3], r[6]) for r in samples(con, "s.metric = 'power'")]
    if keep == 26:
        assert result.outcome == "loaded", result.describe()
        assert power == [(datetime(2017, 2, 15, 12, 49, 51), 215.0), (datetime(2017, 2, 15, 12, 50, 1), 231.0)]
        return
    assert result.outcome == "loaded-with-warnings", result.describe()
    assert result.message.endswith(
        "the last reading (from line 20) is incomplete (the recording stopped mid-reading?): skipped")
    assert "cut off" not in result.message  # one warning for one cut
    assert power == [(datetime(2017, 2, 15, 12, 49, 51), 215.0)]


def test_dcmi_single_incomplete_reading_is_refused(tmp_path, con):
    lines = (DATA / "dcmi-1.8.18-indented-log.txt").read_text().split("\n")
    path = write(tmp_path, "cut.txt", "\n".join(lines[:5]) + "\n")
    result = ingest_one(con, path, tz="UTC")
    assert result.outcome == "failed" and result.line == 2
    assert "the only reading is incomplete (no 'Power reading state is' line; file truncated?)" in result.message
    assert counts(con) == (0, 0, 0, 0)


def test_dcmi_garbage_and_bad_numbers_name_the_line(tmp_path, con):
    garbage = write(tmp_path, "g.txt", "Instantaneous power reading: 100 Watts\nhello world\n"
                    "Power reading state is: activated\n")
    bad = write(tmp_path, "b.txt", "Instantaneous power reading: 100 Watts\nMinimum during sampling period: lots Watts\n"
                "Power reading state is: activated\n")
    r1 = ingest_one(con, garbage, start="2024-01-15T10:00:00Z")
    r2 = ingest_one(con, bad, start="2024-01-15T10:00:00Z")
    assert (r1.outcome, r1.line) == ("failed", 2) and "not part of ipmitool dcmi power reading output" in r1.message
    assert (r2.outcome, r2.line) == ("failed", 2) and "'lots Watts' is not a number of Watts" in r2.message
    assert counts(con) == (0, 0, 0, 0)


# --- sdr / sensor ---------------------------------------------------------------------------------

def test_sdr_fixture_avg_power_needs_an_anchor(con, fixtures_dir):
    path = fixtures_dir / "ipmitool" / "telegraf-ipmitool-sdr-v1-fulldump.txt"
    failed = ingest_one(con, path)
    assert failed.outcome == "failed" and failed.format == "ipmitool-sensors"
    assert "pass --start" in failed.message and "run.json" in failed.message
    assert counts(con) == (0, 0, 0, 0)
    result = ingest_one(con, path, start="2016-03-20T15:41:05Z")
    assert result.outcome == "loaded", result.describe()
    # "Avg Power        | 210 Watts         | ok" is the only Watts row; 132 others are not stored
    assert samples(con) == [("Avg Power", "node", "ipmitool", datetime(2016, 3, 20, 15, 41, 5), "power", "W", 210.0, None)]
    assert "132 rows not in Watts" in result.message


def test_sdr_log_with_collector_time_lines(con):
    result = ingest_one(con, DATA / "sdr-log.txt")
    assert result.outcome == "loaded", result.describe()
    t0, t1 = datetime(2026, 11, 21, 10, 15, 0), datetime(2026, 11, 21, 10, 15, 5)
    assert [(r[0], r[1], r[3], r[6]) for r in samples(con)] == [
        ("PSU1 Power", "psu", t0, 120.0), ("PSU2 Power", "psu", t0, 118.0), ("Total Power", "node", t0, 238.0),
        ("PSU1 Power", "psu", t1, 131.0), ("PSU2 Power", "psu", t1, 127.0), ("Total Power", "node", t1, 258.0)]
    assert con.execute("SELECT name, device_index FROM sensors ORDER BY name").fetchall() == [
        ("PSU1 Power", 1), ("PSU2 Power", 2), ("Total Power", None)]


def test_sensor_list_watts_rows_with_a_local_start(con):
    # a naive --start is local time in the --tz zone: 11:15 in Berlin is 10:15 UTC
    result = ingest_one(con, DATA / "sensor-list.txt", start="2026-11-21T11:15:00", tz="Europe/Berlin")
    assert result.outcome == "loaded", result.describe()
    t = datetime(2026, 11, 21, 10, 15)
    assert [(r[0], r[1], r[3], r[6]) for r in samples(con)] == [
        ("CPU Power", "cpu", t, 61.5), ("PS2 Input Power", "psu", t, None), ("Pwr Consumption", "node", t, 240.0)]
    assert "5 rows not in Watts" in result.message


def test_sdr_elist_rows_and_repeated_names(tmp_path, con):
    text = ("# timestamp_utc: 2023-10-11T08:00:00Z\n"
            "Current 1        | 6Ah | ok  | 10.1 | 0.40 Amps\n"
            "PS1 Power In     | 52h | ok  | 10.1 | 132 Watts\n"
            "PS2 Power In     | 53h | ok  | 10.2 | 160 Watts\n"
            "Pwr Consumption  | 77h | ok  |  7.1 | 98 Watts\n"
            "Pwr Consumption  | 78h | ok  |  7.2 | 99 Watts\n")
    result = ingest_one(con, write(tmp_path, "elist.txt", text))
    assert result.outcome == "loaded", result.describe()
    assert [(r[0], r[1], r[6]) for r in samples(con)] == [
        ("PS1 Power In", "psu", 132.0), ("PS2 Power In", "psu", 160.0),
        ("Pwr Consumption", "node", 98.0), ("Pwr Consumption #2", "node", 99.0)]


def test_sdr_repeated_snapshots_without_times_need_an_interval(tmp_path, con):
    snap = "Total Power      | {w} Watts         | ok\nInlet Temp       | 22 degrees C      | ok\n"
    path = write(tmp_path, "two.txt", snap.format(w=300) + snap.format(w=310))
    failed = ingest_one(con, path, start="2024-01-15T10:00:00Z")
    assert failed.outcome == "failed" and "these 2 snapshots have no time" in failed.message
    result = ingest_one(con, path, start="2024-01-15T10:00:00Z", format_options={"interval_s": 10})
    assert [(r[3], r[6]) for r in samples(con)] == [(datetime(2024, 1, 15, 10, 0, 0), 300.0),
                                                    (datetime(2024, 1, 15, 10, 0, 10), 310.0)]
    assert result.outcome == "loaded"


def test_sdr_bad_rows_name_the_line(tmp_path, con):
    columns = write(tmp_path, "c.txt", "Total Power      | 300 Watts         | ok\nPSU1 | 1 | 2 | 3\n")
    garbage = write(tmp_path, "g.txt", "Total Power      | 300 Watts         | ok\nsomething else\n")
    r1 = ingest_one(con, columns, start="2024-01-15T10:00:00Z")
    r2 = ingest_one(con, garbage, start="2024-01-15T10:00:00Z")
    assert (r1.outcome, r1.line) == ("failed", 2) and "4 columns" in r1.message
    assert (r2.outcome, r2.line) == ("failed", 2) and "not an ipmitool sdr/sensor row" in r2.message
    assert counts(con) == (0, 0, 0, 0)


def test_dcmi_day_first_dates_are_recognised(tmp_path, con):
    one = "Instantaneous power reading: {w} Watts\nIPMI timestamp: {d} 09:00:00 UTC\nPower reading state is: activated\n\n"
    path = write(tmp_path, "gb.txt", one.format(w=100, d="05/11/26") + one.format(w=101, d="21/11/26"))
    result = ingest_one(con, path)
    assert result.outcome == "loaded", result.describe()
    assert [(r[3], r[6]) for r in samples(con)] == [(datetime(2026, 11, 5, 9, 0), 100.0),
                                                    (datetime(2026, 11, 21, 9, 0), 101.0)]


def test_sdr_names_repeated_within_one_snapshot_are_not_new_snapshots(tmp_path, con):
    # Dell sdr elist prints several rows named 'Temp'; one snapshot, so --start alone suffices
    text = ("Temp             | 0Eh | ok  |  3.1 | 40 degrees C\n"
            "Temp             | 0Fh | ok  |  3.2 | 41 degrees C\n"
            "Pwr Consumption  | 77h | ok  |  7.1 | 98 Watts\n")
    result = ingest_one(con, write(tmp_path, "dell.txt", text), start="2024-01-15T10:00:00Z")
    assert result.outcome == "loaded", result.describe()
    assert [(r[0], r[3], r[6]) for r in samples(con)] == [("Pwr Consumption", datetime(2024, 1, 15, 10, 0), 98.0)]


# --- a tool's own noise and a cut last line ---------------------------------------------------------

NOISE = "Unable to send command: Invalid argument"


def test_sdr_fixture_with_an_error_line_after_every_row_is_still_ipmitool(tmp_path, con, fixtures_dir):
    rows = (fixtures_dir / "ipmitool" / "telegraf-ipmitool-sdr-v1-fulldump.txt").read_text().splitlines()
    noisy = "".join(f"{row}\n{NOISE}\n" for row in rows)   # half the lines are ipmitool's error lines
    path = write(tmp_path, "noisy-sdr.txt", noisy)
    result = ingest_one(con, path, start="2016-03-20T15:41:05Z")
    assert result.outcome == "loaded-with-warnings" and result.format == "ipmitool-sensors", result.describe()
    assert result.message.endswith(f"{len(rows)} ipmitool error lines skipped (first at line 2)")
    assert samples(con) == [("Avg Power", "node", "ipmitool", datetime(2016, 3, 20, 15, 41, 5), "power", "W", 210.0, None)]


def test_sdr_log_with_error_lines_between_polls(tmp_path, con):
    lines = (DATA / "sdr-log.txt").read_text().splitlines()
    noisy = [lines[0], NOISE, "Get SDR 0042 command failed: Timeout", *lines[1:]]
    result = ingest_one(con, write(tmp_path, "noisy.log", "\n".join(noisy) + "\n"))
    assert result.outcome == "loaded-with-warnings", result.describe()
    assert result.message == ("times from the '# timestamp_utc:' lines; 6 rows not in Watts (temperatures, fans, "
                              "voltages, discrete) not stored; 2 ipmitool error lines skipped (first at line 2)")
    assert len(samples(con)) == 6


def test_mostly_other_text_is_not_ipmitool(tmp_path, con):
    text = "Total Power      | 300 Watts         | ok\n" + "some other tool's line\n" * 5
    result = ingest_one(con, write(tmp_path, "other.txt", text), start="2024-01-15T10:00:00Z")
    assert result.outcome == "failed" and "not a trace format dlwh knows" in result.message


@pytest.mark.parametrize("tail, cut", [
    ("PSU2 Power       | 127 Wat", True),      # inside the unit
    ("PSU2 Power       | 12", True),           # before the unit
    ("PSU2 Power       | 127 Watts         | o", True),  # inside the status
    ("PSU2 Power       | 127 Watts         | ok", False),  # complete without its newline
    ("Fan1A            | 5400 RPM          | ok", False),
])
def test_sdr_log_cut_last_line_loads_the_rest_and_warns(tmp_path, con, tail, cut):
    lines = (DATA / "sdr-log.txt").read_text().splitlines()
    at = lines.index("PSU2 Power       | 127 Watts         | ok")
    text = "\n".join(lines[:at] + [tail])
    result = ingest_one(con, write(tmp_path, "cut.log", text))
    t0, t1 = datetime(2026, 11, 21, 10, 15, 0), datetime(2026, 11, 21, 10, 15, 5)
    got = [(r[0], r[3], r[6]) for r in samples(con)]
    if cut:
        assert result.outcome == "loaded-with-warnings", result.describe()
        assert result.message.endswith(f"line {at + 1} is cut off (the recording stopped mid-line?): skipped")
        assert got[-1] == ("PSU1 Power", t1, 131.0) and len(got) == 4
    else:
        assert result.outcome == "loaded", result.describe()
        assert got[-1] == ("PSU2 Power", t1, 127.0) if "PSU2" in tail else got[-1] == ("PSU1 Power", t1, 131.0)
