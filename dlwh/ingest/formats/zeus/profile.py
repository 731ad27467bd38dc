"""Zeus power-limit profile (<GPU>+<model>+gpu<ids>.csv) → the zeus_profile_windows table.

Zeus's GlobalPowerLimitOptimizer runs a fixed number of training steps at each power limit and
writes one row per window: start_time (s, the profiler's own clock), window_name
(__GlobalPowerLimitOptimizer_<limit W>), elapsed_time (s) and gpu<k>_energy (J per GPU). The
table gets one row per window and GPU. The GPU model and network are not in the file: they come
from --gpu and from Zeus's file-name convention <GPU>+<model>+gpu<ids>.csv.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from dlwh._lazy import pandas as pd

from dlwh.errors import ParseError
from dlwh.ingest.formats.zeus import _common as _zeus
from dlwh.ingest.trace import IngestContext, Trace

NAME = "zeus-profile"
DESCRIPTION = "Zeus power-limit profile <GPU>+<model>+gpu<ids>.csv: time and energy per window and limit"
EXTENSIONS = (".csv",)
WHAT = "Zeus power-limit profile"
_ENERGY = re.compile(r"^gpu(\d+)_energy$")
_FILE = re.compile(r"^([^+]+)\+(.+)\+gpu[\d,]+\.csv$", re.IGNORECASE)


def sniff(head: str, path: Path) -> bool:
    """Header start_time,window_name,elapsed_time then one gpu<k>_energy column per GPU."""
    columns = _zeus.header_columns(head)
    return (columns[:3] == ["start_time", "window_name", "elapsed_time"] and len(columns) > 3
            and all(_ENERGY.match(c) for c in columns[3:]))


def parse(ctx: IngestContext) -> Trace:
    """Validate every window; one row per window and GPU with its energy (J) and average power (W)."""
    cut: list[str] = []
    raw = _zeus.read_table(ctx.read_text(), WHAT, cut)
    match = _FILE.match(ctx.path.name)
    notes: list[str] = []
    warnings: list[str] = []
    if ctx.options.get("gpu"):
        gpu, gpu_source = str(ctx.options["gpu"]).strip().upper(), "--gpu"
    elif match:
        gpu, gpu_source = match.group(1).upper(), f"the file name {ctx.path.name}"
    else:
        raise ParseError(f"{WHAT}: the file does not say which GPU it was measured on; "
                         "pass --gpu NAME (e.g. --gpu A40)")
    notes.append(f"GPU {gpu} from {gpu_source}")
    network = match.group(2) if match else None
    if network is None:
        warnings.append("model unknown (file name is not <GPU>+<model>+gpu<ids>.csv)")
    start = _zeus.numbers(raw, "start_time", WHAT)
    elapsed = _zeus.numbers(raw, "elapsed_time", WHAT, positive=True)
    names = _zeus.text_column(raw, "window_name", WHAT)
    limit = pd.to_numeric(names.str.extract(r"_(\d+(?:\.\d+)?)$", expand=False), errors="coerce")
    if limit.isna().any():
        line = int(limit.isna().idxmax())
        raise ParseError(f"{WHAT}: window_name {names[line]!r} does not end in a power limit (_<W>)", line=line)
    dup = limit.duplicated()
    if dup.any():
        warnings.append(f"{int(dup.sum())} power limit(s) profiled more than once; each window is kept")
    if ctx.start_utc is not None:
        start_ts = pd.Timestamp(ctx.start_utc) + pd.to_timedelta(start - start.min(), unit="s")
        notes.append(f"window times anchored at {ctx.start_utc.isoformat()} UTC from {ctx.start_source}")
    else:
        start_ts = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns]")
        notes.append("window start times kept on the profiler's own clock (start_s); pass --start to anchor them")
    energy_cols = [c for c in raw.columns if _ENERGY.match(c)]
    frames = []
    for column in energy_cols:
        energy = _zeus.numbers(raw, column, WHAT, positive=True)
        frames.append(pd.DataFrame({
            "line": raw.index.astype("int64"),
            "gpu": gpu,
            "network": network,
            "n_gpus": len(energy_cols),
            "window_name": names,
            "power_limit_w": limit.astype(float),
            "start_s": start,
            "start_ts": start_ts,
            "elapsed_s": elapsed,
            "gpu_index": int(_ENERGY.match(column).group(1)),
            "energy_j": energy,
            "avg_power_w": energy / elapsed,
        }, index=raw.index))
    out = pd.concat(frames, ignore_index=True)
    out["model"] = _zeus.canonical_model(ctx.con, out["network"].fillna("")).replace("", None)
    notes.append(f"{len(raw)} windows x {len(energy_cols)} GPU(s)")
    return Trace(format=NAME, tables={"zeus_profile_windows": out}, notes=notes, warnings=warnings + cut)
