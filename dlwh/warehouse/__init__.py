"""The DuckDB warehouse: schema, migrations and queries.

Open it with ``with warehouse(db, read_only=True) as con:`` and change it with
``with transaction(con):``; DuckDB's errors become dlwh's in ``dlwh.warehouse.errors.translate``.
"""

from dlwh.warehouse.db import (
    DEFAULT_DB,
    SCHEMA_VERSION,
    Transaction,
    open_warehouse,
    resolve_db_path,
    transaction,
    warehouse,
)

__all__ = ["DEFAULT_DB", "SCHEMA_VERSION", "Transaction", "open_warehouse", "resolve_db_path", "transaction",
           "warehouse"]
