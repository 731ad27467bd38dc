"""The workload's process: find the program, start it in its own process group, copy its output."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Optional, Sequence

from dlwh.errors import DlwhError, UsageError


class CommandNotFound(DlwhError):
    """The workload's program does not exist."""

    exit_code = 127


def resolve_program(command: Sequence[str], env: dict[str, str]) -> None:
    """Raise CommandNotFound (or UsageError for an empty command) before anything is recorded."""
    if not command:
        raise UsageError("no command to run; put it after --, e.g. dlwh collect -- python train.py")
    prog = command[0]
    if os.sep in prog or (os.altsep and os.altsep in prog):
        if not (os.path.isfile(prog) and os.access(prog, os.X_OK)):
            raise CommandNotFound(f"cannot run {prog!r}: no such executable file; check the path")
    elif shutil.which(prog, path=env.get("PATH")) is None:
        raise CommandNotFound(f"command not found: {prog!r}; check the name or your PATH")


def popen(command: Sequence[str], env: dict[str, str], capture: bool) -> subprocess.Popen[bytes]:
    """Start ``command`` as the leader of a new process group (signals go to the whole group)."""
    kw: dict[str, Any] = {"env": env}
    if sys.version_info >= (3, 11):
        kw["process_group"] = 0
    else:  # pragma: no cover - Python 3.10
        kw["start_new_session"] = True
    if capture:
        kw["stdout"] = subprocess.PIPE
        kw["stderr"] = subprocess.PIPE
    return subprocess.Popen(list(command), **kw)


def signal_group(child: Optional[subprocess.Popen[bytes]], sig: int) -> None:
    """Send ``sig`` to the child's process group (or the child alone); nothing if it has ended."""
    if child is None or child.poll() is not None:
        return
    try:
        os.killpg(child.pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            child.send_signal(sig)
        except ProcessLookupError:
            pass


def kill_group(child: Optional[subprocess.Popen[bytes]]) -> None:
    """SIGKILL the child's process group if it still runs."""
    signal_group(child, signal.SIGKILL)


def tee(pipe: Any, path: Path, console: Any) -> threading.Thread:
    """Copy ``pipe`` to ``path`` and to ``console`` (a binary stream) in a thread, until EOF."""

    def run() -> None:
        with open(path, "wb") as f:
            fd = pipe.fileno()
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                f.write(chunk)
                f.flush()
                try:
                    console.write(chunk)
                    console.flush()
                except (OSError, ValueError):
                    pass

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t
