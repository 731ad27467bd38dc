"""dlwh report: one self-contained HTML page with a warehouse's key tables and plots (inline SVG)."""

from __future__ import annotations

import html
import json
from datetime import datetime, timezone
from pathlib import Path

import duckdb
from dlwh._lazy import pandas as pd

from dlwh.errors import DlwhError

CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.1em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.88em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; } th { background: #f4f6f8; }
td:first-child, th:first-child { text-align: left; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.8em; }
.note { color: #555; font-size: 0.9em; } .warn { color: #a33; }
figure { margin: 1em 0; } figure svg { max-width: 100%; height: auto; } figcaption { font-size: 0.85em; color: #555; }
"""


def _cell(value: float) -> str:
    """Whole numbers in full (71,591 rows, not 7.159e+04); others to 4 significant digits."""
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, border=0, na_rep="n/a", escape=True, float_format=_cell)


def _figure(fig_fn, caption: str, problems: list[str]) -> str:
    from dlwh.analysis import plots

    try:
        svg = plots.to_svg(fig_fn())
    except DlwhError as err:
        problems.append(f"{caption}: {err}")
        return ""
    return f"<figure>{svg}<figcaption>{html.escape(caption)}</figcaption></figure>"


def most_informative_run(con: duckdb.DuckDBPyConnection) -> tuple[str, str] | None:
    """The collected run the report draws, and why: the one with the most steady time (s) in the training
    data, then the most steady spans, then the longest; not simply the most recent (often a short test)."""
    row = con.execute(
        "SELECT r.run_id, sum(s.duration_s) AS steady_s, count(*) AS spans, "
        "  any_value(s.work_unit) AS kind, epoch(any_value(r.end_ts) - any_value(r.start_ts)) AS run_s, "
        "  (SELECT count(*) FROM runs WHERE source = 'manifest') AS n_runs "
        "FROM runs r JOIN steady_spans s USING (run_id) WHERE r.source = 'manifest' "
        "GROUP BY r.run_id ORDER BY steady_s DESC, spans DESC, run_s DESC NULLS LAST, r.run_id LIMIT 1").fetchone()
    if row is None:
        return None
    run_id, steady_s, spans, kind, run_s, n_runs = row
    length = f"{run_s:.1f} s long, " if run_s is not None else ""
    return run_id, (f"Of the {n_runs} collected run(s), the one with the most steady-state time: {length}"
                    f"{spans} steady {kind} span(s) covering {steady_s:.1f} s.")


def build(con: duckdb.DuckDBPyConnection, db_path: str, budget_epochs: float = 100.0, zone: str | None = None,
          intensity: float | None = None, pue: float | None = None) -> str:
    """The HTML text of the report (emissions columns with a zone / intensity given or stored)."""
    from dlwh.analysis import plots
    from dlwh.analysis.fit import score_table
    from dlwh.analysis.predict import Query, fitted_gpus, predict, table_for_print
    from dlwh.analysis.simulate import simulate, summary_lines
    from dlwh.analysis.simulate import table_for_print as sim_table

    problems: list[str] = []
    parts = [f"<h1>dlwh report</h1><p class='note'>warehouse {html.escape(str(db_path))}, generated "
             f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC</p>"]

    # -- what is in the warehouse --------------------------------------------------------------
    files = con.execute("SELECT format, count(*) AS files, sum(rows_loaded) AS rows FROM files GROUP BY 1 ORDER BY 1").df()
    runs = con.execute("SELECT count(*) FROM runs WHERE source = 'manifest'").fetchone()[0]
    parts.append("<h2>Warehouse</h2>")
    parts.append(f"<p>{runs} collected run(s); files by format:</p>" + _table(files))
    data = con.execute(
        "SELECT gpu, source, count(*) AS rows, count(DISTINCT config) AS configurations, "
        "count(DISTINCT model) AS models, min(power_limit_w) AS min_limit_w, max(power_limit_w) AS max_limit_w, "
        "count(macs_per_sample) AS rows_with_macs FROM training_data GROUP BY ALL ORDER BY 1, 2").df()
    parts.append("<h3>Training data</h3><p class='note'>One row per configuration and power limit (steady state: "
                 "collected runs without their first epoch or first 10 steps).</p>")
    parts.append(_table(data) if len(data) else "<p class='warn'>No training data: ingest runs or summary sweeps.</p>")

    # -- accuracy ----------------------------------------------------------------------------------
    scores = con.execute("SELECT gpu_scope AS gpu, target, algo, cv, n, mape_pct, r2 AS r2_log FROM fit_scores").df()
    parts.append("<h2>Model accuracy (cross-validated)</h2>")
    gpus = fitted_gpus(con)
    if scores.empty or not gpus:
        parts.append("<p class='warn'>No fitted models yet: run <code>dlwh fit</code>, then this report again.</p>")
    else:
        for cv_kind, part in scores.groupby("cv"):
            parts.append(f"<h3>{html.escape(cv_kind)}</h3>" + _table(score_table(part)))
        parts.append("<p class='note'>MAPE: mean absolute percentage error of out-of-fold predictions; R² of log values. "
                     "n/a: the algorithm cannot predict those rows (physics needs one measured run of a "
                     "configuration; ols needs MACs).</p>")
        params = con.execute("SELECT gpu_scope, params FROM fitted_models WHERE algo = 'physics' "
                             "AND target = 'time_per_epoch_s' ORDER BY 1").fetchall()
        for gpu, text in params:
            p = json.loads(text)
            curve = ", ".join(f"{k}: {v}" for k, v in p.get("clock_curve", {}).items())
            parts.append(f"<h3>Power-limit model, {html.escape(gpu)}</h3><p>cap held at "
                         f"{p['cap_slope_c']} x limit {'-' if p['cap_offset_d_w'] < 0 else '+'} {abs(p['cap_offset_d_w'])} W; static power {p['static_power_w']} W; "
                         f"compute fraction {p['gpu_compute_fraction_phi']}, other-phase power ratio "
                         f"{p['gpu_other_power_ratio_lam']}; clock ratio at dynamic-power share y: {html.escape(curve)}</p>")
        summaries = con.execute("SELECT gpu_scope, target, summary FROM fitted_models WHERE algo = 'ols' "
                                "AND target = 'energy_per_epoch_j' AND summary IS NOT NULL ORDER BY 1").fetchall()
        for gpu, target, text in summaries:
            parts.append(f"<h3>OLS on log features, {html.escape(gpu)}, {html.escape(target)}</h3>"
                         f"<p class='note'>Coefficients are elasticities: +1 % MACs → coef % energy.</p>"
                         f"<pre>{html.escape(text)}</pre>")

    # -- plots per GPU -----------------------------------------------------------------------------
    for gpu in sorted(data["gpu"].unique()) if len(data) else []:
        parts.append(f"<h2>{html.escape(gpu)}</h2>")
        limits = sorted(data.loc[data["gpu"] == gpu, ["min_limit_w", "max_limit_w"]].stack().unique())
        one_limit = len(limits) == 1
        if one_limit:
            parts.append(f"<p class='note'>Every run on {html.escape(gpu)} was measured at one power limit "
                         f"({limits[0]:g} W), so there are no limit curves or simulations to show: they compare "
                         "limits. Record runs at several limits (<code>dlwh collect sweep</code>) to see them.</p>")
        else:
            parts.append(_figure(lambda: plots.limit_curves(con, gpu), "Time and energy per epoch against the power "
                                 "limit: measured points, model curves.", problems))
        common = con.execute(
            "SELECT model, dataset, batch_size, count(*) AS n FROM training_data WHERE gpu = ? AND work_unit = 'epoch' "
            "AND model IS NOT NULL GROUP BY ALL ORDER BY n DESC, model LIMIT 1", [gpu]).fetchone()
        if common:
            model, dataset, batch, _ = common
            parts.append(_figure(lambda: plots.pareto(con, gpu, model, dataset), f"Energy-time Pareto front of "
                                 f"{dataset}/{model} over batch sizes and power limits.", problems))
            if gpu in gpus and batch is not None and not one_limit:
                q = Query(power_limits=[], gpu=gpu, model=model, dataset=dataset, batch_size=int(batch))
                try:
                    sim = simulate(con, q, budget_epochs=budget_epochs, zone=zone, intensity=intensity, pue=pue)
                    parts.append(f"<h3>Simulation: {html.escape(sim.prediction.description)}, budget = "
                                 f"{budget_epochs:g} epochs at {sim.reference_limit_w:g} W</h3>")
                    parts.append(_table(sim_table(sim)))
                    parts.append("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in summary_lines(sim)) + "</ul>")
                    parts.append(_figure(lambda: plots.simulation(sim), "The simulation.", problems))
                    pred = predict(con, Query(power_limits=sorted(sim.table["power_limit_w"]), gpu=gpu, model=model,
                                              dataset=dataset, batch_size=int(batch)))
                    parts.append(f"<h3>Prediction with 90 % intervals ({html.escape(', '.join(sorted(set(pred.algo.values()))))})</h3>"
                                 + _table(table_for_print(pred)))
                except DlwhError as err:
                    problems.append(f"simulation of {dataset}/{model} on {gpu}: {err}")
    parts.append(_figure(lambda: plots.energy_time_vs_macs(con), "Time and energy per sample against MACs per "
                         "sample (log-log) with a least-squares line.", problems))
    from dlwh.analysis.span_report import per_phase_html

    parts.append(per_phase_html(con, _table))
    shown = most_informative_run(con)
    if shown:
        run_id, why = shown
        parts.append(f"<h2>A collected run: {html.escape(run_id)}</h2><p class='note'>{html.escape(why)}</p>")
        parts.append(_figure(lambda: plots.power_over_time(con, run_id), f"GPU power of run {run_id}.", problems))
    if problems:
        parts.append("<h2>Not shown</h2><ul>" + "".join(f"<li class='note'>{html.escape(p)}</li>" for p in problems) + "</ul>")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>dlwh report</title>"
            f"<style>{CSS}</style></head><body>" + "\n".join(p for p in parts if p) + "</body></html>\n")


def write(con: duckdb.DuckDBPyConnection, db_path: str, out: str | Path, budget_epochs: float = 100.0,
          zone: str | None = None, intensity: float | None = None, pue: float | None = None) -> Path:
    """Build the report and write it to ``out``."""
    from threadpoolctl import threadpool_limits

    path = Path(out)
    with threadpool_limits(limits=1):
        text = build(con, db_path, budget_epochs, zone, intensity, pue)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
