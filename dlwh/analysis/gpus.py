"""Power-limit ranges of GPUs: from the runs' own NVML records, else a shipped table, else the data.

The table (``data/gpu_limits.csv``) lists minimum, maximum and default limits of common NVIDIA GPUs
with the source of each line (datasheets; NVML readings where we recorded them). A GPU name is
normalised as everywhere in dlwh ('NVIDIA H100 80GB HBM3' -> 'H100'), which drops the form factor:
where the table has several (A100 SXM 400 W, PCIe 300 W), the one whose maximum equals the highest
limit measured is taken, else the first, and the answer says so.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import duckdb


@dataclass(frozen=True)
class GpuRange:
    """A GPU's power-limit range (W) and where it came from."""

    gpu: str
    min_w: float | None
    max_w: float
    default_w: float | None
    source: str

    def reference_w(self) -> float:
        """The limit parameters are relative to: the default limit, else the maximum."""
        return float(self.default_w or self.max_w)

    def contains(self, limit_w: float, slack: float = 1e-6) -> bool:
        """Whether ``limit_w`` lies in [min, max] (an unknown minimum accepts any positive limit)."""
        low = self.min_w if self.min_w is not None else 0.0
        return low - slack <= limit_w <= self.max_w + slack

    def describe(self) -> str:
        low = f"{self.min_w:g}" if self.min_w is not None else "?"
        return f"{low}..{self.max_w:g} W ({self.source})"


@lru_cache(maxsize=1)
def table() -> tuple[dict, ...]:
    """The shipped table's rows (gpu, form_factor, min/max/default W, source)."""
    text = resources.files("dlwh.analysis").joinpath("data/gpu_limits.csv").read_text()
    rows = []
    for row in csv.DictReader(text.splitlines()):
        rows.append({**row, **{k: float(row[k]) for k in ("min_limit_w", "max_limit_w", "default_limit_w")}})
    return tuple(rows)


def from_table(gpu: str, measured_max_w: float | None = None) -> GpuRange | None:
    """The table's range for ``gpu`` (normalised name); the form factor whose maximum is the highest
    measured limit when several are listed."""
    rows = [r for r in table() if r["gpu"] == gpu]
    if not rows:
        return None
    pick = next((r for r in rows if measured_max_w is not None and abs(r["max_limit_w"] - measured_max_w) < 0.5), None)
    note = ""
    if pick is None:
        pick = rows[0]
        if len(rows) > 1:
            note = f"; form factor not known, {pick['form_factor']} assumed"
    return GpuRange(gpu, pick["min_limit_w"], pick["max_limit_w"], pick["default_limit_w"],
                    f"dlwh's table: {gpu} {pick['form_factor']}{note}")


def from_warehouse(con: duckdb.DuckDBPyConnection, gpu: str) -> GpuRange | None:
    """The range NVML reported in the manifests of this GPU's runs (dlwh collect records it)."""
    try:
        row = con.execute(
            "SELECT min(CAST(json_extract_string(manifest_json, '$.gpus[0].power_limit_w.min') AS DOUBLE)), "
            "max(CAST(json_extract_string(manifest_json, '$.gpus[0].power_limit_w.max') AS DOUBLE)), "
            "median(CAST(json_extract_string(manifest_json, '$.gpus[0].power_limit_w.default') AS DOUBLE)), count(*) "
            "FROM runs WHERE manifest_json IS NOT NULL "
            "AND normalise_gpu(json_extract_string(manifest_json, '$.gpus[0].name')) = ?", [gpu]).fetchone()
    except duckdb.Error:
        return None
    if not row or row[1] is None:
        return None
    return GpuRange(gpu, row[0], float(row[1]), row[2], f"NVML, as recorded in {row[3]} run manifest(s)")


def gpu_range(con: duckdb.DuckDBPyConnection | None, gpu: str, measured_max_w: float | None = None) -> GpuRange | None:
    """The best-known range of ``gpu``: NVML records, the shipped table, else None."""
    found = from_warehouse(con, gpu) if con is not None else None
    return found or from_table(gpu, measured_max_w)


def reference_limits(rows, con: duckdb.DuckDBPyConnection | None = None) -> dict[str, float]:
    """gpu -> reference limit (W) for the GPUs of training rows: known range, else the highest limit measured."""
    out = {}
    for gpu, top in rows.groupby("gpu")["power_limit_w"].max().items():
        known = gpu_range(con, str(gpu), float(top))
        out[str(gpu)] = known.reference_w() if known else float(top)
    return out
