"""carbontracker: its log files (``YYYY-MM-DD HH:MM:SS - `` prefixes; the standard log with epochs,
average power per component and carbon intensities, and the output log with the consumption summary)
and its stdout (the same messages without times) → carbontracker_records, plus power samples.

Epochs with average power become step power samples over [end - duration, end] per component and
device (tool 'carbontracker'); '[None]' power (no readable sensor) gives a record without samples.
Log times are local (Python logging); they are converted with the run's zone.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from dlwh._lazy import pandas as pd

from dlwh.ingest.intervals import step_samples
from dlwh.errors import ParseError
from dlwh.ingest.timeutil import local_to_utc
from dlwh.ingest.lines import drop_cut_line, shaped_like
from dlwh.ingest.trace import IngestContext, Trace

NAME = "carbontracker"
DESCRIPTION = "carbontracker log files and stdout: power per epoch and the consumption summary"
EXTENSIONS = (".log", ".txt")
_PREFIX = re.compile(r"^(?P<stamp>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) - (?P<msg>.*)$")
_KNOWN = re.compile(r"consumption for \d+ epoch\(s\)|Average power usage \(W\)|components were found|"
                    r"Monitoring thread|carbontracker version", re.IGNORECASE)
_DURATION = r"(?:(\d+) days?, )?(\d+):(\d{2}):(\d{2}(?:\.\d+)?)"

PATTERNS: dict[str, str] = {
    "version": r"^carbontracker version (\S+)",
    "pue": r"PUE coefficient of ([\d.]+)",
    "components": r"^The following components were found: (.*)$",
    "epoch": r"^Epoch (\d+):\s*$",
    "duration": rf"^Duration: {_DURATION}",
    "power": r"^Average power usage \(W\) for (\w+): (.*)$",
    "fetched": r"^Carbon intensities \(gCO2/kWh\) fetched every (\d+) s at detected location (.*): \[(.*)\]\s*$",
    "average": r"^Average carbon intensity during training was ([\d.]+) gCO2/kWh at detected location: (.*?)\.?\s*$",
    "forecast": rf"^Carbon intensity for the next {_DURATION} is predicted to be ([\d.]+) gCO2/kWh"
                r"(?: at detected location: (.*?)\.?)?\s*$",
    "summary": r"^(Actual|Predicted) consumption for (\d+) epoch\(s\):",
    "time": rf"^Time:\s*{_DURATION}",
    "energy": r"^Energy:\s*([\d.eE+-]+) kWh",
    "co2": r"^CO2eq:\s*([\d.eE+-]+) g",
    "equivalent": r"^([\d.eE+-]+ .+)$",
}


def sniff(head: str, path: Path) -> bool:
    """Mentions carbontracker and one of its log messages."""
    return "carbontracker" in head.lower() and bool(_KNOWN.search(head))


def _complete_line(text: str):
    """``is_complete`` for the last line: a message of PATTERNS whole (its brackets closed), or another
    line shaped like one above it."""
    shaped = shaped_like(text[max(0, len(text) - 65536):].split("\n")[-201:-1])
    patterns = [re.compile(p) for p in PATTERNS.values() if p != PATTERNS["equivalent"]]

    def complete(line: str) -> bool:
        prefix = _PREFIX.match(line)
        msg = re.sub(r"^CarbonTracker:\s*", "", (prefix.group("msg") if prefix else line).strip())
        if any(p.search(msg) for p in patterns):
            return msg.count("[") == msg.count("]")
        return shaped(line)

    return complete


def _seconds(parts: pd.DataFrame, first: int) -> pd.Series:
    days = pd.to_numeric(parts[first], errors="coerce").fillna(0)
    h, m, s = (pd.to_numeric(parts[first + i], errors="coerce") for i in (1, 2, 3))
    return days * 86400 + h * 3600 + m * 60 + s


def _powers(text: pd.Series, lines: pd.Series | None = None) -> tuple[pd.Series, pd.Series]:
    """'[136.8 12.1]' / '[None]' / 'None' → (sum over devices or NULL, list of per-device values).

    A token that is neither a number nor None is a ParseError at its line (``lines``, by ``text``'s index)."""
    tokens = text.str.strip().str.strip("[]").str.replace(",", " ").str.split()
    flat = tokens.explode().dropna()
    bad = (flat != "None") & pd.to_numeric(flat, errors="coerce").isna()
    if bad.any():
        at = bad.idxmax()
        raise ParseError(f"power value {str(flat[bad].iloc[0])[:40]!r} is not a number",
                         line=int(lines[at]) if lines is not None else None)
    values = tokens.map(lambda ts: [None if t == "None" else float(t) for t in ts] if isinstance(ts, list) else [])
    total = values.map(lambda vs: float(sum(v for v in vs if v is not None)) if any(v is not None for v in vs) else np.nan)
    return total, values


def parse(ctx: IngestContext) -> Trace:
    """Split lines, match each known message, then assemble epoch, intensity and summary records."""
    cut: list[str] = []
    text = ctx.read_text()
    text = drop_cut_line(text, _complete_line(text), cut)
    lines = pd.Series(text.splitlines(), dtype="object")
    if lines.empty:
        raise ParseError("empty carbontracker output")
    prefix = lines.str.extract(_PREFIX)
    msg = prefix["msg"].fillna(lines).str.strip()
    msg = msg.str.replace(r"^CarbonTracker:\s*", "", regex=True)
    has_stamp = prefix["stamp"].notna()
    notes: list[str] = []
    if has_stamp.any():
        stamps = pd.to_datetime(prefix["stamp"], format="%Y-%m-%d %H:%M:%S", errors="coerce")
        ts = local_to_utc(stamps.ffill(), ctx.tz).astype("datetime64[us]")
        notes.append(f"local times read in zone {ctx.tz_name} ({ctx.tz_source})")
    else:
        ts = pd.Series(pd.NaT, index=lines.index, dtype="datetime64[us]")
        notes.append("stdout without times: records have no timestamps and give no power samples")
    m = {key: msg.str.extract(pattern) for key, pattern in PATTERNS.items()}
    line_no = pd.Series(np.arange(1, len(lines) + 1), index=lines.index)

    version = m["version"][0].dropna()
    pue = pd.to_numeric(m["pue"][0], errors="coerce").dropna()
    components = m["components"][0].dropna()
    common = {"version": version.iloc[0] if len(version) else None,
              "pue": float(pue.iloc[0]) if len(pue) else np.nan,
              "components": components.iloc[0] if len(components) else None}

    # epochs: each Duration / power line belongs to the latest 'Epoch N:' line before it
    epoch_no = pd.to_numeric(m["epoch"][0], errors="coerce").ffill()
    records = []
    dur = m["duration"].dropna(how="all", subset=[1, 2, 3])
    if len(dur):
        epochs = pd.DataFrame({"line": line_no[dur.index], "epoch": epoch_no[dur.index],
                               "ts": ts[dur.index], "duration_s": _seconds(dur, 0)})
        if epochs["epoch"].isna().any():
            i = epochs.index[epochs["epoch"].isna()][0]
            raise ParseError("'Duration:' line before any 'Epoch N:' line", line=int(line_no[i]))
        pw = m["power"].dropna()
        per = pd.DataFrame({"epoch": epoch_no[pw.index], "component": pw[0].str.lower(), "text": pw[1]})
        per["total"], per["values"] = _powers(per["text"], line_no)
        for component in ("gpu", "cpu"):
            part = per[per["component"] == component].drop_duplicates("epoch", keep="last").set_index("epoch")
            epochs[f"{component}_power_w"] = epochs["epoch"].map(part["total"])
            epochs[f"{component}_power_list"] = epochs["epoch"].map(part["text"].str.strip())
            epochs[f"_{component}_values"] = epochs["epoch"].map(part["values"])
        epochs["kind"] = "epoch"
        records.append(epochs)
    else:
        epochs = pd.DataFrame()
    fetched = m["fetched"].dropna()
    avg = m["average"].dropna()
    if len(avg):
        records.append(pd.DataFrame({
            "line": line_no[avg.index], "kind": "intensity", "ts": ts[avg.index], "epoch": epoch_no[avg.index],
            "intensity_g_per_kwh": pd.to_numeric(avg[0]), "location": avg[1],
            "intensities": fetched[2].iloc[-1] if len(fetched) else None}))
    elif len(fetched):
        values = fetched[2].str.split(",").map(lambda v: float(np.mean([float(x) for x in v if x.strip()])) if v else np.nan)
        records.append(pd.DataFrame({
            "line": line_no[fetched.index], "kind": "intensity", "ts": ts[fetched.index],
            "intensity_g_per_kwh": values, "location": fetched[1], "intensities": fetched[2]}))
    fc = m["forecast"].dropna(subset=[4])
    if len(fc):
        records.append(pd.DataFrame({
            "line": line_no[fc.index], "kind": "intensity_forecast", "ts": ts[fc.index],
            "duration_s": _seconds(fc, 0), "intensity_g_per_kwh": pd.to_numeric(fc[4]), "location": fc[5]}))
    summaries = _summaries(m, line_no, ts)
    if summaries is not None:
        records.append(summaries)
    if not records:
        raise ParseError("no carbontracker epochs, intensities or consumption summaries found")
    table = pd.concat(records, ignore_index=True)
    for key, value in common.items():
        table[key] = value
    sensors, samples = _samples(epochs, common["components"]) if has_stamp.any() and len(epochs) else (None, None)
    keep = ["line", "kind", "ts", "epoch", "epochs", "duration_s", "energy_kwh", "co2eq_g", "gpu_power_w",
            "cpu_power_w", "gpu_power_list", "cpu_power_list", "intensity_g_per_kwh", "intensities", "location",
            "equivalent", "pue", "version", "components"]
    for column in keep:
        if column not in table:
            table[column] = None
    table = table[keep].sort_values("line", kind="stable").reset_index(drop=True)
    return Trace(format=NAME, sensors=sensors, samples=samples, tables={"carbontracker_records": table}, notes=notes,
                 warnings=cut)


def _summaries(m: dict[str, pd.DataFrame], line_no: pd.Series, ts: pd.Series) -> pd.DataFrame | None:
    """'Actual/Predicted consumption for N epoch(s):' blocks with their Time, Energy, CO2eq and equivalent."""
    heads = m["summary"].dropna()
    if heads.empty:
        return None
    block = pd.Series(np.nan, index=line_no.index)
    block[heads.index] = np.arange(len(heads))
    block = block.ffill(limit=7)  # a block is the header and at most 7 lines after it
    out = pd.DataFrame({"line": line_no[heads.index].to_numpy(), "kind": heads[0].str.lower().to_numpy(),
                        "epochs": pd.to_numeric(heads[1]).to_numpy(), "ts": ts[heads.index].to_numpy()})
    time = m["time"].dropna(subset=[1, 2, 3])
    energy = m["energy"][0].dropna()
    co2 = m["co2"][0].dropna()
    eq = m["equivalent"][0].dropna()
    eq = eq[~eq.index.isin(energy.index) & ~eq.index.isin(co2.index)]
    for name, values in (("duration_s", _seconds(time, 0)), ("energy_kwh", pd.to_numeric(energy)),
                         ("co2eq_g", pd.to_numeric(co2)), ("equivalent", eq)):
        owner = block[values.index]
        values = values[owner.notna()]
        owner = owner[owner.notna()].astype(int)
        out[name] = pd.Series(values.to_numpy(), index=owner.to_numpy()).groupby(level=0).first() \
            .reindex(range(len(out))).to_numpy()
    incomplete = out[["duration_s", "energy_kwh", "co2eq_g"]].isna().any(axis=1)
    if incomplete.any():
        raise ParseError("consumption summary without its Time, Energy and CO2eq lines (truncated?)",
                         line=int(out.loc[incomplete.idxmax(), "line"]))
    return out


def _device_names(components: str | None, component: str) -> list[str]:
    if not components:
        return []
    match = re.search(rf"{component.upper()} with device\(s\) (.*?)\.(?:\s|$)", components)
    return [n.strip() for n in match.group(1).split(",")] if match else []


def _samples(epochs: pd.DataFrame, components: str | None) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """Per component and device: average power over each epoch as step samples."""
    pieces, sensors = [], []
    for component, kind in (("gpu", "gpu"), ("cpu", "cpu")):
        values = epochs[f"_{component}_values"]
        names = _device_names(components, component)
        width = int(values.map(lambda v: len(v) if isinstance(v, list) else 0).max() or 0)
        for device in range(width):
            power = values.map(lambda v: v[device] if isinstance(v, list) and len(v) > device else None).astype(float)
            if power.notna().sum() == 0:
                continue
            key = f"carbontracker:{component}{device}"
            end = epochs["ts"]
            pieces.append(pd.DataFrame({"sensor_key": key, "start": end - pd.to_timedelta(epochs["duration_s"], unit="s"),
                                        "end": end, "power_w": power}))
            name = names[device] if device < len(names) else None
            sensors.append({"sensor_key": key, "kind": kind, "name": f"carbontracker {component} {device} {name or ''}".strip(),
                            "device_index": device, "device_uuid": None, "device_name": name, "tool": "carbontracker"})
    if not pieces:
        return None, None
    return pd.DataFrame(sensors), step_samples(pd.concat(pieces, ignore_index=True))
