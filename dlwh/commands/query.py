"""`dlwh sql` and `dlwh info`: query the warehouse."""

from __future__ import annotations

from typing import Optional

import typer

from dlwh.commands._common import DbOption, friendly_errors
from dlwh.errors import UsageError


def register(app: typer.Typer) -> None:
    """Add `sql` and `info` to the app."""

    @app.command("sql")
    @friendly_errors
    def sql(
        query: str = typer.Argument(..., help="SQL to run, e.g. \"SELECT * FROM run_energy\"."),
        db: Optional[str] = DbOption,
        csv: bool = typer.Option(False, "--csv", help="Print CSV."),
        json: bool = typer.Option(False, "--json", help="Print JSON records."),
        max_rows: Optional[int] = typer.Option(None, "--max-rows", help="Show at most this many rows (table output)."),
    ) -> None:
        """Run SQL on the warehouse (tables and views: docs/warehouse.md)."""
        from dlwh.warehouse import open_warehouse
        from dlwh.warehouse.query import format_frame, run_sql

        if csv and json:
            raise UsageError("choose one of --csv and --json")
        con = open_warehouse(db)
        try:
            frame = run_sql(con, query)
        finally:
            con.close()
        typer.echo(format_frame(frame, "csv" if csv else "json" if json else "table", max_rows))

    @app.command("info")
    @friendly_errors
    def info(db: Optional[str] = DbOption) -> None:
        """Show the warehouse file, schema version and row counts."""
        from dlwh.warehouse import open_warehouse, resolve_db_path
        from dlwh.warehouse.db import current_version
        from dlwh.warehouse.query import format_frame, run_sql

        con = open_warehouse(db)
        try:
            typer.echo(f"warehouse: {resolve_db_path(db)} (schema version {current_version(con)})")
            tables = run_sql(con, "SELECT table_name, estimated_size AS rows FROM duckdb_tables() "
                                  "WHERE schema_name = 'main' ORDER BY table_name")
            typer.echo(format_frame(tables))
        finally:
            con.close()
