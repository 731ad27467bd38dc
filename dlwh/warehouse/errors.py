"""DuckDB's errors as dlwh's: one line a person can act on, in one place.

``translate(err, path=...)`` turns any ``duckdb.Error`` into a ``DlwhError`` (or ``UsageError``); the
CLI's error handler calls it for every DuckDB error that reaches it, and library code may call it
where it knows more (the warehouse path, the SQL the user typed). Imports nothing heavy, so the
CLI's error handler can use it from every command, ``collect`` included.
"""

from __future__ import annotations

import os
import re

from dlwh.errors import DlwhError, UsageError, WarehouseError

_LOCK = re.compile(r'Could not set lock on file "(?P<path>[^"]*)"')
_PID = re.compile(r"\(PID (\d+)\)")
_READ_ONLY = re.compile(r'Cannot execute statement of type "(?P<kind>[^"]+)" on database "[^"]*" which is attached '
                        r"in read-only mode")
_PREFIX = re.compile(r"^[A-Za-z ]*Error: ")  # 'Catalog Error: ', 'Binder Error: ', ...
_SQL_KINDS = ("CatalogException", "BinderException", "ParserException", "ConversionException",
              "InvalidInputException", "NotImplementedException", "OutOfRangeException",
              "ConstraintException", "InvalidTypeException", "TypeMismatchException", "SyntaxException")


def first_line(err: BaseException) -> str:
    """The first non-empty line of an error's text (DuckDB adds context lines and caret diagrams)."""
    for line in str(err).strip().splitlines():
        if line.strip():
            return line.strip()
    return type(err).__name__


def is_duckdb_error(err: BaseException) -> bool:
    """True for DuckDB's exceptions, without importing duckdb (its classes live in ``_duckdb``)."""
    return any(c.__module__ in ("duckdb", "_duckdb") or c.__module__.startswith("duckdb.")
               for c in type(err).__mro__)


def _kind(err: BaseException) -> set[str]:
    return {c.__name__ for c in type(err).__mro__}


def translate(err: BaseException, *, path: str | os.PathLike[str] | None = None, sql: bool = False) -> DlwhError:
    """A dlwh error for a DuckDB error ``err`` (one line, what is wrong; what to do).

    ``path`` names the warehouse in the message when the error concerns the file; ``sql`` says that
    the statement came from the user (``dlwh sql``), so that syntax, catalog and binder errors read
    ``SQL error: ...``. Anything else becomes ``DuckDB error: <first line>``.
    """
    if isinstance(err, DlwhError):
        return err
    text = str(err)
    kinds = _kind(err)
    where = f" {path}" if path is not None else ""
    lock = _LOCK.search(text)
    if lock:
        pid = _PID.search(text)
        holder = f" (PID {pid.group(1)})" if pid else ""
        return WarehouseError(f"the warehouse {path or lock.group('path')} is in use by another dlwh process"
                              f"{holder}; wait for it or use another --db")
    if "different configuration than existing connections" in text:
        return WarehouseError(f"the warehouse{where} is already open in this process, read-only where this needs "
                              "writing or the other way round; close that connection first")
    read_only = _READ_ONLY.search(text)
    if read_only:
        if sql:
            return UsageError(f"dlwh sql opens the warehouse read-only and {read_only.group('kind')} would change "
                              "it; pass --write to allow changes")
        return WarehouseError(f"the warehouse{where} is open read-only and {read_only.group('kind')} would change it; "
                              "this command only reads, so this is a bug: set DLWH_DEBUG=1 and report it")
    if "OutOfMemoryException" in kinds:
        return DlwhError(f"out of memory in DuckDB ({_PREFIX.sub('', first_line(err))}); set DLWH_MEMORY_LIMIT "
                         "(e.g. 4GiB) to spill to disk, or narrow the query")
    if "IOException" in kinds and path is not None:
        return WarehouseError(f"cannot open warehouse {path}: {first_line(err)}")
    if sql and kinds.intersection(_SQL_KINDS):
        return DlwhError(f"SQL error: {first_line(err)}")
    if "InterruptException" in kinds:
        return DlwhError("interrupted")
    return DlwhError(f"DuckDB error: {first_line(err)}")
