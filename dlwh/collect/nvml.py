"""The one place dlwh talks to NVML (``import pynvml``, from nvidia-ml-py).

Every NVML call of dlwh (the sampler in ``sources/nvml_source.py``, the sweeps' power limits, the
GPU inventory) is a method of :class:`NvmlSession`; nothing else imports pynvml.

Tests replace ``pynvml`` in ``sys.modules`` with a fake that replays values recorded on a real GPU.
NVML's own errors are turned into :class:`NvmlUnavailable` (the source cannot be used, with a fix)
or :class:`NvmlError` (one call failed) here and nowhere else.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, NamedTuple, Optional

DRIVER_FIX = "install the NVIDIA driver, or run on a node with an NVIDIA GPU"
_FV_ATTR = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"}
"""pynvml's field-value union member by ``valueType``."""


class Utilization(NamedTuple):
    """nvmlDeviceGetUtilizationRates: GPU and memory busy time over the last sample period (%)."""

    gpu_pct: int
    memory_pct: int


class NvmlUnavailable(Exception):
    """NVML cannot be used here; ``reason`` says why and ``fix`` what to do."""

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(f"{reason}; {fix}")
        self.reason = reason
        self.fix = fix


class NvmlError(Exception):
    """One NVML call failed. ``code`` is NVML's return code, ``not_supported``/``no_permission``
    say which of the common ones it was."""

    def __init__(self, code: int, message: str, not_supported: bool, no_permission: bool) -> None:
        super().__init__(message)
        self.code = code
        self.not_supported = not_supported
        self.no_permission = no_permission


def load_pynvml() -> Any:
    """Import pynvml; raise NvmlUnavailable when nvidia-ml-py is missing."""
    try:
        return importlib.import_module("pynvml")
    except ImportError as err:
        raise NvmlUnavailable(f"nvidia-ml-py is not installed ({err})",
                              "pip install nvidia-ml-py") from None


def _text(v: Any) -> str:
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v)


class NvmlSession:
    """An initialised NVML (``nvmlInit`` … ``nvmlShutdown``); use as a context manager."""

    def __init__(self) -> None:
        self.N = load_pynvml()
        try:
            self.N.nvmlInit()
        except self.N.NVMLError as err:
            raise NvmlUnavailable(f"no NVIDIA driver (NVML: {err})", DRIVER_FIX) from None
        except OSError as err:  # a broken libnvidia-ml
            raise NvmlUnavailable(f"no NVIDIA driver ({err})", DRIVER_FIX) from None
        self._open = True
        self._handles: dict[int, Any] = {}

    def __enter__(self) -> "NvmlSession":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """nvmlShutdown (idempotent)."""
        if self._open:
            self._open = False
            try:
                self.N.nvmlShutdown()
            except self.N.NVMLError:
                pass

    def error(self, err: Any) -> NvmlError:
        """Translate a pynvml.NVMLError."""
        code = getattr(err, "value", -1)
        return NvmlError(code, str(err),
                         code == getattr(self.N, "NVML_ERROR_NOT_SUPPORTED", 3),
                         code == getattr(self.N, "NVML_ERROR_NO_PERMISSION", 4))

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args), raising NvmlError instead of pynvml's errors."""
        try:
            return fn(*args)
        except self.N.NVMLError as err:
            raise self.error(err) from None

    def maybe(self, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args), or None when NVML says the value is not available."""
        try:
            return fn(*args)
        except self.N.NVMLError:
            return None

    def count(self) -> int:
        """Number of GPUs NVML sees."""
        return int(self.call(self.N.nvmlDeviceGetCount))

    def handle(self, index: int) -> Any:
        """The device handle of GPU ``index``."""
        h = self._handles.get(index)
        if h is None:
            h = self._handles[index] = self.call(self.N.nvmlDeviceGetHandleByIndex, index)
        return h

    def driver_version(self) -> Optional[str]:
        v = self.maybe(self.N.nvmlSystemGetDriverVersion)
        return _text(v) if v is not None else None

    def uuid(self, index: int) -> str:
        return _text(self.call(self.N.nvmlDeviceGetUUID, self.handle(index)))

    def name(self, index: int) -> str:
        return _text(self.call(self.N.nvmlDeviceGetName, self.handle(index)))

    def limit_constraints_mw(self, index: int) -> Optional[tuple[int, int]]:
        """(min, max) settable power limit in mW, or None."""
        v = self.maybe(self.N.nvmlDeviceGetPowerManagementLimitConstraints, self.handle(index))
        return (int(v[0]), int(v[1])) if v is not None else None

    def power_limit_mw(self, index: int) -> Optional[int]:
        """The power limit currently set (mW)."""
        return self.maybe(self.N.nvmlDeviceGetPowerManagementLimit, self.handle(index))

    def enforced_limit_mw(self, index: int) -> Optional[int]:
        """The power limit the GPU enforces (mW; the lowest of all limits in force)."""
        return self.maybe(self.N.nvmlDeviceGetEnforcedPowerLimit, self.handle(index))

    def default_limit_mw(self, index: int) -> Optional[int]:
        return self.maybe(self.N.nvmlDeviceGetPowerManagementDefaultLimit, self.handle(index))

    def set_power_limit_mw(self, index: int, limit_mw: int) -> None:
        """nvmlDeviceSetPowerManagementLimit (needs root); raises NvmlError."""
        self.call(self.N.nvmlDeviceSetPowerManagementLimit, self.handle(index), int(limit_mw))

    # -- sampling reads (each raises NvmlError; ``not_supported`` says the GPU lacks the value) --
    def power_fields_supported(self, index: int) -> bool:
        """Whether the GPU gives the instant and average power field values (newer drivers/GPUs)."""
        try:
            vals = self.N.nvmlDeviceGetFieldValues(self.handle(index), self._power_fields())
            return all(v.nvmlReturn == 0 for v in vals)
        except (self.N.NVMLError, AttributeError, TypeError):
            return False

    def _power_fields(self) -> list[tuple[int, int]]:
        return [(getattr(self.N, "NVML_FI_DEV_POWER_INSTANT", 186), 0),
                (getattr(self.N, "NVML_FI_DEV_POWER_AVERAGE", 185), 0)]

    def power_fields_mw(self, index: int) -> tuple[Optional[int], Optional[int]]:
        """(instant, average) power in mW from nvmlDeviceGetFieldValues (None where not returned)."""
        vals = self.call(self.N.nvmlDeviceGetFieldValues, self.handle(index), self._power_fields())
        out: list[Optional[int]] = []
        for v in vals:
            out.append(getattr(v.value, _FV_ATTR.get(v.valueType, "uiVal")) if v.nvmlReturn == 0 else None)
        return out[0], out[1]

    def power_usage_mw(self, index: int) -> int:
        """nvmlDeviceGetPowerUsage: board power in mW (averaged by the driver over about 1 s)."""
        return int(self.call(self.N.nvmlDeviceGetPowerUsage, self.handle(index)))

    def total_energy_mj(self, index: int) -> int:
        """nvmlDeviceGetTotalEnergyConsumption: energy since the driver loaded, in mJ (slow: ~3 ms)."""
        return int(self.call(self.N.nvmlDeviceGetTotalEnergyConsumption, self.handle(index)))

    def power_limit_read_mw(self, index: int) -> int:
        """nvmlDeviceGetPowerManagementLimit in mW, raising NvmlError (``power_limit_mw`` gives None)."""
        return int(self.call(self.N.nvmlDeviceGetPowerManagementLimit, self.handle(index)))

    def enforced_limit_read_mw(self, index: int) -> int:
        """nvmlDeviceGetEnforcedPowerLimit in mW, raising NvmlError."""
        return int(self.call(self.N.nvmlDeviceGetEnforcedPowerLimit, self.handle(index)))

    def clock_mhz(self, index: int, which: str) -> int:
        """Current clock in MHz; ``which`` is "sm", "mem" or "graphics"."""
        kind = {"sm": self.N.NVML_CLOCK_SM, "mem": self.N.NVML_CLOCK_MEM,
                "graphics": self.N.NVML_CLOCK_GRAPHICS}[which]
        return int(self.call(self.N.nvmlDeviceGetClockInfo, self.handle(index), kind))

    def utilization(self, index: int) -> Utilization:
        """GPU and memory utilisation (%)."""
        u = self.call(self.N.nvmlDeviceGetUtilizationRates, self.handle(index))
        return Utilization(int(u.gpu), int(u.memory))

    def temperature_c(self, index: int) -> int:
        """GPU die temperature (°C)."""
        return int(self.call(self.N.nvmlDeviceGetTemperature, self.handle(index), self.N.NVML_TEMPERATURE_GPU))

    def memory_used_bytes(self, index: int) -> int:
        """Device memory in use (bytes)."""
        return int(self.call(self.N.nvmlDeviceGetMemoryInfo, self.handle(index)).used)

    def info(self, index: int) -> dict[str, Any]:
        """The manifest's entry for GPU ``index`` (power limits in W)."""

        def w(mw: Optional[int]) -> Optional[float]:
            return round(mw / 1000.0, 3) if mw is not None else None

        cons = self.limit_constraints_mw(index)
        return {
            "index": index,
            "uuid": self.uuid(index),
            "name": self.name(index),
            "driver": self.driver_version(),
            "power_limit_w": {
                "min": w(cons[0]) if cons else None,
                "default": w(self.default_limit_mw(index)),
                "max": w(cons[1]) if cons else None,
                "current": w(self.power_limit_mw(index)),
                "enforced": w(self.enforced_limit_mw(index)),
            },
        }


def gpu_inventory() -> list[dict[str, Any]]:
    """Manifest entries of every GPU NVML sees ([] when NVML is unavailable)."""
    try:
        with NvmlSession() as s:
            return [s.info(i) for i in range(s.count())]
    except (NvmlUnavailable, NvmlError):
        return []


class EnergyCounters:
    """The total-energy counters (``nvmlDeviceGetTotalEnergyConsumption``, mJ) of some GPUs, read in
    this process: what ``span(..., energy=True)`` reads at its edges.

    ``gpus``: NVML indices; default the GPUs this process may use (``CUDA_VISIBLE_DEVICES`` as
    NVML indices or UUIDs), else every GPU. One read costs about 3 ms per GPU on an H100/H200.
    """

    def __init__(self, gpus: Optional[list[int]] = None) -> None:
        self.session = NvmlSession()
        try:
            n = self.session.count()
            idx = list(range(n)) if gpus is None else list(gpus)
            self.uuids = [self.uuid_of(i) for i in idx]
            if gpus is None:
                idx, self.uuids = _visible(idx, self.uuids)
            self.handles = [self.session.handle(i) for i in idx]
            self.indices = idx
        except BaseException:
            self.session.close()
            raise
        self._read = self.session.N.nvmlDeviceGetTotalEnergyConsumption

    def uuid_of(self, index: int) -> str:
        return self.session.uuid(index)

    def read_mj(self) -> list[int]:
        """Each GPU's counter now (mJ since the driver loaded); raises NvmlError."""
        try:
            return [int(self._read(h)) for h in self.handles]
        except self.session.N.NVMLError as err:
            raise self.session.error(err) from None

    def close(self) -> None:
        self.session.close()


def _visible(idx: list[int], uuids: list[str]) -> tuple[list[int], list[str]]:
    """The GPUs named by CUDA_VISIBLE_DEVICES (NVML indices or UUID prefixes), in that order."""
    import os

    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is None or not env.strip():
        return idx, uuids
    out_i: list[int] = []
    out_u: list[str] = []
    for item in (x.strip() for x in env.split(",")):
        if not item:
            continue
        if item.isdigit():
            k = int(item)
            if k in idx:
                out_i.append(k)
                out_u.append(uuids[idx.index(k)])
            continue
        hit = [j for j, u in enumerate(uuids) if u.startswith(item) or u == f"GPU-{item}"]
        if len(hit) != 1:  # CUDA stops at the first entry it cannot resolve
            break
        out_i.append(idx[hit[0]])
        out_u.append(uuids[hit[0]])
    return out_i, out_u
