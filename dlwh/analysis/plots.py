"""Plots (matplotlib, Agg backend; PNG or SVG by the file's suffix).

* power_over_time: a run's GPU power with its spans shaded (warm-up spans hatched)
* energy_time_vs_macs: time and energy per sample against MACs per sample, log-log with the fit
* limit_curves: time and energy per epoch against the power limit, measured points and predicted curves
* pareto: the energy-time Pareto front of a workload over batch sizes and power limits
* simulation: the output of dlwh simulate

Each function returns the matplotlib Figure; ``save(fig, out)`` writes it.
"""

from __future__ import annotations

import io
from pathlib import Path

import duckdb
import numpy as np
from dlwh._lazy import pandas as pd

from dlwh.errors import DlwhError, UsageError

FORMATS = (".png", ".svg")
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def check_out(out: str | Path) -> Path:
    """The output path; its suffix must be .png or .svg."""
    path = Path(out)
    if path.suffix.lower() not in FORMATS:
        raise UsageError(f"--out {out}: give a .png or .svg file name")
    return path


def save(fig, out: str | Path) -> Path:
    """Write ``fig`` to ``out`` (PNG at 120 dpi, or SVG) and close it."""
    path = check_out(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    _plt().close(fig)
    return path


def to_svg(fig) -> str:
    """The figure as inline SVG text (for the HTML report); closes it."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    _plt().close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def power_over_time(con: duckdb.DuckDBPyConnection, run_id: str):
    """GPU power (W) of a run against time since its start, spans shaded, warm-up spans hatched."""
    plt = _plt()
    power = con.execute(
        "SELECT se.name AS sensor, s.ts, s.value FROM samples s JOIN sensors se USING (sensor_id) "
        "WHERE se.run_id = ? AND se.kind = 'gpu' AND s.metric = 'power' AND s.value IS NOT NULL ORDER BY se.name, s.ts",
        [run_id]).df()
    if power.empty:
        known = con.execute("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]).fetchone()[0]
        if not known:
            raise DlwhError(f"no run {run_id!r} in this warehouse; list runs with: dlwh sql \"SELECT run_id FROM runs\"")
        raise DlwhError(f"run {run_id} has no GPU power samples")
    spans = con.execute("SELECT span_id, kind, name, start_ts, end_ts FROM spans WHERE run_id = ? AND kind IN ('epoch', 'step') "
                        "ORDER BY start_ts", [run_id]).df()
    steady = {r[0] for r in con.execute("SELECT span_id FROM steady_spans WHERE run_id = ?", [run_id]).fetchall()}
    t0 = power["ts"].min()
    fig, ax = plt.subplots(figsize=(9, 3.8))
    epochs = spans[spans["kind"] == "epoch"]
    shade = epochs if len(epochs) else spans
    for k, sp in enumerate(shade.itertuples()):
        a, b = (sp.start_ts - t0).total_seconds(), (sp.end_ts - t0).total_seconds()
        warm = sp.span_id not in steady
        ax.axvspan(a, b, color="#999999" if warm else ("#cfe2f3" if k % 2 else "#e8f1fa"), alpha=0.5,
                   hatch="//" if warm else None, lw=0)
    for k, (sensor, part) in enumerate(power.groupby("sensor", sort=False)):
        ax.plot((part["ts"] - t0).dt.total_seconds(), part["value"], lw=1, color=COLOURS[k % len(COLOURS)], label=sensor)
    ax.set_xlabel("time since the first sample (s)")
    ax.set_ylabel("GPU power (W)")
    ax.set_title(f"run {run_id}: GPU power; shaded: {shade['kind'].iloc[0] if len(shade) else 'no'} spans, "
                 "hatched: warm-up (excluded from the training data)", fontsize=9)
    ax.set_ylim(bottom=0)
    if power["sensor"].nunique() > 1:
        ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    return fig


def _top_limit_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Each configuration's row at its highest power limit (what a default-limit run measures)."""
    return rows.sort_values("power_limit_w").groupby("config").tail(1)


def energy_time_vs_macs(con: duckdb.DuckDBPyConnection, gpu: str | None = None):
    """Time and energy per sample against MACs per sample (log-log), one point per configuration at
    its highest power limit, with a least-squares line in log-log space and its slope."""
    from dlwh.analysis.data import load_training_data

    plt = _plt()
    rows = load_training_data(con, gpu)
    rows = rows[rows["macs_per_sample"].notna() & rows["samples_per_epoch"].notna()]
    if rows.empty:
        raise DlwhError("no training rows with both MACs and samples per epoch; tag runs with model and "
                        "samples_per_epoch, or ingest the Zeus summaries")
    rows = _top_limit_rows(rows).copy()
    rows["time_per_sample_s"] = rows["time_per_epoch_s"] / rows["samples_per_epoch"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, column, label in ((axes[0], "time_per_sample_s", "time per sample (s)"),
                              (axes[1], "energy_per_sample_j", "energy per sample (J)")):
        for k, ((g, model), part) in enumerate(rows.groupby(["gpu", "model"])):
            ax.scatter(part["macs_per_sample"], part[column], s=18, color=COLOURS[k % len(COLOURS)], label=f"{g} {model}")
        x, y = np.log10(rows["macs_per_sample"].astype(float)), np.log10(rows[column].astype(float))
        if x.nunique() > 1:
            slope, intercept = np.polyfit(x, y, 1)
            xs = np.linspace(x.min(), x.max(), 20)
            ax.plot(10 ** xs, 10 ** (intercept + slope * xs), "k--", lw=1, label=f"fit: slope {slope:.2f}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("MACs per sample")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    axes[1].legend(fontsize=7)
    fig.suptitle("Cost per sample against model size (each configuration at its highest power limit; "
                 "batch sizes spread the points)", fontsize=9)
    return fig


def _physics(con, gpu):
    from dlwh.analysis.predict import load_model

    found = load_model(con, gpu, "time_per_epoch_s", "physics")
    return found[0] if found else None


def limit_curves(con: duckdb.DuckDBPyConnection, gpu: str, model: str | None = None, max_configs: int = 8):
    """Time and energy per epoch against the power limit: measured points and the physics model's curves."""
    from dlwh.analysis.data import load_training_data, normalise_gpu

    plt = _plt()
    gpu = normalise_gpu(gpu)
    rows = load_training_data(con, gpu)
    if model:
        from dlwh.analysis.predict import _canonical_model

        rows = rows[rows["model"] == _canonical_model(model)]
        if rows.empty:
            raise DlwhError(f"no training rows of model {model} on {gpu}")
    counts = rows.groupby("config").size()
    configs = counts[counts > 1].sort_values(ascending=False).index[:max_configs]
    if len(configs) == 0:
        raise DlwhError(f"no configuration measured at more than one power limit on {gpu}")
    physics = _physics(con, gpu)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for k, config in enumerate(sorted(configs)):
        part = rows[rows["config"] == config].sort_values("power_limit_w")
        colour = COLOURS[k % len(COLOURS)]
        label = "/".join(config.split("/")[1:4])
        axes[0].scatter(part["power_limit_w"], part["time_per_epoch_s"], s=16, color=colour, label=label)
        axes[1].scatter(part["power_limit_w"], part["energy_per_epoch_j"] / 1e3, s=16, color=colour)
        if physics is not None and config in physics.model.configs:
            grid = np.linspace(part["power_limit_w"].min(), part["power_limit_w"].max(), 60)
            t, p = physics.model.predict(config, grid)
            n = float(part["n_gpus"].iloc[0])
            axes[0].plot(grid, t, color=colour, lw=1)
            axes[1].plot(grid, t * p * n / 1e3, color=colour, lw=1)
    axes[0].set_ylabel("time per epoch (s)")
    axes[1].set_ylabel("energy per epoch (kJ)")
    for ax in axes:
        ax.set_xlabel("power limit (W)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{gpu}: measured (points) and the power-limit model (lines)" if physics is not None
                 else f"{gpu}: measured (run dlwh fit for the model's curves)", fontsize=9)
    return fig


def pareto(con: duckdb.DuckDBPyConnection, gpu: str, model: str, dataset: str | None = None):
    """Energy against time for every (batch size, power limit) of a workload; the Pareto front joined.

    With time-to-accuracy data the axes are time and energy to reach the target; else per epoch."""
    from dlwh.analysis.data import load_training_data, normalise_gpu
    from dlwh.analysis.predict import _canonical_model
    from dlwh.analysis.simulate import time_to_accuracy

    plt = _plt()
    gpu = normalise_gpu(gpu)
    rows = load_training_data(con, gpu)
    rows = rows[(rows["model"] == _canonical_model(model)) & (rows["work_unit"] == "epoch")]
    if dataset:
        rows = rows[rows["dataset"] == dataset]
    if rows.empty:
        raise DlwhError(f"no epoch measurements of {model} on {gpu}")
    if rows["dataset"].nunique() > 1:
        raise UsageError(f"{model} was measured on several datasets ({', '.join(rows['dataset'].dropna().unique())}); "
                         "pass --dataset")
    rows = rows.copy()
    scale, what = np.ones(len(rows)), "per epoch"
    epochs = {}
    for batch in rows["batch_size"].dropna().unique():
        tta = time_to_accuracy(con, rows["dataset"].iloc[0], rows["model"].iloc[0], int(batch), rows["optimizer"].iloc[0])
        if tta is not None:
            epochs[batch] = tta.epochs
    if epochs and all(b in epochs for b in rows["batch_size"].unique()):
        scale = rows["batch_size"].map(epochs).to_numpy(float)
        what = "to target accuracy"
    rows["t"] = rows["time_per_epoch_s"] * scale / 3600
    rows["e"] = rows["energy_per_epoch_j"] * scale / 3.6e6
    order = rows.sort_values(["t", "e"])
    front = order[order["e"] <= order["e"].cummin()]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    sc = ax.scatter(rows["t"], rows["e"], c=np.log2(rows["batch_size"].astype(float)), cmap="viridis", s=18)
    ax.plot(front["t"], front["e"], "r-o", ms=4, lw=1.2, label="Pareto front")
    for r in front.itertuples():
        ax.annotate(f"b{int(r.batch_size)} {r.power_limit_w:g}W", (r.t, r.e), fontsize=6, xytext=(3, 3),
                    textcoords="offset points")
    cbar = fig.colorbar(sc, ax=ax)
    cbar.set_label("log2 batch size")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"time {what} (h)")
    ax.set_ylabel(f"energy {what} (kWh)")
    ax.set_title(f"{gpu} {rows['dataset'].iloc[0]}/{rows['model'].iloc[0]}: energy-time trade-off", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def simulation(sim):
    """Energy and time per epoch against the limit, and epochs the budget trains."""
    plt = _plt()
    t = sim.table
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained")
    ax = axes[0]
    ax.plot(t["power_limit_w"], t["energy_per_epoch_j"] / 3.6e6, "o-", color=COLOURS[0], label="energy per epoch")
    ax.set_xlabel("power limit (W)")
    ax.set_ylabel("energy per epoch (kWh)", color=COLOURS[0])
    twin = ax.twinx()
    twin.plot(t["power_limit_w"], t["time_per_epoch_s"] / 3600, "s--", color=COLOURS[1], label="time per epoch")
    twin.set_ylabel("time per epoch (h)", color=COLOURS[1])
    ax.axvline(sim.best_energy_limit_w, color=COLOURS[2], ls=":", label=f"least energy {sim.best_energy_limit_w:g} W")
    ax.axvline(sim.best_cost_limit_w, color=COLOURS[3], ls="-.", label=f"least cost (eta {sim.eta:g}) {sim.best_cost_limit_w:g} W")
    handles = ax.get_legend_handles_labels()
    extra = twin.get_legend_handles_labels()
    ax.legend(handles[0] + extra[0], handles[1] + extra[1], fontsize=7, loc="upper center")
    ax.grid(alpha=0.3)
    ax = axes[1]
    colours = [COLOURS[2] if v == sim.best_energy_limit_w else COLOURS[0] for v in t["power_limit_w"]]
    width = np.min(np.diff(np.sort(t["power_limit_w"]))) * 0.8 if len(t) > 1 else 10
    ax.bar(t["power_limit_w"], t["epochs_in_budget"], width=width, color=colours)
    ax.axhline(sim.budget_epochs_at_reference, color="k", ls="--", lw=1,
               label=f"{sim.budget_epochs_at_reference:g} epochs at {sim.reference_limit_w:g} W")
    ax.set_xlabel("power limit (W)")
    ax.set_ylabel("epochs the energy budget trains")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"{sim.prediction.description}: budget {sim.budget_j / 3.6e6:.3g} kWh "
                 f"({sim.budget_epochs_at_reference:g} epochs at {sim.reference_limit_w:g} W)", fontsize=9)
    return fig
