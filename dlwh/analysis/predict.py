"""dlwh predict: throughput, time, power and energy at given power limits from the stored models.

No refitting: the models dlwh fit stored in fitted_models are read back (pickled), and the query is
turned into rows with the same columns as the training data.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field

import duckdb
import numpy as np
from dlwh._lazy import pandas as pd

from dlwh.analysis.data import ALGOS, data_hash, load_training_data, normalise_gpu
from dlwh.errors import DlwhError, UsageError

TARGET_COLUMNS = ("time_per_epoch_s", "avg_power_w", "energy_per_epoch_j")


@dataclass
class Query:
    """What to predict. Unset fields are filled from the training data of the same model."""

    power_limits: list[float]
    gpu: str | None = None
    model: str | None = None
    macs: float | None = None
    params: float | None = None
    batch_size: int | None = None
    dataset: str | None = None
    optimizer: str | None = None
    precision: str | None = None
    n_gpus: int = 1
    epochs: float | None = None
    samples_per_epoch: float | None = None
    algo: str = "auto"


@dataclass
class Prediction:
    """The predicted table (one row per power limit) and what went into it."""

    table: pd.DataFrame
    gpu: str
    algo: dict[str, str]                    # target -> algorithm used
    scores: dict[str, dict]                 # target -> cross-validated metrics of that model
    description: str
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    base: dict = field(default_factory=dict)


def fitted_gpus(con: duckdb.DuckDBPyConnection) -> list[str]:
    """GPU scopes that have stored models."""
    return [r[0] for r in con.execute("SELECT DISTINCT gpu_scope FROM fitted_models ORDER BY 1").fetchall()]


def load_model(con: duckdb.DuckDBPyConnection, gpu: str, target: str, algo: str):
    """(learner, metrics, data_sha256) of a stored model, or None."""
    row = con.execute("SELECT blob, metrics, data_sha256 FROM fitted_models WHERE gpu_scope = ? AND target = ? AND algo = ?",
                      [gpu, target, algo]).fetchone()
    if row is None:
        return None
    return pickle.loads(row[0]), json.loads(row[1] or "{}"), row[2]


def _canonical_model(name: str) -> str:
    try:
        from dlwh.models import normalise_name
    except ImportError:
        return name.strip().lower()
    return normalise_name(name)


def _mode(series: pd.Series):
    values = series.dropna()
    return values.mode().iloc[0] if len(values) else None


def resolve(con: duckdb.DuckDBPyConnection, q: Query) -> tuple[dict, list[str], str]:
    """The base row (features except the power limit), notes, and the GPU scope to use."""
    gpus = fitted_gpus(con)
    if not gpus:
        raise DlwhError("no fitted models in this warehouse; run dlwh fit first")
    if q.gpu:
        gpu = normalise_gpu(q.gpu)
        if gpu not in gpus:
            raise DlwhError(f"no models fitted for GPU {gpu} (fitted: {', '.join(gpus)}); "
                            f"run dlwh fit --gpu {gpu} first")
    elif len(gpus) == 1:
        gpu = gpus[0]
    else:
        raise UsageError(f"models are fitted for several GPUs ({', '.join(gpus)}); pass --gpu")
    if not q.model and q.macs is None:
        raise UsageError("say what to predict: --model NAME, or --macs N --params N")
    notes: list[str] = []
    model = _canonical_model(q.model) if q.model else None
    training = load_training_data(con, gpu)
    same = training[training["model"] == model] if model else training.iloc[0:0]
    if q.dataset:
        same = same[same["dataset"] == q.dataset]
    base = {"gpu": gpu, "model": model, "dataset": q.dataset, "optimizer": q.optimizer, "precision": q.precision,
            "batch_size": q.batch_size, "n_gpus": q.n_gpus, "work_unit": "epoch",
            "macs_per_sample": q.macs, "params": q.params, "samples_per_epoch": q.samples_per_epoch}
    epoch_rows = same[same["work_unit"] == "epoch"]
    if len(epoch_rows):
        filled = []
        for column in ("dataset", "optimizer", "precision"):
            if base[column] is None:
                base[column] = _mode(epoch_rows[column])
                if base[column] is not None:
                    filled.append(f"{column} {base[column]}")
            if base[column] is not None:
                epoch_rows = epoch_rows[epoch_rows[column] == base[column]]
        for column in ("macs_per_sample", "params", "samples_per_epoch"):
            if base[column] is None and len(epoch_rows):
                base[column] = _mode(epoch_rows[column])
        if base["batch_size"] is None:
            sizes = sorted(epoch_rows["batch_size"].dropna().astype(int).unique())
            if len(sizes) != 1:
                raise UsageError(f"pass --batch-size (the training data has {model} at batch sizes "
                                 f"{', '.join(map(str, sizes))})")
            base["batch_size"] = sizes[0]
        if filled:
            notes.append("as in the training data: " + ", ".join(filled))
    elif model:
        row = con.execute(
            "SELECT c.macs_per_sample, c.params, c.input_desc FROM model_complexity c "
            "LEFT JOIN zoo_models z ON z.model = c.model WHERE c.model = ? "
            "ORDER BY (c.input_desc = z.default_input) IS TRUE DESC, c.batch_size LIMIT 1", [model]).fetchone()
        if row and base["macs_per_sample"] is None:
            base["macs_per_sample"], base["params"] = float(row[0]), base["params"] or (float(row[1]) if row[1] else None)
            notes.append(f"{model} is not in the training data of {gpu}; MACs and parameters from the zoo ({row[2]})")
        elif base["macs_per_sample"] is None:
            notes.append(f"{model} is not in the training data of {gpu} and its MACs are unknown; "
                         "pass --macs and --params (or profile it with dlwh models)")
    if base["batch_size"] is None:
        raise UsageError("pass --batch-size")
    base["config"] = "/".join([
        gpu, base["dataset"] or "-", base["model"] or "-", str(int(base["batch_size"])), base["optimizer"] or "-",
        base["precision"] or "-", f"{int(base['n_gpus'])}gpu", "epoch"])
    return base, notes, gpu


def _pick_auto(con, gpu: str, config: str) -> str:
    """The algorithm with the lowest cross-validated MAPE (time and power averaged) that can predict
    this input: physics only for configurations with a measured run."""
    rows = con.execute("SELECT algo, target, metrics FROM fitted_models WHERE gpu_scope = ?", [gpu]).fetchall()
    mape: dict[str, list[float]] = {}
    for algo, target, metrics in rows:
        value = json.loads(metrics or "{}").get("mape_pct")
        if target in ("time_per_epoch_s", "avg_power_w"):
            mape.setdefault(algo, []).append(value if value is not None else np.inf)
    ranked = sorted(mape, key=lambda a: (np.mean(mape[a]) if len(mape[a]) == 2 else np.inf, ALGOS.index(a)))
    for algo in ranked:
        if algo == "physics":
            found = load_model(con, gpu, "time_per_epoch_s", "physics")
            if found is None or config not in found[0].model.configs:
                continue
        if algo == "ols":
            continue  # readable, not accurate: only on request
        return algo
    raise DlwhError(f"no fitted model can predict this input on {gpu}; run dlwh fit first")


def predict(con: duckdb.DuckDBPyConnection, q: Query) -> Prediction:
    """Predict every target at every power limit of the query."""
    base, notes, gpu = resolve(con, q)
    from threadpoolctl import threadpool_limits  # after resolve: 'run dlwh fit first' needs no scikit-learn

    rows = pd.DataFrame([{**base, "power_limit_w": float(limit)} for limit in q.power_limits])
    table = pd.DataFrame({"power_limit_w": rows["power_limit_w"]})
    algos, scores, warnings = {}, {}, []
    shas = set()
    if q.algo != "auto" and q.algo not in ALGOS:
        raise UsageError(f"--algo {q.algo!r} is not one of auto, {', '.join(ALGOS)}")
    name = q.algo if q.algo != "auto" else _pick_auto(con, gpu, base["config"])
    with threadpool_limits(limits=1):
        for target in TARGET_COLUMNS:
            found = load_model(con, gpu, target, name)
            if found is None:
                raise DlwhError(f"no {name} model for {target} on {gpu}; run dlwh fit --algo {name} first")
            learner, metrics, sha = found
            shas.add(sha)
            if name == "physics" and base["config"] not in learner.model.configs:
                raise DlwhError(f"physics predicts configurations with a measured run only, and {base['config']} "
                                "has none; use --algo gbr (or poly, ols), or measure one run at the default limit")
            pred = learner.predict(rows) if name != "physics" else learner.predict(rows, target)
            if pred["pred"].isna().all():
                raise DlwhError(f"{name} cannot predict {target} for this input (ols needs MACs and parameters); "
                                "try --algo gbr")
            table[target] = pred["pred"].to_numpy()
            table[target + "_lo"] = pred["lo"].to_numpy()
            table[target + "_hi"] = pred["hi"].to_numpy()
            algos[target], scores[target] = name, metrics
            if learner.space is not None:
                for line in learner.space.out_of_range(rows):
                    if line not in warnings:
                        warnings.append(line)
    current = data_hash(load_training_data(con, gpu))
    if shas and current not in shas:
        warnings.append("the training data changed since dlwh fit; run dlwh fit again to use it")
    spe = base.get("samples_per_epoch")
    if spe:
        table["throughput_sps"] = spe / table["time_per_epoch_s"]
        table["throughput_sps_lo"] = spe / table["time_per_epoch_s_hi"]
        table["throughput_sps_hi"] = spe / table["time_per_epoch_s_lo"]
    if q.epochs:
        for suffix in ("", "_lo", "_hi"):
            table["total_energy_j" + suffix] = table["energy_per_epoch_j" + suffix] * q.epochs
            table["total_time_s" + suffix] = table["time_per_epoch_s" + suffix] * q.epochs
    bits = [gpu, base["model"] or f"{q.macs:g} MACs/sample", f"batch {int(base['batch_size'])}"]
    if base.get("dataset"):
        bits.insert(2, base["dataset"])
    if base["n_gpus"] != 1:
        bits.append(f"{base['n_gpus']} GPUs")
    return Prediction(table=table, gpu=gpu, algo=algos, scores=scores, description=", ".join(bits),
                      notes=notes, warnings=warnings, base=base)


# -- formatting ---------------------------------------------------------------------------------

def fmt_duration(seconds: float) -> str:
    """'2 h 05 min' / '3 min 20 s' / '12.3 s'."""
    if not np.isfinite(seconds):
        return "n/a"
    if seconds >= 3600:
        h, rest = divmod(seconds, 3600)
        return f"{int(h)} h {int(rest // 60):02d} min"
    if seconds >= 60:
        m, s = divmod(seconds, 60)
        return f"{int(m)} min {int(s):02d} s"
    return f"{seconds:.1f} s"


def fmt_energy(joules: float) -> str:
    """'1.95 MJ (0.542 kWh)'."""
    if not np.isfinite(joules):
        return "n/a"
    kwh = joules / 3.6e6
    for unit, scale in (("GJ", 1e9), ("MJ", 1e6), ("kJ", 1e3)):
        if joules >= scale:
            return f"{joules / scale:.3g} {unit} ({kwh:.3g} kWh)"
    return f"{joules:.3g} J ({kwh:.3g} kWh)"


def describe(pred: Prediction, epochs: float | None = None) -> str:
    """A readable block for one power limit (the first row of the table)."""
    row = pred.table.iloc[0]
    lines = [f"{pred.description}, power limit {row['power_limit_w']:g} W"]

    def interval(col, fmt):
        lo, hi = row.get(col + "_lo"), row.get(col + "_hi")
        if lo is None or not np.isfinite(lo) or not np.isfinite(hi):
            return ""
        return f"   (90 %: {fmt(lo)} .. {fmt(hi)})"

    if "throughput_sps" in row:
        lines.append(f"  throughput        {row['throughput_sps']:.4g} samples/s"
                     + interval("throughput_sps", lambda v: f"{v:.4g}"))
    lines.append(f"  time per epoch    {fmt_duration(row['time_per_epoch_s'])} ({row['time_per_epoch_s']:.4g} s)"
                 + interval("time_per_epoch_s", lambda v: f"{v:.4g} s"))
    lines.append(f"  average power     {row['avg_power_w']:.4g} W per GPU" + interval("avg_power_w", lambda v: f"{v:.4g} W"))
    lines.append(f"  energy per epoch  {fmt_energy(row['energy_per_epoch_j'])}"
                 + interval("energy_per_epoch_j", lambda v: f"{v / 3.6e6:.3g} kWh"))
    if epochs:
        lines.append(f"  total, {epochs:g} epochs  {fmt_duration(row['total_time_s'])}, {fmt_energy(row['total_energy_j'])}"
                     + interval("total_energy_j", lambda v: f"{v / 3.6e6:.3g} kWh"))
    used = ", ".join(f"{t.split('_')[0] if t != 'avg_power_w' else 'power'}: {a}"
                     + (f" (CV MAPE {pred.scores[t]['mape_pct']:.1f} %)" if pred.scores[t].get("mape_pct") is not None else "")
                     for t, a in pred.algo.items())
    lines.append(f"  models            {used}")
    return "\n".join(lines)


def table_for_print(pred: Prediction, epochs: float | None = None) -> pd.DataFrame:
    """The multi-limit table with readable columns and [lo, hi] intervals."""
    t = pred.table
    out = pd.DataFrame({"limit W": t["power_limit_w"].map(lambda v: f"{v:g}")})

    def col(name, values, lo, hi, fmt):
        out[name] = [f"{fmt(v)} [{fmt(a)}, {fmt(b)}]" if np.isfinite(a) and np.isfinite(b) else fmt(v)
                     for v, a, b in zip(values, lo, hi)]

    if "throughput_sps" in t:
        col("samples/s", t["throughput_sps"], t["throughput_sps_lo"], t["throughput_sps_hi"], lambda v: f"{v:.4g}")
    col("time/epoch s", t["time_per_epoch_s"], t["time_per_epoch_s_lo"], t["time_per_epoch_s_hi"], lambda v: f"{v:.4g}")
    col("power W", t["avg_power_w"], t["avg_power_w_lo"], t["avg_power_w_hi"], lambda v: f"{v:.4g}")
    col("energy/epoch kWh", t["energy_per_epoch_j"] / 3.6e6, t["energy_per_epoch_j_lo"] / 3.6e6,
        t["energy_per_epoch_j_hi"] / 3.6e6, lambda v: f"{v:.3g}")
    if epochs:
        col(f"total kWh ({epochs:g} ep)", t["total_energy_j"] / 3.6e6, t["total_energy_j_lo"] / 3.6e6,
            t["total_energy_j_hi"] / 3.6e6, lambda v: f"{v:.3g}")
    return out
