"""Open the warehouse file and bring its schema up to date; the one way to open and change it.

``warehouse(path, read_only=..., create=...)`` opens (and closes) a connection; ``transaction(con)``
wraps a change (BEGIN, COMMIT, or ROLLBACK first on any exception, then the same exception).

The DDL lives in numbered ``sql/NNNN_name.sql`` files inside the package; ``schema_version``
records which have been applied. Opened for writing, an older warehouse is migrated; opened
read-only, it is refused with a hint to run ``dlwh migrate`` (read-only never writes); a newer one
is always refused.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Iterator

import duckdb

from dlwh.errors import UsageError, WarehouseError
from dlwh.warehouse.errors import translate
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
        with transaction(con):
            con.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMP)"
            )
            con.execute(sql)
            con.execute(
                "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                [number, name, datetime.now(timezone.utc).replace(tzinfo=None)],
            )
    return SCHEMA_VERSION


def open_warehouse(
    db: str | os.PathLike[str] | None = None, *, read_only: bool = False, create: bool = True
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection to the warehouse (``db``, else ``$DLWH_DB``, else ``./dlwh.duckdb``).

    ``read_only``: the file must exist and be of this dlwh's schema; it is opened with DuckDB's
    ``read_only=True`` (several readers at once, nothing written, nothing migrated). Otherwise the
    file is migrated to this dlwh's schema and, when missing, created (with its folder) if
    ``create``, else refused. Prefer ``with warehouse(...) as con:``, which also closes it.
    """
    path = resolve_db_path(db)
    if (read_only or not create) and not path.is_file():
        raise WarehouseError(f"no warehouse at {path}; run dlwh ingest first")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            _copy_template(path)
    try:
        con = _connect(path, read_only)
    except (duckdb.IOException, duckdb.ConnectionException) as err:
        raise translate(err, path=path) from None
    except duckdb.Error as err:
        raise WarehouseError(f"{path} is not a DuckDB warehouse ({err}); pass another --db") from None
    try:
        con.execute("SET TimeZone = 'UTC'")
        _apply_memory_limit(con)
        if read_only:
            _check_read_only_version(con, path)
        else:
            migrate(con)
            seed_zoo_complexity(con)
    except BaseException:
        con.close()
        raise
    return con


def _connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """DuckDB's connection; read-only where this process has not opened the file for writing already.

    DuckDB keeps one database instance per file and process, with one configuration: where this
    process (a notebook, a test) holds the warehouse open for writing, a read-only open shares that
    instance. Read-only commands still write nothing (``dlwh sql`` then checks statements itself:
    ``dlwh.warehouse.query.refuse_writes``).
    """
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.ConnectionException as err:
        if not read_only or "different configuration" not in str(err):
            raise
        return duckdb.connect(str(path))


def is_read_only(con: duckdb.DuckDBPyConnection) -> bool:
    """True when DuckDB itself refuses writes on this connection's warehouse."""
    row = con.execute("SELECT readonly FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    return bool(row and row[0])


def _check_read_only_version(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Refuse a read-only warehouse whose schema is not this dlwh's (read-only never migrates)."""
    version = current_version(con)
    if version > SCHEMA_VERSION:
        raise WarehouseError(
            f"this warehouse has schema version {version}, newer than this dlwh understands "
            f"({SCHEMA_VERSION}); upgrade dlwh (pip install -U dlwh) to open it"
        )
    if version < SCHEMA_VERSION:
        raise WarehouseError(
            f"the warehouse {path} has schema version {version}, older than this dlwh's ({SCHEMA_VERSION}); "
            f"run dlwh migrate --db {path} (or any dlwh ingest) to bring it up to date"
        )


def upgrade(db: str | os.PathLike[str] | None = None) -> tuple[int, int]:
    """Migrate an existing warehouse to this dlwh's schema; returns (version before, version after)."""
    path = resolve_db_path(db)
    before = 0
    if path.is_file():
        try:
            con = _connect(path, read_only=True)
        except duckdb.Error:
            con = None  # open_warehouse below says what is wrong
        if con is not None:
            try:
                before = current_version(con)
            finally:
                con.close()
    with warehouse(path, create=False) as con:
        return before, current_version(con)


@contextmanager
def warehouse(
    path: str | os.PathLike[str] | None = None, *, read_only: bool = False, create: bool = True
) -> Iterator[duckdb.DuckDBPyConnection]:
    """``with warehouse(db) as con:`` -- an open, migrated connection, closed at the end.

    ``read_only=True`` opens an existing warehouse of this schema read-only (see ``open_warehouse``);
    ``create=False`` refuses a missing file instead of making one. A DuckDB error raised in the body
    leaves as a one-line ``DlwhError`` (``dlwh.warehouse.errors.translate``), the original chained.
    """
    con = open_warehouse(path, read_only=read_only, create=create)
    try:
        yield con
    except duckdb.Error as err:
        raise translate(err, path=resolve_db_path(path)) from err
    finally:
        con.close()


class Transaction:
    """The handle ``transaction()`` yields: ``rollback()`` ends it early on purpose (a dry run)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.active = True

    def rollback(self) -> None:
        """Undo everything done in the transaction now; the ``with`` block then commits nothing."""
        if self.active:
            self.active = False
            self.con.execute("ROLLBACK")


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[Transaction]:
    """``with transaction(con):`` -- BEGIN; COMMIT at the end; on any exception ROLLBACK, then re-raise.

    The rollback runs first, before any ``finally`` outside the block, so the exception that leaves
    is the first one (cleanup on an aborted transaction would otherwise fail with DuckDB's
    'Current transaction is aborted' and hide it). A failing ROLLBACK never replaces that exception.
    """
    con.execute("BEGIN TRANSACTION")
    tx = Transaction(con)
    try:
        yield tx
    except BaseException:
        if tx.active:
            tx.active = False
            try:
                con.execute("ROLLBACK")
            except duckdb.Error:
                pass  # the connection is unusable or the transaction already gone: the first error matters
        raise
    if tx.active:
        tx.active = False
        try:
            con.execute("COMMIT")
        except BaseException:
            try:
                con.execute("ROLLBACK")
            except duckdb.Error:
                pass
            raise


# -- new warehouses from a template ------------------------------------------------------------------
# Creating the schema binds some fifty views and macros (about 0.1 s). A new warehouse is instead a
# copy of an empty, fully migrated one, made once per schema and DuckDB version in the user's cache;
# its schema_version rows then get this warehouse's time. Any trouble with the cache (no home, read-only,
# a half-written file) falls back to migrating in place.

def _template_path() -> Path | None:
    base = os.environ.get("DLWH_CACHE_DIR")
    if not base:  # the platform's user cache dir ($XDG_CACHE_HOME/dlwh, ~/.cache/dlwh on Linux)
        import platformdirs

        base = platformdirs.user_cache_dir("dlwh", appauthor=False)
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
