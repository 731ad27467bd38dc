"""CodeCarbon emissions.csv: every column set, values against the raw text, power samples, bad files."""

from __future__ import annotations

from datetime import datetime

import pytest

from dlwh.ingest.loader import IngestOptions, ingest_paths

V1_HEADER = ("timestamp,project_name,run_id,duration,emissions,emissions_rate,cpu_power,gpu_power,ram_power,"
             "cpu_energy,gpu_energy,ram_energy,energy_consumed,country_name,country_iso_code,region,cloud_provider,"
             "cloud_region,os,python_version,cpu_count,cpu_model,gpu_count,gpu_model,longitude,latitude,"
             "ram_total_size,tracking_mode,on_cloud")
OLDEST_HEADER = ("timestamp,project_name,duration,emissions,energy_consumed,country_name,country_iso_code,region,"
                 "on_cloud,cloud_provider,cloud_region")


def _row(con, line, file_like="%"):
    return con.execute(
        "SELECT c.* EXCLUDE (run_id, file_sha256) FROM codecarbon_emissions c JOIN files f ON f.sha256 = c.file_sha256 "
        "WHERE c.line = ? AND f.path LIKE ?", [line, file_like]).df().iloc[0].to_dict()


def _energy_j(con, name):
    return con.execute("SELECT energy_j, n_gaps FROM run_energy WHERE sensor_name = ?", [name]).fetchone()


def test_examples_fixture_values(con, fixtures_dir):
    path = fixtures_dir / "codecarbon" / "codecarbon-examples-emissions.csv"
    [result] = ingest_paths(con, [path], IngestOptions(tz="Europe/Paris"))
    assert result.outcome == "loaded" and result.format == "codecarbon-csv", result.describe()
    assert "28 CodeCarbon rows from 18 tracker runs" in result.message
    assert "local times read in zone Europe/Paris (--tz)" in result.message
    first = _row(con, 2)
    # 2024-05-31T10:39:13,codecarbon,409f7ac2-...,355.46638011932373,3.435810400385386e-05,9.665640951000897e-08,
    # 4.1335,0.0215,3.0,0.0001342166896178,8.236909446627563e-05,0.0001882034335533,0.0004047892176375,France,FRA,...
    assert first["ts"] == datetime(2024, 5, 31, 8, 39, 13)          # 10:39:13 CEST
    assert first["codecarbon_run_id"] == first["tracker_run"] == "409f7ac2-203f-4191-9bf4-e3cdf9470de8"
    assert first["duration_s"] == 355.46638011932373
    assert first["emissions_kg"] == 3.435810400385386e-05
    assert first["emissions_rate_kg_per_s"] == 9.665640951000897e-08
    assert (first["cpu_power_w"], first["gpu_power_w"], first["ram_power_w"]) == (4.1335, 0.0215, 3.0)
    assert first["cpu_energy_kwh"] == 0.0001342166896178
    assert first["energy_consumed_kwh"] == 0.0004047892176375
    assert (first["country_iso_code"], first["region"], first["codecarbon_version"]) == ("FRA", "île-de-france", "2.4.3rc1")
    assert (first["cpu_count"], first["cpu_model"], first["ram_total_size_gb"], first["pue"]) == (8.0, "Apple M1", 8.0, 1.0)
    assert first["cloud_provider"] is None and first["tracking_mode"] == "machine" and first["on_cloud"] == "N"
    assert first["intensity_g_per_kwh"] == pytest.approx(3.435810400385386e-05 * 1000 / 0.0004047892176375)
    # line 6: 2024-05-31T10:45:50,codecarbon,,65.38348579406738,,,,0.0208,3.0,,5.41164398111679e-07,...
    sixth = _row(con, 6)
    assert sixth["codecarbon_run_id"] is None and sixth["emissions_kg"] != sixth["emissions_kg"]  # NaN
    assert sixth["gpu_energy_kwh"] == 5.41164398111679e-07 and sixth["cpu_power_w"] != sixth["cpu_power_w"]
    # rows without run_id: lines 4-7 started together (10:45:08 - 23.41 s), line 3 earlier (10:44:29 - 98.5 s)
    groups = con.execute("SELECT line, tracker_run FROM codecarbon_emissions WHERE line BETWEEN 3 AND 7 ORDER BY line"
                         ).fetchall()
    assert groups == [(3, "started 2024-05-31T08:42:50Z")] + [(n, "started 2024-05-31T08:44:44Z") for n in range(4, 8)]
    last = _row(con, 29)
    assert last["gpu_power_w"] == 0.37899999999999995 and last["ram_energy_kwh"] == 9.763548152136537e-08


def test_power_samples_reproduce_codecarbon_energy(con, fixtures_dir):
    ingest_paths(con, [fixtures_dir / "codecarbon" / "codecarbon-examples-emissions.csv"], IngestOptions(tz="UTC"))
    tools = con.execute("SELECT DISTINCT tool FROM sensors").fetchall()
    assert tools == [("codecarbon",)]
    # one-row tracker run: cumulative energy at line 2
    energy, gaps = _energy_j(con, "CodeCarbon cpu (409f7ac2-203f-4191-9bf4-e3cdf9470de8)")
    assert energy == pytest.approx(0.0001342166896178 * 3.6e6, rel=1e-8) and gaps == 0
    # six rows (lines 8-13): the last cumulative values
    energy, gaps = _energy_j(con, "CodeCarbon gpu (8a1d9822-56c9-4c52-8497-5a2e32dd5b03)")
    assert energy == pytest.approx(6.450191602309546e-07 * 3.6e6, rel=1e-6) and gaps == 0
    energy, _ = _energy_j(con, "CodeCarbon ram (b9e7def2-4225-47cb-9f4f-3d786146ba65)")
    assert energy == pytest.approx(0.0019803549496332 * 3.6e6, rel=1e-8)
    # lines 6 and 7 have no cpu_energy: the cpu series ends at line 5 (2.759966143312057e-05 kWh)
    energy, _ = _energy_j(con, "CodeCarbon cpu (started 2024-05-31T10:44:44Z)")
    assert energy == pytest.approx(2.759966143312057e-05 * 3.6e6, rel=1e-6)
    kinds = dict(con.execute("SELECT name, kind FROM sensors WHERE name LIKE '%409f7ac2%'").fetchall())
    assert kinds == {"CodeCarbon cpu (409f7ac2-203f-4191-9bf4-e3cdf9470de8)": "cpu",
                     "CodeCarbon gpu (409f7ac2-203f-4191-9bf4-e3cdf9470de8)": "gpu",
                     "CodeCarbon ram (409f7ac2-203f-4191-9bf4-e3cdf9470de8)": "dram"}


def test_newest_header_fixture(con, fixtures_dir):
    [result] = ingest_paths(con, [fixtures_dir / "codecarbon" / "codecarbon-tests-emissions-valid-headers.csv"],
                            IngestOptions(tz="UTC"))
    assert result.outcome == "loaded", result.describe()
    row = _row(con, 2)
    # 2021-09-23T15:04:51,codecarbon,0a578547-...,test,161.20380687713623,0.0004490989249167,0.0027859076880178,
    # 0.269999999999999,0.0,12.884901888000002,0.0,0,0.00057442898176,0.00057442898176,0.1,Morocco,MAR,...
    assert row["ts"] == datetime(2021, 9, 23, 15, 4, 51) and row["experiment_id"] == "test"
    assert row["duration_s"] == 161.20380687713623 and row["ram_power_w"] == 12.884901888000002
    assert row["ram_energy_kwh"] == 0.00057442898176 and row["water_consumed_l"] == 0.1
    assert (row["cpu_utilization_pct"], row["gpu_utilization_pct"], row["ram_utilization_pct"], row["ram_used_gb"]) == (0, 0, 0, 0)
    assert row["gpu_count"] != row["gpu_count"] and row["wue"] == 0.0 and row["codecarbon_version"] == "2.1.3"
    assert (row["longitude"], row["latitude"], row["country_name"]) == (-7.9084, 33.5932, "Morocco")
    energy, _ = _energy_j(con, "CodeCarbon ram (0a578547-1d6b-4e2f-be0c-7ad10f2f7c97)")
    assert energy == pytest.approx(0.00057442898176 * 3.6e6)


def test_v1_columns_without_version_and_pue(con, tmp_path):
    path = tmp_path / "emissions.csv"
    path.write_text(V1_HEADER + "\n"
                    "2021-05-04T10:00:00,proj,r1,100.0,0.0001,1e-06,20.0,50.0,3.0,0.0005,0.001,0.0001,0.0016,"
                    "Germany,DEU,,,,Linux,3.8.10,8,Intel,1,Tesla V100,13.4,52.5,16.0,machine,N\n"
                    "2021-05-04T10:01:40,proj,r1,200.0,0.0002,1e-06,20.0,50.0,3.0,0.0011,0.0025,0.0002,0.0038,"
                    "Germany,DEU,,,,Linux,3.8.10,8,Intel,1,Tesla V100,13.4,52.5,16.0,machine,N\n")
    [result] = ingest_paths(con, [path], IngestOptions(tz="Europe/Berlin"))
    assert result.outcome == "loaded", result.describe()
    rows = con.execute("SELECT ts, codecarbon_version, pue, gpu_energy_kwh FROM codecarbon_emissions ORDER BY line").fetchall()
    assert rows == [(datetime(2021, 5, 4, 8, 0), None, None, 0.001), (datetime(2021, 5, 4, 8, 1, 40), None, None, 0.0025)]
    energy, gaps = _energy_j(con, "CodeCarbon gpu (r1)")
    assert energy == pytest.approx(0.0025 * 3.6e6) and gaps == 0
    # the second interval averages (0.0025 - 0.001) kWh over 100 s = 54 W
    peak = con.execute("SELECT peak_power_w FROM run_energy WHERE sensor_name = 'CodeCarbon gpu (r1)'").fetchone()[0]
    assert peak == pytest.approx(54.0)


def test_oldest_columns_and_pue_divided_out(con, tmp_path):
    oldest = tmp_path / "old.csv"
    oldest.write_text(OLDEST_HEADER + "\n2020-12-01T12:00:00,p,30.5,0.00002,0.0001,France,FRA,,N,,\n")
    pue = tmp_path / "pue.csv"
    pue.write_text("timestamp,project_name,run_id,duration,emissions,cpu_energy,energy_consumed,pue\n"
                   "2024-01-01T00:00:00+00:00,p,x,100,0.0001,0.0015,0.0015,1.5\n")
    results = ingest_paths(con, [oldest, pue], IngestOptions(tz="UTC"))
    assert [r.outcome for r in results] == ["loaded", "loaded"], [r.describe() for r in results]
    assert results[0].rows == 1  # no per-component energy: a table row, no power samples
    assert con.execute("SELECT count(*) FROM samples s JOIN sensors se USING (sensor_id) WHERE se.run_id = ?",
                       [results[0].run_id]).fetchone()[0] == 0
    assert con.execute("SELECT duration_s, energy_consumed_kwh FROM codecarbon_emissions WHERE codecarbon_run_id IS NULL"
                       ).fetchone() == (30.5, 0.0001)
    energy, _ = _energy_j(con, "CodeCarbon cpu (x)")
    assert energy == pytest.approx(0.0015 / 1.5 * 3.6e6)   # IT energy: CodeCarbon's PUE divided out


@pytest.mark.parametrize("body, message, line", [
    ("", "no rows after the header", 2),
    ("2024-05-31T10:39:13,codecarbon,x,abc,1\n", "duration 'abc' is not a number", 2),
    ("2024-05-31T10:39:13,codecarbon,x,10,1\n2024-05-31T10:39:14,codecarbon,x,11\n", "row has 4 fields, the header 5", 3),
    ("yesterday,codecarbon,x,10,1\n", "timestamp 'yesterday' is not an ISO 8601 time", 2),
    ("2024-05-31T10:39:13,codecarbon,x,,1\n", "row without a duration", 2),
])
def test_bad_files_change_nothing(con, tmp_path, fixtures_dir, body, message, line):
    ingest_paths(con, [fixtures_dir / "codecarbon" / "codecarbon-tests-emissions-valid-headers.csv"])
    counts = lambda: [con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                      for t in ("codecarbon_emissions", "samples", "sensors", "files", "runs")]
    before = counts()
    path = tmp_path / "bad.csv"
    path.write_text("timestamp,project_name,run_id,duration,emissions\n" + body)
    [result] = ingest_paths(con, [path])
    assert result.outcome == "failed" and message in result.message, result.describe()
    assert result.line == line
    assert counts() == before


@pytest.mark.parametrize("tail, cut", [
    ("2024-05-31T10:39:14,codecarbon,x,11,", True),     # cut after a separator
    ("2024-05-31T10:39:14,codecar", True),              # cut inside a field
    ("2024-05-31T10:39:14,codecarbon,x,11,0.00", False),  # complete without its newline
])
def test_cut_last_line_loads_the_complete_rows_and_warns(con, tmp_path, tail, cut):
    path = tmp_path / "emissions.csv"
    path.write_text("timestamp,project_name,run_id,duration,emissions\n2024-05-31T10:39:13,codecarbon,x,10,1\n" + tail)
    [result] = ingest_paths(con, [path], IngestOptions(tz="UTC"))
    rows = con.execute("SELECT count(*) FROM codecarbon_emissions").fetchone()[0]
    if cut:
        assert result.outcome == "loaded-with-warnings", result.describe()
        assert result.message.endswith("line 3 is cut off (the recording stopped mid-line?): skipped")
        assert rows == 1
    else:
        assert result.outcome.startswith("loaded") and "cut off" not in result.message, result.describe()
        assert rows == 2
