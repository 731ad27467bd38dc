"""Helpers shared by the CLI commands: the --db option and turning errors into one line."""

from __future__ import annotations

import functools
import os
import sys
from typing import Any, Callable, Optional, TypeVar

import typer

from dlwh.errors import DlwhError

F = TypeVar("F", bound=Callable[..., Any])

DbOption = typer.Option(
    None,
    "--db",
    envvar="DLWH_DB",
    help="Warehouse file (default ./dlwh.duckdb; env DLWH_DB).",
    show_default=False,
)


def fail(message: str, code: int = 1) -> None:
    """Print ``error: message`` to stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def friendly_errors(func: F) -> F:
    """Turn dlwh's own errors (and a few common OS ones) into one line and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DlwhError as err:
            fail(str(err), err.exit_code)
        except FileNotFoundError as err:
            fail(f"no such file: {err.filename}; check the path", 2)
        except PermissionError as err:
            fail(f"permission denied: {err.filename}", 1)
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130)
        except ImportError as err:
            name = getattr(err, "name", None) or str(err)
            fail(f"missing Python package {name!r}; install it with: pip install 'dlwh[all]'", 1)
        except typer.Exit:
            raise
        except BrokenPipeError:
            quiet_broken_pipe()
        except Exception as err:  # last resort: one line, the traceback only on request
            if os.environ.get("DLWH_DEBUG"):
                raise
            from dlwh.warehouse.errors import is_duckdb_error, translate  # imports no duckdb

            if is_duckdb_error(err):
                dlwh_err = translate(err)
                fail(str(dlwh_err), dlwh_err.exit_code)
            fail(f"internal error: {type(err).__name__}: {err} (set DLWH_DEBUG=1 for the traceback "
                 "and report it)", 1)

    return wrapper  # type: ignore[return-value]


def quiet_broken_pipe() -> None:
    """The reader of our output went away (``dlwh sql ... | head``): stop quietly with exit 0.

    Standard output is pointed at /dev/null so that Python's final flush does not fail again.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass  # no real file descriptor (tests capturing output)
    raise typer.Exit(0)


def db_arg(db: Optional[str]) -> Optional[str]:
    """The --db value as given (None means: $DLWH_DB or ./dlwh.duckdb)."""
    return db


def is_tty() -> bool:
    """True when stderr is a terminal (progress bars are drawn only then)."""
    return sys.stderr.isatty()
