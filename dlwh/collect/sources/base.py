"""What every source has: an availability check, start, stop, release and its manifest entry.

The runner asks a :class:`Source` everything it needs (``build``, ``choose_interval``, ``check``,
``start``, ``stop``, ``release``, ``gpu_inventory``, ``uses_local_time``) and names no concrete
source; a new source is one module here and one line in ``sources/__init__.py``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, ClassVar, Optional

from dlwh.collect.clock import Anchor, take_anchor


class SourceUnavailable(Exception):
    """A source cannot record here: ``reason`` says why, ``fix`` what would make it work."""

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(f"{reason}; {fix}")
        self.reason = reason
        self.fix = fix


class Source:
    """One way of recording. Subclasses set ``name`` and ``file_name`` and override the hooks.

    Life cycle: ``build`` → ``check`` → ``start`` → ``stop``; a checked source that will not be
    started is given back with ``release``.
    """

    name: ClassVar[str] = ""
    file_name: ClassVar[str] = ""
    min_interval_ms: ClassVar[int] = 1
    """The shortest interval used when one interval is given for every source (ms)."""
    min_interval_why: ClassVar[str] = ""
    """Why ``min_interval_ms`` (said in the manifest's notes when the interval is raised)."""
    uses_local_time: ClassVar[bool] = False
    """The tool prints local time (the runner notes it when the host time zone is unknown)."""

    def __init__(self, interval_ms: int, env: Optional[dict[str, str]] = None) -> None:
        self.interval_ms = int(interval_ms)
        self.env = dict(env if env is not None else os.environ)
        self.notes: list[str] = []
        self.tools: dict[str, str] = {}
        self.run_dir: Optional[Path] = None
        self.anchor: Optional[Anchor] = None

    @classmethod
    def build(cls, interval_ms: int, env: dict[str, str], *, gpus: Optional[list[int]] = None) -> "Source":
        """A source for this run (not yet checked); ``gpus`` limits GPU sources to those indices."""
        return cls(interval_ms, env)

    @classmethod
    def choose_interval(cls, interval_ms: int, override_ms: Optional[int] = None) -> tuple[int, Optional[str]]:
        """(interval in ms, note or None): ``override_ms`` (given for this source) wins, else
        ``interval_ms`` raised to ``min_interval_ms``."""
        if override_ms is not None:
            return int(override_ms), None
        if interval_ms < cls.min_interval_ms:
            return cls.min_interval_ms, f"polled every {cls.min_interval_ms} ms ({cls.min_interval_why})"
        return int(interval_ms), None

    def check(self) -> None:
        """Probe the tool/library; raise SourceUnavailable if it cannot record here."""

    def release(self) -> None:
        """Give back what ``check`` acquired (a library session) when the source will not start."""

    def gpu_inventory(self) -> Optional[list[dict[str, Any]]]:
        """The manifest's ``gpus`` entries if this source can tell them, else None."""
        return None

    def start(self, run_dir: Path, anchor: Anchor) -> None:
        """Begin recording into ``run_dir``/``file_name``."""
        self.run_dir = run_dir
        self.anchor = anchor

    def stop(self) -> None:
        """Stop recording; leave only complete lines in the file."""

    def command(self) -> Optional[list[str]]:
        """The external command's argv (None for in-process sources)."""
        return None

    def entry(self) -> dict[str, Any]:
        """This source's object in the manifest's ``sources`` list."""
        return {
            "name": self.name,
            "file": self.file_name,
            "interval_ms": self.interval_ms,
            "command": self.command(),
            "notes": list(self.notes),
        }

    def note(self, text: str) -> None:
        """Add a note once."""
        if text not in self.notes:
            self.notes.append(text)


def which_or_unavailable(tool: str, fix: str) -> str:
    """Path of ``tool`` on PATH, or raise SourceUnavailable."""
    path = shutil.which(tool)
    if path is None:
        raise SourceUnavailable(f"{tool} not found on PATH", fix)
    return path


def trim_partial_line(path: Path) -> int:
    """Cut a file after its last newline (a tool stopped mid-line). Returns bytes removed."""
    try:
        with open(path, "r+b") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            if size == 0:
                return 0
            step = 4096
            pos = size
            while pos > 0:
                start = max(0, pos - step)
                f.seek(start)
                chunk = f.read(pos - start)
                i = chunk.rfind(b"\n")
                if i >= 0:
                    keep = start + i + 1
                    if keep < size:
                        f.truncate(keep)
                    return size - keep
                pos = start
            f.truncate(0)
            return size
    except FileNotFoundError:
        return 0


def first_line(text: str) -> str:
    """The first non-empty line of ``text`` (stripped), or ``""``."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


class ExternalSource(Source):
    """A source that runs one external tool for the whole run, its output going to a file."""

    stop_signal: ClassVar[int] = signal.SIGTERM
    output_via_stdout: ClassVar[bool] = True
    uses_local_time = True

    def __init__(self, interval_ms: int, env: Optional[dict[str, str]] = None) -> None:
        super().__init__(interval_ms, env)
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.started: Optional[Anchor] = None
        self.exit_code: Optional[int] = None
        self._stopping = False
        self._stderr_path: Optional[Path] = None

    def argv(self, out_file: Path) -> list[str]:
        """The tool's command line (``out_file`` for tools that take ``-o``)."""
        raise NotImplementedError

    def command(self) -> Optional[list[str]]:
        if self.run_dir is None:
            return None
        return self.argv(Path(self.file_name))

    def start(self, run_dir: Path, anchor: Anchor) -> None:
        super().start(run_dir, anchor)
        out_path = run_dir / self.file_name
        self._stderr_path = run_dir / f"{self.name}.stderr.log"
        argv = [str(a) for a in self.argv(out_path)]
        stdout: Any = open(out_path, "wb") if self.output_via_stdout else subprocess.DEVNULL
        stderr = open(self._stderr_path, "wb")
        try:
            self.started = take_anchor(tries=2)
            self.proc = subprocess.Popen(argv, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                                         env=self.env, start_new_session=True, cwd=run_dir)
        finally:
            if stdout is not subprocess.DEVNULL:
                stdout.close()
            stderr.close()

    def stop(self) -> None:
        p = self.proc
        if p is None:
            return
        early = p.poll() is not None
        if not early:
            self._stopping = True
            try:
                p.send_signal(self.stop_signal)
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                self.note(f"{self.name} did not stop on {signal.Signals(self.stop_signal).name}; killed")
            except ProcessLookupError:
                pass
        self.exit_code = p.returncode
        err = ""
        if self._stderr_path is not None and self._stderr_path.exists():
            err = self._stderr_path.read_text(errors="replace")
            if not err.strip():
                self._stderr_path.unlink()
            else:
                self.note(f"the tool's stderr is in {self._stderr_path.name}")
        if early:
            self.note(f"{self.name} exited early with code {p.returncode}"
                      + (f": {first_line(err)}" if err.strip() else ""))
        assert self.run_dir is not None
        cut = trim_partial_line(self.run_dir / self.file_name)
        if cut:
            self.note(f"removed an incomplete last line ({cut} bytes)")

    def entry(self) -> dict[str, Any]:
        e = super().entry()
        if self.started is not None:
            e["anchor"] = self.started.to_manifest()
        e["exit_code"] = self.exit_code
        return e


def sleep_until(deadline_ns: int, stop: Any) -> bool:
    """Wait until ``time.monotonic_ns() >= deadline_ns`` or ``stop`` (an Event) is set.

    Returns True when stopped.
    """
    delay = (deadline_ns - time.monotonic_ns()) / 1e9
    if delay > 0:
        return bool(stop.wait(delay))
    return bool(stop.is_set())
