"""Issue 11, the ingest side: one file's failure never stops a folder, the real cause is shown, and every
table passes one validation boundary (times in a window, finite numbers, physical ranges, integers)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from dlwh.ingest.formats.nvidia_smi import query as nvidia_smi_query
from dlwh.ingest.loader import IngestOptions, format_summary, ingest_paths
from dlwh.ingest.validate import Limits
from tests.conftest import invoke
from tests.runfactory import make_run

NVSMI = "timestamp, power.draw [W], utilization.gpu [%]\n"


def nvsmi(tmp_path: Path, name: str, rows: list[str]) -> Path:
    path = tmp_path / name
    path.write_text(NVSMI + "".join(r + "\n" for r in rows))
    return path


def table_state(con) -> dict:
    """Row count and a hash of every base table (a refused file must leave all of them as they were)."""
    tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = "
                                        "'main' AND table_type = 'BASE TABLE' ORDER BY 1").fetchall()]
    return {t: con.execute(f'SELECT count(*), sum(hash(x)::HUGEINT) FROM "{t}" x').fetchone() for t in tables}


def by_name(results) -> dict:
    return {r.path.name: r for r in results}


GOOD = ["2024/10/30 18:42:33.189, 22.89 W, 10 %", "2024/10/30 18:42:33.239, 22.73 W, 12 %"]


# -- a folder ingest never stops at one file --------------------------------------------------------------

def test_unexpected_exception_is_that_files_internal_error_and_the_next_file_loads(tmp_path, con, monkeypatch):
    # a parser bug (here: a parser that raises what dlwh does not expect) must not stop the folder
    real = nvidia_smi_query.parse

    def buggy(ctx):
        if ctx.path.name == "a-buggy.csv":
            raise KeyError("power.draw")
        return real(ctx)

    monkeypatch.setattr(nvidia_smi_query, "parse", buggy)
    nvsmi(tmp_path, "a-buggy.csv", GOOD)
    nvsmi(tmp_path, "b-good.csv", GOOD[:1])
    before = table_state(con)
    results = by_name(ingest_paths(con, [tmp_path], IngestOptions(tz="UTC")))
    bad = results["a-buggy.csv"]
    assert (bad.outcome, bad.internal, bad.format) == ("failed", True, "nvidia-smi-query")
    assert bad.message == ("internal error: KeyError: 'power.draw' (a bug in dlwh: set DLWH_DEBUG=1 for the "
                           "traceback and report it)")
    assert results["b-good.csv"].outcome == "loaded"
    assert table_state(con)["files"][0] == before["files"][0] + 1  # only the good file
    summary = format_summary(list(results.values()))
    assert summary.splitlines() == ["outcome         format            files  rows",
                                    "internal-error  nvidia-smi-query      1     0",
                                    "loaded          nvidia-smi-query      1     2"]


def test_internal_error_through_the_cli_exits_1_and_debug_prints_the_traceback(tmp_path, runner, monkeypatch):
    monkeypatch.setattr(nvidia_smi_query, "parse", lambda ctx: 1 / 0)
    path = nvsmi(tmp_path, "gpu.csv", GOOD)
    db = str(tmp_path / "w.duckdb")
    result = invoke(runner, "ingest", str(path), "--db", db, "--tz", "UTC", env={"DLWH_DEBUG": ""})
    assert result.exit_code == 1
    assert (f"{path}: failed (nvidia-smi-query): internal error: ZeroDivisionError: division by zero (a bug in "
            "dlwh: set DLWH_DEBUG=1 for the traceback and report it)") in result.stderr.splitlines()
    assert result.stderr.splitlines()[-1] == ("error: 1 file(s) failed (listed above), 1 of them on an internal "
                                              "error (a bug in dlwh: rerun with DLWH_DEBUG=1 and report it); "
                                              "the rest loaded and the failed ones changed nothing")
    assert "Traceback" not in result.stderr
    debug = invoke(runner, "ingest", str(path), "--db", db, "--tz", "UTC", env={"DLWH_DEBUG": "1"})
    assert debug.exit_code == 1
    assert "Traceback (most recent call last)" in debug.stderr and "ZeroDivisionError" in debug.stderr
    assert "internal error: ZeroDivisionError: division by zero (a bug in dlwh: traceback above and report it)" \
        in debug.stderr


def test_the_real_cause_not_an_aborted_transaction(tmp_path, con):
    # a second spans file of the same run repeating a span id: DuckDB's constraint error is shown, and the
    # cleanup after it (staging view, parser scratch) no longer hides it behind "transaction is aborted"
    run = make_run(tmp_path / "run", spans=[{"id": "e0", "start_s": 0, "end_s": 5}])
    assert {r.outcome for r in ingest_paths(con, [run])} == {"loaded"}
    first = json.loads((run / "spans.jsonl").read_text().splitlines()[0])
    (run / "more-spans.jsonl").write_text(json.dumps({**first, "span_id": "e9"}) + "\n" + json.dumps(first) + "\n")
    before = table_state(con)
    result = ingest_paths(con, [run / "more-spans.jsonl"])[-1]
    assert result.outcome == "failed"
    assert result.message == ("duplicate key (run_id: run-1, span_id: e0): the warehouse already holds it from "
                              "another file, or the file repeats it")
    assert "aborted" not in result.message
    assert table_state(con) == before


# -- validation at one boundary ---------------------------------------------------------------------------

def test_nan_power_is_refused_and_run_energy_stays_a_number(tmp_path, con):
    good = make_run(tmp_path / "good", run_id="good", power=lambda s: 200.0)
    bad = make_run(tmp_path / "bad", run_id="bad", power=lambda s: math.nan if 2.0 <= s < 2.05 else 200.0,
                   energy_counter=False)
    results = ingest_paths(con, [tmp_path])
    nvml = [r for r in results if r.path.name == "nvml.csv" and r.path.parent.name == "bad"][0]
    assert nvml.outcome == "failed"
    assert nvml.message == "power of nvml:gpu0 is nan W at 2026-11-21 10:00:02 UTC: not a finite number"
    energies = dict(con.execute("SELECT run_id, energy_j FROM run_energy").fetchall())
    assert not any(v is not None and math.isnan(v) for v in energies.values())
    assert "good" in energies and energies["good"] == pytest.approx(2000.0, rel=0.02)
    assert con.execute("SELECT count(*) FROM samples WHERE isnan(value)").fetchone()[0] == 0


@pytest.mark.parametrize("row, message", [
    ("2024/10/30 18:42:33.289, -5.00 W, 10 %",
     "power of gpu is -5.0 W at 2024-10-30 18:42:33.289 UTC; must be within 0.0..5000.0 W"),
    ("2024/10/30 18:42:33.289, 1e300 W, 10 %",
     "power of gpu is 1e+300 W at 2024-10-30 18:42:33.289 UTC; must be within 0.0..5000.0 W"),
    ("2024/10/30 18:42:33.289, 22.00 W, 150 %",
     "utilization_gpu of gpu is 150.0 % at 2024-10-30 18:42:33.289 UTC; must be within 0.0..100.0 %"),
    ("2024/10/30 18:42:33.289, inf W, 10 %",
     "power of gpu is inf W at 2024-10-30 18:42:33.289 UTC: not a finite number"),
])
def test_impossible_readings_refuse_the_file_and_change_nothing(tmp_path, con, row, message):
    path = nvsmi(tmp_path, "gpu.csv", GOOD + [row])
    before = table_state(con)
    result = ingest_paths(con, [path], IngestOptions(tz="UTC"))[0]
    assert (result.outcome, result.message) == ("failed", message)
    assert table_state(con) == before


def test_na_markers_stay_null_and_load(tmp_path, con):
    path = nvsmi(tmp_path, "gpu.csv", GOOD + ["2024/10/30 18:42:33.289, [N/A], [N/A]"])
    result = ingest_paths(con, [path], IngestOptions(tz="UTC"))[0]
    assert result.outcome.startswith("loaded")
    assert con.execute("SELECT count(*) FILTER (WHERE value IS NULL), count(*) FROM samples").fetchone() == (2, 6)


def test_a_far_off_local_time_is_refused_at_its_line_without_walking_the_years(tmp_path, con):
    # a node's clock before NTP: 1970. Before: the zone planner walked 56 years in 15-minute steps (10 s)
    path = nvsmi(tmp_path, "gpu.csv", GOOD + ["1970/01/01 00:00:07.000, 22.00 W, 10 %"] + GOOD)
    result = ingest_paths(con, [path], IngestOptions(tz="Europe/Berlin"))[0]
    assert result.outcome == "failed"
    assert result.line == 4
    assert result.message.startswith("the local time of '1970/01/01 00:00:07.000, 22.00 W, 10 %' is outside "
                                     "2000-01-01 00:00 .. ")
    assert result.message.endswith(" UTC; a clock not yet set, or a damaged line? (DLWH_INGEST_TS_MIN / "
                                   "DLWH_INGEST_TS_MAX widen the window)")
    for year in ("9999", "0001"):
        path = nvsmi(tmp_path, f"gpu{year}.csv", GOOD + [f"{year}/10/30 18:42:33.289, 22.00 W, 10 %"])
        far = ingest_paths(con, [path], IngestOptions(tz="Europe/Berlin"))[0]
        assert (far.outcome, far.line) == ("failed", 4)


def test_the_time_window_is_configurable(tmp_path, con, monkeypatch):
    path = nvsmi(tmp_path, "gpu.csv", ["1999/12/31 23:00:00.000, 22.00 W, 10 %"])
    assert ingest_paths(con, [path], IngestOptions(tz="UTC"))[0].outcome == "failed"
    monkeypatch.setenv("DLWH_INGEST_TS_MIN", "1990-01-01")
    assert ingest_paths(con, [path], IngestOptions(tz="UTC"))[0].outcome == "loaded"
    options = IngestOptions(tz="UTC", limits=Limits(ts_min=Limits.ts_min))
    path2 = nvsmi(tmp_path, "gpu2.csv", ["1999/12/31 23:00:00.000, 22.00 W, 11 %"])
    assert ingest_paths(con, [path2], options)[0].outcome == "failed"
    monkeypatch.setenv("DLWH_INGEST_TS_MIN", "last tuesday")
    from dlwh.errors import UsageError
    with pytest.raises(UsageError, match=r"^DLWH_INGEST_TS_MIN='last tuesday' is not an ISO 8601 date or time "
                                         r"such as 2000-01-01$"):
        Limits.from_env()


def test_an_energy_counter_going_down_is_refused(tmp_path, con):
    run = make_run(tmp_path / "run")
    lines = (run / "nvml.csv").read_text().splitlines()
    cells = lines[30].split(",")
    cells[7] = "1000"  # energy_total_mj far below the rows before it
    lines[30] = ",".join(cells)
    (run / "nvml.csv").write_text("\n".join(lines) + "\n")
    result = by_name(ingest_paths(con, [run]))["nvml.csv"]
    assert result.outcome == "failed"
    assert result.message.startswith("energy counter of nvml:gpu0 goes down at 2026-11-21 10:00:02.900000 UTC (from ")
    assert result.message.endswith("a counter never runs backwards within one recording; the file is damaged "
                                   "or joins two recordings (split it there)")


def test_spans_with_infinite_or_huge_monotonic_times_are_refused_at_their_line(tmp_path, con):
    run = make_run(tmp_path / "run", spans=[{"id": "e0", "start_s": 0, "end_s": 5},
                                            {"id": "e1", "start_s": 5, "end_s": 9}])
    lines = (run / "spans.jsonl").read_text().splitlines()
    for value, message in (("Infinity", "end_mono_ns 'inf' is not a whole number of nanoseconds"),
                           ("1e300", "end_mono_ns '1e+300' is not a whole number of nanoseconds"),
                           ("18446744073709551616", "not valid JSON lines (Value is too big! at position 430)")):
        second = json.loads(lines[1])
        text = json.dumps(second).replace(str(second["end_mono_ns"]), value)
        (run / "spans.jsonl").write_text(lines[0] + "\n" + text + "\n")
        result = by_name(ingest_paths(con, [run]))["spans.jsonl"]
        assert (result.outcome, result.line, result.message) == ("failed", 2, message)


@pytest.mark.parametrize("field, value, message", [
    ("timezone", True, "manifest timezone is true, not text"),
    ("timezone", "Mars/Olympus", "manifest timezone 'Mars/Olympus' is not a time zone (an IANA name such as "
                                 "Europe/Berlin, or an offset such as +01:00)"),
    ("exit_code", 2**40, "manifest exit_code 1099511627776 is not an exit code"),
    ("start_utc", "1970-01-01T00:00:00Z", None),
])
def test_run_json_of_the_wrong_types_is_refused(tmp_path, con, field, value, message):
    run = make_run(tmp_path / "run")
    manifest = json.loads((run / "run.json").read_text())
    manifest[field] = value
    (run / "run.json").write_text(json.dumps(manifest))
    result = by_name(ingest_paths(con, [run / "run.json"]))["run.json"]
    assert result.outcome == "failed"
    if message:
        assert result.message == message
    else:
        assert result.message.startswith("start_utc 1970-01-01 00:00:00 UTC is outside 2000-01-01 00:00 .. ")


def test_a_number_of_5000_digits_is_refused_at_its_line(tmp_path, con):
    run = make_run(tmp_path / "run")
    text = (run / "run.json").read_text().replace('"exit_code": 0', '"exit_code": ' + "9" * 5000)
    (run / "run.json").write_text(text)
    result = by_name(ingest_paths(con, [run / "run.json"]))["run.json"]
    assert result.outcome == "failed"
    assert result.message.startswith("run.json holds a value that is not a plain number (Exceeds the limit (4300 "
                                     "digits) for integer string conversion")


def test_a_line_of_10000_spaces_in_powermetrics_output_reads_in_linear_time(fixtures_dir, tmp_path, con):
    # before: > 5 minutes of regular-expression backtracking
    text = (fixtures_dir / "powermetrics" / "codecarbon-m1-macbookair.txt").read_text()
    text = text.replace("\n\n", "\n" + " " * 10_000 + "\n", 1).replace("CPU Power", "CPU" + " " * 10_000 + "Power", 1)
    path = tmp_path / "pm.txt"
    path.write_text(text)
    result = ingest_paths(con, [path])[0]
    assert result.outcome.startswith("loaded"), result.describe()
    assert result.rows == 270


def test_zone_plan_over_56_years_finds_every_repeated_hour():
    # walked a day at a time (15-minute steps only on days whose offset changes): 56 years in well under
    # a second, where the 15-minute walk took 10 s; the answer is the same
    from datetime import datetime
    from zoneinfo import ZoneInfo

    offset, folds = nvidia_smi_query.zone_plan(ZoneInfo("Europe/Berlin"), datetime(1970, 1, 1), datetime(2026, 1, 1))
    assert offset is None and len(folds) == 46
    assert folds[-1] == (datetime(2025, 10, 26, 2, 0), datetime(2025, 10, 26, 3, 0), folds[-1][2])
    assert nvidia_smi_query.zone_plan(ZoneInfo("Europe/Berlin"), datetime(2024, 11, 1), datetime(2024, 12, 1))[0] \
        is not None
