"""CodeCarbon emissions.csv (every version: 1.x without codecarbon_version/pue, 2.x, and 3.x with
experiment_id, water and utilisation columns) → the codecarbon_emissions table, plus power samples.

Each row is cumulative since its tracker started (duration, energies, emissions). Rows of one tracker
run share CodeCarbon's run_id; rows without one are grouped by their start time (timestamp - duration).
Power samples (tool 'codecarbon', sensors cpu / gpu / dram per tracker run) are the average power of
each interval between rows, derived from the cumulative energies divided by CodeCarbon's PUE, so that
run_energy reproduces CodeCarbon's IT energy. Timestamps are local time (CodeCarbon writes
datetime.now()); they are converted with the run's zone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from dlwh._lazy import pandas as pd

from dlwh.ingest.csvread import read_csv_strict
from dlwh.ingest.intervals import step_samples
from dlwh.errors import ParseError
import dlwh.ingest.validate as validate
from dlwh.ingest.timeutil import local_to_utc
from dlwh.ingest.trace import IngestContext, Trace

NAME = "codecarbon-csv"
DESCRIPTION = "CodeCarbon emissions.csv (1.x to 3.x): energy, emissions and derived power"
EXTENSIONS = (".csv",)

# CSV column -> (table column, numeric)
COLUMNS: dict[str, tuple[str, bool]] = {
    "project_name": ("project_name", False), "run_id": ("codecarbon_run_id", False),
    "experiment_id": ("experiment_id", False), "duration": ("duration_s", True),
    "emissions": ("emissions_kg", True), "emissions_rate": ("emissions_rate_kg_per_s", True),
    "cpu_power": ("cpu_power_w", True), "gpu_power": ("gpu_power_w", True), "ram_power": ("ram_power_w", True),
    "cpu_energy": ("cpu_energy_kwh", True), "gpu_energy": ("gpu_energy_kwh", True),
    "ram_energy": ("ram_energy_kwh", True), "energy_consumed": ("energy_consumed_kwh", True),
    "water_consumed": ("water_consumed_l", True), "country_name": ("country_name", False),
    "country_iso_code": ("country_iso_code", False), "region": ("region", False),
    "cloud_provider": ("cloud_provider", False), "cloud_region": ("cloud_region", False), "os": ("os", False),
    "python_version": ("python_version", False), "codecarbon_version": ("codecarbon_version", False),
    "cpu_count": ("cpu_count", True), "cpu_model": ("cpu_model", False), "gpu_count": ("gpu_count", True),
    "gpu_model": ("gpu_model", False), "longitude": ("longitude", True), "latitude": ("latitude", True),
    "ram_total_size": ("ram_total_size_gb", True), "tracking_mode": ("tracking_mode", False),
    "cpu_utilization_percent": ("cpu_utilization_pct", True), "gpu_utilization_percent": ("gpu_utilization_pct", True),
    "ram_utilization_percent": ("ram_utilization_pct", True), "ram_used_gb": ("ram_used_gb", True),
    "on_cloud": ("on_cloud", False), "pue": ("pue", True), "wue": ("wue", True),
}
COMPONENTS = (("cpu", "cpu_energy_kwh", "cpu", "cpu_model"), ("gpu", "gpu_energy_kwh", "gpu", "gpu_model"),
              ("ram", "ram_energy_kwh", "dram", None))
_SAME_START_S = 2.5  # rows without run_id whose start times differ by less than this are one tracker run


MAX_DURATION_S = 10 * 365 * 86400.0  # a tracker running longer than ten years is a damaged row


def sniff(head: str, path: Path) -> bool:
    """A CSV header with timestamp, project_name, duration and emissions columns."""
    first = head.lstrip("\ufeff").split("\n", 1)[0].strip().lower()
    names = {n.strip().strip('"') for n in first.split(",")}
    return {"timestamp", "project_name", "duration", "emissions"} <= names


def parse(ctx: IngestContext) -> Trace:
    """Read the file with DuckDB (all text), convert, group rows into tracker runs, derive power."""
    cut: list[str] = []
    frame = read_csv_strict(ctx.con, ctx.path, "CodeCarbon CSV", cut, ctx.data)
    if frame.empty:
        raise ParseError("no rows after the header", line=2)
    frame.columns = [c.strip().lower() for c in frame.columns]
    lines = np.arange(2, len(frame) + 2)
    out = pd.DataFrame({"line": lines})
    for name, (column, numeric) in COLUMNS.items():
        if name not in frame:
            out[column] = np.nan if numeric else None
            continue
        text = frame[name].fillna("").str.strip()
        if numeric:
            value = pd.to_numeric(text, errors="coerce")
            bad = (value.isna() & (text != "")).to_numpy()
            if bad.any():
                i = int(bad.argmax())
                raise ParseError(f"{name} {text.iloc[i]!r} is not a number", line=int(lines[i]))
            out[column] = value.astype("float64")
        else:
            out[column] = text.replace("", None)
    stamps = frame["timestamp"].fillna("").str.strip()
    parsed = pd.to_datetime(stamps, format="ISO8601", errors="coerce", utc=False)
    if parsed.isna().any():
        i = int(parsed.isna().to_numpy().argmax())
        raise ParseError(f"timestamp {stamps.iloc[i]!r} is not an ISO 8601 time", line=int(lines[i]))
    notes = []
    if getattr(parsed.dt, "tz", None) is not None:
        ts = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    else:
        ts = local_to_utc(parsed, ctx.tz)
        notes.append(f"local times read in zone {ctx.tz_name} ({ctx.tz_source})")
    out["ts"] = ts.astype("datetime64[us]").to_numpy()
    validate.check_times(out["ts"], lines, validate.limits_of(ctx), "timestamp")
    if out["duration_s"].isna().any():
        i = int(out["duration_s"].isna().to_numpy().argmax())
        raise ParseError("row without a duration", line=int(lines[i]))
    validate.check_numbers(out["duration_s"], lines, "duration", 0.0, MAX_DURATION_S)
    out["intensity_g_per_kwh"] = (out["emissions_kg"] * 1000 / out["energy_consumed_kwh"].where(out["energy_consumed_kwh"] > 0))
    start = out["ts"] - pd.to_timedelta(out["duration_s"], unit="s")
    out["tracker_run"] = _tracker_runs(out, start)
    sensors, samples, warnings = _power(out, start)
    n_runs = out["tracker_run"].nunique()
    notes.insert(0, f"{len(out)} CodeCarbon rows from {n_runs} tracker run{'s' if n_runs != 1 else ''}")
    return Trace(format=NAME, sensors=sensors, samples=samples, tables={"codecarbon_emissions": out},
                 notes=notes, warnings=warnings + cut)


def _tracker_runs(out: pd.DataFrame, start: pd.Series) -> pd.Series:
    """CodeCarbon's run_id, else 'started <UTC start>' for consecutive rows with one start time."""
    has_id = out["codecarbon_run_id"].notna()
    gap = (start - start.shift(1)).abs().dt.total_seconds()
    new = (~has_id) & (has_id.shift(1, fill_value=True) | (gap > _SAME_START_S)
                       | (out["duration_s"] < out["duration_s"].shift(1)))
    group = new.cumsum()
    first_start = start.groupby(group).transform("first")
    label = "started " + first_start.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out["codecarbon_run_id"].where(has_id, label)


def _power(out: pd.DataFrame, start: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Sensors and step samples: average IT power per interval between rows of one tracker run."""
    runs = {name: i for i, name in enumerate(dict.fromkeys(out["tracker_run"]))}
    origin = (start.groupby(out["tracker_run"]).transform("median"))  # the tracker's start, robust to 1 s stamps
    pue = out["pue"].where(out["pue"] > 0, 1.0).fillna(1.0)
    pieces, sensor_rows, warnings = [], [], []
    for component, column, kind, model in COMPONENTS:
        have = out[out[column].notna()]
        if have.empty:
            continue
        grp = have["tracker_run"]
        energy = have[column] - have.groupby(grp)[column].shift(1).fillna(0.0)
        begin = have.groupby(grp)["duration_s"].shift(1).fillna(0.0)
        length = have["duration_s"] - begin
        backwards = (energy < 0) | (length <= 0)
        if backwards.any():
            warnings.append(f"{int(backwards.sum())} {component} intervals whose cumulative energy or duration "
                            "went backwards were left out of the power samples")
        iv = pd.DataFrame({
            "sensor_key": "codecarbon:" + grp.map(runs).astype(str) + ":" + component,
            "start": origin.loc[have.index] + pd.to_timedelta(begin, unit="s"),
            "end": origin.loc[have.index] + pd.to_timedelta(have["duration_s"], unit="s"),
            "power_w": (energy * 3.6e6 / pue.loc[have.index] / length).where(~backwards),
        })
        pieces.append(iv)
        names = pd.Series(list(dict.fromkeys(grp)), dtype=object)
        devices = have[model].groupby(grp).first() if model else pd.Series(dtype=object)
        sensor_rows.append(pd.DataFrame({
            "sensor_key": "codecarbon:" + names.map(runs).astype(str) + ":" + component, "kind": kind,
            "name": f"CodeCarbon {component} (" + names + ")", "device_index": None, "device_uuid": None,
            "device_name": names.map(devices).where(lambda d: d.notna(), None) if model else None,
            "tool": "codecarbon"}))
    samples = step_samples(pd.concat(pieces, ignore_index=True)) if pieces else None
    sensors = pd.concat(sensor_rows, ignore_index=True) if sensor_rows else None
    if samples is not None and sensors is not None:
        sensors = sensors[sensors["sensor_key"].isin(set(samples["sensor_key"]))]
    return sensors, samples, warnings
