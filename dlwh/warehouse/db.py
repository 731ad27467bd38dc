"""Open the warehouse file and bring its schema up to date.

The DDL lives in numbered ``sql/NNNN_name.sql`` files inside the package; ``schema_version``
records which have been applied. An older warehouse is migrated when opened; a newer one is refused.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import duckdb

from dlwh.errors import UsageError, WarehouseError
from dlwh.models.store import seed_zoo_complexity

DEFAULT_DB = "dlwh.duckdb"
_MEMORY = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.I)
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def _migrations() -> list[tuple[int, str, str]]:
    """All packaged migrations as (version, file name, SQL text), in order."""
    found = []
    for entry in resources.files("dlwh.warehouse").joinpath("sql").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


SCHEMA_VERSION = max(v for v, _, _ in _migrations())


def _apply_memory_limit(con: duckdb.DuckDBPyConnection) -> None:
    """``DLWH_MEMORY_LIMIT`` (e.g. 1500MB, 4GiB) as DuckDB's memory limit: larger queries spill to disk
    (next to the warehouse) instead of growing; unset: DuckDB's default, 80 % of the machine's memory."""
    limit = os.environ.get("DLWH_MEMORY_LIMIT", "").strip()
    if not limit:
        return
    if not _MEMORY.match(limit):
        con.close()
        raise UsageError(f"DLWH_MEMORY_LIMIT={limit!r} is not a size such as 1500MB or 4GiB")
    con.execute(f"SET memory_limit = '{limit}'")  # checked above: digits and a unit only


def resolve_db_path(db: str | os.PathLike[str] | None) -> Path:
    """The warehouse path: the argument, else ``$DLWH_DB``, else ``./dlwh.duckdb``."""
    return Path(db or os.environ.get("DLWH_DB") or DEFAULT_DB)


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    """The schema version recorded in the file (0 for a new, empty file)."""
    has_table = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
    ).fetchone()[0]
    if not has_table:
        return 0
    row = con.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Apply every packaged migration newer than the file's version, each in one transaction."""
    version = current_version(con)
    if version > SCHEMA_VERSION:
        raise WarehouseError(
            f"this warehouse has schema version {version}, newer than this dlwh understands "
            f"({SCHEMA_VERSION}); upgrade dlwh (pip install -U dlwh) to open it"
        )
    for number, name, sql in _migrations():
        if number <= version:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMP)"
            )
            con.execute(sql)
            con.execute(
                "INSERT INTO schema_version VALUES (?, ?, ?)",
                [number, name, datetime.now(timezone.utc).replace(tzinfo=None)],
            )
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
    return SCHEMA_VERSION


def open_warehouse(
    db: str | os.PathLike[str] | None = None, *, read_only: bool = False
) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) and migrate the warehouse; returns a DuckDB connection.

    ``read_only`` opens an existing file without migrating it (for queries).
    """
    path = resolve_db_path(db)
    if read_only and not path.exists():
        raise WarehouseError(
            f"no warehouse at {path}; run 'dlwh ingest PATH' first or pass --db / set DLWH_DB"
        )
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            _copy_template(path)
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as err:
        raise WarehouseError(f"cannot open warehouse {path}: {err}") from None
    except duckdb.Error as err:
        raise WarehouseError(f"{path} is not a DuckDB warehouse ({err}); pass another --db") from None
    con.execute("SET TimeZone = 'UTC'")
    _apply_memory_limit(con)
    if read_only:
        version = current_version(con)
        if version > SCHEMA_VERSION:
            con.close()
            raise WarehouseError(
                f"this warehouse has schema version {version}, newer than this dlwh understands "
                f"({SCHEMA_VERSION}); upgrade dlwh to open it"
            )
        if version < SCHEMA_VERSION:
            con.close()
            con = duckdb.connect(str(path))
            con.execute("SET TimeZone = 'UTC'")
            _apply_memory_limit(con)
            migrate(con)
            seed_zoo_complexity(con)
        return con
    migrate(con)
    seed_zoo_complexity(con)
    return con


# -- new warehouses from a template ------------------------------------------------------------------
# Creating the schema binds some fifty views and macros (about 0.1 s). A new warehouse is instead a
# copy of an empty, fully migrated one, made once per schema and DuckDB version in the user's cache;
# its schema_version rows then get this warehouse's time. Any trouble with the cache (no home, read-only,
# a half-written file) falls back to migrating in place.

def _template_path() -> Path | None:
    base = os.environ.get("DLWH_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "dlwh")
    if base in ("", "0", "off"):
        return None
    digest = hashlib.sha256("\0".join(sql for _, _, sql in _migrations()).encode()).hexdigest()[:12]
    return Path(base) / f"warehouse-v{SCHEMA_VERSION}-{digest}-duckdb{duckdb.__version__}.duckdb"


def _copy_template(path: Path) -> None:
    """Make ``path`` (which does not exist) a copy of the cached empty warehouse, creating that first."""
    template = _template_path()
    if template is None:
        return
    try:
        if not template.exists():
            template.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=template.parent) as tmp:
                fresh = Path(tmp) / template.name
                con = duckdb.connect(str(fresh))
                try:
                    con.execute("SET TimeZone = 'UTC'")
                    migrate(con)
                    seed_zoo_complexity(con)
                finally:
                    con.close()
                os.replace(fresh, template)  # atomic: readers see all of it or nothing
        # copied beside the target and linked into place only if the name is still free, so that two
        # processes creating one warehouse at once never write over a file the other has opened
        copy = path.with_name(f".{path.name}.{os.getpid()}.new")
        try:
            shutil.copyfile(template, copy)
            con = duckdb.connect(str(copy))
            try:
                con.execute("UPDATE schema_version SET applied_at = ?",
                            [datetime.now(timezone.utc).replace(tzinfo=None)])
            finally:
                con.close()
            try:
                os.link(copy, path)
            except FileExistsError:
                pass  # another process made it first: open that one
        finally:
            for leftover in (copy, Path(f"{copy}.wal")):
                leftover.unlink(missing_ok=True)
    except (OSError, duckdb.Error) as err:
        if isinstance(err, duckdb.Error):
            template.unlink(missing_ok=True)  # made again next time
