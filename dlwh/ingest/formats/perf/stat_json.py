"""``perf stat -j`` / ``--json`` output (one JSON object per line) → counters and RAPL samples.

Counter objects have ``"event"`` and ``"counter-value"`` (a string such as ``"225904.823297"``, or
``"<not counted>"``/``"<not supported>"``; a number is accepted too), and may have ``"unit"``,
``"event-runtime"`` (ns), ``"pcnt-running"``, ``"metric-value"``, ``"metric-unit"``, ``"interval"``
(``-I``: end of the interval in seconds since perf started) and, in aggregation modes, one of
``"cpu"`` (``-A``: ``"3"`` becomes ``CPU3``), ``"socket"``, ``"die"``, ``"core"``, ``"node"``,
``"cache"``, ``"cluster"``, ``"thread"`` (kept as printed: ``S0``, ``S0-D0-C1``, ...). Objects without an
event (extra metric lines, ``"metricgroup"`` headers) are skipped; ``#`` lines are comments (a
``# started on`` line starts and anchors a run). Runs, anchoring and RAPL energy → samples: see
``_perf_common`` (totals without ``-I`` get their run length from cpu-clock ÷ 'CPUs utilized', else
the shortest ``event-runtime``). Read with pandas' JSON-lines reader, handled column-wise.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from dlwh._lazy import pandas as pd

from dlwh.errors import ParseError
import dlwh.ingest.validate as validate
from dlwh.ingest.formats.perf import _common as common
from dlwh.ingest.trace import IngestContext, Trace

NAME = "perf-stat-json"
DESCRIPTION = "perf stat -j / --json, with or without -I: counters and RAPL energy"
EXTENSIONS = (".json", ".jsonl")
_LABEL_KEYS = ("socket", "die", "core", "node", "cache", "cluster", "thread")


def sniff(head: str, path: Path) -> bool:
    """JSON-object lines (besides '#' comments), one of the first twenty with a "counter-value" key."""
    lines = head.split("\n")
    if not head.endswith("\n"):
        lines = lines[:-1]
    seen = 0
    for line in lines:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if not text.startswith("{"):
            return False
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            return False
        if not isinstance(obj, dict):
            return False
        if "counter-value" in obj:
            return True
        seen += 1
        if seen >= 20:
            return False
    return False


def parse(ctx: IngestContext) -> Trace:
    """Read the JSON lines in one go; event objects become rows for _perf_common."""
    cut: list[str] = []
    text = common.complete_text(ctx.read_text(), cut, _json_object)
    lines, stripped, comment = common.split_lines(text)
    data = ~comment & stripped.ne("")
    if not data.any():
        raise ParseError("no JSON objects in this perf stat -j file")
    not_object = data & ~stripped.str.startswith("{")
    if not_object.any():
        at = int(not_object.idxmax())
        raise ParseError(f"not a JSON object: {stripped[at][:60]!r}", line=at + 1)
    starts = common.started_on_in_text(text)
    try:
        frame = pd.read_json(io.StringIO("\n".join(stripped[data])), lines=True, dtype=False,
                             precise_float=True)
    except ValueError as err:
        raise ParseError(f"not valid JSON lines ({err})", line=_first_bad_line(lines)) from None
    if len(frame) != int(data.sum()):
        raise ParseError("not one JSON object per line", line=_first_bad_line(lines))
    frame.index = lines.index[data]
    if "event" not in frame.columns or "counter-value" not in frame.columns:
        raise ParseError('no counter objects (with "event" and "counter-value") in this perf stat -j file')
    event = frame["event"].astype(object).where(frame["event"].notna(), "").astype(str).str.strip()
    has_event = event.ne("")
    raw_value = frame["counter-value"].astype(object).where(frame["counter-value"].notna(), "").astype(str)
    orphan = ~has_event & raw_value.ne("")
    if orphan.any():
        raise ParseError('"counter-value" without an "event"', line=int(orphan.idxmax()) + 1)
    if not has_event.any():
        raise ParseError('no counter objects (with "event" and "counter-value") in this perf stat -j file')
    frame, event, raw_value = frame[has_event], event[has_event], raw_value[has_event].str.strip()
    numbers = pd.to_numeric(raw_value.where(raw_value.ne("")), errors="coerce")
    reason, value = common.reasons_and_values(raw_value, numbers)
    bad = numbers.isna() & reason.isna()
    if bad.any():
        at = bad.idxmax()
        raise ParseError(f'"counter-value" {raw_value[at]!r} is not a number', line=int(at) + 1)
    line_no = (frame.index + 1).to_numpy()

    def column(key: str) -> pd.Series:
        return frame[key] if key in frame.columns else pd.Series(np.nan, index=frame.index, dtype=object)

    def number(key: str) -> np.ndarray:
        return pd.to_numeric(column(key), errors="coerce").to_numpy(dtype="float64")

    def text_col(key: str) -> np.ndarray:
        col = column(key)
        col = col.astype(object).where(col.notna(), None)
        return col.where(col.astype(str).str.strip().ne(""), None).to_numpy()

    cpu = column("cpu")  # perf prints "cpu" : "3"; a number is accepted too
    cpu_no = pd.to_numeric(cpu, errors="coerce")
    cpu_text = validate.whole(cpu_no).astype(str).where(cpu_no.notna(), cpu.astype(str).str.strip())
    label = ("CPU" + cpu_text).where(cpu.notna(), None)
    for key in _LABEL_KEYS:
        col = column(key)
        label = label.where(label.notna(), col.astype(object).where(col.notna(), None))
    rows = pd.DataFrame({
        "line": line_no,
        "seg": common.segments(line_no, starts["line"].to_numpy()),
        "t": number("interval"),
        "cpu": label.astype(object).where(label.notna(), None).to_numpy(),
        "value": value.to_numpy(dtype="float64"),
        "reason": reason.to_numpy(),
        "unit": text_col("unit"),
        "event": event.to_numpy(),
        "run_time_ns": number("event-runtime"),
        "enabled_pct": number("pcnt-running"),
        "metric_value": number("metric-value"),
        "metric_unit": text_col("metric-unit"),
    })
    return common.build_trace(ctx, NAME, rows, starts=starts, split_repeats=True, warnings=cut)


def _json_object(line: str) -> bool:
    """A last line without its newline is complete when it is a whole JSON object (or a comment)."""
    if line.lstrip().startswith("#"):
        return True
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _first_bad_line(lines: pd.Series) -> int | None:
    """1-based number of the first line that is not a JSON object (error path only)."""
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if text and not text.startswith("#"):
            try:
                if not isinstance(json.loads(text), dict):
                    return number
            except json.JSONDecodeError:
                return number
    return None
