"""Done-when check of the foundation: every shared fixture plus a run directory, in one ingest."""

from __future__ import annotations

import shutil

import pytest

from dlwh.ingest.loader import IngestOptions, ingest_paths
from tests.runfactory import make_run

ANCHOR = "2024-01-15T10:00:00+00:00"
POWER_TRACE_DIRS = ("nvidia-smi", "perf", "ipmitool", "powermetrics")


@pytest.mark.slow
def test_power_trace_fixtures_and_a_run_dir_ingest_in_one_call(tmp_path, con, fixtures_dir):
    run = make_run(tmp_path / "run", spans=[{"id": "e0", "start_s": 0, "end_s": 5}])
    paths = [fixtures_dir / d for d in POWER_TRACE_DIRS] + [run]
    # Some fixtures carry only relative times (perf -I, ipmitool sdr): a user anchors them with --start.
    options = IngestOptions(start=ANCHOR)
    results = ingest_paths(con, paths, options)
    by_name = {r.path.name: r for r in results}
    failed = [r.describe() for r in results if r.outcome == "failed"]
    assert not failed, failed
    for folder in POWER_TRACE_DIRS:
        for path in sorted((fixtures_dir / folder).iterdir()):
            result = by_name[path.name]
            assert result.outcome.startswith("loaded"), result.describe()
            assert result.rows > 0, result.describe()
    again = ingest_paths(con, paths, options)
    assert {r.outcome for r in again} <= {"unchanged", "skipped"}
    # every run with power readings has an energy figure
    missing = con.execute(
        "SELECT DISTINCT se.run_id FROM samples s JOIN sensors se USING (sensor_id) "
        "WHERE s.metric IN ('power', 'power_instant') AND s.value IS NOT NULL "
        "AND se.run_id NOT IN (SELECT run_id FROM run_energy)").fetchall()
    assert missing == []


@pytest.mark.slow
def test_the_whole_fixtures_folder_ingests_without_failures(tmp_path, con, fixtures_dir):
    copy = tmp_path / "fixtures"
    shutil.copytree(fixtures_dir, copy)  # a user's folder: everything, including files of other tools
    results = ingest_paths(con, [copy], IngestOptions(start=ANCHOR))
    failed = [r.describe() for r in results if r.outcome == "failed"]
    assert not failed, failed


def test_time_less_fixture_without_anchor_says_how_to_anchor(tmp_path, con, fixtures_dir):
    results = ingest_paths(con, [fixtures_dir / "perf" / "peakler-csv-interval-energy-pkg.csv"])
    assert results[0].outcome == "failed"
    assert "--start" in results[0].message
