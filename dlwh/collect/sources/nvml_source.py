"""In-process NVML sampling: a background thread writes ``nvml.csv`` (docs/run-format.md).

The thread sleeps to absolute deadlines (start + k × interval), so the period does not drift; a
deadline already past when a sample ends is skipped, not caught up in a burst, and counted. The
achieved intervals (monotonic time between successive samples) go into the manifest.

Two NVML reads are slow on some GPUs (``nvmlDeviceGetTotalEnergyConsumption`` took about 3 ms and
``nvmlDeviceGetPowerManagementLimit`` about 0.14 ms on an H200, every other read 1–4 µs), so at
intervals below ``SLOW_READ_MS`` they are read only every ``SLOW_READ_MS`` (their columns are
empty in the rows between) and always in the first and the last row.
"""

from __future__ import annotations

import array
import threading
import time
from pathlib import Path
from typing import IO, Any, Optional

from dlwh.collect.clock import Anchor, iso_utc
from dlwh.collect.nvml import NvmlError, NvmlSession, NvmlUnavailable
from dlwh.collect.sources.base import Source, SourceUnavailable, sleep_until

COLUMNS = (
    "timestamp_utc", "monotonic_ns", "gpu_index", "gpu_uuid", "power_w", "power_instant_w",
    "power_average_w", "energy_total_mj", "power_limit_w", "enforced_power_limit_w",
    "clock_sm_mhz", "clock_mem_mhz", "clock_gr_mhz", "utilization_gpu_pct",
    "utilization_memory_pct", "temperature_gpu_c", "memory_used_mib",
)
HEADER = ",".join(COLUMNS) + "\n"
SLOW_READ_MS = 100


def _w(mw: Any) -> str:
    return "" if mw is None else f"{mw / 1000.0:.3f}"


def _i(v: Any) -> str:
    return "" if v is None else str(int(v))


def _mib(b: Any) -> str:
    if b is None:
        return ""
    s = f"{b / 1048576.0:.4f}".rstrip("0").rstrip(".")
    return s


class _Gpu:
    """Per-GPU sampling state: index, uuid, and which reads still work."""

    def __init__(self, index: int, uuid: str) -> None:
        self.index = index
        self.uuid = uuid
        self.off: set[str] = set()  # reads NVML said are not supported
        self.fields = False  # the instant/average power field values work


class NvmlSource(Source):
    """Samples every GPU (or ``gpus``) through NVML in a thread of this process."""

    name = "nvml"
    file_name = "nvml.csv"

    def __init__(self, interval_ms: int = 100, env: Optional[dict[str, str]] = None,
                 gpus: Optional[list[int]] = None) -> None:
        super().__init__(interval_ms, env)
        self.gpu_filter = gpus
        self.session: Optional[NvmlSession] = None
        self.gpus: list[_Gpu] = []
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._file: Optional[IO[str]] = None
        self.samples = 0
        self.missed = 0
        self.intervals_ns = array.array("q")
        self.read_ns = array.array("q")
        self.thread_cpu_ns = 0
        self.error: Optional[str] = None

    @classmethod
    def build(cls, interval_ms: int, env: dict[str, str], *, gpus: Optional[list[int]] = None) -> "NvmlSource":
        return cls(interval_ms, env, gpus=gpus)

    # -- setup -------------------------------------------------------------------------------
    def check(self) -> None:
        try:
            s = NvmlSession()
        except NvmlUnavailable as err:
            raise SourceUnavailable(err.reason, err.fix) from None
        try:
            n = s.count()
            if n == 0:
                raise SourceUnavailable("NVML sees no GPU", "run on a node with an NVIDIA GPU")
            idx = list(range(n)) if self.gpu_filter is None else list(self.gpu_filter)
            bad = [i for i in idx if not 0 <= i < n]
            if bad:
                raise SourceUnavailable(f"no GPU with index {bad[0]} (NVML sees {n})",
                                        f"choose GPU indices 0..{n - 1}")
            self.gpus = [_Gpu(i, s.uuid(i)) for i in idx]
        except SourceUnavailable:
            s.close()
            raise
        except Exception as err:  # an NVML call failed
            s.close()
            raise SourceUnavailable(f"NVML failed ({err})", "check the driver with nvidia-smi") from None
        self.session = s
        for g in self.gpus:
            g.fields = s.power_fields_supported(g.index)
            if not g.fields:
                self.note(f"GPU {g.index}: NVML has no instant/average power field values; "
                          "power_instant_w and power_average_w are empty (power_w is "
                          "nvmlDeviceGetPowerUsage)")
        self.tools["nvidia-ml-py"] = _dist_version("nvidia-ml-py") or "unknown"
        if self.interval_ms < SLOW_READ_MS:
            self.note(f"energy_total_mj and power_limit_w are read every {SLOW_READ_MS} ms "
                      "(slow NVML calls), other columns every sample")

    def release(self) -> None:
        """Shut NVML down when the source was checked but will not be started."""
        if self.session is not None:
            self.session.close()

    def gpu_inventory(self) -> Optional[list[dict[str, Any]]]:
        if self.session is None:
            return None
        try:
            return [self.session.info(i) for i in range(self.session.count())]
        except NvmlError:
            return None

    # -- running -----------------------------------------------------------------------------
    def start(self, run_dir: Path, anchor: Anchor) -> None:
        super().start(run_dir, anchor)
        if self.session is None:
            self.check()
        self._file = open(run_dir / self.file_name, "w", buffering=1, encoding="ascii", newline="\n")
        self._file.write(HEADER)
        self._thread = threading.Thread(target=self._run, name="dlwh-nvml", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.session is not None:
            self.session.close()
        if self.error:
            self.note(f"sampling stopped early: {self.error}")

    def _run(self) -> None:
        interval = self.interval_ms * 1_000_000
        slow = max(interval, SLOW_READ_MS * 1_000_000)
        t0 = time.monotonic_ns()
        k = 0
        last_slow = -(10 ** 18)
        prev: Optional[int] = None
        cpu0 = time.thread_time_ns()
        try:
            while True:
                stopped = sleep_until(t0 + k * interval, self._stop)
                begin = time.monotonic_ns()
                read_slow = stopped or begin - last_slow >= slow - interval // 2
                if read_slow:
                    last_slow = begin
                self._sample(read_slow)
                end = time.monotonic_ns()
                self.samples += 1
                self.read_ns.append(end - begin)
                if prev is not None:
                    self.intervals_ns.append(begin - prev)
                prev = begin
                if stopped:
                    break
                nxt = (end - t0) // interval + 1
                self.missed += max(0, nxt - (k + 1))
                k = nxt
        except Exception as err:  # noqa: BLE001 - keep what was written; say why it stopped
            self.error = f"{type(err).__name__}: {err}"
        finally:
            self.thread_cpu_ns = time.thread_time_ns() - cpu0

    def _sample(self, read_slow: bool) -> None:
        """Read every GPU once and append its rows."""
        assert self.session is not None and self._file is not None and self.anchor is not None
        s = self.session
        anchor = self.anchor
        read = self._read
        rows = []
        for g in self.gpus:
            i = g.index
            mono = time.monotonic_ns()
            inst = avg = None
            if g.fields:
                fields = read(g, "field_values", s.power_fields_mw, i)
                if fields is not None:
                    inst, avg = fields
            power = read(g, "power", s.power_usage_mw, i)
            energy = limit = None
            if read_slow:
                energy = read(g, "energy", s.total_energy_mj, i)
                limit = read(g, "limit", s.power_limit_read_mw, i)
            enforced = read(g, "enforced", s.enforced_limit_read_mw, i)
            sm = read(g, "clock_sm", s.clock_mhz, i, "sm")
            mem = read(g, "clock_mem", s.clock_mhz, i, "mem")
            gr = read(g, "clock_gr", s.clock_mhz, i, "graphics")
            util = read(g, "utilization", s.utilization, i)
            temp = read(g, "temperature", s.temperature_c, i)
            used = read(g, "memory", s.memory_used_bytes, i)
            rows.append(",".join((
                iso_utc(anchor.utc_ns_of(mono)), str(mono), str(i), g.uuid,
                _w(power), _w(inst), _w(avg), _i(energy), _w(limit), _w(enforced),
                _i(sm), _i(mem), _i(gr),
                _i(util.gpu_pct) if util is not None else "",
                _i(util.memory_pct) if util is not None else "",
                _i(temp), _mib(used),
            )))
        self._file.write("\n".join(rows) + "\n")

    def _read(self, g: _Gpu, what: str, fn: Any, *args: Any) -> Any:
        if what in g.off:
            return None
        try:
            return fn(*args)
        except NvmlError as err:
            self._off(g, what, err)
            return None

    def _off(self, g: _Gpu, what: str, err: NvmlError) -> None:
        """Note a failed read; stop trying reads NVML does not support on this GPU."""
        if err.not_supported:
            g.off.add(what)
            if what == "field_values":
                g.fields = False
            self.note(f"GPU {g.index}: {what} not supported (NVML: {err}); left empty")
        else:
            self.note(f"GPU {g.index}: {what} failed at least once (NVML: {err}); left empty there")

    # -- manifest ----------------------------------------------------------------------------
    def entry(self) -> dict[str, Any]:
        e = super().entry()
        e["gpus"] = [g.index for g in self.gpus]
        e["samples"] = self.samples
        e["missed_deadlines"] = self.missed
        e["achieved_interval_ms"] = _stats_ms(self.intervals_ns)
        e["read_time_ms"] = _stats_ms(self.read_ns)
        e["thread_cpu_s"] = round(self.thread_cpu_ns / 1e9, 4)
        return e


def _stats_ms(values: "array.array[int]") -> Optional[dict[str, float]]:
    """mean, p50, p99, min, max of ns values, in ms."""
    if not values:
        return None
    s = sorted(values)
    n = len(s)

    def q(p: float) -> float:
        return s[min(n - 1, int(round(p * (n - 1))))] / 1e6

    return {"mean": round(sum(s) / n / 1e6, 4), "p50": round(q(0.5), 4), "p99": round(q(0.99), 4),
            "min": round(s[0] / 1e6, 4), "max": round(s[-1] / 1e6, 4), "n": n}


def _dist_version(name: str) -> Optional[str]:
    from dlwh.collect.hostinfo import package_version

    return package_version(name)
