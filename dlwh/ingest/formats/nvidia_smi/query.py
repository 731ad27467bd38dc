"""nvidia-smi --query-gpu=FIELDS --format=csv[,noheader][,nounits] [-l N | -lms N] → GPU sensors and samples.

Any fields in any order. Units may sit in the header (``power.draw [W]``) or in the values
(``45.23 W``, ``0 %``, ``2 MiB``); ``[N/A]``, ``[Not Supported]``, ``N/A``, ``ERR!`` and other non-numbers
in a metric column are NULL. Header lines repeated through the file (appended one-shot queries) are
skipped. Rows are keyed to one GPU sensor per ``index`` (else ``uuid``, else ``pci.bus_id``); without
any of them the file is one GPU.

Timestamps (``2024/10/30 18:42:33.189``) are the recording host's local time, converted to UTC with
the run's zone (run.json, --tz, else this machine's). Without a ``timestamp`` field, rows are placed at
start + k x interval (k = the GPU's k-th row; start from --start or run.json; interval from
--interval-s, the manifest's source, the command's -l/-lms, else 1 s).

Headerless files take their field list from ``--fields`` (ctx.options['fields']), else from the run's
manifest (the nvidia-smi source's ``--query-gpu=``), else from the value units where they are
unambiguous (a warning says what was assumed).

Large files (benchmarks/bench_ingest.py, docs/performance.md "Ingest"): the samples are one streaming
DuckDB relation on ``ctx.con`` that the loader inserts: units stripped and cells cast in SQL, rows
unpivoted to long form with unnest. A first pass, on a cursor of its own, checks every row's column
count and timestamp and lists the GPUs. The usual layout (header on line 1, ', ' separators,
millisecond timestamps) is read by DuckDB's CSV reader with the timestamp typed; other layouts, and
any file in which that reader meets a bad line, are read as whole lines split in SQL, where repeated
header lines are skipped and a bad line is found and named (ParseError with its line number).
No Python loop touches the data rows.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
from dlwh._lazy import pandas as pd

from dlwh.errors import ParseError
from dlwh.ingest.formats.nvidia_smi._common import NOISE_RE, command_argv, option, sample_interval, source_entry
from dlwh.ingest.lines import cut_warning, file_tail, noise_warning
from dlwh.ingest.trace import IngestContext, Trace
import dlwh.ingest.validate as validate
from dlwh.metrics import METRIC_UNITS

NAME = "nvidia-smi-query"
DESCRIPTION = "nvidia-smi --query-gpu=... --format=csv [-l N | -lms N], with or without header and units"
EXTENSIONS = (".csv", ".txt", ".log")
TOOL = "nvidia-smi"

# nvidia-smi field (as printed in the header, or an alias accepted by --query-gpu) -> canonical metric.
# 'power.draw' is the 1 s average on drivers that also offer 'power.draw.instant' (R535+): both are kept.
METRIC_FIELDS: dict[str, str] = {
    "power.draw": "power",
    "power.draw.instant": "power_instant",
    "power.draw.average": "power_average",
    "power.limit": "power_limit",
    "enforced.power.limit": "enforced_power_limit",
    "power.default_limit": "default_power_limit",
    "power.min_limit": "min_power_limit",
    "power.max_limit": "max_power_limit",
    "clocks.sm": "clock_sm", "clocks.current.sm": "clock_sm",
    "clocks.mem": "clock_mem", "clocks.current.memory": "clock_mem",
    "clocks.gr": "clock_gr", "clocks.current.graphics": "clock_gr",
    "clocks.video": "clock_video", "clocks.current.video": "clock_video",
    "temperature.gpu": "temperature_gpu",
    "temperature.memory": "temperature_memory",
    "utilization.gpu": "utilization_gpu",
    "utilization.memory": "utilization_memory",
    "utilization.encoder": "utilization_encoder",
    "utilization.decoder": "utilization_decoder",
    "utilization.jpeg": "utilization_jpeg",
    "utilization.ofa": "utilization_ofa",
    "memory.used": "memory_used",
    "memory.free": "memory_free",
    "memory.total": "memory_total",
    "memory.reserved": "memory_reserved",
    "fan.speed": "fan_speed",
}
# fields that identify the GPU or the time (aliases as --query-gpu accepts them)
ATTRIBUTE_FIELDS: dict[str, str] = {
    "timestamp": "timestamp",
    "index": "index",
    "uuid": "uuid", "gpu_uuid": "uuid",
    "name": "name", "gpu_name": "name",
    "pci.bus_id": "bus_id", "gpu_bus_id": "bus_id",
}
# other plain (undotted) nvidia-smi fields, so that a header of them is recognised
OTHER_FIELDS = frozenset((
    "driver_version", "count", "serial", "gpu_serial", "vbios_version", "display_mode", "display_active",
    "display_attached", "persistence_mode", "addressing_mode", "pstate", "compute_mode", "compute_cap",
    "gpu_recovery_action", "hostname", "edpp_multiplier", "platform", "reset_status",
))
# a unit in a header ("[MiB]") -> factor to the canonical unit; canonical units are 1
UNIT_SCALE: dict[str, float] = {"W": 1.0, "mW": 1e-3, "kW": 1e3, "MHz": 1.0, "GHz": 1e3, "kHz": 1e-3,
                                "MiB": 1.0, "KiB": 1 / 1024, "GiB": 1024.0, "%": 1.0, "C": 1.0}

TIME_FORMATS = ("%Y/%m/%d %H:%M:%S.%g", "%Y/%m/%d %H:%M:%S")
_FIELD_TOKEN = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*)(?: \[([^\]]*)\])?$")
_TS_VALUE = re.compile(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?$")
_UNIT_VALUE = re.compile(r"^-?\d+(?:\.\d+)? (W|MiB|MHz|%)$")
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")
_MARKER = re.compile(r"^(\[[^\]]*\]|N/A|ERR!|)$")
_UUID = re.compile(r"^(GPU|MIG)-[0-9A-Fa-f-]+$")
_BUS_ID = re.compile(r"^[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-9A-Fa-f]$")


# --------------------------------------------------------------------------------------- fields
class Field:
    """One CSV column: its nvidia-smi name, header unit and what dlwh does with it."""

    def __init__(self, name: str, unit: str | None = None) -> None:
        self.name = name.strip()
        key = self.name.lower()
        self.unit = unit
        self.metric = METRIC_FIELDS.get(key)
        self.attribute = ATTRIBUTE_FIELDS.get(key)
        self.scale = UNIT_SCALE.get(unit, 1.0) if unit else 1.0

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Field({self.name!r}, {self.unit!r})"


def _header_tokens(line: str) -> list[str]:
    return [t.strip() for t in line.lstrip("\ufeff").strip().split(",")]


def parse_header(line: str) -> list[Field] | None:
    """The fields of a header line, or None if the line is not a header nvidia-smi would print."""
    tokens = _header_tokens(line)
    fields = []
    for token in tokens:
        match = _FIELD_TOKEN.match(token)
        if not match:
            return None
        fields.append(Field(match.group(1), match.group(2)))
    known = [f for f in fields if f.metric or (f.attribute and f.attribute != "timestamp")]
    plain = sum(1 for f in fields if f.metric or f.attribute or "." in f.name or f.name.lower() in OTHER_FIELDS)
    if not known or plain * 2 < len(fields):
        return None
    return fields


def parse_field_list(text: str) -> list[Field]:
    """Fields from a --query-gpu style list ('index,power.draw,clocks.sm')."""
    names = [t.strip() for t in str(text).split(",") if t.strip()]
    return [Field(n) for n in names]


def _looks_like_data(line: str) -> bool:
    cells = [c.strip() for c in line.lstrip("\ufeff").strip().split(",")]
    if len(cells) < 2 or ", " not in line:
        return False
    strong = any(_TS_VALUE.match(c) or _UNIT_VALUE.match(c) for c in cells)
    numeric = all(_NUMBER.match(c) or _MARKER.match(c) for c in cells)
    plausible = all(_TS_VALUE.match(c) or _UNIT_VALUE.match(c) or _NUMBER.match(c) or _MARKER.match(c)
                    or _UUID.match(c) or _BUS_ID.match(c) or re.match(r"^[\w .()/+-]+$", c) for c in cells)
    return plausible and (strong or numeric)


def sniff(head: str, path: Path) -> bool:
    """A --query-gpu header line, or (headerless) values with nvidia-smi's timestamps or units."""
    first = next((ln for ln in head.lstrip("\ufeff").splitlines() if ln.strip()), "")
    if not first or first.lstrip().startswith("#"):
        return False
    return parse_header(first) is not None or _looks_like_data(first)


# --------------------------------------------------------------------------------------- context
def manifest_fields(ctx: IngestContext) -> list[Field] | None:
    """The --query-gpu fields of the run's nvidia-smi command, if the manifest records it."""
    query = option(command_argv(source_entry(ctx)), "--query-gpu")
    return parse_field_list(query) if query else None


def infer_fields(rows: list[list[str]]) -> tuple[list[Field], str]:
    """Fields of a headerless file from its value units; returns (fields, what was assumed)."""
    ncols = max(len(r) for r in rows)
    kinds: list[str | None] = []
    for col in range(ncols):
        values = [r[col] for r in rows if col < len(r) and not _MARKER.match(r[col])]
        kind = None
        if values and all(_TS_VALUE.match(v) for v in values):
            kind = "ts"
        elif values and all(_UNIT_VALUE.match(v) for v in values):
            units = {_UNIT_VALUE.match(v).group(1) for v in values}
            kind = units.pop() if len(units) == 1 else None
        elif values and all(_UUID.match(v) for v in values):
            kind = "uuid"
        elif values and all(_BUS_ID.match(v) for v in values):
            kind = "bus"
        kinds.append(kind)
    names: list[str | None] = [None] * ncols
    by_kind: dict[str, list[int]] = {}
    for col, kind in enumerate(kinds):
        if kind:
            by_kind.setdefault(kind, []).append(col)
    simple = {"ts": ["timestamp"], "uuid": ["uuid"], "bus": ["pci.bus_id"], "%": ["utilization.gpu", "utilization.memory"],
              "W": ["power.draw"], "MHz": ["clocks.sm", "clocks.mem"]}
    for kind, order in simple.items():
        for col, name in zip(by_kind.get(kind, []), order):
            names[col] = name
    mib = by_kind.get("MiB", [])
    if mib:
        names[mib[0]] = "memory.used"
    if len(mib) >= 2:
        a = pd.Series([_num(r[mib[0]]) for r in rows if len(r) > mib[1]])
        b = pd.Series([_num(r[mib[1]]) for r in rows if len(r) > mib[1]])
        # used + free is constant where both vary; a constant second column is the total
        varies = a.nunique() > 1 and b.nunique() > 1
        names[mib[1]] = "memory.free" if varies and (a + b).nunique() == 1 else "memory.total"
    fields = [Field(n) if n else Field(f"?column{i + 1}") for i, n in enumerate(names)]
    said = ", ".join(f"{i + 1}={n}" for i, n in enumerate(names) if n)
    skipped = [str(i + 1) for i, n in enumerate(names) if not n]
    text = f"no header: fields assumed from the value units ({said})"
    if skipped:
        text += f"; column(s) {', '.join(skipped)} not loaded (no unit to tell what they are)"
    return fields, text + "; pass --fields (as given to --query-gpu) to say them"


def _num(text: str) -> float | None:
    try:
        return float(text.split(" ")[0])
    except ValueError:
        return None


# --------------------------------------------------------------------------------------- SQL pieces
def _cell(i: int, sep: str) -> str:
    """SQL for the i-th (0-based) cell of the split line ``s``."""
    return f"s[{i + 1}]" if sep == ", " else f"trim(s[{i + 1}])"


def _value_sql(field: Field, cell: str, suffix: str | None) -> str:
    """A metric cell (SQL text expression) as DOUBLE; anything not a number ([N/A], ERR!, ...) is NULL.

    ``suffix`` is the unit the values carry (' W', ' MiB'; '' for none, None when unknown): stripping a
    known suffix is much cheaper than splitting every cell, and a failed cast is the slow path.
    """
    if suffix:
        text = f"CASE WHEN suffix({cell}, '{suffix}') THEN left({cell}, -{len(suffix)}) ELSE {cell} END"
    elif suffix == "":
        text = cell
    else:
        text = f"split_part({cell}, ' ', 1)"
    sql = f"TRY_CAST({text} AS DOUBLE)"
    return sql if field.scale == 1.0 else f"({sql} * {field.scale!r})"


def _value_suffix(rows: list[list[str]], i: int) -> str | None:
    """The unit suffix every (non-marker) value of column i carries in the head rows: ' W', '' or None."""
    cells = [r[i] for r in rows if i < len(r) and not _MARKER.match(r[i])]
    if not cells:
        return None
    if all(_NUMBER.match(c) for c in cells):
        return ""
    units = {c.split(" ", 1)[1] if " " in c and _NUMBER.match(c.split(" ", 1)[0]) else None for c in cells}
    if len(units) == 1 and None not in units and re.match(r"^[A-Za-z%/]+$", next(iter(units))):
        return " " + units.pop()
    return None


def _local_ts_sql(i: int, sep: str) -> str:
    formats = ", ".join(f"'{f}'" for f in TIME_FORMATS)
    return f"try_strptime({_cell(i, sep)}, [{formats}])"


def _utc_sql(local: str, ctx: IngestContext, offset: timedelta | None) -> str:
    """SQL turning a naive local TIMESTAMP expression into naive UTC in ctx's zone.

    ``offset``: the zone's UTC offset where it is the same over the whole file (plain arithmetic),
    else None (per-row conversion by DuckDB's ICU time zones).
    """
    if offset is None:
        return f"timezone('UTC', timezone('{ctx.tz.key}', {local}))"
    if offset == timedelta(0):
        return local
    return f"({local} - INTERVAL '{int(offset.total_seconds() * 1_000_000)} microseconds')"


def _lines(con: duckdb.DuckDBPyConnection, path: Path, keep: int | None = None) -> duckdb.DuckDBPyRelation:
    """Every line of the file (or the first ``keep``) as one VARCHAR column ``l`` (blank lines are NULL),
    in file order."""
    try:
        lines = con.read_csv(str(path), header=False, delimiter="\x01", quotechar="", escapechar="",
                             columns={"l": "VARCHAR"}, auto_detect=False)
        return lines if keep is None else lines.limit(keep)
    except duckdb.Error as err:
        raise ParseError(f"cannot read the file: {str(err).splitlines()[0]}") from None


# --------------------------------------------------------------------------------------- parse
def parse(ctx: IngestContext) -> Trace:
    """Check the file in one pass, then return its samples as one streaming DuckDB relation."""
    trace = Trace(format=NAME)
    head, cut = _head(ctx.path)
    head_lines = head.splitlines()
    first_no, first = next(((n, ln) for n, ln in enumerate(head_lines, 1) if ln.strip()), (0, ""))
    if not first:
        raise ParseError("no data: the file has only blank lines")
    header_fields = parse_header(first)
    header_text = first.lstrip("\ufeff") if header_fields else None
    data_head = [ln for ln in head_lines[first_no - (0 if header_fields else 1):] if ln.strip()
                 and (header_text is None or ln != header_text)]
    tail = file_tail(ctx.path, ctx.data)
    if (cut or tail.cut) and len(data_head) > 1:
        data_head = data_head[:-1]  # the head may end inside a line, and so may the file
    sep = ", " if ", " in (header_text or (data_head[0] if data_head else "")) else ","
    if header_fields:
        fields = header_fields
        if ctx.options.get("fields"):
            trace.warnings.append("--fields ignored: the file has a header line")
    else:
        fields = _headerless_fields(ctx, data_head, sep, trace)
    n = len(fields)
    head_rows = _split_rows(data_head[:200], sep)
    if not data_head:
        raise ParseError("no readings: the file has a header line but no data rows", line=first_no + 1)

    role = {f.attribute: i for i, f in reversed(list(enumerate(fields))) if f.attribute}
    metrics = [(i, f) for i, f in enumerate(fields) if f.metric]
    seen: set[str] = set()
    metrics = [(i, f) for i, f in metrics if not (f.metric in seen or seen.add(f.metric))]
    if not metrics:
        raise ParseError("no field dlwh can load (power.draw, clocks.sm, temperature.gpu, utilization.gpu, ...)")
    ignored = [f.name for f in fields if not f.metric and not f.attribute and not f.name.startswith("?")]
    if ignored:
        shown = ", ".join(ignored[:5]) + (f" and {len(ignored) - 5} more" if len(ignored) > 5 else "")
        trace.notes.append(f"{len(ignored)} field(s) without a dlwh metric not loaded ({shown})")

    keep = None  # lines to read: all, or all but a last line cut mid-write
    if tail.cut and tail.line > first_no and not _complete_row(tail.text, sep, n, head_rows):
        keep = tail.line - 1
        trace.warnings.append(cut_warning(tail.line))
        typed_layout_allowed = False
    else:
        typed_layout_allowed = True

    where = "l IS NOT NULL" + (" AND l <> $header" if header_text else "")
    params = {"header": header_text} if header_text else {}
    split = f"string_split(l, '{sep}')"
    slow = _Rows(f"(SELECT {split} AS s FROM lines WHERE {where})", lambda i: _cell(i, sep),
                 _local_ts_sql(role["timestamp"], sep) if "timestamp" in role else "NULL", params)
    typed_layout = (_typed_columns(fields, role, sep, first_no, head_lines, header_text, head_rows)
                    if typed_layout_allowed else None)
    fast = _Rows("typed", lambda i: f"c{i}", f"c{role['timestamp']}", {}) if typed_layout else None
    suffixes = [_value_suffix(head_rows, i) for i in range(n)]
    names = ", ".join(f"'{f.metric}'" for _, f in metrics)
    units = ", ".join(f"'{METRIC_UNITS[f.metric]}'" for _, f in metrics)
    unpivot = (f"SELECT sensor_key, ts, unnest([{names}]) AS metric, unnest([{units}]) AS unit, "
               f"unnest(v) AS value, CAST(NULL AS DOUBLE) AS duration_s FROM ")

    # Checks run on a cursor of their own: a query that fails there (the typed reader at a bad line)
    # leaves the loader's transaction on ctx.con usable.
    cur = ctx.con.cursor()
    try:
        lines = _lines(cur, ctx.path, keep)
        typed = _typed_reader(cur, ctx.path, typed_layout) if typed_layout else None
        # pass 1: column counts, timestamps, GPUs. DuckDB's typed CSV reader where the layout allows
        # it; it raises at a bad line, and the line-splitting path then finds and names that line.
        check = None
        if fast is not None:
            try:
                check = _check_query(cur, fast, role, None, lines, typed)
            except duckdb.Error:
                check, fast = None, None
            if check is not None and check["bad_ts"].sum():  # empty timestamp cells read as NULL
                check, fast = None, None
        if check is None:
            noise, first_noise = cur.sql(
                "SELECT count(*), min(rn) FROM (SELECT row_number() OVER () AS rn, l FROM lines) "
                "WHERE regexp_matches(l, $noise)", params={"noise": NOISE_RE}).fetchall()[0]
            if noise:  # nvidia-smi's own error lines between the rows (stderr into the log): skipped
                where += " AND NOT regexp_matches(l, $noise)"
                params = {**params, "noise": NOISE_RE}
                slow = _Rows(f"(SELECT {split} AS s FROM lines WHERE {where})", slow.cell, slow.ts_local, params)
                trace.warnings.append(noise_warning(int(noise), int(first_noise), "nvidia-smi error"))
            try:
                check = _check_query(cur, slow, role, n, lines, typed)
            except duckdb.Error as err:
                raise ParseError(f"cannot read the file: {str(err).splitlines()[0]}") from None
            if not check.empty and (check["bad_cols"].sum() or ("timestamp" in role and check["bad_ts"].sum())):
                _raise_first_bad(cur, lines, where, params, split, n, slow.ts_local if "timestamp" in role else None)
        if check.empty:
            raise ParseError("no readings: the file has a header line but no data rows", line=first_no + 1)

        trace.sensors = _sensors(ctx, check)
        rows = fast or slow
        values = ", ".join(_value_sql(f, rows.cell(i), suffixes[i]) for i, f in metrics)
        key_sql = _key_sql(role, rows)
        if "timestamp" in role:
            lo, hi = check["lo"].min(), check["hi"].max()
            _check_window(ctx, cur, lines, where, params, split, slow.ts_local, lo, hi)
            offset, folds = zone_plan(ctx.tz, lo.to_pydatetime(), hi.to_pydatetime())
            trace.notes.append(f"local timestamps read as {ctx.tz_name} ({ctx.tz_source})")
            if not folds:
                body = (f"(SELECT {key_sql} AS sensor_key, {_utc_sql(rows.ts_local, ctx, offset)} AS ts, "
                        f"[{values}] AS v FROM {rows.from_sql})")
            else:
                rows = slow
                values = ", ".join(_value_sql(f, rows.cell(i), suffixes[i]) for i, f in metrics)
                body = _fold_body(ctx, cur, trace, lines, where, params, split, _key_sql(role, rows),
                                  rows.ts_local, values, folds)
        else:
            body = _relative_body(ctx, trace, where, split, key_sql, values)
    finally:
        cur.close()

    # the samples: one streaming relation on the loader's connection (names resolved from these locals)
    lines = _lines(ctx.con, ctx.path, keep)  # noqa: F841
    typed = _typed_reader(ctx.con, ctx.path, typed_layout) if rows is fast else None  # noqa: F841
    trace.samples = ctx.con.sql(unpivot + body, params=rows.params)
    return trace


class _Rows:
    """Where the data rows come from in SQL: ``from_sql``, ``cell(i)`` (the i-th value, text),
    ``ts_local`` (the timestamp as a naive local TIMESTAMP) and the query's parameters."""

    def __init__(self, from_sql: str, cell, ts_local: str, params: dict) -> None:
        self.from_sql, self.cell, self.ts_local, self.params = from_sql, cell, ts_local, params


def _key_sql(role: dict[str, int], rows: _Rows) -> str:
    """SQL for a row's sensor key: its GPU's index, else uuid, else bus id; one GPU without any."""
    if "index" in role:
        return f"'gpu' || {rows.cell(role['index'])}"
    for attribute in ("uuid", "bus_id"):
        if attribute in role:
            return f"'gpu-' || {rows.cell(role[attribute])}"
    return "'gpu'"


def _check_query(con: duckdb.DuckDBPyConnection, rows: _Rows, role: dict[str, int], n: int | None,
                 lines: duckdb.DuckDBPyRelation, typed: duckdb.DuckDBPyRelation | None) -> pd.DataFrame:
    """One row per GPU: attributes, row count, bad rows (column count, timestamp) and time range.

    ``lines`` and ``typed`` are the relations the SQL names (DuckDB finds them among the locals)."""
    attr = {a: (rows.cell(role[a]) if a in role else "NULL") for a in ("index", "uuid", "name", "bus_id")}
    ts_local = rows.ts_local if "timestamp" in role else "NULL"
    bad_cols = f"count(*) FILTER (WHERE len(s) <> {n})" if n is not None else "0"
    return con.sql(
        f"SELECT {_key_sql(role, rows)} AS sensor_key, any_value(TRY_CAST({attr['index']} AS INTEGER)) AS idx, "
        f"any_value({attr['uuid']}) AS uuid, any_value({attr['name']}) AS gpu_name, "
        f"any_value({attr['bus_id']}) AS bus_id, count(*) AS n, {bad_cols} AS bad_cols, "
        f"count(*) FILTER (WHERE ts_local IS NULL) AS bad_ts, min(ts_local) AS lo, max(ts_local) AS hi "
        f"FROM (SELECT *, {ts_local} AS ts_local FROM {rows.from_sql}) "
        f"GROUP BY ALL ORDER BY idx, sensor_key", params=rows.params).df()


def _typed_columns(fields, role, sep, first_no, head_lines, header_text, head_rows) -> dict[str, str] | None:
    """Columns for DuckDB's own CSV reader (timestamp typed, parsed by the reader), for the common
    layout: header on line 1 and nowhere else in the head, ', ' separators, millisecond timestamps.
    None where the layout differs (the line-splitting path reads those files)."""
    if not header_text or first_no != 1 or sep != ", " or "timestamp" not in role or not head_rows:
        return None
    if sum(1 for ln in head_lines if ln == header_text) > 1:
        return None  # repeated header lines: the line-splitting path skips them
    t = role["timestamp"]
    if not all(len(r) > t and re.match(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}\.\d{3}$", r[t]) for r in head_rows):
        return None
    return {f"c{i}": ("TIMESTAMP" if i == t else "VARCHAR") for i in range(len(fields))}


def _typed_reader(con: duckdb.DuckDBPyConnection, path: Path, columns: dict[str, str]) -> duckdb.DuckDBPyRelation:
    """The file through DuckDB's CSV reader with these columns (strict: a bad line raises)."""
    return con.read_csv(str(path), header=True, delimiter=", ", quotechar="", escapechar="", columns=columns,
                        auto_detect=False, timestamp_format=TIME_FORMATS[0], strict_mode=True, null_padding=False)


_HEAD_BYTES = 64 * 1024


def _head(path: Path) -> tuple[str, bool]:
    """The first 64 KiB as text, and whether the file goes on beyond them."""
    with path.open("rb") as handle:
        data = handle.read(_HEAD_BYTES + 1)
    return data[:_HEAD_BYTES].decode("utf-8", errors="replace"), len(data) > _HEAD_BYTES


def _split_rows(lines: list[str], sep: str) -> list[list[str]]:
    """Head lines split into cells (a few hundred lines, for guessing units and fields)."""
    return [[c.strip() for c in ln.split(sep)] for ln in lines]


def _headerless_fields(ctx: IngestContext, data_head: list[str], sep: str, trace: Trace) -> list[Field]:
    rows = _split_rows(data_head[:200], sep)
    width = len(rows[0]) if rows else 0
    if ctx.options.get("fields"):
        fields, where = parse_field_list(ctx.options["fields"]), "--fields"
        trace.notes.append("no header: fields from --fields")
    else:
        fields, where = manifest_fields(ctx), "the run's nvidia-smi command"
        if fields is None:
            if not rows:
                raise ParseError("no data rows")
            fields, assumed = infer_fields(rows)
            if not any(f.metric for f in fields):
                raise ParseError("no header line and no unit tells what the columns are; "
                                 "pass --fields as given to --query-gpu (e.g. --fields timestamp,power.draw)")
            trace.warnings.append(assumed)
            return fields
        trace.notes.append(f"no header: fields from {where}")
    if width and len(fields) != width:
        raise ParseError(f"{where} names {len(fields)} field(s) but the first row has {width} value(s)",
                         line=1)
    for i, f in enumerate(fields):
        cells = [r[i] for r in rows if i < len(r) and not _MARKER.match(r[i])]
        if f.metric and cells and all(_num(c) is None for c in cells):
            raise ParseError(f"field {f.name} (column {i + 1}) holds {cells[0]!r}, not numbers; "
                             f"check the order in {where}", line=1)
    return fields


def _shape(cell: str) -> str:
    """A cell's shape: digits runs as '9', decimals kept ('45.00 W' -> '9.99 W'), to tell a cut last cell."""
    return re.sub(r"\d+(?:\.(\d+))?", lambda m: "9" + ("." + "9" * len(m.group(1)) if m.group(1) else ""), cell)


def _complete_row(text: str, sep: str, n: int, head_rows: list[list[str]]) -> bool:
    """A last line without its newline is complete when it has all ``n`` cells and its last cell has a
    shape that cell has in the rows above ('45.0' where they print '45.00 W' was cut mid-write)."""
    cells = [c.strip() for c in text.split(sep)]
    if len(cells) != n:
        return False
    last = cells[-1]
    if last and _MARKER.match(last):
        return True
    shapes = {_shape(r[-1]) for r in head_rows if len(r) == n}
    return bool(last) and (not shapes or _shape(last) in shapes)


def _raise_first_bad(con, lines, where, params, split, n, ts_local) -> None:
    """Find the first bad row (slow path, only for broken files) and raise a ParseError for it."""
    cond = f"len(s) <> {n}" + (f" OR {ts_local} IS NULL" if ts_local else "")
    found = con.sql(
        f"SELECT rn, l, len(s) AS k, {ts_local or 'NULL'} AS ts FROM ("
        f"  SELECT rn, l, {split} AS s FROM (SELECT row_number() OVER () AS rn, l FROM lines) WHERE {where}"
        f") WHERE {cond} ORDER BY rn LIMIT 1", params=params).fetchall()
    row = found[0] if found else None
    if row is None:  # pragma: no cover - pass 1 and this query disagree
        raise ParseError("inconsistent rows")
    line, text, k, _ = row
    shown = text if len(text) <= 80 else text[:77] + "..."
    if k != n:
        looks = " (another header line? a second recording with other fields appended?)" if parse_header(text) else ""
        raise ParseError(f"expected {n} comma-separated values, found {k}{looks}: {shown!r}", line=int(line))
    raise ParseError(f"not an nvidia-smi timestamp (YYYY/MM/DD HH:MM:SS.mmm): {shown!r}", line=int(line))


def _check_window(ctx, con, lines, where, params, split, ts_local, lo, hi) -> None:
    """Local times outside the accepted window (dlwh.ingest.validate): ParseError at the first such line."""
    limits = validate.limits_of(ctx)
    first, last = validate.local_window(limits)
    if pd.isna(lo) or pd.isna(hi) or (lo >= first and hi <= last):
        return
    found = con.sql(
        f"SELECT rn, l FROM (SELECT rn, l, {split} AS s FROM (SELECT row_number() OVER () AS rn, l FROM lines) "
        f"WHERE {where}) WHERE {ts_local} < $first OR {ts_local} > $last ORDER BY rn LIMIT 1",
        params={**params, "first": first, "last": last}).fetchall()
    line, text = found[0] if found else (None, "")
    shown = text if len(text) <= 80 else text[:77] + "..."
    raise ParseError(validate.outside_message(f"the local time of {shown!r}", limits), line=line)


def _sensors(ctx: IngestContext, check: pd.DataFrame) -> pd.DataFrame:
    gpus = {g.get("index"): g for g in (ctx.manifest or {}).get("gpus") or [] if isinstance(g, dict)}
    rows = []
    for rec in check.to_dict("records"):  # one per GPU
        idx = None if pd.isna(rec["idx"]) else int(rec["idx"])
        known = gpus.get(idx, {})
        name = rec["gpu_name"] if isinstance(rec["gpu_name"], str) else known.get("name")
        uuid = rec["uuid"] if isinstance(rec["uuid"], str) else known.get("uuid")
        label = " ".join(str(x) for x in ("GPU", idx if idx is not None else (uuid or rec["bus_id"] or ""), name or "")
                         if x != "").strip()
        rows.append({"sensor_key": rec["sensor_key"], "kind": "gpu", "name": label,
                     "device_index": idx, "device_uuid": uuid, "device_name": name, "tool": TOOL})
    frame = pd.DataFrame(rows)
    frame["device_index"] = frame["device_index"].astype("Int64")
    return frame


def _relative_body(ctx, trace, where, split, key_sql, values) -> str:
    """Rows placed at start + k x interval (k = the GPU's k-th row), for files without timestamps."""
    if ctx.start_utc is None:
        raise ParseError("the file has no timestamp field, so its readings have no time; pass --start "
                         "(when the recording began) or keep the file next to its run.json")
    interval, source = sample_interval(ctx, (("-lms", 1e-3), ("--loop-ms", 1e-3), ("-l", 1.0), ("--loop", 1.0)))
    trace.notes.append(f"no timestamp field: readings placed every {interval:g} s ({source}) from "
                       f"{ctx.start_utc.isoformat()} UTC ({ctx.start_source})")
    if source == "default":
        trace.warnings.append("sampling interval unknown, 1 s assumed; pass --interval-s to say it")
    start = ctx.start_utc.strftime("%Y-%m-%d %H:%M:%S.%f")
    step_us = int(round(interval * 1e6))
    return (f"(SELECT sensor_key, TIMESTAMP '{start}' + to_microseconds((k * {step_us})::BIGINT) AS ts, v FROM ("
            f"  SELECT {key_sql} AS sensor_key, row_number() OVER (PARTITION BY {key_sql} ORDER BY rn) - 1 AS k, "
            f"  [{values}] AS v FROM (SELECT rn, {split} AS s FROM "
            f"  (SELECT row_number() OVER () AS rn, l FROM lines) WHERE {where})))")


# --------------------------------------------------------------------------------------- DST
def zone_plan(tz, lo: datetime | None, hi: datetime | None
              ) -> tuple[timedelta | None, list[tuple[datetime, datetime, timedelta]]]:
    """How to convert local times between lo and hi: (the one UTC offset, or None if it changes; the
    repeated local hours at the end of daylight-saving time as (first repeated time, first time after
    the repeat, shift))."""
    if not getattr(tz, "key", None):  # a fixed offset
        return tz.utcoffset(None) or timedelta(0), []
    if lo is None or hi is None or pd.isna(lo) or pd.isna(hi):
        return timedelta(0), []
    offsets: set[timedelta] = set()
    folds: list[tuple[datetime, datetime, timedelta]] = []
    first = lo.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    last = hi + timedelta(hours=1)

    def both(t: datetime) -> tuple[timedelta, timedelta]:
        return t.replace(tzinfo=tz, fold=0).utcoffset(), t.replace(tzinfo=tz, fold=1).utcoffset()

    # a day at a time; only a day whose offset changes is walked in 15-minute steps (cost: days + changes)
    day = first
    while day <= last:
        nxt = day + timedelta(days=1)
        a, b = both(day), both(nxt)
        if a[0] == a[1] == b[0] == b[1]:
            offsets.add(a[0])
            day = nxt
            continue
        t = day
        while t < nxt and t <= last:
            early, late = both(t)
            if lo - timedelta(hours=1) <= t:
                offsets.update((early, late))
            if early > late:
                start = _first_ambiguous(tz, t - timedelta(hours=1), t)
                end = start + (early - late)
                if start <= hi and end > lo and not any(f[0] == start for f in folds):
                    folds.append((start, end, early - late))
            t += timedelta(minutes=15)
        day = nxt
    return (offsets.pop() if len(offsets) == 1 else None), folds


def _first_ambiguous(tz, a: datetime, b: datetime) -> datetime:
    """The first local time in (a, b] that is ambiguous (b is), to the second."""
    while (b - a) > timedelta(seconds=1):
        mid = a + (b - a) / 2
        m0, m1 = mid.replace(tzinfo=tz, fold=0), mid.replace(tzinfo=tz, fold=1)
        if m0.utcoffset() != m1.utcoffset():
            b = mid
        else:
            a = mid
    return b.replace(microsecond=0)


def _fold_body(ctx, con, trace, lines, where, params, split, key_sql, ts_local, values, folds) -> str:
    """Samples when the file spans the end of daylight-saving time: repeated local times are read in
    file order (before the clock went back: daylight time; after: standard time)."""
    utc = _utc_sql("ts_local", ctx, None)  # DuckDB/ICU reads a repeated time as standard time
    cases = []
    for start, end, shift in folds:
        s, e = start.strftime("%Y-%m-%d %H:%M:%S"), end.strftime("%Y-%m-%d %H:%M:%S")
        # the row where the clock jumped back: the first in the window earlier than a previous one
        jump = con.sql(
            f"SELECT min(rn) FROM (SELECT rn, ts_local, max(ts_local) OVER (ORDER BY rn ROWS BETWEEN UNBOUNDED "
            f"PRECEDING AND 1 PRECEDING) AS before FROM (SELECT rn, {ts_local} AS ts_local FROM "
            f"(SELECT rn, {split} AS s FROM (SELECT row_number() OVER () AS rn, l FROM lines) WHERE {where})) "
            f"WHERE ts_local >= TIMESTAMP '{s}' AND ts_local < TIMESTAMP '{e}') "
            f"WHERE ts_local < before - INTERVAL 10 MINUTE", params=params).fetchall()[0][0]
        if jump is None:
            has_before = con.sql(
                f"SELECT count(*) FROM (SELECT {ts_local} AS ts_local FROM (SELECT {split} AS s FROM lines "
                f"WHERE {where})) WHERE ts_local < TIMESTAMP '{s}'", params=params).fetchall()[0][0]
            jump = 2**62 if has_before else 0
            trace.warnings.append(
                f"local times {s}..{e} ({ctx.tz_name}) occur twice (end of daylight-saving time) and the file "
                f"does not show the clock going back; read as {'daylight' if has_before else 'standard'} time")
        else:
            trace.notes.append(f"repeated hour {s}..{e} ({ctx.tz_name}) read in file order (clock went back "
                               f"at line {jump})")
        us = int(shift.total_seconds() * 1_000_000)
        cases.append(f"WHEN ts_local >= TIMESTAMP '{s}' AND ts_local < TIMESTAMP '{e}' AND rn < {jump} "
                     f"THEN {utc} - INTERVAL '{us} microseconds'")
    return (f"(SELECT sensor_key, CASE {' '.join(cases)} ELSE {utc} END AS ts, v FROM ("
            f"  SELECT rn, {key_sql} AS sensor_key, {ts_local} AS ts_local, [{values}] AS v FROM "
            f"  (SELECT rn, {split} AS s FROM (SELECT row_number() OVER () AS rn, l FROM lines) WHERE {where})))")
