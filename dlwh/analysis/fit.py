"""dlwh fit: cross-validate every (target, algorithm) per GPU, then fit on all rows and store the models.

Models are stored in the warehouse (fitted_models) with the training data's hash, feature ranges and
their cross-validated metrics, so dlwh predict reads them back without refitting.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import duckdb
import numpy as np
from dlwh._lazy import pandas as pd

from dlwh.analysis import cv as CV
from dlwh.analysis import learners as L
from dlwh.analysis.data import algos_for, data_hash, load_training_data, mape_pct, r2_log, targets_for
from dlwh.errors import DlwhError


@dataclass
class FitReport:
    """What dlwh fit did: the score table, OLS summaries, physics parameters, notes."""

    scores: pd.DataFrame
    ols_summaries: dict[str, str] = field(default_factory=dict)       # '<gpu>/<target>' -> text
    physics: dict[str, dict] = field(default_factory=dict)            # gpu -> params
    notes: list[str] = field(default_factory=list)
    stored: int = 0


def _versions() -> dict[str, str]:
    import sklearn
    import statsmodels
    import scipy

    return {"scikit-learn": sklearn.__version__, "statsmodels": statsmodels.__version__, "scipy": scipy.__version__,
            "numpy": np.__version__, "pandas": pd.__version__}


def fit(con: duckdb.DuckDBPyConnection, target: str = "all", algo: str = "all", gpu: str | None = None,
        cv: str = "kfold", n_estimators: int = 200, store: bool = True,
        progress: Callable[[str], None] | None = None) -> FitReport:
    """Cross-validate and fit per GPU; returns the report (scores: gpu, target, algo, cv, n, mape_pct, r2_log)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # tiny matrices: BLAS threads only contend with each other
        return _fit(con, target, algo, gpu, cv, n_estimators, store, progress)


def _fit(con, target, algo, gpu, cv, n_estimators, store, progress) -> FitReport:
    targets, algos = targets_for(target), algos_for(algo)
    data = load_training_data(con, gpu)
    CV.splits(data.head(1), cv)  # validates the --cv name before any work
    report = FitReport(scores=pd.DataFrame())
    rows_out = []
    stored_at = datetime.now(timezone.utc).replace(tzinfo=None)
    for gpu_name, rows in data.groupby("gpu", sort=True):
        rows = rows.copy()
        if len(rows) < CV.MIN_ROWS:
            report.notes.append(f"{gpu_name}: only {len(rows)} training row(s); not fitted (measure at least "
                                f"{CV.MIN_ROWS}, e.g. one run per power limit)")
            continue
        if progress:
            progress(f"{gpu_name}: {len(rows)} rows, {rows['config'].nunique()} configurations; cross-validating ({cv})")
        folds = CV.splits(rows, cv)
        oof = CV.out_of_fold(rows, [a for a in algos if a != "physics"], targets, folds, n_estimators=n_estimators)
        if "physics" in algos:
            oof.update(CV.out_of_fold(rows, ["physics"], targets, CV.physics_splits(rows, cv)))
        sha = data_hash(rows)
        for algo_name in algos:
            fitted: dict[str, L.Learner] = {}
            if algo_name == "physics":
                if rows["power_limit_w"].nunique() < 2:
                    report.notes.append(f"{gpu_name}: physics needs runs at two or more power limits to learn the "
                                        "GPU's response; not fitted")
                    continue
                if progress:
                    progress(f"{gpu_name}: fitting physics")
                model = L.Physics().fit(rows)
                for t in targets:
                    resid = np.log(oof[(algo_name, t)] / rows[t])
                    model.log_halfwidths[t] = float(np.nanquantile(np.abs(resid), 0.9)) if resid.notna().any() else float("nan")
                    fitted[t] = model
                report.physics[gpu_name] = model.params()
            else:
                for t in targets:
                    if progress:
                        progress(f"{gpu_name}: fitting {algo_name} for {t}")
                    learner = L.make(algo_name, n_estimators=n_estimators)
                    if len(L.Learner.usable(rows, t)) < CV.MIN_ROWS:
                        report.notes.append(f"{gpu_name} {t} {algo_name}: fewer than {CV.MIN_ROWS} epoch rows; not fitted")
                        continue
                    try:
                        learner.fit(rows, t)
                    except DlwhError as err:
                        report.notes.append(f"{gpu_name} {t}: {err}")
                        continue
                    except ValueError as err:
                        report.notes.append(f"{gpu_name} {t} {algo_name}: cannot fit ({err})")
                        continue
                    learner.set_interval(np.log(oof[(algo_name, t)] / rows[t]))
                    fitted[t] = learner
                    if algo_name == "ols":
                        report.ols_summaries[f"{gpu_name}/{t}"] = learner.summary()
            for t in targets:
                pred = oof[(algo_name, t)]
                ok = pred.notna() & rows[t].notna()
                score = {"gpu": gpu_name, "target": t, "algo": algo_name, "cv": cv, "n": int(ok.sum()),
                         "mape_pct": mape_pct(pred[ok], rows.loc[ok, t]), "r2_log": r2_log(pred[ok], rows.loc[ok, t])}
                rows_out.append(score)
                learner = fitted.get(t)
                if store and learner is not None:
                    _store(con, gpu_name, t, algo_name, learner, rows, sha, score, stored_at,
                           report.ols_summaries.get(f"{gpu_name}/{t}") if algo_name == "ols" else None)
                    report.stored += 1
        if store:
            _store_scores(con, [s for s in rows_out if s["gpu"] == gpu_name], stored_at)
    if not rows_out:
        raise DlwhError("nothing fitted: " + "; ".join(report.notes))
    report.scores = pd.DataFrame(rows_out, columns=["gpu", "target", "algo", "cv", "n", "mape_pct", "r2_log"])
    return report


def _store(con, gpu, target, algo, learner: L.Learner, rows: pd.DataFrame, sha: str, score: dict,
           at: datetime, summary: str | None) -> None:
    space = learner.space
    features = space.names() if space else []
    ranges = {"ranges": space.ranges, "categories": space.categories} if space else {}
    metrics = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in score.items()
               if k in ("cv", "n", "mape_pct", "r2_log")}
    con.execute("DELETE FROM fitted_models WHERE model_id = ?", [f"{gpu}/{target}/{algo}"])
    con.execute(
        "INSERT INTO fitted_models (model_id, gpu_scope, target, algo, fitted_at, data_sha256, n_rows, features, "
        "feature_ranges, metrics, params, summary, versions, blob) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [f"{gpu}/{target}/{algo}", gpu, target, algo, at, sha, int(learner.n_rows or len(rows)),
         json.dumps(features), json.dumps(ranges), json.dumps(metrics), json.dumps(learner.params(), default=str),
         summary, json.dumps(_versions()), pickle.dumps(learner)],
    )


def _store_scores(con, scores: list[dict], at: datetime) -> None:
    for s in scores:
        con.execute("DELETE FROM fit_scores WHERE gpu_scope = ? AND target = ? AND algo = ? AND cv = ?",
                    [s["gpu"], s["target"], s["algo"], s["cv"]])
        con.execute("INSERT INTO fit_scores (gpu_scope, target, algo, cv, n, mape_pct, r2, fitted_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [s["gpu"], s["target"], s["algo"], s["cv"], s["n"],
                     None if not np.isfinite(s["mape_pct"]) else s["mape_pct"],
                     None if not np.isfinite(s["r2_log"]) else s["r2_log"], at])


def score_table(scores: pd.DataFrame) -> pd.DataFrame:
    """The printed table: one row per GPU and algorithm, MAPE % and R² (log) per target."""
    if scores.empty:
        return scores
    short = {"time_per_epoch_s": "time", "avg_power_w": "power", "energy_per_epoch_j": "energy"}
    frame = scores.assign(t=scores["target"].map(short))
    wide = frame.pivot_table(index=["gpu", "algo"], columns="t", values=["mape_pct", "r2_log"], aggfunc="first",
                             dropna=False)
    order = [t for t in ("time", "power", "energy") if t in set(frame["t"])]
    out = pd.DataFrame(index=wide.index)
    for t in order:
        out[f"{t} MAPE %"] = wide[("mape_pct", t)].map(lambda v: "n/a" if pd.isna(v) else f"{v:.1f}")
        out[f"{t} R²(log)"] = wide[("r2_log", t)].map(lambda v: "n/a" if pd.isna(v) else f"{v:.3f}")
    n = frame.groupby(["gpu", "algo"])["n"].max()
    out["rows"] = n
    algo_order = {a: i for i, a in enumerate(("physics", "gbr", "poly", "ols"))}
    out = out.reset_index()
    out = out.sort_values(["gpu", "algo"], key=lambda s: s.map(algo_order) if s.name == "algo" else s)
    return out.reset_index(drop=True)
