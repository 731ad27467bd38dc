"""nvprof ``--metrics ...`` and ``--events ...`` (human-readable and ``--csv``) → kernel_metrics.

One row per device, kernel and metric with Min/Max/Avg as numbers in base units (throughputs in B/s,
sizes in B, percentages in %, counts and ratios plain) and as printed. Utilisation levels such as
'Idle (0)', 'Low (2)', 'Max (10)' become the number in parentheses with unit 'level'.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from dlwh.errors import ParseError
from dlwh.ingest.trace import IngestContext, Trace

NAME = "nvprof-metrics"

_METRIC_HUMAN = re.compile(r"^\s*Invocations\s+Metric Name\s+Metric Description\s+Min\s+Max\s+Avg\s*$")
_EVENT_HUMAN = re.compile(r"^\s*Invocations\s+Event Name\s+Min\s+Max\s+Avg(?:\s+Total)?\s*$")
_METRIC_CSV = re.compile(r'^"Device","Kernel","Invocations","(?:Metric Name","Metric Description|Event Name)",')
_VALUE = r"(?:[A-Za-z]+ \(\d+\)|\S+)"
_METRIC_ROW = re.compile(rf"^\s*(?P<inv>\d+)\s+(?P<metric>\S+)\s+(?P<desc>.*?)\s+(?P<min>{_VALUE})\s+"
                         rf"(?P<max>{_VALUE})\s+(?P<avg>{_VALUE})\s*$")
_EVENT_ROW = re.compile(r"^\s*(?P<inv>\d+)\s+(?P<metric>\S+)\s+(?P<min>\S+)\s+(?P<max>\S+)\s+(?P<avg>\S+)"
                        r"(?:\s+(?P<total>\S+))?\s*$")
_DEVICE = re.compile(r'^\s*Device "(?P<device>.*)"\s*$')
_KERNEL = re.compile(r"^\s*Kernel: (?P<kernel>.*?)\s*$")
_LEVEL = re.compile(r"^(?P<word>[A-Za-z]+) \((?P<n>\d+)\)$")


def sniff(head: str, path: Path) -> bool:
    """A metric or event result header (human or CSV) from nvprof."""
    return any(p.match(line) for line in head.splitlines() for p in (_METRIC_HUMAN, _EVENT_HUMAN, _METRIC_CSV))


def values(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Printed metric values → (number in base unit, unit). Levels 'Low (1)' → (1, 'level')."""
    from dlwh.ingest.formats.nvprof_trace import quantity

    number, unit = quantity(text)
    level = text.fillna("").astype(str).str.strip().str.extract(_LEVEL)
    is_level = level["n"].notna()
    number = number.where(~is_level, pd.to_numeric(level["n"], errors="coerce"))
    unit = unit.where(~is_level, "level")
    return number, unit


def _human(lines: list[str], header_at: int, events: bool) -> pd.DataFrame:
    rows, device, kernel = [], None, None
    row_re = _EVENT_ROW if events else _METRIC_ROW
    for i in range(header_at + 1, len(lines)):
        line = lines[i]
        if not line.strip() or line.startswith("=="):
            break
        if (m := _DEVICE.match(line)):
            device, kernel = m.group("device"), None
            continue
        if (m := _KERNEL.match(line)):
            kernel = m.group("kernel")
            continue
        m = row_re.match(line)
        if m is None:
            raise ParseError("metric row not of the form 'Invocations Name [Description] Min Max Avg'", line=i + 1)
        if kernel is None:
            raise ParseError("metric row before any 'Kernel:' line", line=i + 1)
        found = m.groupdict()
        rows.append({"line": i + 1, "device": device, "kernel": kernel, "invocations": found["inv"],
                     "metric": found["metric"], "description": found.get("desc"),
                     "min_text": found["min"], "max_text": found["max"], "avg_text": found["avg"]})
    if not rows:
        raise ParseError("no rows under the metric header", line=header_at + 2)
    return pd.DataFrame(rows)


def _csv(lines: list[str], header_at: int) -> pd.DataFrame:
    end = header_at + 1
    while end < len(lines) and lines[end].strip() and not lines[end].startswith("=="):
        end += 1
    try:
        frame = pd.read_csv(io.StringIO("\n".join(lines[header_at:end])), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, ValueError) as err:
        raise ParseError(f"malformed CSV metric table ({str(err).splitlines()[0]})", line=header_at + 1) from None
    if frame.empty:
        raise ParseError("no rows under the metric header", line=header_at + 2)
    metric = "Metric Name" if "Metric Name" in frame else "Event Name"
    return pd.DataFrame({
        "line": np.arange(header_at + 2, header_at + 2 + len(frame)),
        "device": frame["Device"], "kernel": frame["Kernel"], "invocations": frame["Invocations"],
        "metric": frame[metric], "description": frame["Metric Description"] if "Metric Description" in frame else None,
        "min_text": frame["Min"], "max_text": frame["Max"], "avg_text": frame["Avg"]})


def metric_table(lines: list[str]) -> pd.DataFrame | None:
    """Every metric / event table in ``lines`` as kernel_metrics rows (None when there is none)."""
    parts = []
    for i, line in enumerate(lines):
        if _METRIC_CSV.match(line):
            parts.append(_csv(lines, i))
        elif _METRIC_HUMAN.match(line):
            parts.append(_human(lines, i, events=False))
        elif _EVENT_HUMAN.match(line):
            parts.append(_human(lines, i, events=True))
    if not parts:
        return None
    frame = pd.concat(parts, ignore_index=True)
    for col in ("min_text", "max_text", "avg_text"):
        frame[col] = frame[col].astype(str).str.strip()
    out = frame[["line", "device", "kernel", "metric", "description", "min_text", "max_text", "avg_text"]].copy()
    out["invocations"] = pd.to_numeric(frame["invocations"], errors="coerce").astype("Int64")
    out["min_value"], unit_min = values(frame["min_text"])
    out["max_value"], _ = values(frame["max_text"])
    out["avg_value"], unit = values(frame["avg_text"])
    out["unit"] = unit.fillna(unit_min)
    bad = out["avg_value"].isna() & (out["avg_text"] != "") & (out["avg_text"] != "nan")
    if bad.any():
        i = bad.idxmax()
        raise ParseError(f"metric value {out.loc[i, 'avg_text']!r} is not a number with a known unit",
                         line=int(out.loc[i, "line"]))
    out["description"] = out["description"].where(out["description"].notna(), None)
    return out


def parse(ctx: IngestContext) -> Trace:
    """All metric and event tables of the file."""
    text = ctx.read_text()
    lines = text.splitlines()
    if text and not text.endswith("\n") and lines and lines[-1].strip() and not lines[-1].startswith("=="):
        raise ParseError("last line is incomplete (file truncated?)", line=len(lines))
    table = metric_table(lines)
    if table is None:
        raise ParseError("no nvprof metric or event table found")
    kernels = table["kernel"].nunique()
    return Trace(format=NAME, tables={"kernel_metrics": table},
                 notes=[f"{len(table)} metric values for {kernels} kernel{'s' if kernels != 1 else ''}"])
