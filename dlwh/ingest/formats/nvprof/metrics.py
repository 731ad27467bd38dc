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
from dlwh._lazy import pandas as pd

from dlwh.errors import ParseError
import dlwh.ingest.validate as validate
from dlwh.ingest.formats.nvprof._common import complete_text, header_lines, layout, quantity, table_end
from dlwh.ingest.trace import IngestContext, Trace

NAME = "nvprof-metrics"
DESCRIPTION = "nvprof --metrics / --events tables (text or --csv): per-kernel metric values"
EXTENSIONS = (".txt", ".log", ".csv", ".profile")

_METRIC_HUMAN = re.compile(r"^[ \t]*Invocations[ \t]+Metric Name[ \t]+Metric Description[ \t]+Min[ \t]+Max[ \t]+Avg[ \t\r]*$",
                           re.MULTILINE)
_EVENT_HUMAN = re.compile(r"^[ \t]*Invocations[ \t]+Event Name[ \t]+Min[ \t]+Max[ \t]+Avg(?:[ \t]+Total)?[ \t\r]*$",
                          re.MULTILINE)
_METRIC_CSV = re.compile(r'^"Device","Kernel","Invocations","(?:Metric Name","Metric Description|Event Name)",',
                         re.MULTILINE)
_VALUE = r"(?:[A-Za-z]+ \(\d+\)|\S+)"
_METRIC_ROW = re.compile(rf"^\s*(?P<inv>\d+)\s+(?P<metric>\S+)\s+(?P<desc>.*?)\s+(?P<min>{_VALUE})\s+"
                         rf"(?P<max>{_VALUE})\s+(?P<avg>{_VALUE})\s*$")
_EVENT_ROW = re.compile(r"^\s*(?P<inv>\d+)\s+(?P<metric>\S+)\s+(?P<min>\S+)\s+(?P<max>\S+)\s+(?P<avg>\S+)"
                        r"(?:\s+(?P<total>\S+))?\s*$")
_DEVICE = re.compile(r'^\s*Device "(?P<device>.*)"\s*$')
_KERNEL = re.compile(r"^\s*Kernel: (?P<kernel>(?:.*\S)?)\s*$")  # greedy to the last non-space: linear
_LEVEL = re.compile(r"^(?P<word>[A-Za-z]+) \((?P<n>\d+)\)$")


def sniff(head: str, path: Path) -> bool:
    """A metric or event result header (human or CSV) from nvprof."""
    return any(p.search(head) for p in (_METRIC_HUMAN, _EVENT_HUMAN, _METRIC_CSV))


def values(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Printed metric values → (number in base unit, unit). Levels 'Low (1)' → (1, 'level')."""
    number, unit = quantity(text)
    level = text.fillna("").astype(str).str.strip().str.extract(_LEVEL)
    is_level = level["n"].notna()
    number = number.where(~is_level, pd.to_numeric(level["n"], errors="coerce"))
    unit = unit.where(~is_level, "level")
    return number, unit


def _human(lines: list[str], breaks: np.ndarray, header_at: int, events: bool) -> pd.DataFrame:
    """Rows under a human metric/event header; 'Device "..."' and 'Kernel: ...' lines name what follows."""
    end = table_end(breaks, header_at + 1)
    sec = pd.Series(lines[header_at + 1:end], dtype=object).str.rstrip("\r")
    if sec.empty:
        raise ParseError("no rows under the metric header", line=header_at + 2)
    number = pd.Series(np.arange(header_at + 2, header_at + 2 + len(sec)))
    device = sec.str.extract(_DEVICE)["device"]
    kernel = sec.str.extract(_KERNEL)["kernel"]
    block = device.notna().cumsum()
    kernel_in_force = kernel.groupby(block).ffill()
    # runs of spaces become one first: the row pattern's lazy description against its '\s+' separators
    # would otherwise backtrack polynomially on a long run of spaces (3,000 spaces: 11 minutes)
    rows = sec.str.replace(r"\s+", " ", regex=True).str.extract(_EVENT_ROW if events else _METRIC_ROW)
    is_row = rows["inv"].notna() & device.isna() & kernel.isna()
    unknown = ~is_row & device.isna() & kernel.isna()
    if unknown.any():
        i = int(unknown.to_numpy().argmax())
        raise ParseError("metric row not of the form 'Invocations Name [Description] Min Max Avg'", line=int(number[i]))
    orphan = is_row & kernel_in_force.isna()
    if orphan.any():
        raise ParseError("metric row before any 'Kernel:' line", line=int(number[int(orphan.to_numpy().argmax())]))
    if not is_row.any():
        raise ParseError("no rows under the metric header", line=header_at + 2)
    return pd.DataFrame({
        "line": number[is_row].to_numpy(), "device": device.ffill()[is_row].to_numpy(),
        "kernel": kernel_in_force[is_row].to_numpy(), "invocations": rows.loc[is_row, "inv"].to_numpy(),
        "metric": rows.loc[is_row, "metric"].to_numpy(),
        "description": rows.loc[is_row, "desc"].to_numpy() if "desc" in rows else None,
        "min_text": rows.loc[is_row, "min"].to_numpy(), "max_text": rows.loc[is_row, "max"].to_numpy(),
        "avg_text": rows.loc[is_row, "avg"].to_numpy()})


def _csv(lines: list[str], breaks: np.ndarray, header_at: int) -> pd.DataFrame:
    end = table_end(breaks, header_at + 1)
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


def metric_table(text: str, lines: list[str] | None = None, breaks: np.ndarray | None = None) -> pd.DataFrame | None:
    """Every metric / event table in ``text`` as kernel_metrics rows (None when there is none)."""
    if lines is None or breaks is None:
        lines, breaks = layout(text)
    found = sorted([(i, "csv") for i in header_lines(text, _METRIC_CSV, '"Device","Kernel","Invocations"')]
                   + [(i, "metric") for i in header_lines(text, _METRIC_HUMAN, "Invocations")]
                   + [(i, "event") for i in header_lines(text, _EVENT_HUMAN, "Invocations")])
    parts = []
    for i, kind in found:
        if kind == "csv":
            parts.append(_csv(lines, breaks, i))
        else:
            parts.append(_human(lines, breaks, i, events=(kind == "event")))
    if not parts:
        return None
    frame = pd.concat(parts, ignore_index=True)
    for col in ("min_text", "max_text", "avg_text"):
        frame[col] = frame[col].astype(str).str.strip()
    out = frame[["line", "device", "kernel", "metric", "description", "min_text", "max_text", "avg_text"]].copy()
    out["invocations"] = validate.whole(frame["invocations"])
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
    cut: list[str] = []
    text = complete_text(ctx.read_text(), cut)
    table = metric_table(text)
    if table is None:
        raise ParseError("no nvprof metric or event table found")
    kernels = table["kernel"].nunique()
    return Trace(format=NAME, tables={"kernel_metrics": table},
                 notes=[f"{len(table)} metric values for {kernels} kernel{'s' if kernels != 1 else ''}"], warnings=cut)
