"""dlwh predict: throughput, time, power and energy at given power limits from the stored models.

Models are read back from fitted_models as JSON, never unpickled: the power-limit response as its
parameters; gbr, poly and ols as their settings, refitted on load from the same training rows
(checked by their sha256), so a warehouse from someone else cannot run code here.
"""

from __future__ import annotations

import difflib
import json
import math
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
    response: object = None                 # the GPU's power-limit Response, where one is stored


def fitted_gpus(con: duckdb.DuckDBPyConnection) -> list[str]:
    """GPU scopes that have stored models."""
    return [r[0] for r in con.execute("SELECT DISTINCT gpu_scope FROM fitted_models ORDER BY 1").fetchall()]


MAX_LIMIT_W = 5000.0   # no GPU takes a limit above this: larger values are typing errors


def load_model(con: duckdb.DuckDBPyConnection, gpu: str, target: str, algo: str):
    """(model, metrics, data_sha256) of a stored model, or None. Physics: its Response; gbr, poly,
    ols: refitted on the current training rows of ``gpu`` (an error if they changed since dlwh fit)."""
    row = con.execute("SELECT blob, metrics, data_sha256, versions FROM fitted_models "
                      "WHERE gpu_scope = ? AND target = ? AND algo = ?", [gpu, target, algo]).fetchone()
    if row is None:
        return None
    try:
        blob = json.loads(bytes(row[0]).decode())
    except (UnicodeDecodeError, ValueError):
        raise DlwhError(f"the stored {algo} model of {gpu} is in an old or unknown format (dlwh no longer loads "
                        "pickled models); run dlwh fit again") from None
    metrics = json.loads(row[1] or "{}")
    if "response" in blob:
        from dlwh.analysis.response import Response

        try:
            return Response.from_json(blob["response"]), metrics, row[2]
        except (KeyError, TypeError, ValueError) as err:
            raise DlwhError(f"the stored power-limit response of {gpu} is damaged ({err}); run dlwh fit again") from None
    spec = blob.get("refit") or {}
    if spec.get("algo") not in ("gbr", "poly", "ols"):
        raise DlwhError(f"the stored {algo} model of {gpu} is of an unknown kind; run dlwh fit again")
    _check_versions(json.loads(row[3] or "{}"), gpu, algo)
    from dlwh.analysis import learners as L

    rows = load_training_data(con, gpu)
    if data_hash(rows) != row[2]:
        raise DlwhError(f"the training data of {gpu} changed since dlwh fit, and {algo} is refitted from it on "
                        "load; run dlwh fit again")
    learner = L.make(spec["algo"], n_estimators=int(spec.get("n_estimators", 200)))
    learner.fit(rows, target)
    learner.log_halfwidth = spec.get("log_halfwidth")
    return learner, metrics, row[2]


def _check_versions(stored: dict, gpu: str, algo: str) -> None:
    """Refitting with another scikit-learn / statsmodels major.minor may give other numbers: refuse."""
    import sklearn
    import statsmodels

    for name, now in (("scikit-learn", sklearn.__version__), ("statsmodels", statsmodels.__version__)):
        then = stored.get(name)
        if then and then.split(".")[:2] != now.split(".")[:2]:
            raise DlwhError(f"the {algo} model of {gpu} was fitted with {name} {then}, this is {now}; "
                            "run dlwh fit again")


def check_limits(limits: list[float]) -> None:
    """NaN, infinite, non-positive and absurd (> 5 kW) limits are usage errors."""
    for value in limits:
        if not math.isfinite(value) or value <= 0 or value > MAX_LIMIT_W:
            raise UsageError(f"power limit {value:g} W is not a usable limit; give W between 1 and "
                             f"{MAX_LIMIT_W:g}, e.g. --power-limit 200 or 100:300:25")


def known_models(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Model names dlwh knows: the zoo's and those in the training data or complexity table."""
    names = {r[0] for r in con.execute("SELECT DISTINCT model FROM training_data WHERE model IS NOT NULL").fetchall()}
    try:
        names |= {r[0] for r in con.execute("SELECT DISTINCT model FROM model_complexity").fetchall()}
    except duckdb.Error:
        pass
    try:
        from dlwh.models import list_models

        names |= {spec.name for spec in list_models()}
    except ImportError:
        pass
    return sorted(n for n in names if n)


def check_model(con: duckdb.DuckDBPyConnection, name: str, canonical: str) -> None:
    """UsageError naming the closest matches when ``name`` is neither in the zoo nor in the warehouse."""
    known = known_models(con)
    if canonical in known:
        return
    close = difflib.get_close_matches(canonical, known, n=4, cutoff=0.6)
    try:
        from dlwh.models import close_names

        close += [c for c in close_names(name) if c not in close]
    except ImportError:
        pass
    hint = f"did you mean {', '.join(close[:4])}? " if close else ""
    raise UsageError(f"model {name!r} is neither in dlwh's zoo nor in this warehouse; {hint}"
                     "or describe it with --macs N --params N (dlwh models lists the zoo)")


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
    if model:
        check_model(con, q.model, model)
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


def _beats_baseline(metrics: dict) -> bool:
    m, b = metrics.get("mape_pct"), metrics.get("baseline_mape_pct")
    return m is not None and (b is None or m < b)


def _pick_auto(con, gpu: str, config: str, can_anchor: bool) -> tuple[str, str]:
    """(algorithm, why) by the protocol that matches the question. A configuration with a measured run
    (or an unconstrained estimate of a new model): the power-limit response, scored by predicting
    new limits from one run. Otherwise (a new model, nothing measured): gbr or poly only if scored
    by leaving models out (dlwh fit --cv group-model) and better than 'nothing changes'."""
    found = load_model(con, gpu, "time_per_epoch_s", "physics")
    if found is not None and (config in found[0].model.configs or can_anchor):
        return "physics", "the power-limit response (the configuration has a measured run or an estimate)"
    rows = con.execute("SELECT algo, target, metrics FROM fitted_models WHERE gpu_scope = ? AND algo IN ('gbr', 'poly')",
                       [gpu]).fetchall()
    ok: dict[str, list[float]] = {}
    for algo, target, metrics in rows:
        m = json.loads(metrics or "{}")
        if target in ("time_per_epoch_s", "avg_power_w") and m.get("cv") == "group-model" and _beats_baseline(m):
            ok.setdefault(algo, []).append(m["mape_pct"])
    usable = sorted((np.mean(v), a) for a, v in ok.items() if len(v) == 2)
    if usable:
        return usable[0][1], "the learner with the lowest leave-one-model-out error that beats 'nothing changes'"
    raise DlwhError(f"{config} has no measured run on {gpu}, and no fitted model predicts a new model better than "
                    "'nothing changes'; pass --samples-per-epoch N (the response then starts from an estimate of its "
                    "unconstrained throughput), measure one run of it (dlwh bench or dlwh collect), or run "
                    "dlwh fit --cv group-model and pass --algo gbr to accept its error")


def _unconstrained_anchor(con, gpu: str, base: dict, ref_w: float):
    """(anchor (limit W, time s, power W), log half-widths, note) from newmodel's estimate of a
    configuration without a run, or None where that estimate is unavailable."""
    try:
        from dlwh.analysis.unconstrained import estimate_unconstrained
    except ImportError:
        return None
    spe = base.get("samples_per_epoch")
    try:
        est = estimate_unconstrained(con, gpu, base.get("model"), int(base["batch_size"]), base.get("precision"),
                                     base.get("macs_per_sample"), base.get("params"))
    except DlwhError:
        return None
    unit = ""
    if not spe:  # a model never measured: no epoch size known, so an 'epoch' is one step (newmodel)
        spe = base["samples_per_epoch"] = float(base["batch_size"])
        unit = (f"; no --samples-per-epoch: an epoch here is one step of {int(spe)} samples "
                "(pass --samples-per-epoch N for your dataset)")
    time_s = spe / est.throughput_sps
    w_t = abs(math.log(est.throughput_sps_hi / est.throughput_sps_lo)) / 2 if est.throughput_sps_lo else 0.0
    w_p = abs(math.log(est.power_w_hi / est.power_w_lo)) / 2 if est.power_w_lo else 0.0
    note = (f"no run of this configuration on {gpu}: unconstrained throughput {est.throughput_sps:.4g} samples/s and "
            f"power {est.power_w:.4g} W estimated ({est.method}){unit}")
    return (ref_w, time_s, min(est.power_w, ref_w)), (w_t, w_p), note


def range_warnings(limits, resp, gpu: str) -> list[str]:
    """Lines flagging limits outside the GPU's known power-limit range."""
    out = []
    if resp is None or resp.max_w is None:
        return out
    low = resp.min_w
    for limit in limits:
        if limit > resp.max_w + 1e-6 or (low is not None and limit < low - 1e-6):
            out.append(f"{limit:g} W is OUTSIDE the {gpu}'s power-limit range {low if low is not None else '?':g}..{resp.max_w:g} W "
                       f"({resp.range_source}): the GPU refuses it; the figure is an extrapolation")
    return out


def predict(con: duckdb.DuckDBPyConnection, q: Query) -> Prediction:
    """Predict every target at every power limit of the query."""
    check_limits(q.power_limits)
    if q.algo != "auto" and q.algo not in ALGOS:
        raise UsageError(f"--algo {q.algo!r} is not one of auto, {', '.join(ALGOS)}")
    base, notes, gpu = resolve(con, q)
    from threadpoolctl import threadpool_limits  # after resolve: 'run dlwh fit first' needs no scikit-learn

    rows = pd.DataFrame([{**base, "power_limit_w": float(limit)} for limit in q.power_limits])
    table = pd.DataFrame({"power_limit_w": rows["power_limit_w"]})
    algos, scores, warnings = {}, {}, []
    physics = load_model(con, gpu, "time_per_epoch_s", "physics")
    resp = physics[0] if physics is not None else None
    anchor = None
    if resp is not None and base["config"] not in resp.model.configs:
        anchor = _unconstrained_anchor(con, gpu, base, resp.model.ref_w)
    if q.algo == "auto":
        name, why = _pick_auto(con, gpu, base["config"], anchor is not None)
    else:
        name = q.algo
    if resp is not None:
        warnings += range_warnings(q.power_limits, resp, gpu)
    shas = set()
    if name == "physics":
        if resp is None:
            raise DlwhError(f"no power-limit response stored for {gpu}; run dlwh fit first")
        shas.add(physics[2])
        n_gpus = float(base.get("n_gpus") or 1)
        if base["config"] in resp.model.configs:
            out = resp.predict(base["config"], q.power_limits, n_gpus)
        elif anchor is not None:
            out = resp.predict("", q.power_limits, n_gpus, anchor=anchor[0])
            for target, w in (("time_per_epoch_s", anchor[1][0]), ("avg_power_w", anchor[1][1]),
                              ("energy_per_epoch_j", math.hypot(*anchor[1]))):
                out[target + "_lo"] *= math.exp(-w)
                out[target + "_hi"] *= math.exp(w)
            out["avg_power_w_hi"] = np.minimum(out["avg_power_w_hi"], resp.model.allow_at(q.power_limits) * out["power_limit_w"])
            notes.append(anchor[2])
        else:
            raise DlwhError(f"the power-limit response predicts configurations with a measured run, and {base['config']} "
                            "has none; measure one run at the default limit (dlwh bench), or use --algo gbr")
        for column in out.columns:
            if column != "power_limit_w":
                table[column] = out[column].to_numpy()
        for target in TARGET_COLUMNS:
            metrics = dict(resp.scores.get(target, {}))
            algos[target], scores[target] = "physics", metrics
            m, b = metrics.get("mape_pct"), metrics.get("baseline_mape_pct")
            if m is not None and b is not None and np.isfinite(m) and np.isfinite(b) and m >= b:
                label = {"time_per_epoch_s": "time", "avg_power_w": "power", "energy_per_epoch_j": "energy"}[target]
                warnings.append(f"the response's {label} error where it was scored ({m:.1f} % MAPE, {metrics.get('protocol')}) "
                                f"is no better than assuming {label} does not change with the limit ({b:.1f} %): "
                                f"read the {label} figures with their interval")
        notes.append(f"power-limit response: {resp.how}")
        if resp.kind == "prior":
            notes.append("intervals are those of a GPU the response never saw (leave-one-GPU-out on the public sweeps): "
                         "wide, because the response is borrowed; a sweep of this GPU narrows them")
    else:
        with threadpool_limits(limits=1):
            for target in TARGET_COLUMNS:
                found = load_model(con, gpu, target, name)
                if found is None:
                    raise DlwhError(f"no {name} model for {target} on {gpu}; run dlwh fit --algo {name} first")
                learner, metrics, sha = found
                shas.add(sha)
                pred = learner.predict(rows)
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
        if resp is not None:  # no GPU draws more than its limit (x the overshoot its data showed)
            cap = resp.model.allow_at(q.power_limits) * np.asarray(q.power_limits, dtype=float)
            if (table["avg_power_w"] > cap).any():
                warnings.append(f"{name} predicted more power than the limit at some limits; capped at the limit")
            for column in ("avg_power_w", "avg_power_w_lo", "avg_power_w_hi"):
                table[column] = np.minimum(table[column], cap)
            table["energy_per_epoch_j"] = table["time_per_epoch_s"] * table["avg_power_w"] * float(base.get("n_gpus") or 1)
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
    pred = Prediction(table=table, gpu=gpu, algo=algos, scores=scores, description=", ".join(bits),
                      notes=notes, warnings=warnings, base=base)
    pred.response = resp
    return pred


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
    lines.append(f"  models            {models_line(pred)}")
    if pred.response is not None and "physics" in pred.algo.values():
        lines.append(f"  response          {pred.response.how}")
    return "\n".join(lines)


def models_line(pred: Prediction) -> str:
    """'time: physics (error 4.1 % where nothing-changes gives 12.0 %, scored by ...)' per target."""
    parts = []
    for t, a in pred.algo.items():
        label = {"time_per_epoch_s": "time", "avg_power_w": "power", "energy_per_epoch_j": "energy"}.get(t, t)
        m = pred.scores.get(t, {})
        text = f"{label}: {a}"
        if m.get("mape_pct") is not None and np.isfinite(m["mape_pct"]):
            text += f" (MAPE {m['mape_pct']:.1f} %"
            if m.get("baseline_mape_pct") is not None:
                text += f", nothing-changes {m['baseline_mape_pct']:.1f} %"
            text += ")"
        parts.append(text)
    return ", ".join(parts)


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
