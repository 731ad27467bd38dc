"""One way to open and change the warehouse: warehouse()/transaction(), read-only commands, DuckDB's
errors in one line, `dlwh sql` (read-only unless --write, streamed, quiet on a closed pipe)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import duckdb
import pytest

from dlwh.errors import DlwhError, UsageError, WarehouseError
from dlwh.warehouse import SCHEMA_VERSION, open_warehouse, transaction, warehouse
from dlwh.warehouse.db import _migrations, current_version
from dlwh.warehouse.errors import translate
from dlwh.warehouse.query import NO_QUERY, format_frame, write_query
from tests.conftest import ROOT, invoke

CLI = [sys.executable, "-c", "from dlwh.cli import main; main()"]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _with_table(db_path):
    with warehouse(db_path) as con:
        con.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text VARCHAR)")
        con.execute("INSERT INTO notes (id, text) VALUES (1, 'one')")


# -- warehouse() and transaction() ------------------------------------------------------------------

def test_warehouse_yields_a_migrated_connection_and_closes_it(db_path):
    with warehouse(db_path) as con:
        assert current_version(con) == SCHEMA_VERSION
    with pytest.raises(duckdb.ConnectionException):
        con.execute("SELECT 1")


def test_warehouse_create_false_refuses_a_missing_file(tmp_path):
    path = tmp_path / "missing.duckdb"
    with pytest.raises(WarehouseError) as err:
        with warehouse(path, create=False):
            pass
    assert str(err.value) == f"no warehouse at {path}; run dlwh ingest first"
    assert not path.exists()


def test_a_duckdb_error_in_the_body_leaves_as_one_line(db_path):
    with pytest.raises(DlwhError) as err:
        with warehouse(db_path) as con:
            con.execute("SELECT * FROM no_such_table")
    assert str(err.value) == "DuckDB error: Catalog Error: Table with name no_such_table does not exist!"
    assert isinstance(err.value.__cause__, duckdb.CatalogException)


def test_transaction_commits(db_path):
    _with_table(db_path)
    with warehouse(db_path) as con:
        with transaction(con):
            con.execute("INSERT INTO notes (id, text) VALUES (2, 'two')")
        assert con.execute("SELECT count(*) FROM notes").fetchone() == (2,)


def test_transaction_rolls_back_first_and_re_raises_the_first_error(db_path):
    _with_table(db_path)
    con = open_warehouse(db_path)
    cleaned = []
    with pytest.raises(duckdb.ConstraintException, match="Duplicate key"):
        try:
            with transaction(con):
                con.execute("INSERT INTO notes (id, text) VALUES (2, 'two')")
                con.execute("INSERT INTO notes (id, text) VALUES (1, 'again')")  # aborts the transaction
        finally:
            # cleanup after the block runs on a rolled-back connection, so it cannot hide the cause
            con.execute("CREATE OR REPLACE TEMP VIEW scratch AS SELECT 1")
            cleaned.append(con.execute("DROP VIEW scratch").fetchall())
    assert cleaned
    assert con.execute("SELECT id, text FROM notes").fetchall() == [(1, "one")]
    con.close()


def test_transaction_rolls_back_on_a_python_error(db_path):
    _with_table(db_path)
    with warehouse(db_path) as con:
        with pytest.raises(ZeroDivisionError):
            with transaction(con):
                con.execute("DELETE FROM notes")
                1 / 0
        assert con.execute("SELECT count(*) FROM notes").fetchone() == (1,)


def test_transaction_rollback_on_purpose_commits_nothing(db_path):
    _with_table(db_path)
    with warehouse(db_path) as con:
        with transaction(con) as tx:
            con.execute("DELETE FROM notes")
            tx.rollback()  # a dry run
        assert not tx.active
        assert con.execute("SELECT count(*) FROM notes").fetchone() == (1,)


# -- read-only commands ------------------------------------------------------------------------------

@pytest.mark.slow
def test_typo_in_the_warehouse_path_is_an_error_and_makes_no_file(db_path, tmp_path, runner):
    open_warehouse(db_path).close()
    typo = tmp_path / "test.duckbd"
    for args in (["sql", "SELECT 1"], ["info"], ["predict", "--power-limit", "200", "--model", "resnet50"],
                 ["plot", "macs", "--out", str(tmp_path / "p.png")], ["report", "--out", str(tmp_path / "r.html")]):
        result = invoke(runner, *args, "--db", str(typo))
        assert (result.exit_code, result.stderr) == (1, f"error: no warehouse at {typo}; run dlwh ingest first\n"), args
    assert not typo.exists()


def test_info_on_a_missing_directory_creates_nothing(tmp_path, runner):
    path = tmp_path / "nonexistent" / "dir" / "x.duckdb"
    result = invoke(runner, "info", "--db", str(path))
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == f"error: no warehouse at {path}; run dlwh ingest first\n"
    assert not (tmp_path / "nonexistent").exists()


def test_read_only_commands_open_the_file_read_only(db_path):
    open_warehouse(db_path).close()
    with warehouse(db_path, read_only=True) as con:
        with pytest.raises(duckdb.InvalidInputException, match="read-only"):
            con.execute("CREATE TABLE t (a INTEGER)")


def _older_warehouse(db_path):
    version, name, sql = _migrations()[0]
    con = duckdb.connect(str(db_path))
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMP)")
    con.execute(sql)
    con.execute("INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, now())", [version, name])
    con.close()
    return version


@pytest.mark.slow
def test_read_only_commands_do_not_migrate_an_older_warehouse_and_migrate_does(db_path, runner):
    old = _older_warehouse(db_path)
    before = db_path.read_bytes()
    result = invoke(runner, "info", "--db", str(db_path))
    assert result.exit_code == 1
    assert result.stderr == (f"error: the warehouse {db_path} has schema version {old}, older than this dlwh's "
                             f"({SCHEMA_VERSION}); run dlwh migrate --db {db_path} (or any dlwh ingest) to bring "
                             "it up to date\n")
    assert db_path.read_bytes() == before
    result = invoke(runner, "migrate", "--db", str(db_path))
    assert (result.exit_code, result.stdout) == (
        0, f"warehouse: {db_path} migrated from schema version {old} to {SCHEMA_VERSION}\n")
    result = invoke(runner, "migrate", "--db", str(db_path))
    assert result.stdout == f"warehouse: {db_path} is up to date (schema version {SCHEMA_VERSION})\n"
    assert invoke(runner, "info", "--db", str(db_path)).exit_code == 0


def test_migrate_refuses_a_missing_warehouse(tmp_path, runner):
    path = tmp_path / "none.duckdb"
    result = invoke(runner, "migrate", "--db", str(path))
    assert (result.exit_code, result.stderr) == (1, f"error: no warehouse at {path}; run dlwh ingest first\n")
    assert not path.exists()


# -- dlwh sql ----------------------------------------------------------------------------------------

def test_sql_is_read_only_unless_write(db_path, runner):
    _with_table(db_path)
    result = invoke(runner, "sql", "DROP TABLE notes", "--db", str(db_path))
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == ('error: dlwh sql opens the warehouse read-only and DROP would change it; '
                             'pass --write to allow changes\n')
    with warehouse(db_path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM notes").fetchone() == (1,)
    result = invoke(runner, "sql", "DROP TABLE notes", "--write", "--db", str(db_path))
    assert result.exit_code == 0, result.stderr
    with warehouse(db_path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'notes'"
                           ).fetchone() == (0,)


@pytest.mark.parametrize("query", ["", "   \n", "/* nothing here */", " -- only a comment", ";"])
def test_empty_or_comment_only_sql_is_a_usage_error(db_path, runner, query):
    open_warehouse(db_path).close()
    result = invoke(runner, "sql", query, "--db", str(db_path))
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"error: {NO_QUERY}\n"
    assert NO_QUERY == ('no SQL statement to run (the query is empty or only comments); '
                        'e.g. dlwh sql "SELECT * FROM run_energy"')


def test_sql_errors_are_one_line(db_path, runner):
    open_warehouse(db_path).close()
    result = invoke(runner, "sql", "SELECT nope FROM runs", "--db", str(db_path))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: SQL error: Binder Error: Referenced column \"nope\" not found")
    assert len(result.stderr.splitlines()) == 1


def test_max_rows_prints_that_many_and_says_there_are_more(db_path, runner):
    open_warehouse(db_path).close()
    result = invoke(runner, "sql", "SELECT i FROM range(1000000) t(i)", "--max-rows", "3", "--db", str(db_path))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split() == ["i", "0", "1", "2"]
    assert result.stderr == ("note: showing the first 3 rows; there are more (raise --max-rows, or use --csv / "
                             "--json for all)\n")
    result = invoke(runner, "sql", "SELECT i FROM range(3) t(i)", "--max-rows", "3", "--db", str(db_path))
    assert (result.stdout.split(), result.stderr) == (["i", "0", "1", "2"], "")
    result = invoke(runner, "sql", "SELECT i FROM range(5) t(i)", "--max-rows", "2", "--csv", "--db", str(db_path))
    assert result.stdout == "i\n0\n1\n" and result.stderr.startswith("note: showing the first 2 rows")


QUERY = ("SELECT i, i * 0.5 AS half, 'sensor-' || (i % 7) AS name, "
         "CASE WHEN i % 5 = 0 THEN NULL ELSE i END AS maybe, "
         "TIMESTAMP '2026-01-01 00:00:00' + to_seconds(i) AS ts FROM range(150000) t(i)")


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_streamed_output_equals_the_whole_result_formatted_at_once(fmt):
    con = duckdb.connect()
    whole = format_frame(con.execute(QUERY).df(), fmt) + "\n"
    out = io.StringIO()
    assert write_query(con, QUERY, out, fmt) is None
    assert out.getvalue() == whole  # 150,000 rows: two chunks
    if fmt == "json":
        assert len(json.loads(out.getvalue())) == 150_000
    empty = io.StringIO()
    write_query(con, "SELECT 1 AS a WHERE false", empty, fmt)
    assert empty.getvalue() == ("a\n" if fmt == "csv" else "[]\n")


def _write_warehouse(db_path):
    open_warehouse(db_path).close()
    return db_path


@pytest.mark.slow
@pytest.mark.parametrize("fmt", [["--max-rows", "100000"], ["--csv"], ["--json"]])
def test_a_closed_pipe_ends_quietly(db_path, fmt):
    _write_warehouse(db_path)
    proc = subprocess.Popen([*CLI, "sql", "SELECT i, 'x' AS s FROM range(3000000) t(i)", "--db", str(db_path), *fmt],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    first = proc.stdout.readline()
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0
    assert first.strip()
    # a table is written at once: it may fit the pipe's buffer, and then its note on stderr still comes
    assert err in ("", "note: showing the first 100000 rows; there are more (raise --max-rows, or use --csv / "
                       "--json for all)\n")


@pytest.mark.slow
def test_sql_piped_to_head_through_a_shell(db_path):
    _write_warehouse(db_path)
    cmd = " ".join(CLI[:2]) + " 'from dlwh.cli import main; main()'"
    shell = subprocess.run(["bash", "-c", f"set -o pipefail; {cmd} sql 'SELECT * FROM range(3000000)' --csv "
                                          f"--db {db_path} | head -2"],
                           capture_output=True, text=True, env=_env(), timeout=120)
    assert (shell.returncode, shell.stdout, shell.stderr) == (0, "range\n0\n", "")
    # outside a command too: help text into a closed pipe (click/rich would exit 1)
    shell = subprocess.run(["bash", "-c", f"set -o pipefail; {cmd} --help | head -1 > /dev/null; echo $?; "
                                          f"{cmd} sql 'SELECT 1' --db {db_path.parent / 'none.duckdb'} > /dev/null"],
                           capture_output=True, text=True, env=_env(), timeout=120)
    assert shell.stdout == "0\n"
    assert shell.returncode == 1  # a real failure with stdout on /dev/null is still one


HOLD = """
import sys, time
from dlwh.warehouse import open_warehouse
con = open_warehouse(sys.argv[1], read_only=sys.argv[2] == 'ro')
print('ready', flush=True)
sys.stdin.read()
con.close()
"""


def _holder(db_path, mode):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(db_path), mode], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=_env(), text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.slow
def test_several_readers_at_once(db_path):
    _with_table(db_path)
    holder = _holder(db_path, "ro")
    try:
        readers = [subprocess.Popen([*CLI, "sql", "SELECT count(*) AS n FROM notes", "--csv", "--db", str(db_path)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), text=True)
                   for _ in range(2)]
        for args in (["info"], ["report", "--out", str(db_path.parent / "r.html")],
                     ["predict", "--power-limit", "200", "--model", "resnet50"]):
            readers.append(subprocess.Popen([*CLI, *args, "--db", str(db_path)],
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), text=True))
        outs = [p.communicate(timeout=300) for p in readers]
    finally:
        holder.communicate("", timeout=30)
    assert [p.returncode for p in readers] == [0, 0, 0, 0, 1], outs
    assert outs[0] == ("n\n1\n", "") and outs[1] == ("n\n1\n", "")
    assert outs[2][0].startswith(f"warehouse: {db_path} (schema version {SCHEMA_VERSION})")
    assert outs[3][0] == f"report: {db_path.parent / 'r.html'}\n"
    # not a lock error: predict got in and found nothing to predict with (two of them used to fail with
    # 'Could not set lock')
    assert outs[4] == ("", "error: no fitted models in this warehouse; run dlwh fit first\n")


@pytest.mark.slow
def test_a_warehouse_held_by_a_writer_is_named_in_one_line(db_path):
    _with_table(db_path)
    holder = _holder(db_path, "rw")
    try:
        reader = subprocess.run([*CLI, "sql", "SELECT 1", "--db", str(db_path)], capture_output=True, text=True,
                                env=_env(), timeout=120)
    finally:
        holder.communicate("", timeout=30)
    assert (reader.returncode, reader.stdout) == (1, "")
    assert reader.stderr == (f"error: the warehouse {db_path} is in use by another dlwh process (PID {holder.pid}); "
                             "wait for it or use another --db\n")


def test_translate_names_the_kind_of_trouble():
    lock = duckdb.IOException('IO Error: Could not set lock on file "/d/w.duckdb": Conflicting lock is held in '
                              '/usr/bin/python3 (PID 4242) by user me. See also https://duckdb.org/docs/connect')
    assert str(translate(lock)) == ("the warehouse /d/w.duckdb is in use by another dlwh process (PID 4242); "
                                    "wait for it or use another --db")
    assert isinstance(translate(lock), WarehouseError)
    parser = duckdb.ParserException('Parser Error: syntax error at or near "SELEC"\n\nLINE 1: SELEC 1\n        ^')
    assert str(translate(parser, sql=True)) == 'SQL error: Parser Error: syntax error at or near "SELEC"'
    assert str(translate(parser)) == 'DuckDB error: Parser Error: syntax error at or near "SELEC"'
    read_only = duckdb.InvalidInputException('Invalid Input Error: Cannot execute statement of type "INSERT" on '
                                             'database "w" which is attached in read-only mode!')
    assert isinstance(translate(read_only, sql=True), UsageError)
    oom = duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block of size 256 KiB")
    assert str(translate(oom)) == ("out of memory in DuckDB (could not allocate block of size 256 KiB); set "
                                   "DLWH_MEMORY_LIMIT (e.g. 4GiB) to spill to disk, or narrow the query")


def test_duckdb_errors_reaching_the_cli_are_translated(capsys):
    import typer

    from dlwh.commands._common import friendly_errors

    @friendly_errors
    def command():
        duckdb.connect().execute("SELECT * FROM missing_table")

    with pytest.raises(typer.Exit) as code:
        command()
    assert code.value.exit_code == 1
    assert capsys.readouterr().err == ("error: DuckDB error: Catalog Error: Table with name missing_table does not "
                                       "exist!\n")


# -- the CLI itself ----------------------------------------------------------------------------------

def test_version_and_short_help(runner):
    from dlwh import __version__

    result = invoke(runner, "--version")
    assert (result.exit_code, result.stdout) == (0, f"dlwh {__version__}\n")
    for args in (["-h"], ["sql", "-h"], ["models", "-h"], ["models", "list", "-h"], ["carbon", "set", "-h"]):
        result = invoke(runner, *args)
        assert result.exit_code == 0, (args, result.stderr)
        assert "Usage: " in result.stdout, args


def test_read_only_sql_in_a_process_that_holds_the_warehouse_for_writing(con, db_path, runner):
    """DuckDB shares one instance per file and process: a read-only open reuses the writable one, and
    `dlwh sql` refuses writes itself."""
    con.execute("INSERT INTO runs (run_id, source) VALUES ('r1', 'file')")
    result = invoke(runner, "sql", "SELECT run_id FROM runs", "--csv", "--db", str(db_path))
    assert (result.exit_code, result.stdout) == (0, "run_id\nr1\n")
    result = invoke(runner, "sql", "SELECT 1; DELETE FROM runs", "--db", str(db_path))
    assert (result.exit_code, result.stderr) == (
        2, "error: dlwh sql opens the warehouse read-only and DELETE would change it; pass --write to allow changes\n")
    assert con.execute("SELECT count(*) FROM runs").fetchone() == (1,)
    result = invoke(runner, "sql", "DELETE FROM runs", "--write", "--db", str(db_path))
    assert result.exit_code == 0, result.stderr
    assert con.execute("SELECT count(*) FROM runs").fetchone() == (0,)


def test_every_insert_names_its_columns():
    """INSERTs name their columns, so that a new column or a reordered table never shifts values.
    The two landed migrations that insert reference rows by position are never edited (see DEVELOPERS.md)."""
    import re

    unnamed = re.compile(r'INSERT\s+(?:OR\s+REPLACE\s+)?INTO\s+("?[\w{}]+"?)\s+(?!\(|BY\s+NAME)', re.I)
    landed = {"0004_analysis.sql", "0005_carbon.sql"}
    found = []
    for path in sorted((ROOT / "dlwh").rglob("*")):
        if path.suffix not in (".py", ".sql") or path.name in landed:
            continue
        for match in unnamed.finditer(path.read_text(encoding="utf-8")):
            found.append(f"{path.relative_to(ROOT)}: {match.group(0).strip()}")
    assert found == []


def test_max_rows_reads_no_further_than_it_shows():
    """Rows after the first million raise: a table of 20 rows (or 10,000 by default) never reaches them."""
    con = duckdb.connect()
    query = ("SELECT CASE WHEN i < 1000000 THEN i ELSE error('read too far') END AS i "
             "FROM range(100000000) t(i)")
    for fmt, max_rows in (("table", 20), ("csv", 20), ("table", None)):
        out = io.StringIO()
        assert write_query(con, query, out, fmt, max_rows).startswith("showing the first")
    with pytest.raises(DlwhError, match="read too far"):
        write_query(con, query, io.StringIO(), "csv")


@pytest.mark.parametrize("query", ["SELECT 1 AS a; -- end", "SELECT 1 AS a -- end", "SELECT 1 AS a /* c; */ ;;  ",
                                   "WITH t AS (SELECT 1 AS a) FROM t;"])
def test_csv_of_a_select_ending_in_semicolons_or_comments(query):
    con = duckdb.connect()
    for max_rows in (None, 5):
        out = io.StringIO()
        assert write_query(con, query, out, "csv", max_rows) is None
        assert out.getvalue() == "a\n1\n"


def test_csv_of_other_statements_and_of_types_pandas_lacks():
    con = duckdb.connect()
    out = io.StringIO()
    write_query(con, "PRAGMA version", out, "csv")
    assert out.getvalue().startswith("library_version,source_id,codename\nv")
    out = io.StringIO()
    write_query(con, "SELECT true AS b, 1.5::DECIMAL(4, 2) AS d, [1, 2] AS l, NULL AS n", out, "csv")
    assert out.getvalue() == 'b,d,l,n\ntrue,1.50,"[1, 2]",\n'


def test_ingest_dry_run_makes_no_warehouse(tmp_path, runner):
    trace = tmp_path / "n.csv"
    trace.write_text("timestamp, power.draw [W]\n2024/01/01 10:00:00.000, 100.0 W\n")
    path = tmp_path / "sub" / "x.duckdb"
    result = invoke(runner, "ingest", "--dry-run", str(trace), "--db", str(path), "--tz", "UTC")
    assert result.exit_code == 0, result.stderr
    assert f"would load into {path}" in result.stdout and "would-load" in result.stdout
    assert not (tmp_path / "sub").exists()
