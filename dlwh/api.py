"""dlwh from Python (notebooks): connect, ingest, predict and simulate, returning DataFrames.

``import dlwh`` exposes these functions lazily (``dlwh.connect``, ``dlwh.ingest``, ``dlwh.predict``,
``dlwh.simulate``): this module, and with it duckdb and pandas, loads on first use, so that
``import dlwh.collect`` stays light on GPU nodes. Each function is a thin wrapper over the library
function the command of the same name calls; errors are ``dlwh.errors.DlwhError`` (``UsageError`` for
a wrong argument) with the same one-line message the command prints. See docs/api.md.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Union

from dlwh.errors import UsageError

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

Db = Union[str, "os.PathLike[str]", "duckdb.DuckDBPyConnection", None]
"""A warehouse path (None: ``$DLWH_DB`` or ./dlwh.duckdb) or an open connection from :func:`connect`."""

__all__ = ["connect", "ingest", "predict", "simulate"]


def connect(db: str | os.PathLike[str] | None = None, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse and return its DuckDB connection (migrated; created if absent unless read-only).

    ``db``: the file (default ``$DLWH_DB``, else ``./dlwh.duckdb``). Query it with
    ``con.sql("SELECT * FROM run_energy").df()``; pass it as ``db=`` to the other functions to reuse it.
    DuckDB lets one process write a file at a time: close it (``con.close()``) before running
    ``dlwh ingest`` from a shell, or open it with ``read_only=True`` (then it must exist).
    """
    from dlwh.warehouse import open_warehouse

    return open_warehouse(db, read_only=read_only)


@contextmanager
def _opened(db: Db, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """The given connection as it is, or a connection to the given path, closed afterwards."""
    if db is not None and hasattr(db, "execute") and hasattr(db, "sql"):
        yield db  # the caller's connection: theirs to close
        return
    con = connect(db, read_only=read_only)
    try:
        yield con
    finally:
        con.close()


def ingest(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    db: Db = None,
    tz: str | None = None,
    start: str | None = None,
    run_id: str | None = None,
    tags: dict[str, object] | None = None,
    dry_run: bool = False,
    **format_options: object,
) -> pd.DataFrame:
    """Ingest files and folders (recursively) into the warehouse, as ``dlwh ingest`` does.

    Returns one row per file: ``path``, ``outcome`` (loaded, loaded-with-warnings, unchanged,
    reloaded, skipped, failed, would-load), ``format``, ``rows``, ``run_id``, ``message``, ``line``
    (of a failure, where known). A file that fails leaves the warehouse as it was; the others load.
    ``tz``, ``start``, ``run_id``, ``tags`` and ``dry_run`` mean what the command's options of the same
    name mean; ``format_options`` are the format-specific ones (``fields="index,power.draw"``,
    ``gpu="A40"``, ``interval_s=1``). Never raises for a bad file; raises ``DlwhError`` only when
    the warehouse cannot be opened.
    """
    from dlwh._lazy import pandas as pd
    from dlwh.ingest.loader import IngestOptions, ingest_paths

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    options = IngestOptions(tz=tz, start=start, run_id=run_id,
                            tags={str(k): str(v) for k, v in (tags or {}).items()},
                            dry_run=dry_run, format_options=dict(format_options))
    with _opened(db) as con:
        results = ingest_paths(con, list(paths), options)
    return pd.DataFrame(
        [(str(r.path), r.outcome, r.format, r.rows, r.run_id, r.message, r.line) for r in results],
        columns=["path", "outcome", "format", "rows", "run_id", "message", "line"],
    )


def _limits(power_limits: float | str | Iterable[float] | None) -> list[float]:
    from dlwh.analysis.data import parse_limits

    if power_limits is None:
        return []
    if isinstance(power_limits, str):
        return parse_limits(power_limits)
    if isinstance(power_limits, (int, float)):
        return parse_limits(str(power_limits))
    values = [str(float(v)) for v in power_limits]
    return parse_limits(",".join(values)) if values else []


def _query(power_limits, *, model, macs, params, batch_size, gpu, dataset, optimizer, precision, n_gpus, epochs,
           samples_per_epoch, algo):
    from dlwh.analysis.predict import Query

    if model and macs is not None:
        raise UsageError("give model=NAME or macs=N with params=N, not both")
    if macs is not None and params is None:
        raise UsageError("macs needs params too")
    for name, value in (("batch_size", batch_size), ("epochs", epochs), ("samples_per_epoch", samples_per_epoch),
                        ("macs", macs), ("params", params), ("n_gpus", n_gpus)):
        if value is not None and value <= 0:
            raise UsageError(f"{name} must be positive")
    return Query(power_limits=_limits(power_limits), gpu=gpu, model=model, macs=macs, params=params,
                 batch_size=batch_size, dataset=dataset, optimizer=optimizer, precision=precision,
                 n_gpus=n_gpus or 1, epochs=epochs, samples_per_epoch=samples_per_epoch, algo=algo)


def _tell(frame: pd.DataFrame, *, notes: list[str], warnings_: list[str], **attrs: object) -> pd.DataFrame:
    """Keep what the command prints beside its table in ``frame.attrs``; warn about the warnings."""
    for line in warnings_:
        warnings.warn(line, UserWarning, stacklevel=3)
    frame.attrs.update(attrs, notes=list(notes), warnings=list(warnings_))
    return frame


def predict(
    power_limits: float | str | Iterable[float],
    *,
    model: str | None = None,
    batch_size: int | None = None,
    gpu: str | None = None,
    macs: float | None = None,
    params: float | None = None,
    dataset: str | None = None,
    optimizer: str | None = None,
    precision: str | None = None,
    n_gpus: int = 1,
    epochs: float | None = None,
    samples_per_epoch: float | None = None,
    algo: str = "auto",
    db: Db = None,
) -> pd.DataFrame:
    """Predict time, power and energy per epoch at GPU power limits, from the models ``dlwh fit`` stored.

    ``power_limits`` in W: ``200``, ``[150, 200, 250]`` or ``"100:300:25"`` (end included). The rest
    is ``dlwh predict``'s options (``n_gpus`` is ``--gpus``). Returns one row per limit:
    ``power_limit_w``, ``time_per_epoch_s``, ``avg_power_w`` (per GPU), ``energy_per_epoch_j`` (all
    GPUs), each with ``_lo`` / ``_hi`` (the 90 % interval); ``throughput_sps*`` (samples/s) where the
    epoch size is known; ``total_energy_j*`` and ``total_time_s*`` with ``epochs``. ``frame.attrs``
    holds ``gpu``, ``description``, ``algo`` (target → algorithm), ``scores`` (their cross-validated
    metrics), ``notes`` (values taken from the training data) and ``warnings`` (also issued as
    ``UserWarning``: inputs outside the training data, models older than the data).
    """
    from dlwh.analysis.predict import predict as _predict

    q = _query(power_limits, model=model, macs=macs, params=params, batch_size=batch_size, gpu=gpu, dataset=dataset,
               optimizer=optimizer, precision=precision, n_gpus=n_gpus, epochs=epochs,
               samples_per_epoch=samples_per_epoch, algo=algo)
    if not q.power_limits:
        raise UsageError("give power_limits: W as 200, a list [150, 200, 250] or a range '100:300:25'")
    with _opened(db, read_only=True) as con:
        pred = _predict(con, q)
    return _tell(pred.table.copy(), notes=pred.notes, warnings_=pred.warnings, gpu=pred.gpu,
                 description=pred.description, algo=dict(pred.algo), scores=dict(pred.scores))


def simulate(
    *,
    budget_epochs: float | None = None,
    budget_kwh: float | None = None,
    power_limits: float | str | Iterable[float] | None = None,
    reference_limit: str | float = "max",
    model: str | None = None,
    batch_size: int | None = None,
    gpu: str | None = None,
    macs: float | None = None,
    params: float | None = None,
    dataset: str | None = None,
    eta: float = 0.5,
    max_slowdown_pct: float | None = None,
    target_metric: float | None = None,
    zone: str | None = None,
    intensity: float | None = None,
    pue: float | None = None,
    algo: str = "auto",
    db: Db = None,
) -> pd.DataFrame:
    """Simulate an energy budget at each power limit, as ``dlwh simulate`` does (without its plot).

    The budget is ``budget_epochs`` (the energy of N epochs at ``reference_limit``, default the
    highest; default 1 epoch) or ``budget_kwh``; ``max_slowdown_pct`` also names the least-energy limit
    at most that much slower (``dlwh simulate --max-slowdown``). ``power_limits`` default to the GPU's measured limits; without
    ``model`` (and ``macs``), the configuration measured at the most limits is simulated (said in
    ``attrs["notes"]``). Returns one row per limit: ``power_limit_w``, ``time_per_epoch_s``,
    ``avg_power_w``, ``energy_per_epoch_j``, ``epochs_in_budget``, ``time_for_budget_s``,
    ``time_for_n_epochs_s``, ``energy_for_n_epochs_j``, ``saved_per_epoch_j``, ``saved_pct`` (against
    the reference limit), ``cost_per_epoch`` (``eta*energy + (1-eta)*max_power*time``, J); with Zeus
    ``summary_train.csv`` ingested ``time_to_accuracy_s`` and ``energy_to_accuracy_j``; with a zone or
    intensity ``co2_for_n_epochs_g`` and ``co2_for_budget_g``. ``frame.attrs`` holds
    ``best_energy_limit_w``, ``best_cost_limit_w``, ``reference_limit_w``, ``budget_j``, ``description``,
    ``decision`` and ``slowdown_decision`` (the energy-optimal limit, its saving % with its 90 % interval,
    ``decided`` and ``reason``, as dicts; None where not computed),
    ``intensity_g_per_kwh``, ``intensity_source``, ``pue``, ``notes`` and ``warnings``.
    """
    from dlwh.analysis.simulate import simulate as _simulate

    q = _query(power_limits, model=model, macs=macs, params=params, batch_size=batch_size, gpu=gpu, dataset=dataset,
               optimizer=None, precision=None, n_gpus=None, epochs=None, samples_per_epoch=None, algo=algo)
    with _opened(db, read_only=True) as con:
        sim = _simulate(con, q, budget_epochs=budget_epochs, budget_kwh=budget_kwh, reference_limit=reference_limit,
                        eta=eta, target_metric=target_metric, zone=zone, intensity=intensity, pue=pue,
                        max_slowdown_pct=max_slowdown_pct)
    from dataclasses import asdict

    decisions = {name: asdict(getattr(sim, name)) if getattr(sim, name, None) is not None else None
                 for name in ("decision", "slowdown_decision")}
    return _tell(sim.table.copy(), notes=sim.notes, warnings_=sim.prediction.warnings,
                 description=sim.prediction.description, best_energy_limit_w=sim.best_energy_limit_w,
                 best_cost_limit_w=sim.best_cost_limit_w, reference_limit_w=sim.reference_limit_w,
                 budget_j=sim.budget_j, intensity_g_per_kwh=sim.intensity_g_per_kwh,
                 intensity_source=sim.intensity_source, pue=sim.pue, **decisions)
