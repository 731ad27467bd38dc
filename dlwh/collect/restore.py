"""Putting GPU power limits back: with retries, every GPU even when one fails, and from a record.

``restore_limits`` is what a sweep runs at its end (after the last run, an error, a signal);
``restore_recorded`` is ``dlwh collect restore``: it reads the records a killed sweep left
(:mod:`dlwh.collect.limitstate`) and puts those limits back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from dlwh.collect import limitstate
from dlwh.collect.limitstate import GpuLimit
from dlwh.collect.nvml import NvmlError, NvmlSession, NvmlUnavailable
from dlwh.errors import DlwhError

TRIES = 4
"""Attempts per GPU before giving up on it."""
BACKOFF_S = 0.25
"""Wait before the second attempt; it doubles before each later one (0.25, 0.5, 1 s)."""
TOLERANCE_MW = 1000
Log = Callable[[str], None]


class RestoreError(DlwhError):
    """At least one GPU could not be put back at its original power limit."""


def _w(mw: int) -> str:
    return f"{mw / 1000:g} W"


def reason(err: BaseException) -> str:
    """One line for a failed NVML call or any other exception."""
    if isinstance(err, NvmlError):
        return f"NVML: {err}"
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def restore_gpu(s: NvmlSession, index: int, target_mw: int, tries: Optional[int] = None,
                backoff_s: Optional[float] = None) -> Optional[str]:
    """Set GPU ``index`` to ``target_mw`` and read it back, up to ``tries`` times with doubling waits.

    Returns None when the GPU is at the target, else why the last attempt failed. Any exception
    counts as a failed attempt (NVML's, an OSError from the driver, a broken library).
    """
    tries = TRIES if tries is None else tries
    backoff_s = BACKOFF_S if backoff_s is None else backoff_s
    last = "not tried"
    for attempt in range(max(1, tries)):
        if attempt:
            time.sleep(backoff_s * 2 ** (attempt - 1))
        try:
            s.set_power_limit_mw(index, target_mw)
            now = s.power_limit_mw(index)
            if now is None or abs(int(now) - target_mw) <= TOLERANCE_MW:
                return None
            last = f"NVML reports {_w(int(now))} after setting {_w(target_mw)}"
        except Exception as err:  # noqa: BLE001 - every failure is retried, and every GPU is tried
            last = reason(err)
    return last


def failure_line(g: GpuLimit, why: str, tries: Optional[int] = None) -> str:
    """The line printed for a GPU left at a changed limit."""
    tries = TRIES if tries is None else tries
    return (f"GPU {g.index} ({g.uuid}) is NOT back at its original {_w(g.original_mw)}: {tries} attempts failed, "
            f"the last with {why}; once the cause is fixed run: sudo dlwh collect restore "
            f"(or: sudo nvidia-smi -i {g.index} -pl {g.original_mw / 1000:g})")


def restore_limits(s: NvmlSession, gpus: Sequence[GpuLimit], alert: Log,
                   tries: Optional[int] = None, backoff_s: Optional[float] = None) -> list[GpuLimit]:
    """Put every GPU in ``gpus`` back; ``alert`` gets one line per GPU that is not. Returns those."""
    failed = []
    for g in gpus:
        why = restore_gpu(s, g.index, g.original_mw, tries, backoff_s)
        if why is not None:
            failed.append(g)
            alert(failure_line(g, why, tries))
    return failed


@dataclass
class RestoreReport:
    """What ``restore_recorded`` did: lines restored, GPUs still off, records left alone."""

    restored: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    records: int = 0


def _uuid_index(s: NvmlSession) -> dict[str, int]:
    out = {}
    for i in range(s.count()):
        try:
            out[s.uuid(i)] = i
        except NvmlError:
            continue
    return out


def restore_recorded(paths: Optional[Sequence[Path]] = None, *, force: bool = False,
                     log: Log = lambda m: None, tries: Optional[int] = None,
                     backoff_s: Optional[float] = None) -> RestoreReport:
    """Put back the limits in the records (default: every record of this host in the state dir).

    A record whose sweep still runs is left to it unless ``force``. A record is deleted once all
    its GPUs are back, else rewritten with those that are not. Raises DlwhError when NVML is
    unavailable or a given file is not a record of this host.
    """
    report = RestoreReport()
    if paths:
        records = []
        for p in paths:
            try:
                rec = limitstate.load(p)
            except FileNotFoundError:
                raise DlwhError(f"no power-limit record at {p}; check the path") from None
            except (OSError, ValueError, KeyError, TypeError) as err:
                raise DlwhError(f"cannot read {p} as a power-limit record ({err})") from None
            if rec.host != limitstate.hostname():
                raise DlwhError(f"{p} was written on host {rec.host}, this is {limitstate.hostname()}; "
                                f"run dlwh collect restore on {rec.host}")
            records.append(rec)
    else:
        records = limitstate.pending()
    report.records = len(records)
    todo = []
    for rec in records:
        if rec.alive() and not force:
            report.skipped.append(f"{rec.describe()} is still running and restores its own limits "
                                  "(use --force if it hangs)")
        else:
            todo.append(rec)
    if not todo:
        return report
    try:
        s = NvmlSession()
    except NvmlUnavailable as err:
        raise DlwhError(f"cannot restore power limits: {err.reason}; {err.fix}") from None
    with s:
        where = _uuid_index(s)
        for rec in todo:
            left: set[str] = set()
            for g in rec.gpus:
                index = where.get(g.uuid)
                if index is None:
                    left.add(g.uuid)
                    report.failed.append(f"GPU {g.uuid} of {rec.describe()} is not on this host now; "
                                         "nothing changed for it")
                    continue
                g = GpuLimit(index, g.uuid, g.original_mw)
                try:
                    before = s.power_limit_mw(index)
                except Exception:  # noqa: BLE001 - the value is only for the message
                    before = None
                why = restore_gpu(s, index, g.original_mw, tries, backoff_s)
                if why is None:
                    was = f"{_w(before)} -> " if before is not None and before != g.original_mw else "already at "
                    report.restored.append(f"GPU {index} ({g.uuid}): {was}{_w(g.original_mw)}")
                    log(report.restored[-1])
                else:
                    left.add(g.uuid)
                    report.failed.append(failure_line(g, why, tries))
            limitstate.keep_only(rec, left)
    return report

