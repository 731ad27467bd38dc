"""What a format parser receives (IngestContext) and returns (Trace).

A parser turns one file into normalised tables. Each table is a pandas DataFrame or a DuckDB
relation built on ``ctx.con`` (for large CSVs read by DuckDB itself); the loader inserts them.

Columns a parser provides (the loader adds run_id, file_sha256 and the global sensor_id):
- sensors:  sensor_key, kind, name, device_index, device_uuid, device_name, tool
- samples:  sensor_key, ts (UTC, naive datetime64), metric, unit, value, duration_s
- counters: perf_run, ts, interval_s, cpu, pmu, event, value, unit, reason, run_time_ns, enabled_pct
- spans:    span_id, parent_id, kind, name, start_ts, end_ts, start_mono_ns, end_mono_ns, attrs (JSON text)
- scratch:  temporary objects the relations read from ('TABLE name', 'VIEW name'), in the order the loader
            drops them after inserting (views first).
- tables:   other warehouse tables by name (e.g. kernels); each must have a file_sha256 column in the
            warehouse, which the loader fills.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, Protocol, Union, runtime_checkable

import duckdb
from dlwh._lazy import pandas as pd

Table = Union["pd.DataFrame", duckdb.DuckDBPyRelation]


@dataclass
class RunInfo:
    """A runs row (from a manifest). Times are naive UTC datetimes."""

    run_id: str
    host: str | None = None
    start_ts: datetime | None = None
    end_ts: datetime | None = None
    command: str | None = None
    exit_code: int | None = None
    timezone: str | None = None
    manifest_json: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class IngestContext:
    """Everything a parser may need besides the file's bytes."""

    path: Path
    con: duckdb.DuckDBPyConnection
    run_id: str
    tz: tzinfo
    tz_name: str                     # IANA name or a fixed offset such as 'UTC+01:00'
    tz_source: str                   # 'run.json', '--tz', 'local zone'
    start_utc: datetime | None = None  # anchor for relative-time traces (naive UTC)
    start_source: str | None = None
    manifest: dict[str, Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    data: bytes | None = field(default=None, repr=False)  # the file's bytes if the loader read them already
    limits: Any = None  # dlwh.ingest.validate.Limits: what values are plausible (None: the defaults)

    def read_bytes(self) -> bytes:
        """The whole file's bytes (read once: the loader keeps what it hashed, if not too large)."""
        return self.data if self.data is not None else self.path.read_bytes()

    def read_text(self) -> str:
        """The whole file as text (UTF-8, undecodable bytes replaced)."""
        return self.read_bytes().decode("utf-8", errors="replace")


@dataclass
class Trace:
    """The normalised content of one file."""

    format: str
    sensors: pd.DataFrame | None = None
    samples: Table | None = None
    counters: Table | None = None
    spans: Table | None = None
    run: RunInfo | None = None
    tables: dict[str, Table] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    scratch: list[str] = field(default_factory=list)  # 'TABLE t' / 'VIEW v' behind the relations, dropped after insert


@runtime_checkable
class FormatModule(Protocol):
    """What every format module (``dlwh/ingest/formats/<tool>/<format>.py``) provides.

    The tool's package (``formats/<tool>/__init__.py``) names the tool in ``TOOL``; the registry
    (``FORMAT_MODULES`` in ``dlwh/ingest/formats/__init__.py``) lists the module, one line per format.
    """

    NAME: str                       # the format's name, stored in files.format; unique
    DESCRIPTION: str                # one line for docs/formats.md: what the file is and what it gives
    EXTENSIONS: tuple[str, ...]     # usual file names/endings (informative: detection is by content)

    def sniff(self, head: str, path: Path) -> bool:
        """True if ``head`` (the first 64 KiB as text) is this format. Never raises; cheap."""
        ...

    def parse(self, ctx: IngestContext) -> Trace:
        """The file's content as normalised tables; ParseError (with the line) for what it cannot read."""
        ...


def drop_scratch(con: duckdb.DuckDBPyConnection, entries: list[str]) -> None:
    """Drop temporary objects named as in ``Trace.scratch`` ('TABLE name' / 'VIEW name'), in that order.

    Never raises: inside a transaction that an error has aborted, DuckDB refuses every statement, and
    the error to report is the first one (objects created in that transaction go with its rollback).
    """
    for entry in entries:
        kind, name = entry.split(" ", 1)
        try:
            con.execute(f'DROP {"VIEW" if kind == "VIEW" else "TABLE"} IF EXISTS "{name}"')
        except duckdb.Error:
            pass
