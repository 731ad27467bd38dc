"""Span energy benchmark: speed of the span views, and accuracy of every estimator on recorded GPU traces.

Speed (``--parts speed``): a warehouse with ``--samples`` samples (default 10 million: 4 GPUs, each with
``power_instant`` every 10 ms and the ``energy_total`` counter every 100 ms, as ``dlwh collect`` records
at ``--interval-ms 10``) and ``--spans`` spans (default 100,000: epochs of steps tiling the run), filled
by bulk INSERT; timed in a child process each: ``span_energy``, ``span_energy_estimates``,
``span_energy_best`` and ``span_stats`` (``SELECT count(*), sum(...)``), DuckDB limited to
``--threads`` threads (default 2, the project's CI machine).

Held out (``--parts heldout``): every other NVML counter reading of ``examples/h200-train`` is deleted
before the estimates are computed; spans between deleted readings are scored against them.

Accuracy (``--parts accuracy``): ingests ``tests/data/spans/busy-idle`` (synchronised busy/idle spans of
1 s, 0.2 s and 0.05 s, recorded by tests/data/spans/record.py; not recorded yet: skipped while absent)
and the training run (``--train``, default ``examples/h200-train``) and scores every estimate in
``span_energy_estimates`` against the truth: the GPU energy counter read in the workload's own process at
both edges of each span (``span(..., energy=True)``: the span attribute ``energy_j``). Those reads are
separate from the collector's counter reads (every 100 ms) that the counter methods use. Also: the
default (``span_energy_best``) per span length; phase means against the step mean (``span_phase_sums``);
run totals against the counter; nested spans against their parent; and the repeated 0.05 s spans'
``span_stats`` with every reading and with every 5th power and counter reading kept.

    python benchmarks/bench_spans.py --parts speed,heldout,accuracy --markdown out.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BUSY = ROOT / "tests" / "data" / "spans" / "busy-idle"
TRAIN = ROOT / "examples" / "h200-train"

QUERIES = {
    "span_energy": "SELECT count(*), sum(energy_j) FROM span_energy",
    "span_energy_estimates": "SELECT count(*), sum(energy_j) FROM span_energy_estimates",
    "span_energy_best": "SELECT count(*), sum(energy_j) FROM span_energy_best",
    "span_stats": "SELECT count(*), sum(mean_energy_j) FROM span_stats",
}


# ------------------------------------------------------------------------------------------ speed
def fill(con, samples: int, spans: int) -> dict:
    """4 GPUs: power_instant every 10 ms and energy_total every 100 ms (10 % of rows); spans tiling."""
    gpus = 4
    per_gpu = samples // gpus
    n_inst = per_gpu * 10 // 11
    n_cnt = per_gpu - n_inst
    seconds = n_inst * 0.01
    t0 = "TIMESTAMP '2026-11-21 10:15:00'"
    con.execute("BEGIN")
    con.execute(f"INSERT INTO runs (run_id, start_ts, end_ts, source, file_sha256) VALUES "
                f"('bench', {t0}, {t0} + to_microseconds(?::BIGINT), 'file', 'bench')", [int(seconds * 1e6)])
    con.execute("INSERT INTO sensors SELECT 'bench:gpu' || g, 'bench', 'bench', 'gpu', 'GPU ' || g, g, NULL, "
                "'Bench GPU', 'nvml' FROM range(?) t(g)", [gpus])
    # power: a slow sine plus noise; 10 ms apart, GPUs 1 ms apart
    con.execute(f"INSERT INTO samples SELECT 'bench:gpu' || (i % ?), {t0} + "
                "to_microseconds(((i // ?) * 10000 + (i % ?) * 1000)::BIGINT), 'power_instant', 'W', "
                "300 + 250 * sin(i / 40000.0) + (hash(i) % 2000) / 100.0, NULL, 'bench' FROM range(?) t(i)",
                [gpus, gpus, gpus, n_inst * gpus])
    # the counter: the integral of 400 W (a stand-in; its value does not change the work done)
    con.execute(f"INSERT INTO samples SELECT 'bench:gpu' || (i % ?), {t0} + "
                "to_microseconds(((i // ?) * 100000 + (i % ?) * 1000 + 500)::BIGINT), 'energy_total', 'J', "
                "1e6 + 40.0 * (i // ?), NULL, 'bench' FROM range(?) t(i)", [gpus, gpus, gpus, gpus, n_cnt * gpus])
    n_epochs = max(1, spans // 1000)
    steps = spans // n_epochs - 1
    epoch_us = int(seconds * 1e6) // n_epochs
    step_us = epoch_us // max(steps, 1)
    con.execute(f"INSERT INTO spans SELECT 'bench', 'e' || e, NULL, 'epoch', 'epoch', {t0} + to_microseconds(e * ?), "
                f"{t0} + to_microseconds((e + 1) * ?), NULL, NULL, NULL, 'bench' FROM range(?) t(e)",
                [epoch_us, epoch_us, n_epochs])
    con.execute(f"INSERT INTO spans SELECT 'bench', 'e' || e || 's' || s, 'e' || e, 'step', 'step', "
                f"{t0} + to_microseconds(e * ? + s * ?), {t0} + to_microseconds(e * ? + (s + 1) * ?), "
                "NULL, NULL, NULL, 'bench' FROM range(?) a(e), range(?) b(s)",
                [epoch_us, step_us, epoch_us, step_us, n_epochs, steps])
    con.execute("COMMIT")
    con.execute("CHECKPOINT")
    return {"samples": con.execute("SELECT count(*) FROM samples").fetchone()[0],
            "spans": con.execute("SELECT count(*) FROM spans").fetchone()[0]}


def child_speed(db: str, view: str, threads: int) -> dict:
    import duckdb

    con = duckdb.connect(db)
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET threads = {int(threads)}")
    import resource

    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t = time.perf_counter()
    n, total = con.execute(QUERIES[view]).fetchone()
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return {"view": view, "rows": n, "sum": total, "query_s": round(wall, 3), "cpu_s": round(cpu, 3)}


def speed(samples: int, spans: int, threads: int, repeat: int, data: Path) -> dict:
    from dlwh.warehouse import open_warehouse

    data.mkdir(parents=True, exist_ok=True)
    db = data / f"spans-{samples}-{spans}.duckdb"
    if not db.exists():
        con = open_warehouse(str(db))
        t = time.perf_counter()
        info = fill(con, samples, spans)
        con.close()
        print(f"filled {db} ({info}) in {time.perf_counter() - t:.0f} s", flush=True)
    else:  # migrate an old file to this schema
        open_warehouse(str(db)).close()
    out: dict = {}
    for view in QUERIES:
        runs = []
        for _ in range(repeat):
            p = subprocess.run([sys.executable, __file__, "_child", db.as_posix(), view, str(threads)],
                               capture_output=True, text=True, check=True)
            runs.append(json.loads(p.stdout.strip().splitlines()[-1]))
        out[view] = dict(runs[-1], query_s=statistics.median(r["query_s"] for r in runs),
                         queries_s=[r["query_s"] for r in runs], cpu_s=statistics.median(r["cpu_s"] for r in runs),
                         load_average=os.getloadavg()[0])
        print(f"  {view}: {out[view]['query_s']:.2f} s (median of {repeat}: {out[view]['queries_s']}), "
              f"CPU {out[view]['cpu_s']:.2f} s, "
              f"{out[view]['rows']:,} rows; load average {os.getloadavg()[0]:.1f}", flush=True)
    return out


# ------------------------------------------------------------------------------------------ accuracy
def _ingest(con, paths: list[Path]) -> None:
    from dlwh.ingest.loader import IngestOptions, ingest_paths

    for r in ingest_paths(con, [str(p) for p in paths], IngestOptions()):
        if not r.outcome.startswith("loaded"):
            raise SystemExit(r.describe())


SCORE = """
WITH t AS (
    SELECT run_id, span_id, CAST(json_extract(attrs, '$.energy_j') AS DOUBLE) AS truth_j,
           CAST(json_extract(attrs, '$.length_s') AS DOUBLE) AS length_s
    FROM spans WHERE json_extract(attrs, '$.energy_j') IS NOT NULL AND kind = 'phase'
)
SELECT t.length_s, e.name, e.tool, e.metric, e.method, count(*) AS n,
       avg(100 * abs(e.energy_j - t.truth_j) / t.truth_j) AS mape_pct,
       max(100 * abs(e.energy_j - t.truth_j) / t.truth_j) AS worst_pct,
       avg(100 * (e.energy_j - t.truth_j) / t.truth_j) AS bias_pct,
       avg(CAST(abs(e.energy_j - t.truth_j) <= e.error_j AS DOUBLE)) * 100 AS within_bound_pct,
       avg(e.error_j / t.truth_j) * 100 AS bound_pct
FROM {view} e JOIN t USING (run_id, span_id)
WHERE e.method <> 'in_process_counter'
GROUP BY ALL ORDER BY t.length_s DESC, e.name, e.method, e.tool, e.metric
"""

# span_energy_best without the truth itself (in_process_counter is the truth where a span has it)
BEST = """(SELECT * FROM span_energy_estimates WHERE energy_j IS NOT NULL AND method <> 'in_process_counter'
    QUALIFY row_number() OVER (PARTITION BY run_id, span_id, device
                               ORDER BY method_rank, resolution_s, tool = 'nvml' DESC, sensor_id, metric) = 1)"""

SCORE_ALL = """
WITH t AS (
    SELECT run_id, span_id, CAST(json_extract(attrs, '$.energy_j') AS DOUBLE) AS truth_j,
           CAST(json_extract(attrs, '$.length_s') AS DOUBLE) AS length_s
    FROM spans WHERE json_extract(attrs, '$.energy_j') IS NOT NULL AND kind = 'phase'
)
SELECT t.length_s, e.method, e.tool, e.metric, count(*) AS n,
       avg(100 * abs(e.energy_j - t.truth_j) / t.truth_j) AS mape_pct,
       max(100 * abs(e.energy_j - t.truth_j) / t.truth_j) AS worst_pct,
       avg(CAST(abs(e.energy_j - t.truth_j) <= e.error_j AS DOUBLE)) * 100 AS within_bound_pct
FROM {view} e JOIN t USING (run_id, span_id)
WHERE e.method <> 'in_process_counter'
GROUP BY ALL ORDER BY t.length_s DESC, mape_pct
"""


def accuracy(busy: Path, train: Path) -> dict:
    from dlwh.warehouse import open_warehouse

    res: dict = {}
    tmp = Path(tempfile.mkdtemp(prefix="dlwh-bench-spans-"))
    try:
        con = open_warehouse(str(tmp / "w.duckdb"))
        _ingest(con, [p for p in (busy, train) if p.exists()])
        res["by_name"] = _rows(con, SCORE.format(view="span_energy_estimates"))
        res["by_method"] = _rows(con, SCORE_ALL.format(view="span_energy_estimates"))
        res["best"] = _rows(con, SCORE_ALL.format(view=BEST))
        res["best_by_name"] = _rows(con, SCORE.format(view=BEST))
        res["run_totals"] = _rows(con, """
            SELECT b.run_id, b.device, sum(b.energy_j) FILTER (WHERE sp.parent_id IS NULL) AS top_spans_j,
                   any_value(r.reported_energy_j) AS counter_j, any_value(r.energy_j) AS instant_trapezoid_j,
                   100 * (any_value(r.energy_j) - any_value(r.reported_energy_j)) / any_value(r.reported_energy_j) AS instant_vs_counter_pct
            FROM span_energy_best b JOIN spans sp USING (run_id, span_id)
            JOIN run_energy r ON r.run_id = b.run_id AND r.tool = 'nvml' AND r.metric = 'power_instant'
            GROUP BY ALL""")
        res["run_energy"] = _rows(con, "SELECT run_id, tool, metric, energy_j, reported_energy_j, energy_diff_pct "
                                       "FROM run_energy ORDER BY ALL")
        res["phase_sums"] = _rows(con, "SELECT run_id, kind, name, device, n, children, mean_energy_j, energy_ci95_j, "
                                       "children_mean_energy_j, children_diff_pct, diff_ci95_j FROM span_phase_sums "
                                       "WHERE kind IN ('step', 'epoch') ORDER BY ALL")
        res["stats"] = _rows(con, "SELECT run_id, kind, name, n, methods, mean_duration_s, mean_energy_j, energy_ci95_j, "
                                  "mean_power_w, power_ci95_w FROM span_stats WHERE kind IN ('phase', 'step') "
                                  "ORDER BY ALL")
        # the epochs' in-process counter against the best estimate of the same span
        res["epochs_truth"] = _rows(con, """
            SELECT b.run_id, b.name, b.method, count(*) AS n,
                   avg(100 * (b.energy_j - CAST(json_extract(sp.attrs, '$.energy_j') AS DOUBLE))
                       / CAST(json_extract(sp.attrs, '$.energy_j') AS DOUBLE)) AS bias_pct,
                   max(abs(100 * (b.energy_j - CAST(json_extract(sp.attrs, '$.energy_j') AS DOUBLE))
                       / CAST(json_extract(sp.attrs, '$.energy_j') AS DOUBLE))) AS worst_pct
            FROM """ + BEST + """ b JOIN spans sp USING (run_id, span_id)
            WHERE sp.kind = 'epoch' AND json_extract(sp.attrs, '$.energy_j') IS NOT NULL GROUP BY ALL ORDER BY ALL""")
        con.close()
        # sampling-interval independence: keep every 5th power and counter reading and compare span_stats
        con = open_warehouse(str(tmp / "w.duckdb"))
        stats10 = {(r["run_id"], r["kind"], r["name"]): r for r in _rows(con, "SELECT * FROM span_stats")}
        con.execute("""DELETE FROM samples WHERE metric IN ('power_instant', 'power', 'energy_total') AND (sensor_id, metric, ts) IN (
            SELECT sensor_id, metric, ts FROM (SELECT sensor_id, metric, ts, row_number() OVER (PARTITION BY sensor_id, metric
            ORDER BY ts) AS k FROM samples WHERE metric IN ('power_instant', 'power', 'energy_total')) WHERE k % 5 <> 1)""")
        stats100 = {(r["run_id"], r["kind"], r["name"]): r for r in _rows(con, "SELECT * FROM span_stats")}
        res["sampling"] = [
            {"run_id": k[0], "kind": k[1], "name": k[2], "n": a["n"],
             "mean_all_j": a["mean_energy_j"], "ci95_all_j": a["energy_ci95_j"],
             "mean_every5th_j": stats100[k]["mean_energy_j"], "ci95_every5th_j": stats100[k]["energy_ci95_j"],
             "diff_j": stats100[k]["mean_energy_j"] - a["mean_energy_j"]}
            for k, a in sorted(stats10.items()) if k in stats100 and k[1] in ("phase", "step")]
        con.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return res


HELD_SPANS = """
-- spans whose edges are held-out counter readings: the truth is the difference of two readings
INSERT INTO spans (run_id, span_id, parent_id, kind, name, start_ts, end_ts, attrs, file_sha256)
SELECT h.run_id, 'held-' || a.k || '-' || ?, NULL, 'held', ?, a.ts, b.ts,
       json_object('energy_j', b.value - a.value, 'length_s', ?), 'heldout'
FROM held a JOIN held b ON b.sensor_id = a.sensor_id AND b.k = a.k + ?
JOIN sensors h ON h.sensor_id = a.sensor_id
WHERE a.k % ? = 0
"""


def heldout(run: Path, steps: tuple[int, ...] = (1, 2, 5, 10)) -> dict:
    """Every other NVML counter reading is held out: the estimators see the counter every 200 ms (instead
    of 100 ms) and the instant power; spans between held-out readings 1, 2, 5 and 10 readings apart
    (0.2, 0.4, 1 and 2 s) are scored against the difference of those readings, which no estimator saw."""
    from dlwh.warehouse import open_warehouse

    tmp = Path(tempfile.mkdtemp(prefix="dlwh-bench-held-"))
    try:
        con = open_warehouse(str(tmp / "w.duckdb"))
        _ingest(con, [run])
        con.execute("DELETE FROM spans")
        con.execute("""CREATE TEMP TABLE held AS
            SELECT sensor_id, ts, value, row_number() OVER (PARTITION BY sensor_id ORDER BY ts) AS k
            FROM (SELECT sensor_id, ts, value, row_number() OVER (PARTITION BY sensor_id ORDER BY ts) AS r
                  FROM samples WHERE metric = 'energy_total')
            WHERE r % 2 = 0""")
        con.execute("""DELETE FROM samples WHERE metric = 'energy_total' AND (sensor_id, ts) IN
                       (SELECT sensor_id, ts FROM held)""")
        interval = con.execute("SELECT median(epoch(ts - lag)) FROM (SELECT ts, lag(ts) OVER (PARTITION BY sensor_id "
                               "ORDER BY k) AS lag FROM held)").fetchone()[0]
        for n in steps:
            length = round(n * interval, 3)
            con.execute(HELD_SPANS, [n, f"{length:g} s", length, n, n])
        rows = _rows(con, SCORE_ALL.replace("AND kind = 'phase'", "AND kind = 'held'").format(view="span_energy_estimates"))
        best = _rows(con, SCORE_ALL.replace("AND kind = 'phase'", "AND kind = 'held'").format(view=BEST))
        con.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"run": run.name, "held_interval_s": interval, "by_method": rows, "best": best}


def _rows(con, sql: str) -> list[dict]:
    cur = con.execute(sql)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def _table(rows: list[dict], digits: int = 2) -> str:
    if not rows:
        return "(none)\n"
    cols = list(rows[0])

    def f(v):
        return f"{v:.{digits}f}" if isinstance(v, float) else str(v)

    out = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    out += ["| " + " | ".join(f(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", default="speed,heldout,accuracy")
    p.add_argument("--samples", type=int, default=10_000_000)
    p.add_argument("--spans", type=int, default=100_000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--data", type=Path, default=ROOT / "benchmarks" / "_data")
    p.add_argument("--busy", type=Path, default=BUSY)
    p.add_argument("--train", type=Path, default=TRAIN)
    p.add_argument("--heldout-runs", type=Path, nargs="*", default=[ROOT / "examples" / "h200-train"])
    p.add_argument("--json", type=Path)
    p.add_argument("--markdown", type=Path)
    a = p.parse_args(argv)
    parts = set(a.parts.split(","))
    import duckdb

    res: dict = {"machine": {"cores": os.cpu_count(), "python": platform.python_version(), "duckdb": duckdb.__version__,
                             "load_average_at_start": os.getloadavg()}}
    md = []
    if "speed" in parts:
        res["speed"] = speed(a.samples, a.spans, a.threads, a.repeat, a.data)
        md.append("## Speed\n\n" + _table([dict(view=k, **{x: v[x] for x in ("rows", "query_s", "queries_s", "cpu_s", "load_average")})
                                           for k, v in res["speed"].items()]))
    if "heldout" in parts:
        res["heldout"] = []
        for run in a.heldout_runs:
            h = heldout(run)
            res["heldout"].append(h)
            md.append(f"## held-out counter readings: {h['run']} (every other reading held out; truth "
                      f"{h['held_interval_s']:.3f} s apart)\n\n" + _table(h["by_method"]) + "\nbest:\n\n" + _table(h["best"]))
    if "accuracy" in parts:
        res["accuracy"] = acc = accuracy(a.busy, a.train)
        for key in acc:
            md.append(f"## {key}\n\n" + _table(acc[key]))
    text = "\n".join(md)
    print(text)
    if a.markdown:
        a.markdown.write_text(text)
    if a.json:
        a.json.write_text(json.dumps(res, indent=2, default=str))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        print(json.dumps(child_speed(sys.argv[2], sys.argv[3], int(sys.argv[4]))))
        sys.exit(0)
    sys.exit(main())
