"""Prediction accuracy on the real Zeus NSDI'23 power-limit sweeps (A40 and V100).

    python benchmarks/bench_accuracy.py [--data ../shared/datasets/zeus_nsdi23] [--jobs 2] [--markdown out.md]

The CSVs are ingested with dlwh's own importer into a temporary warehouse and read back through the
training_data view, then every algorithm is scored under these protocols (per GPU):

  1   leave one power limit out: train on the other limits, predict every row at that limit
  2   leave one workload out: train on the other (dataset, network) workloads, predict all its rows
  2b  leave one configuration out: as 2 for one (workload, batch size, optimizer) at a time
  3   for each configuration, only its highest-limit row is given (with all other configurations'
      rows); predict its other limits
  3b  as 3, but for a whole workload at once: all its configurations keep only their highest-limit row

Printed: MAPE (%) of time per epoch, average power and energy per epoch, and rows predicted, per
GPU, protocol and algorithm. Physics predicts a configuration from one measured run at its highest
limit plus the GPU's response (its defined input), so under 2 and 2b the held-out workload or
configuration contributes exactly that run and nothing else (the folds of 3b and 3): the response is
fitted without any of its other rows, and only its other rows are scored. gbr, poly and ols get no
row of it at all. Results are recorded in docs/accuracy.md ("## Prediction").
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "zeus_nsdi23"
TARGETS = ["time_per_epoch_s", "avg_power_w", "energy_per_epoch_j"]
ALGOS = ["physics", "gbr", "poly", "ols"]
PROTOCOLS = {
    "1": "leave one power limit out",
    "2": "leave one workload out",
    "2b": "leave one configuration out",
    "3": "highest-limit row only, per configuration",
    "3b": "highest-limit row only, per workload",
}

# physics needs one run of the configuration it predicts: under 2 and 2b that run (the highest limit)
# is all it gets of the held-out workload / configuration, i.e. the folds of 3b / 3
PHYSICS_FOLDS = {"2": "3b", "2b": "3"}


def load(data: Path) -> pd.DataFrame:
    """Ingest summary_power_a40.csv and summary_power_v100.csv; return their training_data rows."""
    from dlwh.analysis.data import load_training_data
    from dlwh.ingest.loader import ingest_paths
    from dlwh.warehouse import open_warehouse

    files = [data / "summary_power_a40.csv", data / "summary_power_v100.csv"]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        sys.exit(f"error: missing {', '.join(missing)}; pass --data to the zeus_nsdi23 folder")
    with tempfile.TemporaryDirectory() as tmp:
        con = open_warehouse(Path(tmp) / "bench.duckdb")
        for result in ingest_paths(con, files):
            if result.outcome == "failed":
                sys.exit(f"error: {result.describe()}")
        rows = load_training_data(con)
        con.close()
    return rows[rows["source"] == "zeus-summary"]


def folds_for(rows: pd.DataFrame, protocol: str):
    from dlwh.analysis import cv

    if protocol == "1":
        return cv.group_splits(rows, rows["power_limit_w"].map(lambda v: f"{v:g} W"))
    if protocol == "2":
        return cv.group_splits(rows, rows["workload"])
    if protocol == "2b":
        return cv.group_splits(rows, rows["config"])
    if protocol == "3":
        return cv.top_limit_splits(rows, rows["config"])
    if protocol == "3b":
        return cv.top_limit_splits(rows, rows["workload"])
    raise ValueError(protocol)


def score(rows: pd.DataFrame, protocol: str, algos: list[str], n_estimators: int, jobs: int) -> list[dict]:
    from dlwh.analysis import cv
    from dlwh.analysis.data import mape_pct

    folds = folds_for(rows, protocol)
    preds = cv.out_of_fold(rows, [a for a in algos if a != "physics"], TARGETS, folds,
                           n_estimators=n_estimators, n_jobs=jobs)
    physics_folds = folds_for(rows, PHYSICS_FOLDS.get(protocol, protocol))
    if "physics" in algos:
        preds.update(cv.out_of_fold(rows, ["physics"], TARGETS, physics_folds, n_jobs=jobs))
    out = []
    for algo in algos:
        tested = pd.Index([]).append([te for _, te, _ in (physics_folds if algo == "physics" else folds)]).unique()
        line = {"protocol": protocol, "algo": algo}
        for target in TARGETS:
            p = preds.get((algo, target), pd.Series(float("nan"), index=rows.index)).loc[tested]
            ok = p.notna()
            line[target] = mape_pct(p[ok], rows.loc[tested[ok.to_numpy()], target]) if ok.any() else float("nan")
            line["n"] = int(ok.sum())
        line["of"] = len(tested)
        out.append(line)
    return out


def markdown(results: pd.DataFrame) -> str:
    """One table per GPU: protocol x algorithm, MAPE of time, power, energy."""
    lines = []
    for gpu, part in results.groupby("gpu", sort=False):
        lines.append(f"\n**{gpu}** ({part['rows'].iloc[0]} rows, {part['configs'].iloc[0]} configurations)\n")
        lines.append("| protocol | algorithm | time per epoch MAPE % | average power MAPE % | energy per epoch MAPE % | rows predicted |")
        lines.append("| --- | --- | ---: | ---: | ---: | ---: |")
        for r in part.itertuples():
            cells = ["n/a" if pd.isna(v) else f"{v:.1f}" for v in (r.time_per_epoch_s, r.avg_power_w, r.energy_per_epoch_j)]
            lines.append(f"| {r.protocol} {PROTOCOLS[r.protocol]} | {r.algo} | {' | '.join(cells)} | {r.n}/{r.of} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with summary_power_<gpu>.csv")
    parser.add_argument("--gpu", action="append", help="A40 or V100 (default: both)")
    parser.add_argument("--protocol", action="append", choices=list(PROTOCOLS), help="default: all")
    parser.add_argument("--algo", action="append", choices=ALGOS, help="default: all")
    parser.add_argument("--n-estimators", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2, help="parallel processes (folds)")
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    args = parser.parse_args(argv)
    rows = load(args.data)
    results = []
    for gpu in args.gpu or ["A40", "V100"]:
        part = rows[rows["gpu"] == gpu.upper()]
        for protocol in args.protocol or list(PROTOCOLS):
            start = time.time()
            for line in score(part, protocol, args.algo or ALGOS, args.n_estimators, args.jobs):
                results.append({"gpu": gpu.upper(), "rows": len(part), "configs": part["config"].nunique(), **line})
            print(f"{gpu} protocol {protocol}: {time.time() - start:.0f} s", file=sys.stderr, flush=True)
    table = pd.DataFrame(results)
    text = markdown(table)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
