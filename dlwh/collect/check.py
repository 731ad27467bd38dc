"""Energy of a run from its nvml.csv two ways: integrated power (trapezoid) and the energy counter.

``energy_check(run_dir)`` returns, per GPU, over the window between the first and the last row that
has an ``energy_total_mj`` reading (the collector reads the counter in the first and last row):

- ``counter_j``: last minus first ``energy_total_mj`` (mJ → J);
- ``trapezoid_j`` / ``trapezoid_instant_j``: the trapezoid rule over ``power_w`` /
  ``power_instant_w`` (W) against ``monotonic_ns``, rows in the window only;
- ``*_rel_diff``: (trapezoid − counter) / counter.

Plain csv, no pandas: it runs on GPU nodes too. The warehouse recomputes this through SQL.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Optional, Union


def _f(v: str) -> Optional[float]:
    return float(v) if v not in ("", None) else None


def _trapezoid(ts: list[int], ps: list[Optional[float]]) -> Optional[float]:
    pts = [(t, p) for t, p in zip(ts, ps) if p is not None]
    if len(pts) < 2:
        return None
    return sum((p0 + p1) / 2.0 * (t1 - t0) / 1e9 for (t0, p0), (t1, p1) in zip(pts, pts[1:]))


def energy_check(run_dir: Union[str, Path]) -> dict[str, dict[str, Any]]:
    """Per GPU index (as text): counter vs trapezoid energy in J, and the window in s."""
    rows_by_gpu: dict[str, list[dict[str, str]]] = {}
    with open(Path(run_dir) / "nvml.csv", newline="") as f:
        for row in csv.DictReader(f):
            rows_by_gpu.setdefault(row["gpu_index"], []).append(row)
    out: dict[str, dict[str, Any]] = {}
    for gpu, rows in rows_by_gpu.items():
        idx = [i for i, r in enumerate(rows) if r["energy_total_mj"]]
        if len(idx) < 2:
            continue
        win = rows[idx[0]: idx[-1] + 1]
        ts = [int(r["monotonic_ns"]) for r in win]
        counter = (int(win[-1]["energy_total_mj"]) - int(win[0]["energy_total_mj"])) / 1000.0
        trap = _trapezoid(ts, [_f(r["power_w"]) for r in win])
        trap_i = _trapezoid(ts, [_f(r["power_instant_w"]) for r in win])
        res: dict[str, Any] = {
            "window_s": (ts[-1] - ts[0]) / 1e9, "rows": len(win), "counter_j": counter,
            "trapezoid_j": trap, "trapezoid_instant_j": trap_i,
            "mean_power_w": counter / ((ts[-1] - ts[0]) / 1e9) if ts[-1] > ts[0] else None,
        }
        for key in ("trapezoid_j", "trapezoid_instant_j"):
            v = res[key]
            res[key.replace("_j", "_rel_diff")] = (v - counter) / counter if v is not None and counter else None
        out[gpu] = res
    return out
