"""Why a file failed, as one line for people: every exception a parser or the loader may raise.

One place turns an exception into (message, line number or None, internal?):

* ``ParseError`` / ``DlwhError``: their own message (and line);
* DuckDB's errors: the first line, without the SQL excerpt DuckDB appends, in words where known
  (wrong column counts, numbers out of range, duplicate keys, unreadable text);
* ``OSError``: "cannot read (reason)";
* anything else is a bug in dlwh: "internal error: Type: text", and ``internal`` is True, so that the
  summary says so and the exit code is 1. With ``DLWH_DEBUG=1`` the traceback goes to stderr.
"""

from __future__ import annotations

import os
import re
import sys
import traceback
from dataclasses import dataclass

import duckdb

from dlwh.errors import DlwhError, ParseError
from dlwh.ingest.validate import parse_check_error

_CSV_LINE = re.compile(r"CSV Error on Line: (\d+)")
_COLUMNS = re.compile(r"Expected Number of Columns: (\d+) Found: (\d+)")
_OUT_OF_RANGE = re.compile(r"Type (\w+) with value (\S+) can't be cast because the value is out of range "
                           r"for the destination type (\w+)")
_NOT_CONVERTED = re.compile(r"Could not convert string '([^']{0,40})[^']*' to (\w+)")
_DUPLICATE = re.compile(r"(?:Duplicate key|duplicate key) \"?([^\"]{0,120})")
_PREFIX = re.compile(r"^[A-Z][A-Za-z ]{0,40} Error: ")
MAX_MESSAGE = 300  # characters of a foreign message kept (the rest is cut with '...')


@dataclass
class Failure:
    """One file's failure: the one-line message, the 1-based line where known, and whether it is a bug."""

    message: str
    line: int | None = None
    internal: bool = False


def debug_enabled() -> bool:
    """True when DLWH_DEBUG is set to something other than '' or '0'."""
    return os.environ.get("DLWH_DEBUG", "") not in ("", "0")


def _one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """The first non-empty line of ``text``, NULs and control characters shown escaped, cut to MAX_MESSAGE."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    first = lines[0] if lines else ""
    first = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in first)
    return first if len(first) <= limit else first[:limit] + "..."


def describe_duckdb_error(err: Exception) -> tuple[str, int | None]:
    """A DuckDB error (often from read_csv) as one line for people, and the line number if known."""
    text = str(err)
    checked = parse_check_error(text)
    if checked is not None:  # a value refused by dlwh.ingest.validate
        return checked
    line_match = _CSV_LINE.search(text)
    line = int(line_match.group(1)) if line_match else None
    columns = _COLUMNS.search(text)
    if columns:
        return f"wrong number of columns (expected {columns.group(1)}, found {columns.group(2)})", line
    first = _one_line(text)
    if line_match:
        return f"cannot read this CSV ({first})", line
    out_of_range = _OUT_OF_RANGE.search(text)
    if out_of_range:
        value, target = out_of_range.group(2), out_of_range.group(3)
        return f"a number is out of range for its column ({value} does not fit {target})", line
    not_converted = _NOT_CONVERTED.search(text)
    if not_converted:
        return f"a value is not a number ({not_converted.group(1)!r} is not {not_converted.group(2)})", line
    duplicate = _DUPLICATE.search(text)
    if duplicate and isinstance(err, duckdb.ConstraintException):
        return (f"duplicate key ({duplicate.group(1).rstrip()}): the warehouse already holds it from another "
                "file, or the file repeats it"), line
    return f"could not load ({_PREFIX.sub('', first)})", line


def describe(err: BaseException) -> Failure:
    """``err`` (raised while reading, parsing or loading one file) as a Failure."""
    if isinstance(err, ParseError):
        return Failure(_one_line(str(err), 4 * MAX_MESSAGE), err.line)
    if isinstance(err, DlwhError):
        return Failure(_one_line(str(err), 4 * MAX_MESSAGE))
    if isinstance(err, duckdb.Error):
        message, line = describe_duckdb_error(err)
        return Failure(message, line)
    if isinstance(err, OSError):
        reason = err.strerror or _one_line(str(err)) or type(err).__name__
        return Failure(f"cannot read ({reason})")
    if isinstance(err, ValueError) and "Exceeds the limit" in str(err) and "digits" in str(err):
        # Python refuses to convert integers of over 4,300 digits (a guard against slow conversions)
        return Failure("a number has more than 4,300 digits; the file is damaged")
    if isinstance(err, MemoryError):
        return Failure("not enough memory to read this file", internal=False)
    if debug_enabled():
        traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)
    text = _one_line(str(err))
    hint = "set DLWH_DEBUG=1 for the traceback" if not debug_enabled() else "traceback above"
    return Failure(f"internal error: {type(err).__name__}{': ' + text if text else ''} "
                   f"(a bug in dlwh: {hint} and report it)", internal=True)
