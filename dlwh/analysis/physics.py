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


def response(limit_w, p_u, t_u, phi, lam, shared: Shared):
    """Time (s) and average power (W) at power limit ``limit_w`` (arrays broadcast together)."""
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
    return time_s, power_w


@dataclass
class PhysicsModel:
    """A fitted power-limit model of one GPU: shared response plus per-config and per-workload parameters."""

    gpu: str
    shared: Shared
    gpu_phi: float
    gpu_lam: float
    workloads: dict[str, tuple[float, float]] = field(default_factory=dict)        # workload -> (phi, lam)
    configs: dict[str, dict[str, float]] = field(default_factory=dict)            # config -> p_u, t_u, phi, lam, ...
    limit_range: tuple[float, float] = (0.0, 0.0)
    cost: float = 0.0

    def params(self) -> dict:
        """Readable parameters (JSON-able)."""
        return {
            "gpu": self.gpu,
            "cap_slope_c": round(self.shared.c, 4), "cap_offset_d_w": round(self.shared.d, 2),
            "static_power_w": round(self.shared.p_static, 2),
            "clock_curve": {f"{k:.1f}": round(v, 3) for k, v in zip(KNOTS, self.shared.curve)},
            "gpu_compute_fraction_phi": round(self.gpu_phi, 3), "gpu_other_power_ratio_lam": round(self.gpu_lam, 3),
            "workloads": {k: {"phi": round(v[0], 3), "lam": round(v[1], 3)} for k, v in self.workloads.items()},
            "n_configs": len(self.configs),
        }

    def config_params(self, config: str, workload: str | None = None,
                      anchor: tuple[float, float, float] | None = None) -> dict[str, float] | None:
        """p_u, t_u, phi, lam of ``config``: fitted, or from an anchor run (limit W, time s, power W).

        With an anchor, phi and lam come from the workload (else the GPU) and p_u, t_u are solved so
        the model reproduces the anchor exactly. None when neither is known.
        """
        if anchor is None:
            return self.configs.get(config)
        phi, lam = self.workloads.get(workload or "", (self.gpu_phi, self.gpu_lam))
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
        return response(limit_w, p["p_u"], p["t_u"], p["phi"], p["lam"], self.shared)

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
    """(p_u, t_u) such that the model gives ``time_s``, ``power_w`` at ``limit_w`` (bisection on p_u)."""
    lo, hi = max(shared.p_static, 1.0) * 1.0001, power_w * 6.0
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


def fit_physics(rows: pd.DataFrame, gpu: str, *, max_nfev: int = 300) -> PhysicsModel:
    """Fit the model of one GPU to rows with config, workload, power_limit_w, time_per_epoch_s, avg_power_w."""
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

    # layout: shared (N_SHARED) | gpu phi, lam (2) | beta (4) | workload phi, lam (2 nw) | config logPu, logTu, phi, lam (4 nc)
    o_g = N_SHARED
    o_b = o_g + 2
    o_w = o_b + 4
    o_c = o_w + 2 * nw
    n_par = o_c + 4 * nc
    n_smooth = N_SHARED - 5
    log_p_top = np.zeros(nc)
    cov = np.zeros((nc, 2))

    def residuals(x):
        shared = _shared_from(x)
        cp = x[o_c:].reshape(nc, 4)
        w = x[o_w:o_c].reshape(nw, 2)
        p_u, t_u = np.exp(cp[cfg_idx, 0]), np.exp(cp[cfg_idx, 1])
        phi, lam = _sig(cp[cfg_idx, 2]), _sig(cp[cfg_idx, 3])
        t, p = response(limit, p_u, t_u, phi, lam, shared)
        data = np.concatenate([(np.log(t) - log_t) / SIGMA, (np.log(p) - log_p) / SIGMA])
        beta = x[o_b:o_w].reshape(2, 2)
        prior_c = ((cp[:, 2:4] - w[cw_idx] - cov @ beta) / TAU_CONFIG).ravel()
        prior_w = ((w - x[o_g:o_g + 2]) / TAU_WORKLOAD).ravel()
        smooth = np.diff(x[4:N_SHARED]) * SMOOTH
        above = np.maximum(cp[:, 0] - log_p_top - DRAW_SLACK, 0.0) / TAU_DRAW
        return np.concatenate([data, prior_c, prior_w, smooth, above])

    n_res = 2 * n + 2 * nc + 2 * nw + n_smooth + nc
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
    x0[0:4] = [np.log(0.9), 10.0, PS_INIT * float(np.median(p_top)), _logit(0.2)]
    x0[o_g:o_g + 2] = [_logit(0.7), _logit(0.5)]
    x0[o_w:o_c] = np.tile([_logit(0.7), _logit(0.5)], nw)
    cp0 = np.column_stack([np.log(p_top * 1.05), np.log(t_min), np.full(nc, _logit(0.7)), np.full(nc, _logit(0.5))])
    x0[o_c:] = cp0.ravel()
    lower = np.full(n_par, -np.inf)
    upper = np.full(n_par, np.inf)
    lower[0:4] = [np.log(0.5), -60.0, 0.0, -6.0]
    upper[0:4] = [np.log(1.5), 120.0, 0.9 * float(np.max(p_top)), 3.0]
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
    )
    for i, config in enumerate(configs):
        model.configs[config] = {"p_u": float(np.exp(cp[i, 0])), "t_u": float(np.exp(cp[i, 1])),
                                 "phi": float(_sig(cp[i, 2])), "lam": float(_sig(cp[i, 3])),
                                 "workload": cfg_workload.iloc[i]}
    return model
