"""Average power over intervals → power samples that the energy views integrate exactly.

Tools such as CodeCarbon and carbontracker report energy (or average power) per interval, not power
readings. An interval [start, end] with average power P becomes samples of value P at its start, at
its end and at evenly spaced points between (so no step looks like a gap under the views' rule of
5 x the median step); the trapezoidal integral over the interval is then P x (end - start). An interval
that starts where the previous one ended gets its first sample 1 µs later, so the curve steps cleanly.
"""

from __future__ import annotations

import numpy as np
from dlwh._lazy import pandas as pd

MAX_SAMPLES = 500_000


def step_samples(intervals: pd.DataFrame) -> pd.DataFrame:
    """Samples (sensor_key, ts, metric 'power', unit 'W', value, duration_s NULL) for each interval.

    ``intervals`` has sensor_key, start (naive UTC), end, power_w; rows with end <= start or a NULL
    power are skipped. Intervals of one sensor must not overlap (starts are clipped to the previous end).
    """
    cols = ["sensor_key", "ts", "metric", "unit", "value", "duration_s"]
    iv = intervals.dropna(subset=["start", "end", "power_w"])
    iv = iv[iv["end"] > iv["start"]].sort_values(["sensor_key", "start"], kind="stable").reset_index(drop=True)
    if iv.empty:
        return pd.DataFrame(columns=cols)
    prev_end = iv.groupby("sensor_key")["end"].shift(1)
    touching = prev_end.notna() & (iv["start"] <= prev_end)
    start = iv["start"].where(~touching, prev_end + pd.Timedelta(microseconds=1))
    iv = iv.assign(start=start)
    iv = iv[iv["end"] > iv["start"]].reset_index(drop=True)
    length = (iv["end"] - iv["start"]).dt.total_seconds()
    spacing = length.groupby(iv["sensor_key"]).transform("median") / 2
    spacing = spacing.clip(lower=1.0, upper=600.0)
    parts = np.maximum(2, np.ceil(length / spacing)).astype(np.int64)
    while parts.sum() + len(parts) > MAX_SAMPLES:
        spacing = spacing * 2
        parts = np.maximum(2, np.ceil(length / spacing)).astype(np.int64)
    counts = parts + 1
    row = np.repeat(np.arange(len(iv)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    frac = offsets / np.repeat(parts, counts)
    starts = iv["start"].to_numpy()[row]
    span_ns = (iv["end"] - iv["start"]).to_numpy()[row].astype("timedelta64[ns]").astype(np.int64)
    ts = starts + (frac * span_ns).round().astype("timedelta64[ns]")
    return pd.DataFrame({
        "sensor_key": iv["sensor_key"].to_numpy()[row],
        "ts": pd.to_datetime(ts).astype("datetime64[us]"),
        "metric": "power", "unit": "W",
        "value": iv["power_w"].to_numpy(dtype=float)[row],
        "duration_s": np.nan,
    }).reset_index(drop=True)
