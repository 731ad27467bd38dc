"""The training data (the training_data view) as a DataFrame, plus small helpers shared by analysis.

No scikit-learn here: reading the warehouse needs only DuckDB and pandas.
"""

from __future__ import annotations

import hashlib
import re

import duckdb
import numpy as np
from dlwh._lazy import pandas as pd

from dlwh.errors import DlwhError, UsageError

TARGETS = {
    "speed": "time_per_epoch_s",
    "power": "avg_power_w",
    "energy": "energy_per_epoch_j",
}
TARGET_UNITS = {"time_per_epoch_s": "s", "avg_power_w": "W", "energy_per_epoch_j": "J"}
ALGOS = ("gbr", "poly", "ols", "physics")
CV_KINDS = ("kfold", "group-model", "group-power-limit")


def normalise_gpu(name: str | None) -> str | None:
    """'NVIDIA A100-SXM4-80GB' -> 'A100', 'Tesla V100-SXM2-16GB' -> 'V100', 'a40' -> 'A40'.

    Twin of the SQL macro normalise_gpu (0004_analysis.sql).
    """
    if name is None:
        return None
    text = re.sub(r"(?i)\b(nvidia|tesla|geforce|quadro)\b", "", str(name))
    text = re.sub(r"(?i)[- ](sxm\d*|pcie|\d+\s*gb|hbm\d*e?|nvl|mig)\b.*$", "", text)
    text = re.sub(r"\s+", " ", text).strip().upper()
    return text or None


def targets_for(option: str) -> list[str]:
    """Target columns for --target speed|power|energy|all."""
    if option == "all":
        return list(TARGETS.values())
    if option not in TARGETS:
        raise UsageError(f"--target {option!r} is not one of speed, power, energy, all")
    return [TARGETS[option]]


def algos_for(option: str) -> list[str]:
    """Algorithms for --algo gbr|poly|ols|physics|all."""
    if option == "all":
        return list(ALGOS)
    if option not in ALGOS:
        raise UsageError(f"--algo {option!r} is not one of {', '.join(ALGOS)}, all")
    return [option]


def parse_limits(text: str) -> list[float]:
    """Power limits from '200', '150,200,250' or a range 'start:stop:step' (stop included), in W."""
    spec = str(text).strip()
    try:
        if ":" in spec:
            parts = [float(p) for p in spec.split(":")]
            if len(parts) != 3 or parts[2] <= 0 or parts[1] < parts[0]:
                raise ValueError
            start, stop, step = parts
            count = int(np.floor((stop - start) / step + 1e-9)) + 1
            values = [start + k * step for k in range(count)]
        else:
            values = [float(p) for p in spec.split(",") if p.strip()]
    except ValueError:
        raise UsageError(f"power limits {text!r}: give W as 200, a list 150,200,250 or a range 100:300:25") from None
    if not values or any(not np.isfinite(v) or v <= 0 for v in values):
        raise UsageError(f"power limits {text!r}: every limit must be a positive, finite number of W")
    if len(values) > 1000:
        raise UsageError(f"power limits {text!r}: {len(values)} limits; give at most 1000 (a coarser step)")
    return values


def load_training_data(con: duckdb.DuckDBPyConnection, gpu: str | None = None) -> pd.DataFrame:
    """Rows of training_data (optionally of one GPU) with a 'workload' column (dataset/model).

    Raises DlwhError when there is nothing to learn from.
    """
    sql = "SELECT * FROM training_data"
    params: list = []
    if gpu:
        sql += " WHERE gpu = ?"
        params.append(normalise_gpu(gpu))
    frame = con.execute(sql + " ORDER BY gpu, config, power_limit_w, source_id", params).df()
    if frame.empty:
        if gpu:
            have = [r[0] for r in con.execute("SELECT DISTINCT gpu FROM training_data ORDER BY 1").fetchall()]
            hint = f"GPUs with data: {', '.join(have)}" if have else "ingest runs or summaries first"
            raise DlwhError(f"no training data for GPU {normalise_gpu(gpu)}; {hint}")
        raise DlwhError("no training data in this warehouse; ingest collected runs (with epoch or step spans) "
                        "or summary sweeps such as the Zeus summary_power CSVs first")
    frame["workload"] = frame["dataset"].fillna("-") + "/" + frame["model"].fillna("-")
    for column in ("batch_size", "n_gpus"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def data_hash(frame: pd.DataFrame) -> str:
    """sha256 of the training rows (sorted, fixed columns): names the data a model was fitted on."""
    columns = ["source_id", "gpu", "config", "power_limit_w", "time_per_epoch_s", "avg_power_w", "energy_per_epoch_j"]
    text = frame[columns].sort_values(["source_id", "power_limit_w"]).to_csv(index=False, float_format="%.9g")
    return hashlib.sha256(text.encode()).hexdigest()


def mape_pct(predicted, actual) -> float:
    """Mean absolute percentage error, % (rows with a prediction only)."""
    p = np.asarray(predicted, dtype=float)
    a = np.asarray(actual, dtype=float)
    ok = np.isfinite(p) & np.isfinite(a) & (a != 0)
    return float(100 * np.mean(np.abs(p[ok] / a[ok] - 1))) if ok.any() else float("nan")


def r2_log(predicted, actual) -> float:
    """R² of log values (the targets span orders of magnitude; log keeps one workload from dominating)."""
    p = np.asarray(predicted, dtype=float)
    a = np.asarray(actual, dtype=float)
    ok = np.isfinite(p) & np.isfinite(a) & (p > 0) & (a > 0)
    if ok.sum() < 2:
        return float("nan")
    lp, la = np.log(p[ok]), np.log(a[ok])
    total = np.sum((la - la.mean()) ** 2)
    return float(1 - np.sum((la - lp) ** 2) / total) if total > 0 else float("nan")
