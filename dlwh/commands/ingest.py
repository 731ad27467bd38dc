"""`dlwh ingest PATH...`: load trace files and folders into the warehouse."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, List, Optional

import typer

from dlwh.commands._common import DbOption, fail, friendly_errors, is_tty
from dlwh.errors import UsageError


def parse_tags(pairs: list[str] | None) -> dict[str, str]:
    """['model=resnet50', 'batch_size=64'] → dict; a pair without '=' is a UsageError."""
    tags: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--tag {pair!r} is not key=value (e.g. --tag model=resnet50)")
        tags[key.strip()] = value.strip()
    return tags


def register(app: typer.Typer) -> None:
    """Add `ingest` to the app."""

    @app.command("ingest")
    @friendly_errors
    def ingest(
        paths: List[str] = typer.Argument(..., help="Trace files or folders (searched recursively)."),
        db: Optional[str] = DbOption,
        tz: Optional[str] = typer.Option(None, "--tz", help="Zone of local timestamps (nvidia-smi) when no run.json says it, e.g. Europe/Berlin. Default: this machine's zone."),
        start: Optional[str] = typer.Option(None, "--start", help="Start time anchoring traces with only relative times (perf -I, powermetrics), ISO 8601; naive = the --tz zone."),
        run_id: Optional[str] = typer.Option(None, "--run-id", help="Run id for files outside a run directory (default: <file stem>-<sha8>)."),
        tag: Optional[List[str]] = typer.Option(None, "--tag", help="key=value tag for the runs loaded (repeatable)."),
        fields: Optional[str] = typer.Option(None, "--fields", help="Field list of headerless nvidia-smi CSVs, as given to --query-gpu."),
        gpu: Optional[str] = typer.Option(None, "--gpu", help="GPU of summary files that do not name it (Zeus summary_power / profiles), e.g. A40."),
        interval_s: Optional[float] = typer.Option(None, "--interval-s", help="Sampling interval (s) of logs without per-reading times (dmon, repeated ipmitool polls), used with --start."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Show what would load; change nothing."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only failures and the summary."),
    ) -> None:
        """Load traces (nvidia-smi, perf, ipmitool, powermetrics, dlwh runs, ...) into the warehouse."""
        from dlwh.ingest.loader import IngestOptions, format_summary, ingest_paths
        from dlwh.warehouse import resolve_db_path, warehouse

        options = IngestOptions(tz=tz, start=start, run_id=run_id, tags=parse_tags(tag), dry_run=dry_run,
                                format_options={k: v for k, v in (("fields", fields), ("gpu", gpu), ("interval_s", interval_s))
                                                if v is not None})
        progress = _progress() if is_tty() and not quiet else None

        def on_file(result, done, total):
            if progress is not None:
                progress.update(done, total, result.path.name)
            if quiet and result.outcome != "failed":
                return
            line = result.describe()
            if progress is not None:
                progress.clear()
            typer.echo(line, err=result.outcome == "failed")

        try:
            with _dry_run_warehouse(db) if dry_run else warehouse(db) as con:
                results = ingest_paths(con, paths, options, on_file)
        finally:
            if progress is not None:
                progress.clear()
        typer.echo("")
        typer.echo(format_summary(results))
        where = resolve_db_path(db)
        failed = [r for r in results if r.outcome == "failed"]
        verb = "would load into" if dry_run else "warehouse:"
        typer.echo(f"{verb} {where}")
        if failed:
            internal = sum(1 for r in failed if r.internal)
            bug = (f", {internal} of them on an internal error (a bug in dlwh: rerun with DLWH_DEBUG=1 and report it)"
                   if internal else "")
            fail(f"{len(failed)} file(s) failed (listed above){bug}; the rest loaded and the failed ones changed "
                 "nothing", 1)


@contextmanager
def _dry_run_warehouse(db: Optional[str]) -> Iterator[Any]:
    """--dry-run changes nothing: every file's transaction is rolled back, and where no warehouse exists
    yet a temporary empty one stands in for it (no file or folder is made at --db)."""
    import tempfile

    from dlwh.warehouse import resolve_db_path, warehouse

    if resolve_db_path(db).is_file():
        with warehouse(db) as con:
            yield con
        return
    with tempfile.TemporaryDirectory(prefix="dlwh-dry-run-") as tmp:
        with warehouse(Path(tmp) / "dry-run.duckdb") as con:
            yield con


class _progress:
    """A one-line progress display on stderr (files done / total)."""

    def update(self, done: int, total: int, name: str) -> None:
        typer.echo(f"\r[{done}/{total}] {name[:60]:<60}", err=True, nl=False)

    def clear(self) -> None:
        typer.echo("\r" + " " * 72 + "\r", err=True, nl=False)
