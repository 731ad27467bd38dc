"""A dlwh run manifest (run.json, docs/run-format.md) → one runs row and its tags."""

from __future__ import annotations

import json
import re
from pathlib import Path

from dlwh.errors import ParseError
from dlwh.ingest.timeutil import parse_utc
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
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ParseError("run.json is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise ParseError(f"run.json is not valid JSON ({err.msg})", line=err.lineno) from None
    if not isinstance(data, dict) or data.get("format") != "dlwh-run":
        raise ParseError('not a dlwh manifest (needs "format": "dlwh-run")')
    version = data.get("format_version")
    if version != 1:
        raise ParseError(f"manifest format_version {version!r} is not supported (this dlwh reads 1)")
    if not data.get("run_id"):
        raise ParseError("manifest has no run_id")
    return data


def _time(data: dict, key: str):
    value = data.get(key)
    if value in (None, ""):
        return None
    try:
        return parse_utc(str(value))
    except ValueError:
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
