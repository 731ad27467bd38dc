"""nvidia-smi dmon [-s pucvmet] [-o DT] [-d N] output → GPU sensors and samples.

Both column sets are read by name: newer drivers' ``# gpu pwr gtemp mtemp sm mem enc dec jpg ofa mclk
pclk`` and older ``# gpu pwr temp sm mem enc dec mclk pclk``, with whatever ``-s`` added (``fb bar1 ccpm``,
``rxpci txpci``, ``pviol tviol``, ``sbecc dbecc pci``). The ``#`` header and units lines (repeated
through long recordings) are skipped; ``-`` is NULL.

Column → metric (unit):
    pwr → power (W)            gtemp / temp → temperature_gpu (C)   mtemp → temperature_memory (C)
    sm → utilization_gpu (%)   mem → utilization_memory (%)         enc/dec/jpg/ofa → utilization_encoder/
    mclk → clock_mem (MHz)     pclk → clock_sm (MHz)                  decoder/jpeg/ofa (%)
    fb → memory_used (MiB)     rxpci / txpci → pcie_rx / pcie_tx (MB/s)
``pclk`` is NVML's processor (graphics) clock; on current GPUs the SM clock runs at the same frequency
(nvidia-smi --query-gpu shows clocks.sm == clocks.gr), so it is stored as clock_sm. ``fb`` is printed in
"MB" but is the framebuffer use in MiB (the same number as memory.used). bar1, ccpm, pviol, tviol and
the ECC/replay counters have no dlwh metric and are not loaded.

Times: with ``-o DT`` the date and time columns are the host's local time (converted with the run's
zone); with ``-o T`` only the time of day is printed, so the date comes from the start time (--start
or run.json) and a time earlier than the previous one starts the next day. Without time columns the
k-th reading of a GPU is placed at start + k x interval (--interval-s, the manifest's source or its
``-d``, else 1 s). No start at all is a ParseError asking for --start.

dmon output is a terminal log (one line per GPU per interval, a few MB a day), parsed with vectorised
pandas string methods.
"""

from __future__ import annotations

import re
from pathlib import Path

from dlwh._lazy import pandas as pd

from dlwh.errors import ParseError
from dlwh.ingest.formats.nvidia_smi._common import NOISE_RE, sample_interval
from dlwh.ingest.timeutil import local_to_utc
from dlwh.ingest.lines import drop_cut_line, noise_warning
from dlwh.ingest.trace import IngestContext, Trace
from dlwh.metrics import METRIC_UNITS

NAME = "nvidia-smi-dmon"
DESCRIPTION = "nvidia-smi dmon [-s pucvmet] [-o DT]: GPU power, temperature, clocks, utilisation"
EXTENSIONS = (".txt", ".log")
TOOL = "nvidia-smi-dmon"

COLUMNS: dict[str, str] = {
    "pwr": "power",
    "gtemp": "temperature_gpu",
    "temp": "temperature_gpu",
    "mtemp": "temperature_memory",
    "sm": "utilization_gpu",
    "mem": "utilization_memory",
    "enc": "utilization_encoder",
    "dec": "utilization_decoder",
    "jpg": "utilization_jpeg",
    "ofa": "utilization_ofa",
    "mclk": "clock_mem",
    "pclk": "clock_sm",
    "fb": "memory_used",
    "rxpci": "pcie_rx",
    "txpci": "pcie_tx",
}


def _header_names(line: str) -> list[str] | None:
    """Column names of a dmon header line ('# gpu pwr ...', '#Date Time gpu ...'), else None."""
    text = line.strip()
    if not text.startswith("#"):
        return None
    names = [t.lower() for t in text[1:].split()]
    if "gpu" not in names or "pid" in names:  # pid: that is pmon, not dmon
        return None
    before = names[: names.index("gpu")]
    if any(b not in ("date", "time") for b in before):
        return None
    if not any(n in COLUMNS for n in names):
        return None
    return names


def sniff(head: str, path: Path) -> bool:
    """The first non-blank line is a dmon header: '# gpu pwr ...' or '#Date Time gpu ...'."""
    first = next((ln for ln in head.lstrip("\ufeff").splitlines() if ln.strip()), "")
    return _header_names(first) is not None


def parse(ctx: IngestContext) -> Trace:
    """Read the rows by column name; times from the date/time columns or start + k x interval."""
    text = ctx.read_text().lstrip("\ufeff")
    first_header = next((ln for ln in text.splitlines() if ln.strip().startswith("#")), "")
    width = len(_header_names(first_header) or ())
    trace = Trace(format=NAME)
    text = drop_cut_line(text, lambda ln: ln.strip().startswith("#") or len(ln.split()) == width
                         or re.match(NOISE_RE, ln) is not None, trace.warnings)
    raw = text.splitlines()
    lines = pd.Series(raw, dtype="object").str.strip()
    comment = lines.str.startswith("#")
    header_at = lines.index[comment]
    names = _header_names(lines[header_at[0]]) if len(header_at) else None
    if names is None:
        raise ParseError("no dmon header line ('# gpu pwr ...')", line=1)
    header_key = " ".join(names)
    # every other '#' line must be the same header or a units line
    for number in header_at[1:]:
        other = _header_names(lines[number])
        if other is not None and " ".join(other) != header_key:
            raise ParseError("the column set changes here (another dmon run with other -s/-o appended?); "
                             "split the file", line=int(number) + 1)
    noise = ~comment & lines.str.contains(NOISE_RE, regex=True)
    if noise.any():  # nvidia-smi's own error lines between the rows (stderr into the log): skipped
        trace.warnings.append(noise_warning(int(noise.sum()), int(noise.idxmax()) + 1, "nvidia-smi error"))
    data = lines[~comment & ~noise & (lines != "")]
    if data.empty:
        raise ParseError("no readings: only header lines", line=len(raw))
    parts = data.str.split()
    counts = parts.str.len()
    bad = counts != len(names)
    if bad.any():
        first = bad.idxmax()
        raise ParseError(f"expected {len(names)} columns ({' '.join(names)}), found {counts[first]}: "
                         f"{data[first]!r}", line=int(first) + 1)
    frame = pd.DataFrame(parts.tolist(), index=data.index, columns=names)

    gpu = frame["gpu"]
    idx = pd.to_numeric(gpu, errors="coerce")
    frame["sensor_key"] = "gpu" + gpu
    ts = _times(ctx, frame, trace)

    metrics = [c for c in names if c in COLUMNS]
    values = {}
    for column in metrics:
        cells = frame[column]
        number = pd.to_numeric(cells.where(cells != "-"), errors="coerce")
        garbage = number.isna() & (cells != "-")
        if garbage.any():
            first = garbage.idxmax()
            raise ParseError(f"column {column} holds {cells[first]!r}, not a number or '-'", line=int(first) + 1)
        values[COLUMNS[column]] = number
    wide = pd.DataFrame({"sensor_key": frame["sensor_key"], "ts": ts, **values})
    # gtemp and temp never appear together; keep the first column of a metric if one ever repeats
    wide = wide.loc[:, ~wide.columns.duplicated()]
    long = wide.melt(id_vars=["sensor_key", "ts"], var_name="metric", value_name="value")
    long["unit"] = long["metric"].map(METRIC_UNITS)
    long["duration_s"] = float("nan")
    trace.samples = long[["sensor_key", "ts", "metric", "unit", "value", "duration_s"]]
    unused = [c for c in names if c not in COLUMNS and c not in ("gpu", "date", "time")]
    if unused:
        trace.notes.append("columns without a dlwh metric not loaded: " + ", ".join(unused))

    gpus = {g.get("index"): g for g in (ctx.manifest or {}).get("gpus") or [] if isinstance(g, dict)}
    keys = pd.DataFrame({"sensor_key": frame["sensor_key"], "idx": idx}).drop_duplicates("sensor_key")
    rows = []
    for key, number in zip(keys["sensor_key"], keys["idx"]):  # one per GPU
        i = None if pd.isna(number) else int(number)
        known = gpus.get(i, {})
        rows.append({"sensor_key": key, "kind": "gpu",
                     "name": f"GPU {key[3:]}" + (f" {known['name']}" if known.get("name") else ""),
                     "device_index": i, "device_uuid": known.get("uuid"), "device_name": known.get("name"),
                     "tool": TOOL})
    trace.sensors = pd.DataFrame(rows).astype({"device_index": "Int64"})
    return trace


def _times(ctx: IngestContext, frame: pd.DataFrame, trace: Trace) -> pd.Series:
    """UTC time of each row (naive datetime64)."""
    if "date" in frame and "time" in frame:
        local = pd.to_datetime(frame["date"] + " " + frame["time"], format="%Y%m%d %H:%M:%S", errors="coerce")
        _no_bad_times(local, frame["date"] + " " + frame["time"])
        trace.notes.append(f"local times read as {ctx.tz_name} ({ctx.tz_source})")
        return local_to_utc(local, ctx.tz)
    if "time" in frame:
        if ctx.start_utc is None:
            raise ParseError("dmon -o T prints the time of day without a date; pass --start (a time on the "
                             "recording's first day) or keep the file next to its run.json")
        clock = pd.to_timedelta(frame["time"], errors="coerce")
        _no_bad_times(clock, frame["time"])
        start_local = pd.Timestamp(ctx.start_utc).tz_localize("UTC").tz_convert(ctx.tz).tz_localize(None)
        day = start_local.normalize()
        # a time of day earlier than the previous row's (by hours) means midnight passed
        back = clock.diff() < -pd.Timedelta(hours=12)
        days = back.cumsum()
        if day + clock.iloc[0] < start_local - pd.Timedelta(hours=12):
            days = days + 1
        local = day + clock + pd.to_timedelta(days, unit="D")
        trace.notes.append(f"times of day read as {ctx.tz_name} ({ctx.tz_source}), dates from the start "
                           f"{start_local:%Y-%m-%d} ({ctx.start_source})")
        return local_to_utc(local, ctx.tz)
    if ctx.start_utc is None:
        raise ParseError("dmon without -o T has no times, only the order of readings; pass --start (when "
                         "the recording began) or keep the file next to its run.json")
    interval, source = sample_interval(ctx, (("-d", 1.0), ("--delay", 1.0)), mode="dmon")
    k = frame.groupby("sensor_key", sort=False).cumcount()
    trace.notes.append(f"no time columns: readings placed every {interval:g} s ({source}) from "
                       f"{ctx.start_utc.isoformat()} UTC ({ctx.start_source})")
    return pd.Timestamp(ctx.start_utc) + pd.to_timedelta(k * interval, unit="s")


def _no_bad_times(parsed: pd.Series, text: pd.Series) -> None:
    bad = parsed.isna()
    if bad.any():
        first = bad.idxmax()
        raise ParseError(f"not a dmon date/time: {text[first]!r}", line=int(first) + 1)

