"""The loader: idempotency, replacement, one transaction per file, bad input, dry run, CLI output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from dlwh.ingest.loader import IngestOptions, ingest_paths
from tests.conftest import ROOT, invoke
from tests.runfactory import make_run

DATA_TABLES = ("runs", "run_tags", "files", "sensors", "samples", "counters", "spans")


def snapshot(con) -> dict:
    """Every row of every data table (to prove that a failure changed nothing)."""
    return {t: sorted(map(repr, con.execute(f"SELECT * FROM {t}").fetchall())) for t in DATA_TABLES}


def outcomes(results) -> dict[str, str]:
    return {r.path.name: r.outcome for r in results}


def test_ingest_twice_changes_nothing(tmp_path, con):
    run = make_run(tmp_path / "run", spans=[{"id": "e0", "start_s": 0, "end_s": 5}])
    first = ingest_paths(con, [run])
    assert outcomes(first) == {"run.json": "loaded", "nvml.csv": "loaded", "spans.jsonl": "loaded"}
    before = snapshot(con)
    second = ingest_paths(con, [tmp_path])
    assert set(outcomes(second).values()) == {"unchanged"}
    assert snapshot(con) == before


def test_changed_file_replaces_what_it_loaded(tmp_path, con):
    run = make_run(tmp_path / "run", power=lambda s: 100.0)
    ingest_paths(con, [run])
    assert con.execute("SELECT energy_j FROM run_energy WHERE metric='power'").fetchone()[0] == pytest.approx(1000)
    make_run(tmp_path / "run", power=lambda s: 200.0)
    results = ingest_paths(con, [run])
    assert outcomes(results)["nvml.csv"] == "loaded"
    assert "replaced an earlier version" in [r for r in results if r.path.name == "nvml.csv"][0].message
    assert con.execute("SELECT count(*) FROM sensors").fetchone()[0] == 1
    assert con.execute("SELECT energy_j FROM run_energy WHERE metric='power'").fetchone()[0] == pytest.approx(2000)
    assert con.execute("SELECT count(*) FROM files").fetchone()[0] == 2  # run.json, nvml.csv (spans empty)


def test_run_and_tags_come_from_the_manifest(tmp_path, con):
    run = make_run(tmp_path / "run", run_id="r42", tags={"model": "resnet50", "batch_size": 64})
    ingest_paths(con, [run / "nvml.csv"])  # the manifest beside it is loaded too
    assert con.execute("SELECT run_id, host, command, exit_code, timezone FROM runs").fetchall() == [
        ("r42", "testhost", "python train.py", 0, "Europe/Berlin")]
    assert dict(con.execute("SELECT key, value FROM run_tags").fetchall()) == {"model": "resnet50", "batch_size": "64"}


def _bad_files(folder: Path) -> dict[str, bytes]:
    header = (b"timestamp_utc,monotonic_ns,gpu_index,gpu_uuid,power_w\n")
    good = b"2026-11-21T10:00:00.000000Z,1,0,GPU-0,100\n2026-11-21T10:00:00.100000Z,2,0,GPU-0,101\n"
    return {
        "empty.csv": b"",
        "not-json.jsonl": b'{"span_id": "a", "kind": "epoch", "name": "e", "start_utc": "2026-11-21T10:00:00Z", '
                          b'"end_utc": "2026-11-21T10:00:01Z"}\n{"span_id": "b", "kind": "epo\n',
        "junk.bin": os.urandom(4096),
        "wrong-columns.csv": header + good + b"2026-11-21T10:00:00.200000Z,3,0,GPU-0,102,999,888\n",
        "bad-time.csv": header + b"yesterday,1,0,GPU-0,100\n",
    }


@pytest.mark.parametrize("name", ["empty.csv", "not-json.jsonl", "junk.bin", "wrong-columns.csv", "bad-time.csv"])
def test_bad_file_is_one_clear_error_and_changes_nothing(tmp_path, db_path, con, runner, name):
    ingest_paths(con, [make_run(tmp_path / "good")])
    before = snapshot(con)
    con.close()
    bad = tmp_path / name
    bad.write_bytes(_bad_files(tmp_path)[name])
    result = invoke(runner, "ingest", str(bad), "--db", str(db_path))
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert errors[0].startswith(str(bad)), result.stderr
    assert "failed" in errors[0]
    assert errors[-1].startswith("error: 1 file(s) failed")
    assert "Traceback" not in result.stdout + result.stderr
    con2 = duckdb.connect(str(db_path))
    assert snapshot(con2) == before
    con2.close()


def test_error_messages_say_what_is_wrong(tmp_path, con):
    for name, data in _bad_files(tmp_path).items():
        (tmp_path / name).write_bytes(data)
    results = {r.path.name: r for r in ingest_paths(con, [tmp_path / n for n in _bad_files(tmp_path)])}
    assert results["empty.csv"].message == "empty file"
    assert "not valid JSON lines" in results["not-json.jsonl"].message and results["not-json.jsonl"].line == 2
    assert "binary" in results["junk.bin"].message
    assert results["wrong-columns.csv"].message == "wrong number of columns (expected 5, found 6)"
    assert results["wrong-columns.csv"].line == 4
    assert "not an ISO 8601 time" in results["bad-time.csv"].message


def test_folder_lists_unknown_files_as_skipped_and_loads_the_rest(tmp_path, con):
    make_run(tmp_path / "run")
    (tmp_path / "notes.txt").write_text("just some notes\n")
    (tmp_path / "bad.jsonl").write_text('{"span_id": "x", "kind": "epoch", "start_utc": "soon"}\n')
    results = outcomes(ingest_paths(con, [tmp_path]))
    assert results["notes.txt"] == "skipped"
    assert results["bad.jsonl"] == "failed"
    assert results["nvml.csv"] == "loaded"


def test_dry_run_changes_nothing_and_reports_rows(tmp_path, con):
    run = make_run(tmp_path / "run")
    before = snapshot(con)
    results = ingest_paths(con, [run], IngestOptions(dry_run=True))
    assert {r.outcome for r in results} <= {"would-load", "skipped"}
    assert [r.rows for r in results if r.path.name == "nvml.csv"][0] > 100
    assert snapshot(con) == before


def test_cli_summary_table_and_sql(tmp_path, db_path, runner):
    run = make_run(tmp_path / "run", spans=[{"id": "e0", "start_s": 0, "end_s": 5}])
    result = invoke(runner, "ingest", str(run), "--db", str(db_path))
    assert result.exit_code == 0, result.stderr
    assert "outcome" in result.stdout and "dlwh-nvml" in result.stdout
    out = invoke(runner, "sql", "SELECT round(energy_j) AS e FROM span_energy WHERE metric = 'power'",
                 "--db", str(db_path), "--csv")
    assert out.stdout.strip().splitlines() == ["e", "500.0"]
    out = invoke(runner, "sql", "SELECT run_id FROM runs", "--db", str(db_path), "--json")
    assert '"run_id":"run-1"' in out.stdout.replace(" ", "")
    bad = invoke(runner, "sql", "SELEC nonsense", "--db", str(db_path))
    assert bad.exit_code == 1 and bad.stderr.startswith("error: SQL error")


def test_missing_path_is_a_clear_error(tmp_path, db_path, runner):
    result = invoke(runner, "ingest", str(tmp_path / "nope"), "--db", str(db_path))
    assert result.exit_code != 0
    assert result.stderr.strip() == f"error: no such file or folder: {tmp_path / 'nope'}; check the path"


def test_bad_tag_and_bad_tz_are_usage_errors(tmp_path, db_path, runner):
    run = make_run(tmp_path / "run")
    result = invoke(runner, "ingest", str(run), "--db", str(db_path), "--tag", "novalue")
    assert result.exit_code == 2 and "is not key=value" in result.stderr


@pytest.mark.slow
def test_killed_mid_ingest_leaves_the_warehouse_as_it_was(tmp_path, db_path):
    """A process killed (SIGKILL) while loading a large file leaves no partial rows."""
    con = duckdb.connect(str(db_path))
    con.close()
    from dlwh.warehouse import open_warehouse

    con = open_warehouse(db_path)
    ingest_paths(con, [make_run(tmp_path / "small")])
    before = snapshot(con)
    con.close()
    big = make_run(tmp_path / "big", run_id="big", seconds=3000.0, interval_s=0.05, gpus=2)
    script = (f"import sys; sys.path.insert(0, {str(ROOT)!r});"
              "from dlwh.warehouse import open_warehouse; from dlwh.ingest.loader import ingest_paths;"
              f"con = open_warehouse({str(db_path)!r}); print('start', flush=True);"
              f"ingest_paths(con, [{str(big)!r}]); print('done', flush=True)")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "start"
    time.sleep(0.4)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    con = open_warehouse(db_path)
    after = snapshot(con)
    loaded_big = con.execute("SELECT count(*) FROM files WHERE run_id = 'big' AND format = 'dlwh-nvml'").fetchone()[0]
    if loaded_big:  # the process finished the file before the kill: then the load is whole
        assert con.execute("SELECT count(*) FROM samples s JOIN sensors USING (sensor_id) "
                           "WHERE run_id = 'big' AND metric = 'power'").fetchone()[0] == 2 * 60001
    else:
        assert {k: v for k, v in after.items() if k not in ("runs", "files", "run_tags")} == \
            {k: v for k, v in before.items() if k not in ("runs", "files", "run_tags")}
    con.close()


def test_tags_given_again_reach_a_run_loaded_before(tmp_path, con):
    """Re-running an ingest with --tag tags the runs of unchanged files (nothing else changes)."""
    run = make_run(tmp_path / "run", run_id="r7", tags={"model": "resnet50"})
    ingest_paths(con, [run])
    before = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall() for t in ("samples", "spans", "files")}
    again = [r for r in ingest_paths(con, [run], IngestOptions(tags={"power_limit_w": "200", "model": "resnet18"}))
             if r.outcome != "skipped"]
    assert again and {r.outcome for r in again} == {"unchanged"}
    assert all("tags applied to its run" in r.message for r in again)
    assert dict(con.execute("SELECT key, value FROM run_tags WHERE run_id = 'r7'").fetchall()) == \
        {"model": "resnet18", "power_limit_w": "200"}
    assert {t: con.execute(f"SELECT count(*) FROM {t}").fetchall() for t in before} == before
    dry = ingest_paths(con, [run], IngestOptions(tags={"note": "x"}, dry_run=True))
    assert {r.outcome for r in dry} <= {"unchanged", "skipped"}
    assert con.execute("SELECT count(*) FROM run_tags WHERE key = 'note'").fetchone() == (0,)


SPAN = b'{"span_id": "%s", "kind": "epoch", "name": "e", "start_utc": "2026-11-21T10:00:00Z", "end_utc": "2026-11-21T10:00:01Z"}'
NVML = (b"timestamp_utc,monotonic_ns,gpu_index,gpu_uuid,power_w\n"
        b"2026-11-21T10:00:00.000000Z,1,0,GPU-0,100\n2026-11-21T10:00:00.100000Z,2,0,GPU-0,101\n")


@pytest.mark.parametrize("name, data, kept", [
    ("cut.jsonl", SPAN % b"a" + b'\n{"span_id": "b", "kind": "epo', 1),
    ("whole.jsonl", SPAN % b"a" + b"\n" + SPAN % b"b", 2),
    ("cut.csv", NVML + b"2026-11-21T10:00:00.200000Z,3,0,GP", 2),
    ("cut-value.csv", NVML + b"2026-11-21T10:00:00.200000Z,3,0,GPU-0,", 2),
    ("whole.csv", NVML + b"2026-11-21T10:00:00.200000Z,3,0,GPU-0,102", 3),
])
def test_a_recording_cut_mid_line_loads_every_complete_line(tmp_path, con, name, data, kept):
    path = tmp_path / name
    path.write_bytes(data)
    (result,) = ingest_paths(con, [path])
    table = "spans" if name.endswith(".jsonl") else "samples"
    assert con.execute(f"SELECT count(*) FROM {table}").fetchone() == (kept,)
    if name.startswith("whole"):   # complete without its last newline
        assert result.outcome == "loaded", result.describe()
    else:
        assert result.outcome == "loaded-with-warnings", result.describe()
        line = data.count(b"\n") + 1
        assert result.message.endswith(f"line {line} is cut off (the recording stopped mid-line?): skipped")
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchone() == (0,)
