"""``ipmitool dcmi power reading`` polled every N ms into ``ipmi.log``.

Each poll is one line ``# timestamp_utc: <UTC>Z`` (the moment ipmitool was started) followed by
the unchanged output; both are written in one piece after ipmitool returns, so the file only
ever holds whole readings. A poll that fails is skipped and counted in the manifest.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Any, Optional

from dlwh.collect.clock import Anchor
from dlwh.collect.hostinfo import tool_version
from dlwh.collect.sources.base import Source, SourceUnavailable, first_line, sleep_until, which_or_unavailable

ARGV = ["ipmitool", "dcmi", "power", "reading"]
MIN_INTERVAL_MS = 1000
FIX = ("needs a BMC with DCMI power readings and root: run as root on a server with a BMC "
       "(modprobe ipmi_devintf ipmi_si creates /dev/ipmi0)")


class IpmiSource(Source):
    """Polls the BMC through ipmitool from a thread of this process."""

    name = "ipmi"
    file_name = "ipmi.log"
    min_interval_ms = MIN_INTERVAL_MS
    min_interval_why = "a BMC updates about once a second"

    def __init__(self, interval_ms: int = MIN_INTERVAL_MS, env: Optional[dict[str, str]] = None) -> None:
        super().__init__(interval_ms, env)
        self.env["LC_ALL"] = "C"
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._file: Optional[IO[str]] = None
        self.polls = 0
        self.failed = 0

    def check(self) -> None:
        which_or_unavailable("ipmitool", "install ipmitool; it " + FIX)
        try:
            p = subprocess.run(ARGV, capture_output=True, text=True, timeout=20, env=self.env)
        except (OSError, subprocess.SubprocessError) as err:
            raise SourceUnavailable(f"ipmitool failed to run ({err})", FIX) from None
        if p.returncode != 0:
            raise SourceUnavailable(
                f"ipmitool dcmi power reading failed: {first_line(p.stderr + p.stdout)}", FIX)
        if "Instantaneous power reading" not in p.stdout:
            raise SourceUnavailable("the BMC gives no DCMI power reading", FIX)
        version = tool_version("ipmitool")
        if version:
            self.tools["ipmitool"] = version

    def command(self) -> Optional[list[str]]:
        return list(ARGV)

    def start(self, run_dir: Path, anchor: Anchor) -> None:
        super().start(run_dir, anchor)
        self._file = open(run_dir / self.file_name, "w", encoding="utf-8", newline="\n")
        self._thread = threading.Thread(target=self._run, name="dlwh-ipmi", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self._file is not None and self.anchor is not None
        interval = self.interval_ms * 1_000_000
        t0 = time.monotonic_ns()
        k = 0
        while True:
            stopped = sleep_until(t0 + k * interval, self._stop)
            if stopped:
                break
            mono = time.monotonic_ns()
            try:
                p = subprocess.run(ARGV, capture_output=True, text=True, timeout=30, env=self.env)
                ok = p.returncode == 0 and p.stdout.strip() != ""
            except (OSError, subprocess.SubprocessError):
                ok = False
            if ok:
                out = p.stdout if p.stdout.endswith("\n") else p.stdout + "\n"
                self._file.write(f"# timestamp_utc: {self.anchor.iso_of(mono)}\n{out}")
                self._file.flush()
                self.polls += 1
            else:
                self.failed += 1
            k = (time.monotonic_ns() - t0) // interval + 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=40)
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.failed:
            self.note(f"{self.failed} polls failed and were skipped")

    def entry(self) -> dict[str, Any]:
        e = super().entry()
        e["polls"] = self.polls
        return e
