"""`dlwh sql`, `dlwh info` and `dlwh migrate`: query the warehouse, describe it, bring its schema up to date."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from dlwh.commands._common import DbOption, friendly_errors
from dlwh.errors import UsageError


def register(app: typer.Typer) -> None:
    """Add `sql`, `info` and `migrate` to the app."""

    @app.command("sql")
    @friendly_errors
    def sql(
        query: str = typer.Argument(..., help="SQL to run, e.g. \"SELECT * FROM run_energy\"."),
        db: Optional[str] = DbOption,
        csv: bool = typer.Option(False, "--csv", help="Print CSV (every row, streamed)."),
        json: bool = typer.Option(False, "--json", help="Print JSON records (every row, streamed)."),
        max_rows: Optional[int] = typer.Option(
            None, "--max-rows", help="Fetch and print at most this many rows (table default 10000; "
                                     "CSV/JSON default all)."),
        write: bool = typer.Option(False, "--write", help="Open the warehouse for writing, so that the SQL may "
                                                          "change it (default: read-only)."),
    ) -> None:
        """Run SQL on the warehouse, read-only unless --write (tables and views: docs/warehouse.md)."""
        from dlwh.warehouse import warehouse
        from dlwh.warehouse.query import check_query, write_query

        if csv and json:
            raise UsageError("choose one of --csv and --json")
        check_query(query)
        with warehouse(db, read_only=not write, create=write) as con:
            note = write_query(con, query, sys.stdout, "csv" if csv else "json" if json else "table", max_rows,
                               read_only=not write)
            sys.stdout.flush()
        if note:
            typer.echo(f"note: {note}", err=True)

    @app.command("info")
    @friendly_errors
    def info(db: Optional[str] = DbOption) -> None:
        """Show the warehouse file, schema version and row counts (read-only)."""
        from dlwh.warehouse import resolve_db_path, warehouse
        from dlwh.warehouse.db import current_version
        from dlwh.warehouse.query import format_frame, run_sql

        with warehouse(db, read_only=True) as con:
            typer.echo(f"warehouse: {resolve_db_path(db)} (schema version {current_version(con)})")
            tables = run_sql(con, "SELECT table_name, estimated_size AS rows FROM duckdb_tables() "
                                  "WHERE schema_name = 'main' ORDER BY table_name")
            typer.echo(format_frame(tables))

    @app.command("migrate")
    @friendly_errors
    def migrate(db: Optional[str] = DbOption) -> None:
        """Bring an existing warehouse's schema up to this dlwh's (read-only commands never do)."""
        from dlwh.warehouse import resolve_db_path
        from dlwh.warehouse.db import upgrade

        before, after = upgrade(db)
        path = resolve_db_path(db)
        if before == after:
            typer.echo(f"warehouse: {path} is up to date (schema version {after})")
        else:
            typer.echo(f"warehouse: {path} migrated from schema version {before} to {after}")
