"""Generated parts of the docs: the formats table and the warehouse schema tables.

``python -m dlwh.docs_gen`` rewrites the text between ``<!-- BEGIN GENERATED: KEY -->`` and
``<!-- END GENERATED: KEY -->`` in the pages of ``docs/``; ``python -m dlwh.docs_gen --check`` only
says which blocks differ from the code (exit 1), as ``tests/test_cli_docs.py`` does.

The formats table comes from the format registry (``dlwh.ingest.formats.list_formats()``: each
format's name, tool, one-line description, usual file names and module). The schema tables come from a freshly migrated warehouse
(tables, views and their columns, in order), the column notes from the ``--`` comments in the
migrations (``dlwh/warehouse/sql/NNNN_*.sql``), and the "one row per" line from ``ONE_ROW_PER`` below:
a new table or view without an entry there fails the test.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = Path(__file__).resolve().parent / "warehouse" / "sql"

# What one row of each table and view is. Every table and view of the schema needs a line here.
ONE_ROW_PER: dict[str, str] = {
    # 0001 core
    "runs": "recording (a run directory, or one loose file)",
    "run_tags": "run tag (model, batch_size, epochs, precision, power_limit_w, zone, ...)",
    "files": "ingested file",
    "sensors": "thing measured (a GPU, a RAPL domain, a node's BMC, ...)",
    "samples": "reading of one metric of one sensor",
    "counters": "perf event per interval (and CPU, where per-CPU)",
    "spans": "interval inside a workload: epoch, step, phase or layer",
    "schema_version": "applied migration",
    # 0002 energy
    "power_steps": "step between consecutive power samples of one series (building block)",
    "power_cumulative": "power sample with the running integral up to it (building block)",
    "sample_gaps": "gap in a power series (a step longer than max(5 x median step, 1 s))",
    "run_energy": "run, sensor and power metric: energy, average and peak power, gaps, the source's own energy",
    "span_energy": "span, sensor and power metric: energy E(end) - E(start), average power, uncovered time",
    # 0003 models
    "zoo_models": "model of the shipped zoo",
    "model_aliases": "spelling of a model name (lower case, only [a-z0-9]) and its canonical name",
    "model_complexity": "model, input and batch size counted (zoo table, fvcore profile or import)",
    "model_ops": "operator of the latest profile of a model and input",
    "model_layers": "module of the latest profile of a model and input (rows add up to the totals)",
    "model_structure": "layer type of a user-profiled model and input: training-step MACs, elements, kernels",
    "run_complexity": "tagged run whose model has a MAC count",
    # 0004 analysis
    "zeus_power_summary": "Zeus NSDI'23 configuration and power limit (summary_power_<gpu>.csv)",
    "zeus_train_summary": "Zeus NSDI'23 configuration, seed and target: epochs to reach it (summary_train.csv)",
    "zeus_profile_windows": "Zeus power-limit profiling window and GPU",
    "perseus_iterations": "Perseus sweep row: model, parallelism and power limit (energy summed over GPUs)",
    "zeus_workloads": "public workload: its zoo model, input and epoch size (editable)",
    "zeus_workload_complexity": "Zeus workload with its MAC count (scaled to its input where needed)",
    "fitted_models": "model stored by dlwh fit (GPU scope, target, algorithm)",
    "fit_scores": "cross-validated score of a target and algorithm in the latest fit of a GPU scope",
    "steady_spans": "span counted as steady state (every epoch but the first, or every step but the first 10)",
    "run_gpus": "collected run: the GPU sensors used (one tool), the GPU name and the power limit",
    "run_measurements": "collected run with steady spans and GPU power: time, energy and samples per work unit",
    "training_data": "measured configuration and power limit, with its targets (what dlwh fit learns from)",
    # 0005 carbon
    "settings": "warehouse-wide setting (dlwh carbon set KEY VALUE)",
    "carbon_settings": "the settings, typed, with their defaults",
    "carbon_intensity": "zone and time: grid carbon intensity (fetched or ingested)",
    "carbon_intensity_yearly": "zone or country: the shipped yearly average",
    "carbon_intensity_periods": "zone and value, with the period it holds for",
    "run_carbon_params": "run: the zone, constant intensity and PUE that apply",
    "run_emissions": "run and power series (as run_energy): kWh, facility kWh, gCO2eq",
    "run_emissions_total": "run: the sums over its sensors (one power series each; node sensors win)",
    "span_emissions": "span and power series: kWh and gCO2eq",
    "span_emissions_total": "span: the sums over its sensors",
    "codecarbon_emissions": "CodeCarbon emissions.csv row",
    "carbontracker_records": "carbontracker record (epoch, intensity, forecast, actual or predicted)",
    "kernels": "nvprof kernel, memcpy or memset call",
    "kernel_metrics": "nvprof device, kernel and metric",
    "kernel_summary": "nvprof summary line (time per kernel or API call)",
    "kernel_energy": "run, kernel and device: calls, time, GPU energy during the calls, FLOP/J",
    # 0006 bench
    "bench_results": "ingested dlwh bench run with at least one steady epoch",
    # 0010 span energy (docs/spans.md)
    "span_energy_estimates": "span, power series and method (trapezoid, counter, counter_anchored): energy, error bound, resolution, note",
    "span_energy_best": "span and physical device: the best estimate (never two tools of one GPU added)",
    "span_stats": "run, kind, name and device of repeated spans: mean energy and power per repetition with 95 % intervals",
    "span_phase_sums": "run, kind, name and device of parent spans: mean energy against the mean sum of its children",
}

_CREATE = re.compile(
    r"CREATE\s+(?:OR\s+REPLACE\s+)?(TABLE|VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.I
)
_COLUMN = re.compile(r"^\s*(\w+)\s+[A-Z][A-Z0-9_]*(?:\([^)]*\))?[^-]*--\s*(.+?)\s*$")
_ADD_COLUMN = re.compile(r"ALTER\s+TABLE\s+(\w+)\s+ADD\s+COLUMN\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)[^;]*;\s*--\s*(.+)$", re.I)


@dataclass
class SchemaObject:
    """A table or view: where it is defined first, its kind, its columns and their notes."""

    name: str
    kind: str  # 'table' or 'view'
    migration: str  # e.g. '0001_core'
    order: int  # place of its CREATE among all migrations
    columns: list[str]
    notes: dict[str, str]


def _migration_defs() -> tuple[dict[str, tuple[str, int]], dict[str, dict[str, str]]]:
    """Per object: (the migration that first creates it, its place there), and its column notes."""
    first: dict[str, tuple[str, int]] = {"schema_version": ("0000_db", 0)}  # made by dlwh.warehouse.db
    notes: dict[str, dict[str, str]] = {}
    for path in sorted(SQL_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql")):
        current: str | None = None
        for line in path.read_text().splitlines():
            created = _CREATE.search(line)
            if created:
                kind, name = created.group(1).lower(), created.group(2).lower()
                first.setdefault(name, (path.stem, len(first)))
                current = name if kind == "table" else None
                continue
            added = _ADD_COLUMN.search(line)
            if added:
                notes.setdefault(added.group(1).lower(), {})[added.group(2).lower()] = added.group(3)
                continue
            if current is None:
                continue
            if line.strip().startswith(")"):
                current = None
                continue
            column = _COLUMN.match(line)
            if column and column.group(1).upper() not in {"PRIMARY", "UNIQUE", "CHECK", "FOREIGN"}:
                notes.setdefault(current, {})[column.group(1).lower()] = column.group(2)
    return first, notes


def schema_objects() -> list[SchemaObject]:
    """Every table and view of a freshly migrated warehouse, in the order the migrations create them."""
    from dlwh.warehouse import open_warehouse

    first, notes = _migration_defs()
    with tempfile.TemporaryDirectory() as tmp:
        con = open_warehouse(Path(tmp) / "schema.duckdb")
        try:
            rows = con.execute(
                "SELECT c.table_name, coalesce(v.view_name IS NOT NULL, false), c.column_name "
                "FROM duckdb_columns() c LEFT JOIN duckdb_views() v "
                "  ON v.view_name = c.table_name AND v.schema_name = c.schema_name "
                "WHERE c.schema_name = 'main' AND NOT c.internal ORDER BY c.table_name, c.column_index"
            ).fetchall()
        finally:
            con.close()
    objects: dict[str, SchemaObject] = {}
    for table, is_view, column in rows:
        obj = objects.get(table)
        if obj is None:
            migration, order = first.get(table, ("?", len(first)))
            obj = objects[table] = SchemaObject(
                table, "view" if is_view else "table", migration, order, [], notes.get(table, {})
            )
        obj.columns.append(column)
    return sorted(objects.values(), key=lambda o: (o.order, o.name))


def _cell(text: str) -> str:
    """Docstring text as one Markdown table cell: ``code`` → `code`, <, > and | escaped outside code."""
    parts = text.replace("``", "`").replace("\n", " ").split("`")
    for i in range(0, len(parts), 2):  # outside backticks
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts).replace("|", "\\|")


def schema_table(migrations: tuple[str, ...] | None = None, objects: list[SchemaObject] | None = None) -> str:
    """Markdown table of the tables and views (of the given migrations, by file stem prefix)."""
    lines = ["| table / view | one row per | columns (notes from the migration) |", "| --- | --- | --- |"]
    for obj in objects if objects is not None else schema_objects():
        if migrations and not obj.migration.startswith(migrations):
            continue
        columns = ", ".join(
            f"`{c}`" + (f" ({_cell(obj.notes[c])})" if c in obj.notes else "") for c in obj.columns
        )
        what = ONE_ROW_PER.get(obj.name, "**undocumented: add it to dlwh.docs_gen.ONE_ROW_PER**")
        label = f"`{obj.name}`" + (" (view)" if obj.kind == "view" else "")
        lines.append(f"| {label} | {_cell(what)} | {columns} |")
    return "\n".join(lines)


def format_modules() -> list[ModuleType]:
    """The registered format modules, in detection order."""
    import importlib

    return [importlib.import_module(info.module) for info in _formats()]


def _formats():
    from dlwh.ingest.formats import list_formats

    return list_formats()


def formats_table() -> str:
    """Markdown table of every format dlwh ingests (the registry's ``list_formats()``), in detection order."""
    lines = ["| tool | format (`files.format`) | what | usual files | module in `dlwh/ingest/formats/` |",
             "| --- | --- | --- | --- | --- |"]
    for info in _formats():
        path = "/".join(info.module.split(".")[3:]) + ".py"
        files = ", ".join(f"`{e}`" for e in info.extensions)
        lines.append(f"| {_cell(info.tool)} | `{info.name}` | {_cell(info.description)} | {files} | `{path}` |")
    return "\n".join(lines)


def schema_reference() -> str:
    """One table per migration (a heading each), every table and view of the schema."""
    parts = []
    objects = schema_objects()
    for migration in dict.fromkeys(o.migration for o in objects):
        title = "made by dlwh.warehouse.db" if migration == "0000_db" else f"`dlwh/warehouse/sql/{migration}.sql`"
        parts.append(f"### {title}\n\n{schema_table((migration,), objects)}\n")
    return "\n".join(parts).rstrip()


def metrics_table() -> str:
    """Markdown table of the metrics in ``samples``, by unit (from ``dlwh.metrics.METRIC_UNITS``)."""
    from dlwh.metrics import METRIC_UNITS, POWER_METRICS

    by_unit: dict[str, list[str]] = {}
    for metric, unit in METRIC_UNITS.items():
        by_unit.setdefault(unit, []).append(f"`{metric}`" + (" (integrated)" if metric in POWER_METRICS else ""))
    lines = ["| unit | metrics |", "| --- | --- |"]
    lines += [f"| {unit} | {', '.join(metrics)} |" for unit, metrics in by_unit.items()]
    return "\n".join(lines)


GENERATORS = {
    "formats": formats_table,
    "metrics": metrics_table,
    "schema": schema_reference,
}

_BLOCK = re.compile(
    r"(<!-- BEGIN GENERATED: (?P<key>[\w-]+)[^>]*-->\n)(?P<body>.*?)(<!-- END GENERATED: (?P=key) -->)", re.S
)


def render(text: str) -> str:
    """The page with every generated block rewritten from the code."""
    cache: dict[str, str] = {}

    def replace(match: re.Match[str]) -> str:
        key = match.group("key")
        if key not in GENERATORS:
            raise KeyError(f"unknown generated block {key!r}; known: {', '.join(GENERATORS)}")
        if key not in cache:
            cache[key] = GENERATORS[key]()
        return f"{match.group(1)}{cache[key]}\n{match.group(4)}"

    return _BLOCK.sub(replace, text)


def pages(docs: Path = ROOT / "docs") -> list[Path]:
    """The pages of docs/ that hold a generated block."""
    return [p for p in sorted(docs.glob("*.md")) if "<!-- BEGIN GENERATED:" in p.read_text()]


def stale_pages(docs: Path = ROOT / "docs") -> list[Path]:
    """Pages whose generated blocks differ from what the code gives now."""
    return [p for p in pages(docs) if render(p.read_text()) != p.read_text()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlwh.docs_gen", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report stale pages (exit 1 if any)")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_pages()
        for page in stale:
            print(f"error: {page.relative_to(ROOT)} is out of date; run python -m dlwh.docs_gen", file=sys.stderr)
        return 1 if stale else 0
    for page in pages():
        text = page.read_text()
        new = render(text)
        if new != text:
            page.write_text(new)
            print(f"rewrote {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
