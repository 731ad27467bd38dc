"""A physically grounded power-limit model: time and power of a workload at any GPU power limit.

The model (docs/analysis.md, "The power-limit model") in four steps:

1. Phases. Unconstrained, a training epoch spends a fraction ``phi`` of its time in compute phases
   that draw ``P_hi`` and the rest in other phases (data loading, host work, communication) that draw
   ``P_lo = lam * P_u``, where ``P_u = phi * P_hi + (1 - phi) * P_lo`` is the average power measured
   without a cap and ``T_u`` the epoch time. So ``P_hi = P_u * (1 - (1 - phi) * lam) / phi``.
2. The cap. A limit ``L`` holds the compute phases at ``C(L) = c * L + d`` watts (``c`` < 1 and
   ``d`` > 0 are what the card's enforcement achieves on average: it overshoots at its floor and
   keeps headroom for spikes near the top). A limit above the workload's draw does nothing.
3. DVFS. Below ``P_hi`` the GPU lowers its clock to ``r`` times the unconstrained clock. Power above
   the static part ``P_s`` falls faster than the clock (voltage falls with it: ``P - P_s ~ r**3``
   near the top clocks, ``~ r`` once the voltage is at its floor), so ``r = h(y)`` with
   ``y = (C - P_s) / (P_hi - P_s)`` the share of the dynamic power the cap leaves. ``h`` is the GPU's
   clock-power curve: monotone, ``h(1) = 1``, ``h(0) = r_min``, learned as a piecewise-linear curve
   on 11 knots (no fixed exponent: the voltage-frequency table is the card's own).
4. Time and power. Compute phases stretch by ``1 / r``; other phases do not:
   ``T(L) = T_u * ((1 - phi) + phi / r)`` and ``P(L) = ((1 - phi) * P_lo + (phi / r) * C) / ((1 - phi) + phi / r)``.

Fitting is per GPU: ``c, d, P_s, h`` are shared by every workload on that GPU; ``phi`` and
``lam`` belong to each configuration, drawn towards its workload's values and those towards the GPU's
(a hierarchical prior), so a configuration measured at one limit only (its default) takes the
workload's or the GPU's response and its own ``P_u, T_u`` from that one run. Residuals are
log-ratios; scipy's least_squares solves it with a sparse Jacobian.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from dlwh._lazy import pandas as pd

SIGMA = 0.03          # typical log-error of one measurement (3 %), scales the data residuals
TAU_CONFIG = 0.6      # prior spread of a configuration's logit(phi), logit(lam) around its workload's
TAU_WORKLOAD = 1.2    # prior spread of a workload's around the GPU's
TAU_DRAW = 0.1        # log spread of a configuration's unconstrained draw beyond DRAW_SLACK above its
DRAW_SLACK = 0.2      # highest measured power (keeps a one-run configuration near its measured draw)
PS_INIT = 0.3
SMOOTH = 0.3          # penalty on changes of slope between neighbouring segments of the clock curve
KNOTS = np.linspace(0.0, 1.0, 11)


def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def _logit(p):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


@dataclass
class Shared:
    """The GPU's response: cap held at c*L + d W; static power p_static W; clock curve r = h(y)."""

    c: float
    d: float
    p_static: float
    curve: tuple[float, ...]     # h at KNOTS (monotone, last = 1)

    def clock(self, y):
        """Clock ratio r = h(y) for dynamic-power share y (clipped to [0, 1])."""
        return np.interp(np.clip(y, 0.0, 1.0), KNOTS, self.curve)


def response(limit_w, p_u, t_u, phi, lam, shared: Shared, allow=None):
    """Time (s) and average power (W) at power limit ``limit_w`` (arrays broadcast together).

    ``allow`` is the most the GPU draws as a multiple of its limit (1: it holds the limit; > 1 only
    where the data show a card overshooting at its floor): the average power is never more than
    ``allow * L`` (None: unclipped, as the fit sees the model). Time never falls as the limit falls
    (the cap c * L + d and the clock ratio rise with L).
    """
    limit_w = np.asarray(limit_w, dtype=float)
    p_lo = lam * p_u
    p_hi = p_u * (1 - (1 - phi) * lam) / phi
    cap = shared.c * limit_w + shared.d
    capped = cap < p_hi
    y = (cap - shared.p_static) / np.maximum(p_hi - shared.p_static, 1e-6)
    r = np.where(capped, shared.clock(y), 1.0)
    compute_w = np.where(capped, cap, p_hi)
    stretch = (1 - phi) + phi / r
    time_s = t_u * stretch
    power_w = ((1 - phi) * p_lo + (phi / r) * compute_w) / stretch
    if allow is not None:
        power_w = np.minimum(power_w, np.asarray(allow, dtype=float) * limit_w)
    return time_s, power_w


@dataclass
class PhysicsModel:
    """A fitted power-limit model of one GPU (or the global one, ``gpu='*'``, in units of the limit).

    ``ref_w`` is the GPU's reference limit (its maximum/default, W): parameters divided by it mean
    the same on every GPU (``relative()``); the global model has ``ref_w = 1`` and scales to any GPU
    with ``for_gpu``. ``allow`` lists (limit W, highest power/limit ratio seen at or above it) where a
    card overshot its limit; elsewhere the model never predicts more than the limit.
    """

    gpu: str
    shared: Shared
    gpu_phi: float
    gpu_lam: float
    workloads: dict[str, tuple[float, float]] = field(default_factory=dict)        # workload -> (phi, lam)
    configs: dict[str, dict[str, float]] = field(default_factory=dict)            # config -> p_u, t_u, phi, lam, ...
    limit_range: tuple[float, float] = (0.0, 0.0)
    cost: float = 0.0
    ref_w: float = 1.0
    allow: tuple[tuple[float, float], ...] = ()
    anchor_map: tuple[float, float, float, float] | None = None   # logit phi = a + b*rel, logit lam = c + d*rel
    static_per_min: float | None = None   # global model: static power as a share of a GPU's minimum limit
    source: str = "fitted"
    n_rows: int = 0

    def allow_at(self, limit_w) -> np.ndarray:
        """Most power as a multiple of the limit at each ``limit_w`` (1 where no overshoot was seen)."""
        limit_w = np.atleast_1d(np.asarray(limit_w, dtype=float))
        out = np.ones(limit_w.shape)
        for at, ratio in self.allow:
            out = np.where(limit_w <= at, np.maximum(out, ratio), out)
        return out

    def params(self) -> dict:
        """Readable parameters (JSON-able); watts also relative to the reference limit."""
        ref = self.ref_w or 1.0
        return {
            "gpu": self.gpu, "reference_limit_w": round(ref, 2), "source": self.source,
            "cap_slope_c": round(self.shared.c, 4), "cap_offset_d_w": round(self.shared.d, 2),
            "cap_offset_rel": round(self.shared.d / ref, 4),
            "static_power_w": round(self.shared.p_static, 2), "static_power_rel": round(self.shared.p_static / ref, 4),
            "clock_curve": {f"{k:.1f}": round(v, 3) for k, v in zip(KNOTS, self.shared.curve)},
            "gpu_compute_fraction_phi": round(self.gpu_phi, 3), "gpu_other_power_ratio_lam": round(self.gpu_lam, 3),
            "workloads": {k: {"phi": round(v[0], 3), "lam": round(v[1], 3)} for k, v in self.workloads.items()},
            "n_configs": len(self.configs), "n_rows": self.n_rows,
        }

    def to_dict(self) -> dict:
        """Everything needed to predict, as plain JSON (no code is executed to load it back)."""
        return {"gpu": self.gpu, "ref_w": self.ref_w, "source": self.source, "n_rows": self.n_rows,
                "shared": {"c": self.shared.c, "d": self.shared.d, "p_static": self.shared.p_static,
                           "curve": list(self.shared.curve)},
                "gpu_phi": self.gpu_phi, "gpu_lam": self.gpu_lam,
                "workloads": {k: list(v) for k, v in self.workloads.items()},
                "configs": self.configs, "limit_range": list(self.limit_range), "cost": self.cost,
                "allow": [list(a) for a in self.allow],
                "anchor_map": list(self.anchor_map) if self.anchor_map is not None else None,
                "static_per_min": self.static_per_min}

    @classmethod
    def from_dict(cls, d: dict) -> "PhysicsModel":
        """The model ``to_dict`` wrote (checked: every number finite, the curve monotone)."""
        sh = d["shared"]
        curve = tuple(float(v) for v in sh["curve"])
        numbers = [sh["c"], sh["d"], sh["p_static"], d["gpu_phi"], d["gpu_lam"], d["ref_w"], *curve]
        if len(curve) != len(KNOTS) or not np.all(np.isfinite(numbers)) or np.any(np.diff(curve) < -1e-9):
            raise ValueError("physics parameters are damaged (non-finite or a non-monotone clock curve)")
        return cls(gpu=str(d["gpu"]), shared=Shared(float(sh["c"]), float(sh["d"]), float(sh["p_static"]), curve),
                   gpu_phi=float(d["gpu_phi"]), gpu_lam=float(d["gpu_lam"]),
                   workloads={k: (float(v[0]), float(v[1])) for k, v in d.get("workloads", {}).items()},
                   configs={k: dict(v) for k, v in d.get("configs", {}).items()},
                   limit_range=tuple(d.get("limit_range", (0.0, 0.0))), cost=float(d.get("cost", 0.0)),
                   ref_w=float(d["ref_w"]), allow=tuple(tuple(map(float, a)) for a in d.get("allow", [])),
                   anchor_map=tuple(d["anchor_map"]) if d.get("anchor_map") else None,
                   static_per_min=d.get("static_per_min"),
                   source=str(d.get("source", "fitted")), n_rows=int(d.get("n_rows", 0)))

    def for_gpu(self, gpu: str, ref_w: float, min_w: float | None = None, source: str | None = None) -> "PhysicsModel":
        """This model's response scaled to a GPU whose reference limit is ``ref_w`` W and minimum
        ``min_w`` W (no configurations)."""
        k = ref_w / (self.ref_w or 1.0)
        static = self.shared.p_static * k
        if self.static_per_min is not None:
            static = self.static_per_min * (min_w if min_w else 0.4 * ref_w)
        shared = Shared(self.shared.c, self.shared.d * k, static, self.shared.curve)
        return PhysicsModel(gpu=gpu, shared=shared, gpu_phi=self.gpu_phi, gpu_lam=self.gpu_lam,
                            workloads=dict(self.workloads), ref_w=ref_w, anchor_map=self.anchor_map,
                            source=source or self.source, n_rows=self.n_rows)

    def phi_lam(self, workload: str | None, rel_power: float | None) -> tuple[float, float]:
        """(phi, lam) of a configuration known from one run: its workload's, else from its power
        relative to the reference limit (``anchor_map``), else the GPU's."""
        if workload and workload in self.workloads:
            return self.workloads[workload]
        if self.anchor_map is not None and rel_power is not None and np.isfinite(rel_power):
            a, b, c, d = self.anchor_map
            return float(_sig(a + b * rel_power)), float(_sig(c + d * rel_power))
        return self.gpu_phi, self.gpu_lam

    def config_params(self, config: str, workload: str | None = None,
                      anchor: tuple[float, float, float] | None = None) -> dict[str, float] | None:
        """p_u, t_u, phi, lam of ``config``: fitted, or from an anchor run (limit W, time s, power W).

        With an anchor, phi and lam come from the workload (else the GPU) and p_u, t_u are solved so
        the model reproduces the anchor exactly. None when neither is known.
        """
        if anchor is None:
            return self.configs.get(config)
        phi, lam = self.phi_lam(workload, anchor[2] / self.ref_w if self.ref_w else None)
        p_u, t_u = invert_anchor(anchor[0], anchor[1], anchor[2], phi, lam, self.shared)
        return {"p_u": p_u, "t_u": t_u, "phi": phi, "lam": lam}

    def predict(self, config: str, limit_w, workload: str | None = None,
                anchor: tuple[float, float, float] | None = None):
        """(time_s, power_w) arrays at ``limit_w`` for a configuration; NaN when it is unknown."""
        limit_w = np.atleast_1d(np.asarray(limit_w, dtype=float))
        p = self.config_params(config, workload, anchor)
        if p is None:
            nan = np.full(limit_w.shape, np.nan)
            return nan, nan.copy()
        return response(limit_w, p["p_u"], p["t_u"], p["phi"], p["lam"], self.shared, self.allow_at(limit_w))

    def predict_frame(self, rows: pd.DataFrame) -> pd.DataFrame:
        """time_per_epoch_s and avg_power_w for rows with config and power_limit_w (NaN: unknown config)."""
        out = pd.DataFrame(index=rows.index, columns=["time_per_epoch_s", "avg_power_w"], dtype=float)
        for config, part in rows.groupby("config", sort=False):
            t, p = self.predict(config, part["power_limit_w"].to_numpy())
            out.loc[part.index, "time_per_epoch_s"] = t
            out.loc[part.index, "avg_power_w"] = p
        return out


def invert_anchor(limit_w: float, time_s: float, power_w: float, phi: float, lam: float,
                  shared: Shared) -> tuple[float, float]:
    """(p_u, t_u) such that the model gives ``time_s``, ``power_w`` at ``limit_w`` (bisection on p_u).

    """
    lo, hi = 1e-3 * power_w, power_w * 6.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        _, p = response(limit_w, mid, 1.0, phi, lam, shared)
        if p > power_w:
            hi = mid
        else:
            lo = mid
    p_u = 0.5 * (lo + hi)
    t1, _ = response(limit_w, p_u, 1.0, phi, lam, shared)
    return float(p_u), float(time_s / t1)


N_SHARED = 4 + len(KNOTS) - 1   # log c, d, P_s, logit r_min, then one increment per curve segment


def _shared_from(x) -> Shared:
    """The Shared response from its parameter block (increments pass a softplus: the curve is monotone)."""
    r_min = float(_sig(x[3]))
    steps = np.logaddexp(0.0, x[4:N_SHARED])
    cum = np.concatenate([[0.0], np.cumsum(steps)]) / np.sum(steps)
    curve = r_min + (1.0 - r_min) * cum
    return Shared(c=float(np.exp(x[0])), d=float(x[1]), p_static=float(x[2]), curve=tuple(float(v) for v in curve))


def _curve_x(curve) -> np.ndarray:
    """Parameters (logit r_min, increments) that give ``curve`` (inverse of _shared_from's curve part)."""
    curve = np.asarray(curve, dtype=float)
    steps = np.maximum(np.diff(curve), 1e-4)
    steps = steps / steps.sum() * 3.0
    return np.concatenate([[_logit(curve[0])], np.log(np.expm1(steps))])


def allow_table(rows: pd.DataFrame) -> tuple[tuple[float, float], ...]:
    """(limit W, highest power / limit seen there) where a card drew more than its limit (at its floor)."""
    ratio = (rows["avg_power_w"] / rows["power_limit_w"])
    over = rows.assign(_r=ratio)[ratio > 1.0].groupby("power_limit_w")["_r"].max()
    return tuple((float(k), float(v)) for k, v in over.items())


# spread of the prior around the global response, per parameter (relative units: x the reference limit)
PRIOR_TAU = {"log_c": 0.1, "d": 0.05, "p_static": 0.1, "curve": 0.08, "phi_lam": 0.7}


def fit_physics(rows: pd.DataFrame, gpu: str, *, max_nfev: int = 300, prior: PhysicsModel | None = None,
                ref_w: float | None = None, static_scale=None, weights=None) -> PhysicsModel:
    """Fit the model to rows with config, workload, power_limit_w, time_per_epoch_s, avg_power_w.

    ``rows`` may hold several GPUs in the same units (the global fit divides watts by each GPU's
    reference limit first). ``prior`` (a model in the same units, e.g. the global response scaled to
    this GPU) draws the GPU's response towards it: a sweep with few limits refines it, many override it.
    ``static_scale`` (per row) multiplies the static-power parameter: the global fit passes each
    GPU's minimum limit over its reference, so static power is a share of the minimum limit.
    """
    from scipy.optimize import least_squares
    from scipy.sparse import lil_matrix

    rows = rows.reset_index(drop=True)
    configs = list(dict.fromkeys(rows["config"]))
    workloads = list(dict.fromkeys(rows["workload"]))
    cfg_idx = rows["config"].map({c: i for i, c in enumerate(configs)}).to_numpy()
    cfg_workload = rows.groupby("config", sort=False)["workload"].first().reindex(configs)
    cw_idx = cfg_workload.map({w: i for i, w in enumerate(workloads)}).to_numpy()
    n, nc, nw = len(rows), len(configs), len(workloads)
    limit = rows["power_limit_w"].to_numpy(float)
    log_t = np.log(rows["time_per_epoch_s"].to_numpy(float))
    log_p = np.log(rows["avg_power_w"].to_numpy(float))
    scale = float(ref_w or np.max(limit))
    row_w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    row_w2 = np.concatenate([row_w, row_w])
    ps_scale = np.ones(n) if static_scale is None else np.asarray(static_scale, dtype=float)

    # layout: shared (N_SHARED) | gpu phi, lam (2) | beta (4) | workload phi, lam (2 nw) | config logPu, logTu, phi, lam (4 nc)
    o_g = N_SHARED
    o_b = o_g + 2
    o_w = o_b + 4
    o_c = o_w + 2 * nw
    n_par = o_c + 4 * nc
    n_smooth = N_SHARED - 5
    log_p_top = np.zeros(nc)
    cov = np.zeros((nc, 2))
    n_prior = 0 if prior is None else 3 + len(KNOTS) + 2
    if prior is not None:
        pr_curve = np.asarray(prior.shared.curve)
        pr_vec = np.array([np.log(prior.shared.c), prior.shared.d, prior.shared.p_static])
        pr_tau = np.array([PRIOR_TAU["log_c"], PRIOR_TAU["d"] * scale, PRIOR_TAU["p_static"] * scale])
        pr_g = np.array([_logit(prior.gpu_phi), _logit(prior.gpu_lam)])

    def residuals(x):
        shared = _shared_from(x)
        cp = x[o_c:].reshape(nc, 4)
        w = x[o_w:o_c].reshape(nw, 2)
        p_u, t_u = np.exp(cp[cfg_idx, 0]), np.exp(cp[cfg_idx, 1])
        phi, lam = _sig(cp[cfg_idx, 2]), _sig(cp[cfg_idx, 3])
        if static_scale is not None:
            shared = Shared(shared.c, shared.d, shared.p_static * ps_scale, shared.curve)
        t, p = response(limit, p_u, t_u, phi, lam, shared)
        data = np.concatenate([(np.log(t) - log_t) / SIGMA, (np.log(p) - log_p) / SIGMA]) * row_w2
        beta = x[o_b:o_w].reshape(2, 2)
        prior_c = ((cp[:, 2:4] - w[cw_idx] - cov @ beta) / TAU_CONFIG).ravel()
        prior_w = ((w - x[o_g:o_g + 2]) / TAU_WORKLOAD).ravel()
        smooth = np.diff(x[4:N_SHARED]) * SMOOTH
        above = np.maximum(cp[:, 0] - log_p_top - DRAW_SLACK, 0.0) / TAU_DRAW
        parts = [data, prior_c, prior_w, smooth, above]
        if prior is not None:
            parts.append((np.array([x[0], x[1], x[2]]) - pr_vec) / pr_tau)
            parts.append((np.asarray(shared.curve) - pr_curve) / PRIOR_TAU["curve"])
            parts.append((x[o_g:o_g + 2] - pr_g) / PRIOR_TAU["phi_lam"])
        return np.concatenate(parts)

    n_res = 2 * n + 2 * nc + 2 * nw + n_smooth + nc + n_prior
    sparsity = lil_matrix((n_res, n_par), dtype=int)
    sparsity[0:2 * n, 0:N_SHARED] = 1
    rr = np.arange(n)
    for k in range(4):
        sparsity[rr, o_c + 4 * cfg_idx + k] = 1
        sparsity[rr + n, o_c + 4 * cfg_idx + k] = 1
    for j in range(2):
        r0 = 2 * n + np.arange(nc) * 2 + j
        sparsity[r0, o_c + 4 * np.arange(nc) + 2 + j] = 1
        sparsity[r0, o_w + 2 * cw_idx + j] = 1
        sparsity[r0, o_b + j] = 1
        sparsity[r0, o_b + 2 + j] = 1
        r1 = 2 * n + 2 * nc + np.arange(nw) * 2 + j
        sparsity[r1, o_w + 2 * np.arange(nw) + j] = 1
        sparsity[r1, o_g + j] = 1
    for k in range(n_smooth):
        sparsity[2 * n + 2 * nc + 2 * nw + k, 4 + k:6 + k] = 1
    sparsity[2 * n + 2 * nc + 2 * nw + n_smooth + np.arange(nc), o_c + 4 * np.arange(nc)] = 1
    if prior is not None:
        base = 2 * n + 2 * nc + 2 * nw + n_smooth + nc
        for k in range(3):
            sparsity[base + k, k] = 1
        sparsity[base + 3:base + 3 + len(KNOTS), 3:N_SHARED] = 1
        sparsity[base + 3 + len(KNOTS), o_g] = 1
        sparsity[base + 4 + len(KNOTS), o_g + 1] = 1

    grouped = rows.groupby("config", sort=False)
    p_top = grouped["avg_power_w"].max().reindex(configs).to_numpy(float)
    log_p_top = np.log(p_top)
    batch = rows.groupby("config", sort=False)["batch_size"].first().reindex(configs) if "batch_size" in rows else pd.Series(np.nan, index=configs)
    lb = np.log2(pd.to_numeric(batch, errors="coerce").to_numpy(float))
    cov = np.column_stack([lb, log_p_top])
    for j in range(2):
        col = pd.Series(cov[:, j])
        cov[:, j] = (col - col.groupby(cw_idx).transform("mean")).fillna(0.0).to_numpy()
    t_min = grouped["time_per_epoch_s"].min().reindex(configs).to_numpy(float)
    x0 = np.zeros(n_par)
    x0[0:4] = [np.log(0.9), 10.0 / 300.0 * scale,
               PS_INIT * float(np.median(p_top)) if static_scale is None else 0.5, _logit(0.2)]
    x0[o_g:o_g + 2] = [_logit(0.7), _logit(0.5)]
    if prior is not None:
        x0[0:3] = pr_vec
        x0[3:N_SHARED] = _curve_x(prior.shared.curve)
        x0[o_g:o_g + 2] = pr_g
    x0[o_w:o_c] = np.tile(x0[o_g:o_g + 2], nw)
    cp0 = np.column_stack([np.log(p_top * 1.05), np.log(t_min), np.full(nc, x0[o_g]), np.full(nc, x0[o_g + 1])])
    x0[o_c:] = cp0.ravel()
    lower = np.full(n_par, -np.inf)
    upper = np.full(n_par, np.inf)
    lower[0:4] = [np.log(0.5), -0.2 * scale, 0.0, -6.0]
    upper[0:4] = [np.log(1.5), 0.4 * scale, 0.9 * float(np.max(p_top)) if static_scale is None else 1.5, 3.0]
    lower[4:N_SHARED], upper[4:N_SHARED] = -8.0, 8.0
    lower[o_g:o_c], upper[o_g:o_c] = -8.0, 8.0
    cp_lo = np.column_stack([np.log(p_top * 0.5), np.log(t_min * 0.2), np.full(nc, -8.0), np.full(nc, -8.0)])
    cp_hi = np.column_stack([np.log(p_top * 4.0), np.log(t_min * 2.0), np.full(nc, 8.0), np.full(nc, 8.0)])
    lower[o_c:], upper[o_c:] = cp_lo.ravel(), cp_hi.ravel()
    x0 = np.clip(x0, lower + 1e-9, upper - 1e-9)
    result = least_squares(residuals, x0, jac_sparsity=sparsity, bounds=(lower, upper), loss="soft_l1",
                           f_scale=2.0, max_nfev=max_nfev, method="trf")
    x = result.x
    w = x[o_w:o_c].reshape(nw, 2)
    cp = x[o_c:].reshape(nc, 4)
    model = PhysicsModel(
        gpu=gpu, shared=_shared_from(x), gpu_phi=float(_sig(x[o_g])), gpu_lam=float(_sig(x[o_g + 1])),
        workloads={wl: (float(_sig(w[i, 0])), float(_sig(w[i, 1]))) for i, wl in enumerate(workloads)},
        limit_range=(float(limit.min()), float(limit.max())), cost=float(result.cost),
        ref_w=scale, allow=allow_table(rows), n_rows=n,
        source="fitted with the shipped prior" if prior is not None else "fitted",
    )
    for i, config in enumerate(configs):
        model.configs[config] = {"p_u": float(np.exp(cp[i, 0])), "t_u": float(np.exp(cp[i, 1])),
                                 "phi": float(_sig(cp[i, 2])), "lam": float(_sig(cp[i, 3])),
                                 "workload": cfg_workload.iloc[i]}
    model.anchor_map = _anchor_map(model, rows, prior)
    return model


def _anchor_map(model: PhysicsModel, rows: pd.DataFrame, prior: PhysicsModel | None):
    """Least-squares line of configurations' logit phi and logit lam against their highest-limit
    power relative to the reference limit (configurations measured at 3+ limits); the prior's
    where fewer than 6 such configurations exist."""
    counts = rows.groupby("config")["power_limit_w"].nunique()
    swept = [c for c in model.configs if counts.get(c, 0) >= 3]
    if len(swept) < 6:
        return prior.anchor_map if prior is not None else None
    top = rows.sort_values("power_limit_w").groupby("config").tail(1).set_index("config")
    rel = (top.loc[swept, "avg_power_w"] / model.ref_w).to_numpy(float)
    zp = np.array([_logit(model.configs[c]["phi"]) for c in swept])
    zl = np.array([_logit(model.configs[c]["lam"]) for c in swept])
    design = np.column_stack([np.ones(len(rel)), rel])
    ridge = np.diag([0.0, 0.5])
    coef_p = np.linalg.solve(design.T @ design + ridge, design.T @ zp)
    coef_l = np.linalg.solve(design.T @ design + ridge, design.T @ zl)
    return (float(coef_p[0]), float(coef_p[1]), float(coef_l[0]), float(coef_l[1]))


def relative(rows: pd.DataFrame, refs: dict[str, float]) -> pd.DataFrame:
    """Rows with limits and powers divided by their GPU's reference limit, workloads per GPU."""
    ref = rows["gpu"].map(refs).astype(float)
    out = rows.copy()
    out["power_limit_w"] = rows["power_limit_w"] / ref
    out["avg_power_w"] = rows["avg_power_w"] / ref
    out["workload"] = rows["gpu"] + ":" + rows["workload"]
    return out


def fit_global(rows: pd.DataFrame, refs: dict[str, float], mins: dict[str, float] | None = None, *,
               max_nfev: int = 300) -> PhysicsModel:
    """The response shared by every GPU: one fit of all rows, watts divided by each GPU's reference
    limit (``refs``: gpu -> W), so c, the offset and static power (x the limit), the clock curve and
    phi/lam mean the same on every GPU. ``for_gpu`` scales it to a GPU."""
    scale = None
    if mins:
        scale = (rows["gpu"].map(mins) / rows["gpu"].map(refs)).to_numpy(float)
    # every GPU weighs alike (a GPU with 500 rows must not drown one with 30): rows weigh 1/sqrt(n of their GPU)
    n_gpu = rows["gpu"].map(rows["gpu"].value_counts()).to_numpy(float)
    weights = np.sqrt(np.mean(n_gpu) / n_gpu)
    model = fit_physics(relative(rows, refs), "*", max_nfev=max_nfev, ref_w=1.0, static_scale=scale, weights=weights)
    if mins:
        model.static_per_min = model.shared.p_static
    model.source = "global"
    model.allow = ()
    return model
