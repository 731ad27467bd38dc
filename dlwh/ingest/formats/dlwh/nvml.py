"""dlwh's in-process NVML samples (nvml.csv, docs/run-format.md) → GPU sensors and samples."""

from __future__ import annotations

from pathlib import Path

import duckdb
from dlwh._lazy import pandas as pd

from dlwh.errors import ParseError
from dlwh.ingest.lines import complete_part, cut_warning, file_tail, lines_before, shaped_like
from dlwh.ingest.trace import IngestContext, Trace

NAME = "dlwh-nvml"
DESCRIPTION = "nvml.csv: dlwh's in-process NVML power, energy, clock and utilisation samples"
EXTENSIONS = (".csv",)
HEADER_START = "timestamp_utc,monotonic_ns,gpu_index"
_COMPLETE = "_dlwh_nvml_complete"  # the complete lines of a file cut mid-line

# CSV column -> (metric, scale to the metric's unit, unit)
COLUMNS: dict[str, tuple[str, float, str]] = {
    "power_w": ("power", 1.0, "W"),
    "power_instant_w": ("power_instant", 1.0, "W"),
    "power_average_w": ("power_average", 1.0, "W"),
    "energy_total_mj": ("energy_total", 1e-3, "J"),
    "power_limit_w": ("power_limit", 1.0, "W"),
    "enforced_power_limit_w": ("enforced_power_limit", 1.0, "W"),
    "clock_sm_mhz": ("clock_sm", 1.0, "MHz"),
    "clock_mem_mhz": ("clock_mem", 1.0, "MHz"),
    "clock_gr_mhz": ("clock_gr", 1.0, "MHz"),
    "utilization_gpu_pct": ("utilization_gpu", 1.0, "%"),
    "utilization_memory_pct": ("utilization_memory", 1.0, "%"),
    "temperature_gpu_c": ("temperature_gpu", 1.0, "C"),
    "memory_used_mib": ("memory_used", 1.0, "MiB"),
}


def sniff(head: str, path: Path) -> bool:
    """The header line starts with timestamp_utc,monotonic_ns,gpu_index."""
    return head.lstrip("\ufeff").startswith(HEADER_START)


def parse(ctx: IngestContext) -> Trace:
    """Read with DuckDB's CSV reader; every numeric column becomes one metric."""
    with ctx.path.open(encoding="utf-8", errors="replace") as handle:
        columns = [c.strip() for c in handle.readline().lstrip("\ufeff").rstrip("\r\n").split(",")]
    warnings: list[str] = []
    scratch: list[str] = []
    tail = file_tail(ctx.path, ctx.data)
    try:
        if tail.cut and tail.line > 1 and not shaped_like(lines_before(ctx.path, tail, ctx.data), ",")(tail.text):
            # the collector stopped mid-line: read the complete lines (DuckDB's strict reader would stop at it)
            warnings.append(cut_warning(tail.line))
            with complete_part(ctx.path, tail) as part:
                ctx.con.execute(f"CREATE OR REPLACE TEMP TABLE {_COMPLETE} AS SELECT * FROM read_csv(?, header = true, "
                                "delim = ',', quote = '\"', strict_mode = true, auto_detect = false, columns = ?)",
                                [str(part), {c: "VARCHAR" for c in columns}])
            scratch.append(f"TABLE {_COMPLETE}")
            raw = ctx.con.table(_COMPLETE)
        else:
            raw = ctx.con.read_csv(str(ctx.path), header=True, delimiter=",", quotechar='"', strict_mode=True,
                                   auto_detect=False, columns={c: "VARCHAR" for c in columns})
    except duckdb.Error as err:
        raise ParseError(f"cannot read NVML CSV: {str(err).splitlines()[0]}") from None
    known = [c for c in columns if c in COLUMNS]
    if "timestamp_utc" not in columns or "gpu_index" not in columns or not known:
        raise ParseError("NVML CSV lacks timestamp_utc, gpu_index or any metric column")
    gpus = ctx.con.sql(
        "SELECT DISTINCT TRY_CAST(gpu_index AS INTEGER) AS idx, "
        + ("gpu_uuid" if "gpu_uuid" in columns else "NULL")
        + " AS uuid FROM raw ORDER BY idx"
    ).df()
    if gpus["idx"].isna().any():
        raise ParseError("gpu_index is not a number in some row")
    names = {g.get("index"): g.get("name") for g in (ctx.manifest or {}).get("gpus", [])}
    sensors = pd.DataFrame({
        "sensor_key": "nvml:gpu" + gpus["idx"].astype(str),
        "kind": "gpu",
        "name": ["GPU %d %s" % (i, names.get(i) or "") for i in gpus["idx"]],
        "device_index": gpus["idx"].astype("Int64"),
        "device_uuid": gpus["uuid"],
        "device_name": [names.get(i) for i in gpus["idx"]],
        "tool": "nvml",
    })
    selects = " UNION ALL ".join(
        f"SELECT 'nvml:gpu' || CAST(TRY_CAST(gpu_index AS INTEGER) AS VARCHAR) AS sensor_key, ts, "
        f"'{metric}' AS metric, '{unit}' AS unit, TRY_CAST(NULLIF(\"{col}\", '') AS DOUBLE) * {scale} AS value, "
        f"CAST(NULL AS DOUBLE) AS duration_s FROM t"
        for col in known
        for metric, scale, unit in [COLUMNS[col]]
    )
    rel = ctx.con.sql(
        "WITH t AS (SELECT *, CAST(CAST(timestamp_utc AS TIMESTAMPTZ) AT TIME ZONE 'UTC' AS TIMESTAMP) AS ts FROM raw) "
        + selects
    )
    bad = ctx.con.sql("SELECT count(*) FROM raw WHERE TRY_CAST(timestamp_utc AS TIMESTAMPTZ) IS NULL").fetchall()[0][0]
    if bad:
        raise ParseError(f"{bad} rows have a timestamp_utc that is not an ISO 8601 time")
    return Trace(format=NAME, sensors=sensors, samples=rel, warnings=warnings, scratch=scratch)
