"""Protocol "New model": unconstrained throughput and energy per sample of a network never measured.

    python benchmarks/bench_new_model.py [DIR ...] [--markdown out.md] [--per-model]

The run directories (default: every examples/*-bench and examples/*-zoo folder) are ingested with
dlwh's own loader into a temporary warehouse; the unconstrained bench runs (``bench_results``
without --sync/--layers, at each GPU's highest limit) are grouped by GPU and precision. For every
group with at least three models, each network is left out in turn: a learner is fitted on the
other networks' runs and predicts the left-out network's throughput (samples/s) and average power
at each of its batch sizes; energy per sample = power / throughput. Errors are |pred / true - 1|,
reported as median and mean over runs (%), with the share of truths inside the 90 % interval
that ``estimate_unconstrained`` would give (the roofline's leave-one-model-out quantiles, computed
without the left-out network: nested). Learners (dlwh.analysis.unconstrained):

  roofline        per-layer-type roofline with fitted per-GPU rates (the one dlwh uses)
  gbr/ridge/poly/ols   scikit-learn on the same structural features (log space)
  macs-loglinear  the old model: log throughput linear in log MACs, log params, log batch size

Results are recorded in docs/accuracy.md ("New model (unconstrained throughput and energy per sample)").
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def default_dirs() -> list[Path]:
    """examples/*-bench and examples/*-zoo folders that hold run directories."""
    return sorted(p for p in (ROOT / "examples").glob("*-*") if p.is_dir() and (p / "runs").is_dir()
                  and (p.name.endswith("-bench") or p.name.endswith("-zoo")))


def load(dirs: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(unconstrained runs, wide structure table) from the run directories in ``dirs``."""
    from dlwh.analysis import unconstrained as U
    from dlwh.ingest.loader import ingest_paths
    from dlwh.warehouse import open_warehouse

    with tempfile.TemporaryDirectory() as tmp:
        con = open_warehouse(Path(tmp) / "bench.duckdb")
        for result in ingest_paths(con, dirs):
            if result.outcome == "failed":
                sys.exit(f"error: {result.describe()}")
        runs = U.bench_runs(con)
        wide = U._wide(U.structure_table(con))
        con.close()
    return runs, wide


def score(runs: pd.DataFrame, wide: pd.DataFrame, kind: str, limit_w: float) -> pd.DataFrame:
    """Leave-one-model-out predictions of ``kind`` with errors and (roofline) nested 90 % intervals."""
    from dlwh.analysis import unconstrained as U

    res = U.leave_one_model_out(kind, runs, wide, limit_w)
    res["err_throughput"] = res["pred_throughput_sps"] / res["throughput_sps"] - 1
    true_e = res["power_w"] / res["throughput_sps"]
    res["err_energy"] = (res["pred_power_w"] / res["pred_throughput_sps"]) / true_e - 1
    res["err_power"] = res["pred_power_w"] / res["power_w"] - 1
    if kind == "roofline":
        inside_t, inside_p = [], []
        for model, test in res.groupby("model", sort=False):
            train = runs[runs["model"] != model]
            qt, qp = U._lomo_quantiles(kind, train, wide, limit_w)
            lo, hi = U._interval(1.0, qt)
            inside_t += list((test["throughput_sps"] / test["pred_throughput_sps"]).between(lo, hi))
            lo, hi = U._interval(1.0, qp)
            inside_p += list((test["power_w"] / test["pred_power_w"]).between(lo, hi))
        res["in_interval_throughput"] = inside_t
        res["in_interval_power"] = inside_p
    return res


def write_prior(runs: pd.DataFrame, wide: pd.DataFrame, dirs: list[Path]) -> None:
    """Fit every (GPU, precision) with enough models and write the shipped reference file."""
    import csv

    from dlwh.analysis import unconstrained as U

    rows = []
    for (gpu, prec), group in runs.groupby(["gpu_key", "precision"]):
        group = group[group["model"].isin(set(wide.index))].reset_index(drop=True)
        if group["model"].nunique() < U.MIN_MODELS:
            continue
        where = " ".join(str(d.resolve().relative_to(ROOT)) if d.resolve().is_relative_to(ROOT) else d.name
                         for d in dirs)
        source = (f"{len(group)} runs of {group['model'].nunique()} networks in {where}; "
                  "python benchmarks/bench_new_model.py --write-prior")
        rows += U.reference_rows(group, wide, float(group["power_limit_w"].max()), gpu, prec, source)
    out = ROOT / "dlwh" / "analysis" / "data" / U.PRIOR_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["gpu", "precision", "name", "value", "source"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} figures to {out.relative_to(ROOT)}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dirs", nargs="*", type=Path, help="folders of bench run directories")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    parser.add_argument("--per-model", action="store_true", help="print the roofline's errors per network")
    parser.add_argument("--write-prior", action="store_true",
                        help="write every GPU's roofline fit to dlwh/analysis/data/roofline_prior.csv (the "
                             "reference a GPU with fewer than 3 measured models borrows)")
    args = parser.parse_args()
    from dlwh.analysis import unconstrained as U

    t0 = time.monotonic()
    runs, wide = load(args.dirs or default_dirs())
    lines = ["| GPU | precision | networks / runs | learner | throughput median % | throughput mean % "
             "| energy/sample median % | energy/sample mean % | power median % | in 90 % interval (tput, power) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    per_model = []
    for (gpu, prec), group in runs.groupby(["gpu_key", "precision"]):
        group = group[group["model"].isin(set(wide.index))].reset_index(drop=True)
        if group["model"].nunique() < U.MIN_MODELS:
            continue
        limit = float(group["power_limit_w"].max())
        for kind in U.LEARNERS:
            res = score(group, wide, kind, limit)
            et, ee, ep = (res[c].abs() * 100 for c in ("err_throughput", "err_energy", "err_power"))
            cover = (f"{res['in_interval_throughput'].mean() * 100:.0f} %, {res['in_interval_power'].mean() * 100:.0f} %"
                     if kind == "roofline" else "")
            name = f"**{kind}**" if kind == "roofline" else kind
            lines.append(f"| {gpu} | {prec} | {group['model'].nunique()} / {len(group)} | {name} | {et.median():.1f} "
                         f"| {et.mean():.1f} | {ee.median():.1f} | {ee.mean():.1f} | {ep.median():.1f} | {cover} |")
            if kind == "roofline":
                per_model.append(res.assign(gpu=gpu))
    if args.write_prior:
        write_prior(runs, wide, args.dirs or default_dirs())
    text = "\n".join(lines)
    print(text)
    if args.per_model and per_model:
        res = pd.concat(per_model)
        agg = res.groupby(["gpu", "precision", "model"]).agg(
            runs=("batch_size", "size"), throughput_err=("err_throughput", lambda s: np.round(s.abs().mean() * 100, 1)),
            energy_err=("err_energy", lambda s: np.round(s.abs().mean() * 100, 1)))
        print(agg.to_string())
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")
    print(f"({time.monotonic() - t0:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
