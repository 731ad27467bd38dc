"""Perseus SOSP'24 power-limit sweeps (``<GPU>__zeus_global.csv``) → the perseus_iterations table.

One row per (model, power limit) of pipeline-parallel training (Merak): the same limit on every GPU
(power_limit_0 .. power_limit_<pp-1>, W; unused stage columns are 0), the time of one training
iteration (s, slowest rank) and its energy (J) SUMMED over all dp x tp x pp GPUs, so the average
power per GPU is energy / time / (dp * tp * pp). The GPU is not in the file: it comes from --gpu,
else from the published file name ``<GPU>__zeus_global.csv``.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from dlwh._lazy import pandas as pd

from dlwh.errors import ParseError
import dlwh.ingest.validate as validate
from dlwh.ingest.formats.zeus import _common as _zeus
from dlwh.ingest.lines import drop_cut_line, shaped_like
from dlwh.ingest.trace import IngestContext, Trace

NAME = "perseus-global"
WHAT = "Perseus zeus_global"
DESCRIPTION = "Perseus SOSP'24 <GPU>__zeus_global.csv: time and energy (summed over GPUs) per iteration and power limit"
EXTENSIONS = (".csv",)
REQUIRED = ("model_name", "partition_method", "batch_size", "dp", "tp", "pp", "microbatch_size",
            "num_microbatches", "power_limit_0", "time", "energy", "optimal_power_limit")
_LIMIT = re.compile(r"^power_limit_(\d+)$")


def sniff(head: str, path: Path) -> bool:
    """The header holds model_name, the parallelism, power_limit_<stage> columns, time and energy."""
    first = head.lstrip("\ufeff").split("\n", 1)[0].rstrip("\r")
    columns = [c.strip() for c in first.split(",")]
    return set(REQUIRED) <= set(columns) and all(_LIMIT.match(c) or c in REQUIRED for c in columns)


def parse(ctx: IngestContext) -> Trace:
    """Validate every row; per-GPU average power from the summed energy and the parallelism."""
    cut: list[str] = []
    text = ctx.read_text().lstrip("\ufeff")
    text = drop_cut_line(text, shaped_like(text[max(0, len(text) - 65536):].split("\n")[-201:-1], ","), cut)
    try:
        raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skip_blank_lines=True)
    except (pd.errors.ParserError, ValueError) as err:
        raise ParseError(f"{WHAT}: not a readable CSV ({str(err).splitlines()[0]})") from None
    if raw.empty:
        raise ParseError(f"{WHAT}: no data rows after the header", line=1)
    raw.index = raw.index + 2  # 1-based file lines, header = 1
    raw.columns = [str(c).strip() for c in raw.columns]  # as sniff() reads them: ' model_name ' is model_name
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise ParseError(f"{WHAT}: the header lacks {', '.join(missing)}", line=1)
    raw = raw.apply(lambda s: s.str.strip())
    gpu, gpu_source = _zeus.gpu_name(ctx.options.get("gpu"), ctx.path, r"^([A-Za-z0-9]+)__zeus_global", WHAT)
    ints = {}
    for column in ("batch_size", "dp", "tp", "pp", "microbatch_size", "num_microbatches"):
        values = _zeus.numbers(raw, column, WHAT, positive=True)
        fractional = values != values.round()
        if fractional.any():
            line = int(fractional.idxmax())
            raise ParseError(f"{WHAT}: {column} {raw[column][line]!r} is not a whole number", line=line)
        ints[column] = validate.whole(values)  # 1e20: refused at the boundary, with the line
    stages = sorted((c for c in raw.columns if _LIMIT.match(c)), key=lambda c: int(_LIMIT.match(c).group(1)))
    limits = pd.DataFrame({c: _zeus.numbers(raw, c, WHAT) for c in stages})
    used = pd.DataFrame({c: ints["pp"] > int(_LIMIT.match(c).group(1)) for c in stages})
    if (used.sum(axis=1) < ints["pp"]).any():
        line = int((used.sum(axis=1) < ints["pp"]).idxmax())
        raise ParseError(f"{WHAT}: pp is {ints['pp'][line]} but the file has only {len(stages)} power_limit columns",
                         line=line)
    stage_limits = limits.where(used)
    limit = stage_limits.max(axis=1)
    uneven = (stage_limits.min(axis=1) != limit) | ~(limit > 0)
    if uneven.any():
        line = int(uneven.idxmax())
        raise ParseError(f"{WHAT}: the pipeline stages do not share one positive power limit", line=line)
    time_s = _zeus.numbers(raw, "time", WHAT, positive=True)
    energy_j = _zeus.numbers(raw, "energy", WHAT, positive=True)
    n_gpus = ints["dp"] * ints["tp"] * ints["pp"]
    out = pd.DataFrame({
        "line": raw.index.astype("int64"),
        "gpu": gpu,
        "model": _zeus.text_column(raw, "model_name", WHAT).str.lower(),
        "partition_method": raw["partition_method"],
        **ints,
        "n_gpus": validate.whole(n_gpus),
        "power_limit_w": limit.astype(float),
        "time_per_iteration_s": time_s,
        "energy_per_iteration_j": energy_j,
        "avg_power_w": energy_j / time_s / n_gpus,
        "optimal_power_limit_w": _zeus.numbers(raw, "optimal_power_limit", WHAT, required=False),
    }, index=raw.index)
    dup = out.duplicated(["model", "batch_size", "dp", "tp", "pp", "power_limit_w"])
    if dup.any():
        row = out.loc[dup.idxmax()]
        raise ParseError(f"{WHAT}: {row['model']} at {row['power_limit_w']:g} W appears twice", line=int(dup.idxmax()))
    notes = [f"GPU {gpu} from {gpu_source}", f"{out['model'].nunique()} models, {len(out)} power-limit rows; "
             "energy per iteration summed over dp x tp x pp GPUs, power per GPU = energy / time / GPUs"]
    return Trace(format=NAME, tables={"perseus_iterations": out.reset_index(drop=True)}, notes=notes, warnings=cut)
