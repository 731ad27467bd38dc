"""Stage 1 of a prediction: a model's throughput and GPU power with no power cap (the GPU's highest limit).

``estimate_unconstrained(con, gpu, model, batch_size)`` answers in samples/s and W, each with a 90 %
interval:

* **measured** where the warehouse has ``dlwh bench`` runs of that (GPU, model, batch size,
  precision) at the GPU's highest limit seen (``bench_results``, without ``--sync`` or ``--layers``):
  the mean of those runs, the interval their spread or, for one run, the repeatability of a bench
  run (``MEASURED_REL``);
* **roofline** otherwise, for a model whose structure is known (the zoo's shipped
  ``zoo_structure.csv``, or rows the user stored in ``model_structure``): the time of one training
  step at batch size B is

      t_gpu = sum over layer types c of smax(MACs_c(B) / R_c, 4 * elems_c(B) / BW) + kernels * g
      t     = smax(t_gpu, kernels * L)

  with R_c the GPU's MAC rate for convolutions, depthwise/grouped convolutions, linear layers and
  attention matmuls (norms, activations, pooling, embeddings are moved bytes only), BW its memory
  bandwidth, g a GPU cost per kernel and L PyTorch's CPU cost per launched operator (a step cannot
  run faster than Python launches it); smax is a smooth maximum. The seven rates are fitted to the
  GPU's measured runs of other models (log-space least squares with a weak prior), throughput = B / t.
  Average power is ``limit * (a + b * compute share + c * memory share + d * launch share)``, the
  shares being the step's time fractions under the fitted roofline, fitted to the same runs. The
  90 % intervals come from leave-one-model-out errors of the same fit on that GPU's runs;
* **macs-loglinear** for a model known only by ``macs`` and ``params`` (log-linear in MACs,
  parameters and batch size, fitted on the GPU's runs), with its own leave-one-model-out interval.

Per-sample targets only: time per epoch is samples per epoch / throughput. docs/analysis.md ("No
power cap: a new model") has the method, docs/accuracy.md its measured accuracy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from dlwh._lazy import pandas as pd
from dlwh.errors import DlwhError, UsageError
from dlwh.models.structure import CATEGORIES, MATRIX, read_structure_table

MEASURED_REL = 0.03
"""Relative half-width of the 90 % interval of one measured bench run (throughput and power):
repeated configurations of examples/h200-bench (the --sync twins) differ by up to 3-5 % in
throughput, mostly from the synchronisation itself; NVML power is specified to +-5 %."""
BYTES = 4.0  # bytes per element moved (fp32; a bf16 fit absorbs the difference in BW)
SMOOTH = 4.0  # exponent of the smooth maximum: smax(a, b) = (a^k + b^k)^(1/k)
MIN_MODELS = 3  # distinct models of a GPU the roofline needs


@dataclass
class Unconstrained:
    """Throughput (samples/s) and average GPU power (W) with no power cap, each with a 90 % interval."""

    throughput_sps: float
    throughput_sps_lo: float
    throughput_sps_hi: float
    power_w: float
    power_w_lo: float
    power_w_hi: float
    method: str  # 'measured', 'roofline-calibrated', 'roofline', 'roofline-transfer' or 'macs-loglinear'
    notes: list[str] = field(default_factory=list)

    @property
    def energy_per_sample_j(self) -> float:
        """Energy per sample (J) = power / throughput."""
        return self.power_w / self.throughput_sps


# ----------------------------------------------------------------------------------------------
# data: measured runs and model structure


def bench_runs(con: Any) -> pd.DataFrame:
    """Every unconstrained bench run: model, batch_size, precision, gpu, gpu_key, power_limit_w,
    throughput_sps, power_w. One row per run; only runs without --sync/--layers, at the highest
    limit seen on their GPU (runs with no known limit count as unconstrained)."""
    from dlwh.analysis.data import normalise_gpu

    df = con.execute(
        """
        SELECT model, batch_size, coalesce(precision, 'fp32') AS precision, gpu, power_limit_w,
               throughput_samples_per_s AS throughput_sps, avg_power_w AS power_w,
               macs_per_sample::DOUBLE AS macs_per_sample, params::DOUBLE AS params
        FROM bench_results
        WHERE NOT coalesce(sync, false) AND NOT coalesce(layers, false)
          AND throughput_samples_per_s > 0 AND avg_power_w > 0 AND batch_size > 0 AND gpu IS NOT NULL
        """
    ).df()
    df["gpu_key"] = [normalise_gpu(g) for g in df["gpu"]]
    top = df.groupby("gpu_key")["power_limit_w"].transform("max")
    keep = df["power_limit_w"].isna() | top.isna() | (df["power_limit_w"] >= top - 1e-6)
    return df[keep].reset_index(drop=True)


def structure_table(con: Any | None = None) -> pd.DataFrame:
    """Per-(model, category) structure rows: the warehouse's ``model_structure`` (user's models)
    before the shipped zoo table. Columns as ``dlwh.models.structure.COLUMNS``."""
    shipped = pd.DataFrame(read_structure_table())
    if con is None:
        return shipped
    try:
        own = con.execute(
            "SELECT model, input_desc AS input, category, macs_per_sample, macs_fixed, elems_per_sample, "
            "elems_fixed, kernels, params FROM model_structure"
        ).df()
    except Exception:  # noqa: BLE001 - a warehouse from before migration 0009
        return shipped
    if own.empty:
        return shipped
    return pd.concat([own, shipped[~shipped["model"].isin(set(own["model"]))]], ignore_index=True)


def _wide(struct: pd.DataFrame) -> pd.DataFrame:
    """One row per model: <field>_<category> columns (0 where a model lacks a category)."""
    fields = ["macs_per_sample", "macs_fixed", "elems_per_sample", "elems_fixed", "kernels", "params"]
    wide = struct.pivot_table(index="model", columns="category", values=fields, aggfunc="sum", fill_value=0)
    wide.columns = [f"{f}_{c}" for f, c in wide.columns]
    for f in fields:
        for c in CATEGORIES:
            if f"{f}_{c}" not in wide.columns:
                wide[f"{f}_{c}"] = 0.0
    return wide.astype(float)


@dataclass
class StepFeatures:
    """Per training step, for n (model, batch size) rows: MACs per matrix layer type (n x 4),
    elements moved per layer type (n x 8), kernels (n), parameters (n), batch size (n)."""

    macs: np.ndarray
    elems: np.ndarray
    kernels: np.ndarray
    params: np.ndarray
    batch: np.ndarray


def step_features(wide: pd.DataFrame, models: Any, batch_sizes: Any) -> StepFeatures:
    """Features of one step of each (model, batch size); models must be rows of ``wide``."""
    w = wide.loc[list(models)]
    b = np.asarray(batch_sizes, dtype=float)
    macs = np.column_stack([w[f"macs_per_sample_{c}"].to_numpy() * b + w[f"macs_fixed_{c}"].to_numpy()
                            for c in MATRIX])
    elems = np.column_stack([w[f"elems_per_sample_{c}"].to_numpy() * b + w[f"elems_fixed_{c}"].to_numpy()
                             for c in CATEGORIES])
    params = w[[f"params_{c}" for c in CATEGORIES]].to_numpy().sum(axis=1)
    elems[:, CATEGORIES.index("elementwise")] += 5.0 * params  # SGD with momentum: p, grad, buffer
    kernels = w[[f"kernels_{c}" for c in CATEGORIES]].to_numpy().sum(axis=1)
    return StepFeatures(macs, elems, kernels, params, b)


# ----------------------------------------------------------------------------------------------
# the roofline


# log of: conv, depthwise, linear, attention MAC/s; bandwidth B/s; GPU s per kernel; CPU s per kernel
PRIOR = np.log([50e12, 2e12, 20e12, 20e12, 2e12, 2e12, 2e-6, 2e-5, 3e-4])
PRIOR_WEIGHT = 0.05  # residual weight per log-unit of distance from PRIOR (a weak prior)
PARAM_NAMES = ("conv_macs_per_s", "depthwise_macs_per_s", "linear_macs_per_s", "attention_macs_per_s",
               "matrix_bandwidth_bytes_per_s", "other_bandwidth_bytes_per_s", "gpu_s_per_kernel",
               "cpu_s_per_kernel", "cpu_s_per_step")
EXTRA_KERNELS = 12.0  # per step, outside the profiled pass: batch, optimizer, zeroing


def _smax(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a ** SMOOTH + b ** SMOOTH) ** (1.0 / SMOOTH)


def roofline_parts(f: StepFeatures, theta: np.ndarray) -> dict[str, np.ndarray]:
    """Step time (s) and its parts: compute, memory and launch time under rates exp(theta)."""
    rates = np.exp(theta)
    compute = f.macs / rates[:4]  # n x 4
    memory = BYTES * f.elems / np.concatenate([np.repeat(rates[4], 4), np.repeat(rates[5], 4)])  # n x 8
    per_matrix = _smax(compute, memory[:, :4])
    kernels = f.kernels + EXTRA_KERNELS
    gpu = per_matrix.sum(axis=1) + memory[:, 4:].sum(axis=1) + kernels * rates[6]
    launch = rates[8] + kernels * rates[7]
    return {"time_s": _smax(gpu, launch), "compute_s": compute.sum(axis=1), "memory_s": memory.sum(axis=1),
            "launch_s": launch, "gpu_s": gpu}


def fit_roofline(f: StepFeatures, time_s: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """Fitted log rates (``PARAM_NAMES``) for measured step times (s); ``start``: initial log rates."""
    from scipy.optimize import least_squares

    y = np.log(time_s)

    def resid(theta: np.ndarray) -> np.ndarray:
        return np.concatenate([np.log(roofline_parts(f, theta)["time_s"]) - y, PRIOR_WEIGHT * (theta - PRIOR)])

    x0 = PRIOR.copy() if start is None else np.clip(start, PRIOR - 7.9, PRIOR + 7.9)
    sol = least_squares(resid, x0, bounds=(PRIOR - 8.0, PRIOR + 8.0), method="trf", x_scale=1.0)
    return sol.x


def _power_design(parts: dict[str, np.ndarray]) -> np.ndarray:
    t = parts["time_s"]
    return np.column_stack([np.ones_like(t), np.minimum(parts["compute_s"] / t, 2.0),
                            np.minimum(parts["memory_s"] / t, 2.0), np.minimum(parts["launch_s"] / t, 2.0)])


def fit_power(parts: dict[str, np.ndarray], power_frac: np.ndarray) -> np.ndarray:
    """Coefficients of power / limit on the step's compute, memory and launch shares (ridge, small)."""
    X = _power_design(parts)
    lam = 1e-3 * np.eye(X.shape[1])
    lam[0, 0] = 0.0
    return np.linalg.solve(X.T @ X + len(X) * lam, X.T @ power_frac)


def predict_power(parts: dict[str, np.ndarray], coef: np.ndarray) -> np.ndarray:
    """Power as a fraction of the limit, clipped to [0.05, 1]."""
    return np.clip(_power_design(parts) @ coef, 0.05, 1.0)


# ----------------------------------------------------------------------------------------------
# learners of one GPU: fit on runs, predict (model, batch size) rows


@dataclass
class Fitted:
    """A fitted stage-1 learner: ``predict(models, batch_sizes) -> (throughput_sps, power_w)``."""

    method: str
    predict: Callable[[Any, Any], tuple[np.ndarray, np.ndarray]]
    # (macs_per_sample, params, batch_sizes) -> (throughput_sps, power_w), for learners that read sizes
    predict_from: Callable[[Any, Any, Any], tuple[np.ndarray, np.ndarray]] | None = None


def fit_roofline_learner(runs: pd.DataFrame, wide: pd.DataFrame, limit_w: float,
                         start: np.ndarray | None = None) -> Fitted:
    """The roofline (step time) and its power shares, fitted on ``runs`` of one GPU and precision."""
    f = step_features(wide, runs["model"], runs["batch_size"])
    theta = fit_roofline(f, runs["batch_size"].to_numpy() / runs["throughput_sps"].to_numpy(), start)
    parts = roofline_parts(f, theta)
    coef = fit_power(parts, runs["power_w"].to_numpy() / limit_w)

    def predict(models: Any, batch_sizes: Any) -> tuple[np.ndarray, np.ndarray]:
        g = step_features(wide, models, batch_sizes)
        p = roofline_parts(g, theta)
        return g.batch / p["time_s"], limit_w * predict_power(p, coef)

    fitted = Fitted("roofline", predict)
    fitted.theta = theta  # type: ignore[attr-defined]
    return fitted


def structural_design(f: StepFeatures) -> np.ndarray:
    """Learner inputs from step features: log of per-sample MACs of each matrix type, per-sample
    elements of matrix and other layer types, kernels and parameters per sample, batch size."""
    b = f.batch[:, None]
    cols = [np.log1p(f.macs / b), np.log1p(f.elems[:, :4].sum(axis=1, keepdims=True) / b),
            np.log1p(f.elems[:, 4:].sum(axis=1, keepdims=True) / b), np.log((f.kernels[:, None] + EXTRA_KERNELS) / b),
            np.log(f.params[:, None] / b), np.log(b)]
    return np.hstack(cols)


LEARNERS = ("roofline", "gbr", "ridge", "poly", "ols", "macs-loglinear")


def _sk_model(kind: str) -> Any:
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.linear_model import LinearRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    if kind == "gbr":
        return GradientBoostingRegressor(n_estimators=300, max_depth=2, learning_rate=0.05, subsample=0.8,
                                         random_state=0)
    if kind == "ridge":
        return make_pipeline(StandardScaler(), Ridge(alpha=1.0))
    if kind == "poly":
        return make_pipeline(StandardScaler(), PolynomialFeatures(2), Ridge(alpha=3.0))
    if kind == "ols":
        return make_pipeline(StandardScaler(), LinearRegression())
    raise UsageError(f"unknown stage-1 learner {kind!r}; one of {', '.join(LEARNERS)}")


def fit_structural_learner(kind: str, runs: pd.DataFrame, wide: pd.DataFrame, limit_w: float) -> Fitted:
    """A scikit-learn learner (gbr, ridge, poly, ols) of log time per sample and log power / limit
    on ``structural_design`` features."""
    f = step_features(wide, runs["model"], runs["batch_size"])
    X = structural_design(f)
    mt = _sk_model(kind).fit(X, np.log(1.0 / runs["throughput_sps"].to_numpy()))
    mp = _sk_model(kind).fit(X, np.log(runs["power_w"].to_numpy() / limit_w))

    def predict(models: Any, batch_sizes: Any) -> tuple[np.ndarray, np.ndarray]:
        Z = structural_design(step_features(wide, models, batch_sizes))
        return np.exp(-mt.predict(Z)), limit_w * np.minimum(np.exp(mp.predict(Z)), 1.0)

    return Fitted(kind, predict)


def _macs_design(macs: np.ndarray, params: np.ndarray, batch: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones_like(macs), np.log(macs), np.log(params), np.log(batch)])


def fit_macs_loglinear(runs: pd.DataFrame, macs: np.ndarray, params: np.ndarray, limit_w: float) -> Fitted:
    """log throughput and log power/limit linear in log MACs, log params, log batch size (OLS).

    ``macs``/``params``: forward MACs per sample and parameters of each run's model."""
    X = _macs_design(macs, params, runs["batch_size"].to_numpy(float))
    bt = np.linalg.lstsq(X, np.log(runs["throughput_sps"].to_numpy()), rcond=None)[0]
    bp = np.linalg.lstsq(X, np.log(runs["power_w"].to_numpy() / limit_w), rcond=None)[0]

    def predict_from(m: np.ndarray, p: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        Z = _macs_design(np.asarray(m, float), np.asarray(p, float), np.asarray(b, float))
        return np.exp(Z @ bt), limit_w * np.minimum(np.exp(Z @ bp), 1.0)

    def by_name(models, batch_sizes):
        raise DlwhError("the macs-loglinear estimate reads MACs and parameters, not model names")

    return Fitted("macs-loglinear", by_name, predict_from)


# ----------------------------------------------------------------------------------------------
# leave one model out, and the estimate


def fit_learner(kind: str, runs: pd.DataFrame, wide: pd.DataFrame, limit_w: float,
                start: np.ndarray | None = None) -> Fitted:
    """Fit stage-1 learner ``kind`` (``LEARNERS``; not macs-loglinear) on runs of one GPU and precision."""
    if kind == "roofline":
        return fit_roofline_learner(runs, wide, limit_w, start)
    return fit_structural_learner(kind, runs, wide, limit_w)


def leave_one_model_out(kind: str, runs: pd.DataFrame, wide: pd.DataFrame | None, limit_w: float) -> pd.DataFrame:
    """Predictions for every run with its model left out of the fit: the runs with columns
    pred_throughput_sps and pred_power_w added (models the fit needs are in ``wide``, or
    ``runs`` has macs_per_sample and params for macs-loglinear)."""
    parts = []
    start = fit_roofline_learner(runs, wide, limit_w).theta if kind == "roofline" else None  # type: ignore[attr-defined]
    for model in sorted(runs["model"].unique()):
        train, test = runs[runs["model"] != model], runs[runs["model"] == model]
        if kind == "macs-loglinear":
            fitted = fit_macs_loglinear(train, train["macs_per_sample"].to_numpy(float),
                                        train["params"].to_numpy(float), limit_w)
            tp, pw = fitted.predict_from(test["macs_per_sample"], test["params"], test["batch_size"])
        else:
            tp, pw = fit_learner(kind, train, wide, limit_w, start).predict(test["model"], test["batch_size"])
        parts.append(test.assign(pred_throughput_sps=tp, pred_power_w=pw))
    return pd.concat(parts, ignore_index=True)


def conformal_quantiles(errors: np.ndarray) -> np.ndarray:
    """5 % and 95 % quantiles of held-out log errors with the split-conformal finite-sample correction
    (the ceil(0.95 (n + 1))-th smallest of n errors, and its mirror), so that few errors give a wider,
    not a narrower, 90 % interval; the extreme errors when n < 19."""
    e = np.sort(np.asarray(errors, dtype=float))
    n = len(e)
    hi = min(n, math.ceil(0.95 * (n + 1))) - 1
    lo = max(1, math.floor(0.05 * (n + 1))) - 1
    return np.array([e[lo], e[hi]])


_LOMO_CACHE: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def _lomo_quantiles(kind: str, runs: pd.DataFrame, wide: pd.DataFrame | None, limit_w: float) -> tuple[np.ndarray, np.ndarray]:
    """(5 %, 95 %) quantiles of log(prediction / truth) for throughput and power, leave one model out."""
    key = (kind, limit_w, tuple(runs["model"]), tuple(runs["batch_size"]), tuple(np.round(runs["throughput_sps"], 6)))
    if key not in _LOMO_CACHE:
        res = leave_one_model_out(kind, runs, wide, limit_w)
        lt = np.log(res["pred_throughput_sps"] / res["throughput_sps"])
        lp = np.log(res["pred_power_w"] / res["power_w"])
        _LOMO_CACHE[key] = (conformal_quantiles(lt.to_numpy()), conformal_quantiles(lp.to_numpy()))
    return _LOMO_CACHE[key]


def calibration_quantiles(fitted: Fitted, runs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """(5 %, 95 %) quantiles of log(prediction / truth) of the roofline scaled by the model's own
    other batch sizes (leave one batch size out, over every model with two or more); None if none."""
    multi = runs[runs.groupby("model")["batch_size"].transform("nunique") >= 2]
    if multi.empty:
        return None
    tp, pw = fitted.predict(multi["model"], multi["batch_size"])
    rt = np.log(multi["throughput_sps"].to_numpy() / tp)
    rp = np.log(multi["power_w"].to_numpy() / pw)
    df = pd.DataFrame({"model": multi["model"].to_numpy(), "rt": rt, "rp": rp})
    g = df.groupby("model")
    n = g["rt"].transform("size").to_numpy()
    # mean of the model's other batch sizes' log ratios, minus this one's: the held-out error
    other_t = (g["rt"].transform("sum").to_numpy() - rt) / (n - 1)
    other_p = (g["rp"].transform("sum").to_numpy() - rp) / (n - 1)
    return conformal_quantiles(other_t - rt), conformal_quantiles(other_p - rp)


PRIOR_FILE = "roofline_prior.csv"
TRANSFER_WIDEN = 1.5  # a borrowed fit's leave-one-model-out interval, widened (log scale) by this factor
# one speed scale moves every rate alike: MAC rates and bandwidths up, per-kernel and per-step costs down
_SCALE_SIGN = np.array([1, 1, 1, 1, 1, 1, -1, -1, -1], float)


@dataclass(frozen=True)
class ReferenceFit:
    """A roofline fitted on one GPU's runs, shipped with dlwh (``dlwh/analysis/data/roofline_prior.csv``)."""

    gpu: str
    precision: str
    theta: np.ndarray  # log rates, PARAM_NAMES order
    power_coef: np.ndarray  # power / limit on (1, compute, memory, launch shares)
    q_throughput: np.ndarray  # 5 %, 95 % of log(pred / truth), leave one model out
    q_power: np.ndarray
    source: str


def reference_rows(runs: pd.DataFrame, wide: pd.DataFrame, limit_w: float, gpu: str, precision: str,
                   source: str) -> list[dict[str, Any]]:
    """Rows of the shipped prior file for one GPU and precision (name, value) from its runs."""
    fitted = fit_roofline_learner(runs, wide, limit_w)
    f = step_features(wide, runs["model"], runs["batch_size"])
    coef = fit_power(roofline_parts(f, fitted.theta), runs["power_w"].to_numpy() / limit_w)  # type: ignore[attr-defined]
    qt, qp = _lomo_quantiles("roofline", runs, wide, limit_w)
    values = {**{f"log_{n}": v for n, v in zip(PARAM_NAMES, fitted.theta)},  # type: ignore[attr-defined]
              **{f"power_coef_{i}": v for i, v in enumerate(coef)},
              "q05_log_throughput": qt[0], "q95_log_throughput": qt[1], "q05_log_power": qp[0], "q95_log_power": qp[1]}
    return [{"gpu": gpu, "precision": precision, "name": k, "value": repr(float(v)), "source": source}
            for k, v in values.items()]


def read_reference() -> list[ReferenceFit]:
    """The shipped reference fits (empty when the file is absent)."""
    import csv
    import io
    from importlib import resources

    try:
        text = resources.files("dlwh.analysis").joinpath("data", PRIOR_FILE).read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        return []
    by: dict[tuple[str, str], dict[str, Any]] = {}
    for r in csv.DictReader(io.StringIO(text)):
        d = by.setdefault((r["gpu"], r["precision"]), {"source": r["source"]})
        d[r["name"]] = float(r["value"])
    out = []
    for (gpu, prec), d in by.items():
        out.append(ReferenceFit(gpu, prec, np.array([d[f"log_{n}"] for n in PARAM_NAMES]),
                                np.array([d[f"power_coef_{i}"] for i in range(4)]),
                                np.array([d["q05_log_throughput"], d["q95_log_throughput"]]),
                                np.array([d["q05_log_power"], d["q95_log_power"]]), d["source"]))
    return out


def fit_transfer(ref: ReferenceFit, runs: pd.DataFrame, wide: pd.DataFrame, limit_w: float) -> Fitted:
    """The reference roofline moved to another GPU by one speed scale and one power scale, both fitted
    to that GPU's few runs (least squares in log space)."""
    f = step_features(wide, runs["model"], runs["batch_size"])
    y = np.log(runs["batch_size"].to_numpy() / runs["throughput_sps"].to_numpy())
    from scipy.optimize import minimize_scalar

    def loss(s: float) -> float:
        return float(np.sum((np.log(roofline_parts(f, ref.theta + s * _SCALE_SIGN)["time_s"]) - y) ** 2))

    scale = float(minimize_scalar(loss, bounds=(-4.0, 4.0), method="bounded").x)  # log speed scale
    theta = ref.theta + scale * _SCALE_SIGN
    frac = predict_power(roofline_parts(f, theta), ref.power_coef)
    pscale = float(np.exp(np.mean(np.log(runs["power_w"].to_numpy() / limit_w / frac))))

    def predict(models: Any, batch_sizes: Any) -> tuple[np.ndarray, np.ndarray]:
        g = step_features(wide, models, batch_sizes)
        p = roofline_parts(g, theta)
        return g.batch / p["time_s"], limit_w * np.minimum(predict_power(p, ref.power_coef) * pscale, 1.0)

    fitted = Fitted("roofline-transfer", predict)
    fitted.theta = theta  # type: ignore[attr-defined]
    fitted.scale = scale  # type: ignore[attr-defined]
    return fitted


PRECISIONS = {"fp32": "fp32", "float32": "fp32", "amp-bf16": "amp-bf16", "bf16": "amp-bf16", "amp": "amp-bf16"}


def _precision(precision: str | None, available: list[str]) -> str:
    if precision is None:
        return "fp32" if "fp32" in available or not available else sorted(available)[0]
    key = PRECISIONS.get(str(precision).strip().lower())
    if key is None:
        raise UsageError(f"precision {precision!r} is not one of fp32, amp-bf16 (bf16)")
    return key


def _unknown_model(con: Any, model: str) -> DlwhError:
    from dlwh.models.registry import close_names

    near = close_names(model)
    try:
        rows = con.execute("SELECT DISTINCT model FROM model_complexity").fetchall()
        import difflib

        near += [m for (m,) in rows if m not in near and difflib.SequenceMatcher(None, m, model.lower()).ratio() > 0.6]
    except Exception:  # noqa: BLE001 - a warehouse without the models tables
        pass
    hint = f"did you mean {', '.join(near[:4])}? Or " if near else ""
    return UsageError(f"unknown model {model!r}: not in the zoo or the warehouse; {hint}give its size with "
                      "--macs MACS_PER_SAMPLE --params PARAMS (forward multiply-accumulates per sample, parameters)")


def _complexity(con: Any, model: str) -> tuple[float, float] | None:
    """(forward MACs per sample, params) of a model from the warehouse or the shipped table."""
    try:
        row = con.execute("SELECT macs_per_sample, params FROM model_complexity WHERE model = ? "
                          "ORDER BY source = 'zoo', batch_size LIMIT 1", [model]).fetchone()
    except Exception:  # noqa: BLE001
        row = None
    if row is None:
        from dlwh.models.table import zoo_complexity

        z = zoo_complexity(model)
        return (float(z.macs_per_sample), float(z.params)) if z is not None else None
    return (float(row[0]), float(row[1])) if row[1] is not None else None


def _interval(value: float, q: np.ndarray) -> tuple[float, float]:
    """90 % interval of a prediction whose log(pred / truth) has 5 %/95 % quantiles ``q``."""
    return value * float(np.exp(-q[1])), value * float(np.exp(-q[0]))


def estimate_unconstrained(
    con: Any,
    gpu: str,
    model: str | None,
    batch_size: int,
    precision: str | None = None,
    macs: float | None = None,
    params: float | None = None,
) -> Unconstrained:
    """Throughput (samples/s) and average power (W) of training ``model`` at ``batch_size`` on
    ``gpu`` with no power cap: measured where the warehouse has such bench runs, else predicted
    (see the module docstring). ``macs`` (forward MACs per sample) and ``params`` describe a model
    the zoo and the warehouse do not know (a model with a known structure ignores them). Raises
    DlwhError when it cannot answer."""
    from dlwh.analysis.data import normalise_gpu
    from dlwh.models.registry import normalise_name

    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise UsageError(f"batch size must be a positive whole number, not {batch_size!r}")
    for name, v in (("--macs", macs), ("--params", params)):
        if v is not None and not (np.isfinite(v) and v > 0):
            raise UsageError(f"{name} must be a positive number, not {v!r}")
    if model is None and (macs is None or params is None):
        raise UsageError("give a model name, or its size with --macs MACS_PER_SAMPLE --params PARAMS")
    runs = bench_runs(con)
    key = normalise_gpu(gpu)
    g = runs[runs["gpu_key"] == key]
    if g.empty:
        have = ", ".join(sorted(runs["gpu_key"].dropna().unique())) or "none"
        raise DlwhError(f"no unconstrained 'dlwh bench' runs of GPU {gpu!r} in the warehouse (GPUs with runs: "
                        f"{have}); run 'dlwh bench MODEL --batch-size B' on that GPU and ingest the run directory")
    prec = _precision(precision, sorted(g["precision"].unique()))
    g = g[g["precision"] == prec].reset_index(drop=True)
    if g.empty:
        raise DlwhError(f"no {prec} bench runs of GPU {key} in the warehouse; record some with "
                        f"'dlwh bench MODEL{' --amp' if prec == 'amp-bf16' else ''}'")
    limit_w = float(g["power_limit_w"].max()) if g["power_limit_w"].notna().any() else float(g["power_w"].max())
    canonical = normalise_name(model) if model is not None else None
    notes: list[str] = []

    measured = g[(g["model"] == canonical) & (g["batch_size"] == batch_size)] if canonical else g.iloc[:0]
    if not measured.empty:
        tp, pw = measured["throughput_sps"].to_numpy(), measured["power_w"].to_numpy()
        t, p = float(tp.mean()), float(pw.mean())
        dt = max(float(tp.max() - tp.min()) / 2, MEASURED_REL * t)
        dp = max(float(pw.max() - pw.min()) / 2, MEASURED_REL * p)
        notes.append(f"measured: {len(measured)} bench run(s) of {canonical} at batch size {batch_size}, {prec}, "
                     f"on {key} at {limit_w:g} W")
        return Unconstrained(t, t - dt, t + dt, p, max(0.0, p - dp), min(limit_w * 1.05, p + dp), "measured", notes)

    struct = structure_table(con)
    wide = _wide(struct)
    usable = g[g["model"].isin(set(wide.index))]
    if canonical in wide.index and usable["model"].nunique() >= MIN_MODELS:
        fitted = fit_roofline_learner(usable, wide, limit_w)
        tp, pw = fitted.predict([canonical], [batch_size])
        t, p = float(tp[0]), float(pw[0])
        own = usable[usable["model"] == canonical]
        calib = calibration_quantiles(fitted, usable) if not own.empty else None
        if calib is not None:
            ot, op = fitted.predict(own["model"], own["batch_size"])
            t *= float(np.exp(np.mean(np.log(own["throughput_sps"].to_numpy() / ot))))
            p = min(p * float(np.exp(np.mean(np.log(own["power_w"].to_numpy() / op)))), limit_w * 1.05)
            qt, qp = calib
            t_lo, t_hi = _interval(t, qt)
            p_lo, p_hi = _interval(p, qp)
            sizes = ", ".join(str(b) for b in sorted(own["batch_size"].unique()))
            notes.append(f"roofline over layer types fitted on {len(usable)} {prec} bench runs of "
                         f"{usable['model'].nunique()} models on {key}, scaled to {canonical}'s own runs at batch "
                         f"size {sizes}; 90 % interval from leave-one-batch-size-out errors")
            return Unconstrained(t, t_lo, t_hi, p, p_lo, min(p_hi, limit_w * 1.05), "roofline-calibrated", notes)
        qt, qp = _lomo_quantiles("roofline", usable, wide, limit_w)
        t_lo, t_hi = _interval(t, qt)
        p_lo, p_hi = _interval(p, qp)
        n_models = usable["model"].nunique()
        notes.append(f"roofline over layer types fitted on {len(usable)} {prec} bench runs of {n_models} models on "
                     f"{key}; 90 % interval from leave-one-model-out errors")
        return Unconstrained(t, t_lo, t_hi, p, p_lo, min(p_hi, limit_w * 1.05), "roofline", notes)

    refs = [r for r in read_reference() if r.precision == prec]
    if canonical in wide.index and not usable.empty and refs:
        ref = refs[0]
        fitted = fit_transfer(ref, usable, wide, limit_w)
        tp, pw = fitted.predict([canonical], [batch_size])
        t, p = float(tp[0]), float(pw[0])
        t_lo, t_hi = _interval(t, ref.q_throughput * TRANSFER_WIDEN)
        p_lo, p_hi = _interval(p, ref.q_power * TRANSFER_WIDEN)
        notes.append(f"only {usable['model'].nunique()} model(s) measured on {key} ({MIN_MODELS} needed for its own "
                     f"fit): the roofline fitted on {ref.gpu} ({ref.source}) with one speed and one power scale "
                     f"fitted to {len(usable)} {prec} run(s) on {key} ({math.exp(fitted.scale):.2f}x {ref.gpu}'s "  # type: ignore[attr-defined]
                     f"speed); 90 % interval: {ref.gpu}'s leave-one-model-out errors widened {TRANSFER_WIDEN}x, "
                     "not validated on this GPU")
        return Unconstrained(t, t_lo, t_hi, p, p_lo, min(p_hi, limit_w * 1.05), "roofline-transfer", notes)

    size = (float(macs), float(params)) if macs is not None and params is not None else None
    if size is None and canonical is not None:
        size = _complexity(con, canonical)
        if size is not None and macs is not None:
            size = (float(macs), size[1])
        if size is not None and params is not None:
            size = (size[0], float(params))
    if size is None:
        raise _unknown_model(con, model or "")
    known = g.dropna(subset=["macs_per_sample", "params"])
    if known["model"].nunique() < MIN_MODELS:
        raise DlwhError(f"too few models measured on {key} ({known['model'].nunique()}, {MIN_MODELS} needed) to "
                        "predict a new one; record more with 'dlwh bench MODEL'")
    fitted = fit_macs_loglinear(known, known["macs_per_sample"].to_numpy(float), known["params"].to_numpy(float),
                                limit_w)
    tp, pw = fitted.predict_from([size[0]], [size[1]], [batch_size])
    qt, qp = _lomo_quantiles("macs-loglinear", known, None, limit_w)
    t, p = float(tp[0]), float(pw[0])
    t_lo, t_hi = _interval(t, qt)
    p_lo, p_hi = _interval(p, qp)
    notes.append(f"log-linear in MACs, parameters and batch size, fitted on {len(known)} {prec} bench runs of "
                 f"{known['model'].nunique()} models on {key} (no layer structure known for this model: coarser)")
    return Unconstrained(t, t_lo, t_hi, p, p_lo, min(p_hi, limit_w * 1.05), "macs-loglinear", notes)
