"""The complexity table shipped with the package (``zoo_complexity.csv``). Imports no torch.

One row per zoo model at its default input and batch size 1, counted by fvcore
(``python -m dlwh.models.precompute`` regenerates it). Columns: model, input, macs_per_sample,
params, source ('fvcore'), fvcore_version, fvcore_flops_per_sample, unsupported_ops (JSON object).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from dlwh.errors import DlwhError
from dlwh.models.registry import normalise_name

TABLE_NAME = "zoo_complexity.csv"
COLUMNS = (
    "model",
    "input",
    "macs_per_sample",
    "params",
    "source",
    "fvcore_version",
    "fvcore_flops_per_sample",
    "unsupported_ops",
)


@dataclass(frozen=True)
class ZooRow:
    """One shipped count: MACs per sample and parameters of ``model`` at ``input_desc``."""

    model: str
    input_desc: str
    macs_per_sample: int
    params: int
    source: str
    fvcore_version: str
    fvcore_flops_per_sample: int
    unsupported_ops: dict[str, int]


def _parse(text: str) -> list[ZooRow]:
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise DlwhError(f"the shipped {TABLE_NAME} lacks columns {missing}; reinstall dlwh")
    return [
        ZooRow(
            model=r["model"],
            input_desc=r["input"],
            macs_per_sample=int(r["macs_per_sample"]),
            params=int(r["params"]),
            source=r["source"],
            fvcore_version=r["fvcore_version"],
            fvcore_flops_per_sample=int(r["fvcore_flops_per_sample"]),
            unsupported_ops=json.loads(r["unsupported_ops"] or "{}"),
        )
        for r in reader
    ]


_CACHE: list[ZooRow] | None = None


def read_zoo_table() -> list[ZooRow]:
    """Every row of the shipped table, in file order (read once, then cached)."""
    global _CACHE
    if _CACHE is None:
        text = resources.files("dlwh.models").joinpath(TABLE_NAME).read_text(encoding="utf-8")
        _CACHE = _parse(text)
    return list(_CACHE)


def read_zoo_frame() -> Any:
    """The shipped table as a pandas DataFrame (columns as in the CSV, ``input`` named input_desc)."""
    import pandas as pd

    rows = read_zoo_table()
    return pd.DataFrame([r.__dict__ for r in rows])


def zoo_complexity(name: str) -> ZooRow | None:
    """The shipped row for ``name`` (any alias) at its default input, or None when it has none."""
    model = normalise_name(name)
    for row in read_zoo_table():
        if row.model == model:
            return row
    return None


def write_zoo_table(rows: list[dict[str, Any]], out: Any) -> None:
    """Write rows (dicts keyed by ``COLUMNS``) as the table's CSV to the text stream ``out``."""
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
