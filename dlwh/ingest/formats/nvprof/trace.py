"""The CUDA profiler nvprof: ``--print-gpu-trace`` (human-readable and ``--csv`` with its unit row)
→ the kernels table, and the default summary mode → kernel_summary. ``--metrics`` / ``--events``
sections in the same file go to kernel_metrics (see nvprof/metrics.py).

nvprof prints sizes and throughputs in binary units (1 KB = 1024 B, 1 GB/s = 2^30 B/s); they are stored
in B and B/s. Trace start times are relative to the profiler's start; they are anchored with --start
(or the run.json next to the file) so kernels sit beside the power samples of the same run.
"""

from __future__ import annotations

import io
import re

from pathlib import Path

import duckdb
import numpy as np
from dlwh._lazy import pandas as pd

from dlwh.errors import ParseError
import dlwh.ingest.validate as validate
from dlwh.ingest.formats.nvprof._common import (
    NUMBER_UNIT, RATE_BPS, SIZE_B, TIME_S, UNITS, complete_text, header_lines, layout, quantity, table_end,
)
from dlwh.ingest.formats.nvprof.metrics import metric_table  # metrics sections in the same file
from dlwh.ingest.trace import IngestContext, Trace

NAME = "nvprof-trace"
DESCRIPTION = "nvprof --print-gpu-trace and summary tables (text or --csv): kernels and their times"
EXTENSIONS = (".txt", ".log", ".csv")

_TRACE_HUMAN = re.compile(r"^[ \t]*Start[ \t]+Duration[ \t]+.*\bName[ \t\r]*$", re.MULTILINE)
_TRACE_CSV = re.compile(r'^"Start","Duration",', re.MULTILINE)
_SUMMARY_HUMAN = re.compile(r"^[ \t]*(?:Type[ \t]+)?Time\(%\)[ \t]+Time[ \t]+Calls[ \t]+Avg\b.*\bName[ \t\r]*$",
                            re.MULTILINE)
_SUMMARY_CSV = re.compile(r'^(?:"Type",)?"Time\(%\)","Time","Calls","Avg"', re.MULTILINE)
_API_BANNER = re.compile(r"^==\d+== API calls:", re.MULTILINE)


def sniff(head: str, path: Path) -> bool:
    """A gpu-trace or summary table header (human or CSV) from nvprof."""
    return bool(_TRACE_HUMAN.search(head) or _TRACE_CSV.search(head)
                or _SUMMARY_HUMAN.search(head) or _SUMMARY_CSV.search(head))


def _kind(name: pd.Series) -> pd.Series:
    kind = pd.Series("kernel", index=name.index)
    kind[name.str.startswith("[CUDA memcpy")] = "memcpy"
    kind[name.str.startswith("[CUDA memset")] = "memset"
    return kind


def _human_trace(lines: list[str], breaks: np.ndarray, header_at: int) -> pd.DataFrame:
    """Fixed-width rows under a human gpu-trace header (columns right-aligned to their header, Name left)."""
    header = lines[header_at].rstrip("\r")
    spans = [(m.start(), m.end(), m.group()) for m in re.finditer(r"\S+(?: \S+)*", header)]
    names = [s[2] for s in spans]
    if names[0] != "Start" or names[-1] != "Name":
        raise ParseError("gpu-trace header does not run from Start to Name", line=header_at + 1)
    end = table_end(breaks, header_at + 1)
    if end == header_at + 1:
        raise ParseError("no rows under the gpu-trace header", line=header_at + 2)
    colspecs = []
    prev_end = 0
    for start, stop, _ in spans[:-1]:
        colspecs.append((prev_end, stop))
        prev_end = stop
    colspecs.append((spans[-1][0], None))
    body = pd.DataFrame({"l": np.asarray(lines[header_at + 1:end], dtype=object)})
    cells = ", ".join(
        f"nullif(trim(replace(substr(l, {a + 1}{', ' + str(b - a) if b is not None else ''}), chr(13), '')), '') AS c{i}"
        for i, (a, b) in enumerate(colspecs))
    # one pass in DuckDB: cut the columns, convert quantities ('454.89ms') and triples ('(1 1 1)'), and
    # hand back numbers and the few text columns only (moving every cell as a Python string is slow)
    col = {n: f"c{i}" for i, n in enumerate(names)}
    pick = lambda *options: next((col[o] for o in options if o in col), "CAST(NULL AS VARCHAR)")
    qty = lambda *options: _quantity_sql(pick(*options)) if any(o in col for o in options) else "CAST(NULL AS DOUBLE)"
    typed = [f"{qty('Start')} AS start_s", f"{qty('Duration')} AS duration_s", f"{pick('Name')} AS name",
             f"{qty('SSMem*', 'SSMem')} AS static_smem_bytes", f"{qty('DSMem*', 'DSMem')} AS dynamic_smem_bytes",
             f"{qty('Size')} AS size_bytes", f"{qty('Throughput')} AS throughput_bytes_per_s",
             f"TRY_CAST({pick('Regs*', 'Regs')} AS BIGINT) AS registers_per_thread",
             f"nullif({pick('SrcMemType')}, '-') AS src_mem_type", f"nullif({pick('DstMemType')}, '-') AS dst_mem_type",
             f"nullif({pick('Device')}, '-') AS device", f"TRY_CAST({pick('Context')} AS BIGINT) AS context",
             f"TRY_CAST({pick('Stream')} AS BIGINT) AS stream"]
    for label, prefix in (("Grid Size", "grid"), ("Block Size", "block")):
        typed += [f"TRY_CAST(string_split(trim({pick(label)}, '() '), ' ')[{j + 1}] AS BIGINT) AS {prefix}_{axis}"
                  for j, axis in enumerate(("x", "y", "z"))]
    typed += [f"{pick('Start')} AS raw_start", f"{pick('Duration')} AS raw_duration"]
    outer = ("SELECT * EXCLUDE (raw_start, raw_duration), CASE WHEN start_s IS NULL OR duration_s IS NULL THEN "
             "coalesce(raw_start, '') || ' / ' || coalesce(raw_duration, '') END AS bad_time")
    with duckdb.connect() as con:
        frame = con.execute(f"{outer} FROM (SELECT {', '.join(typed)} FROM (SELECT {cells} FROM body))").df()
    frame["line"] = np.arange(header_at + 2, header_at + 2 + len(frame))
    return frame


def _quantity_sql(column: str) -> str:
    """SQL for quantity(), one regular-expression match per cell: the number scaled by its unit
    (NULL for '-' or an unknown unit)."""
    factor = " ".join(f"WHEN '{unit}' THEN {scale!r}" for unit, (scale, _) in UNITS.items())
    parts = f"regexp_extract(trim({column}), '{NUMBER_UNIT}', ['num', 'unit'])"
    return f"(SELECT TRY_CAST(p.num AS DOUBLE) * CASE p.unit {factor} END FROM (SELECT {parts} AS p))"


def _csv_table(lines: list[str], breaks: np.ndarray, header_at: int) -> tuple[pd.DataFrame, dict[str, str]]:
    """A CSV table: header, unit row (when the next line is not data), rows until a blank or '==' line."""
    end = table_end(breaks, header_at + 1)
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
    """kernels rows from a CSV table (text cells, ``units`` from its unit row) or a converted human table."""
    if not csv:
        bad = frame["bad_time"].notna().to_numpy()
        if bad.any():
            i = int(bad.argmax())
            raise ParseError(f"row without a readable Start and Duration ({frame['bad_time'].iloc[i]}); "
                             "file truncated?", line=int(frame["line"].iloc[i]))
        name = frame["name"].fillna("")
        if (name == "").any():
            raise ParseError("row without a kernel name", line=int(frame["line"].iloc[int((name == "").to_numpy().argmax())]))
        out = frame.drop(columns=["bad_time"]).assign(kind=_kind(name), correlation_id=pd.NA)
        for column in ("registers_per_thread", "context", "stream", "correlation_id",
                       "grid_x", "grid_y", "grid_z", "block_x", "block_y", "block_z"):
            out[column] = validate.whole(out[column])
        return out
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
    for axis in ("x", "y", "z"):
        out[f"grid_{axis}"] = validate.whole(get(f"Grid {axis.upper()}"))
        out[f"block_{axis}"] = validate.whole(get(f"Block {axis.upper()}"))
    out["registers_per_thread"] = validate.whole(get("Registers Per Thread"))
    out["static_smem_bytes"] = _scaled(frame, "Static SMem", units, SIZE_B)
    out["dynamic_smem_bytes"] = _scaled(frame, "Dynamic SMem", units, SIZE_B)
    out["size_bytes"] = _scaled(frame, "Size", units, SIZE_B)
    out["throughput_bytes_per_s"] = _scaled(frame, "Throughput", units, RATE_BPS)
    out["correlation_id"] = validate.whole(get("Correlation_ID"))
    clean = lambda s: s.fillna("").astype(str).str.strip().replace({"": None, "-": None})
    out["src_mem_type"] = clean(get("SrcMemType"))
    out["dst_mem_type"] = clean(get("DstMemType"))
    out["device"] = clean(get("Device"))
    out["context"] = validate.whole(get("Context"))
    out["stream"] = validate.whole(get("Stream"))
    return out


def _summary_human(lines: list[str], breaks: np.ndarray, header_at: int) -> pd.DataFrame:
    """The rows of a summary table (small by nature: one per kernel name and API call)."""
    header = lines[header_at]
    with_minmax = bool(re.search(r"\bMin\s+Max\b", header))
    minmax = r"\s+(?P<min>\S+)\s+(?P<max>\S+)" if with_minmax else ""
    row = re.compile(r"^\s*(?:(?P<type>[A-Za-z][A-Za-z ]*?):)?\s*(?P<pct>[\d.]+)%\s+(?P<time>\S+)\s+(?P<calls>\d+)"
                     rf"\s+(?P<avg>\S+){minmax}\s+(?P<name>\S(?:.*\S)?)\s*$")  # name: greedy, linear
    rows = []
    for i in range(header_at + 1, table_end(breaks, header_at + 1)):
        line = lines[i].rstrip("\r")
        if _SUMMARY_HUMAN.match(line):
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
            "total_s": col("Time"), "calls": validate.whole(frame["Calls"]),
            "avg_s": col("Avg"), "min_s": col("Min"), "max_s": col("Max"),
            "name": frame["Name"].astype(str).str.strip()})
    else:
        sec = lambda c: quantity(frame[c])[0] if c in frame else np.nan
        out = pd.DataFrame({
            "line": frame["line"].astype(int),
            "type": frame["type"].str.strip().replace("", None).ffill().fillna(default_type),
            "time_pct": pd.to_numeric(frame["pct"], errors="coerce"),
            "total_s": sec("time"), "calls": validate.whole(frame["calls"]),
            "avg_s": sec("avg"), "min_s": sec("min"), "max_s": sec("max"),
            "name": frame["name"].astype(str).str.strip()})
    bad = out["time_pct"].isna() | out["total_s"].isna()
    if bad.any():
        raise ParseError("summary row without a readable Time(%) and Time", line=int(out.loc[bad.idxmax(), "line"]))
    return out


def parse(ctx: IngestContext) -> Trace:
    """Find every trace, summary and metric table in the file and convert each."""
    cut: list[str] = []
    text = complete_text(ctx.read_text(), cut)
    lines, breaks = layout(text)
    api_banner = set(header_lines(text, _API_BANNER, "API calls:"))
    found = sorted([(i, "trace-csv") for i in header_lines(text, _TRACE_CSV, '"Start","Duration",')]
                   + [(i, "trace") for i in header_lines(text, _TRACE_HUMAN, "Duration")]
                   + [(i, "summary-csv") for i in header_lines(text, _SUMMARY_CSV, '"Time(%)"')]
                   + [(i, "summary") for i in header_lines(text, _SUMMARY_HUMAN, "Time(%)")])
    traces, summaries = [], []
    for i, kind in found:
        default = "API calls" if (i - 1) in api_banner else "GPU activities"
        if kind == "trace-csv":
            frame, units = _csv_table(lines, breaks, i)
            traces.append(_trace_table(frame, units, csv=True))
        elif kind == "trace":
            traces.append(_trace_table(_human_trace(lines, breaks, i), {}, csv=False))
        elif kind == "summary-csv":
            frame, units = _csv_table(lines, breaks, i)
            summaries.append(_summary_table(frame, units, csv=True, default_type=default))
        else:
            summaries.append(_summary_table(_summary_human(lines, breaks, i), {}, csv=False, default_type=default))
    metrics = metric_table(text, lines, breaks)
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
    return Trace(format=NAME, tables=tables, notes=notes, warnings=cut)
