"""Cross-validation: splits of training rows and out-of-fold predictions of every algorithm.

Splits are lists of (train index labels, test index labels, fold label) over one GPU's rows.
"""

from __future__ import annotations

import numpy as np
from dlwh._lazy import pandas as pd

from dlwh.analysis import learners as L
from dlwh.errors import UsageError

Split = tuple["pd.Index", "pd.Index", str]
MIN_ROWS = 5  # fewer training rows than this: no model


def splits(rows: pd.DataFrame, kind: str, k: int = 5) -> list[Split]:
    """kfold (k random folds), group-model (leave one model out), group-power-limit (one limit out)."""
    if kind == "kfold":
        order = np.random.default_rng(0).permutation(len(rows))
        parts = np.array_split(order, min(k, len(rows)))
        return [(rows.index.delete(p), rows.index[p], f"fold {i + 1}") for i, p in enumerate(parts) if len(p)]
    if kind == "group-model":
        return group_splits(rows, rows["model"].fillna("-"))
    if kind == "group-power-limit":
        return group_splits(rows, rows["power_limit_w"].map(lambda v: f"{v:g} W"))
    raise UsageError(f"--cv {kind!r} is not one of kfold, group-model, group-power-limit")


def physics_splits(rows: pd.DataFrame, kind: str, k: int = 5) -> list[Split]:
    """The folds for the power-limit model, which predicts a configuration from one run of it: as
    ``splits``, except that leaving a model out (group-model) keeps that model's highest-limit run of
    each configuration in training (its one required input) and scores only its other runs."""
    if kind == "group-model":
        return top_limit_splits(rows, rows["model"].fillna("-"))
    return splits(rows, kind, k)


def group_splits(rows: pd.DataFrame, groups: pd.Series) -> list[Split]:
    """Leave one group out."""
    out = []
    for label in pd.unique(groups):
        test = rows.index[(groups == label).to_numpy()]
        out.append((rows.index.difference(test), test, str(label)))
    return out


def top_limit_splits(rows: pd.DataFrame, unit: pd.Series) -> list[Split]:
    """For each group of ``unit``: train on all other rows plus the highest-limit row of each of the
    group's configurations; test on the group's other rows (protocol 3 of the accuracy benchmark)."""
    out = []
    for label in pd.unique(unit):
        member = rows.index[(unit == label).to_numpy()]
        group = rows.loc[member]
        top = group.sort_values("power_limit_w").groupby("config").tail(1).index
        test = member.difference(top)
        if len(test):
            out.append((rows.index.difference(test), test, str(label)))
    return out


def _fold(rows: pd.DataFrame, train_idx, test_idx, algos: list[str], targets: list[str],
          n_estimators: int) -> dict[tuple[str, str], pd.Series]:
    """Predictions of one fold's test rows, per (algo, target)."""
    from threadpoolctl import threadpool_limits

    train, test = rows.loc[train_idx], rows.loc[test_idx]
    out: dict[tuple[str, str], pd.Series] = {}
    with threadpool_limits(limits=1):
        for algo in algos:
            if algo == "physics":
                if train["power_limit_w"].nunique() < 2:
                    continue  # no response to learn from
                values = L.Physics().fit(train).predict_all(test)
                for target in targets:
                    out[(algo, target)] = values[target]
                continue
            for target in targets:
                learner = L.make(algo, n_estimators=n_estimators)
                if len(L.Learner.usable(train, target)) < MIN_ROWS:
                    continue
                try:
                    learner.fit(train, target)
                except Exception:  # too few usable rows in this fold (e.g. ols without MACs)
                    continue
                usable = L.Learner.usable(test, target)
                if len(usable):
                    out[(algo, target)] = learner.predict(usable)["pred"]
    return out


def out_of_fold(rows: pd.DataFrame, algos: list[str], targets: list[str], folds: list[Split],
                n_estimators: int = 200, n_jobs: int = 1) -> dict[tuple[str, str], pd.Series]:
    """Predictions for every test row of every fold, per (algo, target); NaN where one cannot predict.

    ``n_jobs`` > 1 runs folds in parallel processes (joblib).
    """
    if n_jobs == 1:
        parts = [_fold(rows, tr, te, algos, targets, n_estimators) for tr, te, _ in folds]
    else:
        from joblib import Parallel, delayed

        parts = Parallel(n_jobs=n_jobs)(delayed(_fold)(rows, tr, te, algos, targets, n_estimators)
                                        for tr, te, _ in folds)
    preds = {(a, t): pd.Series(np.nan, index=rows.index) for a in algos for t in targets}
    for part in parts:
        for key, values in part.items():
            preds[key].loc[values.index] = values.to_numpy()
    return preds
