"""perf stat -j (placeholder: recognises nothing until its parser lands)."""

from pathlib import Path

NAME = "perf-stat-json"


def sniff(head: str, path: Path) -> bool:
    """Not implemented yet: never claims a file."""
    return False


def parse(ctx):
    """Not implemented yet."""
    raise NotImplementedError(NAME)
