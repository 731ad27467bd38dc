"""Power-limit sweeps: run one command once per GPU power limit, recording each run.

Before anything runs, every limit is checked against each GPU's range
(``nvmlDeviceGetPowerManagementLimitConstraints``) and the permission to set limits is tested by
setting each GPU's current limit again. Each run is tagged ``power_limit_w`` (and
``enforced_power_limit_w``, the value NVML reports after setting). The original limits are always
restored: after the last run, on an error, and on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional, Sequence

from dlwh.collect.nvml import NvmlError, NvmlSession, NvmlUnavailable
from dlwh.collect.runner import CollectOptions, RunResult, SignalForwarder, _resolve_program, collect
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
        except NvmlError as err:
            if err.no_permission:
                raise SweepError("setting GPU power limits needs root; run the sweep with sudo "
                                 "(or as root)") from None
            raise SweepError(f"GPU {i} refuses power-limit changes (NVML: {err}); "
                             "check nvidia-smi -q -d POWER") from None
    return originals


def _set_all(s: NvmlSession, gpus: Sequence[int], limit_mw: int) -> dict[int, Optional[int]]:
    """Set every GPU to ``limit_mw``; return the enforced limits (mW) NVML reports after."""
    enforced: dict[int, Optional[int]] = {}
    for i in gpus:
        try:
            s.set_power_limit_mw(i, limit_mw)
        except NvmlError as err:
            raise SweepError(f"could not set GPU {i}'s power limit to {limit_mw / 1000:g} W "
                             f"(NVML: {err})") from None
        enforced[i] = s.enforced_limit_mw(i)
    return enforced


def _restore(s: NvmlSession, originals: dict[int, int], log: Any) -> list[str]:
    """Put every GPU back to its original limit; return problems (empty when all went well)."""
    problems = []
    for i, mw in originals.items():
        try:
            s.set_power_limit_mw(i, mw)
            now = s.power_limit_mw(i)
            if now is not None and abs(now - mw) > TOLERANCE_W * 1000:
                problems.append(f"GPU {i} reports {now / 1000:g} W after restoring {mw / 1000:g} W")
        except NvmlError as err:
            problems.append(f"GPU {i}: {err}; restore it with: sudo nvidia-smi -i {i} -pl {mw / 1000:g}")
    if not problems:
        log("restored power limits: " + ", ".join(f"GPU {i} {mw / 1000:g} W" for i, mw in originals.items()))
    return problems


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
    """
    opts = options or CollectOptions(**kw)
    log = opts.log or ((lambda m: None) if opts.quiet
                       else (lambda m: print(f"dlwh collect sweep: {m}", file=sys.stderr, flush=True)))
    _resolve_program(command, dict(os.environ))
    try:
        s = NvmlSession()
    except NvmlUnavailable as err:
        raise SweepError(f"a power-limit sweep needs NVML: {err.reason}; {err.fix}") from None
    results: list[RunResult] = []
    try:
        n = s.count()
        idx = list(range(n)) if gpus is None else list(gpus)
        bad = [i for i in idx if not 0 <= i < n]
        if bad or not idx:
            raise SweepError(f"no GPU with index {bad[0] if bad else '(none)'}; NVML sees {n} GPU(s)")
        originals = check_limits(s, idx, power_limits_w)
        sweep_id = secrets.token_hex(4)
        fw = SignalForwarder(opts.grace_s).install()
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
        finally:
            problems = _restore(s, originals, log)  # signals still only forwarded here
            fw.restore()
            if problems:
                raise SweepError("could not restore the original power limit: " + "; ".join(problems))
    finally:
        s.close()
    return results


def _name(command: Sequence[str]) -> str:
    from dlwh.collect.runner import default_name

    return default_name(command)
