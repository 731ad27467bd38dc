"""The report's per-phase section: mean energy and power per repetition of repeated spans, with 95 %
intervals (the ``span_stats`` and ``span_phase_sums`` views, 0010)."""

from __future__ import annotations

import html
from typing import Callable

import duckdb

MIN_REPEATS = 10
MAX_RUNS = 5


def per_phase_html(con: duckdb.DuckDBPyConnection, table: Callable[..., str],
                   min_repeats: int = MIN_REPEATS) -> str:
    """HTML for the runs (latest first, at most MAX_RUNS) with step/phase spans repeated MIN_REPEATS+ times.

    ``table`` renders a pandas DataFrame (the report's own table style).
    """
    runs = [r[0] for r in con.execute(
        "SELECT s.run_id FROM span_stats s LEFT JOIN runs r USING (run_id) "
        "WHERE s.kind IN ('step', 'phase') AND s.n >= ? GROUP BY s.run_id "
        "ORDER BY max(r.start_ts) DESC NULLS LAST, s.run_id LIMIT ?", [min_repeats, MAX_RUNS]).fetchall()]
    if not runs:
        return ""
    parts = ["<h2>Energy per phase (repeated spans)</h2>",
             "<p class='note'>Mean per repetition over all repetitions of each step and phase, from "
             "<code>span_energy_best</code> (one estimate per span and GPU); ± is the 95 % interval "
             "(Student t) from the spread of the repetitions, so spans shorter than the sensor resolves are "
             "measured in the mean. Check: the phase means of a step must add up to the mean step energy "
             "within its interval.</p>"]
    for run in runs:
        stats = con.execute(
            "SELECT kind, name, device, n, methods, round(1000 * mean_duration_s, 2) AS mean_ms, "
            "round(mean_energy_j, 3) AS energy_j, round(energy_ci95_j, 3) AS \"± J\", "
            "round(mean_power_w, 1) AS power_w, round(power_ci95_w, 1) AS \"± W\", n_unresolved "
            "FROM span_stats WHERE run_id = ? AND kind IN ('step', 'phase') AND n >= ? "
            "ORDER BY kind DESC, mean_energy_j DESC", [run, min_repeats]).df()
        sums = con.execute(
            "SELECT kind, name, device, n, children, round(mean_energy_j, 3) AS mean_j, "
            "round(energy_ci95_j, 3) AS \"± J\", round(children_mean_energy_j, 3) AS children_sum_j, "
            "round(children_diff_pct, 2) AS diff_pct "
            "FROM span_phase_sums WHERE run_id = ? AND kind = 'step' AND n >= ?", [run, min_repeats]).df()
        parts.append(f"<h3>{html.escape(run)}</h3>" + table(stats))
        if len(sums):
            parts.append("<p class='note'>Phases against their step:</p>" + table(sums))
    return "\n".join(parts)
