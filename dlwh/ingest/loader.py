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
from dlwh.ingest import formats
from dlwh.ingest.formats.dlwh.manifest import load_manifest
from dlwh.ingest.timeutil import local_zone, parse_utc, to_naive_utc, zone_from_name, zone_name
from dlwh.ingest.trace import IngestContext, RunInfo, Table, Trace, drop_scratch

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


def _table_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? AND table_schema = 'main' "
        "ORDER BY ordinal_position", [table]).fetchall()]


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
            except ValueError:
                raise DlwhError(f"--start {self.options.start!r} is not an ISO 8601 time such as 2024-10-30T18:42:33") from None
            start_source = "--start"
        elif manifest and manifest.get("start_utc"):
            start, start_source = parse_utc(manifest["start_utc"]), "run.json"
        if manifest:
            run_id = str(manifest["run_id"])
        else:
            run_id = self.options.run_id or f"{path.stem}-{sha[:8]}"
        return IngestContext(
            path=path, con=self.con, run_id=run_id, tz=tz, tz_name=tz_name, tz_source=tz_source,
            start_utc=start, start_source=start_source, manifest=manifest,
            options=dict(self.options.format_options),
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
        self.con.execute("BEGIN TRANSACTION")
        try:
            trace = module.parse(ctx)
            if previous:
                self._delete_file_rows(previous[0])
            try:
                rows = self._insert(trace, ctx, sha)
            finally:
                drop_scratch(self.con, trace.scratch)
            if rows == 0 and trace.run is None:
                trace.warnings.append("no readings in this file")
            message = "; ".join(trace.notes + trace.warnings)
            outcome = "loaded-with-warnings" if trace.warnings else "loaded"
            if reload_note:
                message = "; ".join(x for x in (reload_note, message) if x)
            self.con.execute(
                "INSERT OR REPLACE INTO files (path, sha256, size_bytes, format, run_id, rows_loaded, ingested_at, "
                "outcome, message, options) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [str(path), sha, size, trace.format, ctx.run_id, rows,
                 datetime.now(timezone.utc).replace(tzinfo=None), outcome, message or None,
                 json.dumps(given, sort_keys=True) if given else None],
            )
            if self.options.dry_run:
                self.con.execute("ROLLBACK")
                return FileResult(path, "would-load", trace.format, rows, ctx.run_id, replaced + message)
            self.con.execute("COMMIT")
        except ParseError as err:
            self.con.execute("ROLLBACK")
            return FileResult(path, "failed", module.NAME, message=str(err), line=err.line)
        except DlwhError as err:
            self.con.execute("ROLLBACK")
            return FileResult(path, "failed", module.NAME, message=str(err))
        except duckdb.Error as err:
            self.con.execute("ROLLBACK")
            message, line = describe_duckdb_error(err)
            return FileResult(path, "failed", module.NAME, message=message, line=line)
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        return FileResult(path, trace_outcome(trace), trace.format, rows, ctx.run_id,
                          replaced.replace("replaces", "replaced") + message)

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
        try:
            self.con.unregister("_dlwh_stage")
        except duckdb.Error:
            pass
        self.con.execute("DROP VIEW IF EXISTS _dlwh_stage")

    def _insert_select(self, sql: str, table: Table, params: list) -> int:
        self._stage(table)
        try:
            return int(self.con.execute(sql, params).fetchone()[0])
        finally:
            self._unstage()

    def _insert(self, trace: Trace, ctx: IngestContext, sha: str) -> int:
        rows = 0
        prefix = sha[:16] + ":"
        run_id = trace.run.run_id if trace.run else ctx.run_id
        if trace.run is not None:
            self._insert_run(trace.run, sha)
        if trace.sensors is not None and len(trace.sensors):
            sensors = _with_columns(trace.sensors, ("sensor_key", "kind", "name", "device_index",
                                                    "device_uuid", "device_name", "tool"))
            self._insert_select(
                "INSERT INTO sensors (sensor_id, run_id, file_sha256, kind, name, device_index, device_uuid, device_name, tool) "
                "SELECT ? || sensor_key, ?, ?, kind, name, "
                "CAST(device_index AS INTEGER), device_uuid, device_name, tool FROM _dlwh_stage",
                sensors, [prefix, run_id, sha])
        if trace.samples is not None:
            samples = _with_columns(trace.samples, ("sensor_key", "ts", "metric", "unit", "value", "duration_s"))
            rows += self._insert_select(
                "INSERT INTO samples (sensor_id, ts, metric, unit, value, duration_s, file_sha256) SELECT ? || sensor_key, ts, metric, unit, "
                "CAST(value AS DOUBLE), CAST(duration_s AS DOUBLE), ? FROM _dlwh_stage "
                "WHERE ts IS NOT NULL",
                samples, [prefix, sha])
        if trace.counters is not None:
            counters = _with_columns(trace.counters, ("perf_run", "ts", "interval_s", "cpu", "pmu", "event",
                                                      "value", "unit", "reason", "run_time_ns", "enabled_pct"))
            rows += self._insert_select(
                "INSERT INTO counters (run_id, file_sha256, perf_run, ts, interval_s, cpu, pmu, event, value, unit, reason, "
                "run_time_ns, enabled_pct) SELECT ?, ?, perf_run, ts, interval_s, cpu, pmu, event, "
                "CAST(value AS DOUBLE), unit, reason, CAST(run_time_ns AS BIGINT), CAST(enabled_pct AS DOUBLE) "
                "FROM _dlwh_stage", counters, [run_id, sha])
        if trace.spans is not None:
            spans = _with_columns(trace.spans, ("span_id", "parent_id", "kind", "name", "start_ts", "end_ts",
                                                "start_mono_ns", "end_mono_ns", "attrs"))
            rows += self._insert_select(
                "INSERT INTO spans (run_id, span_id, parent_id, kind, name, start_ts, end_ts, start_mono_ns, end_mono_ns, attrs, "
                "file_sha256) SELECT ?, span_id, parent_id, kind, name, start_ts, end_ts, "
                "start_mono_ns, end_mono_ns, attrs, ? FROM _dlwh_stage", spans, [run_id, sha])
        for name, table in trace.tables.items():
            columns = _table_columns(self.con, name)
            if "file_sha256" not in columns:
                raise DlwhError(f"internal: table {name} cannot hold file rows")
            extra = {"file_sha256": sha}
            if "run_id" in columns:
                extra["run_id"] = run_id
            frame_cols = list(table.columns)
            fills = ", ".join(f"? AS {col}" for col in extra if col not in frame_cols)
            rows += self._insert_select(
                f'INSERT INTO "{name}" BY NAME SELECT *{", " + fills if fills else ""} FROM _dlwh_stage',
                table, [extra[c] for c in extra if c not in frame_cols])
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


_CSV_LINE = re.compile(r"CSV Error on Line: (\d+)")
_COLUMNS = re.compile(r"Expected Number of Columns: (\d+) Found: (\d+)")


def _describe_options(options: dict[str, object]) -> str:
    """{'start': 'X', 'interval_s': 1} → '--start X --interval-s 1' ('no options' if empty)."""
    return " ".join(f"--{key.replace('_', '-')} {value}" for key, value in sorted(options.items())) or "no options"


def describe_duckdb_error(err: Exception) -> tuple[str, int | None]:
    """A DuckDB error (often from read_csv) as one line for people, and the line number if known."""
    text = str(err)
    line_match = _CSV_LINE.search(text)
    line = int(line_match.group(1)) if line_match else None
    columns = _COLUMNS.search(text)
    if columns:
        return f"wrong number of columns (expected {columns.group(1)}, found {columns.group(2)})", line
    first = text.strip().splitlines()[0]
    if line_match:
        return f"cannot read this CSV ({first})", line
    return f"could not load ({first})", line


def trace_outcome(trace: Trace) -> str:
    """'loaded' or 'loaded-with-warnings'."""
    return "loaded-with-warnings" if trace.warnings else "loaded"


def _with_columns(table: Table, columns: tuple[str, ...]) -> Table:
    """A DataFrame with every expected column (missing ones NULL), in order; relations as they are."""
    if isinstance(table, duckdb.DuckDBPyRelation):
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise DlwhError(f"internal: parser relation lacks {missing}")
        return table
    frame = table.copy(deep=False)
    for column in columns:
        if column not in frame.columns:
            frame[column] = None
    return frame[list(columns)]


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
        except OSError as err:
            result = FileResult(path, "failed", message=f"cannot read ({err.strerror})")
        except DlwhError as err:
            result = FileResult(path, "failed", message=str(err))
        results.append(result)
        if on_file:
            on_file(result, number, len(files))
    return results


SUMMARY_COLUMNS = ("outcome", "format", "files", "rows")


def summary_rows(results: list[FileResult]) -> list[tuple[str, str, int, int]]:
    """(outcome, format, files, rows) per outcome and format, sorted (the table printed after an ingest)."""
    counts: dict[tuple[str, str], list[int]] = {}
    for r in results:
        key = (r.outcome.replace("-with-warnings", ""), r.format or "-")
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
