"""The CUDA profiler nvprof: ``--print-gpu-trace`` (human-readable and ``--csv`` with its unit row)
→ the kernels table, and the default summary mode → kernel_summary. ``--metrics`` / ``--events``
sections in the same file go to kernel_metrics (see nvprof_metrics).

nvprof prints sizes and throughputs in binary units (1 KB = 1024 B, 1 GB/s = 2^30 B/s); they are stored
in B and B/s. Trace start times are relative to the profiler's start; they are anchored with --start
(or the run.json next to the file) so kernels sit beside the power samples of the same run.
"""

from __future__ import annotations

import io
import re

from pathlib import Path

import numpy as np
import pandas as pd

from dlwh.errors import ParseError
from dlwh.ingest.trace import IngestContext, Trace

NAME = "nvprof-trace"

TIME_S = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0}
SIZE_B = {"B": 1.0, "KB": 1024.0, "MB": 1024.0 ** 2, "GB": 1024.0 ** 3, "TB": 1024.0 ** 4}
RATE_BPS = {f"{k}/s": v for k, v in SIZE_B.items()}

_TRACE_HUMAN = re.compile(r"^\s*Start\s+Duration\s+.*\bName\s*$", re.MULTILINE)
_TRACE_CSV = re.compile(r'^"Start","Duration",', re.MULTILINE)
_SUMMARY_HUMAN = re.compile(r"^\s*(?:Type\s+)?Time\(%\)\s+Time\s+Calls\s+Avg\b.*\bName\s*$", re.MULTILINE)
_SUMMARY_CSV = re.compile(r'^(?:"Type",)?"Time\(%\)","Time","Calls","Avg"', re.MULTILINE)
_QUANTITY = re.compile(r"^(?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(?P<unit>[A-Za-z%/]*)$")


def sniff(head: str, path: Path) -> bool:
    """A gpu-trace or summary table header (human or CSV) from nvprof."""
    return bool(_TRACE_HUMAN.search(head) or _TRACE_CSV.search(head)
                or _SUMMARY_HUMAN.search(head) or _SUMMARY_CSV.search(head))


def quantity(text: pd.Series, scales: dict[str, float] | None = None) -> tuple[pd.Series, pd.Series]:
    """'454.89ms' / '5.6367GB/s' / '3.12%' / '1024' → (number scaled to its base unit, base unit).

    Base units: s, B, B/s, % or '' (a count). '-' and '' give NULL. ``scales`` adds unit factors.
    Unknown suffixes give NULL with the suffix kept as the unit.
    """
    parts = text.fillna("").astype(str).str.strip().str.extract(_QUANTITY)
    number = pd.to_numeric(parts["num"], errors="coerce")
    unit = parts["unit"].fillna("")
    factor = pd.Series(np.nan, index=text.index)
    base = pd.Series(None, index=text.index, dtype="object")
    table = {**{k: (v, "s") for k, v in TIME_S.items()}, **{k: (v, "B") for k, v in SIZE_B.items()},
             **{k: (v, "B/s") for k, v in RATE_BPS.items()}, "%": (1.0, "%"), "": (1.0, "")}
    for suffix, (f, b) in {**table, **{k: (v, k) for k, v in (scales or {}).items()}}.items():
        hit = unit == suffix
        factor[hit] = f
        base[hit] = b
    return number * factor, base.where(number.notna(), None)


def _triple(text: pd.Series) -> pd.DataFrame:
    """'(4681 1 1)' → three integer columns (NULL for '-')."""
    parts = text.fillna("").str.extract(r"\(\s*(\d+)\s+(\d+)\s+(\d+)\s*\)")
    return parts.apply(pd.to_numeric, errors="coerce").astype("Int64")


def _kind(name: pd.Series) -> pd.Series:
    kind = pd.Series("kernel", index=name.index)
    kind[name.str.startswith("[CUDA memcpy")] = "memcpy"
    kind[name.str.startswith("[CUDA memset")] = "memset"
    return kind


def _human_trace(lines: list[str], header_at: int) -> pd.DataFrame:
    """Fixed-width rows under a human gpu-trace header (columns right-aligned to their header, Name left)."""
    header = lines[header_at]
    spans = [(m.start(), m.end(), m.group()) for m in re.finditer(r"\S+(?: \S+)*", header)]
    names = [s[2] for s in spans]
    if names[0] != "Start" or names[-1] != "Name":
        raise ParseError("gpu-trace header does not run from Start to Name", line=header_at + 1)
    body = []
    for i in range(header_at + 1, len(lines)):
        if not lines[i].strip():
            break
        body.append(i)
    if not body:
        raise ParseError("no rows under the gpu-trace header", line=header_at + 2)
    colspecs = []
    prev_end = 0
    for start, end, name in spans[:-1]:
        colspecs.append((prev_end, end))
        prev_end = end
    colspecs.append((spans[-1][0], None))
    text = "\n".join(lines[i] for i in body)
    frame = pd.read_fwf(io.StringIO(text), colspecs=colspecs, names=names, header=None, dtype=str)
    frame["line"] = [i + 1 for i in body]
    return frame


def _csv_table(lines: list[str], header_at: int) -> tuple[pd.DataFrame, dict[str, str]]:
    """A CSV table: header, unit row (when the next line is not data), rows until a blank or '==' line."""
    end = header_at + 1
    while end < len(lines) and lines[end].strip() and not lines[end].startswith("=="):
        end += 1
    text = "\n".join(lines[header_at:end])
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, ValueError) as err:
        raise ParseError(f"malformed CSV table ({str(err).splitlines()[0]})", line=header_at + 1) from None
    frame["line"] = np.arange(header_at + 2, header_at + 2 + len(frame))
    units: dict[str, str] = {}
    if len(frame):
        first = frame.iloc[0]
        values = [str(first[c]) for c in frame.columns if c != "line"]
        if all(v == "" or re.fullmatch(r"[A-Za-z%/]+", v) for v in values):
            units = {c: str(first[c]) for c in frame.columns if c != "line"}
            frame = frame.iloc[1:].reset_index(drop=True)
    return frame, units


def _scaled(frame: pd.DataFrame, column: str, units: dict[str, str], table: dict[str, float]) -> pd.Series:
    """A numeric CSV column in its header unit (from the unit row) or with suffixes (human)."""
    if column not in frame:
        return pd.Series(np.nan, index=frame.index)
    unit = units.get(column, "")
    if unit:
        if unit not in table:
            raise ParseError(f"unknown unit {unit!r} for column {column}")
        return pd.to_numeric(frame[column].replace({"": None, "-": None}), errors="coerce") * table[unit]
    value, _ = quantity(frame[column])
    return value


def _trace_table(frame: pd.DataFrame, units: dict[str, str], csv: bool) -> pd.DataFrame:
    get = lambda *names: next((frame[n] for n in names if n in frame), pd.Series(None, index=frame.index, dtype=object))
    start = _scaled(frame, "Start", units, TIME_S)
    duration = _scaled(frame, "Duration", units, TIME_S)
    bad = start.isna() | duration.isna()
    if bad.any():
        i = int(np.argmax(bad.to_numpy()))
        raise ParseError(f"row without a readable Start and Duration ({frame['Start'].iloc[i]!r}, "
                         f"{frame['Duration'].iloc[i]!r}); file truncated?", line=int(frame["line"].iloc[i]))
    name = get("Name").fillna("").astype(str).str.strip()
    if (name == "").any():
        i = int(np.argmax((name == "").to_numpy()))
        raise ParseError("row without a kernel name", line=int(frame["line"].iloc[i]))
    out = pd.DataFrame({"line": frame["line"].astype(int), "kind": _kind(name), "start_s": start,
                        "duration_s": duration, "name": name})
    if csv:
        for axis in ("x", "y", "z"):
            out[f"grid_{axis}"] = pd.to_numeric(get(f"Grid {axis.upper()}"), errors="coerce").astype("Int64")
            out[f"block_{axis}"] = pd.to_numeric(get(f"Block {axis.upper()}"), errors="coerce").astype("Int64")
        out["registers_per_thread"] = pd.to_numeric(get("Registers Per Thread"), errors="coerce").astype("Int64")
        out["static_smem_bytes"] = _scaled(frame, "Static SMem", units, SIZE_B)
        out["dynamic_smem_bytes"] = _scaled(frame, "Dynamic SMem", units, SIZE_B)
        out["size_bytes"] = _scaled(frame, "Size", units, SIZE_B)
        out["throughput_bytes_per_s"] = _scaled(frame, "Throughput", units, RATE_BPS)
        out["correlation_id"] = pd.to_numeric(get("Correlation_ID"), errors="coerce").astype("Int64")
    else:
        grid, block = _triple(get("Grid Size")), _triple(get("Block Size"))
        for j, axis in enumerate(("x", "y", "z")):
            out[f"grid_{axis}"] = grid[j]
            out[f"block_{axis}"] = block[j]
        out["registers_per_thread"] = pd.to_numeric(get("Regs*", "Regs"), errors="coerce").astype("Int64")
        out["static_smem_bytes"] = quantity(get("SSMem*", "SSMem"))[0]
        out["dynamic_smem_bytes"] = quantity(get("DSMem*", "DSMem"))[0]
        out["size_bytes"] = quantity(get("Size"))[0]
        out["throughput_bytes_per_s"] = quantity(get("Throughput"))[0]
        out["correlation_id"] = pd.Series(pd.NA, index=frame.index, dtype="Int64")
    clean = lambda s: s.fillna("").astype(str).str.strip().replace({"": None, "-": None})
    out["src_mem_type"] = clean(get("SrcMemType"))
    out["dst_mem_type"] = clean(get("DstMemType"))
    out["device"] = clean(get("Device"))
    out["context"] = pd.to_numeric(get("Context"), errors="coerce").astype("Int64")
    out["stream"] = pd.to_numeric(get("Stream"), errors="coerce").astype("Int64")
    return out


def _summary_human(lines: list[str], header_at: int) -> pd.DataFrame:
    header = lines[header_at]
    with_minmax = bool(re.search(r"\bMin\s+Max\b", header))
    minmax = r"\s+(?P<min>\S+)\s+(?P<max>\S+)" if with_minmax else ""
    row = re.compile(r"^\s*(?:(?P<type>[A-Za-z][A-Za-z ]*?):)?\s*(?P<pct>[\d.]+)%\s+(?P<time>\S+)\s+(?P<calls>\d+)"
                     rf"\s+(?P<avg>\S+){minmax}\s+(?P<name>\S.*?)\s*$")
    rows = []
    for i in range(header_at + 1, len(lines)):
        line = lines[i]
        if not line.strip() or line.startswith("==") or _SUMMARY_HUMAN.match(line):
            break
        match = row.match(line)
        if match is None:
            raise ParseError("summary row not of the form 'Type: Time(%) Time Calls Avg [Min Max] Name'", line=i + 1)
        rows.append({**match.groupdict(), "line": i + 1})
    frame = pd.DataFrame(rows)
    if frame.empty:
        raise ParseError("no rows under the summary header", line=header_at + 2)
    return frame


def _summary_table(frame: pd.DataFrame, units: dict[str, str], csv: bool, default_type: str) -> pd.DataFrame:
    if csv:
        col = lambda c: _scaled(frame, c, units, TIME_S)
        out = pd.DataFrame({
            "line": frame["line"].astype(int),
            "type": frame["Type"].replace("", None) if "Type" in frame else default_type,
            "time_pct": pd.to_numeric(frame["Time(%)"], errors="coerce"),
            "total_s": col("Time"), "calls": pd.to_numeric(frame["Calls"], errors="coerce").astype("Int64"),
            "avg_s": col("Avg"), "min_s": col("Min"), "max_s": col("Max"),
            "name": frame["Name"].astype(str).str.strip()})
    else:
        sec = lambda c: quantity(frame[c])[0] if c in frame else np.nan
        out = pd.DataFrame({
            "line": frame["line"].astype(int),
            "type": frame["type"].str.strip().replace("", None).ffill().fillna(default_type),
            "time_pct": pd.to_numeric(frame["pct"], errors="coerce"),
            "total_s": sec("time"), "calls": pd.to_numeric(frame["calls"], errors="coerce").astype("Int64"),
            "avg_s": sec("avg"), "min_s": sec("min"), "max_s": sec("max"),
            "name": frame["name"].astype(str).str.strip()})
    bad = out["time_pct"].isna() | out["total_s"].isna()
    if bad.any():
        raise ParseError("summary row without a readable Time(%) and Time", line=int(out.loc[bad.idxmax(), "line"]))
    return out


def parse(ctx: IngestContext) -> Trace:
    """Find every trace, summary and metric table in the file and convert each."""
    text = ctx.read_text()
    if text and not text.endswith("\n") and _looks_cut(text):
        raise ParseError("last line is incomplete (file truncated?)", line=text.count("\n") + 1)
    lines = text.splitlines()
    traces, summaries = [], []
    api_banner = {i for i, l in enumerate(lines) if re.match(r"^==\d+== API calls:", l)}
    for i, line in enumerate(lines):
        if _TRACE_CSV.match(line):
            frame, units = _csv_table(lines, i)
            traces.append(_trace_table(frame, units, csv=True))
        elif _TRACE_HUMAN.match(line):
            traces.append(_trace_table(_human_trace(lines, i), {}, csv=False))
        elif _SUMMARY_CSV.match(line):
            frame, units = _csv_table(lines, i)
            default = "API calls" if (i - 1) in api_banner else "GPU activities"
            summaries.append(_summary_table(frame, units, csv=True, default_type=default))
        elif _SUMMARY_HUMAN.match(line):
            default = "API calls" if (i - 1) in api_banner else "GPU activities"
            summaries.append(_summary_table(_summary_human(lines, i), {}, csv=False, default_type=default))
    from dlwh.ingest.formats import nvprof_metrics  # metrics sections in the same file
    metrics = nvprof_metrics.metric_table(lines)
    tables: dict[str, pd.DataFrame] = {}
    notes: list[str] = []
    if traces:
        kernels = pd.concat(traces, ignore_index=True)
        if ctx.start_utc is None:
            raise ParseError("nvprof gpu-trace times are relative to the profiler's start; pass --start "
                             "(when the profiled command started) or keep the file next to its run.json")
        anchor = pd.Timestamp(ctx.start_utc)
        kernels["start_ts"] = (anchor + pd.to_timedelta(kernels["start_s"], unit="s")).astype("datetime64[us]")
        notes.append(f"{len(kernels)} GPU activities; Start anchored at {ctx.start_utc:%Y-%m-%dT%H:%M:%S}Z "
                     f"({ctx.start_source})")
        tables["kernels"] = kernels
    if summaries:
        tables["kernel_summary"] = pd.concat(summaries, ignore_index=True)
        notes.append(f"{len(tables['kernel_summary'])} summary rows")
    if metrics is not None:
        tables["kernel_metrics"] = metrics
        notes.append(f"{len(metrics)} kernel metric values")
    if not tables:
        raise ParseError("no nvprof trace, summary or metric table found")
    return Trace(format=NAME, tables=tables, notes=notes)


def _looks_cut(text: str) -> bool:
    """The last line of a table is cut when it does not end with a newline and is a table row."""
    last = text.rsplit("\n", 1)[-1]
    return bool(last.strip()) and not last.startswith(("==", "Regs", "SSMem", "DSMem", "SrcMemType", "DstMemType"))



