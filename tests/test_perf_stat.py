"""perf stat parsers (CSV -x, human-readable text in any locale, JSON -j) into the real warehouse.

Every shared fixture under ../shared/fixtures/perf is ingested and checked against its raw text;
layouts the fixtures lack (per-CPU/per-socket, old 4-column, not counted/supported, appended runs,
other locales, -I text and JSON) are small inputs written here.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from dlwh.ingest import formats
from dlwh.ingest.loader import IngestOptions, ingest_paths
from tests.conftest import invoke
from tests.runfactory import T0, make_run

DATA_TABLES = ("runs", "run_tags", "files", "sensors", "samples", "counters", "spans")
PERF = "perf"


def snapshot(con) -> dict:
    return {t: sorted(map(repr, con.execute(f"SELECT * FROM {t}").fetchall())) for t in DATA_TABLES}


def load(con, path: Path, **options):
    """Ingest one file; return its FileResult."""
    results = [r for r in ingest_paths(con, [path], IngestOptions(**options)) if r.path.name == path.name]
    assert len(results) == 1
    return results[0]


def loaded(con, path: Path, fmt: str, **options):
    result = load(con, path, **options)
    assert result.outcome.startswith("loaded"), result.describe()
    assert result.format == fmt
    return result


def counters(con, where: str = "TRUE", params: list | None = None) -> list[tuple]:
    return con.execute(
        "SELECT perf_run, ts, interval_s, cpu, pmu, event, value, unit, reason, run_time_ns, enabled_pct "
        f"FROM counters WHERE {where} ORDER BY perf_run, ts NULLS FIRST, event, cpu", params or []).fetchall()


def one(con, sql: str, params: list | None = None):
    rows = con.execute(sql, params or []).fetchall()
    assert len(rows) == 1, rows
    return rows[0]


def us(seconds: float) -> timedelta:
    """A duration as the warehouse stores it (TIMESTAMP keeps microseconds: rounded)."""
    return timedelta(microseconds=round(seconds * 1e6))


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


START = "2024-10-30T18:42:33"          # --start in Europe/Berlin (CET, +01:00)
START_UTC = datetime(2024, 10, 30, 17, 42, 33)


# -- the shared fixtures ---------------------------------------------------------------------------

def test_fixture_csv_interval_energy_pkg(con, fixtures_dir):
    path = fixtures_dir / PERF / "peakler-csv-interval-energy-pkg.csv"
    result = loaded(con, path, "perf-stat-csv", start=START, tz="Europe/Berlin")
    assert "from --start" in result.message
    rows = counters(con)
    assert len(rows) == 30
    # '     1.001048308,19.63,Joules,power/energy-pkg/,2002406532,100.00,,'
    assert rows[0] == (0, START_UTC + us(1.001048308), pytest.approx(1.001048308), None, "power",
                       "power/energy-pkg/", 19.63, "Joules", None, 2002406532, 100.0)
    # '     2.002369058,19.41,...,2002617705,...' : interval = difference of the two times
    assert rows[1][1] == START_UTC + us(2.002369058)
    assert rows[1][2] == pytest.approx(2.002369058 - 1.001048308)
    assert (rows[1][6], rows[1][9]) == (19.41, 2002617705)
    # the last interval is shorter: '    30.001688646,19.61,Joules,...,1933622135,100.00,,'
    assert rows[-1][1] == START_UTC + us(30.001688646)
    assert rows[-1][2] == pytest.approx(30.001688646 - 29.034832776)
    assert (rows[-1][6], rows[-1][9]) == (19.61, 1933622135)
    assert one(con, "SELECT sensor_id LIKE '%:perf:energy-pkg', kind, tool, name FROM sensors") == (
        True, "cpu_package", "perf", "energy-pkg")
    energy = con.execute("SELECT ts, value, duration_s FROM samples WHERE metric = 'energy' ORDER BY ts").fetchall()
    assert len(energy) == 30
    assert energy[0] == (START_UTC + us(1.001048308), 19.63, pytest.approx(1.001048308))
    # power: J / interval at the interval's midpoint, plus the run's two edges
    power = con.execute("SELECT ts, value, duration_s FROM samples WHERE metric = 'power' "
                        "AND duration_s IS NOT NULL ORDER BY ts").fetchall()
    assert len(power) == 30
    assert power[0][0] == START_UTC + us(1.001048308 / 2)
    assert power[0][1] == pytest.approx(19.63 / 1.001048308)
    assert power[1][0] == START_UTC + us((1.001048308 + 2.002369058) / 2)
    assert power[1][1] == pytest.approx(19.41 / (2.002369058 - 1.001048308))
    edges = con.execute("SELECT ts, value FROM samples WHERE metric = 'power' AND duration_s IS NULL "
                        "ORDER BY ts").fetchall()
    assert edges == [(START_UTC, pytest.approx(19.63 / 1.001048308)),
                     (START_UTC + us(30.001688646), pytest.approx(19.61 / (30.001688646 - 29.034832776)))]
    energy_j, reported = one(con, "SELECT energy_j, reported_energy_j FROM run_energy")
    assert reported == pytest.approx(595.11)
    assert energy_j == pytest.approx(595.11, rel=1e-4)  # trapezoids over midpoints + edges match perf's Joules


def test_fixture_csv_I100_pmu_uncore_rapl(con, fixtures_dir):
    path = fixtures_dir / PERF / "raplvalidation-csv-I100-pmu-uncore-rapl.csv"
    loaded(con, path, "perf-stat-csv", start="2024-10-30T17:42:33Z")
    assert one(con, "SELECT count(*), count(DISTINCT ts), max(perf_run) FROM counters") == (270, 30, 0)
    first = counters(con, "ts = ?", [START_UTC + us(0.100360379)])
    by_event = {r[5]: r for r in first}
    # '     0.100360379,8020721,,cycles,1476513195,100.00'
    assert by_event["cycles"][2:] == (pytest.approx(0.100360379), None, None, "cycles", 8020721.0, None, None,
                                      1476513195, 100.0)
    # '     0.100360379,4.799988,MiB,uncore_imc/data_reads/,368821464,100.00'
    assert by_event["uncore_imc/data_reads/"][4:8] == ("uncore_imc", "uncore_imc/data_reads/", 4.799988, "MiB")
    # '     0.100360379,0.911932,Joules,power/energy-pkg/,368734464,100.00'
    assert by_event["power/energy-pkg/"][4:10] == ("power", "power/energy-pkg/", 0.911932, "Joules", None, 368734464)
    second = {r[5]: r for r in counters(con, "ts = ?", [START_UTC + us(0.200796737)])}
    assert second["instructions"][6] == 548112
    assert second["instructions"][2] == pytest.approx(0.200796737 - 0.100360379)
    kinds = dict(con.execute("SELECT name, kind FROM sensors").fetchall())
    assert kinds == {"energy-cores": "cpu_cores", "energy-pkg": "cpu_package", "energy-ram": "dram"}
    # the uncore and PMU events are counters only; each RAPL domain gets 30 energy readings
    assert con.execute("SELECT se.name, count(*) FROM samples s JOIN sensors se USING (sensor_id) "
                       "WHERE metric = 'energy' GROUP BY 1 ORDER BY 1").fetchall() == [
        ("energy-cores", 30), ("energy-pkg", 30), ("energy-ram", 30)]
    # '     3.012760542,0.370483,Joules,power/energy-pkg/,100586220,100.00' is the last pkg reading
    assert one(con, "SELECT s.value FROM samples s JOIN sensors se USING (sensor_id) WHERE se.name = "
                    "'energy-pkg' AND metric = 'energy' AND ts = ?", [START_UTC + us(3.012760542)]) == (0.370483,)


def test_fixture_text_de_locale_hybrid_started_on(con, fixtures_dir):
    path = fixtures_dir / PERF / "tiledmatmul-de-locale-hybrid-atom-core.profile"
    result = loaded(con, path, "perf-stat-text", tz="Europe/Berlin")
    assert "decimal mark ','" in result.message
    assert "'# started on' read as local time in Europe/Berlin (--tz)" in result.message
    # '# started on Fri May 16 23:03:33 2025' is CEST (+02:00); '2,007931346 seconds time elapsed'
    end = datetime(2025, 5, 16, 21, 3, 33) + us(2.007931346)
    rows = {r[5]: r for r in counters(con)}
    assert len(rows) == 23
    assert {r[1] for r in rows.values()} == {end}
    assert [r[2] for r in rows.values()] == [pytest.approx(2.007931346)] * 23
    # '    39.293.025.980      cpu_atom/cycles/   #    1,991 GHz    (58,73%)'
    assert rows["cpu_atom/cycles/"][4:] == ("cpu_atom", "cpu_atom/cycles/", 39293025980.0, None, None, None, 58.73)
    assert rows["cpu_core/cycles/"][4:] == ("cpu_core", "cpu_core/cycles/", 36246187668.0, None, None, None, 57.96)
    # '         19.730,56 msec task-clock' and '             2.909      context-switches'
    assert rows["task-clock"][4:8] == (None, "task-clock", 19730.56, "msec")
    assert rows["task-clock"][10] is None
    assert rows["context-switches"][6] == 2909.0
    assert rows["cpu_atom/LLC-load-misses/"][6] == 106492.0 and rows["cpu_atom/LLC-load-misses/"][10] == 58.78
    assert rows["cpu_core/LLC-load-misses/"][6] == 81526033.0
    assert one(con, "SELECT count(*) FROM sensors") == (0,)  # no RAPL events in this file


def test_fixture_text_en_seven_runs_rapl(con, fixtures_dir, tmp_path):
    run = make_run(tmp_path / "run")
    shutil.copy(fixtures_dir / PERF / "peakler-human-pmu-plus-rapl.txt", run / "perf.txt")
    result = loaded(con, run / "perf.txt", "perf-stat-text")
    assert "anchored at" in result.message and "run.json" in result.message
    assert "7 lines that are not perf output were skipped" in result.message  # the shell prompts
    assert one(con, "SELECT count(*), count(DISTINCT perf_run), min(run_id), max(run_id) FROM counters") == (
        56, 7, "run-1", "run-1")
    t0 = T0.replace(tzinfo=None)
    run0 = {r[5]: r for r in counters(con, "perf_run = 0")}
    # '        25,415,217        instructions  #  0.59  insn per cycle' ... '0.021176049 seconds time elapsed'
    assert run0["instructions"][1:] == (t0 + us(0.021176049), pytest.approx(0.021176049), None, None,
                                        "instructions", 25415217.0, None, None, None, None)
    assert run0["power/energy-cores/"][6:8] == (0.44, "Joules")
    run3 = {r[5]: r for r in counters(con, "perf_run = 3")}
    # '    69,759,925,617        instructions' / '          1,473.81 Joules power/energy-cores/'
    assert run3["instructions"][6] == 69759925617.0
    assert run3["power/energy-cores/"][6] == 1473.81
    assert run3["power/energy-pkg/"][6] == 2764.52 and run3["power/energy-ram/"][6] == 864.79
    assert run3["cycles"][2] == pytest.approx(50.858755816)
    run6 = {r[5]: r for r in counters(con, "perf_run = 6")}
    assert run6["cycles"][6] == 1536131780811.0 and run6["power/energy-pkg/"][6] == 28962.41
    assert run6["cycles"][1] == t0 + us(586.800554147)
    # runs stay apart: one sensor per run and domain
    assert one(con, "SELECT count(*) FROM sensors WHERE run_id = 'run-1' AND tool = 'perf'") == (21,)
    key, kind, value, duration = one(
        con, "SELECT se.sensor_id, se.kind, s.value, s.duration_s FROM samples s JOIN sensors se USING (sensor_id) "
             "WHERE se.name = 'energy-pkg (perf run 6)' AND s.metric = 'energy'")
    assert key.endswith(":perf:run6:energy-pkg") and kind == "cpu_package"
    assert (value, duration) == (28962.41, pytest.approx(586.800554147))
    energy_j, reported = one(con, "SELECT energy_j, reported_energy_j FROM run_energy WHERE sensor_name = "
                                  "'energy-pkg (perf run 6)'")
    assert reported == 28962.41 and energy_j == pytest.approx(28962.41, rel=1e-6)


def test_fixture_json_two_blocks_hybrid(con, fixtures_dir):
    path = fixtures_dir / PERF / "lkml-kanliang-perf-stat-json-spr-hybrid.jsonl"
    result = loaded(con, path, "perf-stat-json")
    assert "no start time" in result.message  # totals without an anchor still load, ts NULL
    assert one(con, "SELECT count(*), count(ts), count(DISTINCT perf_run) FROM counters") == (20, 0, 2)
    spr = {r[5]: r for r in counters(con, "perf_run = 0")}
    assert len(spr) == 8
    # {"counter-value" : "225904.823297", "unit" : "msec", "event" : "cpu-clock", "event-runtime" : 225904323425,
    #  "pcnt-running" : 100.00, "metric-value" : "224.456872", "metric-unit" : "CPUs utilized"}
    assert spr["cpu-clock"][3:] == (None, None, "cpu-clock", 225904.823297, "msec", None, 225904323425, 100.0)
    assert spr["cpu-clock"][2] == pytest.approx(225904.823297 / 1000 / 224.456872)  # run length: msec / CPUs
    assert spr["branch-misses"][6] == 54747.0
    adl = {r[5]: r for r in counters(con, "perf_run = 1")}
    assert adl["cpu_core/cycles/"][4:] == ("cpu_core", "cpu_core/cycles/", 18685492.0, None, None, 16061585292, 100.0)
    assert adl["cpu_atom/cycles/"][4:] == ("cpu_atom", "cpu_atom/cycles/", 255620352.0, None, None, 8690268422, 54.0)
    assert adl["cpu_atom/branch-misses/"][6] == 1017066.0
    assert adl["cpu-clock"][2] == pytest.approx(32131.530625 / 1000 / 31.992642)


def test_every_fixture_loads_with_an_anchor_and_views_agree(con, fixtures_dir, tmp_path):
    run = make_run(tmp_path / "run")
    for path in sorted((fixtures_dir / PERF).iterdir()):
        if path.name != "SOURCES.md":
            shutil.copy(path, run / path.name)
    results = {r.path.name: r for r in ingest_paths(con, [run])}
    for name, result in results.items():
        if name != "spans.jsonl":  # empty in this run
            assert result.outcome.startswith("loaded"), result.describe()
    assert sorted(r.format for r in results.values() if r.format and r.format.startswith("perf")) == [
        "perf-stat-csv", "perf-stat-csv", "perf-stat-json", "perf-stat-text", "perf-stat-text"]
    diff = con.execute("SELECT max(abs(energy_diff_pct)) FROM run_energy WHERE tool = 'perf'").fetchone()[0]
    assert diff < 0.05


@pytest.mark.slow
def test_sniffers_recognise_only_perf_files(fixtures_dir):
    expected = {
        "peakler-csv-interval-energy-pkg.csv": "perf-stat-csv",
        "raplvalidation-csv-I100-pmu-uncore-rapl.csv": "perf-stat-csv",
        "peakler-human-pmu-plus-rapl.txt": "perf-stat-text",
        "tiledmatmul-de-locale-hybrid-atom-core.profile": "perf-stat-text",
        "lkml-kanliang-perf-stat-json-spr-hybrid.jsonl": "perf-stat-json",
    }
    perf_modules = [m for m in formats.load_formats() if m.NAME.startswith("perf-stat")]
    for path in sorted(fixtures_dir.rglob("*")):
        if not path.is_file():
            continue
        head = path.read_bytes()[:65536].decode("utf-8", errors="replace")
        claimed = [m.NAME for m in perf_modules if m.sniff(head, path)]
        assert claimed == ([expected[path.name]] if path.parent.name == PERF and path.name in expected else []), path


# -- anchoring ---------------------------------------------------------------------------------------

def test_interval_file_without_anchor_is_refused_and_changes_nothing(con, fixtures_dir, tmp_path):
    ingest_paths(con, [make_run(tmp_path / "good")])
    before = snapshot(con)
    path = fixtures_dir / PERF / "peakler-csv-interval-energy-pkg.csv"
    result = load(con, path)
    assert result.outcome == "failed" and result.line == 1
    assert "pass --start" in result.message and "run.json" in result.message
    assert "'# started on'" in result.message
    assert snapshot(con) == before


@pytest.mark.parametrize("name,text", [
    ("i.csv", "     1.000123456,100,,cycles,1000,100.00,,\n"),
    ("i.txt", "#           time             counts unit events\n     1.000123456                100      cycles\n"),
    ("i.json", '{"interval" : 1.000123456, "counter-value" : "100", "unit" : "", "event" : "cycles"}\n'),
])
def test_each_format_refuses_unanchored_intervals(con, tmp_path, name, text):
    result = load(con, write(tmp_path, name, text))
    assert result.outcome == "failed" and "pass --start" in result.message, result.describe()
    assert snapshot(con)["counters"] == []


def test_anchor_from_run_json(con, fixtures_dir, tmp_path):
    run = make_run(tmp_path / "run", run_id="r7")
    shutil.copy(fixtures_dir / PERF / "peakler-csv-interval-energy-pkg.csv", run / "perf.csv")
    result = loaded(con, run / "perf.csv", "perf-stat-csv")
    assert "from run.json" in result.message
    t0 = T0.replace(tzinfo=None)
    assert one(con, "SELECT min(ts), max(ts), min(run_id) FROM counters") == (
        t0 + us(1.001048308), t0 + us(30.001688646), "r7")
    assert one(con, "SELECT run_id FROM sensors WHERE tool = 'perf'") == ("r7",)


def test_start_option_through_the_cli(tmp_path, db_path, runner, fixtures_dir):
    path = fixtures_dir / PERF / "peakler-csv-interval-energy-pkg.csv"
    result = invoke(runner, "ingest", str(path), "--db", str(db_path), "--start", "2024-10-30T18:42:33",
                    "--tz", "Europe/Berlin")
    assert result.exit_code == 0, result.stderr
    assert "perf-stat-csv" in result.stdout
    out = invoke(runner, "sql", "SELECT min(ts) AS t FROM counters", "--db", str(db_path), "--csv")
    assert out.stdout.strip().splitlines() == ["t", "2024-10-30 17:42:34.001048"]
    refused = invoke(runner, "ingest", str(path), "--db", str(tmp_path / "other.duckdb"))
    assert refused.exit_code == 1
    assert "pass --start" in refused.stderr and "Traceback" not in refused.stderr


def test_start_wins_over_started_on_which_wins_over_run_json(con, tmp_path):
    text = ("# started on Wed Oct 30 18:42:33 2024\n\n"
            "     1.000000000,10.00,Joules,power/energy-pkg/,1000000000,100.00,,\n"
            "     2.000000000,12.00,Joules,power/energy-pkg/,1000000000,100.00,,\n")
    run = make_run(tmp_path / "run")  # run.json: 2026-11-21T10:00:00Z, Europe/Berlin
    path = write(run, "perf.csv", text)
    result = loaded(con, path, "perf-stat-csv")
    assert "'# started on' read as local time in Europe/Berlin (run.json)" in result.message
    assert one(con, "SELECT min(ts) FROM counters") == (datetime(2024, 10, 30, 17, 42, 34),)
    loose = write(tmp_path, "loose.csv", text + "\n")
    loaded(con, loose, "perf-stat-csv", start="2025-01-01T00:00:00Z", tz="UTC")
    assert one(con, "SELECT min(ts) FROM counters c JOIN files f ON f.sha256 = c.file_sha256 AND f.path = ?",
               [str(loose.resolve())]) == (datetime(2025, 1, 1, 0, 0, 1),)


# -- CSV layouts ----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_csv_appended_runs_with_started_on_lines_stay_apart(con, tmp_path):
    text = ("# started on Mon Oct 28 10:00:00 2024\n\n"
            "     1.000100000,1000,,cycles,1000000000,100.00,,\n"
            "     1.000100000,5.00,Joules,power/energy-pkg/,1000000000,100.00,,\n"
            "     2.000200000,1100,,cycles,1000000000,100.00,,\n"
            "     2.000200000,6.00,Joules,power/energy-pkg/,1000000000,100.00,,\n"
            "# started on Mon Oct 28 11:00:00 2024\n\n"
            "     0.500000000,2000,,cycles,500000000,100.00,,\n"
            "     0.500000000,3.00,Joules,power/energy-pkg/,500000000,100.00,,\n")
    result = loaded(con, write(tmp_path, "runs.csv", text), "perf-stat-csv", tz="UTC")
    assert "2 perf runs" in result.message
    rows = counters(con, "event = 'cycles'")
    assert [(r[0], r[1], r[2], r[6]) for r in rows] == [
        (0, datetime(2024, 10, 28, 10, 0, 1, 100), pytest.approx(1.0001), 1000.0),
        (0, datetime(2024, 10, 28, 10, 0, 2, 200), pytest.approx(1.0001), 1100.0),
        (1, datetime(2024, 10, 28, 11, 0, 0, 500000), pytest.approx(0.5), 2000.0),
    ]
    names = [r[0] for r in con.execute("SELECT name FROM sensors ORDER BY name").fetchall()]
    assert names == ["energy-pkg (perf run 0)", "energy-pkg (perf run 1)"]
    # a third run appended without a header (its time goes backwards) has no start of its own
    third = text + "     0.250000000,3000,,cycles,250000000,100.00,,\n"
    refused = load(con, write(tmp_path, "third.csv", third), tz="UTC")
    assert refused.outcome == "failed" and refused.line == 11 and "pass --start" in refused.message
    # with --start: the first run starts then, the second keeps its distance (1 h), the third gets --start
    loaded(con, write(tmp_path, "third.csv", third), "perf-stat-csv", tz="UTC", start="2024-01-01T00:00:00")
    rows = con.execute("SELECT perf_run, min(ts) FROM counters c JOIN files f ON f.sha256 = c.file_sha256 "
                       "WHERE f.path LIKE '%third.csv' GROUP BY 1 ORDER BY 1").fetchall()
    assert rows == [(0, datetime(2024, 1, 1, 0, 0, 1, 100)), (1, datetime(2024, 1, 1, 1, 0, 0, 500000)),
                    (2, datetime(2024, 1, 1, 0, 0, 0, 250000))]


def test_csv_per_socket_and_per_cpu_modes(con, tmp_path):
    per_socket = ("     1.000000000,S0,1,10.50,Joules,power/energy-pkg/,1000000000,100.00,,\n"
                  "     1.000000000,S1,1,11.25,Joules,power/energy-pkg/,1000000000,100.00,,\n"
                  "     1.000000000,S0,8,123456,,cycles,8000000000,100.00,0.01,GHz\n"
                  "     2.000000000,S0,1,10.00,Joules,power/energy-pkg/,1000000000,100.00,,\n"
                  "     2.000000000,S1,1,12.00,Joules,power/energy-pkg/,1000000000,100.00,,\n"
                  "     2.000000000,S0,8,654321,,cycles,8000000000,100.00,0.01,GHz\n")
    loaded(con, write(tmp_path, "sock.csv", per_socket), "perf-stat-csv", start=START, tz="Europe/Berlin")
    sensors = con.execute("SELECT split_part(sensor_id, ':', 2) || ':' || split_part(sensor_id, ':', 3) || ':' "
                          "|| split_part(sensor_id, ':', 4), device_index, name FROM sensors ORDER BY 1").fetchall()
    assert sensors == [("perf:S0:energy-pkg", 0, "energy-pkg S0"), ("perf:S1:energy-pkg", 1, "energy-pkg S1")]
    assert counters(con, "event = 'cycles'")[1][3:7] == ("S0", None, "cycles", 654321.0)
    assert one(con, "SELECT s.value FROM samples s JOIN sensors se USING (sensor_id) WHERE se.name = "
                    "'energy-pkg S1' AND metric = 'power' AND duration_s IS NOT NULL AND ts = ?",
               [START_UTC + us(1.5)]) == (12.0,)
    per_cpu = ("CPU0,1234,,cycles,1000000,100.00,,\n"
               "CPU1,<not counted>,,cycles,0,0.00,,\n"
               "CPU0,2.50,Joules,power/energy-pkg/,1000000000,100.00,,\n")
    loaded(con, write(tmp_path, "cpu.csv", per_cpu), "perf-stat-csv")
    rows = counters(con, "cpu IN ('CPU0', 'CPU1') AND event = 'cycles'")
    assert [(r[3], r[6], r[8]) for r in rows] == [("CPU0", 1234.0, None), ("CPU1", None, "not counted")]


@pytest.mark.slow
def test_csv_old_four_column_totals_and_not_supported(con, tmp_path):
    # perf 3.x-4.x without -I: value,unit,event,run_time (no percentage, no metric columns)
    text = ("19.63,Joules,power/energy-pkg/,2002406532\n"
            "48433482,,cycles,2002000000\n"
            "<not supported>,,stalled-cycles-frontend,0\n"
            "<not counted>,,idle-cycles-backend,0\n")
    result = loaded(con, write(tmp_path, "old.csv", text), "perf-stat-csv")
    assert "shortest counter running time" in result.message
    assert "no start time" in result.message
    rows = {r[5]: r for r in counters(con)}
    assert rows["cycles"] == (0, None, pytest.approx(2.002), None, None, "cycles", 48433482.0, None, None,
                              2002000000, None)
    assert rows["stalled-cycles-frontend"][6:9] == (None, None, "not supported")
    assert rows["idle-cycles-backend"][6:9] == (None, None, "not counted")
    assert rows["power/energy-pkg/"][6:10] == (19.63, "Joules", None, 2002406532)
    assert one(con, "SELECT count(*) FROM samples") == (0,)  # energy not placed in time without an anchor
    # the same with --start: totals are placed at start + run length, energy too
    again = write(tmp_path, "old2.csv", text + "\n")
    loaded(con, again, "perf-stat-csv", start="2024-01-01T00:00:00Z")
    assert one(con, "SELECT ts, value, duration_s FROM samples WHERE metric = 'energy'") == (
        datetime(2024, 1, 1) + us(2.002), 19.63, pytest.approx(2.002))


def test_csv_newer_totals_hybrid_with_metrics(con, tmp_path):
    text = ("1002.48,msec,cpu-clock,1002480000,100.00,1.000,CPUs utilized\n"
            "18685492,,cpu_core/cycles/,16061585292,100.00,0.000582,GHz\n"
            "255620352,,cpu_atom/cycles/,8690268422,54.00,0.007955,GHz\n"
            ",,,,,0.83,insn per cycle\n")
    loaded(con, write(tmp_path, "hyb.csv", text), "perf-stat-csv", start="2024-01-01T00:00:00Z")
    rows = {r[5]: r for r in counters(con)}
    assert len(rows) == 3  # the metric-only line is not a counter
    assert rows["cpu_atom/cycles/"][4:] == ("cpu_atom", "cpu_atom/cycles/", 255620352.0, None, None, 8690268422, 54.0)
    assert rows["cpu_core/cycles/"][4] == "cpu_core"
    assert rows["cpu-clock"][1:3] == (datetime(2024, 1, 1) + us(1.00248), pytest.approx(1.00248))


def test_csv_semicolon_separator_with_decimal_comma(con, tmp_path):
    text = "     1.000500000;19,63;Joules;power/energy-pkg/;1000000000;100,00;;\n"
    result = loaded(con, write(tmp_path, "semi.csv", text), "perf-stat-csv", start="2024-01-01T00:00:00Z")
    assert "decimal comma" in result.message
    assert counters(con)[0][6:] == (19.63, "Joules", None, 1000000000, 100.0)


# -- text layouts and locales ---------------------------------------------------------------------------

TEXT_TEMPLATE = """
 Performance counter stats for 'system wide':

{lines}

{elapsed} seconds time elapsed

"""


@pytest.mark.parametrize("case,lines,elapsed,expected", [
    ("en", ["    1,473,810,000      cycles", "          1,473.81 Joules power/energy-pkg/"], "50.858755816",
     {"cycles": 1473810000.0, "power/energy-pkg/": 1473.81}),
    ("de", ["    39.293.025.980      cycles", "          1.473,81 Joules power/energy-pkg/"], "50,858755816",
     {"cycles": 39293025980.0, "power/energy-pkg/": 1473.81}),
    ("fr-narrow-nbsp", ["    39\u202f293\u202f025\u202f980      cycles", "          1\u202f473,81 Joules power/energy-pkg/"],
     "50,858755816", {"cycles": 39293025980.0, "power/energy-pkg/": 1473.81}),
    ("nbsp", ["    39\u00a0293\u00a0025\u00a0980      cycles", "          1\u00a0473,81 Joules power/energy-pkg/"],
     "50,858755816", {"cycles": 39293025980.0, "power/energy-pkg/": 1473.81}),
    ("de-ch", ["    39'293'025'980      cycles", "          1'473.81 Joules power/energy-pkg/"], "50.858755816",
     {"cycles": 39293025980.0, "power/energy-pkg/": 1473.81}),
])
def test_text_locales(con, tmp_path, case, lines, elapsed, expected):
    path = write(tmp_path, f"{case}.txt", TEXT_TEMPLATE.format(lines="\n".join(lines), elapsed=elapsed))
    loaded(con, path, "perf-stat-text", start="2024-01-01T00:00:00Z")
    rows = {r[5]: r for r in counters(con)}
    assert {k: r[6] for k, r in rows.items()} == expected
    assert [r[2] for r in rows.values()] == [pytest.approx(50.858755816)] * 2


@pytest.mark.parametrize("lines,decimal,expected", [
    # no elapsed line: a Joules value with two decimals tells the mark
    (["     2.909      context-switches", "          0,44 Joules power/energy-cores/"], ",",
     {"context-switches": 2909.0, "power/energy-cores/": 0.44}),
    (["     2,909      context-switches", "          0.44 Joules power/energy-cores/"], ".",
     {"context-switches": 2909.0, "power/energy-cores/": 0.44}),
    # grouping repeated: '1.234.567' can only be thousands
    (["     1.234.567      cycles", "          1,5 Joules power/energy-cores/"], ",",
     {"cycles": 1234567.0, "power/energy-cores/": 1.5}),
    # both marks in one value
    (["         19.730,56 msec task-clock", "     2.909      context-switches"], ",",
     {"task-clock": 19730.56, "context-switches": 2909.0}),
])
@pytest.mark.slow
def test_text_decimal_mark_from_values(con, tmp_path, lines, decimal, expected):
    text = " Performance counter stats for 'x':\n\n" + "\n".join(lines) + "\n"
    result = loaded(con, write(tmp_path, "v.txt", text), "perf-stat-text")
    assert f"decimal mark '{decimal}'" in result.message
    assert {r[5]: r[6] for r in counters(con)} == expected


def test_text_interval_per_socket_not_counted_not_supported(con, tmp_path):
    text = ("#           time socket cpus             counts unit events\n"
            "     1.001000000 S0        1              10,50 Joules power/energy-pkg/\n"
            "     1.001000000 S0        8          1.234.567      cycles                    #    0,12 GHz  (50,00%)\n"
            "     1.001000000 S0        8      <not counted>      cpu_atom/cycles/          (0,00%)\n"
            "     1.001000000 S0        8    <not supported>      idle-cycles-frontend\n"
            "     1.001000000                                     #     0,59  insn per cycle\n"
            "     2.002000000 S0        1              11,00 Joules power/energy-pkg/\n"
            "     2.002000000 S0        8          2.345.678      cycles                    #    0,20 GHz  (50,00%)\n")
    loaded(con, write(tmp_path, "it.txt", text), "perf-stat-text", start="2024-01-01T00:00:00Z")
    rows = counters(con)
    t1, t2 = datetime(2024, 1, 1) + us(1.001), datetime(2024, 1, 1) + us(2.002)
    assert [(r[1], r[3], r[5], r[6], r[8], r[10]) for r in rows] == [
        (t1, "S0", "cpu_atom/cycles/", None, "not counted", 0.0),
        (t1, "S0", "cycles", 1234567.0, None, 50.0),
        (t1, "S0", "idle-cycles-frontend", None, "not supported", None),
        (t1, "S0", "power/energy-pkg/", 10.5, None, None),
        (t2, "S0", "cycles", 2345678.0, None, 50.0),
        (t2, "S0", "power/energy-pkg/", 11.0, None, None),
    ]
    assert [r[2] for r in rows] == [pytest.approx(1.001)] * 4 + [pytest.approx(1.001)] * 2
    assert one(con, "SELECT name, device_index, kind FROM sensors") == ("energy-pkg S0", 0, "cpu_package")


def test_text_appended_runs_split_at_headers_and_started_on(con, tmp_path):
    block = (" Performance counter stats for 'sleep 1':\n\n"
             "         {cycles}      cycles\n"
             "              {joules} Joules power/energy-pkg/\n\n"
             "       1.001000000 seconds time elapsed\n\n")
    text = ("# started on Mon Oct 28 10:00:00 2024\n\n" + block.format(cycles="1,000", joules="5.00")
            + "# started on Mon Oct 28 10:05:00 2024\n\n" + block.format(cycles="2,000", joules="6.00"))
    loaded(con, write(tmp_path, "two.txt", text), "perf-stat-text", tz="UTC")
    rows = counters(con, "event = 'cycles'")
    assert [(r[0], r[1], r[6]) for r in rows] == [
        (0, datetime(2024, 10, 28, 10, 0, 1, 1000), 1000.0), (1, datetime(2024, 10, 28, 10, 5, 1, 1000), 2000.0)]
    assert one(con, "SELECT count(DISTINCT sensor_id) FROM samples") == (2,)


# -- JSON -------------------------------------------------------------------------------------------------

def test_json_interval_socket_and_not_counted(con, tmp_path):
    text = ('{"interval" : 1.000500000, "socket" : "S0", "cpu-count" : 1, "counter-value" : "10.500000", '
            '"unit" : "Joules", "event" : "power/energy-pkg/", "event-runtime" : 1000500000, "pcnt-running" : 100.00}\n'
            '{"interval" : 1.000500000, "socket" : "S0", "cpu-count" : 8, "counter-value" : "<not counted>", '
            '"unit" : "", "event" : "cpu_atom/cycles/", "event-runtime" : 0, "pcnt-running" : 0.00}\n'
            '{"interval" : 1.000500000, "socket" : "S0", "cpu-count" : 8, "metric-value" : 0.5, "metric-unit" : "GHz"}\n'
            '{"interval" : 2.001000000, "socket" : "S0", "cpu-count" : 1, "counter-value" : "12.000000", '
            '"unit" : "Joules", "event" : "power/energy-pkg/", "event-runtime" : 1000500000, "pcnt-running" : 100.00}\n'
            '{"interval" : 2.001000000, "cpu" : "3", "counter-value" : "42", "unit" : "", "event" : "cycles"}\n')
    loaded(con, write(tmp_path, "i.json", text), "perf-stat-json", start="2024-01-01T00:00:00Z")
    rows = counters(con)
    t1, t2 = datetime(2024, 1, 1) + us(1.0005), datetime(2024, 1, 1) + us(2.001)
    assert [(r[1], r[3], r[5], r[6], r[8], r[9]) for r in rows] == [
        (t1, "S0", "cpu_atom/cycles/", None, "not counted", 0),
        (t1, "S0", "power/energy-pkg/", 10.5, None, 1000500000),
        (t2, "CPU3", "cycles", 42.0, None, None),
        (t2, "S0", "power/energy-pkg/", 12.0, None, 1000500000),
    ]
    assert rows[-1][2] == pytest.approx(1.0005)
    assert one(con, "SELECT s.value FROM samples s WHERE metric = 'power' AND ts = ?",
               [datetime(2024, 1, 1) + us(1.0005 + 1.0005 / 2)]) == (pytest.approx(12.0 / 1.0005),)


# -- bad input ---------------------------------------------------------------------------------------------

BAD = {
    "garbage-line.csv": ("     1.000000000,100,,cycles,1000,100.00,,\n"
                         "     2.000000000,oops,,cycles,1000,100.00,,\n", 2, "not a perf stat -x, counter line"),
    "too-many.csv": ("     1.000000000,100,,cycles,1000,100.00,,\n"
                     "     2.000000000,100,,cpu/event=0x3c,umask=0x0/,1000,100.00,,,,\n", 2, "more than perf stat"),
    "no-counters.txt": (" Performance counter stats for 'x':\n\n   just words here\n", None, "no perf stat counter lines"),
    "truncated.txt": (" Performance counter stats for 'x':\n\n     1,234      cycl", None,
                      "no perf stat counter lines found (line 3 is cut off (the recording stopped mid-line?): skipped)"),
    "bad-json.json": ('{"counter-value" : "1", "unit" : "", "event" : "cycles"}\n{"counter-value" : "2", "ev\n',
                      2, "not valid JSON"),
    "bad-value.json": ('{"counter-value" : "lots", "unit" : "", "event" : "cycles"}\n', 1, "is not a number"),
    "bad-started-on.csv": ("# started on sometime last week\n100,,cycles,1000,100.00\n", 1, "is not a date"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_is_one_clear_error_and_changes_nothing(con, tmp_path, name):
    ingest_paths(con, [make_run(tmp_path / "good")])
    before = snapshot(con)
    text, line, message = BAD[name]
    result = load(con, write(tmp_path, name, text), start="2024-01-01T00:00:00Z")
    assert result.outcome == "failed", result.describe()
    assert result.format and result.format.startswith("perf-stat")
    assert message in result.message and result.line == line, result.describe()
    assert "\n" not in result.message
    assert snapshot(con) == before


CUT = {  # a recording killed mid-line: every complete line loads, the cut one is named
    "cut.csv": ("     1.000000000,100,,cycles,1000,100.00,,\n     2.000000000,100,,cyc", 2, 1),
    "cut-value.csv": ("     1.000000000,100,,cycles,1000,100.00,,\n     2.000000000,100,,cycles,1000,100.0", 2, 1),
    "whole.csv": ("     1.000000000,100,,cycles,1000,100.00,,\n     2.000000000,101,,cycles,1000,100.00,,", None, 2),
    "cut.txt": ("#           time             counts unit events\n     1.001000000              1,234      cycles\n"
                "     2.002000000              1,300      cycl", 3, 1),
    "whole.txt": ("#           time             counts unit events\n     1.001000000              1,234      cycles\n"
                  "     2.002000000              1,300      cycles", None, 2),
    "cut.json": ('{"interval" : 1.0, "counter-value" : "1", "unit" : "", "event" : "cycles"}\n'
                 '{"interval" : 2.0, "counter-value" : "2", "ev', 2, 1),
    "whole.json": ('{"interval" : 1.0, "counter-value" : "1", "unit" : "", "event" : "cycles"}\n'
                   '{"interval" : 2.0, "counter-value" : "2", "unit" : "", "event" : "cycles"}', None, 2),
}


@pytest.mark.parametrize("name", sorted(CUT))
def test_cut_last_line_loads_every_complete_line_and_warns(con, tmp_path, name):
    text, cut_line, counters = CUT[name]
    result = load(con, write(tmp_path, name, text), start="2024-01-01T00:00:00Z")
    assert one(con, "SELECT count(*) FROM counters") == (counters,)
    if cut_line is None:  # a complete last line without its newline is complete
        assert result.outcome == "loaded", result.describe()
    else:
        assert result.outcome == "loaded-with-warnings", result.describe()
        assert result.message.endswith(f"line {cut_line} is cut off (the recording stopped mid-line?): skipped")


def test_bad_input_through_the_cli(tmp_path, db_path, runner):
    path = write(tmp_path, "bad.csv", BAD["garbage-line.csv"][0])
    result = invoke(runner, "ingest", str(path), "--db", str(db_path), "--start", "2024-01-01T00:00:00")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0].startswith(f"{path}:2: failed (perf-stat-csv): not a perf stat -x,")
    assert "Traceback" not in result.stdout + result.stderr
    con = duckdb.connect(str(db_path))
    assert con.execute("SELECT count(*) FROM counters").fetchone() == (0,)
    con.close()


def test_other_csv_and_text_are_not_perf(tmp_path):
    samples = {
        "smi.csv": "timestamp, name, power.draw [W]\n2024/01/01 10:00:00.000, H100, 22.89 W\n",
        "smi-noheader.csv": "0, 11.64 W, 0 %, 2 MiB\n1, 12.00 W, 5 %, 3 MiB\n",
        "numbers.csv": "1,2,3\n4,5,6\n",
        "prose.txt": "perf stat is a tool; Performance counters are nice.\n",
        "spans.jsonl": '{"span_id": "a", "kind": "epoch", "start_utc": "2026-01-01T00:00:00Z"}\n',
    }
    perf_modules = [m for m in formats.load_formats() if m.NAME.startswith("perf-stat")]
    for name, text in samples.items():
        assert [m.NAME for m in perf_modules if m.sniff(text, tmp_path / name)] == [], name


@pytest.mark.slow
def test_repeat_mode_noise_fields(con, tmp_path):
    csv_text = ("1473.81,Joules,power/energy-pkg/,0.45%,50858755816,100.00,,\n"
                "69759925617,,instructions,0.12%,50858000000,100.00,0.49,insn per cycle\n")
    loaded(con, write(tmp_path, "r.csv", csv_text), "perf-stat-csv", start="2024-01-01T00:00:00Z")
    rows = {r[5]: r for r in counters(con)}
    assert rows["instructions"][6:] == (69759925617.0, None, None, 50858000000, 100.0)
    assert rows["power/energy-pkg/"][6:] == (1473.81, "Joules", None, 50858755816, 100.0)
    text = (" Performance counter stats for 'x' (5 runs):\n\n"
            "    69,759,925,617      instructions   #    0.49  insn per cycle           ( +-  0.12% )\n"
            "          1,473.81 Joules power/energy-pkg/                               ( +-  0.45% )\n\n"
            "           50.8588 +- 0.0123 seconds time elapsed  ( +-  0.02% )\n")
    loaded(con, write(tmp_path, "r.txt", text), "perf-stat-text", start="2024-01-01T00:00:00Z")
    rows = {r[5]: r for r in counters(con, "enabled_pct IS NULL")}
    assert rows["instructions"][6] == 69759925617.0 and rows["instructions"][2] == pytest.approx(50.8588)
    assert rows["power/energy-pkg/"][6] == 1473.81


def test_another_start_re_anchors_a_file_loaded_before(con, tmp_path):
    path = write(tmp_path, "i.csv", "     1.000000000,100,,cycles,1000,100.00,,\n")
    loaded(con, path, "perf-stat-csv", start="2024-01-01T00:00:00Z")
    assert load(con, path, start="2024-01-01T00:00:00Z").outcome == "unchanged"
    again = loaded(con, path, "perf-stat-csv", start="2025-06-01T00:00:00Z")
    assert "reloaded with --start 2025-06-01T00:00:00Z (was --start 2024-01-01T00:00:00Z)" in again.message
    assert con.execute("SELECT ts FROM counters").fetchall() == [(datetime(2025, 6, 1, 0, 0, 1),)]
    assert load(con, path).outcome == "unchanged"  # no options given: what is there stays
    assert con.execute("SELECT options FROM files").fetchone()[0] == '{"start": "2025-06-01T00:00:00Z"}'
