"""Write model complexity into the warehouse: the shipped zoo table, fresh profiles, user imports.

Imports neither torch nor duckdb (it works on the connection it is given). Tables: model_complexity,
model_ops, model_layers, zoo_models, model_aliases (dlwh/warehouse/sql/0003_models.sql).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Iterator

from dlwh.models.complexity import MAC_OPERATORS
from dlwh.models.registry import ALIASES, list_models
from dlwh.models.table import read_zoo_table

if TYPE_CHECKING:
    import duckdb

    from dlwh.models.complexity import ModelProfile


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _sql(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[tuple]:
    """Run one statement and fetch its result (DuckDB wants results consumed before the next one)."""
    return con.execute(sql, params).fetchall() if params is not None else con.execute(sql).fetchall()


@contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    from dlwh.warehouse.db import transaction  # the warehouse's own (imported late: db imports this module)

    with transaction(con):
        yield


_SHIPPED = """
    SELECT unnest(?::VARCHAR[]) AS model, unnest(?::VARCHAR[]) AS input_desc,
           unnest(?::BIGINT[]) AS macs_per_sample, unnest(?::BIGINT[]) AS params,
           unnest(?::VARCHAR[]) AS fvcore_version, unnest(?::BIGINT[]) AS fvcore_flops_per_sample,
           unnest(?::VARCHAR[]) AS unsupported_ops
"""
_SHIPPED_DIFFERS = """
    c.macs_per_sample IS DISTINCT FROM s.macs_per_sample OR c.params IS DISTINCT FROM s.params
    OR c.fvcore_version IS DISTINCT FROM s.fvcore_version
    OR c.fvcore_flops_per_sample IS DISTINCT FROM s.fvcore_flops_per_sample
    OR c.unsupported_ops::VARCHAR IS DISTINCT FROM s.unsupported_ops
"""


def seed_zoo_complexity(con: duckdb.DuckDBPyConnection) -> int:
    """Bring the warehouse's zoo rows up to the shipped table; returns how many rows changed.

    Inserts the shipped counts not yet present (source 'zoo', batch size 1), refreshes 'zoo' rows
    whose shipped values changed, and fills zoo_models and model_aliases from the registry. Rows
    from a profile ('fvcore') or an import are never touched. Idempotent; writes nothing (so works
    on a read-only connection) when everything is already there. Does not import torch.
    """
    rows = read_zoo_table()
    shipped = [
        [r.model for r in rows],
        [r.input_desc for r in rows],
        [r.macs_per_sample for r in rows],
        [r.params for r in rows],
        [r.fvcore_version for r in rows],
        [r.fvcore_flops_per_sample for r in rows],
        [json.dumps(r.unsupported_ops, sort_keys=True) for r in rows],
    ]
    specs = list_models()
    zoo = [[s.name for s in specs], [s.kind for s in specs], [s.default_input_desc for s in specs],
           [s.description for s in specs]]
    aliases = [list(ALIASES), list(ALIASES.values())]
    zoo_sql = ("SELECT unnest(?::VARCHAR[]) AS model, unnest(?::VARCHAR[]) AS kind, "
               "unnest(?::VARCHAR[]) AS default_input, unnest(?::VARCHAR[]) AS description")
    alias_sql = "SELECT unnest(?::VARCHAR[]) AS alias_key, unnest(?::VARCHAR[]) AS model"

    pending = con.execute(
        f"""
        SELECT
          (SELECT count(*) FROM ({_SHIPPED}) s LEFT JOIN model_complexity c
             ON c.model = s.model AND c.input_desc = s.input_desc AND c.batch_size = 1
           WHERE c.model IS NULL OR (c.source = 'zoo' AND ({_SHIPPED_DIFFERS})))
        + (SELECT count(*) FROM ({zoo_sql}) s LEFT JOIN zoo_models z USING (model)
           WHERE z.model IS NULL OR z.kind IS DISTINCT FROM s.kind
              OR z.default_input IS DISTINCT FROM s.default_input
              OR z.description IS DISTINCT FROM s.description)
        + (SELECT count(*) FROM ({alias_sql}) s LEFT JOIN model_aliases a USING (alias_key)
           WHERE a.model IS DISTINCT FROM s.model)
        """,
        shipped + zoo + aliases,
    ).fetchall()[0][0]
    if not pending:
        return 0
    with _transaction(con):
        _sql(con, f"INSERT OR REPLACE INTO zoo_models (model, kind, default_input, description) {zoo_sql}", zoo)
        _sql(con, f"INSERT OR REPLACE INTO model_aliases (alias_key, model) {alias_sql}", aliases)
        updated = con.execute(
            f"""
            UPDATE model_complexity c SET
                macs_per_sample = s.macs_per_sample, macs_total = s.macs_per_sample, params = s.params,
                fvcore_version = s.fvcore_version, fvcore_flops_per_sample = s.fvcore_flops_per_sample,
                unsupported_ops = s.unsupported_ops::JSON
            FROM ({_SHIPPED}) s
            WHERE c.model = s.model AND c.input_desc = s.input_desc AND c.batch_size = 1
              AND c.source = 'zoo' AND ({_SHIPPED_DIFFERS})
            """,
            shipped,
        ).fetchall()[0][0]
        inserted = con.execute(
            f"""
            INSERT INTO model_complexity (model, input_desc, batch_size, macs_per_sample, macs_total, params,
                                          source, fvcore_version, fvcore_flops_per_sample, unsupported_ops,
                                          profiled_at)
            SELECT s.model, s.input_desc, 1, s.macs_per_sample, s.macs_per_sample, s.params, 'zoo',
                   s.fvcore_version, s.fvcore_flops_per_sample, s.unsupported_ops::JSON, NULL
            FROM ({_SHIPPED}) s
            WHERE NOT EXISTS (SELECT 1 FROM model_complexity c WHERE c.model = s.model
                              AND c.input_desc = s.input_desc AND c.batch_size = 1)
            """,
            shipped,
        ).fetchall()[0][0]
    return int(updated) + int(inserted)


def store_profile(con: duckdb.DuckDBPyConnection, prof: "ModelProfile") -> None:
    """Save a profile: its model_complexity row (source 'fvcore') and, replacing any earlier ones,
    its model_ops and model_layers rows for (model, input_desc). One transaction."""
    ops = list(prof.by_operator.items())
    with _transaction(con):
        _sql(
            con,
            "INSERT OR REPLACE INTO model_complexity (model, input_desc, batch_size, macs_per_sample, macs_total, "
            "params, source, fvcore_version, fvcore_flops_per_sample, unsupported_ops, profiled_at) "
            "VALUES (?, ?, ?, ?, ?, ?, 'fvcore', ?, ?, ?, ?)",
            [prof.model, prof.input_desc, prof.batch_size, prof.macs_per_sample, prof.macs_total,
             prof.params, prof.fvcore_version, prof.fvcore_flops_per_sample,
             json.dumps(prof.unsupported_ops, sort_keys=True), _now()],
        )
        key = [prof.model, prof.input_desc]
        _sql(con, "DELETE FROM model_ops WHERE model = ? AND input_desc = ?", key)
        _sql(con, "DELETE FROM model_layers WHERE model = ? AND input_desc = ?", key)
        if ops:
            _sql(
                con,
                "INSERT INTO model_ops (model, input_desc, operator, macs, is_mac) SELECT ?, ?, unnest(?::VARCHAR[]), unnest(?::BIGINT[]), "
                "unnest(?::BOOLEAN[])",
                key + [[o for o, _ in ops], [v for _, v in ops], [o in MAC_OPERATORS for o, _ in ops]],
            )
        if prof.layers:
            _sql(
                con,
                "INSERT INTO model_layers (model, input_desc, layer, layer_type, macs, params) SELECT ?, ?, unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), "
                "unnest(?::BIGINT[]), unnest(?::BIGINT[])",
                key + [[r.layer for r in prof.layers], [r.layer_type for r in prof.layers],
                       [r.macs for r in prof.layers], [r.params for r in prof.layers]],
            )

