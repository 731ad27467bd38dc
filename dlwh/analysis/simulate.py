"""dlwh simulate: what an energy budget buys at each power limit.

The budget is the energy N epochs cost at the reference limit (or a number of kWh). For each limit:
how many epochs the budget trains, how long they take, the energy saved per epoch against the
reference, and Zeus's cost ``eta * energy + (1 - eta) * max_power * time`` per epoch (max_power: the
highest limit simulated, the GPU's maximum). Where the warehouse has time-to-accuracy data (Zeus
summary_train) for the workload, also the time and energy to reach the target accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import duckdb
import numpy as np
from dlwh._lazy import pandas as pd

from dlwh.analysis.predict import Prediction, Query, predict
from dlwh.errors import DlwhError, UsageError

J_PER_KWH = 3.6e6


@dataclass
class TimeToAccuracy:
    """Epochs to reach a target metric (median over seeds) for one workload and batch size."""

    target_metric: float
    higher_is_better: bool
    epochs: float
    runs_reached: int
    runs_total: int
    learning_rates: list[float]


@dataclass
class Simulation:
    """The simulated table and its highlights."""

    table: pd.DataFrame
    reference_limit_w: float
    budget_j: float
    budget_epochs_at_reference: float
    eta: float
    max_power_w: float
    best_energy_limit_w: float
    best_cost_limit_w: float
    prediction: Prediction
    tta: TimeToAccuracy | None = None
    intensity_g_per_kwh: float | None = None
    intensity_source: str | None = None
    pue: float | None = None
    notes: list[str] = field(default_factory=list)
    decision: "Decision | None" = None
    slowdown_decision: "Decision | None" = None


TIE_PCT = 0.5   # predicted energies within this of each other are a tie, not a choice


@dataclass
class Decision:
    """The limit that minimises predicted energy (within a time constraint), its saving against the
    reference limit (%), the 90 % interval of that saving, and whether the saving is beyond the
    uncertainty (the interval excludes zero) and not a tie of flat predictions."""

    limit_w: float | None
    saving_pct: float
    saving_lo_pct: float
    saving_hi_pct: float
    slowdown: float               # time per epoch at the limit / at the reference
    decided: bool
    reason: str
    max_slowdown_pct: float | None = None


def decide(table: pd.DataFrame, reference_w: float, max_slowdown_pct: float | None = None) -> Decision:
    """The energy-minimal limit of a prediction table (power_limit_w, energy_per_epoch_j[_lo/_hi],
    time_per_epoch_s), optionally among limits at most ``max_slowdown_pct`` % slower than the reference."""
    t = table.set_index("power_limit_w")
    e_ref, t_ref = float(t.loc[reference_w, "energy_per_epoch_j"]), float(t.loc[reference_w, "time_per_epoch_s"])
    allowed = t
    if max_slowdown_pct is not None:
        allowed = t[t["time_per_epoch_s"] <= t_ref * (1 + max_slowdown_pct / 100) * (1 + 1e-9)]
    best = float(allowed["energy_per_epoch_j"].idxmin())
    row = t.loc[best]
    saving = 100 * (1 - row["energy_per_epoch_j"] / e_ref)
    lo = 100 * (1 - row.get("energy_per_epoch_j_hi", np.nan) / e_ref)
    hi = 100 * (1 - row.get("energy_per_epoch_j_lo", np.nan) / e_ref)
    slowdown = float(row["time_per_epoch_s"] / t_ref)
    spread = 100 * (allowed["energy_per_epoch_j"].max() / allowed["energy_per_epoch_j"].min() - 1)
    if best == reference_w or saving <= 0:
        return Decision(reference_w, 0.0, 0.0, 0.0, 1.0, False,
                        f"no limit is predicted to use less energy than {reference_w:g} W", max_slowdown_pct)
    if spread < TIE_PCT:
        return Decision(best, saving, lo, hi, slowdown, False,
                        f"the predicted energies differ by less than {TIE_PCT:g} %: a tie, not a choice", max_slowdown_pct)
    if np.isfinite(lo) and lo <= 0:
        return Decision(best, saving, lo, hi, slowdown, False,
                        "no limit saves energy beyond the uncertainty (the saving's 90 % interval includes zero)",
                        max_slowdown_pct)
    return Decision(best, saving, lo, hi, slowdown, True, "", max_slowdown_pct)


def time_to_accuracy(con: duckdb.DuckDBPyConnection, dataset: str | None, model: str | None, batch_size: int,
                     optimizer: str | None = None, target_metric: float | None = None) -> TimeToAccuracy | None:
    """Median epochs to the target from zeus_train_summary, or None without matching rows.

    The target is ``target_metric`` or else the strictest target that at least half of the seed runs
    reached. Whether higher is better is read from the data (epochs grow with a stricter target).
    """
    if not dataset or not model:
        return None
    rows = con.execute(
        "SELECT learning_rate, seed_run, target_metric, target_epoch FROM zeus_train_summary "
        "WHERE dataset = ? AND model = ? AND batch_size = ? AND (? IS NULL OR optimizer = ?)",
        [dataset, model, int(batch_size), optimizer, optimizer]).df()
    if rows.empty:
        return None
    reached = rows.dropna(subset=["target_epoch"])
    corr = reached[["target_metric", "target_epoch"]].corr().iloc[0, 1] if len(reached) > 2 else 1.0
    higher = bool(corr >= 0) if np.isfinite(corr) else True
    runs = rows.groupby(["learning_rate", "seed_run"]).ngroups
    per_target = rows.groupby("target_metric")["target_epoch"].agg(lambda s: s.notna().sum())
    if target_metric is None:
        good = per_target[per_target >= runs / 2]
        if good.empty:
            return None
        target_metric = float(good.index.max() if higher else good.index.min())
    hit = rows[np.isclose(rows["target_metric"], target_metric)]
    epochs = hit["target_epoch"].dropna()
    if epochs.empty:
        raise DlwhError(f"no run of {dataset}/{model} at batch {batch_size} reached target {target_metric:g}")
    return TimeToAccuracy(target_metric=target_metric, higher_is_better=higher, epochs=float(epochs.median()),
                          runs_reached=int(len(epochs)), runs_total=int(hit.groupby(["learning_rate", "seed_run"]).ngroups),
                          learning_rates=sorted(hit["learning_rate"].unique().tolist()))


def _carbon(con, zone, intensity, pue) -> tuple[float | None, str | None, float | None]:
    """(gCO2e/kWh, its source, PUE) from the options, else from the warehouse's carbon settings, else Nones."""
    asked = zone is not None or intensity is not None or pue is not None
    try:
        from dlwh.carbon import intensity as carbon
    except ImportError:
        if asked:
            raise DlwhError("emissions need dlwh.carbon, which this installation lacks; "
                            "leave out --zone / --intensity / --pue") from None
        return None, None, None
    try:
        value, source = carbon.resolve_intensity(con, zone, intensity, None)
    except DlwhError:
        if asked:
            raise
        return None, None, None  # no zone or intensity stored: no emissions columns
    if hasattr(carbon, "resolve_pue"):
        pue_value, _ = carbon.resolve_pue(con, pue, None)
    else:
        pue_value = pue if pue is not None else 1.0
    return float(value), str(source), float(pue_value)


def range_grid(con: duckdb.DuckDBPyConnection, gpu: str) -> list[float]:
    """Limits across the GPU's known range (25 W steps up to 300 W wide, else 50 W), or []."""
    from dlwh.analysis.predict import load_model

    found = load_model(con, gpu, "time_per_epoch_s", "physics")
    if found is None or found[0].max_w is None or found[0].min_w is None:
        return []
    low, high = float(found[0].min_w), float(found[0].max_w)
    step = 25.0 if high - low <= 300 else 50.0
    grid = list(np.arange(high, low - 1e-9, -step))[::-1]
    return [float(v) for v in grid]


def default_limits(con: duckdb.DuckDBPyConnection, gpu: str) -> list[float]:
    """The power limits measured on this GPU (the grid a simulation walks by default)."""
    rows = con.execute("SELECT DISTINCT power_limit_w FROM training_data WHERE gpu = ? ORDER BY 1", [gpu]).fetchall()
    return [float(r[0]) for r in rows]


def _most_measured(con: duckdb.DuckDBPyConnection, q: Query) -> tuple[Query, str]:
    """Without --model: the GPU's configuration measured at the most power limits."""
    from dlwh.analysis.predict import fitted_gpus
    from dlwh.analysis.data import normalise_gpu

    gpus = [normalise_gpu(q.gpu)] if q.gpu else fitted_gpus(con)
    if len(gpus) != 1:
        raise UsageError("pass --model (and --gpu when several GPUs are fitted)")
    row = con.execute(
        "SELECT model, dataset, batch_size, count(*) AS n FROM training_data WHERE gpu = ? AND work_unit = 'epoch' "
        "AND model IS NOT NULL AND (? IS NULL OR batch_size = ?) GROUP BY ALL ORDER BY n DESC, model, dataset, batch_size "
        "LIMIT 1", [gpus[0], q.batch_size, q.batch_size]).fetchone()
    if row is None:
        raise UsageError("pass --model NAME and --batch-size B")
    model, dataset, batch, n = row
    return (replace(q, gpu=gpus[0], model=model, dataset=dataset, batch_size=int(batch)),
            f"no --model: simulating the configuration measured at the most limits on {gpus[0]}, "
            f"{dataset}/{model} at batch {int(batch)} ({n} limits); pass --model and --batch-size for another")


def simulate(con: duckdb.DuckDBPyConnection, q: Query, *, budget_epochs: float | None = None,
             budget_kwh: float | None = None, reference_limit: str | float = "max", eta: float = 0.5,
             target_metric: float | None = None, zone: str | None = None, intensity: float | None = None,
             pue: float | None = None, max_slowdown_pct: float | None = None) -> Simulation:
    """Simulate the budget over q.power_limits (empty: the GPU's measured limits, or a grid over its
    power-limit range where fewer than three were measured). No budget: one epoch at the reference."""
    if budget_epochs is not None and budget_kwh is not None:
        raise UsageError("give one budget: --budget-epochs N or --budget-kwh X")
    if budget_epochs is None and budget_kwh is None:
        budget_epochs = 1.0
    if max_slowdown_pct is not None and not (np.isfinite(max_slowdown_pct) and max_slowdown_pct >= 0):
        raise UsageError("--max-slowdown must be a percentage of 0 or more, e.g. 10")
    if not 0 <= eta <= 1:
        raise UsageError("--eta must lie between 0 and 1")
    if (budget_epochs is not None and budget_epochs <= 0) or (budget_kwh is not None and budget_kwh <= 0):
        raise UsageError("the budget must be positive")
    notes: list[str] = []
    if not q.model and q.macs is None:
        q, note = _most_measured(con, q)
        notes.append(note)
    limits = list(q.power_limits)
    if not limits:
        from dlwh.analysis.predict import resolve

        _, _, gpu = resolve(con, q)
        limits = default_limits(con, gpu)
        if len(limits) < 3:
            grid = range_grid(con, gpu)
            if grid:
                limits = sorted(set(limits) | set(grid))
                notes.append(f"fewer than three limits measured on {gpu}: simulating its power-limit range "
                             f"{grid[0]:g}..{grid[-1]:g} W")
    if str(reference_limit).lower() == "max":
        reference = max(limits)
    else:
        try:
            reference = float(reference_limit)
        except ValueError:
            raise UsageError(f"--reference-limit {reference_limit!r}: give W or 'max'") from None
    if reference not in limits:
        limits = sorted(limits + [reference])
    pred = predict(con, replace(q, power_limits=sorted(set(limits)), epochs=None))
    t = pred.table.set_index("power_limit_w")
    e_ref = float(t.loc[reference, "energy_per_epoch_j"])
    budget_j = budget_epochs * e_ref if budget_epochs is not None else budget_kwh * J_PER_KWH
    n_ref = budget_j / e_ref
    max_power = float(max(limits))
    table = pd.DataFrame(index=t.index)
    table["time_per_epoch_s"] = t["time_per_epoch_s"]
    table["avg_power_w"] = t["avg_power_w"]
    table["energy_per_epoch_j"] = t["energy_per_epoch_j"]
    table["epochs_in_budget"] = budget_j / t["energy_per_epoch_j"]
    table["time_for_budget_s"] = table["epochs_in_budget"] * t["time_per_epoch_s"]
    table["time_for_n_epochs_s"] = n_ref * t["time_per_epoch_s"]
    table["energy_for_n_epochs_j"] = n_ref * t["energy_per_epoch_j"]
    table["saved_per_epoch_j"] = e_ref - t["energy_per_epoch_j"]
    table["saved_pct"] = 100 * table["saved_per_epoch_j"] / e_ref
    table["cost_per_epoch"] = eta * t["energy_per_epoch_j"] + (1 - eta) * max_power * t["time_per_epoch_s"] * pred.base["n_gpus"]
    sim = Simulation(table=table.reset_index(), reference_limit_w=reference, budget_j=budget_j,
                     budget_epochs_at_reference=n_ref, eta=eta, max_power_w=max_power,
                     best_energy_limit_w=float(table["energy_per_epoch_j"].idxmin()),
                     best_cost_limit_w=float(table["cost_per_epoch"].idxmin()), prediction=pred,
                     notes=notes + list(pred.notes))
    sim.decision = decide(pred.table, reference)
    if max_slowdown_pct is not None:
        sim.slowdown_decision = decide(pred.table, reference, max_slowdown_pct)
    base = pred.base
    tta = time_to_accuracy(con, base.get("dataset"), base.get("model"), int(base["batch_size"]),
                           base.get("optimizer"), target_metric)
    if tta is None and target_metric is not None:
        raise DlwhError("no time-to-accuracy data for this workload and batch size (ingest Zeus summary_train.csv)")
    if tta is not None:
        sim.tta = tta
        sim.table["time_to_accuracy_s"] = tta.epochs * sim.table["time_per_epoch_s"]
        sim.table["energy_to_accuracy_j"] = tta.epochs * sim.table["energy_per_epoch_j"]
    value, source, pue_value = _carbon(con, zone, intensity, pue)
    if value is not None:
        sim.intensity_g_per_kwh, sim.intensity_source, sim.pue = value, source, pue_value
        sim.table["co2_for_n_epochs_g"] = sim.table["energy_for_n_epochs_j"] / J_PER_KWH * pue_value * value
        sim.table["co2_for_budget_g"] = budget_j / J_PER_KWH * pue_value * value
    return sim


def table_for_print(sim: Simulation) -> pd.DataFrame:
    """Readable columns: energy in kWh, times in hours."""
    t = sim.table
    n = sim.budget_epochs_at_reference
    out = pd.DataFrame({
        "limit W": t["power_limit_w"].map(lambda v: f"{v:g}" + (" (ref)" if v == sim.reference_limit_w else "")),
        "power W": t["avg_power_w"].map(lambda v: f"{v:.0f}"),
        "kWh/epoch": (t["energy_per_epoch_j"] / J_PER_KWH).map(lambda v: f"{v:.4g}"),
        "epochs in budget": t["epochs_in_budget"].map(lambda v: f"{v:.1f}"),
        "h for budget": (t["time_for_budget_s"] / 3600).map(lambda v: f"{v:.4g}"),
        f"h for {n:g} epochs": (t["time_for_n_epochs_s"] / 3600).map(lambda v: f"{v:.4g}"),
        "saved/epoch": [f"{s / J_PER_KWH:.3g} kWh ({p:+.1f} %)" for s, p in zip(t["saved_per_epoch_j"], t["saved_pct"])],
        f"cost (eta {sim.eta:g})": (t["cost_per_epoch"] / J_PER_KWH).map(lambda v: f"{v:.4g}"),
    })
    if "time_to_accuracy_s" in t:
        out["TTA h"] = (t["time_to_accuracy_s"] / 3600).map(lambda v: f"{v:.4g}")
        out["ETA kWh"] = (t["energy_to_accuracy_j"] / J_PER_KWH).map(lambda v: f"{v:.4g}")
    if "co2_for_n_epochs_g" in t:
        out[f"kg CO2e ({n:g} ep)"] = (t["co2_for_n_epochs_g"] / 1000).map(lambda v: f"{v:.4g}")
    return out


def decision_line(d: Decision, reference_w: float) -> str:
    """'energy-optimal limit: 450 W, saves 12.3 % (90 %: 4.1 .. 19.0 %) against 700 W, 1.18x the time'."""
    scope = (f"energy-optimal limit within {d.max_slowdown_pct:g} % more time" if d.max_slowdown_pct is not None
             else "energy-optimal limit")
    if d.decided:
        return (f"{scope}: {d.limit_w:g} W, saves {d.saving_pct:.1f} % energy per epoch (90 %: {d.saving_lo_pct:.1f} .. "
                f"{d.saving_hi_pct:.1f} %) against {reference_w:g} W, at {d.slowdown:.2f}x the time per epoch")
    if d.limit_w is not None and d.limit_w != reference_w:
        return (f"{scope}: none chosen: {d.reason}; the point prediction's best is {d.limit_w:g} W "
                f"({d.saving_pct:.1f} %, 90 %: {d.saving_lo_pct:.1f} .. {d.saving_hi_pct:.1f} %)")
    return f"{scope}: none chosen: {d.reason}"


def _less(saved_pct: float) -> str:
    return f"{saved_pct:.1f} % less" if saved_pct >= 0 else f"{-saved_pct:.1f} % more"


def summary_lines(sim: Simulation) -> list[str]:
    """The highlights under the table."""
    t = sim.table.set_index("power_limit_w")
    ref = sim.reference_limit_w
    lines = [
        f"budget: {sim.budget_j / J_PER_KWH:.4g} kWh = {sim.budget_epochs_at_reference:g} epochs at the "
        f"reference limit {ref:g} W",
    ]
    for d in (sim.decision, sim.slowdown_decision):
        if d is not None:
            lines.append(decision_line(d, ref))
    be = sim.best_energy_limit_w
    lines.append(f"least energy (point prediction): {be:g} W, {t.loc[be, 'energy_per_epoch_j'] / J_PER_KWH:.4g} kWh/epoch "
                 f"({_less(t.loc[be, 'saved_pct'])} than at {ref:g} W), {t.loc[be, 'epochs_in_budget']:.1f} epochs in the "
                 f"budget, {t.loc[be, 'time_per_epoch_s'] / t.loc[ref, 'time_per_epoch_s']:.2f}x the time per epoch")
    bc = sim.best_cost_limit_w
    lines.append(f"least cost (eta {sim.eta:g}: eta*energy + (1-eta)*{sim.max_power_w:g} W*time): {bc:g} W, "
                 f"{_less(t.loc[bc, 'saved_pct'])} energy, {t.loc[bc, 'time_per_epoch_s'] / t.loc[ref, 'time_per_epoch_s']:.2f}x "
                 "the time per epoch")
    if sim.tta is not None:
        tta = sim.tta
        better = "at least" if tta.higher_is_better else "at most"
        lines.append(f"time to accuracy: {tta.epochs:g} epochs (median of {tta.runs_reached}/{tta.runs_total} seed runs) "
                     f"to reach {better} {tta.target_metric:g}; at {be:g} W "
                     f"{t.loc[be, 'time_to_accuracy_s'] / 3600:.3g} h and {t.loc[be, 'energy_to_accuracy_j'] / J_PER_KWH:.3g} kWh, "
                     f"at {ref:g} W {t.loc[ref, 'time_to_accuracy_s'] / 3600:.3g} h and "
                     f"{t.loc[ref, 'energy_to_accuracy_j'] / J_PER_KWH:.3g} kWh")
    if sim.intensity_g_per_kwh is not None:
        lines.append(f"emissions at {sim.intensity_g_per_kwh:g} gCO2e/kWh ({sim.intensity_source}), PUE {sim.pue:g}: "
                     f"budget {sim.budget_j / J_PER_KWH * sim.pue * sim.intensity_g_per_kwh / 1000:.4g} kg CO2e")
    return lines
