"""The warehouse file: creation, migrations, refusing newer schemas, DLWH_DB, opening from plain duckdb."""

from __future__ import annotations

import duckdb
import pytest

from dlwh.errors import WarehouseError
from dlwh.warehouse import SCHEMA_VERSION, open_warehouse, resolve_db_path
from dlwh.warehouse.db import _migrations, current_version
from tests.conftest import invoke


def test_new_file_gets_every_migration(db_path):
    con = open_warehouse(db_path)
    assert current_version(con) == SCHEMA_VERSION
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"runs", "run_tags", "files", "sensors", "samples", "counters", "spans",
            "run_energy", "span_energy", "sample_gaps"} <= tables
    con.close()


def test_older_warehouse_is_migrated(db_path):
    version, name, sql = _migrations()[0]
    con = duckdb.connect(str(db_path))
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMP)")
    con.execute(sql)
    con.execute("INSERT INTO schema_version VALUES (?, ?, now())", [version, name])
    con.execute("INSERT INTO runs (run_id, source) VALUES ('old-run', 'file')")
    con.close()
    con = open_warehouse(db_path)
    assert current_version(con) == SCHEMA_VERSION
    assert con.execute("SELECT run_id FROM runs").fetchall() == [("old-run",)]
    assert con.execute("SELECT count(*) FROM run_energy").fetchone()[0] == 0
    con.close()


def test_newer_warehouse_is_refused_with_a_clear_message(db_path, runner):
    con = open_warehouse(db_path)
    con.execute("INSERT INTO schema_version VALUES (?, 'future', now())", [SCHEMA_VERSION + 5])
    con.close()
    with pytest.raises(WarehouseError, match="newer than this dlwh"):
        open_warehouse(db_path)
    result = invoke(runner, "sql", "SELECT 1", "--db", str(db_path))
    assert result.exit_code != 0
    assert "newer than this dlwh understands" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_dlwh_db_environment_variable(tmp_path, monkeypatch, runner):
    target = tmp_path / "env.duckdb"
    monkeypatch.setenv("DLWH_DB", str(target))
    assert resolve_db_path(None) == target
    result = invoke(runner, "sql", "SELECT 42 AS answer", env={"DLWH_DB": str(target)})
    assert (result.exit_code, result.stderr) == (1, f"error: no warehouse at {target}; run dlwh ingest first\n")
    assert not target.exists()  # a read-only command makes no file
    open_warehouse(target).close()
    result = invoke(runner, "sql", "SELECT 42 AS answer", env={"DLWH_DB": str(target)})
    assert result.exit_code == 0, result.stderr
    assert "42" in result.stdout


def test_default_path_is_dlwh_duckdb(monkeypatch):
    monkeypatch.delenv("DLWH_DB", raising=False)
    assert str(resolve_db_path(None)) == "dlwh.duckdb"


def test_not_a_duckdb_file_is_one_line_error(tmp_path, runner):
    junk = tmp_path / "junk.duckdb"
    junk.write_bytes(b"this is not a database" * 100)
    result = invoke(runner, "sql", "SELECT 1", "--db", str(junk))
    assert result.exit_code != 0
    assert result.stderr.startswith("error:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_plain_duckdb_client_sees_tables_and_views(db_path):
    open_warehouse(db_path).close()
    con = duckdb.connect(str(db_path), read_only=True)
    assert con.execute("SELECT count(*) FROM span_energy").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM run_energy").fetchone()[0] == 0
    con.close()


def _catalog(con) -> dict:
    """Everything a schema holds, for comparing two warehouses."""
    return {
        "tables": con.execute("SELECT table_name, column_name, data_type FROM information_schema.columns "
                              "ORDER BY ALL").fetchall(),
        "macros": con.execute("SELECT function_name FROM duckdb_functions() WHERE NOT internal "
                              "ORDER BY ALL").fetchall(),
        "versions": con.execute("SELECT version, name FROM schema_version ORDER BY version").fetchall(),
        "zoo": con.execute("SELECT count(*) FROM model_complexity").fetchall(),
        "intensity": con.execute("SELECT count(*) FROM carbon_intensity_yearly").fetchall(),
    }


@pytest.mark.slow
def test_new_warehouse_from_the_cached_template_equals_one_migrated_in_place(tmp_path, monkeypatch):
    from datetime import datetime, timedelta, timezone

    from dlwh.warehouse import db

    monkeypatch.setenv("DLWH_CACHE_DIR", str(tmp_path / "cache"))
    first = open_warehouse(tmp_path / "a.duckdb")  # makes the template, then copies it
    template = db._template_path()
    assert template is not None and template.is_file()
    second = open_warehouse(tmp_path / "b.duckdb")  # copies it
    monkeypatch.setenv("DLWH_CACHE_DIR", "off")
    assert db._template_path() is None
    in_place = open_warehouse(tmp_path / "c.duckdb")
    assert _catalog(first) == _catalog(second) == _catalog(in_place)
    applied = second.execute("SELECT min(applied_at) FROM schema_version").fetchone()[0]
    assert abs(applied - datetime.now(timezone.utc).replace(tzinfo=None)) < timedelta(minutes=1)  # this warehouse's time, not the template's
    second.execute("INSERT INTO runs (run_id, source) VALUES ('r1', 'file')")
    assert first.execute("SELECT count(*) FROM runs").fetchone() == (0,)  # copies, not one file


def test_a_broken_template_is_replaced_and_the_warehouse_still_made(tmp_path, monkeypatch):
    from dlwh.warehouse import db

    monkeypatch.setenv("DLWH_CACHE_DIR", str(tmp_path / "cache"))
    template = db._template_path()
    template.parent.mkdir(parents=True)
    template.write_bytes(b"not a duckdb file")
    con = open_warehouse(tmp_path / "w.duckdb")
    assert con.execute("SELECT max(version) FROM schema_version").fetchone() == (db.SCHEMA_VERSION,)
    assert not template.exists() or template.read_bytes()[:4] != b"not "


def test_memory_limit_from_the_environment(db_path, monkeypatch, runner):
    monkeypatch.setenv("DLWH_MEMORY_LIMIT", "1500MB")
    con = open_warehouse(db_path)
    limit = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    con.close()
    assert limit.replace(" ", "").upper() in ("1.3GIB", "1.4GIB", "1.5GB", "1430.5MIB", "1.3GB")
    monkeypatch.setenv("DLWH_MEMORY_LIMIT", "lots")
    result = invoke(runner, "sql", "SELECT 1", "--db", str(db_path))
    assert result.exit_code == 2 and "DLWH_MEMORY_LIMIT='lots' is not a size" in result.stderr
