"""carbontracker logs and stdout (placeholder: recognises nothing until its parser lands)."""

from pathlib import Path

NAME = "carbontracker-log"


def sniff(head: str, path: Path) -> bool:
    """Not implemented yet: never claims a file."""
    return False


def parse(ctx):
    """Not implemented yet."""
    raise NotImplementedError(NAME)
