"""The shipped power-limit prior: the response fitted on public sweeps, used for GPUs without one.

    python -m dlwh.analysis.prior [--data ../shared/datasets] [--out dlwh/analysis/data/prior.json]

ingests the Zeus NSDI'23 (A40, V100) and Perseus SOSP'24 (A100, A40) sweeps into a temporary
warehouse, fits the global response (every GPU at once, watts relative to each GPU's reference
limit; ``physics.fit_global``), refines it per GPU, and calibrates 90 % intervals of a GPU the
response never saw by leaving each GPU out in turn (its configurations known from their
highest-limit run only). The JSON holds figures only, with the source files' sha256, the command,
the date and the dlwh version. ``load()`` reads it back (no code is executed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from datetime import datetime, timezone
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from dlwh._lazy import pandas as pd

from dlwh.errors import DlwhError

FORMAT = "dlwh-power-limit-prior"
VERSION = 1
SOURCES = ("zeus_nsdi23/summary_power_a40.csv", "zeus_nsdi23/summary_power_v100.csv",
           "perseus_sosp24/A100__zeus_global.csv", "perseus_sosp24/A40__zeus_global.csv")
S0 = 0.05        # interval floor, log units: halfwidth = k * (S0 + log(anchor limit / limit))
COVER = 0.90
TARGETS = ("time_per_epoch_s", "avg_power_w", "energy_per_epoch_j")


def load_sweeps(data: Path) -> tuple[pd.DataFrame, list[dict]]:
    """The public sweeps as training rows (through dlwh's own ingest) and their provenance."""
    from dlwh.analysis.data import load_training_data
    from dlwh.ingest.loader import ingest_paths
    from dlwh.warehouse import open_warehouse

    files = [data / name for name in SOURCES]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise DlwhError(f"missing {', '.join(missing)}; pass --data to the shared datasets folder")
    with tempfile.TemporaryDirectory() as tmp:
        con = open_warehouse(Path(tmp) / "prior.duckdb")
        try:
            for result in ingest_paths(con, files):
                if result.outcome == "failed":
                    raise DlwhError(result.describe())
            rows = load_training_data(con)
        finally:
            con.close()
    provenance = [{"file": name, "sha256": hashlib.sha256((data / name).read_bytes()).hexdigest()} for name in SOURCES]
    return rows.reset_index(drop=True), provenance


def ranges(rows: pd.DataFrame) -> tuple[dict[str, float], dict[str, float]]:
    """Reference (default) and minimum limits of the GPUs in ``rows`` (dlwh's table, else the data)."""
    from dlwh.analysis.gpus import from_table

    refs, mins = {}, {}
    for gpu, part in rows.groupby("gpu"):
        known = from_table(str(gpu), float(part["power_limit_w"].max()))
        refs[str(gpu)] = known.reference_w() if known else float(part["power_limit_w"].max())
        mins[str(gpu)] = known.min_w if known and known.min_w else float(part["power_limit_w"].min())
    return refs, mins


def anchored_predictions(model, rows: pd.DataFrame) -> pd.DataFrame:
    """Each configuration of ``rows`` known from its highest-limit run only: predictions of its other
    rows (time, power, energy = time x power x GPUs) and of the anchor itself (for the interval)."""
    out = []
    for config, part in rows.groupby("config", sort=False):
        top = part.loc[part["power_limit_w"].idxmax()]
        rest = part.drop(top.name)
        if rest.empty:
            continue
        anchor = (float(top["power_limit_w"]), float(top["time_per_epoch_s"]), float(top["avg_power_w"]))
        t, p = model.predict(config, rest["power_limit_w"].to_numpy(float), anchor=anchor)
        n = rest["n_gpus"].fillna(1).to_numpy(float) if "n_gpus" in rest else 1.0
        out.append(pd.DataFrame({
            "gpu": rest["gpu"], "config": config, "workload": rest["workload"],
            "power_limit_w": rest["power_limit_w"], "anchor_limit_w": anchor[0],
            "time_per_epoch_s": t, "avg_power_w": p, "energy_per_epoch_j": t * p * n,
            "anchor_time_per_epoch_s": anchor[1], "anchor_avg_power_w": anchor[2],
            "anchor_energy_per_epoch_j": float(top["energy_per_epoch_j"]),
            "true_time_per_epoch_s": rest["time_per_epoch_s"], "true_avg_power_w": rest["avg_power_w"],
            "true_energy_per_epoch_j": rest["energy_per_epoch_j"]}, index=rest.index))
    return pd.concat(out) if out else pd.DataFrame()


def leave_one_gpu_out(rows: pd.DataFrame, gpus=None, progress=None) -> pd.DataFrame:
    """Protocol "New GPU": for each GPU, the global response fitted without it, its configurations
    anchored at their highest-limit run; predictions of every other row."""
    from dlwh.analysis.physics import fit_global

    refs, mins = ranges(rows)
    parts = []
    for gpu in gpus or sorted(rows["gpu"].unique()):
        train, test = rows[rows["gpu"] != gpu], rows[rows["gpu"] == gpu]
        if progress:
            progress(f"new GPU {gpu}: fitting the response on {', '.join(sorted(train['gpu'].unique()))}")
        model = fit_global(train, refs).for_gpu(gpu, refs[gpu], mins[gpu])
        parts.append(anchored_predictions(model, test))
    return pd.concat(parts)


def distance(limit_w, anchor_limit_w) -> np.ndarray:
    """How far a limit lies from the anchor run's: |log(anchor limit / limit)| (0 at the anchor)."""
    return np.abs(np.log(np.asarray(anchor_limit_w, dtype=float) / np.asarray(limit_w, dtype=float)))


def scores(pred: pd.DataFrame, target: str) -> np.ndarray:
    """Calibration scores |log(pred/true)| / (S0 + distance) (normalised conformal)."""
    err = np.abs(np.log(pred[target] / pred["true_" + target]))
    return (err / (S0 + distance(pred["power_limit_w"], pred["anchor_limit_w"]))).to_numpy(float)


def calibrate(pred: pd.DataFrame) -> dict[str, float]:
    """Interval factors k per target: the 90 % quantile of the scores pooled over GPUs, each GPU
    weighing alike (the one with most rows must not decide alone)."""
    out = {}
    weight = 1.0 / pred["gpu"].map(pred["gpu"].value_counts()).to_numpy(float)
    for target in TARGETS:
        values = scores(pred, target)
        ok = np.isfinite(values)
        order = np.argsort(values[ok])
        cum = np.cumsum(weight[ok][order]) / weight[ok].sum()
        out[target] = float(values[ok][order][np.searchsorted(cum, COVER)])
    return out


def halfwidth(k: float, limit_w, anchor_limit_w) -> np.ndarray:
    """Interval half-width (log units) at ``limit_w`` of a configuration anchored at ``anchor_limit_w``."""
    return k * (S0 + distance(limit_w, anchor_limit_w))


def build(data: Path, command: str, progress=None) -> dict:
    """The prior: global response, per-GPU refinements, interval factors and their provenance."""
    import dlwh
    from dlwh.analysis.data import mape_pct
    from dlwh.analysis.physics import fit_global, fit_physics

    rows, provenance = load_sweeps(data)
    refs, mins = ranges(rows)
    if progress:
        progress(f"global response on {len(rows)} rows of {', '.join(sorted(refs))}")
    glob = fit_global(rows, refs)
    gpus = {}
    for gpu, part in rows.groupby("gpu"):
        if progress:
            progress(f"{gpu}: refining ({len(part)} rows)")
        model = fit_physics(part, str(gpu), prior=glob.for_gpu(str(gpu), refs[gpu], mins[gpu]), ref_w=refs[gpu])
        model.configs = {}
        gpus[str(gpu)] = model.to_dict()
    logo = leave_one_gpu_out(rows, progress=progress)
    k = calibrate(logo)
    logo_scores = {}
    for gpu, part in logo.groupby("gpu"):
        logo_scores[str(gpu)] = {t: {"mape_pct": round(mape_pct(part[t], part["true_" + t]), 2),
                                     "nothing_changes_mape_pct": round(mape_pct(part["anchor_" + t], part["true_" + t]), 2)}
                                 for t in TARGETS}
    glob.configs = {}
    return {
        "format": FORMAT, "version": VERSION, "dlwh_version": dlwh.__version__,
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "command": command,
        "sources": provenance, "rows": int(len(rows)),
        "reference_limits_w": refs, "min_limits_w": mins,
        "global": glob.to_dict(), "gpus": gpus,
        "interval": {"s0": S0, "coverage": COVER, "k_new_gpu": k,
                     "note": "half-width (log) = k * (s0 + |log(anchor limit / limit)|); k from leaving "
                             "each GPU out of the response fit (protocol New GPU)"},
        "leave_one_gpu_out": logo_scores,
    }


@lru_cache(maxsize=4)
def _read(path: str | None) -> dict:
    if path is None:
        text = resources.files("dlwh.analysis").joinpath("data/prior.json").read_text()
    else:
        text = Path(path).read_text()
    data = json.loads(text)
    if data.get("format") != FORMAT or int(data.get("version", 0)) != VERSION:
        raise DlwhError(f"the power-limit prior {path or 'shipped with dlwh'} is not a {FORMAT} v{VERSION} file; "
                        "regenerate it with python -m dlwh.analysis.prior")
    return data


def load(path: str | None = None) -> dict:
    """The prior (the shipped one by default) as parsed JSON; DlwhError if it is missing or damaged."""
    try:
        return _read(path)
    except (OSError, ValueError, KeyError) as err:
        raise DlwhError(f"cannot read the power-limit prior ({err}); reinstall dlwh or regenerate it with "
                        "python -m dlwh.analysis.prior") from None


def response_for(gpu: str, ref_w: float, min_w: float | None, prior: dict | None = None):
    """(model, how) for ``gpu``: the prior's refinement of that GPU, else the global response scaled
    to its reference limit ``ref_w`` W (and minimum ``min_w``)."""
    from dlwh.analysis.physics import PhysicsModel

    prior = prior or load()
    fitted_on = ", ".join(sorted(prior["gpus"]))
    if gpu in prior["gpus"]:
        model = PhysicsModel.from_dict(prior["gpus"][gpu]).for_gpu(gpu, ref_w, min_w)
        how = f"the shipped prior's {gpu} response (fitted on public {gpu} sweeps)"
    else:
        model = PhysicsModel.from_dict(prior["global"]).for_gpu(gpu, ref_w, min_w)
        how = (f"the shipped prior (one response fitted on {fitted_on} sweeps, scaled to a {ref_w:g} W reference "
               f"limit; no sweep of {gpu} in this warehouse)")
    model.source = how
    return model, how


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlwh.analysis.prior", description=__doc__.split("\n")[0])
    default_data = Path(__file__).resolve().parents[3] / "shared" / "datasets"
    parser.add_argument("--data", type=Path, default=default_data, help="the shared datasets folder")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "data" / "prior.json")
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    command = "python -m dlwh.analysis.prior --data <shared>/datasets --out dlwh/analysis/data/prior.json"
    try:
        with threadpool_limits(limits=1):
            prior = build(args.data, command, progress=lambda line: print(line, file=sys.stderr, flush=True))
    except DlwhError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    args.out.write_text(json.dumps(prior, indent=1, sort_keys=False) + "\n")
    print(f"wrote {args.out}: k = {prior['interval']['k_new_gpu']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
