"""Load trace files into the warehouse: one transaction per file, keyed by sha256.

For each file: hash it; if this path (or another path) already holds the same bytes, it is
unchanged. Otherwise detect its format by content, parse it, and in one transaction delete what
an earlier version of the same path loaded, insert the new rows, and record the load in ``files``.
A file that fails leaves the warehouse exactly as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

import duckdb
from dlwh._lazy import pandas as pd

from dlwh.errors import DlwhError, ParseError
from dlwh.ingest.failure import describe, describe_duckdb_error  # noqa: F401  (describe_duckdb_error: API)
from dlwh.ingest import formats
from dlwh.ingest.formats.dlwh.manifest import load_manifest
from dlwh.ingest.timeutil import local_zone, parse_utc, to_naive_utc, zone_from_name, zone_name
from dlwh.ingest.trace import IngestContext, RunInfo, Table, Trace, drop_scratch
from dlwh.ingest import validate
from dlwh.ingest.validate import Limits
from dlwh.warehouse.db import transaction

HEAD_BYTES = 64 * 1024
MANIFEST_NAME = "run.json"
_IGNORED_SUFFIXES = (".duckdb", ".duckdb.wal", ".wal", ".pyc")


@dataclass
class IngestOptions:
    """What the user may say about the files (all optional)."""

    tz: str | None = None             # zone of local timestamps when no manifest says it
    start: str | None = None          # anchor (ISO time; naive = local zone) for relative-time traces
    run_id: str | None = None         # run id for loose files (default: '<stem>-<sha8>')
    tags: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False
    format_options: dict[str, object] = field(default_factory=dict)  # e.g. {'fields': 'index,power.draw'}
    limits: Limits = field(default_factory=Limits.from_env)  # what values are plausible (dlwh.ingest.validate)

    def reading_options(self) -> dict[str, object]:
        """The options given that change how a file reads (stored in files.options), by their CLI names."""
        given = {"tz": self.tz, "start": self.start, "run_id": self.run_id, **self.format_options}
        return {key: value for key, value in sorted(given.items()) if value is not None}


@dataclass
class FileResult:
    """The outcome of one file: loaded, unchanged, skipped, failed or would-load (dry run)."""

    path: Path
    outcome: str
    format: str | None = None
    rows: int = 0
    run_id: str | None = None
    message: str = ""
    line: int | None = None
    internal: bool = False            # failed on an unexpected exception: a bug in dlwh

    def describe(self) -> str:
        """One line for people: path[:line]: outcome (format, rows) message."""
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        bits = [b for b in (self.format, f"{self.rows} rows" if self.rows else "") if b]
        extra = f" ({', '.join(bits)})" if bits else ""
        return f"{where}: {self.outcome}{extra}{': ' + self.message if self.message else ''}"


def discover(paths: Iterable[str | os.PathLike[str]]) -> list[tuple[Path, bool]]:
    """Files under ``paths`` (recursive) as (path, named_explicitly); manifests first.

    Raises DlwhError for a path that does not exist.
    """
    found: dict[Path, bool] = {}
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise DlwhError(f"no such file or folder: {path}; check the path")
        if path.is_file():
            found[path.resolve()] = True
            continue
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if name.startswith(".") or name.endswith(_IGNORED_SUFFIXES):
                    continue
                found.setdefault((Path(root) / name).resolve(), False)
    # Files in a run directory need their manifest loaded too (it creates the run row).
    for path in list(found):
        manifest = path.parent / MANIFEST_NAME
        if manifest.is_file():
            found.setdefault(manifest.resolve(), False)
    return sorted(found.items(), key=lambda item: (item[0].name != MANIFEST_NAME, str(item[0])))


KEEP_BYTES = 256 * 1024 * 1024  # files up to this size are read once: hashed, then handed to the parser


def sha256_of(path: Path) -> str:
    """Hex sha256 of the file's bytes."""
    return _hash_and_keep(path, 0)[0]


def _hash_and_keep(path: Path, keep_up_to: int) -> tuple[str, bytes | None]:
    """(hex sha256 of the file, its bytes if it is no larger than ``keep_up_to``, else None)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        if path.stat().st_size <= keep_up_to:
            data = handle.read()
            digest.update(data)
            return digest.hexdigest(), data
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest(), None


def _read_head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(HEAD_BYTES)


def _looks_binary(head: bytes) -> bool:
    if b"\x00" in head:
        # powermetrics -f plist separates its XML documents with NUL bytes: that is still text
        parts = [part.strip() for part in head.split(b"\x00")]
        if not any(parts) or not all(part.startswith((b"<?xml", b"<plist")) for part in parts if part):
            return True
        head = head.replace(b"\x00", b"")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        # a multi-byte character cut at the end of the head is fine
        return err.start < len(head) - 4
    return False


def _data_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Warehouse tables holding rows owned by a file (they have a file_sha256 column)."""
    rows = con.execute(
        "SELECT DISTINCT c.table_name FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_schema, table_name) "
        "WHERE c.column_name = 'file_sha256' AND t.table_type = 'BASE TABLE' AND t.table_schema = 'main' "
        "ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def _table_types(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    """{column: DuckDB type} of a warehouse table, in column order."""
    return {r[0]: r[1] for r in con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? "
        "AND table_schema = 'main' ORDER BY ordinal_position", [table]).fetchall()}


class _Loader:
    """Holds the connection and options across files of one ingest call."""

    def __init__(self, con: duckdb.DuckDBPyConnection, options: IngestOptions) -> None:
        self.con = con
        self.options = options
        self.tables = _data_tables(con)
        self._manifests: dict[Path, dict | None] = {}

    # -- context ---------------------------------------------------------------------------
    def _manifest_for(self, path: Path) -> dict | None:
        folder = path.parent
        if folder not in self._manifests:
            candidate = folder / MANIFEST_NAME
            try:
                self._manifests[folder] = load_manifest(candidate) if candidate.is_file() else None
            except ParseError:
                self._manifests[folder] = None
        return self._manifests[folder]

    def context(self, path: Path, sha: str) -> IngestContext:
        manifest = self._manifest_for(path)
        if manifest and manifest.get("timezone"):
            tz, tz_name, tz_source = zone_from_name(manifest["timezone"]), manifest["timezone"], "run.json"
        elif self.options.tz:
            tz, tz_name, tz_source = zone_from_name(self.options.tz), self.options.tz, "--tz"
        else:
            tz, tz_name = local_zone()
            tz_source = "this machine's local zone; pass --tz to change"
        start, start_source = None, None
        if self.options.start:
            try:
                start = to_naive_utc(datetime.fromisoformat(self.options.start.replace("Z", "+00:00")), tz)
            except (ValueError, OverflowError):
                raise DlwhError(f"--start {self.options.start!r} is not an ISO 8601 time such as 2024-10-30T18:42:33") from None
            start_source = "--start"
        elif manifest and manifest.get("start_utc"):
            try:
                start, start_source = parse_utc(str(manifest["start_utc"])), "run.json"
            except (ValueError, OverflowError):
                raise ParseError(f"the run.json beside it has start_utc {str(manifest['start_utc'])[:40]!r}, "
                                 "not an ISO 8601 time") from None
        if manifest:
            run_id = str(manifest["run_id"])
        else:
            run_id = self.options.run_id or f"{path.stem}-{sha[:8]}"
        return IngestContext(
            path=path, con=self.con, run_id=run_id, tz=tz, tz_name=tz_name, tz_source=tz_source,
            start_utc=start, start_source=start_source, manifest=manifest,
            options=dict(self.options.format_options), limits=self.options.limits,
        )

    # -- one file --------------------------------------------------------------------------
    def ingest(self, path: Path, explicit: bool) -> FileResult:
        size = path.stat().st_size
        if size == 0:
            return FileResult(path, "failed" if explicit else "skipped", message="empty file")
        head = _read_head(path)
        if _looks_binary(head):
            return FileResult(path, "failed" if explicit else "skipped",
                              message="binary data, not a trace format dlwh knows")
        module = formats.detect(head.decode("utf-8", errors="replace"), path)
        if module is None:
            return FileResult(path, "failed" if explicit else "skipped",
                              message="not a trace format dlwh knows (see docs/formats.md)")
        sha, data = _hash_and_keep(path, KEEP_BYTES)
        known = self.con.execute("SELECT path, options FROM files WHERE sha256 = ? ORDER BY path = ? DESC LIMIT 1",
                                 [sha, str(path)]).fetchone()
        given = self.options.reading_options()
        reload_note = ""
        if known and given and json.loads(known[1] or "{}") != given:
            # the same bytes, read another way (another --start, --tz, --gpu, ...): load them again
            reload_note = f"reloaded with {_describe_options(given)} (was {_describe_options(json.loads(known[1] or '{}'))})"
            known = None
        if known:
            note = "" if known[0] == str(path) else f"same content as {known[0]}"
            if self.options.tags and not self.options.dry_run and self._tag_file_run(sha):
                note = "; ".join(x for x in (note, "tags applied to its run") if x)
            return FileResult(path, "unchanged", module.NAME, message=note)
        previous = self.con.execute("SELECT sha256 FROM files WHERE path = ?", [str(path)]).fetchone()
        replaced = "replaces an earlier version; " if previous and not reload_note else ""
        if reload_note:
            previous = (sha,)  # what this content loaded before goes
        ctx = self.context(path, sha)
        ctx.data = data
        trace: Trace | None = None
        try:
            with transaction(self.con) as tx:  # ROLLBACK first on any error: cleanup cannot hide the cause
                trace = module.parse(ctx)
                if previous:
                    self._delete_file_rows(previous[0])
                rows = self._insert(trace, ctx, sha)  # every table passes dlwh.ingest.validate on its way in
                drop_scratch(self.con, trace.scratch)
                if rows == 0 and trace.run is None:
                    trace.warnings.append("no readings in this file")
                message = "; ".join(trace.notes + trace.warnings)
                outcome = trace_outcome(trace)
                if reload_note:
                    message = "; ".join(x for x in (reload_note, message) if x)
                self.con.execute(
                    "INSERT OR REPLACE INTO files (path, sha256, size_bytes, format, run_id, rows_loaded, "
                    "ingested_at, outcome, message, options) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [str(path), sha, size, trace.format, ctx.run_id, rows,
                     datetime.now(timezone.utc).replace(tzinfo=None), outcome, message or None,
                     json.dumps(given, sort_keys=True) if given else None],
                )
                if self.options.dry_run:
                    tx.rollback()
                    self._cleanup(trace)
                    return FileResult(path, "would-load", trace.format, rows, ctx.run_id, replaced + message)
        except BaseException as err:
            self._cleanup(trace)  # after the rollback
            if not isinstance(err, Exception):
                raise  # KeyboardInterrupt, SystemExit: stop the whole ingest (the file changed nothing)
            return failure(path, err, module.NAME)
        return FileResult(path, trace_outcome(trace), trace.format, rows, ctx.run_id,
                          replaced.replace("replaces", "replaced") + message)

    def _cleanup(self, trace: Trace | None) -> None:
        """Drop what the parser and the loader left after a rollback (never raises)."""
        self._unstage()
        if trace is not None:
            drop_scratch(self.con, trace.scratch)

    def _tag_file_run(self, sha: str) -> bool:
        """``--tag`` on a file loaded before: set the tags on the run it loaded into (True if it has one)."""
        row = self.con.execute("SELECT f.run_id FROM files f JOIN runs r USING (run_id) WHERE f.sha256 = ? "
                               "LIMIT 1", [sha]).fetchall()
        if not row:
            return False
        self.con.executemany("INSERT OR REPLACE INTO run_tags (run_id, key, value, file_sha256) VALUES (?, ?, ?, ?)",
                             [(row[0][0], key, value, sha) for key, value in self.options.tags.items()])
        return True

    def _delete_file_rows(self, sha: str) -> None:
        for table in self.tables:
            self.con.execute(f'DELETE FROM "{table}" WHERE file_sha256 = ?', [sha])

    # -- inserting -------------------------------------------------------------------------
    def _stage(self, table: Table) -> None:
        if isinstance(table, duckdb.DuckDBPyRelation):
            table.create_view("_dlwh_stage", replace=True)
        else:
            self.con.register("_dlwh_stage", table)

    def _unstage(self) -> None:
        """Remove the staging view (never raises: after a failed INSERT the rollback removes it)."""
        try:
            self.con.unregister("_dlwh_stage")
        except duckdb.Error:
            pass
        try:
            self.con.execute("DROP VIEW IF EXISTS _dlwh_stage")
        except duckdb.Error:
            pass

    def _insert_select(self, sql: str | Callable[[dict[str, str]], tuple[str, dict]], table: Table,
                       params: list | dict | None = None) -> int:
        """Stage ``table`` as _dlwh_stage and run ``sql`` (or ``sql(stage column types)`` → (sql, params))."""
        # no `finally`: after a failed INSERT the transaction is aborted, and the rollback cleans up
        self._stage(table)
        if callable(sql):
            sql, params = sql(validate.stage_types(self.con, "_dlwh_stage"))
        count = int(self.con.execute(sql, params or []).fetchone()[0])
        self._unstage()
        return count

    def _insert(self, trace: Trace, ctx: IngestContext, sha: str) -> int:
        rows = 0
        limits = self.options.limits
        base = {"prefix": sha[:16] + ":", "sha": sha, "run_id": trace.run.run_id if trace.run else ctx.run_id}
        run_id = base["run_id"]
        if trace.run is not None:
            validate.check_run(trace.run, limits)
            self._insert_run(trace.run, sha)
        kinds: dict[str, str] = {}
        if trace.sensors is not None and len(trace.sensors):
            sensors = _with_columns(trace.sensors, ("sensor_key", "kind", "name", "device_index",
                                                    "device_uuid", "device_name", "tool"))
            kinds = {str(k): str(v) for k, v in zip(sensors["sensor_key"], sensors["kind"])} \
                if not isinstance(sensors, duckdb.DuckDBPyRelation) else dict(sensors.select("sensor_key, kind").fetchall())
            self._insert_select(lambda types: (
                "INSERT INTO sensors (sensor_id, run_id, file_sha256, kind, name, device_index, device_uuid, device_name, tool) "
                "SELECT $prefix || sensor_key, $run_id, $sha, kind, name, "
                f"{validate.check_integer('device_index', 'device_index', 'INTEGER', where='sensor_key', source_type=types.get('device_index'))}, "
                "device_uuid, device_name, tool FROM _dlwh_stage", base), sensors)
        if trace.samples is not None:
            samples = _with_columns(trace.samples, ("sensor_key", "ts", "metric", "unit", "value", "duration_s"))
            line = "line" if "line" in samples.columns else "NULL"
            if validate.may_hold_energy_counters(samples):
                self._stage(samples)
                validate.check_energy_counters(self.con, "_dlwh_stage", line)
            value, ceilings = validate.sample_value(limits, kinds, line)
            ts = validate.check_time("ts", "time", limits, line, where="sensor_key")
            duration = validate.check_number("duration_s", "duration_s", 0.0, validate.MAX_DURATION_S, line, where="sensor_key", unit="s")
            rows += self._insert_select(
                "INSERT INTO samples (sensor_id, ts, metric, unit, value, duration_s, file_sha256) "
                f"SELECT $prefix || sensor_key, {ts}, metric, unit, {value}, {duration}, $sha "
                "FROM _dlwh_stage WHERE ts IS NOT NULL", samples, {**ceilings, "prefix": base["prefix"], "sha": sha})
        if trace.counters is not None:
            counters = _with_columns(trace.counters, ("perf_run", "ts", "interval_s", "cpu", "pmu", "event",
                                                      "value", "unit", "reason", "run_time_ns", "enabled_pct"))
            line = "line" if "line" in counters.columns else "NULL"

            def counters_sql(types: dict[str, str]) -> tuple[str, dict]:
                def n(col: str, lo: float | None = None, hi: float | None = None) -> str:
                    return validate.check_number(col, col, lo, hi, line, where="event")

                def i(col: str, sql_type: str) -> str:
                    return validate.check_integer(col, col, sql_type, line, where="event", source_type=types.get(col))

                return ("INSERT INTO counters (run_id, file_sha256, perf_run, ts, interval_s, cpu, pmu, event, value, unit, "
                        "reason, run_time_ns, enabled_pct) "
                        f"SELECT $run_id, $sha, {i('perf_run', 'INTEGER')}, "
                        f"{validate.check_time('ts', 'time', limits, line, where='event')}, {n('interval_s', 0.0)}, "
                        f"cpu, pmu, event, {n('value')}, unit, reason, {i('run_time_ns', 'BIGINT')}, "
                        f"{n('enabled_pct', 0.0, 100.0)} FROM _dlwh_stage", {"run_id": run_id, "sha": sha})
            rows += self._insert_select(counters_sql, counters)
        if trace.spans is not None:
            spans = _with_columns(trace.spans, ("span_id", "parent_id", "kind", "name", "start_ts", "end_ts",
                                                "start_mono_ns", "end_mono_ns", "attrs"))
            line = "line" if "line" in spans.columns else "NULL"

            def spans_sql(types: dict[str, str]) -> tuple[str, dict]:
                def t(col: str) -> str:
                    return validate.check_time(col, col, limits, line, where="'span ' || span_id")

                def i(col: str) -> str:
                    return validate.check_integer(col, col, "BIGINT", line, where="'span ' || span_id",
                                                  source_type=types.get(col))

                return ("INSERT INTO spans (run_id, span_id, parent_id, kind, name, start_ts, end_ts, start_mono_ns, "
                        "end_mono_ns, attrs, file_sha256) "
                        f"SELECT $run_id, span_id, parent_id, kind, name, {t('start_ts')}, "
                        f"{t('end_ts')}, {i('start_mono_ns')}, {i('end_mono_ns')}, attrs, $sha FROM _dlwh_stage",
                        {"run_id": run_id, "sha": sha})
            rows += self._insert_select(spans_sql, spans)
        for name, table in trace.tables.items():
            target = _table_types(self.con, name)
            if "file_sha256" not in target:
                raise DlwhError(f"internal: table {name} cannot hold file rows")
            extra = {"file_sha256": sha}
            if "run_id" in target:
                extra["run_id"] = run_id

            def table_sql(types: dict[str, str], name=name, target=target, extra=extra) -> tuple[str, dict]:
                line = '"line"' if "line" in types else "NULL"
                cols = [f'{validate.column_check(c, target[c], types[c], name, limits, line)} AS "{c}"'
                        if c in target else f'"{c}"' for c in types]
                cols += [f"${c} AS {c}" for c in extra if c not in types]
                return (f'INSERT INTO "{name}" BY NAME SELECT {", ".join(cols)} FROM _dlwh_stage',
                        {c: v for c, v in extra.items() if c not in types})
            rows += self._insert_select(table_sql, table)
        has_readings = any(t is not None for t in (trace.samples, trace.counters, trace.spans))
        if trace.run is None and has_readings:
            # a loose trace gets a run of its own; pure reference data (intensity, summaries) does not
            self._ensure_file_run(run_id, sha, ctx)
        return rows

    def _insert_run(self, run: RunInfo, sha: str) -> None:
        self.con.execute("DELETE FROM runs WHERE run_id = ? AND source = 'file'", [run.run_id])
        self.con.execute(
            "INSERT OR REPLACE INTO runs (run_id, host, start_ts, end_ts, command, exit_code, timezone, source, "
            "manifest_json, file_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, 'manifest', ?, ?)",
            [run.run_id, run.host, run.start_ts, run.end_ts, run.command, run.exit_code, run.timezone,
             run.manifest_json, sha])
        tags = {**run.tags, **self.options.tags}
        for key, value in tags.items():
            self.con.execute("INSERT OR REPLACE INTO run_tags (run_id, key, value, file_sha256) VALUES (?, ?, ?, ?)", [run.run_id, key, value, sha])

    def _ensure_file_run(self, run_id: str, sha: str, ctx: IngestContext) -> None:
        """A loose file (no manifest) gets a run of its own, spanning its samples."""
        exists = self.con.execute("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]).fetchone()[0]
        if not exists:
            self.con.execute(
                "INSERT INTO runs (run_id, timezone, source, file_sha256) VALUES (?, ?, 'file', ?)",
                [run_id, ctx.tz_name, sha])
            for key, value in self.options.tags.items():
                self.con.execute("INSERT OR REPLACE INTO run_tags (run_id, key, value, file_sha256) VALUES (?, ?, ?, ?)", [run_id, key, value, sha])
        self.con.execute(
            "UPDATE runs SET start_ts = b.lo, end_ts = b.hi FROM ("
            "  SELECT min(s.ts) AS lo, max(s.ts) AS hi FROM samples s JOIN sensors se USING (sensor_id)"
            "  WHERE se.run_id = ?) b WHERE runs.run_id = ? AND runs.source = 'file'", [run_id, run_id])


def _describe_options(options: dict[str, object]) -> str:
    """{'start': 'X', 'interval_s': 1} → '--start X --interval-s 1' ('no options' if empty)."""
    return " ".join(f"--{key.replace('_', '-')} {value}" for key, value in sorted(options.items())) or "no options"


def failure(path: Path, err: BaseException, fmt: str | None = None) -> FileResult:
    """The FileResult of a file whose reading, parsing or loading raised ``err`` (see dlwh.ingest.failure)."""
    why = describe(err)
    if why.line is None and why.message.startswith("a number has more than 4,300 digits"):
        why.line = _line_of_long_number(path)
    return FileResult(path, "failed", fmt, message=why.message, line=why.line, internal=why.internal)


def _line_of_long_number(path: Path) -> int | None:
    """The line of the first run of over 4,300 digits in the file (linear scan), or None."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    found = re.search(rb"[0-9]{4301}", data)
    return data.count(b"\n", 0, found.start()) + 1 if found else None


def trace_outcome(trace: Trace) -> str:
    """'loaded' or 'loaded-with-warnings'."""
    return "loaded-with-warnings" if trace.warnings else "loaded"


def _with_columns(table: Table, columns: tuple[str, ...]) -> Table:
    """A DataFrame with every expected column (missing ones NULL), in order, and its ``line`` column if it
    has one (for messages); relations as they are."""
    if isinstance(table, duckdb.DuckDBPyRelation):
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise DlwhError(f"internal: parser relation lacks {missing}")
        return table
    frame = table.copy(deep=False)
    for column in columns:
        if column not in frame.columns:
            frame[column] = None
    keep = list(columns) + (["line"] if "line" in frame.columns and "line" not in columns else [])
    return frame[keep]


def ingest_paths(
    con: duckdb.DuckDBPyConnection,
    paths: Iterable[str | os.PathLike[str]],
    options: IngestOptions | None = None,
    on_file: Callable[[FileResult, int, int], None] | None = None,
) -> list[FileResult]:
    """Ingest every file under ``paths``; returns one FileResult per file, in order.

    ``on_file(result, done, total)`` is called after each file (for progress display).
    """
    options = options or IngestOptions()
    files = discover(paths)
    loader = _Loader(con, options)
    results: list[FileResult] = []
    for number, (path, explicit) in enumerate(files, 1):
        try:
            result = loader.ingest(path, explicit)
        except Exception as err:  # one file's failure, whatever it is, never stops the others
            result = failure(path, err)
        results.append(result)
        if on_file:
            on_file(result, number, len(files))
    return results


SUMMARY_COLUMNS = ("outcome", "format", "files", "rows")


def summary_rows(results: list[FileResult]) -> list[tuple[str, str, int, int]]:
    """(outcome, format, files, rows) per outcome and format, sorted (the table printed after an ingest)."""
    counts: dict[tuple[str, str], list[int]] = {}
    for r in results:
        key = ("internal-error" if r.internal else r.outcome.replace("-with-warnings", ""), r.format or "-")
        files_rows = counts.setdefault(key, [0, 0])
        files_rows[0] += 1
        files_rows[1] += r.rows
    return [(outcome, fmt, files, rows) for (outcome, fmt), (files, rows) in sorted(counts.items())]


def summarise(results: list[FileResult]) -> pd.DataFrame:
    """``summary_rows`` as a DataFrame."""
    return pd.DataFrame(summary_rows(results), columns=list(SUMMARY_COLUMNS))


def format_summary(results: list[FileResult]) -> str:
    """``summary_rows`` as an aligned text table (numbers right-aligned), or 'no files found'."""
    rows = [tuple(str(v) for v in row) for row in summary_rows(results)]
    if not rows:
        return "no files found"
    widths = [max(len(x) for x in column) for column in zip(SUMMARY_COLUMNS, *rows)]
    numeric = (False, False, True, True)

    def line(cells) -> str:
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)).rstrip()

    return "\n".join([line(SUMMARY_COLUMNS)] + [line(r) for r in rows])
