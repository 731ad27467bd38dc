"""One clock for a run: ``time.monotonic_ns()`` anchored once to UTC.

Every time the collector or a span records is a monotonic reading; UTC is computed from the
anchor, so samples and spans from several processes of one host share one clock.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

ENV_ANCHOR = "DLWH_ANCHOR"
"""Environment variable holding ``<monotonic_ns>,<utc_ns>`` for child processes."""


@dataclass(frozen=True)
class Anchor:
    """A monotonic reading and the UTC time taken at the same moment. Units: ns."""

    mono_ns: int
    utc_ns: int

    def utc_ns_of(self, mono_ns: int) -> int:
        """UTC (ns since the epoch) of a ``time.monotonic_ns()`` reading."""
        return self.utc_ns + (mono_ns - self.mono_ns)

    def iso_of(self, mono_ns: int) -> str:
        """ISO 8601 UTC string (microseconds, ``Z``) of a monotonic reading."""
        return iso_utc(self.utc_ns_of(mono_ns))

    def to_manifest(self) -> dict:
        """The manifest's ``monotonic_anchor`` object."""
        return {"utc": iso_utc(self.utc_ns), "monotonic_ns": self.mono_ns}

    def to_env(self) -> str:
        """Value for ``DLWH_ANCHOR`` (exact, no rounding)."""
        return f"{self.mono_ns},{self.utc_ns}"

    @classmethod
    def from_env(cls, value: str) -> "Anchor":
        """Parse a ``DLWH_ANCHOR`` value; raises ValueError when malformed."""
        mono, utc = value.split(",")
        return cls(int(mono), int(utc))

    @classmethod
    def from_manifest(cls, obj: dict) -> "Anchor":
        """Parse a manifest ``monotonic_anchor`` object (UTC to microseconds)."""
        return cls(int(obj["monotonic_ns"]), parse_iso_utc_ns(obj["utc"]))


def take_anchor(tries: int = 5) -> Anchor:
    """Read UTC between two monotonic readings; keep the tightest of ``tries`` pairs."""
    best: tuple[int, int, int] | None = None
    for _ in range(tries):
        m0 = time.monotonic_ns()
        utc = time.time_ns()
        m1 = time.monotonic_ns()
        if best is None or m1 - m0 < best[0]:
            best = (m1 - m0, (m0 + m1) // 2, utc)
    assert best is not None
    # shift both readings to a whole microsecond of UTC, so that the manifest's ISO time (which
    # keeps microseconds) is the anchor exactly
    sub = best[2] % 1000
    return Anchor(mono_ns=best[1] - sub, utc_ns=best[2] - sub)


def iso_utc(utc_ns: int) -> str:
    """``2026-11-21T10:15:00.123456Z`` for ns since the epoch."""
    sec, rem = divmod(utc_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + ".%06dZ" % (rem // 1000)


def compact_utc(utc_ns: int) -> str:
    """``20261121T101500Z`` (for directory names)."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(utc_ns // 1_000_000_000))


def parse_iso_utc_ns(text: str) -> int:
    """ns since the epoch of an ISO 8601 UTC string as written by :func:`iso_utc`."""
    import calendar
    from datetime import datetime

    dt = datetime.fromisoformat(text.rstrip("Z"))
    return calendar.timegm(dt.timetuple()) * 1_000_000_000 + dt.microsecond * 1000


def anchor_from_env() -> Anchor | None:
    """The anchor a collector passed to this process, or None."""
    value = os.environ.get(ENV_ANCHOR)
    if not value:
        return None
    try:
        return Anchor.from_env(value)
    except ValueError:
        return None
