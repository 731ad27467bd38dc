"""dlwh fit: cross-validate every (target, algorithm) per GPU, then fit on all rows and store the models.

Models are stored in the warehouse (fitted_models) with the training data's hash, feature ranges and
their cross-validated metrics, so dlwh predict reads them back without refitting.
"""

from __future__ import annotations

import json
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
        progress: Callable[[str], None] | None = None, in_transaction: bool = False) -> FitReport:
    """Cross-validate and fit per GPU; returns the report (scores: gpu, target, algo, cv, n, mape_pct, r2_log).

    Library warnings (statsmodels' rank-deficient designs, scikit-learn's convergence) do not reach
    the terminal: each kind becomes one note of the report.
    """
    import warnings

    from threadpoolctl import threadpool_limits

    with warnings.catch_warnings(record=True) as caught, threadpool_limits(limits=1):
        warnings.simplefilter("always")
        report = _fit(con, target, algo, gpu, cv, n_estimators, store, progress, not in_transaction)
    report.notes.extend(_warning_notes(caught))
    return report


def _warning_notes(caught) -> list[str]:
    """One line per kind of library warning caught while fitting."""
    kinds = {}
    for w in caught:
        name = w.category.__name__
        kinds.setdefault(name, 0)
        kinds[name] += 1
    notes = []
    for name, count in kinds.items():
        if "Singular" in name or "rank" in name.lower():
            notes.append(f"ols: the design matrix was rank-deficient in {count} fit(s) (features vary together, e.g. "
                         "every run at one power limit); its coefficients are not unique: read them with care")
        else:
            notes.append(f"{count} library warning(s) of kind {name} while fitting (set DLWH_DEBUG=1 to see them)")
    return notes


def _baseline(rows: pd.DataFrame, t: str, folds) -> pd.Series:
    """'Nothing changes': each test row predicted by its configuration's training rows (their median),
    else by its workload's, under the same folds."""
    out = pd.Series(np.nan, index=rows.index)
    for train_idx, test_idx, _ in folds:
        train, test = rows.loc[train_idx], rows.loc[test_idx]
        by_cfg = train.groupby("config")[t].median()
        by_wl = train.groupby("workload")[t].median()
        pred = test["config"].map(by_cfg).fillna(test["workload"].map(by_wl))
        out.loc[test_idx] = pred.to_numpy()
    return out


def _fit(con, target, algo, gpu, cv, n_estimators, store, progress, own_transaction=True) -> FitReport:
    from dlwh.analysis.response import fit_response

    targets, algos = targets_for(target), algos_for(algo)
    data = load_training_data(con, gpu)
    CV.splits(data.head(1), cv)  # validates the --cv name before any work
    report = FitReport(scores=pd.DataFrame())
    rows_out = []
    pending: list[tuple] = []   # (gpu, target, algo, blob JSON, params, rows, sha, score, summary)
    stored_at = datetime.now(timezone.utc).replace(tzinfo=None)
    for gpu_name, rows in data.groupby("gpu", sort=True):
        rows = rows.copy()
        sha = data_hash(rows)
        if "physics" in algos:
            if progress:
                progress(f"{gpu_name}: {len(rows)} rows at {rows['power_limit_w'].nunique()} power limit(s); "
                         "fitting the power-limit response")
            resp = fit_response(con, rows, str(gpu_name), progress=progress)
            report.physics[gpu_name] = {**resp.model.params(), "how": resp.how, "kind": resp.kind}
            if resp.kind == "prior":
                report.notes.append(f"{gpu_name}: measured at one power limit only; the response comes from {resp.how}; "
                                    "a sweep of a few limits (dlwh collect --power-limits) refines it")
            for t in targets:
                sc = resp.scores.get(t, {})
                score = {"gpu": gpu_name, "target": t, "algo": "physics", "cv": sc.get("protocol", "none"),
                         "n": int(sc.get("n") or 0), "mape_pct": float(sc.get("mape_pct", np.nan)),
                         "r2_log": float("nan"), "baseline_mape_pct": float(sc.get("baseline_mape_pct", np.nan))}
                rows_out.append(score)
                pending.append((gpu_name, t, "physics", {"response": resp.to_json()}, report.physics[gpu_name],
                                len(rows), sha, score, None))
        ml = [a for a in algos if a != "physics"]
        if not ml:
            continue
        if len(rows) < CV.MIN_ROWS:
            report.notes.append(f"{gpu_name}: only {len(rows)} training row(s); gbr/poly/ols not fitted (measure at least "
                                f"{CV.MIN_ROWS}, e.g. one run per power limit)")
            continue
        if progress:
            progress(f"{gpu_name}: {len(rows)} rows, {rows['config'].nunique()} configurations; cross-validating ({cv})")
        folds = CV.splits(rows, cv)
        oof = CV.out_of_fold(rows, ml, targets, folds, n_estimators=n_estimators)
        base = {t: _baseline(rows, t, folds) for t in targets}
        for algo_name in ml:
            for t in targets:
                if progress:
                    progress(f"{gpu_name}: fitting {algo_name} for {t}")
                learner = L.make(algo_name, n_estimators=n_estimators)
                fitted = None
                if len(L.Learner.usable(rows, t)) < CV.MIN_ROWS:
                    report.notes.append(f"{gpu_name} {t} {algo_name}: fewer than {CV.MIN_ROWS} epoch rows; not fitted")
                else:
                    try:
                        learner.fit(rows, t)
                        learner.set_interval(np.log(oof[(algo_name, t)] / rows[t]))
                        fitted = learner
                    except DlwhError as err:
                        report.notes.append(f"{gpu_name} {t}: {err}")
                    except ValueError as err:
                        report.notes.append(f"{gpu_name} {t} {algo_name}: cannot fit ({err})")
                if fitted is not None and algo_name == "ols":
                    report.ols_summaries[f"{gpu_name}/{t}"] = learner.summary()
                pred = oof[(algo_name, t)]
                ok = pred.notna() & rows[t].notna()
                score = {"gpu": gpu_name, "target": t, "algo": algo_name, "cv": cv, "n": int(ok.sum()),
                         "mape_pct": mape_pct(pred[ok], rows.loc[ok, t]), "r2_log": r2_log(pred[ok], rows.loc[ok, t]),
                         "baseline_mape_pct": mape_pct(base[t][ok], rows.loc[ok, t])}
                rows_out.append(score)
                if fitted is not None:
                    blob = {"refit": {"algo": algo_name, "target": t, "n_estimators": n_estimators,
                                      "log_halfwidth": fitted.log_halfwidth}}
                    pending.append((gpu_name, t, algo_name, blob, fitted.params(), fitted.n_rows or len(rows), sha, score,
                                    report.ols_summaries.get(f"{gpu_name}/{t}") if algo_name == "ols" else None,
                                    fitted))
    if not rows_out:
        raise DlwhError("nothing fitted: " + "; ".join(report.notes))
    report.scores = pd.DataFrame(rows_out, columns=["gpu", "target", "algo", "cv", "n", "mape_pct", "r2_log",
                                                    "baseline_mape_pct"])
    if store:
        report.stored = _store_all(con, pending, rows_out, stored_at, own_transaction)
    return report


def _clean(value):
    return None if isinstance(value, float) and not np.isfinite(value) else value


def _store_all(con, pending: list[tuple], scores: list[dict], at: datetime, own: bool = True) -> int:
    """Every model and score of this fit in ONE transaction (all or nothing): our own, unless
    ``fit(..., in_transaction=True)`` says the caller holds one (dlwh fit does)."""
    from contextlib import nullcontext

    from dlwh.warehouse.db import transaction

    versions = json.dumps(_versions())
    with transaction(con) if own else nullcontext():
        for item in pending:
            gpu, target, algo, blob, params, n_rows, sha, score, summary = item[:9]
            learner = item[9] if len(item) > 9 else None
            space = learner.space if learner is not None else None
            features = space.names() if space else []
            ranges = {"ranges": space.ranges, "categories": space.categories} if space else {}
            metrics = {k: _clean(v) for k, v in score.items() if k in ("cv", "n", "mape_pct", "r2_log", "baseline_mape_pct")}
            con.execute("DELETE FROM fitted_models WHERE model_id = ?", [f"{gpu}/{target}/{algo}"])
            con.execute(
                "INSERT INTO fitted_models (model_id, gpu_scope, target, algo, fitted_at, data_sha256, n_rows, features, "
                "feature_ranges, metrics, params, summary, versions, blob) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [f"{gpu}/{target}/{algo}", gpu, target, algo, at, sha, int(n_rows), json.dumps(features),
                 json.dumps(ranges, default=_jsonable), json.dumps(metrics), json.dumps(params, default=_jsonable),
                 summary, versions, json.dumps(blob, default=_jsonable).encode()])
        for s in scores:
            con.execute("DELETE FROM fit_scores WHERE gpu_scope = ? AND target = ? AND algo = ? AND cv = ?",
                        [s["gpu"], s["target"], s["algo"], s["cv"]])
            con.execute("INSERT INTO fit_scores (gpu_scope, target, algo, cv, n, mape_pct, r2, fitted_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [s["gpu"], s["target"], s["algo"], s["cv"], s["n"], _clean(s["mape_pct"]), _clean(s["r2_log"]), at])
    return len(pending)


def _jsonable(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def score_table(scores: pd.DataFrame) -> pd.DataFrame:
    """The printed table: one row per GPU and algorithm, MAPE % and R² (log) per target."""
    if scores.empty:
        return scores
    short = {"time_per_epoch_s": "time", "avg_power_w": "power", "energy_per_epoch_j": "energy"}
    frame = scores.assign(t=scores["target"].map(short))
    if "baseline_mape_pct" not in frame:
        frame["baseline_mape_pct"] = np.nan
    wide = frame.pivot_table(index=["gpu", "algo"], columns="t", values=["mape_pct", "r2_log", "baseline_mape_pct"],
                             aggfunc="first", dropna=False)
    order = [t for t in ("time", "power", "energy") if t in set(frame["t"])]
    out = pd.DataFrame(index=wide.index)

    def fmt(v, digits=1):
        return "n/a" if pd.isna(v) else f"{v:.{digits}f}"

    for t in order:
        out[f"{t} MAPE %"] = [fmt(m) + (f" ({fmt(b)})" if not pd.isna(b) else "")
                              for m, b in zip(wide[("mape_pct", t)], wide[("baseline_mape_pct", t)])]
        out[f"{t} R²(log)"] = wide[("r2_log", t)].map(lambda v: fmt(v, 3))
    n = frame.groupby(["gpu", "algo"])["n"].max()
    out["rows"] = n
    out["scored by"] = frame.groupby(["gpu", "algo"])["cv"].first()
    algo_order = {a: i for i, a in enumerate(("physics", "gbr", "poly", "ols"))}
    out = out.reset_index()
    out = out.sort_values(["gpu", "algo"], key=lambda s: s.map(algo_order) if s.name == "algo" else s)
    return out.reset_index(drop=True)
