"""Canonical metric names and units for ``samples`` (one place, shared by every parser).

A sample is (sensor, ts UTC, metric, unit, value). Power is always W, energy J, clocks MHz,
utilisation %, temperature C (degrees Celsius), memory MiB.
"""

from __future__ import annotations

# metric name -> unit
METRIC_UNITS: dict[str, str] = {
    "power": "W",                 # the source's main power reading (integrated by the views)
    "power_instant": "W",         # instantaneous reading where the source also has an averaged one
    "power_average": "W",         # the source's own moving average (e.g. NVML 1 s average)
    "power_min": "W",             # ipmitool dcmi: minimum over its sampling period
    "power_max": "W",
    "power_avg_period": "W",      # ipmitool dcmi: average over its sampling period
    "power_limit": "W",
    "enforced_power_limit": "W",
    "default_power_limit": "W",
    "min_power_limit": "W",
    "max_power_limit": "W",
    "energy": "J",                # energy over an interval ending at ts (duration_s set), e.g. perf RAPL
    "energy_total": "J",          # a cumulative energy counter (NVML total energy)
    "clock_sm": "MHz",
    "clock_mem": "MHz",
    "clock_gr": "MHz",
    "clock_video": "MHz",
    "frequency": "MHz",           # CPU/GPU frequency reported by powermetrics
    "utilization_gpu": "%",
    "utilization_memory": "%",
    "utilization_encoder": "%",
    "utilization_decoder": "%",
    "utilization_jpeg": "%",
    "utilization_ofa": "%",
    "residency": "%",             # active residency (powermetrics)
    "temperature_gpu": "C",
    "temperature_memory": "C",
    "memory_used": "MiB",
    "memory_free": "MiB",
    "memory_total": "MiB",
    "memory_reserved": "MiB",
    "fan_speed": "%",
    "pcie_rx": "MB/s",
    "pcie_tx": "MB/s",
}

POWER_METRICS = ("power", "power_instant")
"""Metrics the energy views integrate."""


def unit_of(metric: str) -> str:
    """The unit of a canonical metric; raises KeyError for an unknown name."""
    return METRIC_UNITS[metric]
