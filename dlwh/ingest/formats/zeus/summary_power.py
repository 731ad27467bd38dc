"""Zeus NSDI'23 power trace (summary_power_<gpu>.csv) → the zeus_power_summary table.

One row per (dataset, network, batch size, optimizer, power limit): the time of one training epoch
(s) and the GPU's average board power over it (W, NVML). The file does not name its GPU: it comes
from --gpu, else from the published file name summary_power_<gpu>.csv.
"""

from __future__ import annotations

from pathlib import Path

from dlwh._lazy import pandas as pd

from dlwh.errors import ParseError
import dlwh.ingest.validate as validate
from dlwh.ingest.formats.zeus import _common as _zeus
from dlwh.ingest.trace import IngestContext, Trace

NAME = "zeus-summary-power"
DESCRIPTION = "Zeus summary_power_<gpu>.csv: average power per model, batch size and power limit"
EXTENSIONS = (".csv",)
COLUMNS = ("dataset", "network", "batch_size", "optimizer", "power_limit", "time_per_epoch", "average_power")
WHAT = "Zeus summary_power"


def sniff(head: str, path: Path) -> bool:
    """The header holds exactly the seven Zeus power-trace columns (any order)."""
    return sorted(_zeus.header_columns(head)) == sorted(COLUMNS)


def parse(ctx: IngestContext) -> Trace:
    """Validate every row and return them as zeus_power_summary rows."""
    cut: list[str] = []
    raw = _zeus.read_table(ctx.read_text(), WHAT, cut)
    gpu, gpu_source = _zeus.gpu_name(ctx.options.get("gpu"), ctx.path, r"summary_power_([A-Za-z0-9]+)", WHAT)
    batch = _zeus.numbers(raw, "batch_size", WHAT, positive=True)
    fractional = batch != batch.round()
    if fractional.any():
        raise ParseError(f"{WHAT}: batch_size {raw['batch_size'][fractional.idxmax()]!r} is not a whole number",
                         line=int(fractional.idxmax()))
    out = pd.DataFrame({
        "line": raw.index.astype("int64"),
        "gpu": gpu,
        "dataset": _zeus.text_column(raw, "dataset", WHAT),
        "network": _zeus.text_column(raw, "network", WHAT),
        "batch_size": validate.whole(batch),  # 1e20: refused at the boundary, with the line
        "optimizer": _zeus.text_column(raw, "optimizer", WHAT).str.lower(),
        "power_limit_w": _zeus.numbers(raw, "power_limit", WHAT, positive=True),
        "time_per_epoch_s": _zeus.numbers(raw, "time_per_epoch", WHAT, positive=True),
        "avg_power_w": _zeus.numbers(raw, "average_power", WHAT, positive=True),
    }, index=raw.index)
    out["model"] = _zeus.canonical_model(ctx.con, out["network"])
    key = ["dataset", "network", "batch_size", "optimizer", "power_limit_w"]
    dup = out.duplicated(key)
    if dup.any():
        row = out.loc[dup.idxmax()]
        raise ParseError(f"{WHAT}: {row['dataset']}/{row['network']} batch {row['batch_size']} {row['optimizer']} "
                         f"at {row['power_limit_w']:g} W appears twice", line=int(dup.idxmax()))
    notes = [f"GPU {gpu} from {gpu_source}",
             f"{out[['dataset', 'network']].drop_duplicates().shape[0]} workloads, "
             f"{out[['dataset', 'network', 'batch_size', 'optimizer']].drop_duplicates().shape[0]} configurations"]
    return Trace(format=NAME, tables={"zeus_power_summary": out.reset_index(drop=True)}, notes=notes, warnings=cut)
