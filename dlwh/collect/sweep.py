"""Power-limit sweeps: run one command once per GPU power limit, recording each run.

Before anything runs, every limit is checked against each GPU's range
(``nvmlDeviceGetPowerManagementLimitConstraints``) and the permission to set limits is tested by
setting each GPU's current limit again. Each run is tagged ``power_limit_w`` (and
``enforced_power_limit_w``, the value NVML reports after setting).

The original limits always come back (docs/recording.md, "Power limits"): they are written to a
record (:mod:`dlwh.collect.limitstate`) before the first change; SIGINT, SIGTERM, SIGHUP, SIGQUIT,
SIGUSR1 and SIGUSR2 only stop the workload; after the last run, an error or a signal every GPU is
restored with retries (:mod:`dlwh.collect.restore`), each failing GPU named on its own line. After
SIGKILL or a crash, ``dlwh collect restore`` puts the recorded limits back, and the next sweep warns
and takes the recorded originals, never the lowered limit it finds.
"""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from dlwh.collect import limitstate
from dlwh.collect.limitstate import GpuLimit, Record
from dlwh.collect.nvml import NvmlError, NvmlSession, NvmlUnavailable
from dlwh.collect.process import resolve_program
from dlwh.collect.restore import reason, restore_limits
from dlwh.collect.runner import CollectOptions, RunResult, collect
from dlwh.collect.signals import SignalForwarder
from dlwh.errors import DlwhError, UsageError

TOLERANCE_W = 1.0


class SweepError(DlwhError):
    """A sweep cannot start or could not restore a GPU's power limit."""


def parse_limits(text: str) -> list[float]:
    """``"150,200,250"`` → [150.0, 200.0, 250.0] (watts)."""
    out = []
    for part in text.split(","):
        part = part.strip().rstrip("Ww").strip()
        if not part:
            continue
        try:
            v = float(part)
        except ValueError:
            raise UsageError(f"bad power limit {part!r}; give watts like 150,200,250") from None
        if v <= 0:
            raise UsageError(f"bad power limit {part!r}; limits are positive watts")
        out.append(v)
    if not out:
        raise UsageError("no power limits given; e.g. --power-limits 150,200,250")
    return out


def _fmt(w: float) -> str:
    return f"{w:g}"


def check_limits(s: NvmlSession, gpus: Sequence[int], limits_w: Sequence[float]) -> dict[int, int]:
    """Check the range and the permission; return each GPU's current limit (mW) to restore."""
    originals: dict[int, int] = {}
    for i in gpus:
        cons = s.limit_constraints_mw(i)
        if cons is None:
            raise SweepError(f"GPU {i} does not report a power-limit range (NVML: not supported); "
                             "this GPU's power limit cannot be set")
        lo, hi = cons[0] / 1000.0, cons[1] / 1000.0
        for w in limits_w:
            if not lo - 1e-9 <= w <= hi + 1e-9:
                raise SweepError(f"power limit {_fmt(w)} W is outside GPU {i}'s range "
                                 f"{_fmt(lo)}-{_fmt(hi)} W ({s.name(i)}); choose limits in that range")
        cur = s.power_limit_mw(i)
        if cur is None:
            raise SweepError(f"GPU {i} does not report its power limit; cannot restore it afterwards")
        originals[i] = int(cur)
    for i, cur in originals.items():  # permission: set the limit it already has
        try:
            s.set_power_limit_mw(i, cur)
        except Exception as err:  # noqa: BLE001 - NVML's or the OS's; nothing was changed yet
            if isinstance(err, NvmlError) and err.no_permission:
                raise SweepError("setting GPU power limits needs root; run the sweep with sudo "
                                 "(or as root)") from None
            raise SweepError(f"GPU {i} refuses power-limit changes ({reason(err)}); "
                             "check nvidia-smi -q -d POWER") from None
    return originals


def _set_all(s: NvmlSession, gpus: Sequence[int], limit_mw: int) -> dict[int, Optional[int]]:
    """Set every GPU to ``limit_mw``; return the enforced limits (mW) NVML reports after."""
    enforced: dict[int, Optional[int]] = {}
    for i in gpus:
        try:
            s.set_power_limit_mw(i, limit_mw)
            enforced[i] = s.enforced_limit_mw(i)
        except Exception as err:  # noqa: BLE001 - NVML's or the OS's: stop and restore
            raise SweepError(f"could not set GPU {i}'s power limit to {limit_mw / 1000:g} W "
                             f"({reason(err)}); the original limits were restored") from None
    return enforced


def _adopt_records(targets: list[GpuLimit], log: Callable[[str], None]) -> list[Record]:
    """Take the originals of GPUs a killed sweep left changed; refuse GPUs a running sweep holds.

    Returns the records that name a GPU of this sweep (finished with it once it is restored).
    """
    mine = {g.uuid: g for g in targets}
    adopted = []
    for rec in limitstate.pending():
        overlap = [g for g in rec.gpus if g.uuid in mine]
        if rec.alive():
            if overlap:
                raise SweepError(f"GPU {mine[overlap[0].uuid].index}'s power limit is being swept by another dlwh "
                                 f"({rec.describe()}); wait for it to end, or if it hangs run "
                                 "dlwh collect restore --force")
            continue
        for g in overlap:
            t = mine[g.uuid]
            if t.original_mw != g.original_mw:
                log(f"warning: {rec.describe()} did not restore GPU {t.index}: it is at {t.original_mw / 1000:g} W; "
                    f"using its recorded original {g.original_mw / 1000:g} W (record {rec.paths[0]})")
            t.original_mw = g.original_mw
        others = [g for g in rec.gpus if g.uuid not in mine]
        for g in others:
            log(f"warning: {rec.describe()} left GPU {g.index} ({g.uuid}) changed from {g.original_mw / 1000:g} W; "
                "run dlwh collect restore")
        if overlap:
            adopted.append(rec)
    return adopted


def sweep(
    command: Sequence[str],
    power_limits_w: Sequence[float],
    options: Optional[CollectOptions] = None,
    *,
    gpus: Optional[Sequence[int]] = None,
    **kw: Any,
) -> list[RunResult]:
    """Run ``command`` once per power limit (W) on ``gpus`` (default: all), recording each run.

    Stops after a run whose command fails or is interrupted (the limits are restored first).
    ``options.out``, when given, is a parent directory: each run goes to ``<out>/pl<W>W``.
    Raises SweepError when a GPU could not be restored (each such GPU is also named on stderr).
    """
    opts = options or CollectOptions(**kw)
    say: Callable[[str], None] = opts.log or (
        lambda m: print(f"dlwh collect sweep: {m}", file=sys.stderr, flush=True))
    log = (lambda m: None) if opts.quiet and opts.log is None else say
    resolve_program(command, dict(os.environ))
    fw = SignalForwarder(opts.grace_s).install()  # from here on a signal never ends this process
    try:
        try:
            s = NvmlSession()
        except NvmlUnavailable as err:
            raise SweepError(f"a power-limit sweep needs NVML: {err.reason}; {err.fix}") from None
        with s:
            return _sweep(s, command, power_limits_w, opts, gpus, fw, log, say)
    finally:
        fw.restore()


def _sweep(s: NvmlSession, command: Sequence[str], power_limits_w: Sequence[float], opts: CollectOptions,
           gpus: Optional[Sequence[int]], fw: SignalForwarder, log: Callable[[str], None],
           say: Callable[[str], None]) -> list[RunResult]:
    n = s.count()
    idx = list(range(n)) if gpus is None else list(gpus)
    bad = [i for i in idx if not 0 <= i < n]
    if bad or not idx:
        raise SweepError(f"no GPU with index {bad[0] if bad else '(none)'}; NVML sees {n} GPU(s)")
    current = check_limits(s, idx, power_limits_w)
    targets = [GpuLimit(i, s.uuid(i), current[i]) for i in idx]
    adopted = _adopt_records(targets, say)
    sweep_id = secrets.token_hex(4)
    record = Record(sweep_id, targets)
    try:
        limitstate.save(record, copy_dir=opts.out if opts.out is not None else opts.traces_dir)
    except OSError as err:
        raise SweepError(f"cannot write the record of the original power limits ({err}); nothing was changed; "
                         f"set XDG_STATE_HOME (or {limitstate.ENV_STATE_DIR}) to a writable directory") from None
    log(f"original power limits recorded in {record.paths[0]}")
    results: list[RunResult] = []
    try:
        for w in power_limits_w:
            if fw.interrupted:
                break
            enforced = _set_all(s, idx, int(round(w * 1000)))
            tags: dict[str, Any] = dict(opts.tags)
            tags.update({"power_limit_w": w, "sweep_id": sweep_id})
            worst = [e for e in enforced.values() if e is not None]
            if worst:
                tags["enforced_power_limit_w"] = min(worst) / 1000.0
                if abs(min(worst) / 1000.0 - w) > TOLERANCE_W:
                    log(f"warning: asked for {_fmt(w)} W, GPUs enforce "
                        + ", ".join(f"{i}: {(e or 0) / 1000:g} W" for i, e in enforced.items()))
            log(f"power limit {_fmt(w)} W on GPU(s) {','.join(map(str, idx))}")
            run_opts = replace(opts, tags=tags, log=opts.log,
                               out=(Path(opts.out) / f"pl{_fmt(w)}W") if opts.out else None,
                               name=f"{opts.name or _name(command)}-pl{_fmt(w)}W")
            res = collect(command, run_opts, forwarder=fw)
            results.append(res)
            if res.exit_code != 0 or fw.interrupted:
                if not fw.interrupted:
                    log(f"stopping: the command failed at {_fmt(w)} W (exit code {res.exit_code})")
                break
    finally:  # signals are still only forwarded here
        failed = restore_limits(s, targets, say)
        if failed:
            limitstate.keep_only(record, {g.uuid for g in failed})
            raise SweepError(f"could not restore the original power limit of GPU(s) "
                             f"{', '.join(str(g.index) for g in failed)} (see above); the originals are recorded "
                             f"in {record.paths[0]}; run: sudo dlwh collect restore")
        limitstate.remove(record)
        mine = {g.uuid for g in targets}
        for rec in adopted:
            limitstate.keep_only(rec, {g.uuid for g in rec.gpus if g.uuid not in mine})
        log("restored power limits: " + ", ".join(f"GPU {g.index} {g.original_mw / 1000:g} W" for g in targets))
    return results


def _name(command: Sequence[str]) -> str:
    from dlwh.collect.rundir import default_name

    return default_name(command)
