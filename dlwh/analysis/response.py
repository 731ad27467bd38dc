"""The power-limit response of one GPU in a warehouse: fitted on its sweeps (refining the shipped
prior), or borrowed from the prior where the GPU was only measured at one limit.

A configuration is predicted from its anchor, its highest measured limit: 90 % intervals widen with
the distance from it, half-width (log) = k * (s0 + |log(anchor limit / limit)|), with k calibrated by
the protocol that matches how the response was obtained (leave one workload's sweeps out of this
GPU's fit, or leave the whole GPU out of the shipped prior's fit).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import numpy as np
from dlwh._lazy import pandas as pd

from dlwh.analysis import prior as PR
from dlwh.analysis.physics import PhysicsModel, fit_physics

TARGETS = PR.TARGETS


@dataclass
class Response:
    """A GPU's fitted or borrowed response, with its configurations, interval factors and scores."""

    model: PhysicsModel
    kind: str                      # 'fitted' (this GPU's sweeps) or 'prior' (borrowed)
    how: str                       # where the response came from, in words
    k: dict[str, float]            # interval factor per target
    scores: dict[str, dict] = field(default_factory=dict)   # target -> mape_pct, baseline_mape_pct, n, protocol
    min_w: float | None = None
    max_w: float | None = None
    range_source: str = ""

    def to_json(self) -> dict:
        return {"model": self.model.to_dict(), "kind": self.kind, "how": self.how, "k": self.k,
                "scores": self.scores, "min_w": self.min_w, "max_w": self.max_w, "range_source": self.range_source,
                "s0": PR.S0}

    @classmethod
    def from_json(cls, d: dict) -> "Response":
        return cls(model=PhysicsModel.from_dict(d["model"]), kind=str(d["kind"]), how=str(d["how"]),
                   k={k: float(v) for k, v in d["k"].items()}, scores=d.get("scores", {}),
                   min_w=d.get("min_w"), max_w=d.get("max_w"), range_source=str(d.get("range_source", "")))

    def predict(self, config: str, limits, n_gpus: float = 1.0, anchor: tuple[float, float, float] | None = None,
                workload: str | None = None) -> pd.DataFrame | None:
        """Point and 90 % interval of time, power and energy at ``limits`` (W) for a configuration
        (fitted, or known by ``anchor`` = (limit W, time s, power W)); None when it is unknown.

        Guaranteed: power <= the limit (times the overshoot the data showed at a GPU's floor), time
        never shorter at a lower limit, energy = time x power x GPUs; bounds monotone like the points.
        """
        limits = np.asarray(limits, dtype=float)
        params = self.model.config_params(config, workload, anchor)
        if params is None:
            return None
        from dlwh.analysis.physics import response

        anchor_limit = anchor[0] if anchor is not None else float(params.get("anchor_limit_w", self.model.ref_w))
        allow = self.model.allow_at(limits)
        t, p = response(limits, params["p_u"], params["t_u"], params["phi"], params["lam"], self.model.shared, allow)
        e = t * p * n_gpus
        out = pd.DataFrame({"power_limit_w": limits, "time_per_epoch_s": t, "avg_power_w": p, "energy_per_epoch_j": e})
        order = np.argsort(-limits, kind="stable")  # high to low limit
        for target, values in (("time_per_epoch_s", t), ("avg_power_w", p), ("energy_per_epoch_j", e)):
            w = PR.halfwidth(self.k[target], limits, anchor_limit)
            lo, hi = values * np.exp(-w), values * np.exp(w)
            if target == "time_per_epoch_s":  # never shorter at a lower limit: bounds too
                lo[order] = np.maximum.accumulate(lo[order])
                hi[order] = np.maximum.accumulate(hi[order])
            if target == "avg_power_w":
                hi = np.minimum(hi, allow * limits)
                lo = np.minimum(lo, p)
            out[target + "_lo"], out[target + "_hi"] = lo, hi
        return out


def reference(con: duckdb.DuckDBPyConnection | None, gpu: str, rows: pd.DataFrame | None):
    """(reference W, min W, max W, source) of ``gpu``: NVML records / dlwh's table, else the data."""
    from dlwh.analysis.gpus import gpu_range

    top = float(rows["power_limit_w"].max()) if rows is not None and len(rows) else None
    known = gpu_range(con, gpu, top)
    if known is not None:
        return known.reference_w(), known.min_w, known.max_w, known.source
    if top is None:
        return None, None, None, ""
    return top, None, top, f"the highest limit measured ({top:g} W); {gpu} is not in dlwh's table of GPU limits"


def anchors(rows: pd.DataFrame) -> pd.DataFrame:
    """Per configuration, its highest-limit rows' median time and power (the anchor run)."""
    top = rows[rows["power_limit_w"] == rows.groupby("config")["power_limit_w"].transform("max")]
    return top.groupby("config").agg(power_limit_w=("power_limit_w", "first"), time_per_epoch_s=("time_per_epoch_s", "median"),
                                     avg_power_w=("avg_power_w", "median"), workload=("workload", "first"))


def _top_limits(model: PhysicsModel, rows: pd.DataFrame) -> None:
    top = rows.groupby("config")["power_limit_w"].max()
    for config, params in model.configs.items():
        params["anchor_limit_w"] = float(top.get(config, model.ref_w))


def fit_response(con: duckdb.DuckDBPyConnection | None, rows: pd.DataFrame, gpu: str, *, calibrate: bool = True,
                 progress=None) -> Response:
    """The response of ``gpu`` from its training rows: fitted where they hold two or more limits
    (drawn towards the shipped prior), else the prior with each configuration anchored at its run."""
    ref, min_w, max_w, range_source = reference(con, gpu, rows)
    prior = PR.load()
    base, how = PR.response_for(gpu, ref, min_w, prior)
    rows = rows[(rows["time_per_epoch_s"] > 0) & (rows["avg_power_w"] > 0)]
    if rows["power_limit_w"].nunique() >= 2:
        model = fit_physics(rows, gpu, prior=base, ref_w=ref)
        _top_limits(model, rows)
        model.source = f"fitted on {len(rows)} runs of {gpu} at {rows['power_limit_w'].nunique()} limits, refining {how}"
        resp = Response(model, "fitted", model.source, dict(prior["interval"]["k_new_gpu"]), min_w=min_w, max_w=max_w,
                        range_source=range_source)
        if calibrate:
            _calibrate_fitted(resp, rows, base, progress)
        return resp
    model = base
    for config, a in anchors(rows).iterrows():
        params = model.config_params(config, a["workload"], (a["power_limit_w"], a["time_per_epoch_s"], a["avg_power_w"]))
        model.configs[config] = {**params, "workload": a["workload"], "anchor_limit_w": float(a["power_limit_w"])}
    model.n_rows = len(rows)
    scores = {}
    for target in TARGETS:
        per = [v[target] for v in prior["leave_one_gpu_out"].values()]
        scores[target] = {"protocol": "new GPU (each public GPU left out of the prior's fit)",
                          "mape_pct": float(np.mean([s["mape_pct"] for s in per])),
                          "baseline_mape_pct": float(np.mean([s["nothing_changes_mape_pct"] for s in per])),
                          "n": None}
    return Response(model, "prior", how, dict(prior["interval"]["k_new_gpu"]), scores, min_w, max_w, range_source)


def _calibrate_fitted(resp: Response, rows: pd.DataFrame, base: PhysicsModel, progress) -> None:
    """Scores and interval factors of a fitted response: each workload's sweeps left out of the fit
    (its configurations anchored at their highest limit), the protocol of predicting new limits of a
    configuration known from one run. Keeps the prior's factors where no workload can be left out."""
    from dlwh.analysis.data import mape_pct

    workloads = rows["workload"].unique()
    parts = []
    for wl in workloads:
        member = rows["workload"] == wl
        group = rows[member]
        top = group[group["power_limit_w"] == group.groupby("config")["power_limit_w"].transform("max")]
        train = pd.concat([rows[~member], top])
        if train["power_limit_w"].nunique() < 2 or len(group) == len(top):
            continue
        if progress:
            progress(f"{resp.model.gpu}: scoring the response without the sweeps of {wl}")
        model = fit_physics(train, resp.model.gpu, prior=base, ref_w=resp.model.ref_w, max_nfev=150)
        pred = PR.anchored_predictions(_Anchored(model), group)
        parts.append(pred)
    if not parts:
        return
    pred = pd.concat(parts)
    k = PR.calibrate(pred.assign(gpu=resp.model.gpu))
    resp.k = {t: max(k[t], 1e-3) for t in TARGETS}
    resp.scores = {t: {"protocol": "leave one workload's sweeps out (anchored at its highest limit)",
                       "mape_pct": mape_pct(pred[t], pred["true_" + t]),
                       "baseline_mape_pct": mape_pct(pred["anchor_" + t], pred["true_" + t]), "n": int(len(pred))}
                   for t in TARGETS}


class _Anchored:
    """A fitted model that predicts a configuration from its anchor only (its own fitted params unused)."""

    def __init__(self, model: PhysicsModel) -> None:
        self.model = model

    def predict(self, config, limits, anchor=None):
        wl = self.model.configs.get(config, {}).get("workload")
        return self.model.predict("", limits, workload=wl, anchor=anchor)
