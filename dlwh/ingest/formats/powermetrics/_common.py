"""What powermetrics' text and plist parsers share: window ends from sample dates and elapsed times, and the
Trace built from the readings."""

from __future__ import annotations

from typing import Callable

import numpy as np
from dlwh._lazy import pandas as pd

from dlwh.errors import ParseError
import dlwh.ingest.validate as validate
from dlwh.ingest.trace import IngestContext, Trace

NS = 1_000_000_000

# sensor key prefix pattern -> kind (first match wins)
_KINDS = (("cpu", r"^(?:cpu|.*cluster)"), ("gpu", r"^gpu"), ("ane", r"^ane"), ("dram", r"^dram"),
          ("soc", r"^(?:package|combined)"))


def window_ends(header_ns: np.ndarray, elapsed_ns: np.ndarray, ctx: IngestContext, line_of: Callable[[int], int],
                notes: list[str], warnings: list[str]) -> np.ndarray:
    """Naive-UTC window ends (datetime64[ns]) of contiguous samples; see powermetrics/text.py's docstring.

    ``header_ns``: each sample's stated time (NaT where the sample has none), whole seconds, the
    window's end; ``elapsed_ns``: each window's length. ``line_of(k)``: the line of sample k (0-based).
    """
    cum = np.cumsum(elapsed_ns)
    dated = ~np.isnat(header_ns)
    if not dated.any():
        if ctx.start_utc is None:
            raise ParseError("the samples carry only elapsed times and no date: pass --start with the time "
                             "powermetrics started, or keep the file next to its run.json")
        notes.append(f"no dates in the samples: times from the start ({ctx.start_source}) plus the elapsed times")
        return np.datetime64(ctx.start_utc, "ns") + cum.astype("timedelta64[ns]")
    if not dated.all():
        raise ParseError("this sample has no date while others have one", line=line_of(int(np.argmin(dated))))
    h = header_ns.astype("int64")
    d = h - cum                              # T0 lies in [d, d + 1 s) for every sample of a stretch
    stretch = np.concatenate([[0], np.cumsum(np.abs(np.diff(d)) >= NS)])
    frame = pd.DataFrame({"stretch": stretch, "d": d})
    lo = frame.groupby("stretch")["d"].transform("max").to_numpy()
    hi = frame.groupby("stretch")["d"].transform("min").to_numpy() + NS
    t0 = lo + (hi - lo) // 2
    end = np.clip(t0 + cum, h, h + NS - 1000)
    drift = lo >= hi
    if drift.any():
        warnings.append(f"elapsed times drift against the sample dates in {len(np.unique(stretch[drift]))} stretch(es); "
                        "their times were kept within each sample's stated second")
    if stretch[-1] > 0:
        notes.append(f"{stretch[-1] + 1} stretches of contiguous samples (pauses between them)")
    return end.astype("datetime64[ns]")


def build_trace(name: str, readings: pd.DataFrame, end_ns: np.ndarray, elapsed_ns: np.ndarray,
                notes: list[str], warnings: list[str]) -> Trace:
    """Readings (block 1.., label, key, metric, value) + per-block window ends → the Trace.

    power / frequency / residency go to the window's middle with duration_s = elapsed; 'energy'
    (J over the window) goes to the window's end, as metrics.py defines it.
    """
    idx = readings["block"].to_numpy() - 1
    ends = end_ns[idx]
    halves = (elapsed_ns[idx] // 2).astype("timedelta64[ns]")
    ts = np.where(readings["metric"].to_numpy() == "energy", ends, ends - halves)
    units = {"power": "W", "frequency": "MHz", "residency": "%", "energy": "J"}
    samples = pd.DataFrame({
        "sensor_key": readings["key"].to_numpy(),
        "ts": pd.to_datetime(ts).astype("datetime64[us]"),
        "metric": readings["metric"].to_numpy(),
        "unit": readings["metric"].map(units).to_numpy(),
        "value": readings["value"].astype(float).to_numpy(),
        "duration_s": elapsed_ns[idx] / 1e9,
    })
    first = readings.drop_duplicates("key")
    keys = first["key"]
    kind = pd.Series("other", index=keys.index)
    for label, pattern in reversed(_KINDS):
        kind = kind.mask(keys.str.contains(pattern, regex=True), label)
    sensors = pd.DataFrame({
        "sensor_key": keys.to_numpy(),
        "kind": kind.to_numpy(),
        "name": sensor_names(first["label"]).to_numpy(),
        "device_index": validate.whole(keys.str.extract(r"^cpu(\d+)$", expand=False)).to_numpy(),
        "device_uuid": None, "device_name": None, "tool": "powermetrics",
    })
    return Trace(format=name, sensors=sensors, samples=samples, notes=notes, warnings=warnings)


def sensor_names(labels: pd.Series) -> pd.Series:
    """Readable sensor names: the line's label without 'Power' / 'HW'."""
    named = labels.str.replace(r"(?i)^intel energy model derived package power", "Package", regex=True)
    named = named.str.replace(r"(?i)(?<!\s)\s+power(?=\s*\(|\s*$)", "", regex=True).str.replace(r"(?<!\s)\s+HW$", "", regex=True)
    return named.str.strip()
