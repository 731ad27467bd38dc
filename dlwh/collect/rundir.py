"""The run directory: its default name and its creation."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional, Sequence, Union

from dlwh.collect.clock import compact_utc
from dlwh.errors import UsageError


def default_name(command: Sequence[str]) -> str:
    """A short run name from the command: the script or module for Python, else the program."""
    prog = os.path.basename(command[0]) if command else "run"
    name = prog
    if re.match(r"^python[\d.]*$", prog) and len(command) > 1:
        args = list(command[1:])
        i = 0
        while i < len(args):
            a = args[i]
            if a == "-m" and i + 1 < len(args):
                name = args[i + 1].rsplit(".", 1)[-1]
                break
            if a == "-c":
                name = "python-c"
                break
            if not a.startswith("-"):
                name = Path(a).stem
                break
            i += 1
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "run"
    return name[:40]


def make_run_dir(out: Optional[Union[str, os.PathLike]], traces_dir: Union[str, os.PathLike],
                 name: str, utc_ns: int) -> Path:
    """Create the run directory (``out`` or ``traces_dir/<UTC>-<name>``); ``out`` must be new or empty."""
    if out is not None:
        d = Path(out)
        if d.exists() and (not d.is_dir() or any(d.iterdir())):
            raise UsageError(f"{d} already exists and is not an empty directory; "
                             "choose another --out")
        d.mkdir(parents=True, exist_ok=True)
        return d
    base = Path(traces_dir) / f"{compact_utc(utc_ns)}-{name}"
    d = base
    n = 2
    while True:
        try:
            d.mkdir(parents=True, exist_ok=False)
            return d
        except FileExistsError:
            d = base.with_name(f"{base.name}-{n}")
            n += 1
