"""What ipmitool's dcmi and sensor parsers share: the file's lines, dlwh's collector timestamps, ipmitool's
error lines and the poll interval from run.json."""

from __future__ import annotations

import re
from typing import Callable

from dlwh._lazy import pandas as pd

from dlwh.errors import ParseError
from dlwh.ingest.lines import drop_cut_line
from dlwh.ingest.trace import IngestContext

COLLECTOR_TS_RE = r"^\s*#\s*timestamp_utc\s*:\s*(?P<cts>.*?)\s*$"
# what ipmitool prints (to stderr, often redirected into the log) when a poll fails
IPMITOOL_ERROR_RE = r"(?i)(?:error|fail|unable|could not|timeout|timed out|no response|invalid|insufficient)"
_ERROR = re.compile(IPMITOOL_ERROR_RE)


def text_lines(ctx: IngestContext, is_complete: Callable[[str], bool], warnings: list[str]) -> pd.Series:
    """The file's lines (no line ends) as a Series indexed 0..n-1; a last line without its newline that
    ``is_complete`` rejects was cut mid-write: left out, with a warning."""
    text = ctx.read_text()
    if not text.strip():
        raise ParseError("the file is empty")
    lines = drop_cut_line(text, is_complete, warnings).split("\n")
    if lines[-1] == "":
        lines.pop()
    return pd.Series(lines, dtype=object).str.rstrip("\r")


def is_error_line(line: str) -> bool:
    """A line ipmitool prints when a poll fails ('Unable to send command: ...'), not a record."""
    return _ERROR.search(line) is not None


def collector_times(cts: pd.Series, lines_no: pd.Series) -> pd.Series:
    """``# timestamp_utc:`` values → naive UTC datetimes; ParseError naming the first bad line."""
    parsed = pd.to_datetime(cts, utc=True, format="ISO8601", errors="coerce").dt.tz_localize(None)
    bad = cts.notna() & parsed.isna()
    if bad.any():
        first = bad.idxmax()
        raise ParseError(f"'# timestamp_utc: {cts[first]}' is not an ISO 8601 UTC time", line=int(lines_no[first]))
    return parsed


def manifest_interval_s(ctx: IngestContext, source: str) -> float | None:
    """The poll interval (s) from format option interval_s, else the manifest's sources[source].interval_ms."""
    value = ctx.options.get("interval_s")
    if value not in (None, ""):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ParseError(f"format option interval_s={value!r} is not a number of seconds") from None
    for entry in (ctx.manifest or {}).get("sources") or []:
        if isinstance(entry, dict) and entry.get("name") == source and entry.get("interval_ms"):
            return float(entry["interval_ms"]) / 1000.0
    return None
