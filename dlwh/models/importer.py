"""Import MAC and parameter counts of users' own architectures from CSV (``dlwh models import``).

Columns (header row, any order, case-insensitive; others ignored): ``name``, ``input``
('3x224x224' or 'seq128'), ``macs`` (per sample; plain or with a K/M/G/T suffix: '4.09G'),
``params`` (likewise). Names are normalised (zoo aliases map to the zoo name, others are
lower-cased). Rows go to model_complexity with source 'import' and batch size 1, in one transaction;
importing the same file again changes nothing. Imports no torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dlwh.errors import DlwhError
from dlwh.models.registry import ALIASES
from dlwh.models.store import _now, _sql, _transaction

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

REQUIRED = ("name", "input", "macs", "params")
_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}


@dataclass(frozen=True)
class ImportResult:
    """What an import did: rows read, and of those how many were new, changed or already there."""

    rows: int
    new: int
    updated: int
    unchanged: int


def _fail_at(path: Path, frame: pd.DataFrame, bad: pd.Series, message: str) -> None:
    """Raise for the first row flagged in ``bad``; ``message`` may use {line} and {value}."""
    if bad.any():
        first = bad.idxmax()
        raise DlwhError(f"{path.name} line {frame.at[first, '_line']}: " + message.format(
            value=frame.at[first, "_value"] if "_value" in frame else ""))


def _numbers(path: Path, frame: pd.DataFrame, column: str) -> pd.Series:
    """Parse ``column`` as non-negative numbers with an optional K/M/G/T suffix (vectorised)."""
    import pandas as pd

    text = frame[column].str.replace(r"[\s_,]", "", regex=True)
    parts = text.str.extract(r"^([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)([kKmMgGtT]?)$")
    value = pd.to_numeric(parts[0], errors="coerce") * parts[1].str.lower().map(_SUFFIX)
    probe = frame.assign(_value=frame[column])
    _fail_at(path, probe, value.isna(), f"{column} {{value!r}} is not a non-negative number "
             "(e.g. 4090000000 or 4.09G)")
    return value.round().astype("int64")


def read_import_csv(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Validate a user CSV; returns columns model, input_desc, macs_per_sample, params (one row per model
    and input). Raises DlwhError with the file and line on the first problem."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DlwhError(f"no such file: {path}; check the path")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise DlwhError(f"{path.name} is empty; expected a header row with columns {', '.join(REQUIRED)}") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        first = str(err).strip().splitlines()[0]
        raise DlwhError(f"cannot read {path.name} as CSV: {first}") from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise DlwhError(
            f"{path.name} lacks column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
            f"expected columns {', '.join(REQUIRED)}"
        )
    if frame.empty:
        raise DlwhError(f"{path.name} has a header but no rows")
    frame = frame.reset_index(drop=True)
    frame["_line"] = frame.index + 2  # the header is line 1

    name = frame["name"].str.strip()
    _fail_at(path, frame, name == "", "name is empty")
    canonical = name.str.lower().str.replace(r"[^a-z0-9]", "", regex=True).map(ALIASES)
    model = canonical.fillna(name.str.lower())

    raw = frame["input"].str.strip().str.lower()
    seq = raw.str.extract(r"^seq(?:_?len)?\s*[=:]?\s*0*([1-9][0-9]*)$")[0]
    dims_ok = raw.str.fullmatch(r"\(?\s*[0-9]+(?:\s*[x,*]\s*[0-9]+)*\s*,?\s*\)?")
    dims = (raw.str.replace(r"[\s()]", "", regex=True).str.replace(r"[,*]", "x", regex=True)
            .str.rstrip("x").str.replace(r"(^|x)0+(?=[0-9])", r"\1", regex=True))
    _fail_at(path, frame.assign(_value=frame["input"]), seq.isna() & ~dims_ok,
             "input {value!r} is not a shape like 3x224x224 or a sequence like seq128")
    _fail_at(path, frame.assign(_value=frame["input"]), seq.isna() & dims.str.contains(r"(?:^|x)0(?:x|$)"),
             "input {value!r} has a zero dimension")
    input_desc = ("seq" + seq).where(seq.notna(), dims)

    out = pd.DataFrame({
        "model": model,
        "input_desc": input_desc,
        "macs_per_sample": _numbers(path, frame, "macs"),
        "params": _numbers(path, frame, "params"),
    })
    dup = out.duplicated(["model", "input_desc"], keep="first")
    if dup.any():
        i = dup.idxmax()
        first = out[(out.model == out.at[i, "model"]) & (out.input_desc == out.at[i, "input_desc"])].index[0]
        raise DlwhError(
            f"{path.name} line {frame.at[i, '_line']}: {out.at[i, 'model']} at input "
            f"{out.at[i, 'input_desc']} is already on line {frame.at[first, '_line']}; keep one row"
        )
    return out


def import_complexity_csv(con: duckdb.DuckDBPyConnection, path: str | os.PathLike[str]) -> ImportResult:
    """Validate ``path`` and upsert its rows into model_complexity (source 'import'); one transaction."""
    rows = read_import_csv(path)
    con.register("dlwh_import_rows", rows)
    try:
        with _transaction(con):
            new, updated = con.execute(
                """
                SELECT count(*) FILTER (WHERE c.model IS NULL),
                       count(*) FILTER (WHERE c.model IS NOT NULL AND (c.source <> 'import'
                           OR c.macs_per_sample <> r.macs_per_sample OR c.params IS DISTINCT FROM r.params))
                FROM dlwh_import_rows r LEFT JOIN model_complexity c
                  ON c.model = r.model AND c.input_desc = r.input_desc AND c.batch_size = 1
                """
            ).fetchall()[0]
            _sql(
                con,
                """
                INSERT OR REPLACE INTO model_complexity (model, input_desc, batch_size, macs_per_sample,
                    macs_total, params, source, fvcore_version, fvcore_flops_per_sample, unsupported_ops, profiled_at)
                SELECT r.model, r.input_desc, 1, r.macs_per_sample, r.macs_per_sample, r.params, 'import',
                       NULL, NULL, NULL, ?
                FROM dlwh_import_rows r
                WHERE NOT EXISTS (
                    SELECT 1 FROM model_complexity c
                    WHERE c.model = r.model AND c.input_desc = r.input_desc AND c.batch_size = 1
                      AND c.source = 'import' AND c.macs_per_sample = r.macs_per_sample
                      AND c.params IS NOT DISTINCT FROM r.params)
                """,
                [_now()],
            )
    finally:
        con.unregister("dlwh_import_rows")
    return ImportResult(rows=len(rows), new=int(new), updated=int(updated),
                        unchanged=len(rows) - int(new) - int(updated))
