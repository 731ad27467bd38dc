"""A dlwh run manifest (run.json, docs/run-format.md) → one runs row and its tags."""

from __future__ import annotations

import json
import re
from pathlib import Path

from dlwh.errors import ParseError, UsageError
from dlwh.ingest.timeutil import parse_utc, zone_from_name
from dlwh.ingest.trace import IngestContext, RunInfo, Trace

NAME = "dlwh-manifest"
DESCRIPTION = "run.json: the run's id, host, times, command, zone and tags"
EXTENSIONS = ("run.json",)
_FORMAT_KEY = re.compile(r'"format"\s*:\s*"dlwh-run"')


def sniff(head: str, path: Path) -> bool:
    """A JSON object whose "format" is "dlwh-run"."""
    return head.lstrip().startswith("{") and bool(_FORMAT_KEY.search(head))


def load_manifest(path: Path) -> dict:
    """Read and check a run.json; raises ParseError with the reason."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise ParseError("run.json is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise ParseError(f"run.json is not valid JSON ({err.msg})", line=err.lineno) from None
    except ValueError as err:  # NaN / Infinity, or an integer over Python's 4,300-digit limit
        raise ParseError(f"run.json holds a value that is not a plain number ({str(err).splitlines()[0][:100]})") from None
    if not isinstance(data, dict) or data.get("format") != "dlwh-run":
        raise ParseError('not a dlwh manifest (needs "format": "dlwh-run")')
    version = data.get("format_version")
    if version != 1:
        raise ParseError(f"manifest format_version {version!r} is not supported (this dlwh reads 1)")
    if not data.get("run_id"):
        raise ParseError("manifest has no run_id")
    _check_types(data)
    return data


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


# key -> the JSON types it may hold (None: may be absent or null)
_TYPES: dict[str, tuple[type, ...]] = {
    "run_id": (str, int), "host": (str,), "start_utc": (str,), "end_utc": (str,), "command": (str, list),
    "exit_code": (int,), "timezone": (str,), "tags": (dict,), "monotonic_anchor": (dict,), "gpus": (list,),
}


def _check_types(data: dict) -> None:
    """Every field dlwh reads has the JSON type docs/run-format.md gives it; ParseError otherwise."""
    for key, types in _TYPES.items():
        value = data.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, types):
            names = " or ".join({"str": "text", "int": "a whole number", "list": "a list", "dict": "an object"}[t.__name__]
                                for t in types)
            raise ParseError(f"manifest {key} is {json.dumps(value)[:40]}, not {names}")
    if isinstance(data.get("exit_code"), int) and abs(data["exit_code"]) >= 2**31:
        raise ParseError(f"manifest exit_code {str(data['exit_code'])[:40]} is not an exit code")
    if data.get("timezone"):
        try:
            zone_from_name(data["timezone"])
        except UsageError:
            raise ParseError(f"manifest timezone {data['timezone'][:60]!r} is not a time zone "
                             "(an IANA name such as Europe/Berlin, or an offset such as +01:00)") from None
    anchor = data.get("monotonic_anchor") or {}
    if anchor:
        ns = anchor.get("monotonic_ns")
        if ns is not None and (isinstance(ns, bool) or not isinstance(ns, int) or abs(ns) >= 2**63):
            raise ParseError(f"manifest monotonic_anchor.monotonic_ns {json.dumps(ns)[:40]} is not a whole number of ns")
        if anchor.get("utc") is not None and not isinstance(anchor.get("utc"), str):
            raise ParseError("manifest monotonic_anchor.utc is not an ISO 8601 time")


def _time(data: dict, key: str):
    value = data.get(key)
    if value in (None, ""):
        return None
    try:
        return parse_utc(str(value))
    except (ValueError, OverflowError):
        raise ParseError(f"manifest {key} {value!r} is not an ISO 8601 time") from None


def parse(ctx: IngestContext) -> Trace:
    """The manifest as a RunInfo (tags as strings)."""
    data = load_manifest(ctx.path)
    command = data.get("command")
    if isinstance(command, list):
        import shlex

        command = shlex.join(str(part) for part in command)
    tags = {str(k): ("" if v is None else str(v)) for k, v in (data.get("tags") or {}).items()}
    run = RunInfo(
        run_id=str(data["run_id"]),
        host=data.get("host"),
        start_ts=_time(data, "start_utc"),
        end_ts=_time(data, "end_utc"),
        command=command,
        exit_code=data.get("exit_code"),
        timezone=data.get("timezone"),
        manifest_json=json.dumps(data),
        tags=tags,
    )
    trace = Trace(format=NAME, run=run)
    if run.end_ts is None:
        trace.warnings.append("manifest has no end_utc (the recording did not finish cleanly)")
    return trace
