"""The DuckDB path for ``perf stat -x, -I`` files gives exactly what the pandas path gives.

``perf_stat_csv`` builds counters and RAPL samples of interval-only files in SQL
(``_perf_interval_sql``); every other perf file goes through ``_perf_common.build_trace`` in pandas.
Each case here is ingested both ways into fresh warehouses and the tables are compared row for row.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dlwh.ingest.formats.perf import stat_csv as perf_stat_csv
from dlwh.ingest.loader import IngestOptions, ingest_paths
from dlwh.warehouse import open_warehouse

TABLES = {
    "counters": "SELECT * EXCLUDE (file_sha256) FROM counters",
    "samples": "SELECT * EXCLUDE (file_sha256) FROM samples",
    "sensors": "SELECT * EXCLUDE (file_sha256) FROM sensors",
    "runs": "SELECT run_id, start_ts, end_ts FROM runs",
    "files": "SELECT format, rows_loaded, outcome, message FROM files",
}

CASES = {
    # appended runs, each with its '# started on' line; blank lines; a run whose time goes backwards
    "runs": ("# started on Mon Oct 28 10:00:00 2024\n\n"
             "     1.000100000,1000,,cycles,1000000000,100.00,,\n"
             "     1.000100000,5.00,Joules,power/energy-pkg/,1000000000,100.00,,\n"
             "     2.000200000,1100,,cycles,1000000000,100.00,,\n"
             "     2.000200000,6.00,Joules,power/energy-pkg/,1000000000,100.00,,\n"
             "# started on Mon Oct 28 11:00:00 2024\n\n"
             "     0.500000000,2000,,cycles,500000000,100.00,,\n"
             "     0.500000000,3.00,Joules,power/energy-pkg/,500000000,100.00,,\n"
             "     0.250000000,3000,,cycles,250000000,100.00,,\n"
             "     0.250000000,1.00,Joules,power/energy-pkg/,250000000,100.00,,\n",
             {"tz": "UTC", "start": "2024-01-01T00:00:00"}),
    # per-socket RAPL with a CPU count, metric columns, not counted / not supported
    "sockets": ("     1.000000000,S0,1,10.50,Joules,power/energy-pkg/,1000000000,100.00,,\n"
                "     1.000000000,S1,1,11.25,Joules,power/energy-pkg/,1000000000,100.00,,\n"
                "     1.000000000,S0,8,123456,,cycles,8000000000,100.00,0.01,GHz\n"
                "     1.000000000,S1,8,<not counted>,,cycles,0,0.00,,\n"
                "     1.000000000,S0,1,<not supported>,Joules,power/energy-ram/,0,0.00,,\n"
                "     2.000000000,S0,1,10.00,Joules,power/energy-pkg/,1000000000,100.00,,\n"
                "     2.000000000,S1,1,12.00,Joules,power/energy-pkg/,1000000000,100.00,,\n"
                "     2.000000000,S0,8,654321,,cycles,8000000000,100.00,0.01,GHz\n"
                "     2.000000000,S0,1,1.25,Joules,power/energy-ram/,1000000000,100.00,,\n",
                {"start": "2024-10-30T18:42:33", "tz": "Europe/Berlin"}),
    # unequal intervals whose midpoints and ends fall on microsecond ties (rounded half to even),
    # hybrid PMUs, a metric-only line, a RAPL event in the wrong unit (kept in counters only, with a warning)
    "ties": ("     0.100000500,5.00,Joules,power/energy-pkg/,100000000,100.00,,\n"
             "     0.100000500,77,,cpu_core/cycles/,100000000,100.00,,\n"
             "     0.100000500,66,,cpu_atom/cycles/,100000000,100.00,,\n"
             "     0.100000500,,,,,,1.17,insn per cycle\n"
             "     0.100000500,9.00,mJ,power/energy-cores/,100000000,100.00,,\n"
             "     0.200001500,4.00,Joules,power/energy-pkg/,100000000,100.00,,\n"
             "     0.200001500,78,,cpu_core/cycles/,100000000,100.00,,\n"
             "     0.300002500,3.00,Joules,power/energy-pkg/,100000000,100.00,,\n"
             "     0.450003500,7.50,Joules,power/energy-pkg/,150000000,100.00,,\n",
             {"start": "2024-01-01T00:00:00Z"}),
    # per-CPU labels, events without RAPL, an anchor from a '# started on' line only
    "cpus": ("# started on Fri May 16 23:03:33 2025\n"
             "     1.001000000,CPU0,1234,,cycles,1000000,100.00,,\n"
             "     1.001000000,CPU1,2345,,cycles,1000000,100.00,,\n"
             "     2.002000000,CPU0,1300,,cycles,1000000,100.00,,\n"
             "     2.002000000,CPU1,<not counted>,,cycles,0,0.00,,\n", {"tz": "America/New_York"}),
    # what `perf stat -o f -x, -I 100` writes: a '# started on' head, then 8 fields per line
    "headed": ("# started on Fri May 16 23:03:33 2025\n\n"
               "     0.100123456,5.00,Joules,power/energy-pkg/,100000000,100.00,,\n"
               "     0.100123456,77,,cycles,100000000,100.00,0.5,GHz\n"
               "     0.200234567,4.00,Joules,power/energy-pkg/,100000000,100.00,,\n"
               "     0.200234567,78,,cycles,100000000,100.00,0.5,GHz\n", {"tz": "Europe/Berlin"}),
    # 8 fields per line with a <not counted> value: DuckDB's reader takes it (the value is read as text)
    "not-counted": ("     0.100000000,5.00,Joules,power/energy-pkg/,100000000,100.00,,\n"
                    "     0.100000000,<not counted>,,cycles,0,0.00,,\n"
                    "     0.100000000,<not supported>,Joules,power/energy-ram/,0,0.00,,\n"
                    "     0.200000000,4.00,Joules,power/energy-pkg/,100000000,100.00,,\n"
                    "     0.200000000,1234,,cycles,100000000,100.00,,\n", {"start": "2024-01-01T00:00:00Z"}),
    # --per-thread labels (command-pid)
    "threads": ("     1.000000000,python-4242,1234,,cycles,1000000,100.00,,\n"
                "     1.000000000,python-4243,2345,,cycles,1000000,100.00,,\n"
                "     2.000000000,python-4242,1300,,cycles,1000000,100.00,0.01,GHz\n", {"start": "2024-01-01T00:00:00Z"}),
}
# the files DuckDB's CSV reader lays out (8 fields on every line after a head of comments)
READER_CASES = {"ties", "headed", "not-counted", "sockets", "cpus", "threads"}

FIXTURES = ["peakler-csv-interval-energy-pkg.csv", "raplvalidation-csv-I100-pmu-uncore-rapl.csv"]


# (FORCE_PANDAS, USE_CSV_READER): the reference (pandas over lines split in Python), then the DuckDB build
# over the same lines, then over DuckDB's CSV reader (where the file allows it)
CONFIGS = ((True, False), (False, False), (False, True))


def _ingest_all(tmp_path: Path, monkeypatch, path: Path, options: dict) -> list[dict]:
    out = []
    for force_pandas, csv_reader in CONFIGS:
        monkeypatch.setattr(perf_stat_csv, "FORCE_PANDAS", force_pandas)
        monkeypatch.setattr(perf_stat_csv, "USE_CSV_READER", csv_reader)
        con = open_warehouse(tmp_path / f"{path.stem}-{force_pandas}-{csv_reader}.duckdb")
        (result,) = ingest_paths(con, [path], IngestOptions(**options))
        assert result.outcome.startswith("loaded"), result.describe()
        out.append({name: sorted(con.execute(sql).fetchall(), key=repr) for name, sql in TABLES.items()})
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchall() == [(0,)]
        con.close()
    return out


def _ingest_both(tmp_path: Path, monkeypatch, path: Path, options: dict) -> tuple[dict, dict]:
    """(the reference, the DuckDB build), after checking that every DuckDB variant equals the reference."""
    reference, *variants = _ingest_all(tmp_path, monkeypatch, path, options)
    for variant in variants:
        _assert_same(reference, variant)
    return reference, variants[-1]


def _assert_same(pandas_path: dict, sql_path: dict) -> None:
    for name in TABLES:
        assert sql_path[name] == pandas_path[name], name


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_interval_files_same_both_ways(tmp_path, monkeypatch, case):
    text, options = CASES[case]
    path = tmp_path / f"{case}.csv"
    path.write_text(text, encoding="utf-8")
    by_pandas, by_sql = _ingest_both(tmp_path, monkeypatch, path, options)
    assert by_sql["counters"], "nothing loaded"
    _assert_same(by_pandas, by_sql)


def _refusals(tmp_path: Path, monkeypatch, path: Path, options: IngestOptions) -> list[tuple]:
    """(outcome, line, message) of ingesting ``path`` by each path of CONFIGS; each must load nothing."""
    seen = []
    for force_pandas, csv_reader in CONFIGS:
        monkeypatch.setattr(perf_stat_csv, "FORCE_PANDAS", force_pandas)
        monkeypatch.setattr(perf_stat_csv, "USE_CSV_READER", csv_reader)
        con = open_warehouse(tmp_path / f"w-{force_pandas}-{csv_reader}.duckdb")
        (result,) = ingest_paths(con, [path], options)
        assert con.execute("SELECT count(*) FROM counters").fetchone() == (0,)
        seen.append((result.outcome, result.line, result.message))
        con.close()
    return seen


def test_unanchored_run_refused_at_the_same_line_both_ways(tmp_path, monkeypatch):
    text, _ = CASES["runs"]
    path = tmp_path / "runs.csv"
    path.write_text(text, encoding="utf-8")
    seen = _refusals(tmp_path, monkeypatch, path, IngestOptions(tz="UTC"))
    assert seen[0] == seen[1] == seen[2] and seen[0][:2] == ("failed", 11)


@pytest.mark.parametrize("case", sorted(CASES))
def test_csv_reader_used_where_the_file_allows(tmp_path, monkeypatch, case):
    text, options = CASES[case]
    path = tmp_path / f"{case}.csv"
    path.write_text(text, encoding="utf-8")
    used = []
    read_typed = perf_stat_csv._read_typed

    def spy(*args):
        offset, labels, head = read_typed(*args)
        used.append(offset is not None)
        return offset, labels, head

    monkeypatch.setattr(perf_stat_csv, "_read_typed", spy)
    con = open_warehouse(tmp_path / "w.duckdb")
    (result,) = ingest_paths(con, [path], IngestOptions(**options))
    assert result.outcome.startswith("loaded")
    assert used == [case in READER_CASES]


GOOD = "     0.100000000,77,,cycles,100000000,100.00,,\n"
BAD_FILES = {
    "numeric-event": GOOD + "     0.100000000,78,,12345,100000000,100.00,,\n" + GOOD,
    "no-value": GOOD + GOOD + "     0.200000000,,,cycles,100000000,100.00,,\n",
    "no-event": GOOD + "     0.200000000,5,,,100000000,100.00,,\n",
    "nine-fields": GOOD + "     0.200000000,5,,cycles,100000000,100.00,,,\n",
    "text-value": GOOD + "     0.200000000,lots,,cycles,100000000,100.00,,\n",
    "unknown-label": "     0.100000000,CPU0,77,,cycles,100000000,100.00,,\n"
                     "     0.100000000,#1,77,,cycles,100000000,100.00,,\n",
    "socket-bad-count": "     0.100000000,S0,1,77,,cycles,100000000,100.00,,\n"
                        "     0.100000000,S1,x,77,,cycles,100000000,100.00,,\n",
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_lines_refused_alike_by_every_path(tmp_path, monkeypatch, case):
    path = tmp_path / f"{case}.csv"
    path.write_text(BAD_FILES[case], encoding="utf-8")
    seen = _refusals(tmp_path, monkeypatch, path, IngestOptions(start="2024-01-01T00:00:00Z"))
    assert seen[0][0] == "failed" and seen[0][1] is not None
    assert seen[0] == seen[1] == seen[2]


@pytest.mark.parametrize("tail, cut", [
    ("     9.000000000,5,,cycles,100000000,100.00,,", False),   # complete without its line end
    ("     9.000000000,5,,cycles,100000000,100.0", True),       # cut inside a field
    ("     9.000000000,5,,cyc", True),                          # cut: fields missing
])
def test_last_line_without_line_end_alike_by_every_path(tmp_path, monkeypatch, tail, cut):
    # 2,000 lines (past the 64 KiB head), so that DuckDB's CSV reader is tried too
    body = "".join(f"     {i / 1000 + 0.001:.9f},{i},,cycles,100000000,100.00,,\n" for i in range(2000))
    path = tmp_path / "log.csv"
    path.write_text(body + tail, encoding="utf-8")
    by_pandas, by_sql = _ingest_both(tmp_path, monkeypatch, path, {"start": "2024-01-01T00:00:00Z"})
    assert len(by_sql["counters"]) == (2000 if cut else 2001)
    (_, _, outcome, message), = by_sql["files"]
    if cut:
        assert outcome == "loaded-with-warnings"
        assert message.endswith("line 2001 is cut off (the recording stopped mid-line?): skipped")
    else:
        assert outcome == "loaded", message


@pytest.mark.slow
def test_the_warning_and_the_runs_are_kept(tmp_path, monkeypatch):
    text, options = CASES["ties"]
    path = tmp_path / "ties.csv"
    path.write_text(text, encoding="utf-8")
    _, by_sql = _ingest_both(tmp_path, monkeypatch, path, options)
    (fmt, rows, outcome, message), = by_sql["files"]
    assert outcome == "loaded-with-warnings" and "power/energy-cores/ is in 'mJ', not Joules" in message
    # 4 energy + 4 midpoint power + 2 edge samples of energy-pkg; ties at .0000005 s rounded to even
    samples = [r for r in by_sql["samples"] if r[2] == "power" and r[5] is None]
    assert len(samples) == 2


@pytest.mark.slow
@pytest.mark.parametrize("name", FIXTURES)
def test_interval_fixtures_same_both_ways(tmp_path, monkeypatch, fixtures_dir, name):
    by_pandas, by_sql = _ingest_both(tmp_path, monkeypatch, fixtures_dir / "perf" / name,
                                     {"start": "2024-10-30T18:42:33Z"})
    assert by_sql["samples"]
    _assert_same(by_pandas, by_sql)


@pytest.mark.slow
def test_benchmark_layout_same_both_ways(tmp_path, monkeypatch):
    """The generated file of benchmarks/bench_ingest.py, 20,000 lines."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_ingest", Path(__file__).resolve().parent.parent / "benchmarks" / "bench_ingest.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    path = bench.make_perf_csv(20_000, tmp_path / "perf.csv")
    by_pandas, by_sql = _ingest_both(tmp_path, monkeypatch, path, {"start": "2026-11-21T10:15:00Z"})
    assert len(by_sql["counters"]) == 20_000
    _assert_same(by_pandas, by_sql)
