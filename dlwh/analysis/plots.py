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


# -- readable axes and legends --------------------------------------------------------------------

CONFIG_PARTS = ("gpu", "dataset", "model", "batch", "optimizer", "precision", "GPUs", "unit")


def natural_key(text: str) -> tuple:
    """Sort key that orders the numbers inside a text by value: batch 16 < 32 < 128, not 128 < 16."""
    import re

    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", str(text)) if part)


def number(value: float) -> str:
    """A tick label a person reads: 3 significant digits, no ×10⁰; powers of ten far from 1 as 10ⁿ."""
    if value == 0 or not np.isfinite(value):
        return "0" if value == 0 else ""
    exponent = int(np.floor(np.log10(abs(value)) + 1e-9))
    if exponent >= 5 or exponent <= -4:
        mantissa = value / 10.0 ** exponent
        return f"$10^{{{exponent}}}$" if abs(mantissa - 1) < 1e-6 else f"${mantissa:.2g}\\times10^{{{exponent}}}$"
    return np.format_float_positional(value, precision=3, unique=True, fractional=False, trim="-")


def si(value: float) -> str:
    """A count with an SI prefix (MACs, parameters): 4.1G, 300M, 61.7k."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{prefix}"
    return f"{value:.3g}"


def scale_axis(ax, axis: str, values, formatter=number) -> None:
    """Log scale where the values span a factor of 10 or more, else linear; plain tick labels either way."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, ScalarFormatter

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    target = ax.xaxis if axis == "x" else ax.yaxis
    set_scale = ax.set_xscale if axis == "x" else ax.set_yscale
    label = FuncFormatter(lambda x, _pos: formatter(x))
    if len(v) == 0 or v.max() / v.min() < 10:
        set_scale("linear")
        target.set_major_locator(MaxNLocator(6))
        if formatter is number:  # as many decimals as the tick spacing needs, no offset, no ×10ⁿ
            plain = ScalarFormatter(useOffset=False)
            plain.set_scientific(False)
            target.set_major_formatter(plain)
        else:
            target.set_major_formatter(label)
        return
    set_scale("log")
    target.set_major_locator(LogLocator(base=10))
    target.set_major_formatter(label)
    if np.log10(v.max() / v.min()) < 2.5:  # few decades: label 2 and 5 too
        target.set_minor_locator(LogLocator(base=10, subs=(2, 5)))
        target.set_minor_formatter(label)
    else:
        target.set_minor_formatter(NullFormatter())


def time_unit(seconds_max: float) -> tuple[float, str]:
    """(divisor, unit) for times whose largest is ``seconds_max``: s, min or h."""
    if seconds_max >= 2 * 3600:
        return 3600.0, "h"
    if seconds_max >= 120:
        return 60.0, "min"
    return 1.0, "s"


def energy_unit(joules_max: float) -> tuple[float, str]:
    """(divisor, unit) for energies whose largest is ``joules_max``: J, kJ, MJ or kWh."""
    if joules_max >= 3.6e5:
        return 3.6e6, "kWh"
    if joules_max >= 1e4:
        return 1e3, "kJ"
    return 1.0, "J"


def config_labels(configs) -> tuple[dict[str, str], str]:
    """Short legend labels for configurations (only the parts that differ) and the parts they share."""
    split = {c: c.split("/") for c in configs}
    width = max(len(parts) for parts in split.values())
    differ = [i for i in range(width) if len({tuple(p[i:i + 1]) for p in split.values()}) > 1]
    def name(i: int) -> str:
        return CONFIG_PARTS[i] if i < len(CONFIG_PARTS) else "extra"
    labels = {}
    for config, parts in split.items():
        bits = [f"{name(i)} {parts[i]}" if name(i) in ("batch",) else parts[i] for i in differ if i < len(parts)]
        labels[config] = ", ".join(b for b in bits if b != "-") or config
    first = next(iter(split.values()))
    shared = "/".join(first[i] for i in range(min(4, len(first))) if i not in differ and first[i] != "-")
    return labels, shared


def power_over_time(con: duckdb.DuckDBPyConnection, run_id: str):
    """GPU power (W) of a run against time since its start, its epoch (or step) spans shaded; the spans the
    training data leaves out are hatched: the warm-up (first epoch, first 10 steps) and a partial epoch."""
    from matplotlib.patches import Patch

    plt = _plt()
    power = con.execute(
        "SELECT se.name || ' (' || coalesce(se.tool, '?') || ')' AS sensor, s.ts, s.value "
        "FROM samples s JOIN sensors se USING (sensor_id) "
        "WHERE se.run_id = ? AND se.kind = 'gpu' AND s.metric = 'power' AND s.value IS NOT NULL "
        "ORDER BY se.name, se.tool, se.sensor_id, s.ts",
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
    fig, ax = plt.subplots(figsize=(9, 4.2), layout="constrained")
    epochs = spans[spans["kind"] == "epoch"]
    shade = epochs if len(epochs) else spans
    kind = shade["kind"].iloc[0] if len(shade) else None
    warmup_n = 1 if kind == "epoch" else 10
    used = {"steady": False, "warm-up": False, "left out": False}
    for k, sp in enumerate(shade.itertuples()):
        a, b = (sp.start_ts - t0).total_seconds(), (sp.end_ts - t0).total_seconds()
        if sp.span_id in steady:
            ax.axvspan(a, b, color="#cfe2f3" if k % 2 else "#e8f1fa", alpha=0.6, lw=0)
            used["steady"] = True
        elif k < warmup_n:
            ax.axvspan(a, b, color="#999999", alpha=0.45, hatch="//", lw=0)
            used["warm-up"] = True
        else:  # after the warm-up but not steady: a partial epoch (a run stopped mid-epoch)
            ax.axvspan(a, b, color="#f6d7a7", alpha=0.6, hatch="\\\\", lw=0)
            used["left out"] = True
    for k, (sensor, part) in enumerate(power.groupby("sensor", sort=False)):
        ax.plot((part["ts"] - t0).dt.total_seconds(), part["value"], lw=1, color=COLOURS[k % len(COLOURS)], label=sensor)
    handles, labels = ax.get_legend_handles_labels()
    if len(handles) == 1:
        handles, labels = [], []
    patches = {"steady": Patch(facecolor="#cfe2f3", label=f"steady {kind}s (training data)"),
               "warm-up": Patch(facecolor="#999999", alpha=0.45, hatch="//", label=f"warm-up {kind}" + ("" if warmup_n == 1 else "s")),
               "left out": Patch(facecolor="#f6d7a7", hatch="\\\\", label=f"partial {kind} (left out)")}
    extra = [patch for name, patch in patches.items() if used[name]]
    if handles or extra:
        ax.legend(handles + extra, labels + [p.get_label() for p in extra], fontsize=8, loc="upper center",
                  bbox_to_anchor=(0.5, -0.16), ncol=min(3, len(handles) + len(extra)), frameon=False)
    ax.set_xlabel("time since the first sample (s)")
    ax.set_ylabel("GPU power (W)")
    ax.set_title(f"run {run_id}: GPU power" + (f", {kind} spans shaded" if kind else ", no epoch or step spans"),
                 fontsize=9)
    ax.set_ylim(bottom=0)
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
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), layout="constrained")
    groups = sorted(rows.groupby(["gpu", "model"]), key=lambda item: natural_key(" ".join(item[0])))
    markers = "osD^v<>pPX*h"
    for ax, column, label in ((axes[0], "time_per_sample_s", "time per sample (s)"),
                              (axes[1], "energy_per_sample_j", "energy per sample (J)")):
        for k, ((g, model), part) in enumerate(groups):
            ax.scatter(part["macs_per_sample"], part[column], s=22, color=COLOURS[k % len(COLOURS)],
                       marker=markers[(k // len(COLOURS)) % len(markers)], label=f"{g} {model}")
        x, y = np.log10(rows["macs_per_sample"].astype(float)), np.log10(rows[column].astype(float))
        if x.nunique() > 1:
            slope, intercept = np.polyfit(x, y, 1)
            xs = np.linspace(x.min(), x.max(), 20)
            ax.plot(10 ** xs, 10 ** (intercept + slope * xs), "k--", lw=1, label=f"fit: slope {slope:.2f}")
        scale_axis(ax, "x", rows["macs_per_sample"], si)
        scale_axis(ax, "y", rows[column])
        ax.set_xlabel("MACs per sample (forward pass)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5), title="GPU, model", title_fontsize=7)
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
    limits = rows.groupby("config")["power_limit_w"].nunique()
    configs = sorted(limits[limits > 1].sort_values(ascending=False, kind="stable").index[:max_configs], key=natural_key)
    if len(configs) == 0:
        measured = ", ".join(f"{v:g} W" for v in sorted(rows["power_limit_w"].unique()))
        raise DlwhError(f"no configuration on {gpu} was measured at more than one power limit (measured at {measured}); "
                        "record one at several limits with dlwh collect sweep")
    physics = _physics(con, gpu)
    labels, shared = config_labels(configs)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), layout="constrained")
    part_all = rows[rows["config"].isin(configs)]
    t_div, t_unit = time_unit(part_all["time_per_epoch_s"].max())
    e_div, e_unit = energy_unit(part_all["energy_per_epoch_j"].max())
    for k, config in enumerate(configs):
        part = rows[rows["config"] == config].sort_values("power_limit_w")
        colour = COLOURS[k % len(COLOURS)]
        axes[0].scatter(part["power_limit_w"], part["time_per_epoch_s"] / t_div, s=16, color=colour, label=labels[config])
        axes[1].scatter(part["power_limit_w"], part["energy_per_epoch_j"] / e_div, s=16, color=colour)
        if physics is not None and config in physics.model.configs:
            grid = np.linspace(part["power_limit_w"].min(), part["power_limit_w"].max(), 60)
            t, p = physics.model.predict(config, grid)
            n = float(part["n_gpus"].iloc[0])
            axes[0].plot(grid, t / t_div, color=colour, lw=1)
            axes[1].plot(grid, t * p * n / e_div, color=colour, lw=1)
    axes[0].set_ylabel(f"time per epoch ({t_unit})")
    axes[1].set_ylabel(f"energy per epoch ({e_unit})")
    scale_axis(axes[0], "y", part_all["time_per_epoch_s"] / t_div)
    scale_axis(axes[1], "y", part_all["energy_per_epoch_j"] / e_div)
    for ax in axes:
        ax.set_xlabel("power limit (W)")
        ax.grid(alpha=0.3, which="both")
    axes[1].legend(*axes[0].get_legend_handles_labels(), fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5),
                   title=shared or None, title_fontsize=7)
    what = "measured (points) and the power-limit model (lines)" if physics is not None \
        else "measured (run dlwh fit for the model's curves)"
    fig.suptitle(f"{gpu}: {what}", fontsize=9)
    return fig


def pareto(con: duckdb.DuckDBPyConnection, gpu: str, model: str, dataset: str | None = None):
    """Energy against time for every (batch size, power limit) of a workload; the Pareto front joined.

    With time-to-accuracy data the axes are time and energy to reach the target; else per epoch."""
    from matplotlib.colors import BoundaryNorm, ListedColormap

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
    t_div, t_unit = time_unit(float((rows["time_per_epoch_s"] * scale).max()))
    e_div, e_unit = energy_unit(float((rows["energy_per_epoch_j"] * scale).max()))
    rows["t"] = rows["time_per_epoch_s"] * scale / t_div
    rows["e"] = rows["energy_per_epoch_j"] * scale / e_div
    order = rows.sort_values(["t", "e"])
    front = order[order["e"] <= order["e"].cummin()]
    fig, ax = plt.subplots(figsize=(7.5, 4.5), layout="constrained")
    batches = sorted(int(b) for b in rows["batch_size"].dropna().unique())
    palette = plt.get_cmap("viridis", max(len(batches), 2))
    cmap = ListedColormap([palette(i) for i in range(len(batches))])
    norm = BoundaryNorm(np.arange(len(batches) + 1) - 0.5, len(batches))
    index = rows["batch_size"].map({b: i for i, b in enumerate(batches)}).to_numpy(float)
    sc = ax.scatter(rows["t"], rows["e"], c=index, cmap=cmap, norm=norm, s=20)
    ax.plot(front["t"], front["e"], "r-o", ms=4, lw=1.2, label="Pareto front")
    for r in front.itertuples():
        ax.annotate(f"b{int(r.batch_size)} {r.power_limit_w:g}W", (r.t, r.e), fontsize=6, xytext=(3, 3),
                    textcoords="offset points")
    cbar = fig.colorbar(sc, ax=ax, ticks=range(len(batches)))
    cbar.ax.set_yticklabels([str(b) for b in batches])
    cbar.set_label("batch size")
    scale_axis(ax, "x", rows["t"])
    scale_axis(ax, "y", rows["e"])
    ax.set_xlabel(f"time {what} ({t_unit})")
    ax.set_ylabel(f"energy {what} ({e_unit})")
    over = "batch sizes and power limits" if rows["power_limit_w"].nunique() > 1 \
        else f"batch sizes (one power limit, {rows['power_limit_w'].iloc[0]:g} W)"
    ax.set_title(f"{gpu} {rows['dataset'].iloc[0]}/{rows['model'].iloc[0]}: energy-time trade-off over {over}", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def simulation(sim):
    """Energy and time per epoch against the limit, and epochs the budget trains."""
    plt = _plt()
    t = sim.table
    if t["power_limit_w"].nunique() < 2:
        raise DlwhError(f"the simulation has one power limit ({t['power_limit_w'].iloc[0]:g} W): nothing to compare; "
                        "give --power-limits or record runs at other limits (dlwh collect sweep)")
    e_div, e_unit = energy_unit(float(t["energy_per_epoch_j"].max()))
    t_div, t_unit = time_unit(float(t["time_per_epoch_s"].max()))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained")
    ax = axes[0]
    ax.plot(t["power_limit_w"], t["energy_per_epoch_j"] / e_div, "o-", color=COLOURS[0], label="energy per epoch")
    ax.set_xlabel("power limit (W)")
    ax.set_ylabel(f"energy per epoch ({e_unit})", color=COLOURS[0])
    twin = ax.twinx()
    twin.plot(t["power_limit_w"], t["time_per_epoch_s"] / t_div, "s--", color=COLOURS[1], label="time per epoch")
    twin.set_ylabel(f"time per epoch ({t_unit})", color=COLOURS[1])
    from matplotlib.ticker import FuncFormatter

    for axis in (ax.yaxis, twin.yaxis):
        axis.set_major_formatter(FuncFormatter(lambda x, _pos: number(x)))
    ax.axvline(sim.best_energy_limit_w, color=COLOURS[2], ls=":", label=f"least energy {sim.best_energy_limit_w:g} W")
    ax.axvline(sim.best_cost_limit_w, color=COLOURS[3], ls="-.", label=f"least cost (eta {sim.eta:g}) {sim.best_cost_limit_w:g} W")
    handles = ax.get_legend_handles_labels()
    extra = twin.get_legend_handles_labels()
    ax.legend(handles[0] + extra[0], handles[1] + extra[1], fontsize=7, loc="upper center")
    ax.grid(alpha=0.3)
    ax = axes[1]
    colours = [COLOURS[2] if v == sim.best_energy_limit_w else COLOURS[0] for v in t["power_limit_w"]]
    width = np.min(np.diff(np.sort(t["power_limit_w"]))) * 0.8
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
