"""The DuckDB warehouse: schema, migrations and queries."""

from dlwh.warehouse.db import DEFAULT_DB, SCHEMA_VERSION, open_warehouse, resolve_db_path

__all__ = ["DEFAULT_DB", "SCHEMA_VERSION", "open_warehouse", "resolve_db_path"]
