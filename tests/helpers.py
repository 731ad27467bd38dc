"""Small helpers shared by the parser tests."""

from __future__ import annotations

from pathlib import Path


def counts(con) -> tuple[int, int, int, int]:
    """Rows in samples, sensors, files and runs (to show a failed ingest changed nothing)."""
    return tuple(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("samples", "sensors", "files", "runs"))


def write(tmp_path: Path, name: str, text: str) -> Path:
    """Write ``text`` to tmp_path/name and return the path."""
    path = tmp_path / name
    path.write_text(text)
    return path
