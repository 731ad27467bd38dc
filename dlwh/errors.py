"""The project's own exception types; the CLI turns each into one line for people."""

from __future__ import annotations


class DlwhError(Exception):
    """An error a user can act on. ``str(err)`` is the whole message, hint included."""

    exit_code = 1


class UsageError(DlwhError):
    """A wrong option or argument."""

    exit_code = 2


class WarehouseError(DlwhError):
    """The warehouse file cannot be opened or is of an unknown (newer) schema."""


class ParseError(DlwhError):
    """A trace file that looks like a known format but cannot be read.

    ``line`` is the 1-based line number where reading failed, when known.
    """

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line
