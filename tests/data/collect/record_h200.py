"""Record real nvidia-smi output and NVML values on a GPU machine (read-only; run once, by hand).

This is how the files beside it were made (on an NVIDIA H200 through the project's device machine):

    python3 tests/data/collect/record_h200.py OUTDIR

It only reads: no power limit, clock, persistence or compute-mode change, no reset. A short torch
matrix-product load runs in a child process so that the recorded values move.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time

FIELDS = [
    "index", "uuid", "timestamp", "power.draw", "power.draw.instant", "power.limit",
    "enforced.power.limit", "clocks.sm", "clocks.mem", "clocks.gr", "temperature.gpu",
    "utilization.gpu", "utilization.memory", "memory.used",
]
LOAD = (
    "import torch,time\n"
    "a=torch.randn(8192,8192,device='cuda',dtype=torch.bfloat16);b=torch.randn_like(a)\n"
    "t=time.time()\n"
    "while time.time()-t<{secs}:\n"
    "    (a@b).sum().item()\n"
)


def sh(argv: list[str], timeout: float = 30) -> dict:
    """Run argv; return its stdout, stderr and exit code."""
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    return {"argv": argv, "rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr}


def smi_loop(out_path: str, interval_ms: int, secs: float, load_secs: float = 0) -> dict:
    """Run nvidia-smi -lms for ``secs`` (with a GPU load in the middle if load_secs)."""
    argv = ["nvidia-smi", f"--query-gpu={','.join(FIELDS)}", "--format=csv", "-lms", str(interval_ms)]
    with open(out_path, "w") as f:
        p = subprocess.Popen(argv, stdout=f, stderr=subprocess.PIPE, text=True)
        load = None
        if load_secs:
            time.sleep((secs - load_secs) / 2)
            load = subprocess.Popen([sys.executable, "-c", LOAD.format(secs=load_secs)])
            load.wait()
            time.sleep((secs - load_secs) / 2)
        else:
            time.sleep(secs)
        p.terminate()
        _, err = p.communicate(timeout=10)
    return {"argv": argv, "rc": p.returncode, "stderr": err, "file": os.path.basename(out_path)}


def nvml_record(n_samples: int, interval_s: float) -> dict:
    """Static NVML facts, per-call latency, and a time series of every value the collector reads."""
    import pynvml as N

    rec: dict = {"nvidia_ml_py": None}
    try:
        from importlib.metadata import version
        rec["nvidia_ml_py"] = version("nvidia-ml-py")
    except Exception as e:  # noqa: BLE001
        rec["nvidia_ml_py"] = repr(e)
    N.nvmlInit()
    rec["driver"] = N.nvmlSystemGetDriverVersion()
    rec["nvml_version"] = N.nvmlSystemGetNVMLVersion()
    rec["cuda_driver_version"] = N.nvmlSystemGetCudaDriverVersion()
    rec["count"] = N.nvmlDeviceGetCount()
    gpus = []

    def tryit(fn, *a):
        try:
            v = fn(*a)
            if isinstance(v, bytes):
                v = v.decode()
            return {"ok": v}
        except N.NVMLError as e:
            return {"err": e.value, "msg": str(e), "cls": type(e).__name__}

    fi = [(N.NVML_FI_DEV_POWER_INSTANT, 0), (N.NVML_FI_DEV_POWER_AVERAGE, 0)]
    for i in range(rec["count"]):
        h = N.nvmlDeviceGetHandleByIndex(i)
        g = {
            "index": i,
            "name": tryit(N.nvmlDeviceGetName, h),
            "uuid": tryit(N.nvmlDeviceGetUUID, h),
            "constraints_mw": tryit(N.nvmlDeviceGetPowerManagementLimitConstraints, h),
            "default_limit_mw": tryit(N.nvmlDeviceGetPowerManagementDefaultLimit, h),
            "limit_mw": tryit(N.nvmlDeviceGetPowerManagementLimit, h),
            "enforced_limit_mw": tryit(N.nvmlDeviceGetEnforcedPowerLimit, h),
        }
        vals = N.nvmlDeviceGetFieldValues(h, fi)
        g["field_values"] = [
            {"fieldId": v.fieldId, "scopeId": v.scopeId, "nvmlReturn": v.nvmlReturn,
             "valueType": v.valueType, "uiVal": v.value.uiVal, "ullVal": v.value.ullVal,
             "timestamp": v.timestamp, "latencyUsec": v.latencyUsec}
            for v in vals
        ]
        # latency of each call the sampler makes (median of 200, microseconds)
        calls = {
            "power_usage": lambda: N.nvmlDeviceGetPowerUsage(h),
            "field_values_2": lambda: N.nvmlDeviceGetFieldValues(h, fi),
            "total_energy": lambda: N.nvmlDeviceGetTotalEnergyConsumption(h),
            "power_limit": lambda: N.nvmlDeviceGetPowerManagementLimit(h),
            "enforced_limit": lambda: N.nvmlDeviceGetEnforcedPowerLimit(h),
            "clock_sm": lambda: N.nvmlDeviceGetClockInfo(h, N.NVML_CLOCK_SM),
            "clock_mem": lambda: N.nvmlDeviceGetClockInfo(h, N.NVML_CLOCK_MEM),
            "clock_gr": lambda: N.nvmlDeviceGetClockInfo(h, N.NVML_CLOCK_GRAPHICS),
            "utilization": lambda: N.nvmlDeviceGetUtilizationRates(h),
            "temperature": lambda: N.nvmlDeviceGetTemperature(h, N.NVML_TEMPERATURE_GPU),
            "memory_info": lambda: N.nvmlDeviceGetMemoryInfo(h),
        }
        lat = {}
        for name, fn in calls.items():
            ts = []
            for _ in range(200):
                t0 = time.perf_counter_ns()
                fn()
                ts.append(time.perf_counter_ns() - t0)
            lat[name] = statistics.median(ts) / 1000
        g["latency_us_median"] = lat
        gpus.append(g)
    rec["gpus"] = gpus

    # time series on GPU 0: idle, load, idle
    h = N.nvmlDeviceGetHandleByIndex(0)
    series = []
    load = None
    t0 = time.monotonic()
    for k in range(n_samples):
        if k == n_samples // 4:
            load = subprocess.Popen([sys.executable, "-c", LOAD.format(secs=n_samples * interval_s / 2)])
        deadline = t0 + k * interval_s
        d = deadline - time.monotonic()
        if d > 0:
            time.sleep(d)
        mono = time.monotonic_ns()
        vals = N.nvmlDeviceGetFieldValues(h, fi)
        u = N.nvmlDeviceGetUtilizationRates(h)
        m = N.nvmlDeviceGetMemoryInfo(h)
        series.append({
            "monotonic_ns": mono,
            "power_mw": N.nvmlDeviceGetPowerUsage(h),
            "power_instant_mw": vals[0].value.uiVal if vals[0].nvmlReturn == 0 else None,
            "power_average_mw": vals[1].value.uiVal if vals[1].nvmlReturn == 0 else None,
            "energy_mj": N.nvmlDeviceGetTotalEnergyConsumption(h),
            "limit_mw": N.nvmlDeviceGetPowerManagementLimit(h),
            "enforced_mw": N.nvmlDeviceGetEnforcedPowerLimit(h),
            "clock_sm": N.nvmlDeviceGetClockInfo(h, N.NVML_CLOCK_SM),
            "clock_mem": N.nvmlDeviceGetClockInfo(h, N.NVML_CLOCK_MEM),
            "clock_gr": N.nvmlDeviceGetClockInfo(h, N.NVML_CLOCK_GRAPHICS),
            "util_gpu": u.gpu, "util_mem": u.memory,
            "temp": N.nvmlDeviceGetTemperature(h, N.NVML_TEMPERATURE_GPU),
            "mem_used_bytes": m.used,
        })
    if load is not None:
        load.wait()
    rec["series_gpu0"] = {"interval_ms": interval_s * 1000, "samples": series}
    N.nvmlShutdown()
    return rec


def main() -> None:
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rec: dict = {"recorded_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    rec["which"] = {t: shutil.which(t) for t in ("nvidia-smi", "perf", "ipmitool", "powermetrics")}
    rec["smi_version"] = sh(["nvidia-smi", "--version"])
    rec["smi_list"] = sh(["nvidia-smi", "-L"])
    rec["smi_probe_all"] = sh(["nvidia-smi", f"--query-gpu={','.join(FIELDS)}", "--format=csv"])
    rec["smi_probe"] = {f: sh(["nvidia-smi", f"--query-gpu={f}", "--format=csv"]) for f in FIELDS}
    rec["smi_probe_invalid"] = sh(["nvidia-smi", "--query-gpu=power.bogus", "--format=csv"])
    rec["smi_gpus"] = sh(["nvidia-smi", "--query-gpu=index,uuid,name,driver_version,power.min_limit,"
                          "power.default_limit,power.max_limit,power.limit,enforced.power.limit",
                          "--format=csv,noheader,nounits"])
    rec["ipmitool"] = sh(["ipmitool", "dcmi", "power", "reading"]) if rec["which"]["ipmitool"] else None
    rec["cpuinfo_model"] = [l for l in open("/proc/cpuinfo") if l.startswith("model name")][:1]
    rec["paranoid"] = open("/proc/sys/kernel/perf_event_paranoid").read().strip()
    rec["localtime"] = os.path.realpath("/etc/localtime") if os.path.exists("/etc/localtime") else None
    rec["rapl_sysfs"] = os.listdir("/sys/bus/event_source/devices")
    rec["smi_loop_100"] = smi_loop(os.path.join(out, "nvidia-smi-lms100.csv"), 100, 6.0, load_secs=3.0)
    rec["smi_loop_10"] = smi_loop(os.path.join(out, "nvidia-smi-lms10.csv"), 10, 2.0)
    rec["nvml"] = nvml_record(80, 0.1)
    with open(os.path.join(out, "record.json"), "w") as f:
        json.dump(rec, f, indent=1)
    print(json.dumps({k: rec[k] for k in ("which", "smi_version", "paranoid", "localtime")}, indent=1))
    print(json.dumps({g["index"]: g["latency_us_median"] for g in rec["nvml"]["gpus"]}, indent=1))


if __name__ == "__main__":
    main()
