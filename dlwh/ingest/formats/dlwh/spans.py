"""dlwh spans (spans.jsonl, docs/run-format.md) → the spans table."""

from __future__ import annotations

import json
import re
from pathlib import Path

from dlwh._lazy import pandas as pd

from dlwh.errors import ParseError
import dlwh.ingest.validate as validate
from dlwh.ingest.timeutil import parse_utc
from dlwh.ingest.lines import drop_cut_line
from dlwh.ingest.trace import IngestContext, Trace

NAME = "dlwh-spans"
DESCRIPTION = "spans.jsonl: phases, epochs and steps marked by the training script"
EXTENSIONS = (".jsonl",)
_REQUIRED = ("span_id", "kind", "name", "start_utc", "end_utc")


def sniff(head: str, path: Path) -> bool:
    """JSON lines whose first object has span_id, kind, start_utc and end_utc."""
    first = head.lstrip().split("\n", 1)[0]
    if not first.startswith("{"):
        return False
    try:
        obj = json.loads(first)
    except json.JSONDecodeError:
        return False
    return isinstance(obj, dict) and all(k in obj for k in ("span_id", "kind", "start_utc"))


def parse(ctx: IngestContext) -> Trace:
    """Read the spans; times come from the monotonic clock and the manifest's anchor when both exist."""
    warnings: list[str] = []
    text = drop_cut_line(ctx.read_text(), _json_object, warnings)
    lines = text.splitlines()
    try:
        frame = pd.read_json(pd.io.common.StringIO(text), lines=True, dtype=False) if text.strip() else pd.DataFrame()
    except ValueError as err:
        bad = _first_bad_line(lines)
        at = re.search(r"at position (\d+)", str(err))  # pandas' reader: 'Value is too big! at position N'
        if bad is None and at:
            bad = text.count("\n", 0, int(at.group(1))) + 1
        raise ParseError(f"not valid JSON lines ({str(err).splitlines()[0][:120]})", line=bad) from None
    if frame.empty:
        return Trace(format=NAME, spans=None, notes=["no spans"], warnings=warnings)
    missing = [k for k in _REQUIRED if k not in frame.columns]
    if missing:
        raise ParseError(f"spans lack {', '.join(missing)}")
    incomplete = frame[list(_REQUIRED)].isna().any(axis=1)
    if incomplete.any():
        raise ParseError("span without " + "/".join(_REQUIRED), line=int(incomplete.idxmax()) + 1)
    out = pd.DataFrame({
        "span_id": frame["span_id"].astype(str),
        "parent_id": frame["parent_id"].astype("string") if "parent_id" in frame else pd.Series(pd.NA, index=frame.index, dtype="string"),
        "kind": frame["kind"].astype(str),
        "name": frame["name"].astype(str),
    })
    for edge in ("start", "end"):
        try:
            out[f"{edge}_ts"] = (pd.to_datetime(frame[f"{edge}_utc"], utc=True, format="ISO8601")
                                 .dt.tz_localize(None).astype("datetime64[ns]"))  # ns: the mono times below
        except (ValueError, TypeError) as err:
            raise ParseError(f"bad {edge}_utc time ({err})") from None
        mono = f"{edge}_mono_ns"
        out[mono] = _whole_ns(frame[mono], mono) if mono in frame else pd.Series(pd.NA, index=frame.index, dtype="Int64")
    anchor = (ctx.manifest or {}).get("monotonic_anchor") or {}
    if anchor.get("utc") and anchor.get("monotonic_ns") is not None:
        try:
            base = pd.Timestamp(parse_utc(str(anchor["utc"])))
            ns0 = int(anchor["monotonic_ns"])
            for edge in ("start", "end"):
                mono = out[f"{edge}_mono_ns"]
                has = mono.notna()
                out.loc[has, f"{edge}_ts"] = base + pd.to_timedelta(mono[has].astype("int64") - ns0, unit="ns")
        except (ValueError, TypeError, OverflowError) as err:  # pandas' OutOfBounds* are ValueErrors
            raise ParseError(f"monotonic times do not fit the run's anchor ({str(err).splitlines()[0][:120]})") from None
    limits = validate.limits_of(ctx)
    for edge in ("start", "end"):
        validate.check_times(out[f"{edge}_ts"], frame.index + 1, limits, f"{edge} time")
    if "attrs" in frame:
        out["attrs"] = frame["attrs"].map(lambda a: None if a is None or (isinstance(a, float) and pd.isna(a)) else json.dumps(a))
    else:
        out["attrs"] = None
    backwards = out["end_ts"] < out["start_ts"]
    if backwards.any():
        raise ParseError("span ends before it starts", line=int(backwards.idxmax()) + 1)
    dup = out["span_id"].duplicated()
    if dup.any():
        raise ParseError(f"span_id {out.loc[dup.idxmax(), 'span_id']!r} appears twice", line=int(dup.idxmax()) + 1)
    return Trace(format=NAME, spans=out, warnings=warnings)


def _whole_ns(values: pd.Series, column: str) -> pd.Series:
    """A column of nanosecond counts as Int64; ParseError (with the line) for what is not a whole number
    that fits 64 bits (Infinity, 1e300, 2**64, text)."""
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    bad = values.notna() & ~(numbers.abs() < 2.0**63)
    if bad.any():
        i = int(bad.to_numpy().argmax())
        raise ParseError(f"{column} {str(values.iloc[i])[:40]!r} is not a whole number of nanoseconds",
                         line=int(values.index[i]) + 1)
    exact = pd.to_numeric(values, errors="coerce")
    return (exact.round() if exact.dtype.kind == "f" else exact).astype("Int64")


def _first_bad_line(lines: list[str]) -> int | None:
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                json.loads(line)
            except ValueError:  # JSONDecodeError, and ints over Python's 4,300-digit limit
                return number
    return None


def _json_object(line: str) -> bool:
    """A last line without its newline is complete when it is a whole JSON object."""
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
