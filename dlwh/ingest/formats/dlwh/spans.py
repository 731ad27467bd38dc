"""dlwh spans (spans.jsonl, docs/run-format.md) → the spans table."""

from __future__ import annotations

import json
from pathlib import Path

from dlwh._lazy import pandas as pd

from dlwh.errors import ParseError
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
        raise ParseError(f"not valid JSON lines ({err})", line=bad) from None
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
        out[mono] = pd.to_numeric(frame[mono], errors="coerce").astype("Int64") if mono in frame else pd.Series(pd.NA, index=frame.index, dtype="Int64")
    anchor = (ctx.manifest or {}).get("monotonic_anchor") or {}
    if anchor.get("utc") and anchor.get("monotonic_ns") is not None:
        base = pd.Timestamp(parse_utc(anchor["utc"]))
        ns0 = int(anchor["monotonic_ns"])
        for edge in ("start", "end"):
            mono = out[f"{edge}_mono_ns"]
            has = mono.notna()
            out.loc[has, f"{edge}_ts"] = base + pd.to_timedelta(mono[has].astype("int64") - ns0, unit="ns")
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


def _first_bad_line(lines: list[str]) -> int | None:
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                json.loads(line)
            except json.JSONDecodeError:
                return number
    return None


def _json_object(line: str) -> bool:
    """A last line without its newline is complete when it is a whole JSON object."""
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
