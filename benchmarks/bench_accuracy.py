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

and, with --transfer, over every public sweep in ../shared/datasets (Zeus A40, V100; Perseus A100, A40):

  new-gpu   leave one GPU out of the response fit entirely (A40, V100, A100 in turn); it contributes
            only each configuration's highest-limit run; predict every other limit
  two-runs  as new-gpu, but the held-out GPU gives each configuration's highest and lowest limit
            (its own sweep, refining the response fitted on the other GPUs)

with MAPE of time, power and energy, the "nothing changes" baseline (the anchor run's values), the
energy-optimal limit's regret (extra energy of the limit chosen from the predictions against the
measured optimum, per configuration, over its measured limits) and the coverage of the 90 %
intervals (k calibrated on the OTHER GPUs' residuals: cross-fitted, as for a GPU never seen).

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

import numpy as np
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


TRANSFER = {"new-gpu": "New GPU (its highest-limit run per configuration only)",
            "two-runs": "Two runs of a new GPU (highest and lowest limit per configuration)"}


def load_all(data: Path) -> pd.DataFrame:
    """Every public sweep (Zeus A40/V100, Perseus A100/A40) through dlwh's ingest."""
    from dlwh.analysis.prior import load_sweeps

    rows, _ = load_sweeps(data.parent if data.name == "zeus_nsdi23" else data)
    return rows


def _two_runs(rows: pd.DataFrame, gpu: str) -> pd.DataFrame:
    """Predictions of the held-out GPU's middle limits from its highest and lowest per configuration."""
    from dlwh.analysis.physics import fit_global, fit_physics
    from dlwh.analysis.prior import ranges

    refs, mins = ranges(rows)
    train, test = rows[rows["gpu"] != gpu], rows[rows["gpu"] == gpu]
    base = fit_global(train, refs).for_gpu(gpu, refs[gpu], mins[gpu])
    lim = test.groupby("config")["power_limit_w"]
    ends = test[(test["power_limit_w"] == lim.transform("max")) | (test["power_limit_w"] == lim.transform("min"))]
    model = fit_physics(ends, gpu, prior=base, ref_w=refs[gpu])
    rest = test.drop(ends.index)
    pred = model.predict_frame(rest)
    top = test[test["power_limit_w"] == lim.transform("max")].set_index("config")
    n = rest["n_gpus"].fillna(1).to_numpy(float)
    out = pd.DataFrame({"gpu": gpu, "config": rest["config"], "power_limit_w": rest["power_limit_w"],
                        "anchor_limit_w": rest["config"].map(top["power_limit_w"]),
                        "time_per_epoch_s": pred["time_per_epoch_s"], "avg_power_w": pred["avg_power_w"],
                        "energy_per_epoch_j": pred["time_per_epoch_s"] * pred["avg_power_w"] * n})
    for t in TARGETS:
        out["true_" + t] = rest[t]
        out["anchor_" + t] = rest["config"].map(top[t]).to_numpy()
    return out


def regret(pred: pd.DataFrame, rows: pd.DataFrame, decided: bool = False) -> pd.Series:
    """Per configuration: extra energy (%) of the limit with the least predicted energy (over its
    measured limits, the anchor's measured energy at the anchor) against the measured least.
    ``decided``: as dlwh simulate decides, the anchor (no change) unless the saving's 90 % interval
    excludes zero (needs energy_per_epoch_j_hi)."""
    out = {}
    for config, part in pred.groupby("config"):
        meas = rows[rows["config"] == config].set_index("power_limit_w")["energy_per_epoch_j"]
        guess = part.set_index("power_limit_w")["energy_per_epoch_j"]
        anchor = float(part["anchor_limit_w"].iloc[0])
        e_anchor = part["anchor_energy_per_epoch_j"].iloc[0]
        guess.loc[anchor] = e_anchor
        chosen = float(guess.idxmin())
        if decided and chosen != anchor:
            hi = part.set_index("power_limit_w")["energy_per_epoch_j_hi"].loc[chosen]
            if hi >= e_anchor:
                chosen = anchor
        out[config] = 100 * (meas.loc[chosen] / meas.min() - 1)
    return pd.Series(out)


def transfer(data: Path, progress=print) -> str:
    """The new-GPU and two-runs tables (markdown)."""
    from dlwh.analysis import prior as PR
    from dlwh.analysis.data import mape_pct

    rows = load_all(data)
    gpus = ["A40", "V100", "A100"]
    lines = ["| protocol | GPU left out | rows | time MAPE % | power MAPE % | energy MAPE % | nothing changes: time / power / energy MAPE % | "
             "regret median %: least predicted / as simulate decides | regret worst %: same | 90 % interval coverage: time / power / energy |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |"]
    for protocol in TRANSFER:
        start = time.time()
        if protocol == "new-gpu":
            pred = PR.leave_one_gpu_out(rows, gpus, progress=progress)
        else:
            pred = pd.concat([_two_runs(rows, g) for g in gpus])
            top = rows[rows["power_limit_w"] == rows.groupby("config")["power_limit_w"].transform("max")]
            pred["anchor_energy_per_epoch_j"] = pred["config"].map(top.set_index("config")["energy_per_epoch_j"])
        hits = {t: pd.Series(False, index=pred.index) for t in TARGETS}
        for gpu in gpus:  # k from the other GPUs' residuals (cross-fitted)
            part, other = pred[pred["gpu"] == gpu], pred[pred["gpu"] != gpu]
            k = PR.calibrate(other)
            for t in TARGETS:
                w = PR.halfwidth(k[t], part["power_limit_w"], part["anchor_limit_w"])
                hits[t].loc[part.index] = (np.abs(np.log(part[t] / part["true_" + t])) <= w).to_numpy()
                if t == "energy_per_epoch_j":
                    pred.loc[part.index, "energy_per_epoch_j_hi"] = (part[t] * np.exp(w)).to_numpy()
        for gpu in gpus + ["all"]:
            sel = pred["gpu"] == gpu if gpu != "all" else pd.Series(True, index=pred.index)
            part = pred[sel]
            mape = [mape_pct(part[t], part["true_" + t]) for t in TARGETS]
            base = [mape_pct(part["anchor_" + t], part["true_" + t]) for t in TARGETS]
            cover = [100 * hits[t][sel].mean() for t in TARGETS]
            reg = regret(part, rows)
            dec = regret(part, rows, decided=True)
            lines.append(f"| {TRANSFER[protocol]} | {gpu} | {len(part)} | " + " | ".join(f"{v:.1f}" for v in mape)
                         + f" | {' / '.join(f'{v:.1f}' for v in base)} | {reg.median():.1f} / {dec.median():.1f} | "
                         f"{reg.max():.1f} / {dec.max():.1f} | "
                         + " / ".join(f"{v:.0f} %" for v in cover) + " |")
        progress(f"{protocol}: {time.time() - start:.0f} s")
    return "\n".join(lines) + "\n"


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
    parser.add_argument("--transfer", action="store_true", help="only the new-GPU protocols, on every public sweep")
    args = parser.parse_args(argv)
    if args.transfer:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            text = transfer(args.data, progress=lambda line: print(line, file=sys.stderr, flush=True))
        print(text)
        if args.markdown:
            args.markdown.write_text(text)
        return 0
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
