"""The record of the power limits a sweep changed, written before the first change.

A sweep writes the original limit of every GPU it will touch to
``$XDG_STATE_HOME/dlwh/power-limits-<host>-<sweep id>.json`` (``platformdirs.user_state_dir``) and
a copy beside its runs (``<--out or traces>/.dlwh-power-limits-<sweep id>.json``) BEFORE it sets a
limit, and deletes both once every GPU is back. A record that outlives its sweep (SIGKILL, a
crash, a power cut) is what ``dlwh collect restore`` and the next sweep put back; a sweep never
takes a lowered limit for an original while such a record exists.

No NVML here: reading, writing and finding records only (docs/recording.md, "Power limits").
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

FORMAT = "dlwh-power-limits"
FORMAT_VERSION = 1
PREFIX = "power-limits-"
COPY_PREFIX = ".dlwh-power-limits-"
ENV_STATE_DIR = "DLWH_STATE_DIR"
"""Overrides the state directory (default ``platformdirs.user_state_dir("dlwh")``)."""


def state_dir() -> Path:
    """Where records live: ``$DLWH_STATE_DIR``, else the platform's user state dir for dlwh
    (``$XDG_STATE_HOME/dlwh``, by default ``~/.local/state/dlwh`` on Linux)."""
    env = os.environ.get(ENV_STATE_DIR)
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_state_dir("dlwh", appauthor=False))


def hostname() -> str:
    return socket.gethostname() or "localhost"


@dataclass
class GpuLimit:
    """One GPU's original limit: NVML index, UUID, limit in mW."""

    index: int
    uuid: str
    original_mw: int


@dataclass
class Record:
    """A sweep's record: who changed which limits, and where the record's files are."""

    sweep_id: str
    gpus: list[GpuLimit]
    host: str = field(default_factory=hostname)
    pid: int = field(default_factory=os.getpid)
    started_unix_s: float = field(default_factory=time.time)
    paths: list[str] = field(default_factory=list)  # the record itself and its copy

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **d}

    @classmethod
    def from_json(cls, obj: Any, path: Path) -> "Record":
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise ValueError(f"{path} is not a dlwh power-limit record")
        gpus = [GpuLimit(int(g["index"]), str(g["uuid"]), int(g["original_mw"])) for g in obj["gpus"]]
        return cls(sweep_id=str(obj["sweep_id"]), gpus=gpus, host=str(obj["host"]), pid=int(obj["pid"]),
                   started_unix_s=float(obj.get("started_unix_s", 0.0)),
                   paths=[str(p) for p in obj.get("paths", [])] or [str(path)])

    def describe(self) -> str:
        """``sweep 1a2b3c4d (pid 123, started 2026-12-08 01:02 UTC)``."""
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self.started_unix_s))
        return f"sweep {self.sweep_id} (pid {self.pid}, started {when})"

    def alive(self) -> bool:
        """True while the dlwh process that wrote this record still runs on this host."""
        if self.host != hostname() or self.pid == os.getpid():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        try:  # a reused pid is not our sweep
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return True
        return b"dlwh" in cmdline


def _write_atomic(path: Path, data: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save(record: Record, copy_dir: Optional[Union[str, os.PathLike]] = None) -> list[Path]:
    """Write the record to the state dir (and a copy into ``copy_dir``); fsync'd. Returns the paths.

    Raises OSError when the state dir cannot be written (the caller must not change a limit then).
    """
    if not record.paths:
        paths = [state_dir() / f"{PREFIX}{record.host}-{record.sweep_id}.json"]
        if copy_dir is not None:
            paths.append(Path(copy_dir) / f"{COPY_PREFIX}{record.sweep_id}.json")
        record.paths = [str(p) for p in paths]
    data = json.dumps(record.to_json(), indent=2) + "\n"
    written = []
    for i, p in enumerate(map(Path, record.paths)):
        try:
            _write_atomic(p, data)
            written.append(p)
        except OSError:
            if i == 0:  # the state dir record is the one that must exist
                raise
    return written


def load(path: Union[str, os.PathLike]) -> Record:
    """Read one record (ValueError when it is not one)."""
    p = Path(path)
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{p} is not a dlwh power-limit record ({err.msg})") from None
    rec = Record.from_json(obj, p)
    if str(p) not in rec.paths:
        rec.paths.insert(0, str(p))
    return rec


def pending(directory: Optional[Path] = None) -> list[Record]:
    """Records of this host in the state dir, oldest first (unreadable files are skipped)."""
    d = directory or state_dir()
    host = hostname()
    out = []
    for p in sorted(d.glob(f"{PREFIX}*.json")) if d.is_dir() else []:
        try:
            rec = load(p)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if rec.host == host:
            out.append(rec)
    return sorted(out, key=lambda r: r.started_unix_s)


def remove(record: Record) -> None:
    """Delete the record and its copy (every GPU is back)."""
    for p in record.paths:
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


def keep_only(record: Record, uuids: set[str]) -> None:
    """Rewrite the record with only the GPUs in ``uuids`` (the rest are back); remove it if none."""
    record.gpus = [g for g in record.gpus if g.uuid in uuids]
    if record.gpus:
        save(record)
    else:
        remove(record)
