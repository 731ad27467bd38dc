"""Model features from training rows: numeric (logs of MACs, parameters, batch size, epoch size; the
power limit) and one-hot categories (model, dataset, optimizer, precision, work unit).

Where MACs, parameters or the epoch size are unknown the log feature is 0 and a ``*_known`` flag 0, so
the models use the other features there (the issue's rule for networks the zoo lacks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from dlwh._lazy import pandas as pd

NUMERIC = ("log2_batch", "power_limit_w", "log10_macs", "macs_known", "log10_params", "params_known",
           "log10_samples_per_epoch", "samples_known", "n_gpus")
CATEGORIES = ("model", "dataset", "optimizer", "precision", "work_unit")
# raw columns whose training range is recorded (predict warns outside it)
RANGED = ("batch_size", "power_limit_w", "macs_per_sample", "params", "samples_per_epoch", "n_gpus")


def _log(series: pd.Series, base_log) -> tuple[pd.Series, pd.Series]:
    values = pd.to_numeric(series, errors="coerce")
    known = values.notna() & (values > 0)
    out = pd.Series(0.0, index=series.index)
    out[known] = base_log(values[known].astype(float))
    return out, known.astype(float)


def numeric_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """The numeric features of ``rows`` (columns NUMERIC)."""
    out = pd.DataFrame(index=rows.index)
    batch = pd.to_numeric(rows.get("batch_size"), errors="coerce")
    out["log2_batch"] = np.log2(batch.where(batch > 0)).fillna(0.0)
    out["power_limit_w"] = pd.to_numeric(rows["power_limit_w"], errors="coerce").astype(float)
    out["log10_macs"], out["macs_known"] = _log(rows.get("macs_per_sample", pd.Series(np.nan, index=rows.index)), np.log10)
    out["log10_params"], out["params_known"] = _log(rows.get("params", pd.Series(np.nan, index=rows.index)), np.log10)
    out["log10_samples_per_epoch"], out["samples_known"] = _log(
        rows.get("samples_per_epoch", pd.Series(np.nan, index=rows.index)), np.log10)
    out["n_gpus"] = pd.to_numeric(rows.get("n_gpus", 1), errors="coerce").fillna(1.0).astype(float)
    return out


@dataclass
class FeatureSpace:
    """The categories seen in training (one-hot columns) and the training ranges of raw inputs."""

    categories: dict[str, list[str]] = field(default_factory=dict)
    ranges: dict[str, list[float]] = field(default_factory=dict)

    @classmethod
    def learn(cls, rows: pd.DataFrame) -> "FeatureSpace":
        cats = {c: sorted(rows[c].fillna("-").astype(str).unique().tolist()) for c in CATEGORIES if c in rows}
        ranges = {}
        for column in RANGED:
            values = pd.to_numeric(rows.get(column), errors="coerce").dropna() if column in rows else pd.Series(dtype=float)
            if len(values):
                ranges[column] = [float(values.min()), float(values.max())]
        return cls(categories=cats, ranges=ranges)

    def names(self) -> list[str]:
        """Feature names in column order."""
        return list(NUMERIC) + [f"{c}={v}" for c, values in self.categories.items() for v in values]

    def transform(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Numeric features plus one-hot columns for the training categories (unseen values: all zero)."""
        out = numeric_frame(rows)
        for column, values in self.categories.items():
            seen = rows[column].fillna("-").astype(str) if column in rows else pd.Series("-", index=rows.index)
            for value in values:
                out[f"{column}={value}"] = (seen == value).astype(float)
        return out

    def out_of_range(self, rows: pd.DataFrame) -> list[str]:
        """Human lines naming inputs outside the training data's range or categories."""
        notes = []
        for column, (low, high) in self.ranges.items():
            if column not in rows:
                continue
            values = pd.to_numeric(rows[column], errors="coerce").dropna()
            outside = values[(values < low - 1e-9) | (values > high + 1e-9)]
            if len(outside):
                notes.append(f"{column} {_fmt(outside.iloc[0])} is outside the training data's range "
                             f"{_fmt(low)}..{_fmt(high)}: extrapolating")
        for column in ("model", "dataset"):
            if column in rows and column in self.categories:
                for value in rows[column].dropna().astype(str).unique():
                    if value not in self.categories[column]:
                        notes.append(f"{column} {value!r} is not in the training data: the models rely on "
                                     "its MACs, parameters and the other features")
        return notes


def _fmt(value: float) -> str:
    value = float(value)
    if value and (abs(value) >= 1e6 or abs(value) < 1e-2):
        return f"{value:.3g}"
    return f"{value:g}" if value == math.floor(value) else f"{value:.4g}"
