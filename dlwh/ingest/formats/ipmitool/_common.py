"""What ipmitool's dcmi and sensor parsers share: the file's lines, dlwh's collector timestamps, ipmitool's
error lines and the poll interval from run.json."""

from __future__ import annotations

from dlwh._lazy import pandas as pd

from dlwh.errors import ParseError
from dlwh.ingest.trace import IngestContext

COLLECTOR_TS_RE = r"^\s*#\s*timestamp_utc\s*:\s*(?P<cts>.*?)\s*$"
# what ipmitool prints (to stderr, often redirected into the log) when a poll fails
IPMITOOL_ERROR_RE = r"(?i)(?:error|fail|unable|could not|timeout|timed out|no response|invalid|insufficient)"


def text_lines(ctx: IngestContext) -> pd.Series:
    """The file's lines (no line ends) as a Series indexed 0..n-1; ParseError if the last is cut off."""
    text = ctx.read_text()
    if not text.strip():
        raise ParseError("the file is empty")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    elif lines[-1].strip():
        raise ParseError("last line is incomplete (file truncated?); remove it or record again", line=len(lines))
    return pd.Series(lines, dtype=object).str.rstrip("\r")


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
