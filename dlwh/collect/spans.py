"""Spans: named intervals of a workload (epoch, step, phase, layer) written to ``spans.jsonl``.

``span`` is a context manager and a decorator. Under ``dlwh collect`` it writes into that run's
directory (the collector passes ``DLWH_RUN_DIR`` and ``DLWH_ANCHOR`` to the workload); elsewhere it
does nothing unless a directory is named with :func:`set_run_dir` or ``DLWH_RUN_DIR``.

Each span becomes one JSON line when it ends, written with a single ``write`` to a file opened
with ``O_APPEND`` under a thread lock and an ``flock``, so several threads and processes can
append to one file and every line lands whole. Times are ``time.monotonic_ns()`` readings,
converted to UTC through the run's anchor.

``span(..., energy=True)`` also reads the GPUs' energy counters (NVML) at both edges, in this
process, and gives the difference as ``s.energy_j`` (and the span attribute ``energy_j``), like
Zeus's ``begin_window``/``end_window``. It synchronises CUDA at both edges and costs two counter
reads (about 3 ms each per GPU on an H100/H200), so keep it for epochs and other long windows.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar, Union

from dlwh.collect.clock import Anchor, anchor_from_env, take_anchor

try:  # not on Windows
    import fcntl as _fcntl
except ImportError:  # pragma: no cover
    _fcntl = None  # type: ignore[assignment]

ENV_RUN_DIR = "DLWH_RUN_DIR"
SPANS_FILE = "spans.jsonl"
KINDS = ("epoch", "step", "phase", "layer")

F = TypeVar("F", bound=Callable[..., Any])


class _Writer:
    """Appends whole lines to one spans file; safe across threads, processes and fork."""

    def __init__(self, run_dir: Path, anchor: Anchor) -> None:
        self.run_dir = run_dir
        self.path = run_dir / SPANS_FILE
        self.anchor = anchor
        run_dir.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.lock = threading.Lock()

    def write_line(self, data: bytes) -> None:
        """Append ``data`` (one line, ending in a newline) in one write under both locks."""
        with self.lock:
            if _fcntl is not None:
                _fcntl.flock(self.fd, _fcntl.LOCK_EX)
            try:
                view = memoryview(data)
                while view:
                    n = os.write(self.fd, view)
                    view = view[n:]
            finally:
                if _fcntl is not None:
                    _fcntl.flock(self.fd, _fcntl.LOCK_UN)

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


# Process state. _resolved: whether DLWH_RUN_DIR was looked at (done once, lazily).
_writer: Optional[_Writer] = None
_resolved = False
_state_lock = threading.Lock()
_local = threading.local()
_main_stack: list[str] = []
_prefix = secrets.token_hex(3)
_counter = itertools.count(1)
_cuda_ok: Optional[bool] = None
_counters: Any = None  # EnergyCounters of this process (pid, counters), or (pid, error text)


def _reset_after_fork() -> None:
    """In a forked child: new id prefix and locks (the file descriptor stays valid)."""
    global _prefix, _counter, _state_lock
    _prefix = secrets.token_hex(3)
    _counter = itertools.count(1)
    _state_lock = threading.Lock()
    _reset_counters()
    if _writer is not None:
        _writer.lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _anchor_for(run_dir: Path) -> Anchor:
    """The run's anchor: from the environment, else from run.json, else a new one."""
    env = anchor_from_env()
    if env is not None:
        return env
    manifest = run_dir / "run.json"
    if manifest.is_file():
        try:
            obj = json.loads(manifest.read_text())
            return Anchor.from_manifest(obj["monotonic_anchor"])
        except (ValueError, KeyError, TypeError, OSError):
            pass
    return take_anchor()


def set_run_dir(path: Union[str, os.PathLike, None], anchor: Optional[Anchor] = None) -> None:
    """Write spans into ``path``/spans.jsonl from now on (None: stop writing spans).

    ``anchor`` is the run's monotonic↔UTC anchor; by default the collector's (``DLWH_ANCHOR``),
    else the one in ``path``/run.json, else a fresh one.
    """
    global _writer, _resolved
    with _state_lock:
        old = _writer
        if path is None:
            _writer = None
        else:
            run_dir = Path(path).resolve()
            _writer = _Writer(run_dir, anchor or _anchor_for(run_dir))
        _resolved = True
    if old is not None:
        old.close()


def get_run_dir() -> Optional[Path]:
    """The directory spans are written to, or None when spans are off."""
    w = _active_writer()
    return w.run_dir if w is not None else None


def enabled() -> bool:
    """True when spans are being written."""
    return _active_writer() is not None


def _active_writer() -> Optional[_Writer]:
    if not _resolved:
        _resolve_from_env()
    return _writer


def _resolve_from_env() -> None:
    global _resolved, _writer
    with _state_lock:
        if _resolved:
            return
        value = os.environ.get(ENV_RUN_DIR)
        if value:
            try:
                run_dir = Path(value).resolve()
                _writer = _Writer(run_dir, _anchor_for(run_dir))
            except OSError as err:
                print(f"dlwh: spans are off: cannot write to {value}: {err}", file=sys.stderr)
                _writer = None
        _resolved = True


def _stack() -> list[str]:
    try:
        return _local.stack  # type: ignore[no-any-return]
    except AttributeError:
        st = _main_stack if threading.current_thread() is threading.main_thread() else []
        _local.stack = st
        return st


def current_span_id(fallback_to_main: bool = False) -> Optional[str]:
    """Id of the innermost open span of this thread (or of the main thread, if asked and none)."""
    st = _stack()
    if st:
        return st[-1]
    if fallback_to_main:
        try:
            return _main_stack[-1]
        except IndexError:
            return None
    return None


def new_span_id() -> str:
    """A span id unique within the run (process prefix + counter)."""
    return f"{_prefix}-{next(_counter)}"


def _cuda_sync() -> None:
    """torch.cuda.synchronize() if torch is already imported and CUDA is available."""
    global _cuda_ok
    torch = sys.modules.get("torch")
    if torch is None:
        return
    if _cuda_ok is None:
        try:
            _cuda_ok = bool(torch.cuda.is_available())
        except Exception:  # noqa: BLE001 - a broken CUDA setup must not break the workload
            _cuda_ok = False
    if _cuda_ok:
        torch.cuda.synchronize()


def _reset_counters() -> None:
    global _counters
    _counters = None


def _energy_counters() -> Any:
    """This process's EnergyCounters, or a string saying why there are none (said once on stderr)."""
    global _counters
    c = _counters
    if c is not None and c[0] == os.getpid():
        return c[1]
    from dlwh.collect.nvml import EnergyCounters, NvmlError, NvmlUnavailable

    try:
        value: Any = EnergyCounters()
        if not value.handles:
            value = "no GPU is visible to this process"
    except NvmlUnavailable as err:
        value = str(err)
    except NvmlError as err:
        value = f"NVML failed ({err})"
    if isinstance(value, str):
        print(f"dlwh: span energy is off: {value}", file=sys.stderr)
    _counters = (os.getpid(), value)
    return value


def _read_energy_mj() -> Optional[list[int]]:
    """Every visible GPU's energy counter (mJ), or None where NVML cannot give it."""
    c = _energy_counters()
    if isinstance(c, str):
        return None
    try:
        return c.read_mj()  # type: ignore[no-any-return]
    except Exception:  # noqa: BLE001 - a failed read must not break the workload
        return None


_ENC = json.JSONEncoder(default=str)
_str_cache: dict[str, str] = {}
_sec_cache: list[Any] = [None, ""]


def _jstr(text: str) -> str:
    """JSON for a (usually repeated) name or kind."""
    out = _str_cache.get(text)
    if out is None:
        out = _ENC.encode(str(text))
        if len(_str_cache) < 4096:
            _str_cache[text] = out
    return out


def _iso(utc_ns: int) -> str:
    """Like clock.iso_utc, reusing the formatted second (spans mostly share it)."""
    sec, rem = divmod(utc_ns, 1_000_000_000)
    cache = _sec_cache
    if cache[0] != sec:
        cache[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        cache[0] = sec
    return "%s.%06dZ" % (cache[1], rem // 1000)


def write_span(
    kind: str,
    name: str,
    start_mono_ns: int,
    end_mono_ns: int,
    attrs: Optional[dict[str, Any]] = None,
    span_id: Optional[str] = None,
    parent_id: Optional[str] = None,
) -> None:
    """Write one finished span (no-op when spans are off). Times: ``time.monotonic_ns()``."""
    w = _active_writer()
    if w is None:
        return
    a = w.anchor
    try:
        attrs_json = _ENC.encode(attrs) if attrs else "{}"
    except (TypeError, ValueError):
        attrs_json = _ENC.encode({str(k): str(v) for k, v in (attrs or {}).items()})
    line = (
        f'{{"span_id": "{span_id or new_span_id()}", '
        f'"parent_id": {_jstr(parent_id) if parent_id is not None else "null"}, '
        f'"kind": {_jstr(kind)}, "name": {_jstr(name)}, '
        f'"start_utc": "{_iso(a.utc_ns_of(start_mono_ns))}", "end_utc": "{_iso(a.utc_ns_of(end_mono_ns))}", '
        f'"start_mono_ns": {int(start_mono_ns)}, "end_mono_ns": {int(end_mono_ns)}, '
        f'"attrs": {attrs_json}}}\n'
    )
    w.write_line(line.encode())


class Span:
    """One span; use ``with span(...)`` or ``@span(...)`` rather than this class directly."""

    __slots__ = ("name", "kind", "sync", "attrs", "energy", "energy_j", "_id", "_parent", "_t0", "_on",
                 "_e0")

    def __init__(self, name: Optional[str], kind: Optional[str], sync: bool, attrs: dict[str, Any],
                 energy: bool = False):
        self.name = name
        self.kind = kind
        self.sync = sync
        self.attrs = attrs
        self.energy = energy
        #: GPU energy of the span (J, all visible GPUs, from NVML's counter at both edges), when
        #: opened with ``energy=True`` and NVML could be read; else None
        self.energy_j: Optional[float] = None
        self._on = False
        self._e0: Optional[list[int]] = None

    def __enter__(self) -> "Span":
        if self.energy:
            _cuda_sync()
            self.energy_j = None
            self._e0 = _read_energy_mj()
        if _active_writer() is None:
            self._on = False
            if self.energy:
                self._t0 = time.monotonic_ns()
            return self
        if self.sync and not self.energy:
            _cuda_sync()
        st = _stack()
        self._parent = st[-1] if st else None
        self._id = new_span_id()
        st.append(self._id)
        self._on = True
        self._t0 = time.monotonic_ns()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if not self._on and not self.energy:
            return
        if self.energy and exc_type is None:
            _cuda_sync()
        elif self.sync and exc_type is None and self._on:
            _cuda_sync()
        t1 = time.monotonic_ns()
        if self.energy:
            self._end_energy()
        if not self._on:
            return
        self._on = False
        st = _stack()
        if st and st[-1] == self._id:
            st.pop()
        elif self._id in st:  # closed out of order (a generator, say): drop it and above
            del st[st.index(self._id):]
        attrs = dict(self.attrs)
        attrs.setdefault("pid", os.getpid())
        if exc_type is not None:
            attrs["error"] = exc_type.__name__
        if self.energy_j is not None:
            attrs["energy_j"] = round(self.energy_j, 3)
            attrs["energy_gpus"] = self._counter_uuids()
        name = self.name or "span"
        kind = self.kind or _default_kind(name)
        write_span(kind, name, self._t0, t1, attrs, self._id, self._parent)

    def _end_energy(self) -> None:
        e1 = _read_energy_mj() if self._e0 is not None else None
        if e1 is not None and self._e0 is not None and len(e1) == len(self._e0):
            self.energy_j = sum(b - a for a, b in zip(self._e0, e1)) / 1000.0
        self._e0 = None

    @staticmethod
    def _counter_uuids() -> list[str]:
        c = _energy_counters()
        return [] if isinstance(c, str) else list(c.uuids)

    def set(self, **attrs: Any) -> None:
        """Add attributes while the span is open (e.g. a loss known only at its end)."""
        self.attrs.update(attrs)

    def __call__(self, func: F) -> F:
        """Use as a decorator: one span per call, named after the function unless named."""
        name = self.name or getattr(func, "__qualname__", "span")
        kind, sync, attrs, energy = self.kind, self.sync, self.attrs, self.energy

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with Span(name, kind, sync, dict(attrs), energy):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


def _default_kind(name: str) -> str:
    return name if name in ("epoch", "step") else "phase"


def span(
    name: Union[str, Callable[..., Any], None] = None,
    kind: Optional[str] = None,
    *,
    sync: bool = False,
    energy: bool = False,
    attrs: Optional[dict[str, Any]] = None,
    **more_attrs: Any,
) -> Any:
    """A span: ``with span("step", step=i): ...`` or ``@span("forward")`` or ``@span``.

    ``kind`` is ``epoch``, ``step``, ``phase`` or ``layer`` (default: the name when it is
    ``epoch`` or ``step``, else ``phase``). Keyword arguments become attributes. ``sync=True``
    calls ``torch.cuda.synchronize()`` at both edges, so the span covers the GPU work launched
    inside it (only when torch is imported and CUDA is available). Without a run directory this
    is a cheap no-op.

    ``energy=True`` (off by default) synchronises CUDA and reads the visible GPUs' NVML energy
    counters at both edges: ``s.energy_j`` (J, summed over those GPUs; None where NVML cannot be
    read) and the attributes ``energy_j`` and ``energy_gpus`` (their UUIDs). It works without a run
    directory too (nothing is written then). Each edge costs one counter read per GPU (about 3 ms on
    an H100/H200) and the counter moves about every 100 ms, so it suits epochs, not steps.
    """
    a = dict(attrs) if attrs else {}
    if more_attrs:
        a.update(more_attrs)
    if callable(name):  # bare @span
        return Span(None, kind, sync, a, energy)(name)
    return Span(name, kind, sync, a, energy)
