"""Signals to the collector go to the workload: the run (and a sweep's power limits) end cleanly.

SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are caught while a :class:`SignalForwarder`
is installed. Without it SIGQUIT (Ctrl-\\) and SIGUSR1/2 would end the collector at once, leaving a
run without its end time and a GPU at a lowered power limit.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from typing import Any, Optional

from dlwh.collect.process import signal_group

HANDLED = tuple(s for s in (getattr(signal, n, None) for n in
                            ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"))
                if s is not None)
"""The signals a forwarder catches (those that exist on this platform)."""


class SignalForwarder:
    """While installed, the signals in ``HANDLED`` go to the current workload's process group.

    The first signal is passed on as it is; a second one becomes SIGTERM, a third SIGKILL. After
    any signal but SIGINT the workload gets ``grace_s`` seconds before SIGKILL. ``interrupted``
    stays set so that a sweep stops after the current run.
    """

    SIGNALS = HANDLED

    def __init__(self, grace_s: float = 10.0) -> None:
        self.grace_s = grace_s
        self.child: Optional[subprocess.Popen[bytes]] = None
        self.count = 0
        self.signum: Optional[int] = None
        self._old: dict[int, Any] = {}
        self._timer: Optional[threading.Timer] = None

    @property
    def interrupted(self) -> bool:
        """True once any handled signal arrived."""
        return self.count > 0

    def install(self) -> "SignalForwarder":
        """Catch the signals (only possible in the main thread; elsewhere this does nothing)."""
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def restore(self) -> None:
        """Put the previous handlers back and cancel a pending SIGKILL."""
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old.clear()
        if self._timer is not None:
            self._timer.cancel()

    def __enter__(self) -> "SignalForwarder":
        return self.install()

    def __exit__(self, *exc: Any) -> None:
        self.restore()

    def _handle(self, signum: int, frame: Any) -> None:
        self.count += 1
        self.signum = self.signum or signum
        send = signum if self.count == 1 else (signal.SIGTERM if self.count == 2 else signal.SIGKILL)
        signal_group(self.child, send)
        if send != signal.SIGINT and send != signal.SIGKILL and self._timer is None:
            self._timer = threading.Timer(self.grace_s, self._kill)
            self._timer.daemon = True
            self._timer.start()

    def _kill(self) -> None:
        signal_group(self.child, signal.SIGKILL)

    def attach(self, child: Optional[subprocess.Popen[bytes]]) -> None:
        """Forward to ``child`` from now on (None: no workload runs)."""
        self.child = child
        if child is not None and self.count and self.signum is not None:
            # a signal came while the child was being started: pass it on now
            signal_group(child, self.signum if self.count == 1 else signal.SIGTERM)
