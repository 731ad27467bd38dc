"""A fake ``pynvml`` that replays NVML values recorded on an NVIDIA H200 (tests/data/collect/h200/nvml.json).

Put this directory first on ``sys.path`` / ``PYTHONPATH`` (or this module into
``sys.modules["pynvml"]``). Only what dlwh calls is here, with pynvml's names and error classes.

Replay: each GPU walks through the recorded time series, one sample per
``nvmlDeviceGetPowerUsage`` call (the collector makes one per GPU per tick); every other getter
returns the current sample's value. The two slow calls keep their recorded median latency
(``nvmlDeviceGetTotalEnergyConsumption`` about 3 ms, ``nvmlDeviceGetPowerManagementLimit`` 0.14 ms).

Knobs (environment, read at import and at nvmlInit):
- FAKE_NVML_GPUS: number of GPUs (default: as recorded, 1); GPU k>0 replays GPU 0 with another UUID
- FAKE_NVML_INIT_ERROR: an NVML return code nvmlInit fails with (e.g. 9 = driver not loaded)
- FAKE_NVML_NO_PERMISSION=1: nvmlDeviceSetPowerManagementLimit fails with NoPermission
- FAKE_NVML_NO_FIELDS=1: the power field values are not supported (older GPU)
- FAKE_NVML_ENFORCED_CAP_MW: enforced limit is min(limit, this) (another cap in force)
- FAKE_NVML_STATE: a JSON file holding each GPU's power limit (mW) and a log of set calls,
  so that a test can see what a collector in another process did (and a later process starts
  from the limits an earlier one left); written atomically, so a SIGKILL never leaves half a file.
  ``originals_mw`` in it (default: the recorded limit) is what a "restore" sets.
- FAKE_NVML_FAULTS: faults of nvmlDeviceSetPowerManagementLimit, ``;``-separated
  ``KIND:GPU:TIMES:ERROR``. KIND: ``set`` (a change away from the current limit), ``restore`` (a
  change back to the GPU's original limit) or ``any``; GPU: an index or ``*``; TIMES: how many
  matching calls fail in this process (``*``: all of them); ERROR: ``nvml`` (NVML_ERROR_UNKNOWN),
  ``nvml=<code>``, or ``oserror`` (OSError EIO, as a broken driver gives). E.g.
  ``restore:0:1:nvml;restore:1:*:oserror``. A failing call changes nothing.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

_DATA = json.loads((Path(__file__).resolve().parents[2] / "h200" / "nvml.json").read_text())

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_UNKNOWN = 999
NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION = 83
NVML_FI_DEV_POWER_AVERAGE = 185
NVML_FI_DEV_POWER_INSTANT = 186
NVML_CLOCK_GRAPHICS = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_TEMPERATURE_GPU = 0
NVML_VALUE_TYPE_UNSIGNED_INT = 1

_MESSAGES = {
    1: "Uninitialized", 2: "Invalid Argument", 3: "Not Supported", 4: "Insufficient Permissions",
    9: "Driver Not Loaded", 12: "NVML Shared Library Not Found", 999: "Unknown Error",
}


class NVMLError(Exception):
    """pynvml's base error: ``value`` is the NVML return code."""

    _by_code: dict = {}

    def __new__(cls, value):
        sub = NVMLError._by_code.get(value, cls) if cls is NVMLError else cls
        obj = Exception.__new__(sub)
        obj.value = value
        return obj

    def __init__(self, value):
        self.value = value

    def __str__(self):
        return _MESSAGES.get(self.value, f"Unknown Error {self.value}")


def _error_class(name, code):
    cls = type(name, (NVMLError,), {})
    NVMLError._by_code[code] = cls
    return cls


NVMLError_Uninitialized = _error_class("NVMLError_Uninitialized", 1)
NVMLError_InvalidArgument = _error_class("NVMLError_InvalidArgument", 2)
NVMLError_NotSupported = _error_class("NVMLError_NotSupported", 3)
NVMLError_NoPermission = _error_class("NVMLError_NoPermission", 4)
NVMLError_DriverNotLoaded = _error_class("NVMLError_DriverNotLoaded", 9)
NVMLError_LibraryNotFound = _error_class("NVMLError_LibraryNotFound", 12)
NVMLError_Unknown = _error_class("NVMLError_Unknown", 999)

_GPU0 = _DATA["gpus"][0]
_SERIES = _DATA["series_gpu0"]["samples"]
_LAT = _GPU0["latency_us_median"]
_init_count = 0
_cursor: dict[int, int] = {}
_limits: dict[int, int] = {}
calls: list[tuple] = []  # (function, args) of every setter call, for tests
_fault_hits: dict[int, int] = {}  # fault number -> calls it has failed in this process


def _env_int(name, default=None):
    v = os.environ.get(name)
    return int(v) if v not in (None, "") else default


def _n_gpus():
    return _env_int("FAKE_NVML_GPUS", _DATA["count"])


def _check_init():
    if _init_count <= 0:
        raise NVMLError(NVML_ERROR_UNINITIALIZED)


def _state_path():
    p = os.environ.get("FAKE_NVML_STATE")
    return Path(p) if p else None


def _read_state():
    p = _state_path()
    return json.loads(p.read_text()) if p and p.exists() else {}


def _load_state():
    st = _read_state()
    _limits.update({int(k): v for k, v in st.get("limits_mw", {}).items()})


def _save_state(event):
    p = _state_path()
    if not p:
        return
    st = _read_state()
    st["limits_mw"] = {str(k): v for k, v in _limits.items()}
    st.setdefault("log", []).append(event)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(st))
    os.replace(tmp, p)


def _original_mw(index):
    return int(_read_state().get("originals_mw", {}).get(str(index), _GPU0["limit_mw"]["ok"]))


def _faults():
    out = []
    for n, part in enumerate(x for x in os.environ.get("FAKE_NVML_FAULTS", "").split(";") if x.strip()):
        kind, gpu, times, error = part.strip().split(":", 3)
        out.append((n, kind, gpu, times, error))
    return out


def _maybe_fail(index, limit_mw):
    current = _limits.get(index, _GPU0["limit_mw"]["ok"])
    if limit_mw == current:
        what = "check"
    elif limit_mw == _original_mw(index):
        what = "restore"
    else:
        what = "set"
    for n, kind, gpu, times, error in _faults():
        if kind not in (what, "any") or (kind == "any" and what == "check"):
            continue
        if gpu != "*" and int(gpu) != index:
            continue
        if times != "*" and _fault_hits.get(n, 0) >= int(times):
            continue
        _fault_hits[n] = _fault_hits.get(n, 0) + 1
        if error == "oserror":
            raise OSError(5, "Input/output error")
        code = int(error.split("=", 1)[1]) if error.startswith("nvml=") else NVML_ERROR_UNKNOWN
        raise NVMLError(code)


class _Handle:
    def __init__(self, index):
        self.index = index

    def __repr__(self):
        return f"<fake nvmlDevice {self.index}>"


def _sample(h):
    return _SERIES[_cursor.get(h.index, 0) % len(_SERIES)]


def _latency(name):
    us = _LAT.get(name, 0)
    if us > 100:  # only the slow calls keep their recorded latency
        time.sleep(us / 1e6)


# -- init ---------------------------------------------------------------------------------------
def nvmlInit():
    global _init_count
    code = _env_int("FAKE_NVML_INIT_ERROR")
    if code:
        raise NVMLError(code)
    if _init_count == 0:
        _load_state()
    _init_count += 1


def nvmlShutdown():
    global _init_count
    _check_init()
    _init_count -= 1


def nvmlSystemGetDriverVersion():
    _check_init()
    return _DATA["driver"]


def nvmlSystemGetNVMLVersion():
    _check_init()
    return _DATA["nvml_version"]


def nvmlDeviceGetCount():
    _check_init()
    return _n_gpus()


def nvmlDeviceGetHandleByIndex(index):
    _check_init()
    if not 0 <= index < _n_gpus():
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    return _Handle(index)


def nvmlDeviceGetName(h):
    return _GPU0["name"]["ok"]


def nvmlDeviceGetUUID(h):
    u = _GPU0["uuid"]["ok"]
    return u if h.index == 0 else u[:-4] + f"{h.index:04x}"


# -- power limits --------------------------------------------------------------------------------
def nvmlDeviceGetPowerManagementLimitConstraints(h):
    lo, hi = _GPU0["constraints_mw"]["ok"]
    return [lo, hi]


def nvmlDeviceGetPowerManagementDefaultLimit(h):
    return _GPU0["default_limit_mw"]["ok"]


def nvmlDeviceGetPowerManagementLimit(h):
    _latency("power_limit")
    return _limits.get(h.index, _GPU0["limit_mw"]["ok"])


def nvmlDeviceGetEnforcedPowerLimit(h):
    lim = _limits.get(h.index, _GPU0["enforced_limit_mw"]["ok"])
    cap = _env_int("FAKE_NVML_ENFORCED_CAP_MW")
    return min(lim, cap) if cap else lim


def nvmlDeviceSetPowerManagementLimit(h, limit_mw):
    _check_init()
    calls.append(("nvmlDeviceSetPowerManagementLimit", h.index, limit_mw))
    if os.environ.get("FAKE_NVML_NO_PERMISSION") == "1":
        raise NVMLError(NVML_ERROR_NO_PERMISSION)
    lo, hi = _GPU0["constraints_mw"]["ok"]
    if not lo <= limit_mw <= hi:
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    _maybe_fail(h.index, int(limit_mw))
    _limits[h.index] = int(limit_mw)
    _save_state({"gpu": h.index, "limit_mw": int(limit_mw)})


# -- samples -------------------------------------------------------------------------------------
def nvmlDeviceGetPowerUsage(h):
    _cursor[h.index] = _cursor.get(h.index, -1) + 1
    return _sample(h)["power_mw"]


def nvmlDeviceGetFieldValues(h, field_ids):
    if os.environ.get("FAKE_NVML_NO_FIELDS") == "1":
        out = []
        for f in field_ids:
            fid = f[0] if isinstance(f, tuple) else f
            out.append(SimpleNamespace(fieldId=fid, scopeId=0, nvmlReturn=NVML_ERROR_NOT_SUPPORTED,
                                       valueType=1, value=SimpleNamespace(uiVal=0)))
        return out
    s = _SERIES[(_cursor.get(h.index, -1) + 1) % len(_SERIES)]  # the sample the next tick reads
    vals = {NVML_FI_DEV_POWER_INSTANT: s["power_instant_mw"], NVML_FI_DEV_POWER_AVERAGE: s["power_average_mw"],
            NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION: s["energy_mj"]}
    out = []
    for f in field_ids:
        fid, scope = (f if isinstance(f, tuple) else (f, 0))
        v = vals.get(fid)
        out.append(SimpleNamespace(fieldId=fid, scopeId=scope,
                                   nvmlReturn=NVML_SUCCESS if v is not None else NVML_ERROR_NOT_SUPPORTED,
                                   valueType=NVML_VALUE_TYPE_UNSIGNED_INT,
                                   value=SimpleNamespace(uiVal=v or 0, ullVal=v or 0),
                                   timestamp=int(time.time() * 1e6), latencyUsec=0))
    return out


def nvmlDeviceGetTotalEnergyConsumption(h):
    _latency("total_energy")
    return _sample(h)["energy_mj"]


def nvmlDeviceGetClockInfo(h, kind):
    s = _sample(h)
    return {NVML_CLOCK_SM: s["clock_sm"], NVML_CLOCK_MEM: s["clock_mem"], NVML_CLOCK_GRAPHICS: s["clock_gr"]}[kind]


def nvmlDeviceGetUtilizationRates(h):
    s = _sample(h)
    return SimpleNamespace(gpu=s["util_gpu"], memory=s["util_mem"])


def nvmlDeviceGetTemperature(h, sensor):
    return _sample(h)["temp"]


def nvmlDeviceGetMemoryInfo(h):
    s = _sample(h)
    return SimpleNamespace(used=s["mem_used_bytes"], total=150754820096, free=150754820096 - s["mem_used_bytes"])


def reset():
    """Forget cursors, limits and calls (tests call this between cases)."""
    global _init_count
    _init_count = 0
    _cursor.clear()
    _limits.clear()
    calls.clear()
    _fault_hits.clear()
