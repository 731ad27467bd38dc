"""Zeus NSDI'23 train trace (summary_train.csv) → the zeus_train_summary table.

One row per (dataset, network, batch size, optimizer, learning rate, seed run, target metric): the
epoch at which the validation metric first reached the target, empty where it never did.
"""

from __future__ import annotations

from pathlib import Path

from dlwh._lazy import pandas as pd

from dlwh.errors import ParseError
import dlwh.ingest.validate as validate
from dlwh.ingest.formats.zeus import _common as _zeus
from dlwh.ingest.trace import IngestContext, Trace

NAME = "zeus-summary-train"
DESCRIPTION = "Zeus summary_train.csv: epochs and time to accuracy per model, batch size and power limit"
EXTENSIONS = (".csv",)
COLUMNS = ("dataset", "network", "batch_size", "optimizer", "learning_rate", "run", "target_metric",
           "target_epoch")
WHAT = "Zeus summary_train"


def sniff(head: str, path: Path) -> bool:
    """The header holds exactly the eight Zeus train-trace columns (any order)."""
    return sorted(_zeus.header_columns(head)) == sorted(COLUMNS)


def parse(ctx: IngestContext) -> Trace:
    """Validate every row and return them as zeus_train_summary rows (target_epoch NULL = not reached)."""
    cut: list[str] = []
    raw = _zeus.read_table(ctx.read_text(), WHAT, cut)
    batch = _zeus.numbers(raw, "batch_size", WHAT, positive=True)
    run = _zeus.numbers(raw, "run", WHAT)
    epoch = _zeus.numbers(raw, "target_epoch", WHAT, required=False, positive=True)
    for name, values in (("batch_size", batch), ("run", run), ("target_epoch", epoch)):
        fractional = values.notna() & (values != values.round())
        if fractional.any():
            raise ParseError(f"{WHAT}: {name} {raw[name][fractional.idxmax()]!r} is not a whole number",
                             line=int(fractional.idxmax()))
    out = pd.DataFrame({
        "line": raw.index.astype("int64"),
        "dataset": _zeus.text_column(raw, "dataset", WHAT),
        "network": _zeus.text_column(raw, "network", WHAT),
        "batch_size": validate.whole(batch),  # 1e20: refused at the boundary, with the line
        "optimizer": _zeus.text_column(raw, "optimizer", WHAT).str.lower(),
        "learning_rate": _zeus.numbers(raw, "learning_rate", WHAT, positive=True),
        "seed_run": validate.whole(run),
        "target_metric": _zeus.numbers(raw, "target_metric", WHAT),
        "target_epoch": validate.whole(epoch),
    }, index=raw.index)
    out["model"] = _zeus.canonical_model(ctx.con, out["network"])
    reached = int(out["target_epoch"].notna().sum())
    notes = [f"{len(out)} rows, {reached} with the target reached"]
    return Trace(format=NAME, tables={"zeus_train_summary": out.reset_index(drop=True)}, notes=notes, warnings=cut)
